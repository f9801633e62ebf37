//! The `privacy` security label provider: validates each label when
//! `SECURITY LABEL FOR privacy` runs (syntax via [`grammar`], then the
//! catalog: purposes exist, types fit the methods, one SUBJECT per table)
//! and records tag changes in the audit log.
//!
//! While `check_function_bodies` is off (as `pg_dump` output and `pg_restore`
//! set it), references to purposes and functions are not checked, exactly as
//! PostgreSQL defers function-body checks: a dump restores its labels before
//! the data of `privacy.purposes`.
//!
//! Security: labels are refused on temporary tables (a TEMP-only role could
//! otherwise plant tables every export and erasure would visit). A method
//! that runs something on the table's rows is checked against the **table's
//! owner**, who runs it: EXECUTE on the keyed-hash function of
//! `PSEUDONYMIZE`/`EMAIL`, on the function of `FUNCTION`; a `CONSTANT`
//! literal is checked by casting it as the owner (the column type's input
//! function is the owner's choice).

use super::grammar::{self, Method};
use super::methods::{self, KeyUser};
use super::tags::table_tags;
use crate::audit;
use crate::catalog;
use crate::error::{PResult, PrivacyError};
use crate::security::Scope;
use crate::types::regclass_text;
use pgrx::prelude::*;
use serde_json::json;
use std::ffi::CStr;

pub const PROVIDER: &CStr = c"privacy";

/// Register the `privacy` label provider. Called from `_PG_init`.
pub fn init() {
    unsafe { pg_sys::register_label_provider(PROVIDER.as_ptr(), Some(relabel_hook)) };
}

#[pg_guard]
unsafe extern "C-unwind" fn relabel_hook(
    object: *const pg_sys::ObjectAddress,
    seclabel: *const std::ffi::c_char,
) {
    let obj = unsafe { &*object };
    let label = if seclabel.is_null() {
        None
    } else {
        Some(
            unsafe { CStr::from_ptr(seclabel) }
                .to_string_lossy()
                .into_owned(),
        )
    };
    // SECURITY LABEL runs with the caller's settings: pin them for the
    // hook's catalog queries
    crate::audit::entry("security_label", || check_and_audit(obj, label.as_deref()));
}

