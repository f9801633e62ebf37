//! Errors: one type carrying a SQLSTATE, one constructor per kind of failure.
//!
//! Every user-facing failure in pg_privacy is built here and raised with
//! [`PrivacyError::raise`] (or [`OrRaise::or_raise`]) at the SQL boundary, so
//! messages follow PostgreSQL style (lowercase, no trailing period) and always
//! carry a proper SQLSTATE instead of a bare Rust panic.
//!
//! Code that reacts to an error matches its [`Kind`] (or its SQLSTATE),
//! never its message text. A PostgreSQL ERROR caught inside pg_privacy
//! (`sql::subxact`, the worker's transactions) becomes a `PrivacyError`
//! through one conversion, [`catch`], which keeps its SQLSTATE, message,
//! detail, hint and context.

use pgrx::pg_sys::panic::{CaughtError, ErrorReport, ErrorReportWithLevel};
use pgrx::prelude::*;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use std::cell::RefCell;
use std::fmt;

/// What an error means to pg_privacy's own code, where it must react to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// reported to the caller as it is
    Reported,
    /// another session runs the retention policy now (55P03): nothing was
    /// recorded
    AlreadyRunning,
    /// a ctid window changed more rows than a batch: rolled back and
    /// narrowed by the engine, never reported
    TooManyRows,
}

#[derive(Debug, Clone)]
pub struct PrivacyError {
    pub kind: Kind,
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// the CONTEXT lines of a caught PostgreSQL error (which statement,
    /// trigger or function raised it)
    pub context: Option<String>,
}

pub type PResult<T> = Result<T, PrivacyError>;

impl PrivacyError {
    pub fn new(code: PgSqlErrorCode, message: impl Into<String>) -> Self {
        PrivacyError {
            kind: Kind::Reported,
            code,
            message: message.into(),
            detail: None,
            hint: None,
            context: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// 22023: a parameter (label, action, filter, legal basis…) is invalid.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, message)
    }

    /// 22004: NULL where a value is required.
    pub fn null_value(what: &str) -> Self {
        Self::new(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{what} must not be null"),
        )
    }

    /// 42704: a named object (purpose, key, policy, hold) does not exist.
    pub fn undefined_object(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT, message)
    }

    /// 42P01: unknown table.
    pub fn undefined_table(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE, message)
    }

    /// 42703: unknown column.
    pub fn undefined_column(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN, message)
    }

    /// 42804: a column has the wrong type for its role.
    pub fn datatype_mismatch(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH, message)
    }

    /// 42710: an object of that name already exists.
    pub fn duplicate_object(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT, message)
    }

    /// 2BP01: an object cannot be dropped because others depend on it.
    pub fn dependent_objects(message: impl Into<String>) -> Self {
        Self::new(
            PgSqlErrorCode::ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST,
            message,
        )
    }

    /// 42501: the caller lacks a privilege.
    pub fn insufficient_privilege(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, message)
    }

    /// 55000: the object is in a state that forbids the operation.
    pub fn object_state(message: impl Into<String>) -> Self {
        Self::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            message,
        )
    }

    /// 55P03: a row lock could not be obtained in time.
    pub fn lock_not_available(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE, message)
    }

    /// 55P03 [`Kind::AlreadyRunning`]: another session runs the policy.
    pub fn already_running(policy: &str) -> Self {
        PrivacyError {
            kind: Kind::AlreadyRunning,
            ..Self::lock_not_available(format!("retention policy \"{policy}\" is already running"))
                .with_hint("Another session runs it now; try again when it is done.")
        }
    }

    /// 54000 [`Kind::TooManyRows`]: a ctid window changed more rows than
    /// `privacy.batch_size` (rolled back; the engine narrows the window).
    pub fn too_many_rows() -> Self {
        PrivacyError {
            kind: Kind::TooManyRows,
            ..Self::new(
                PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                "retention window holds more rows than privacy.batch_size",
            )
        }
    }

    /// XX000: a bug in pg_privacy, never a user's fault.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, message)
    }

    /// Raise this error as a PostgreSQL ERROR. Never returns.
    pub fn raise(self) -> ! {
        let mut report = ErrorReport::new(self.code, self.message, "pg_privacy");
        if let Some(d) = self.detail {
            report = report.set_detail(d);
        }
        if let Some(h) = self.hint {
            report = report.set_hint(h);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR returned control")
    }
}

