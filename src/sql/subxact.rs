//! Subtransactions: run a piece of work so that its failure (a Rust `Err` or
//! a PostgreSQL ERROR) is rolled back on its own and returned as a
//! [`PrivacyError`] carrying the original SQLSTATE, message, detail and hint,
//! while the surrounding transaction goes on. Used where one failure must not
//! stop the rest: one policy of `run_retention(NULL)`, a filter checked by
//! PostgreSQL's analyzer.
//!
//! A query cancel (57014: `pg_cancel_backend`, `statement_timeout`) is never
//! swallowed: it is re-thrown after the rollback.

use crate::error::{PResult, PrivacyError};
use pgrx::pg_sys::panic::{CaughtError, ErrorReportWithLevel};
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

fn from_report(r: &ErrorReportWithLevel) -> PrivacyError {
    let mut e = PrivacyError::new(r.sql_error_code(), r.message().to_string());
    if let Some(d) = r.detail() {
        e = e.with_detail(d.to_string());
    }
    if let Some(h) = r.hint() {
        e = e.with_hint(h.to_string());
    }
    e
}

/// Run `f` in an internal subtransaction: committed (released) when it
/// returns `Ok`, rolled back when it returns `Err` or raises an ERROR.
pub fn run<R>(f: impl FnOnce() -> PResult<R>) -> PResult<R> {
    let (oldcxt, oldowner) = unsafe {
        let cxt = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(cxt);
        (cxt, owner)
    };
    let f = std::panic::AssertUnwindSafe(move || f().map_err(|e| (e, None)));
    let result: Result<R, (PrivacyError, Option<CaughtError>)> = PgTryBuilder::new(f)
        .catch_others(|e| {
            let err = match &e {
                CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => from_report(r),
                CaughtError::RustPanic { ereport, .. } => PrivacyError::internal(format!(
                    "pg_privacy internal error: {}",
                    ereport.message()
                )),
            };
            if err.code == PgSqlErrorCode::ERRCODE_QUERY_CANCELED {
                Err((err, Some(e)))
            } else {
                Err((err, None))
            }
        })
        .execute();
    unsafe {
        if result.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(oldcxt);
        pg_sys::CurrentResourceOwner = oldowner;
    }
    match result {
        Ok(v) => Ok(v),
        Err((_, Some(cancel))) => cancel.rethrow(),
        Err((e, None)) => Err(e),
    }
}