fn check_and_audit(obj: &pg_sys::ObjectAddress, label: Option<&str>) -> PResult<()> {
    if obj.classId != pg_sys::RelationRelationId || obj.objectSubId <= 0 {
        return Err(PrivacyError::invalid_parameter(
            "privacy labels can only be placed on table columns",
        )
        .with_hint("Use SECURITY LABEL FOR privacy ON COLUMN table.column IS '…'."));
    }
    crate::security::extension_owner()?;
    let relid = obj.objectId;
    let attnum = obj.objectSubId as i16;
    let missing = || {
        PrivacyError::undefined_column(format!(
            "column number {attnum} of relation {} does not exist",
            u32::from(relid)
        ))
    };
    let rel = catalog::relation(relid)?.ok_or_else(missing)?;
    let column = catalog::column_numbered(relid, attnum)?.ok_or_else(missing)?;
    let (attname, typid, notnull) = (column.name, column.type_oid, column.not_null);
    let object = format!(
        "{}.{}",
        regclass_text(relid),
        spi::quote_identifier(&attname)
    );
    let restoring = restoring_dump();
    let Some(text) = label else {
        return if restoring {
            Ok(())
        } else {
            audit::record("untag_column", &object, json!({}))
        };
    };
    if !matches!(rel.kind.as_str(), "r" | "p") {
        return Err(PrivacyError::invalid_parameter(format!(
            "privacy labels can only be placed on columns of tables, and \"{}\" is not a table",
            regclass_text(relid)
        )));
    }
    // A temporary table lives in one session: a tag on it would make every
    // other session's export and erasure visit (or trip over) it.
    if rel.persistence == "t" {
        return Err(PrivacyError::invalid_parameter(format!(
            "privacy labels cannot be placed on temporary table {}",
            regclass_text(relid)
        ))
        .with_hint("Tag the columns of permanent (or unlogged) tables."));
    }
    let parsed = grammar::parse(text).map_err(|e| {
        PrivacyError::invalid_parameter(e.message).with_hint(
            "A label is: PURPOSE name {, name} | CATEGORY name | SUBJECT | ANONYMIZE method, \
             where method is NULL, PSEUDONYMIZE, EMAIL, TRUNCATE day|month|year, CONSTANT 'literal' or FUNCTION schema.func; \
             or NOT PERSONAL alone.",
        )
    })?;
    let check_refs = !restoring;
    if check_refs {
        for p in &parsed.purposes {
            if !super::purposes::exists(p)? {
                return Err(PrivacyError::invalid_parameter(format!(
                    "invalid privacy label: purpose \"{p}\" does not exist"
                ))
                .with_hint("Define it first with privacy.define_purpose()."));
            }
        }
    }
    let typname = type_name(typid)?;
    if parsed.subject {
        if !is_subject_type(typid) {
            return Err(PrivacyError::invalid_parameter(format!(
                "invalid privacy label: SUBJECT column \"{attname}\" has type {typname}"
            ))
            .with_hint("A SUBJECT column must be text, varchar, integer, bigint or uuid."));
        }
        let others: Vec<String> = table_tags(relid)?
            .into_iter()
            .filter(|t| t.label.subject && t.attnum != attnum)
            .map(|t| t.name)
            .collect();
        if let Some(other) = others.first() {
            return Err(PrivacyError::invalid_parameter(format!(
                "invalid privacy label: table {} already has SUBJECT column \"{other}\"",
                regclass_text(relid)
            ))
            .with_hint("A table has at most one SUBJECT column."));
        }
    }
    if let Some(m) = &parsed.anonymize {
        check_method_fits(m, typid, &typname, &attname, notnull, check_refs, rel.owner)?;
        if check_refs {
            check_owner_may_apply(m, relid, typid, rel.owner)?;
            // a pseudonym or a truncated date in a foreign key column would
            // break the key when anonymization writes it
            super::methods::check_foreign_key(relid, attnum, &attname, m, notnull, parsed.subject)?;
        }
    }
    if restoring {
        return Ok(());
    }
    audit::record(
        "tag_column",
        &object,
        json!({ "label": parsed.to_string() }),
    )
}

/// Whether a superuser is restoring a dump: `check_function_bodies` is off
/// (as `pg_dump` output and `pg_restore` set it). Then references to purposes
/// and functions are not checked, like PostgreSQL's own function-body checks,
/// and no audit entry is written: the restored audit log already holds the
/// entries of the original changes (and would collide with new ones). For any
/// other role the checks and the audit always apply.
fn restoring_dump() -> bool {
    unsafe { !pg_sys::check_function_bodies && pg_sys::superuser() }
}

/// The type's name as `format_type` writes it without a modifier.
fn type_name(typid: pg_sys::Oid) -> PResult<String> {
    Ok(
        crate::sql::opt::<String>("SELECT pg_catalog.format_type($1, NULL)", &[typid.into()])?
            .unwrap_or_default(),
    )
}

pub fn is_subject_type(typid: pg_sys::Oid) -> bool {
    [
        pg_sys::TEXTOID,
        pg_sys::VARCHAROID,
        pg_sys::INT4OID,
        pg_sys::INT8OID,
        pg_sys::UUIDOID,
    ]
    .contains(&typid)
}

fn is_text_type(typid: pg_sys::Oid) -> bool {
    [pg_sys::TEXTOID, pg_sys::VARCHAROID].contains(&typid)
}

/// Types PSEUDONYMIZE knows how to rewrite in place.
pub fn is_pseudonymizable_type(typid: pg_sys::Oid) -> bool {
    [
        pg_sys::TEXTOID,
        pg_sys::VARCHAROID,
        pg_sys::BYTEAOID,
        pg_sys::UUIDOID,
        pg_sys::INT2OID,
        pg_sys::INT4OID,
        pg_sys::INT8OID,
    ]
    .contains(&typid)
}

