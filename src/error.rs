//! Errors: one type carrying a SQLSTATE, one constructor per kind of failure.
//!
//! Every user-facing failure in pg_privacy is built here and raised with
//! [`PrivacyError::raise`] (or [`OrRaise::or_raise`]) at the SQL boundary, so
//! messages follow PostgreSQL style (lowercase, no trailing period) and always
//! carry a proper SQLSTATE instead of a bare Rust panic.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use std::fmt;

#[derive(Debug, Clone)]
pub struct PrivacyError {
    pub code: PgSqlErrorCode,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

pub type PResult<T> = Result<T, PrivacyError>;

impl PrivacyError {
    pub fn new(code: PgSqlErrorCode, message: impl Into<String>) -> Self {
        PrivacyError {
            code,
            message: message.into(),
            detail: None,
            hint: None,
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