/// The error a caught PostgreSQL ERROR (or Rust panic) reported, with the
/// context [`catch`] captured.
fn from_report(r: &ErrorReportWithLevel, context: Option<String>) -> PrivacyError {
    let mut e = PrivacyError::new(r.sql_error_code(), r.message().to_string());
    e.detail = r.detail().map(str::to_string);
    e.hint = r.hint().map(str::to_string);
    e.context = context;
    e
}

/// The SQLSTATE of a caught error (a Rust panic: XX000).
pub fn caught_code(e: &CaughtError) -> PgSqlErrorCode {
    match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r.sql_error_code(),
        CaughtError::RustPanic { ereport, .. } => ereport.sql_error_code(),
    }
}

/// An ERROR caught by [`catch`]: as a `PrivacyError`, and as caught (to be
/// re-raised unchanged, e.g. a query cancel).
pub struct Caught {
    pub error: PrivacyError,
    pub original: CaughtError,
}

thread_local! {
    /// CONTEXT of the last ERROR raised under [`catch`], captured by
    /// [`capture_context`] (pgrx's caught error does not carry it).
    static LAST_CONTEXT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// An error context callback: PostgreSQL calls it while it builds an error
/// report, after the callbacks pushed later (SPI's "SQL statement", PL/pgSQL's
/// "function … line …"), so the report's context is complete by then. It
/// only copies that text (for ERRORs); it adds none.
unsafe extern "C-unwind" fn capture_context(_arg: *mut std::ffi::c_void) {
    // runs inside errfinish(), in ErrorContext, which CopyErrorData refuses;
    // the copy is freed below
    let old = pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
    let data = pg_sys::CopyErrorData();
    pg_sys::MemoryContextSwitchTo(old);
    if data.is_null() {
        return;
    }
    let d = &*data;
    if d.elevel >= PgLogLevel::ERROR as i32 && !d.context.is_null() {
        let text = std::ffi::CStr::from_ptr(d.context)
            .to_string_lossy()
            .into_owned();
        LAST_CONTEXT.with(|c| *c.borrow_mut() = Some(text));
    }
    pg_sys::FreeErrorData(data);
}

/// Run `f`, catching a PostgreSQL ERROR (or Rust panic) it raises as a
/// [`Caught`]: SQLSTATE, message, detail, hint and context. Nothing is
/// cleaned up: the caller rolls back its subtransaction or aborts its
/// transaction (or re-raises the original).
pub fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Caught> {
    LAST_CONTEXT.with(|c| c.borrow_mut().take());
    let mut callback = pg_sys::ErrorContextCallback {
        previous: unsafe { pg_sys::error_context_stack },
        callback: Some(capture_context),
        arg: std::ptr::null_mut(),
    };
    unsafe { pg_sys::error_context_stack = &mut callback };
    let previous = callback.previous;
    let f = std::panic::AssertUnwindSafe(f);
    let result = PgTryBuilder::new(move || Ok(f()))
        .catch_others(|e| {
            let context = LAST_CONTEXT.with(|c| c.borrow_mut().take());
            let error = match &e {
                CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => {
                    from_report(r, context)
                }
                CaughtError::RustPanic { ereport, .. } => PrivacyError::internal(format!(
                    "pg_privacy internal error: {}",
                    ereport.message()
                )),
            };
            Err(Caught { error, original: e })
        })
        .execute();
    // the stack is reset by the error (pgrx restores the caller's), and
    // restored here on success
    unsafe { pg_sys::error_context_stack = previous };
    result
}

impl fmt::Display for PrivacyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PrivacyError {}

impl From<pgrx::spi::Error> for PrivacyError {
    fn from(e: pgrx::spi::Error) -> Self {
        PrivacyError::internal(format!("pg_privacy internal query failed: {e}"))
    }
}

/// Turn a `PResult` into its value or a PostgreSQL ERROR.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for PResult<T> {
    fn or_raise(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => e.raise(),
        }
    }
}

/// The five-character SQLSTATE of an error code.
pub fn sqlstate_text(code: PgSqlErrorCode) -> String {
    let v = code as isize as i64;
    (0..5)
        .map(|i| (((v >> (6 * i)) & 0x3F) as u8 + b'0') as char)
        .collect()
}

/// The text recorded for an error: message, detail, SQLSTATE.
pub fn error_text(e: &PrivacyError) -> String {
    let mut s = e.message.clone();
    if let Some(d) = &e.detail {
        s.push_str(": ");
        s.push_str(d.trim_end_matches('.'));
    }
    format!("{s} (SQLSTATE {})", sqlstate_text(e.code))
}