fn check_method_fits(
    m: &Method,
    typid: pg_sys::Oid,
    typname: &str,
    attname: &str,
    notnull: bool,
    check_refs: bool,
    owner: pg_sys::Oid,
) -> PResult<()> {
    let mismatch = |what: &str, need: &str| {
        Err(PrivacyError::invalid_parameter(format!(
            "invalid privacy label: ANONYMIZE {what} does not fit column \"{attname}\" of type {typname}"
        ))
        .with_hint(need.to_string()))
    };
    match m {
        Method::Null if notnull => mismatch(
            "NULL",
            "The column is NOT NULL: choose PSEUDONYMIZE, CONSTANT or another method.",
        ),
        Method::Null => Ok(()),
        Method::Pseudonymize if !is_pseudonymizable_type(typid) => mismatch(
            "PSEUDONYMIZE",
            "PSEUDONYMIZE applies to text, varchar, bytea, uuid and integer columns.",
        ),
        Method::Pseudonymize => Ok(()),
        Method::Email if !is_text_type(typid) => {
            mismatch("EMAIL", "EMAIL applies to text and varchar columns.")
        }
        Method::Email => Ok(()),
        Method::Truncate(_)
            if ![
                pg_sys::DATEOID,
                pg_sys::TIMESTAMPOID,
                pg_sys::TIMESTAMPTZOID,
            ]
            .contains(&typid) =>
        {
            mismatch(
                "TRUNCATE",
                "TRUNCATE applies to date, timestamp and timestamptz columns.",
            )
        }
        Method::Truncate(_) => Ok(()),
        Method::Constant(lit) => {
            // The column type's input function is the table owner's choice:
            // it runs as the owner, restricted, in a subtransaction (a bad
            // literal is an ERROR, rolled back alone).
            let sql = format!(
                "SELECT CAST({} AS {typname}) IS NOT NULL",
                spi::quote_literal(lit)
            );
            let ok = crate::sql::subxact::run(|| {
                Scope::as_role(owner)
                    .restricted()
                    .run(|| Ok(Spi::get_one::<bool>(&sql)?))
            })
            .is_ok();
            if ok {
                Ok(())
            } else {
                mismatch(
                    &m.to_string(),
                    "The constant must be a valid value of the column's type.",
                )
            }
        }
        Method::Function { schema, name } => {
            if !check_refs {
                return Ok(());
            }
            if catalog::function_exists(schema, name)? {
                Ok(())
            } else {
                Err(PrivacyError::invalid_parameter(format!(
                    "invalid privacy label: anonymization function {}.{} does not exist",
                    spi::quote_identifier(schema),
                    spi::quote_identifier(name)
                ))
                .with_hint(
                    "FUNCTION names a function taking the column's value as first argument.",
                ))
            }
        }
    }
}

/// The table's owner must be able to run what the method runs on its rows:
/// the keyed hash of `PSEUDONYMIZE`/`EMAIL` (else, writing chosen values
/// into the table, it would read back their pseudonyms: a keyed-hash
/// oracle), the function of `FUNCTION` (anonymization runs as the table's
/// owner). 42501 otherwise, with the GRANT to make.
fn check_owner_may_apply(
    m: &Method,
    relid: pg_sys::Oid,
    typid: pg_sys::Oid,
    owner: pg_sys::Oid,
) -> PResult<()> {
    match m {
        Method::Pseudonymize | Method::Email => {
            let Some(f) = methods::hash_function(m, typid) else {
                return Ok(());
            };
            match catalog::role_may_execute(owner, f)? {
                Some(false) => Err(methods::execute_refused(
                    f,
                    owner,
                    KeyUser::TableOwner(relid),
                )),
                _ => Ok(()),
            }
        }
        Method::Function { schema, name } => {
            let may = catalog::role_may_execute_named(owner, schema, name)?;
            if may == Some(false) {
                let role = crate::security::role_name(owner);
                return Err(PrivacyError::insufficient_privilege(format!(
                    "permission denied for function {}.{}: role \"{role}\", owner of table {}, may not execute it",
                    spi::quote_identifier(schema),
                    spi::quote_identifier(name),
                    regclass_text(relid)
                ))
                .with_hint(format!(
                    "ANONYMIZE FUNCTION runs as the table's owner: GRANT EXECUTE ON FUNCTION {}.{} TO {};",
                    spi::quote_identifier(schema),
                    spi::quote_identifier(name),
                    spi::quote_identifier(&role)
                )));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
