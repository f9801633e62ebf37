//! Audit trail: the only writer of `privacy.audit_log`, and of pg_privacy's
//! lines in the server log.
//!
//! **The table.** Ordinary roles cannot write the log (no INSERT grant, and a
//! trigger refuses UPDATE, DELETE and TRUNCATE to everyone but a superuser).
//! pg_privacy's own functions append to it as the extension owner through
//! [`record`]. The actor is the role the caller acted as, captured before
//! the switch. Entries never hold a subject id in clear: callers pass a
//! pseudonym (see `subject`).
//!
//! **The server log.** An entry of the table goes away with the caller's
//! transaction when it rolls back (`BEGIN; SELECT privacy.export_subject(…);
//! ROLLBACK;` read someone's data all the same). So every export, every
//! erasure (dry run or not) and every attempt pg_privacy refuses (42501) is
//! also written to the server log at once, the way pgaudit does it: one line
//! at level `LOG_SERVER_ONLY` (never sent to the client), without the
//! statement or context (`errhidestmt`, `errhidecontext`: the statement holds
//! the subject id in clear), made of the fixed prefix [`LOG_PREFIX`] and one
//! JSON object:
//!
//! ```text
//! pg_privacy audit: {"action":"export_subject","actor":"backoffice","session_user":"backoffice",
//!                    "subject_pseudonym":"9f0c…","outcome":"ok","sqlstate":"00000",…}
//! ```
//! `outcome` is `ok`, `refused` (SQLSTATE 42501) or `failed` (any other
//! error, with its SQLSTATE). The subject is only ever there as its
//! pseudonym. Like every server log line, it is written only when
//! `log_min_messages` is `log` or more verbose (the default, `warning`,
//! writes it: `LOG` ranks above `ERROR` for the server log).

use crate::error::{PResult, PrivacyError};
use crate::security;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};
use std::ffi::{c_char, c_int, CString};

/// Prefix of every audit line pg_privacy writes to the server log.
pub const LOG_PREFIX: &str = "pg_privacy audit: ";

/// Append one entry to `privacy.audit_log`.
pub fn record(action: &str, object: &str, details: Value) -> PResult<()> {
    let actor = security::current_role_name();
    security::as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO privacy.audit_log (actor, action, object, details) VALUES ($1, $2, $3, $4)",
            &[actor.as_str().into(), action.into(), object.into(), JsonB(details).into()],
        )?;
        Ok(())
    })
}

/// How an audited call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Refused,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }

    fn of(code: pgrx::PgSqlErrorCode) -> Outcome {
        if code == pgrx::PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE {
            Outcome::Refused
        } else {
            Outcome::Failed
        }
    }
}

