//! The SQL-facing functions (`#[pg_extern]`), one file per area. Each is
//! thin: it turns SQL arguments into Rust values (a NULL where a value is
//! required is 22004), calls the engine below it inside an audit entry
//! point (`audit::entry`: pinned settings, refusals logged, errors raised
//! with their SQLSTATE) and turns the result back into SQL.
//!
//! The key administration functions (`create_key`, `rotate_key`,
//! `drop_key`) and the keyed-hash C functions live in [`crate::keys`], next
//! to the secrets they guard.

mod holds;
mod objections;
mod purposes;
mod retention;
mod subject;
pub mod tags;

use crate::error::{PResult, PrivacyError};

/// A required argument: 22004 when the caller passed NULL.
fn need<T>(v: Option<T>, what: &str) -> PResult<T> {
    v.ok_or_else(|| PrivacyError::null_value(what))
}
