//! Retention semantics of issue 13: zero `keep_for`, no future `as_of` for a
//! real run, policies created disabled, the per-database worker pause, the
//! `ANONYMIZE` spelling `tag_column` accepts, the error for a NOT NULL
//! column no default method fits.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::{assert_sqlstate, error_hint_of, error_of, fresh, one, run};
    use pgrx::prelude::*;

    fn signups() {
        run("CREATE TABLE public.signups (id int PRIMARY KEY, at timestamptz, ok boolean NOT NULL DEFAULT true)");
        run("CREATE INDEX ON public.signups (at)");
        run("INSERT INTO public.signups (id, at) VALUES
               (1, now() - interval '1 day'), (2, now() - interval '1 second'),
               (3, now() + interval '1 day'), (4, NULL)");
    }

    #[pg_test]
    fn zero_keep_for_deletes_at_once_and_negative_is_refused() {
        signups();
        run("SELECT privacy.add_retention_policy('signups', '0', 'at', name => 'at_once')");
        assert_eq!(
            one::<String>(
                "SELECT keep_for::text FROM privacy.retention_policies WHERE name = 'at_once'"
            )
            .as_deref(),
            Some("00:00:00")
        );
        // the rows whose anchor is reached go, the future and NULL ones stay
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('at_once')"),
            Some(2)
        );
        assert_eq!(
            one::<String>("SELECT string_agg(id::text, ',' ORDER BY id) FROM public.signups")
                .as_deref(),
            Some("3,4")
        );
        for bad in ["'-1 day'", "'1 month -1 day'", "'-1 second'"] {
            let e = error_of(&format!(
                "SELECT privacy.add_retention_policy('signups', {bad}, 'at', name => 'neg')"
            ))
            .expect("refused");
            assert_eq!(e.0, "22023", "{bad}: {}", e.1);
            assert!(e.1.contains("negative"), "{}", e.1);
        }
        assert_sqlstate(
            "SELECT privacy.alter_retention_policy('at_once', keep_for => '-1 day')",
            "22023",
        );
        run("SELECT privacy.alter_retention_policy('at_once', keep_for => '0 days')");
    }

    #[pg_test]
    fn a_real_run_refuses_a_future_as_of_and_a_dry_run_looks_ahead() {
        signups();
        run("SELECT privacy.add_retention_policy('signups', '0', 'at', name => 'ahead')");
        let e = error_of(
            "SELECT * FROM privacy.run_retention('ahead', as_of => now() + interval '2 days')",
        )
        .expect("refused");
        assert_eq!(e.0, "22023");
        assert!(e.1.contains("in the future"), "{}", e.1);
        assert_sqlstate(
            "SELECT * FROM privacy.run_retention(NULL, as_of => now() + interval '1 second')",
            "22023",
        );
        // nothing ran, nothing was recorded
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.retention_runs WHERE policy = 'ahead'"),
            Some(0)
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM public.signups"), Some(4));
        // a dry run may look ahead: the row due tomorrow is counted
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('ahead', as_of => now() + interval '2 days', dry_run => true)"),
            Some(3)
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM public.signups"), Some(4));
        // now itself (the default) and the past are fine
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('ahead', as_of => now() - interval '1 hour')"),
            Some(1)
        );
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('ahead')"),
            Some(1)
        );
    }

    #[pg_test]
    fn a_policy_created_disabled_waits_for_its_author() {
        use crate::retention::run::due_policies;
        signups();
        run("SELECT privacy.add_retention_policy('signups', '0', 'at', name => 'later', enabled => false)");
        run("SELECT privacy.add_retention_policy('signups', '1 year', 'at', name => 'now_on')");
        assert_eq!(
            one::<bool>("SELECT enabled FROM privacy.retention_policies WHERE name = 'later'"),
            Some(false)
        );
        assert_eq!(
            one::<bool>(
                "SELECT (details->>'enabled')::boolean FROM privacy.audit_log
                          WHERE action = 'add_retention_policy' AND object = 'later'"
            ),
            Some(false)
        );
        let now = one::<pgrx::datum::TimestampWithTimeZone>("SELECT now()").unwrap();
        // an enabled policy is due at once, a disabled one never
        let due = fresh(|| due_policies(now)).unwrap();
        assert!(due.contains(&"now_on".to_string()), "{due:?}");
        assert!(!due.contains(&"later".to_string()), "{due:?}");
        // run_retention(NULL) skips it; its author can dry-run it by name
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.run_retention() WHERE policy = 'later'"),
            Some(0)
        );
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('later', dry_run => true)"),
            Some(2)
        );
        run("SELECT privacy.alter_retention_policy('later', enabled => true)");
        assert!(fresh(|| due_policies(now))
            .unwrap()
            .contains(&"later".to_string()));
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('signups', '0', 'at', name => 'x', enabled => NULL)",
            "22004",
        );
    }

    #[pg_test]
    fn alter_database_pauses_the_database_worker() {
        use crate::retention::run::due_policies;
        signups();
        run("SELECT privacy.add_retention_policy('signups', '0', 'at', name => 'paused')");
        let now = one::<pgrx::datum::TimestampWithTimeZone>("SELECT now()").unwrap();
        assert!(!fresh(|| due_policies(now)).unwrap().is_empty());
        run("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET privacy.worker_enabled = off', current_database()); END $$");
        assert!(fresh(crate::retention::run::database_paused).unwrap());
        assert!(fresh(|| due_policies(now)).unwrap().is_empty());
        run("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET privacy.worker_enabled = on', current_database()); END $$");
        assert!(!fresh(crate::retention::run::database_paused).unwrap());
        assert!(fresh(|| due_policies(now))
            .unwrap()
            .contains(&"paused".to_string()));
        run("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET privacy.worker_enabled', current_database()); END $$");
        assert!(!fresh(crate::retention::run::database_paused).unwrap());
    }

    #[pg_test]
    fn tag_column_accepts_the_anonymize_keyword() {
        run("CREATE TABLE public.people (id int PRIMARY KEY, nick text)");
        run("SELECT privacy.define_purpose('service', NULL, 'contract')");
        run("SELECT privacy.tag_column('people', 'nick', ARRAY['service'], NULL, 'ANONYMIZE CONSTANT ''x''')");
        assert_eq!(
            one::<String>("SELECT anonymize FROM privacy.column_tags WHERE column_name = 'nick'")
                .as_deref(),
            Some("CONSTANT 'x'")
        );
        run("SELECT privacy.tag_column('people', 'nick', ARRAY['service'], NULL, 'anonymize email')");
        assert_eq!(
            one::<String>("SELECT anonymize FROM privacy.column_tags WHERE column_name = 'nick'")
                .as_deref(),
            Some("EMAIL")
        );
        let e = error_of("SELECT privacy.tag_column('people', 'nick', ARRAY['service'], NULL, 'ANONYMIZE SHRED')")
            .expect("refused");
        assert_eq!(e.0, "22023");
        assert!(e.1.contains("\"SHRED\""), "{}", e.1);
    }

    #[pg_test]
    fn not_null_boolean_without_a_method_gets_a_working_hint() {
        signups();
        run("SELECT privacy.define_purpose('service', NULL, 'contract')");
        run("SELECT privacy.tag_column('signups', 'ok', ARRAY['service'])");
        let (state, msg, hint) = error_hint_of(
            "SELECT privacy.add_retention_policy('signups', '1 day', 'at', 'anonymize')",
        );
        assert_eq!(state.as_deref(), Some("22023"));
        let msg = msg.unwrap();
        assert_eq!(
            msg,
            "column \"ok\" of table public.signups needs an ANONYMIZE method"
        );
        let hint = hint.unwrap();
        assert!(hint.contains("ANONYMIZE CONSTANT 'false'"), "{hint}");
        // the hint works
        run("SELECT privacy.tag_column('signups', 'ok', ARRAY['service'], NULL, 'CONSTANT ''false''')");
        run("SELECT privacy.add_retention_policy('signups', '1 day', 'at', 'anonymize')");
    }

    // --- dry runs execute the real statements, rolled back

    fn parents_children() {
        run("CREATE TABLE public.parents (id int PRIMARY KEY, closed_at date)");
        run("CREATE TABLE public.kids (id int PRIMARY KEY, parent_id int REFERENCES public.parents ON DELETE NO ACTION)");
        run("INSERT INTO public.parents SELECT g, DATE '2020-01-01' FROM generate_series(1, 5) g");
        run("INSERT INTO public.kids VALUES (1, 3)");
        run("SELECT privacy.add_retention_policy('parents', '1 year', 'closed_at', name => 'parents_fk')");
    }

    #[pg_test]
    fn a_dry_run_reports_the_failure_the_real_run_hits() {
        parents_children();
        // the dry run runs the real DELETE (rolled back): the foreign key
        // check fails as it would in the real run
        let (rows, held) = Spi::get_two::<i64, i64>(
            "SELECT rows, held FROM privacy.run_retention('parents_fk', dry_run => true)",
        )
        .unwrap();
        assert_eq!((rows, held), (None, None));
        let (status, dry, err) = Spi::get_three::<String, bool, String>(
            "SELECT status, dry_run, error FROM privacy.retention_runs WHERE policy = 'parents_fk'",
        )
        .unwrap();
        assert_eq!(status.as_deref(), Some("failed"));
        assert_eq!(dry, Some(true));
        let err = err.unwrap();
        assert!(
            err.contains("foreign key") && err.contains("23503"),
            "{err}"
        );
        // nothing changed, and the policy's own status is untouched
        assert_eq!(one::<i64>("SELECT count(*) FROM public.parents"), Some(5));
        assert_eq!(
            one::<String>("SELECT coalesce(last_status, 'never') FROM privacy.retention_policies WHERE name = 'parents_fk'").as_deref(),
            Some("never")
        );
        // the real run fails the same way
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM privacy.run_retention('parents_fk') WHERE rows IS NULL"
            ),
            Some(1)
        );
        assert_eq!(
            one::<String>(
                "SELECT last_status FROM privacy.retention_policies WHERE name = 'parents_fk'"
            )
            .as_deref(),
            Some("failed")
        );
        // once the reference is gone, dry run and real run agree
        run("DELETE FROM public.kids");
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('parents_fk', dry_run => true)"),
            Some(5)
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM public.parents"), Some(5));
        assert_eq!(
            one::<String>("SELECT status FROM privacy.retention_runs WHERE policy = 'parents_fk' ORDER BY run_id DESC LIMIT 1").as_deref(),
            Some("dry_run")
        );
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('parents_fk')"),
            Some(5)
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM public.parents"), Some(0));
    }

    #[pg_test]
    fn a_dry_run_counts_what_the_owner_triggers_let_through() {
        // a trigger that vetoes some deletions: the dry run sees it
        run("CREATE TABLE public.logs (id int PRIMARY KEY, at date NOT NULL, keep boolean NOT NULL DEFAULT false)");
        run("CREATE INDEX ON public.logs (at)");
        run("INSERT INTO public.logs SELECT g, DATE '2020-01-01', g % 3 = 0 FROM generate_series(1, 30) g");
        run(
            "CREATE FUNCTION public.veto() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN IF OLD.keep THEN RETURN NULL; END IF; RETURN OLD; END $$",
        );
        run("CREATE TRIGGER veto BEFORE DELETE ON public.logs FOR EACH ROW EXECUTE FUNCTION public.veto()");
        run("SELECT privacy.add_retention_policy('logs', '1 year', 'at', name => 'logs_veto')");
        run("SET LOCAL privacy.batch_size = 7");
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('logs_veto', dry_run => true)"),
            Some(20)
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM public.logs"), Some(30));
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('logs_veto')"),
            Some(20)
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM public.logs"), Some(10));
    }
    // --- anonymization cuts the subject link; methods that break a foreign key

    fn rentals() {
        run("SELECT privacy.define_purpose('service', NULL, 'contract')");
        run("SELECT privacy.define_purpose('billing', NULL, 'legal_obligation')");
        run("CREATE TABLE public.cust (id int PRIMARY KEY, email text)");
        run("CREATE TABLE public.rent (id int PRIMARY KEY, cust_id int NOT NULL REFERENCES public.cust,
                 note text, at date NOT NULL)");
        run("INSERT INTO public.cust VALUES (1, 'a@x.org'), (2, 'b@x.org')");
        run(
            "INSERT INTO public.rent VALUES (1, 1, 'n1', '2020-01-01'), (2, 2, 'n2', '2020-01-01')",
        );
        run("SELECT privacy.mark_subject('cust', 'id')");
        run("SELECT privacy.mark_subject('rent', 'cust_id')");
        run("SELECT privacy.tag_column('rent', 'note', ARRAY['service'])");
    }

    #[pg_test]
    fn an_anonymize_policy_that_would_keep_the_subject_link_is_refused() {
        rentals();
        // NOT NULL foreign key to the subject table: neither NULL nor a
        // pseudonym can cut the link
        let (state, msg, hint) = error_hint_of(
            "SELECT privacy.add_retention_policy('rent', '1 year', 'at', 'anonymize')",
        );
        assert_eq!(state.as_deref(), Some("22023"));
        let msg = msg.unwrap();
        assert!(
            msg.contains("would break foreign key") && msg.contains("cust_id"),
            "{msg}"
        );
        let hint = hint.unwrap();
        assert!(hint.contains("DROP NOT NULL"), "{hint}");
        // the hint works: nullable, the link is set to NULL
        run("ALTER TABLE public.rent ALTER COLUMN cust_id DROP NOT NULL");
        run("SELECT privacy.add_retention_policy('rent', '1 year', 'at', 'anonymize', name => 'rent_anon')");
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('rent_anon')"),
            Some(2)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.rent WHERE cust_id IS NULL AND note IS NULL"),
            Some(2)
        );
        // a second run changes nothing
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('rent_anon')"),
            Some(0)
        );
    }

    #[pg_test]
    fn a_not_null_text_subject_is_pseudonymized_by_an_anonymize_policy() {
        run("CREATE TABLE public.ev (id int PRIMARY KEY, who text NOT NULL, at date NOT NULL, x text)");
        run("SELECT privacy.define_purpose('service', NULL, 'contract')");
        run("SELECT privacy.tag_column('ev', 'x', ARRAY['service'])");
        run("SELECT privacy.mark_subject('ev', 'who')");
        run("INSERT INTO public.ev VALUES (1, 'ada', '2020-01-01', 'x')");
        run("LOCK TABLE privacy.key_secrets IN SHARE ROW EXCLUSIVE MODE");
        run("SELECT privacy.create_key('default', '\\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea)");
        run("SELECT privacy.add_retention_policy('ev', '1 year', 'at', 'anonymize', name => 'ev_anon')");
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('ev_anon')"),
            Some(1)
        );
        assert_eq!(
            one::<bool>("SELECT who = privacy.pseudonymize('ada') AND x IS NULL FROM public.ev"),
            Some(true)
        );
    }

    #[pg_test]
    fn a_label_that_would_break_a_foreign_key_is_refused_with_a_working_hint() {
        rentals();
        let (state, msg, hint) = error_hint_of(
            "SECURITY LABEL FOR privacy ON COLUMN public.rent.cust_id IS 'SUBJECT ANONYMIZE PSEUDONYMIZE'",
        );
        assert_eq!(state.as_deref(), Some("22023"));
        let msg = msg.unwrap();
        assert!(msg.contains("foreign key \"rent_cust_id_fkey\""), "{msg}");
        let hint = hint.unwrap();
        assert!(hint.contains("placeholder row"), "{hint}");
        // NULL into the NOT NULL column is refused as well
        assert_sqlstate(
            "SECURITY LABEL FOR privacy ON COLUMN public.rent.cust_id IS 'SUBJECT ANONYMIZE NULL'",
            "22023",
        );
        // a placeholder row's key is accepted and keeps the key valid
        run("INSERT INTO public.cust VALUES (0, NULL)");
        run("SECURITY LABEL FOR privacy ON COLUMN public.rent.cust_id IS 'SUBJECT ANONYMIZE CONSTANT ''0'''");
        run("SELECT privacy.add_retention_policy('rent', '1 year', 'at', 'anonymize', name => 'rent_ph')");
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('rent_ph')"),
            Some(2)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.rent WHERE cust_id = 0"),
            Some(2)
        );
    }

    #[pg_test]
    fn erasure_keeps_legal_obligation_columns_without_a_method() {
        run("SELECT privacy.define_purpose('service', NULL, 'contract')");
        run("SELECT privacy.define_purpose('billing', NULL, 'legal_obligation')");
        run(
            "CREATE TABLE public.pay (id int PRIMARY KEY, cust text, amount numeric NOT NULL,
                 paid boolean NOT NULL, card text)",
        );
        run("INSERT INTO public.pay VALUES (1, 'ada', 9.5, true, '4111'), (2, 'bob', 3, false, '5500')");
        run("SELECT privacy.mark_subject('pay', 'cust')");
        // NOT NULL numeric and boolean, legal purpose only: no method needed
        run("SELECT privacy.tag_column('pay', 'amount', ARRAY['billing'])");
        run("SELECT privacy.tag_column('pay', 'paid', ARRAY['billing'])");
        run("SELECT privacy.tag_column('pay', 'card', ARRAY['service'])");
        assert_eq!(
            one::<String>(
                "SELECT string_agg(action || ':' || rows, ',') FROM privacy.forget_subject('ada')"
            )
            .as_deref(),
            Some("anonymized:1")
        );
        assert_eq!(
            one::<String>("SELECT coalesce(cust, '-') || '|' || amount || '|' || paid || '|' || coalesce(card, '-') FROM public.pay WHERE id = 1").as_deref(),
            Some("-|9.5|true|-")
        );
        assert_eq!(
            one::<String>("SELECT cust || card FROM public.pay WHERE id = 2").as_deref(),
            Some("bob5500")
        );
    }
}
