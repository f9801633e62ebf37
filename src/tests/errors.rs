//! Errors: a caught PostgreSQL ERROR keeps its SQLSTATE, message, detail,
//! hint and context; internal kinds are told apart by kind.

#[pgrx::pg_schema]
mod tests {
    use crate::error::{Kind, PrivacyError};
    use crate::tests::{assert_sqlstate, one, run};
    use pgrx::prelude::*;
    use pgrx::PgSqlErrorCode;

    #[pg_test]
    fn a_caught_error_keeps_detail_hint_and_context() {
        run("CREATE FUNCTION public.boom() RETURNS void LANGUAGE plpgsql AS $$
             BEGIN
                 RAISE EXCEPTION 'boom' USING DETAIL = 'the detail', HINT = 'the hint', ERRCODE = '22012';
             END $$");
        let e = crate::sql::subxact::run(|| {
            Spi::run("SELECT public.boom()")?;
            Ok(())
        })
        .unwrap_err();
        assert_eq!(e.kind, Kind::Reported);
        assert_eq!(e.code, PgSqlErrorCode::ERRCODE_DIVISION_BY_ZERO);
        assert_eq!(e.message, "boom");
        assert_eq!(e.detail.as_deref(), Some("the detail"));
        assert_eq!(e.hint.as_deref(), Some("the hint"));
        let context = e.context.expect("context kept");
        assert!(
            context.contains("PL/pgSQL function boom() line 3 at RAISE"),
            "{context}"
        );
        assert!(
            context.contains("SQL statement \"SELECT public.boom()\""),
            "{context}"
        );
        // rolled back alone: the transaction goes on
        assert_eq!(one::<i32>("SELECT 1"), Some(1));
        // a success leaves no stale context for the next error
        crate::sql::subxact::run(|| Ok(Spi::run("SELECT 1")?)).unwrap();
        let e = crate::sql::subxact::run(|| -> crate::error::PResult<()> {
            Err(PrivacyError::invalid_parameter("plain"))
        })
        .unwrap_err();
        assert_eq!(e.context, None);
    }

    #[pg_test]
    fn kinds_are_not_told_by_their_text() {
        let e = PrivacyError::already_running("p");
        assert_eq!(e.kind, Kind::AlreadyRunning);
        assert_eq!(e.code, PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE);
        // same code and text, another kind: not mistaken for it
        let other = PrivacyError::lock_not_available(e.message.clone());
        assert_eq!(other.kind, Kind::Reported);
        assert_eq!(PrivacyError::too_many_rows().kind, Kind::TooManyRows);
    }

    #[pg_test]
    fn no_tagged_column_is_22023_at_creation_and_at_run_time() {
        run("CREATE TABLE public.nt (id int, at timestamptz, note text)");
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('public.nt', '1 day', 'at', 'anonymize')",
            "22023",
        );
        run("SELECT privacy.define_purpose('ads')");
        run("SECURITY LABEL FOR privacy ON COLUMN public.nt.note IS 'PURPOSE ads'");
        run("SELECT privacy.add_retention_policy('public.nt', '1 day', 'at', 'anonymize', name => 'nt')");
        run("SECURITY LABEL FOR privacy ON COLUMN public.nt.note IS NULL");
        // the run fails at its start (a WARNING), recorded with the same SQLSTATE
        run("SELECT * FROM privacy.run_retention('nt')");
        let error = one::<String>(
            "SELECT error FROM privacy.retention_runs WHERE policy = 'nt' ORDER BY run_id DESC LIMIT 1",
        )
        .unwrap_or_default();
        assert!(
            error.starts_with("table public.nt has no tagged column to anonymize")
                && error.ends_with("(SQLSTATE 22023)"),
            "{error}"
        );
    }

    #[pg_test]
    fn admin_functions_refuse_another_catalog_version() {
        // as if the package (library) were newer than the catalog
        run("UPDATE pg_catalog.pg_extension SET extversion = '0.0.9' WHERE extname = 'pg_privacy'");
        let (state, msg) =
            crate::tests::error_of("SELECT privacy.define_purpose('later')").expect("refused");
        assert_eq!(state, "55000");
        assert_eq!(
            msg,
            format!(
                "pg_privacy 0.0.9 is installed in this database but the loaded library is version {}",
                crate::catalog::LIBRARY_VERSION
            )
        );
        assert_eq!(
            crate::catalog::version_mismatch("0.0.9").hint.as_deref(),
            Some("Run ALTER EXTENSION pg_privacy UPDATE.")
        );
        // what needs no admin path still answers (the views)
        assert_eq!(
            one::<bool>("SELECT count(*) >= 0 FROM privacy.column_tags"),
            Some(true)
        );
        run(&format!(
            "UPDATE pg_catalog.pg_extension SET extversion = '{}' WHERE extname = 'pg_privacy'",
            crate::catalog::LIBRARY_VERSION
        ));
        run("SELECT privacy.define_purpose('later')");
    }
}
