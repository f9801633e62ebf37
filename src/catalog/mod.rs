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
