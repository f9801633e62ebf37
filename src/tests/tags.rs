//! Purposes, column tags, the label provider and the audit log.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::{assert_sqlstate, error_of, one, run};
    use pgrx::prelude::*;

    fn setup() {
        run(
            "CREATE TABLE public.customers (id bigint PRIMARY KEY, email text NOT NULL, name text,
                                            born date, plan text, unsubscribed_at timestamptz)",
        );
        run("SELECT privacy.define_purpose('marketing', 'newsletters', 'consent')");
        run("SELECT privacy.define_purpose('support', NULL, 'contract')");
        run("SELECT privacy.define_purpose('accounting', 'tax records', 'legal_obligation')");
    }

    #[pg_test]
    fn define_purpose_upserts_and_audits() {
        setup();
        run("SELECT privacy.define_purpose('Marketing', 'mail', 'legitimate_interests')");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.purposes WHERE name = 'marketing'"),
            Some(1)
        );
        assert_eq!(
            one::<String>("SELECT legal_basis FROM privacy.purposes WHERE name = 'marketing'")
                .as_deref(),
            Some("legitimate_interests")
        );
        assert_eq!(
            one::<String>("SELECT description FROM privacy.purposes WHERE name = 'marketing'")
                .as_deref(),
            Some("mail")
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.audit_log WHERE action = 'define_purpose'"),
            Some(3)
        );
        assert_eq!(
            one::<String>("SELECT details->>'legal_basis' FROM privacy.audit_log WHERE action = 'update_purpose'")
                .as_deref(),
            Some("legitimate_interests")
        );
    }

    #[pg_test]
    fn define_purpose_errors() {
        assert_sqlstate(
            "SELECT privacy.define_purpose('x', NULL, 'because')",
            "22023",
        );
        assert_sqlstate(
            "SELECT privacy.define_purpose('bad name', NULL, 'consent')",
            "22023",
        );
        assert_sqlstate("SELECT privacy.define_purpose('subject')", "22023");
        assert_sqlstate("SELECT privacy.define_purpose(NULL)", "22004");
        assert_sqlstate("SELECT privacy.define_purpose('x', NULL, NULL)", "22004");
        let (_, msg) = error_of("SELECT privacy.define_purpose('x', NULL, 'because')").unwrap();
        assert_eq!(msg, "invalid legal basis \"because\"");
    }

    #[pg_test]
    fn drop_purpose_refuses_while_used() {
        setup();
        run("SECURITY LABEL FOR privacy ON COLUMN customers.email IS 'PURPOSE marketing, support'");
        assert_sqlstate("SELECT privacy.drop_purpose('marketing')", "2BP01");
        assert_sqlstate("SELECT privacy.drop_purpose('nosuch')", "42704");
        run("SELECT privacy.drop_purpose('accounting')");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.purposes WHERE name = 'accounting'"),
            Some(0)
        );
        run("SELECT privacy.untag_column('customers', 'email')");
        run("SELECT privacy.drop_purpose('marketing')");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.audit_log WHERE action = 'drop_purpose'"),
            Some(2)
        );
    }

    #[pg_test]
    fn security_label_is_parsed_into_view() {
        setup();
        run("SECURITY LABEL FOR privacy ON COLUMN customers.email
             IS 'purpose marketing, support category contact anonymize email'");
        run("SECURITY LABEL FOR privacy ON COLUMN customers.id IS 'SUBJECT'");
        let (p, c) = Spi::get_two::<Vec<String>, String>(
            "SELECT purposes, category FROM privacy.column_tags WHERE column_name = 'email'",
        )
        .unwrap();
        assert_eq!(p.unwrap(), vec!["marketing", "support"]);
        assert_eq!(c.as_deref(), Some("contact"));
        assert_eq!(
            one::<String>("SELECT anonymize FROM privacy.column_tags WHERE column_name = 'email'")
                .as_deref(),
            Some("EMAIL")
        );
        assert_eq!(
            one::<bool>("SELECT is_subject FROM privacy.column_tags WHERE column_name = 'id'"),
            Some(true)
        );
        assert_eq!(
            one::<String>(
                "SELECT table_name::text FROM privacy.column_tags WHERE column_name = 'id'"
            )
            .as_deref(),
            Some("customers")
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.audit_log WHERE action = 'tag_column'"),
            Some(2)
        );
    }

    #[pg_test]
    fn invalid_labels_are_rejected_with_22023() {
        setup();
        for bad in [
            "''",
            "'PURPOSE'",
            "'PURPOSE nosuch'",
            "'FOO'",
            "'PURPOSE marketing PURPOSE support'",
            "'ANONYMIZE TRUNCATE week'",
            "'ANONYMIZE EMAIL'", // born is a date
            "'ANONYMIZE FUNCTION public.nosuch'",
            "'SUBJECT SUBJECT'",
        ] {
            assert_sqlstate(
                &format!("SECURITY LABEL FOR privacy ON COLUMN customers.born IS {bad}"),
                "22023",
            );
        }
        let (_, msg) = error_of(
            "SECURITY LABEL FOR privacy ON COLUMN customers.name IS 'PURPOSE marketing BOGUS'",
        )
        .unwrap();
        assert!(msg.contains("\"BOGUS\""), "{msg}");
        let (_, msg) =
            error_of("SECURITY LABEL FOR privacy ON COLUMN customers.name IS 'PURPOSE nosuch'")
                .unwrap();
        assert!(msg.contains("\"nosuch\""), "{msg}");
        // type checks of methods
        assert_sqlstate(
            "SECURITY LABEL FOR privacy ON COLUMN customers.email IS 'ANONYMIZE NULL'",
            "22023",
        );
        assert_sqlstate(
            "SECURITY LABEL FOR privacy ON COLUMN customers.born IS 'ANONYMIZE PSEUDONYMIZE'",
            "22023",
        );
        assert_sqlstate(
            "SECURITY LABEL FOR privacy ON COLUMN customers.born IS 'ANONYMIZE CONSTANT ''soon'''",
            "22023",
        );
        assert_sqlstate(
            "SECURITY LABEL FOR privacy ON COLUMN customers.born IS 'SUBJECT'",
            "22023",
        );
        // only columns
        assert_sqlstate(
            "SECURITY LABEL FOR privacy ON TABLE customers IS 'PURPOSE marketing'",
            "22023",
        );
        // nothing was written by the failures
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.column_tags"),
            Some(0)
        );
    }

    #[pg_test]
    fn valid_methods_are_accepted() {
        setup();
        run("CREATE FUNCTION public.mask(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'x' $$");
        run("SECURITY LABEL FOR privacy ON COLUMN customers.born IS 'ANONYMIZE TRUNCATE year CATEGORY demographic'");
        run("SECURITY LABEL FOR privacy ON COLUMN customers.name IS 'PURPOSE support ANONYMIZE FUNCTION public.mask'");
        run("SECURITY LABEL FOR privacy ON COLUMN customers.plan IS 'PURPOSE support ANONYMIZE CONSTANT ''it''''s gone'''");
        run("SECURITY LABEL FOR privacy ON COLUMN customers.email IS 'PURPOSE marketing ANONYMIZE PSEUDONYMIZE'");
        assert_eq!(
            one::<String>("SELECT anonymize FROM privacy.column_tags WHERE column_name = 'plan'")
                .as_deref(),
            Some("CONSTANT 'it''s gone'")
        );
        assert_eq!(
            one::<String>("SELECT anonymize FROM privacy.column_tags WHERE column_name = 'born'")
                .as_deref(),
            Some("TRUNCATE year")
        );
    }

    #[pg_test]
    fn one_subject_per_table() {
        setup();
        run("SELECT privacy.mark_subject('customers', 'id')");
        assert_sqlstate("SELECT privacy.mark_subject('customers', 'email')", "22023");
    }

    #[pg_test]
    fn wrappers_tag_mark_untag() {
        setup();
        run("SELECT privacy.mark_subject('customers', 'id')");
        run("SELECT privacy.tag_column('customers', 'id', ARRAY['support'], 'identifier')");
        // tagging keeps the SUBJECT mark
        assert_eq!(
            one::<bool>("SELECT is_subject FROM privacy.column_tags WHERE column_name = 'id'"),
            Some(true)
        );
        run("SELECT privacy.tag_column('customers', 'email', ARRAY['marketing','support'], 'contact', 'email')");
        assert_eq!(
            one::<String>(
                "SELECT label FROM pg_seclabels WHERE provider = 'privacy' AND objname = 'customers.email'"
            )
            .as_deref(),
            Some("PURPOSE marketing, support CATEGORY contact ANONYMIZE EMAIL")
        );
        run("SELECT privacy.untag_column('customers', 'email')");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.column_tags WHERE column_name = 'email'"),
            Some(0)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.audit_log WHERE action = 'untag_column'"),
            Some(1)
        );
        // errors
        assert_sqlstate(
            "SELECT privacy.tag_column('nosuch', 'email', ARRAY['support'])",
            "42P01",
        );
        assert_sqlstate(
            "SELECT privacy.tag_column('customers', 'nosuch', ARRAY['support'])",
            "42703",
        );
        assert_sqlstate(
            "SELECT privacy.tag_column('customers', 'email', ARRAY['nosuch'])",
            "22023",
        );
        assert_sqlstate(
            "SELECT privacy.tag_column('customers', 'email', ARRAY[]::text[])",
            "22023",
        );
        assert_sqlstate(
            "SELECT privacy.tag_column('customers', 'email', ARRAY['a b'])",
            "22023",
        );
        assert_sqlstate(
            "SELECT privacy.tag_column('customers', 'email', ARRAY['support'], NULL, 'SHRED')",
            "22023",
        );
        assert_sqlstate(
            "SELECT privacy.tag_column('customers', 'email', NULL)",
            "22004",
        );
        assert_sqlstate(
            "SELECT privacy.mark_subject('customers', 'nosuch')",
            "42703",
        );
        assert_sqlstate("SELECT privacy.untag_column('customers', NULL)", "22004");
    }

    #[pg_test]
    fn tags_follow_renames_and_vanish_with_drops() {
        setup();
        run("SELECT privacy.tag_column('customers', 'email', ARRAY['marketing'])");
        run("SELECT privacy.tag_column('customers', 'name', ARRAY['support'])");
        run("ALTER TABLE customers RENAME COLUMN email TO contact_email");
        run("ALTER TABLE customers RENAME TO clients");
        assert_eq!(
            one::<String>("SELECT table_name::text || '.' || column_name FROM privacy.column_tags WHERE 'marketing' = ANY (purposes)")
                .as_deref(),
            Some("clients.contact_email")
        );
        run("ALTER TABLE clients DROP COLUMN name");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.column_tags"),
            Some(1)
        );
        run("DROP TABLE clients");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.column_tags"),
            Some(0)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM pg_seclabel WHERE provider = 'privacy'"),
            Some(0)
        );
    }

    #[pg_test]
    fn tagging_needs_table_ownership() {
        setup();
        run("CREATE ROLE privacy_test_stranger");
        run("GRANT USAGE ON SCHEMA privacy TO privacy_test_stranger");
        run("GRANT ALL ON customers TO privacy_test_stranger");
        run("SET LOCAL ROLE privacy_test_stranger");
        assert_sqlstate(
            "SELECT privacy.tag_column('customers', 'email', ARRAY['marketing'])",
            "42501",
        );
        assert_sqlstate(
            "SECURITY LABEL FOR privacy ON COLUMN customers.email IS 'PURPOSE marketing'",
            "42501",
        );
        assert_sqlstate("SELECT privacy.define_purpose('sneaky')", "42501");
        run("RESET ROLE");
    }

    #[pg_test]
    fn audit_log_is_append_only() {
        setup();
        run("CREATE ROLE privacy_test_auditor");
        run("GRANT USAGE ON SCHEMA privacy TO privacy_test_auditor");
        // even an explicit grant does not allow rewriting history
        run("GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON privacy.audit_log TO privacy_test_auditor");
        run("SET LOCAL ROLE privacy_test_auditor");
        assert_sqlstate("UPDATE privacy.audit_log SET actor = 'nobody'", "42501");
        assert_sqlstate("DELETE FROM privacy.audit_log", "42501");
        assert_sqlstate("TRUNCATE privacy.audit_log", "42501");
        run("RESET ROLE");
        run("REVOKE ALL ON privacy.audit_log FROM privacy_test_auditor");
        run("SET LOCAL ROLE privacy_test_auditor");
        assert_sqlstate(
            "INSERT INTO privacy.audit_log (action) VALUES ('forged')",
            "42501",
        );
        assert_sqlstate("SELECT count(*) FROM privacy.audit_log", "42501");
        run("RESET ROLE");
        // a superuser may
        run("DELETE FROM privacy.audit_log WHERE action = 'define_purpose' AND object = 'support'");
    }

    #[pg_test]
    fn settings_are_registered_and_prefix_reserved() {
        assert_eq!(
            one::<String>("SHOW privacy.naptime").as_deref(),
            Some("1min")
        );
        assert_eq!(
            one::<String>("SHOW privacy.batch_size").as_deref(),
            Some("10000")
        );
        assert_eq!(
            one::<String>("SHOW privacy.lock_timeout").as_deref(),
            Some("1s")
        );
        assert_eq!(
            one::<String>("SHOW privacy.worker_enabled").as_deref(),
            Some("on")
        );
        assert!(one::<String>("SHOW privacy.max_workers").is_some());
        assert_eq!(
            one::<String>("SHOW privacy.batch_delay").as_deref(),
            Some("0")
        );
        // a server setting (reload), not a session one
        assert_sqlstate("SET privacy.batch_delay = '10ms'", "55P02");
        assert_sqlstate("SET privacy.no_such_setting = 1", "42602");
    }
}
