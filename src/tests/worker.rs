//! The background worker, seen from inside the pgrx test cluster (which has
//! pg_privacy in shared_preload_libraries). Cluster-level behaviour (crash,
//! standby, discovery, SIGHUP) is tested in tests/integration/worker*.sh.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::one;
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
            Some("sighup")
        );
        assert_eq!(
            one::<String>("SELECT context FROM pg_settings WHERE name = 'privacy.batch_size'")
                .as_deref(),
            Some("superuser")
        );
    }
}
