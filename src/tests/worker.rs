//! The background worker, seen from inside the pgrx test cluster (which has
//! pg_privacy in shared_preload_libraries). Cluster-level behaviour (crash,
//! standby, discovery, SIGHUP) is tested in tests/integration/worker*.sh.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::{fresh, one, run};
    use pgrx::prelude::*;

    #[pg_test]
    fn launcher_runs_when_preloaded() {
        // the launcher starts with the cluster; give it a moment on a slow machine
        let mut seen = 0i64;
        for _ in 0..100 {
            crate::tests::run("SELECT pg_catalog.pg_stat_clear_snapshot()");
            seen = one::<i64>(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_privacy launcher'",
            )
            .unwrap_or(0);
            if seen == 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert_eq!(seen, 1);
    }

    #[pg_test]
    fn worker_settings_have_their_contexts() {
        assert_eq!(
            one::<String>("SELECT context FROM pg_settings WHERE name = 'privacy.naptime'")
                .as_deref(),
            Some("sighup")
        );
        assert_eq!(
            one::<String>("SELECT context FROM pg_settings WHERE name = 'privacy.worker_enabled'")
                .as_deref(),
            Some("superuser")
        );
        assert_eq!(
            one::<String>("SELECT context FROM pg_settings WHERE name = 'privacy.batch_size'")
                .as_deref(),
            Some("superuser")
        );
        assert_eq!(
            one::<String>(
                "SELECT context || ' ' || unit || ' ' || boot_val FROM pg_settings WHERE name = 'privacy.run_timeout'"
            )
            .as_deref(),
            Some("sighup ms 3600000")
        );
    }

    fn last_run(policy: &str) -> Option<String> {
        one::<String>(&format!(
            "SELECT concat_ws(' | ', status, rows_affected, batches, error)
               FROM privacy.retention_runs WHERE policy = '{policy}' ORDER BY run_id DESC LIMIT 1"
        ))
    }

    /// What the worker's exit callback records for the run a SIGTERM (or
    /// the time bound's escalation) interrupted, and what it records when a
    /// run's start was cancelled. The process side (signals, FATAL exit,
    /// DROP DATABASE) is in tests/security/worker_terminate.sh.
    #[pg_test]
    fn worker_exit_records_the_open_run() {
        use crate::error::PrivacyError;
        use crate::retention::run::{record_failed_start, Recorded, Run, TriggeredBy};
        use pgrx::PgSqlErrorCode;
        run("SET LOCAL privacy.batch_size = 2");
        run("CREATE TABLE public.w_exit (id bigint PRIMARY KEY, at timestamptz NOT NULL)");
        run("CREATE INDEX ON public.w_exit (at)");
        run("INSERT INTO public.w_exit SELECT g, '2020-01-01' FROM generate_series(1, 5) g");
        run("SELECT privacy.add_retention_policy('w_exit', '1 day', 'at', name => 'w_exit')");
        let as_of = one::<TimestampWithTimeZone>("SELECT now()").unwrap();

        let mut r = fresh(|| Run::start("w_exit", as_of, false, TriggeredBy::Worker)).unwrap();
        assert!(fresh(|| r.next_batch()).unwrap());
        let progress = r.progress();
        assert_eq!((progress.run_id(), progress.policy()), (r.id(), "w_exit"));
        drop(r);
        let interrupted = PrivacyError::new(
            PgSqlErrorCode::ERRCODE_ADMIN_SHUTDOWN,
            "interrupted: the worker was terminated",
        );
        assert_eq!(
            fresh(|| progress.record_failure_nowait(&interrupted)).unwrap(),
            Recorded::Yes
        );
        assert_eq!(
            last_run("w_exit").as_deref(),
            Some("failed | 2 | 1 | interrupted: the worker was terminated (SQLSTATE 57P01)")
        );
        // the policy backs off like after any failure
        assert_eq!(
            one::<bool>(
                "SELECT failures = 1 AND last_status = 'failed' AND next_run_at > now()
                   FROM privacy.retention_policy_defs WHERE name = 'w_exit'"
            ),
            Some(true)
        );
        // recorded once: a second call (or the start-up recovery) finds it closed
        assert_eq!(
            fresh(|| progress.record_failure_nowait(&interrupted)).unwrap(),
            Recorded::AlreadyClosed
        );
        assert!(fresh(crate::retention::run::close_interrupted_runs)
            .unwrap()
            .is_empty());
        // the session-level policy lock was released: the policy starts again
        let r = fresh(|| Run::start("w_exit", as_of, true, TriggeredBy::Worker)).unwrap();
        assert_eq!(fresh(|| r.finish(None)).unwrap().status, "dry_run");

        // a start whose transaction was cancelled (the time bound) leaves a
        // failed run with nothing done, and the policy backs off further
        let exceeded = PrivacyError::new(
            PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
            "run exceeded privacy.run_timeout (2s); committed batches are kept",
        );
        fresh(|| record_failed_start("w_exit", as_of, &exceeded)).unwrap();
        assert_eq!(
            last_run("w_exit").as_deref(),
            Some(
                "failed | 0 | 0 | run exceeded privacy.run_timeout (2s); committed batches are kept \
                 (SQLSTATE 57014)"
            )
        );
        assert_eq!(
            one::<i32>("SELECT failures FROM privacy.retention_policy_defs WHERE name = 'w_exit'"),
            Some(2)
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM public.w_exit"), Some(3));
    }
}
