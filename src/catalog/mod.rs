//! Typed catalog reads: the questions pg_privacy asks PostgreSQL's catalogs
//! (and its own tables) about roles, functions and objects, answered as
//! Rust values. Every query here is schema-qualified and meant to run
//! inside a pinned [`crate::security::Scope`].

use crate::error::PResult;
use crate::security::as_extension_owner;
use pgrx::prelude::*;

/// Whether `role` may execute function `signature` (`None`: no such
/// function).
pub fn role_may_execute(role: pg_sys::Oid, signature: &str) -> PResult<Option<bool>> {
    crate::security::Scope::pinned().run(|| {
        crate::sql::opt::<bool>(
            "SELECT CASE WHEN pg_catalog.to_regprocedure($2) IS NULL THEN NULL
                         ELSE pg_catalog.has_function_privilege($1, pg_catalog.to_regprocedure($2), 'EXECUTE') END",
            &[role.into(), signature.into()],
        )
    })
}

/// Names of the retention policies that name `purpose` (for
/// `drop_purpose`).
pub fn policies_using_purpose(purpose: &str) -> PResult<Vec<String>> {
    as_extension_owner(|| {
        crate::sql::rows(
            "SELECT name FROM privacy.retention_policy_defs WHERE purpose = $1 ORDER BY name",
            &[purpose.into()],
            |r| Ok(r.get::<String>(1)?.unwrap_or_default()),
        )
    })
}

/// The library's version: the catalog it was built for.
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The version of pg_privacy installed in this database
/// (`pg_extension.extversion`), `None` when it is not installed.
pub fn installed_version() -> PResult<Option<String>> {
    crate::sql::opt::<String>(
        "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_privacy'",
        &[],
    )
}

/// 55000 while the installed catalog is not the library's version (the
/// package was upgraded, `ALTER EXTENSION pg_privacy UPDATE` not run yet):
/// the library's SQL would meet tables, columns and functions it does not
/// know. Not checked inside `CREATE/ALTER EXTENSION` (the update script
/// itself runs then, with `extversion` already the target's).
pub fn check_version() -> PResult<()> {
    if unsafe { pg_sys::creating_extension } {
        return Ok(());
    }
    match installed_version()? {
        Some(v) if v == LIBRARY_VERSION => Ok(()),
        Some(v) => Err(version_mismatch(&v)),
        None => Err(crate::error::PrivacyError::object_state(
            "extension \"pg_privacy\" is not installed in this database",
        )
        .with_hint("Run CREATE EXTENSION pg_privacy.")),
    }
}

/// The error of a catalog at version `installed` under this library.
pub fn version_mismatch(installed: &str) -> crate::error::PrivacyError {
    crate::error::PrivacyError::object_state(format!(
        "pg_privacy {installed} is installed in this database but the loaded library is version {LIBRARY_VERSION}"
    ))
    .with_hint("Run ALTER EXTENSION pg_privacy UPDATE.")
}
