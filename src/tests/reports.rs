//! Compliance reports: each lint finding triggered and cleared on a schema
//! of its own, declarations, the record and the export's Art. 15 fields.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::{assert_sqlstate, one, run};
    use pgrx::prelude::*;
    use pgrx::JsonB;
    use serde_json::Value;

    /// The findings, as "finding object" strings, in lint order.
    fn findings() -> Vec<String> {
        Spi::connect(|c| {
            c.select(
                "SELECT finding || ' ' || object FROM privacy.lint()",
                None,
                &[],
            )
            .unwrap()
            .map(|r| r.get::<String>(1).unwrap().unwrap())
            .collect()
        })
    }

    fn has(finding: &str, object: &str) -> bool {
        findings().contains(&format!("{finding} {object}"))
    }

    fn fix(finding: &str, object: &str) -> String {
        one::<String>(&format!(
            "SELECT fix_sql FROM privacy.lint() WHERE finding = '{finding}' AND object = '{object}'"
        ))
        .unwrap_or_else(|| panic!("no {finding} on {object}: {:?}", findings()))
    }

    /// A clean, fully tagged schema: subject indexed, retention with an
    /// indexed anchor, every purpose used, a fresh key.
    fn clean_schema() {
        run("SELECT privacy.define_purpose('service', 'run the product', 'contract')");
        run("SELECT privacy.create_key()");
        run(
            "CREATE TABLE public.customers (id bigint PRIMARY KEY, email text, full_name text,
                                            plan text, closed_at timestamptz)",
        );
        run("CREATE INDEX ON public.customers (closed_at)");
        run("SECURITY LABEL FOR privacy ON COLUMN public.customers.id IS 'SUBJECT'");
        run("SECURITY LABEL FOR privacy ON COLUMN public.customers.email IS 'PURPOSE service CATEGORY contact'");
        run("SECURITY LABEL FOR privacy ON COLUMN public.customers.full_name IS 'PURPOSE service CATEGORY identity'");
        run("SELECT privacy.add_retention_policy('public.customers', '1 year', 'closed_at', name => 'customers_1y')");
    }

    #[pg_test]
    fn lint_on_a_clean_schema_returns_nothing() {
        clean_schema();
        assert_eq!(findings(), Vec::<String>::new());
    }

    #[pg_test]
    fn lint_untagged_personal_column_and_not_personal() {
        clean_schema();
        run("ALTER TABLE public.customers ADD COLUMN telefon text, ADD COLUMN origin inet, ADD COLUMN product_name text");
        assert!(has("untagged_personal_column", "public.customers.telefon"));
        assert!(has("untagged_personal_column", "public.customers.origin"));
        assert!(!has(
            "untagged_personal_column",
            "public.customers.product_name"
        ));
        let f = fix("untagged_personal_column", "public.customers.telefon");
        assert!(
            f.starts_with("SECURITY LABEL FOR privacy ON COLUMN public.customers.telefon IS 'PURPOSE service CATEGORY contact';"),
            "{f}"
        );
        // the fix (the purposes the table already uses) clears it
        run(f.lines().next().unwrap());
        assert!(!has("untagged_personal_column", "public.customers.telefon"));
        // a false positive is cleared with NOT PERSONAL
        run("SECURITY LABEL FOR privacy ON COLUMN public.customers.origin IS 'NOT PERSONAL'");
        assert_eq!(findings(), Vec::<String>::new());
        // NOT PERSONAL columns are not exported
        run("INSERT INTO public.customers (id, email, origin) VALUES (1, 'a@b.c', '10.0.0.1')");
        let doc = one::<JsonB>("SELECT privacy.export_subject('1')")
            .unwrap()
            .0;
        let cols = &doc["tables"]["public.customers"]["columns"];
        assert!(cols.get("origin").is_none(), "{cols}");
        assert!(cols.get("telefon").is_some(), "{cols}");
    }

    #[pg_test]
    fn lint_table_without_retention() {
        clean_schema();
        run("SELECT privacy.drop_retention_policy('customers_1y')");
        assert!(has("table_without_retention", "public.customers"));
        // the fix names the likely anchor and leaves the period to the DBA
        assert_eq!(
            fix("table_without_retention", "public.customers"),
            "SELECT privacy.add_retention_policy('public.customers', '<keep_for>', 'closed_at');"
        );
        run("SELECT privacy.add_retention_policy('public.customers', '2 years', 'closed_at')");
        assert_eq!(findings(), Vec::<String>::new());
    }

    #[pg_test]
    fn lint_table_without_subject_and_not_linked() {
        clean_schema();
        run("CREATE TABLE public.orders (id bigint PRIMARY KEY,
                                         customer_id bigint REFERENCES public.customers (id),
                                         amount numeric)");
        // an untagged table whose foreign key holds a subject id
        assert!(has("table_not_linked_to_subject", "public.orders"));
        assert_eq!(
            fix("table_not_linked_to_subject", "public.orders"),
            "SELECT privacy.mark_subject('public.orders', 'customer_id');"
        );
        // tagged, still without SUBJECT
        run("SELECT privacy.tag_column('public.orders', 'amount', ARRAY['service'], 'financial')");
        assert!(has("table_without_subject", "public.orders"));
        assert!(!has("table_not_linked_to_subject", "public.orders"));
        run(&fix("table_without_subject", "public.orders"));
        assert!(!has("table_without_subject", "public.orders"));
        // now it needs an index on the subject and a retention policy
        assert!(has(
            "subject_column_without_index",
            "public.orders.customer_id"
        ));
        assert!(has("table_without_retention", "public.orders"));
        run(&fix(
            "subject_column_without_index",
            "public.orders.customer_id",
        ));
        run("ALTER TABLE public.orders ADD COLUMN ordered_at timestamptz");
        run("CREATE INDEX ON public.orders (ordered_at)");
        run("SELECT privacy.add_retention_policy('public.orders', '10 years', 'ordered_at')");
        assert_eq!(findings(), Vec::<String>::new());
    }

    #[pg_test]
    fn lint_anchor_without_index() {
        clean_schema();
        run("DROP INDEX public.customers_closed_at_idx");
        assert!(has(
            "anchor_column_without_index",
            "public.customers.closed_at"
        ));
        run(&fix(
            "anchor_column_without_index",
            "public.customers.closed_at",
        ));
        assert_eq!(findings(), Vec::<String>::new());
    }

    #[pg_test]
    fn lint_partition_without_retention() {
        run("SELECT privacy.define_purpose('analytics')");
        run("CREATE TABLE public.visits (account_id bigint, ip text, at timestamptz NOT NULL) PARTITION BY RANGE (at)");
        run("CREATE INDEX ON public.visits (account_id)");
        run("CREATE INDEX ON public.visits (at)");
        run("SECURITY LABEL FOR privacy ON COLUMN public.visits.account_id IS 'SUBJECT'");
        run("SECURITY LABEL FOR privacy ON COLUMN public.visits.ip IS 'PURPOSE analytics CATEGORY online'");
        run("CREATE TABLE public.visits_2026_01 PARTITION OF public.visits FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')");
        run("CREATE TABLE public.visits_2026_02 PARTITION OF public.visits FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')");
        // no policy anywhere: the partitioned table is reported once
        assert!(has("table_without_retention", "public.visits"));
        assert!(!has("partition_without_retention", "public.visits_2026_02"));
        run("SELECT privacy.add_retention_policy('public.visits_2026_01', '30 days', 'at')");
        // January has its policy, the new February partition has none
        assert!(!has("table_without_retention", "public.visits"));
        assert!(has("partition_without_retention", "public.visits_2026_02"));
        assert!(!has("partition_without_retention", "public.visits_2026_01"));
        run(&fix("partition_without_retention", "public.visits_2026_02"));
        assert_eq!(findings(), Vec::<String>::new());
    }

    #[pg_test]
    fn lint_policy_failing_and_overdue() {
        clean_schema();
        // overdue: last run (or creation) older than twice the schedule
        run("UPDATE privacy.retention_policy_defs SET created_at = now() - interval '3 hours' WHERE name = 'customers_1y'");
        assert!(has("policy_overdue", "retention policy customers_1y"));
        run("SELECT count(*) FROM privacy.run_retention('customers_1y')");
        assert_eq!(findings(), Vec::<String>::new());
        // failing: the last run failed
        run("UPDATE privacy.retention_policy_defs SET last_status = 'failed' WHERE name = 'customers_1y'");
        assert!(has("policy_failing", "retention policy customers_1y"));
        assert_eq!(
            one::<String>("SELECT severity FROM privacy.lint() WHERE finding = 'policy_failing'")
                .as_deref(),
            Some("error")
        );
        run("SELECT count(*) FROM privacy.run_retention('customers_1y')");
        assert_eq!(findings(), Vec::<String>::new());
        // a disabled policy is never overdue
        run("UPDATE privacy.retention_policy_defs SET last_run_at = now() - interval '1 day' WHERE name = 'customers_1y'");
        assert!(has("policy_overdue", "retention policy customers_1y"));
        run("SELECT privacy.alter_retention_policy('customers_1y', enabled => false)");
        assert_eq!(findings(), Vec::<String>::new());
    }

    #[pg_test]
    fn lint_purpose_unused() {
        clean_schema();
        run("SELECT privacy.define_purpose('research')");
        assert!(has("purpose_unused", "purpose research"));
        assert_eq!(
            one::<String>("SELECT severity FROM privacy.lint() WHERE finding = 'purpose_unused'")
                .as_deref(),
            Some("info")
        );
        // a recipient that receives it uses it
        run("SELECT privacy.declare_recipient('lab', purposes => ARRAY['research'])");
        assert_eq!(findings(), Vec::<String>::new());
        run("SELECT privacy.drop_recipient('lab')");
        run(&fix("purpose_unused", "purpose research"));
        assert_eq!(findings(), Vec::<String>::new());
    }

    #[pg_test]
    fn lint_key_not_rotated() {
        clean_schema();
        run("UPDATE privacy.key_secrets SET created_at = now() - interval '400 days' WHERE name = 'default'");
        assert!(has("key_not_rotated", "key default"));
        // the age is configurable
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.lint(key_max_age => '2 years')"),
            Some(0)
        );
        run(&fix("key_not_rotated", "key default"));
        assert_eq!(findings(), Vec::<String>::new());
        assert_sqlstate("SELECT * FROM privacy.lint(NULL)", "22004");
    }

    #[pg_test]
    fn lint_hold_expired() {
        clean_schema();
        let id = one::<i64>("SELECT privacy.place_hold('public.customers', 'plan = ''vip''', 'audit', now() + interval '1 day')").unwrap();
        assert_eq!(findings(), Vec::<String>::new());
        run(&format!(
            "UPDATE privacy.legal_holds SET until = now() - interval '1 day' WHERE id = {id}"
        ));
        assert!(has("hold_expired", &format!("legal hold {id}")));
        run(&fix("hold_expired", &format!("legal hold {id}")));
        assert_eq!(findings(), Vec::<String>::new());
    }

    #[pg_test]
    fn lint_transfer_without_safeguards() {
        clean_schema();
        run("SELECT privacy.declare_recipient('mailer', 'newsletters', ARRAY['service'], 'US', true)");
        assert!(has("transfer_without_safeguards", "recipient mailer"));
        run("SELECT privacy.declare_recipient('mailer', 'newsletters', ARRAY['service'], 'US', true, 'standard contractual clauses')");
        assert_eq!(findings(), Vec::<String>::new());
    }

    #[pg_test]
    fn lint_ignores_temporary_partitions_and_extension_tables() {
        clean_schema();
        run("CREATE TEMP TABLE scratch (email text)");
        assert_eq!(findings(), Vec::<String>::new());
    }

    #[pg_test]
    fn lint_is_immune_to_a_hostile_search_path() {
        clean_schema();
        run("CREATE SCHEMA evil");
        run("CREATE FUNCTION evil.eq(oid, oid) RETURNS boolean LANGUAGE sql AS 'SELECT false'");
        run("CREATE OPERATOR evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = evil.eq)");
        run("SET LOCAL search_path = evil, pg_catalog, public");
        assert_eq!(findings(), Vec::<String>::new());
        run("ALTER TABLE public.customers ADD COLUMN phone text");
        assert!(has("untagged_personal_column", "public.customers.phone"));
    }

    #[pg_test]
    fn declarations_validate_and_audit() {
        clean_schema();
        run("SELECT privacy.declare_controller('Shop Ltd', '1 Main St', NULL, 'Ada', 'dpo@shop.example')");
        run("SELECT privacy.declare_controller('Shop Ltd.', '2 Main St')");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.controller"),
            Some(1)
        );
        assert_eq!(
            one::<String>("SELECT contact FROM privacy.controller").as_deref(),
            Some("2 Main St")
        );
        assert_sqlstate("SELECT privacy.declare_controller('  ')", "22023");
        assert_sqlstate("SELECT privacy.declare_controller(NULL)", "22004");
        assert_sqlstate(
            "SELECT privacy.declare_recipient('x', purposes => ARRAY['nope'])",
            "42704",
        );
        assert_sqlstate(
            "SELECT privacy.declare_recipient('x', third_country => true)",
            "22023",
        );
        assert_sqlstate("SELECT privacy.drop_recipient('nobody')", "42704");
        assert_sqlstate(
            "SELECT privacy.describe_subjects('public.customers', '')",
            "22023",
        );
        run("CREATE TABLE public.notes (body text)");
        assert_sqlstate(
            "SELECT privacy.describe_subjects('public.notes', 'x')",
            "22023",
        );
        run("SELECT privacy.describe_subjects('public.customers', 'customers of the shop')");
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM privacy.audit_log
                  WHERE action IN ('declare_controller', 'describe_subjects')"
            ),
            Some(3)
        );
        // a dropped table takes its description with it
        run("DROP TABLE public.customers");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.subject_categories"),
            Some(0)
        );
    }

    fn record() -> Value {
        one::<JsonB>("SELECT privacy.processing_record()")
            .unwrap()
            .0
    }

    #[pg_test]
    fn record_lists_purposes_categories_subjects_and_measures() {
        clean_schema();
        run("SELECT privacy.declare_controller('Shop Ltd', '1 Main St', NULL, 'Ada', 'dpo@shop.example')");
        run("SELECT privacy.describe_subjects('public.customers', 'customers of the shop')");
        run("SELECT privacy.declare_recipient('mailer', 'sends e-mail', ARRAY['service'], 'US', true, 'SCC')");
        run("SECURITY LABEL FOR privacy ON COLUMN public.customers.email IS 'PURPOSE service CATEGORY contact ANONYMIZE EMAIL'");
        run("SELECT privacy.place_subject_hold('7', 'court order')");
        let r = record();
        assert_eq!(r["controller"]["name"], "Shop Ltd");
        assert_eq!(r["controller"]["dpo"]["contact"], "dpo@shop.example");
        let p = &r["purposes"][0];
        assert_eq!(p["name"], "service");
        assert_eq!(p["legal_basis"], "contract");
        assert_eq!(p["data_subjects"], serde_json::json!(["public.customers"]));
        assert_eq!(p["retention"], serde_json::json!(["customers_1y"]));
        assert_eq!(p["recipients"], serde_json::json!(["mailer"]));
        assert_eq!(
            p["data_categories"],
            serde_json::json!([
                {"category": "contact", "columns": ["public.customers.email"]},
                {"category": "identity", "columns": ["public.customers.full_name"]}
            ])
        );
        assert_eq!(
            r["data_subject_categories"],
            serde_json::json!([{"table": "public.customers", "subject_column": "id",
                                "description": "customers of the shop"}])
        );
        assert_eq!(r["transfers"][0]["country"], "US");
        let pol = &r["retention_policies"][0];
        assert_eq!(pol["name"], "customers_1y");
        assert_eq!(pol["anchor"], "closed_at");
        assert_eq!(pol["keep_for"], "1 year");
        assert_eq!(pol["action"], "delete");
        assert_eq!(pol["last_successful_run"], Value::Null);
        let tm = &r["technical_measures"];
        assert_eq!(tm["pseudonymization_keys"][0]["name"], "default");
        assert_eq!(
            tm["pseudonymization_keys"][0]["fingerprint"].as_str(),
            one::<String>("SELECT fingerprint FROM privacy.keys WHERE name = 'default'").as_deref()
        );
        assert_eq!(
            tm["anonymization"],
            serde_json::json!([{"column": "public.customers.email", "method": "EMAIL"}])
        );
        // holds are counted, a subject hold never names the person
        assert_eq!(tm["legal_holds_in_force"]["count"], 1);
        assert_eq!(tm["legal_holds_in_force"]["subject_holds"], 1);
        assert!(!r.to_string().contains("court order"));
        let md = one::<String>("SELECT privacy.processing_record_markdown()").unwrap();
        assert!(md.contains("# Record of processing activities"), "{md}");
        assert!(
            md.contains("| contact | `public.customers.email` |"),
            "{md}"
        );
        // a successful run shows in the record
        run("SELECT count(*) FROM privacy.run_retention('customers_1y')");
        assert!(record()["retention_policies"][0]["last_successful_run"].is_string());
    }

    #[pg_test]
    fn export_has_the_art15_fields_and_keeps_the_old_ones() {
        clean_schema();
        run("SELECT privacy.define_purpose('marketing', 'newsletters', 'consent')");
        run("SECURITY LABEL FOR privacy ON COLUMN public.customers.email IS 'PURPOSE service, marketing CATEGORY contact'");
        run("SELECT privacy.add_retention_policy('public.customers', '6 months', 'closed_at', 'anonymize', purpose => 'marketing', name => 'mk')");
        run("SELECT privacy.declare_recipient('mailer', NULL, ARRAY['marketing'])");
        run("SELECT privacy.declare_recipient('unrelated', NULL, NULL)");
        run("INSERT INTO public.customers VALUES (1, 'a@b.c', 'Ada', 'pro', NULL)");
        run("SELECT privacy.object_to_purpose('1', 'marketing')");
        let d = one::<JsonB>("SELECT privacy.export_subject('1')")
            .unwrap()
            .0;
        // the keys that were there before
        assert_eq!(d["subject"], "1");
        assert!(d["exported_at"].is_string());
        let t = &d["tables"]["public.customers"];
        assert_eq!(t["rows"][0]["email"], "a@b.c");
        assert_eq!(
            t["columns"]["email"]["purposes"],
            serde_json::json!(["service", "marketing"])
        );
        assert_eq!(t["columns"]["email"]["category"], "contact");
        // Art. 15(1)(a)…(d)
        assert_eq!(
            t["columns"]["email"]["legal_bases"],
            serde_json::json!({"service": "contract", "marketing": "consent"})
        );
        let names = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|p| p["policy"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            names(&t["columns"]["email"]["retention"]),
            vec!["customers_1y", "mk"]
        );
        // the anonymize policy of marketing does not apply to full_name (service only)
        assert_eq!(
            names(&t["columns"]["full_name"]["retention"]),
            vec!["customers_1y"]
        );
        assert_eq!(t["retention"][1]["keep_for"], "6 mons");
        assert_eq!(t["retention"][1]["purpose"], "marketing");
        assert_eq!(d["purposes"]["marketing"]["legal_basis"], "consent");
        assert_eq!(d["objections"][0]["purpose"], "marketing");
        assert_eq!(d["recipients"].as_array().unwrap().len(), 1);
        assert_eq!(d["recipients"][0]["name"], "mailer");
        assert_eq!(d["controller"], Value::Null);
        // the readable form, audited like any export
        let md = one::<String>("SELECT privacy.export_subject_markdown('1')").unwrap();
        assert!(
            md.contains("| marketing | newsletters | consent (Art. 6(1)(a)) |"),
            "{md}"
        );
        assert!(md.contains("| a@b.c | Ada |"), "{md}");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.audit_log WHERE action = 'export_subject' AND details->>'format' = 'markdown'"),
            Some(1)
        );
    }
}
