//! Retention semantics of issue 13: zero `keep_for`, no future `as_of` for a
//! real run, policies created disabled, the per-database worker pause, the
//! `ANONYMIZE` spelling `tag_column` accepts, the error for a NOT NULL
//! column no default method fits.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::{assert_sqlstate, error_of, one, run};
    use pgrx::prelude::*;

    fn fresh<R>(f: impl FnOnce() -> R) -> R {
        unsafe {
            pg_sys::CommandCounterIncrement();
            pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        }
        let r = f();
        unsafe { pg_sys::PopActiveSnapshot() };
        r
    }

    /// (SQLSTATE, message, hint) of a failing statement.
    pub fn error_hint_of(sql: &str) -> (Option<String>, Option<String>, Option<String>) {
        run(
            r#"CREATE OR REPLACE FUNCTION pg_temp.error_hint_of(stmt text, OUT state text, OUT msg text, OUT hint text)
               LANGUAGE plpgsql AS $f$
               BEGIN
                   EXECUTE stmt;
               EXCEPTION WHEN OTHERS THEN
                   GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                                           hint = PG_EXCEPTION_HINT;
               END
               $f$"#,
        );
        Spi::get_three_with_args::<String, String, String>(
            "SELECT state, msg, hint FROM pg_temp.error_hint_of($1)",
            &[sql.into()],
        )
        .unwrap()
    }

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
        use crate::purge::due_policies;
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
        use crate::purge::due_policies;
        signups();
        run("SELECT privacy.add_retention_policy('signups', '0', 'at', name => 'paused')");
        let now = one::<pgrx::datum::TimestampWithTimeZone>("SELECT now()").unwrap();
        assert!(!fresh(|| due_policies(now)).unwrap().is_empty());
        run("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET privacy.worker_enabled = off', current_database()); END $$");
        assert!(fresh(crate::gucs::database_paused).unwrap());
        assert!(fresh(|| due_policies(now)).unwrap().is_empty());
        run("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET privacy.worker_enabled = on', current_database()); END $$");
        assert!(!fresh(crate::gucs::database_paused).unwrap());
        assert!(fresh(|| due_policies(now))
            .unwrap()
            .contains(&"paused".to_string()));
        run("DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET privacy.worker_enabled', current_database()); END $$");
        assert!(!fresh(crate::gucs::database_paused).unwrap());
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
}