/// The JSON object of one server log line (pure: unit tested).
pub fn log_line(
    action: &str,
    actor: &str,
    session_user: &str,
    subject_pseudonym: Option<&str>,
    outcome: Outcome,
    sqlstate: &str,
    extra: &Value,
) -> String {
    let mut line = json!({
        "action": action,
        "actor": actor,
        "session_user": session_user,
        "outcome": outcome.as_str(),
        "sqlstate": sqlstate,
    });
    if let Some(p) = subject_pseudonym {
        line["subject_pseudonym"] = json!(p);
    }
    if let (Some(obj), Some(more)) = (line.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            obj.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    format!("{LOG_PREFIX}{line}")
}

/// Who calls: read before the call runs, so that writing the line after an
/// ERROR needs no catalog access.
struct Who {
    actor: String,
    session_user: String,
}

impl Who {
    fn now() -> Who {
        Who {
            actor: security::current_role_name(),
            session_user: security::session_role_name(),
        }
    }

    /// Write one audit line to the server log (see the module documentation).
    fn log(
        &self,
        action: &str,
        subject_pseudonym: Option<&str>,
        outcome: Outcome,
        sqlstate: &str,
        extra: &Value,
    ) {
        let line = log_line(
            action,
            &self.actor,
            &self.session_user,
            subject_pseudonym,
            outcome,
            sqlstate,
            extra,
        );
        emit(&line);
    }
}

/// `ereport(LOG_SERVER_ONLY, errmsg_internal("%s", line), errhidestmt(true),
/// errhidecontext(true))`. pgrx's report API has no errhidestmt, hence the
/// direct calls (declared here as pgrx itself declares them).
fn emit(line: &str) {
    #[cfg_attr(target_os = "windows", link(name = "postgres"))]
    unsafe extern "C-unwind" {
        fn errstart(elevel: c_int, domain: *const c_char) -> bool;
        fn errfinish(filename: *const c_char, lineno: c_int, funcname: *const c_char);
        fn errcode(sqlerrcode: c_int) -> c_int;
        fn errmsg_internal(fmt: *const c_char, ...) -> c_int;
        fn errhidestmt(hide_stmt: bool) -> c_int;
        fn errhidecontext(hide_ctx: bool) -> c_int;
    }
    let text = CString::new(line.replace('\0', "")).expect("no NUL left");
    unsafe {
        if errstart(pg_sys::LOG_SERVER_ONLY as c_int, std::ptr::null()) {
            errcode(pgrx::PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION as c_int);
            errmsg_internal(c"%s".as_ptr(), text.as_ptr());
            errhidestmt(true);
            errhidecontext(true);
            errfinish(
                c"audit.rs".as_ptr(),
                line!() as c_int,
                c"pg_privacy_audit".as_ptr(),
            );
        }
    }
}

/// The SQLSTATE of a caught error, and its five characters.
fn caught_sqlstate(e: &CaughtError) -> (pgrx::PgSqlErrorCode, String) {
    let code = crate::error::caught_code(e);
    (code, crate::error::sqlstate_text(code))
}

/// Run `f`, an export or erasure of the subject whose pseudonym is given,
/// and write its outcome to the server log whatever it is: `Ok`, `Err`, or
/// an ERROR (re-raised after the line is written).
pub fn logged<R>(
    action: &str,
    subject_pseudonym: &str,
    extra: &Value,
    f: impl FnOnce() -> PResult<R>,
) -> PResult<R> {
    let who = Who::now();
    let f = std::panic::AssertUnwindSafe(f);
    let result = PgTryBuilder::new(f)
        .catch_others(|e| {
            let (code, state) = caught_sqlstate(&e);
            who.log(
                action,
                Some(subject_pseudonym),
                Outcome::of(code),
                &state,
                extra,
            );
            e.rethrow()
        })
        .execute();
    match &result {
        Ok(_) => who.log(action, Some(subject_pseudonym), Outcome::Ok, "00000", extra),
        Err(e) => who.log(
            action,
            Some(subject_pseudonym),
            Outcome::of(e.code),
            &crate::error::sqlstate_text(e.code),
            extra,
        ),
    }
    result
}

/// Run `f`, any SQL-facing function, and write a server log line when it
/// is refused (42501), as a Rust error or a PostgreSQL ERROR.
pub fn refusals_logged<R>(action: &str, f: impl FnOnce() -> PResult<R>) -> PResult<R> {
    let who = Who::now();
    let f = std::panic::AssertUnwindSafe(f);
    let result = PgTryBuilder::new(f)
        .catch_others(|e| {
            let (code, state) = caught_sqlstate(&e);
            if Outcome::of(code) == Outcome::Refused {
                who.log(action, None, Outcome::Refused, &state, &json!({}));
            }
            e.rethrow()
        })
        .execute();
    if let Err(e) = &result {
        if Outcome::of(e.code) == Outcome::Refused {
            who.log(
                action,
                None,
                Outcome::Refused,
                &crate::error::sqlstate_text(e.code),
                &json!({ "message": e.message }),
            );
        }
    }
    result
}

/// Write a server log line for `e` when it is a refusal (42501) that the
/// engine records instead of raising (a retention run that fails its
/// privilege check).
pub fn log_refusal(action: &str, e: &PrivacyError, extra: &Value) {
    if Outcome::of(e.code) == Outcome::Refused {
        let mut extra = extra.clone();
        if let Some(obj) = extra.as_object_mut() {
            obj.insert("message".into(), json!(e.message));
        }
        Who::now().log(
            action,
            None,
            Outcome::Refused,
            &crate::error::sqlstate_text(e.code),
            &extra,
        );
    }
}

/// Entry point of every SQL-facing function that runs SQL: pinned settings
/// for everything inside ([`security::Scope::pinned`]), the installed
/// catalog checked to be the library's version
/// ([`crate::catalog::check_version`]), refusals written to the server log,
/// the error raised as a PostgreSQL ERROR.
pub fn entry<R>(action: &str, f: impl FnOnce() -> PResult<R>) -> R {
    use crate::error::OrRaise;
    security::Scope::pinned()
        .run(|| {
            crate::catalog::check_version()?;
            refusals_logged(action, f)
        })
        .or_raise()
}

/// The same without refusal logging, for the functions that log every
/// outcome themselves ([`logged`]).
pub fn entry_quiet<R>(f: impl FnOnce() -> PResult<R>) -> R {
    use crate::error::OrRaise;
    security::Scope::pinned()
        .run(|| {
            crate::catalog::check_version()?;
            f()
        })
        .or_raise()
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn log_lines_are_one_json_object_after_the_prefix() {
        let l = log_line(
            "export_subject",
            "clerk \"x\"",
            "clerk",
            Some("abcd"),
            Outcome::Refused,
            "42501",
            &json!({ "dry_run": true, "outcome": "ignored" }),
        );
        let body = l.strip_prefix(LOG_PREFIX).unwrap();
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["action"], "export_subject");
        assert_eq!(v["actor"], "clerk \"x\"");
        assert_eq!(v["outcome"], "refused");
        assert_eq!(v["sqlstate"], "42501");
        assert_eq!(v["subject_pseudonym"], "abcd");
        assert_eq!(v["dry_run"], true);
        assert!(!l.contains('\n'));
    }
}
