//! Audit trail: the only writer of `privacy.audit_log`.
//!
//! Ordinary roles cannot write the log (no INSERT grant, and a trigger refuses
//! UPDATE, DELETE and TRUNCATE to everyone but a superuser). pg_privacy's own
//! functions append to it as the extension owner through [`record`]. The actor
//! is the role the caller acted as, captured before the switch. Entries never
//! hold a subject id in clear: callers pass a pseudonym (see `subject`).

use crate::error::PResult;
use crate::security;
use pgrx::prelude::*;
use pgrx::JsonB;

/// Append one entry to `privacy.audit_log`.
pub fn record(action: &str, object: &str, details: serde_json::Value) -> PResult<()> {
    let actor = security::current_role_name();
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO privacy.audit_log (actor, action, object, details) VALUES ($1, $2, $3, $4)",
            &[actor.as_str().into(), action.into(), object.into(), JsonB(details).into()],
        )?;
        Ok(())
    })
}
