//! Subtransactions: run a piece of work so that its failure (a Rust `Err` or
//! a PostgreSQL ERROR) is rolled back on its own and returned as a
//! [`PrivacyError`] (an ERROR through `error::catch`: SQLSTATE, message,
//! detail, hint, context), while the surrounding transaction goes on. Used
//! where one failure must not stop the rest: a retention batch, a filter
//! checked by PostgreSQL's analyzer, a literal cast as a table's owner.
//!
//! A query cancel (57014: `pg_cancel_backend`, `statement_timeout`) is never
//! swallowed: it is re-thrown after the rollback. [`run_rolled_back`] (a
//! retention dry run's batch) and [`rolled_back`] (an erasure's dry run,
//! which re-raises) are always rolled back.

use crate::error::{self, Caught, PResult};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// Run `f` in an internal subtransaction: committed (released) when it
/// returns `Ok`, rolled back when it returns `Err` or raises an ERROR.
pub fn run<R>(f: impl FnOnce() -> PResult<R>) -> PResult<R> {
    match within(|r| matches!(r, Ok(Ok(_))), f) {
        Ok(r) => r,
        Err(c) if c.error.code == PgSqlErrorCode::ERRCODE_QUERY_CANCELED => c.original.rethrow(),
        Err(c) => Err(c.error),
    }
}

/// Like [`run`], but the subtransaction is rolled back whatever happens:
/// what `f` did is undone, what it returned (its counts, its error, an
/// ERROR caught as a [`PrivacyError`](crate::error::PrivacyError)) comes
/// back; a cancel is re-thrown. How a retention dry run executes the real
/// statements of each batch and reports their failures.
pub fn run_rolled_back<R>(f: impl FnOnce() -> PResult<R>) -> PResult<R> {
    match within(|_| false, f) {
        Ok(r) => r,
        Err(c) if c.error.code == PgSqlErrorCode::ERRCODE_QUERY_CANCELED => c.original.rethrow(),
        Err(c) => Err(c.error),
    }
}

/// Run `f` in an internal subtransaction that is always rolled back (a dry
/// run): its result comes back, an ERROR it raises is re-raised unchanged.
pub fn rolled_back<R>(f: impl FnOnce() -> PResult<R>) -> PResult<R> {
    match within(|_| false, f) {
        Ok(r) => r,
        Err(c) => c.original.rethrow(),
    }
}

/// `f` inside a subtransaction, released when `keep` says so of the
/// outcome, rolled back otherwise; the caller's memory context and resource
/// owner restored either way.
fn within<R>(
    keep: impl FnOnce(&Result<PResult<R>, Caught>) -> bool,
    f: impl FnOnce() -> PResult<R>,
) -> Result<PResult<R>, Caught> {
    let (oldcxt, oldowner) = unsafe {
        let cxt = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(cxt);
        (cxt, owner)
    };
    let result = error::catch(f);
    unsafe {
        if keep(&result) {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(oldcxt);
        pg_sys::CurrentResourceOwner = oldowner;
    }
    result
}
