//! Column tags: the `privacy` security label provider and its SQL wrappers.
//!
//! Tags are stored by PostgreSQL itself in `pg_seclabel`, so they follow
//! column renames, vanish with dropped columns and tables, and are dumped by
//! `pg_dump`. This module registers the provider, validates each label when
//! `SECURITY LABEL FOR privacy` runs (syntax via `labels`, then the catalog:
//! purposes exist, types fit the methods, one SUBJECT per table), records tag
//! changes in the audit log, and offers the wrappers `tag_column`,
//! `mark_subject`, `untag_column` plus the reader other modules use
//! ([`table_tags`], [`subject_tables`]).
//!
//! While `check_function_bodies` is off (as `pg_dump` output and `pg_restore`
//! set it), references to purposes and functions are not checked, exactly as
//! PostgreSQL defers function-body checks: a dump restores its labels before
//! the data of `privacy.purposes`.
//!
//! Security: labels are refused on temporary tables (a TEMP-only role could
//! otherwise plant tables every export and erasure would visit), and every
//! reader of tags ignores temporary relations. A method that runs something
//! on the table's rows is checked against the **table's owner**, who runs
//! it: EXECUTE on the keyed-hash function of `PSEUDONYMIZE`/`EMAIL`, on the
//! function of `FUNCTION`; a `CONSTANT` literal is checked by casting it as
//! the owner (the column type's input function is the owner's choice).

use crate::audit;
use crate::error::{PResult, PrivacyError};
use crate::labels::{self, Label, Method};
use crate::security::Scope;
use crate::types::{regclass_text, Regclass, SqlName};
use pgrx::datum::DatumWithOid;
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

/// A tagged column of a table, with its parsed label.
#[derive(Debug, Clone)]
pub struct ColumnTag {
    pub attnum: i16,
    pub name: String,
    pub type_oid: pg_sys::Oid,
    pub not_null: bool,
    pub label: Label,
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
    let info = column_info(relid, attnum)?;
    let (attname, typid, notnull) = (info.attname.clone(), info.typid, info.notnull);
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
    if !matches!(info.relkind.as_str(), "r" | "p") {
        return Err(PrivacyError::invalid_parameter(format!(
            "privacy labels can only be placed on columns of tables, and \"{}\" is not a table",
            regclass_text(relid)
        )));
    }
    // A temporary table lives in one session: a tag on it would make every
    // other session's export and erasure visit (or trip over) it.
    if info.relpersistence == "t" {
        return Err(PrivacyError::invalid_parameter(format!(
            "privacy labels cannot be placed on temporary table {}",
            regclass_text(relid)
        ))
        .with_hint("Tag the columns of permanent (or unlogged) tables."));
    }
    let parsed = labels::parse(text).map_err(|e| {
        PrivacyError::invalid_parameter(e.message).with_hint(
            "A label is: PURPOSE name {, name} | CATEGORY name | SUBJECT | ANONYMIZE method, \
             where method is NULL, PSEUDONYMIZE, EMAIL, TRUNCATE day|month|year, CONSTANT 'literal' or FUNCTION schema.func; \
             or NOT PERSONAL alone.",
        )
    })?;
    let check_refs = !restoring;
    if check_refs {
        for p in &parsed.purposes {
            if !crate::purposes::exists(p)? {
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
        check_method_fits(
            m, typid, &typname, &attname, notnull, check_refs, info.owner,
        )?;
        if check_refs {
            check_owner_may_apply(m, relid, typid, info.owner)?;
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

/// What the label hook needs to know about the labelled column.
struct ColumnInfo {
    relkind: String,
    relpersistence: String,
    owner: pg_sys::Oid,
    attname: String,
    typid: pg_sys::Oid,
    notnull: bool,
}

fn column_info(relid: pg_sys::Oid, attnum: i16) -> PResult<ColumnInfo> {
    Spi::connect(|c| {
        let rows = c.select(
            "SELECT c.relkind::text, c.relpersistence::text, c.relowner,
                    a.attname::text, a.atttypid, a.attnotnull
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
              WHERE c.oid = $1 AND a.attnum = $2 AND NOT a.attisdropped",
            None,
            &[relid.into(), attnum.into()],
        )?;
        for r in rows {
            return Ok(ColumnInfo {
                relkind: r.get::<String>(1)?.unwrap_or_default(),
                relpersistence: r.get::<String>(2)?.unwrap_or_default(),
                owner: r.get::<pg_sys::Oid>(3)?.unwrap_or(pg_sys::Oid::INVALID),
                attname: r.get::<String>(4)?.unwrap_or_default(),
                typid: r.get::<pg_sys::Oid>(5)?.unwrap_or(pg_sys::Oid::INVALID),
                notnull: r.get::<bool>(6)?.unwrap_or(false),
            });
        }
        Err(PrivacyError::undefined_column(format!(
            "column number {attnum} of relation {} does not exist",
            u32::from(relid)
        )))
    })
}

fn type_name(typid: pg_sys::Oid) -> PResult<String> {
    Ok(Spi::get_one_with_args::<String>(
        "SELECT pg_catalog.format_type($1, NULL)",
        &[typid.into()],
    )?
    .unwrap_or_default())
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
            let ok = crate::subxact::run(|| {
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
            let found = Spi::get_one_with_args::<bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                                  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                                 WHERE n.nspname = $1 AND p.proname = $2 AND p.pronargs >= 1)",
                &[schema.as_str().into(), name.as_str().into()],
            )?
            .unwrap_or(false);
            if found {
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
            let Some(f) = crate::anonymize::hash_function(m, typid) else {
                return Ok(());
            };
            match crate::anonymize::role_may_execute(owner, f)? {
                Some(false) => Err(crate::anonymize::execute_refused(
                    f,
                    owner,
                    crate::anonymize::KeyUser::TableOwner(relid),
                )),
                _ => Ok(()),
            }
        }
        Method::Function { schema, name } => {
            let may = crate::sql::opt::<bool>(
                "SELECT pg_catalog.bool_or(pg_catalog.has_function_privilege($3, p.oid, 'EXECUTE'))
                   FROM pg_catalog.pg_proc p
                   JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                  WHERE n.nspname = $1 AND p.proname = $2 AND p.pronargs >= 1",
                &[schema.as_str().into(), name.as_str().into(), owner.into()],
            )?;
            if may == Some(false) {
                let role = crate::policies::role_name(owner);
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

/// The tagged columns of one table, in column order. Unparsable labels (which
/// only a restore with checks off can leave behind) are skipped.
pub fn table_tags(relid: pg_sys::Oid) -> PResult<Vec<ColumnTag>> {
    Ok(tagged_columns("l.objoid = $1", &[relid.into()])?
        .into_iter()
        .map(|(_, tag)| tag)
        .collect())
}

/// The tagged columns, as (table oid, tag), of the tables `cond` selects
/// (SQL over `l`, the label, and `c`, the table's pg_class row), by table
/// then column number. A label that does not parse is left out.
fn tagged_columns(cond: &str, args: &[DatumWithOid]) -> PResult<Vec<(pg_sys::Oid, ColumnTag)>> {
    Scope::pinned().run(|| tagged_columns_pinned(cond, args))
}

fn tagged_columns_pinned(
    cond: &str,
    args: &[DatumWithOid],
) -> PResult<Vec<(pg_sys::Oid, ColumnTag)>> {
    Spi::connect(|c| {
        let rows = c.select(
            &format!(
                "SELECT l.objoid, a.attnum, a.attname::text, a.atttypid, a.attnotnull, l.label
                   FROM pg_catalog.pg_seclabel l
                   JOIN pg_catalog.pg_class c ON c.oid = l.objoid
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = l.objoid AND a.attnum = l.objsubid
                  WHERE l.provider = 'privacy' AND l.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND l.objsubid > 0 AND NOT a.attisdropped AND c.relpersistence <> 't' AND {cond}
                  ORDER BY l.objoid, a.attnum"
            ),
            None,
            args,
        )?;
        let mut out = Vec::new();
        for r in rows {
            let text: String = r.get(6)?.unwrap_or_default();
            // NOT PERSONAL: reviewed, no personal data, nothing to visit
            if let Ok(label) = labels::parse(&text).map_err(|_| ()).and_then(|l| {
                if l.not_personal {
                    Err(())
                } else {
                    Ok(l)
                }
            }) {
                out.push((
                    r.get(1)?.unwrap_or(pg_sys::Oid::INVALID),
                    ColumnTag {
                        attnum: r.get(2)?.unwrap_or(0),
                        name: r.get(3)?.unwrap_or_default(),
                        type_oid: r.get(4)?.unwrap_or(pg_sys::Oid::INVALID),
                        not_null: r.get(5)?.unwrap_or(false),
                        label,
                    },
                ));
            }
        }
        Ok(out)
    })
}

/// Every table (plain or partitioned) with a SUBJECT column: (table oid,
/// the subject column, all its tagged columns), in oid order, read in one
/// query.
pub fn subject_tables() -> PResult<Vec<(pg_sys::Oid, ColumnTag, Vec<ColumnTag>)>> {
    let rows = tagged_columns("c.relkind IN ('r', 'p')", &[])?;
    let mut out: Vec<(pg_sys::Oid, Option<ColumnTag>, Vec<ColumnTag>)> = Vec::new();
    for (relid, tag) in rows {
        if out.last().map(|t| t.0) != Some(relid) {
            out.push((relid, None, Vec::new()));
        }
        let t = out.last_mut().expect("pushed above");
        if tag.label.subject && t.1.is_none() {
            t.1 = Some(tag.clone());
        }
        t.2.push(tag);
    }
    Ok(out
        .into_iter()
        .filter_map(|(relid, subject, tags)| subject.map(|s| (relid, s, tags)))
        .collect())
}

fn current_label(relid: pg_sys::Oid, attnum: i16) -> PResult<Option<Label>> {
    let text: Option<String> = crate::sql::opt::<String>(
        "SELECT label FROM pg_catalog.pg_seclabel
          WHERE provider = 'privacy' AND classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND objoid = $1 AND objsubid = $2",
        &[relid.into(), attnum.into()],
    )?;
    Ok(text.and_then(|t| labels::parse(&t).ok()))
}

fn attnum_of(relid: pg_sys::Oid, col: &str) -> PResult<i16> {
    crate::sql::opt::<i16>(
        "SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
        &[relid.into(), col.into()],
    )?
    .ok_or_else(|| {
        PrivacyError::undefined_column(format!(
            "column \"{col}\" of relation {} does not exist",
            regclass_text(relid)
        ))
    })
}

/// Apply a label (or remove it with `None`) through `SECURITY LABEL`, so the
/// caller's ownership of the table is checked by PostgreSQL and the hook
/// validates and audits it.
fn set_label(relid: pg_sys::Oid, col: &str, label: Option<&Label>) -> PResult<()> {
    let target = format!(
        "{}.{}",
        crate::types::qualified_name(relid)?,
        spi::quote_identifier(col)
    );
    let value = match label {
        Some(l) => spi::quote_literal(l.to_string()),
        None => "NULL".to_string(),
    };
    Spi::run(&format!(
        "SECURITY LABEL FOR privacy ON COLUMN {target} IS {value}"
    ))?;
    Ok(())
}

fn need<T>(v: Option<T>, what: &str) -> PResult<T> {
    v.ok_or_else(|| PrivacyError::null_value(what))
}

/// `privacy.tag_column(tbl, col, purposes, category, anonymize)`: replaces the
/// column's purposes, category and method; keeps its SUBJECT mark.
#[pg_extern(volatile, parallel_unsafe)]
fn tag_column(
    tbl: Option<Regclass>,
    col: Option<SqlName>,
    purposes: Option<Vec<Option<String>>>,
    category: default!(Option<String>, "NULL"),
    anonymize: default!(Option<String>, "NULL"),
) {
    audit::entry("tag_column", || {
        let relid = need(tbl, "tbl")?.0;
        let col = need(col, "col")?;
        let purposes = need(purposes, "purposes")?;
        let attnum = attnum_of(relid, col.as_str())?;
        let mut label = Label {
            subject: current_label(relid, attnum)?
                .map(|l| l.subject)
                .unwrap_or(false),
            ..Label::default()
        };
        for p in purposes {
            let p = p.ok_or_else(|| PrivacyError::null_value("a purpose"))?;
            let parsed = labels::parse(&format!("PURPOSE {p}")).map_err(|_| {
                PrivacyError::invalid_parameter(format!("invalid purpose name \"{p}\""))
            })?;
            for name in parsed.purposes {
                if label.purposes.contains(&name) {
                    return Err(PrivacyError::invalid_parameter(format!(
                        "purpose \"{name}\" is listed twice"
                    )));
                }
                label.purposes.push(name);
            }
        }
        if let Some(c) = category {
            let parsed = labels::parse(&format!("CATEGORY {c}")).map_err(|_| {
                PrivacyError::invalid_parameter(format!("invalid category name \"{c}\""))
            })?;
            label.category = parsed.category;
        }
        if let Some(a) = anonymize {
            label.anonymize = Some(
                labels::parse_method(&a).map_err(|e| PrivacyError::invalid_parameter(e.message))?,
            );
        }
        if label == Label::default() {
            return Err(PrivacyError::invalid_parameter(
                "tag_column needs at least one purpose, a category or a method",
            )
            .with_hint("Use privacy.untag_column() to remove a tag."));
        }
        set_label(relid, col.as_str(), Some(&label))
    })
}

/// `privacy.mark_subject(tbl, col)`: adds SUBJECT to the column's tag.
#[pg_extern(volatile, parallel_unsafe)]
fn mark_subject(tbl: Option<Regclass>, col: Option<SqlName>) {
    audit::entry("mark_subject", || {
        let relid = need(tbl, "tbl")?.0;
        let col = need(col, "col")?;
        let attnum = attnum_of(relid, col.as_str())?;
        let mut label = current_label(relid, attnum)?.unwrap_or_default();
        label.subject = true;
        label.not_personal = false;
        set_label(relid, col.as_str(), Some(&label))
    })
}

/// `privacy.untag_column(tbl, col)`: removes the column's tag entirely.
#[pg_extern(volatile, parallel_unsafe)]
fn untag_column(tbl: Option<Regclass>, col: Option<SqlName>) {
    audit::entry("untag_column", || {
        let relid = need(tbl, "tbl")?.0;
        let col = need(col, "col")?;
        attnum_of(relid, col.as_str())?;
        set_label(relid, col.as_str(), None)
    })
}

/// The parts of a label, for the `privacy.column_tags` view. A label that
/// does not parse yields NULLs rather than breaking the view.
#[pg_extern(immutable, parallel_safe, strict)]
fn _label_parts(
    label: &str,
) -> TableIterator<
    'static,
    (
        name!(purposes, Option<Vec<String>>),
        name!(category, Option<String>),
        name!(is_subject, Option<bool>),
        name!(anonymize, Option<String>),
    ),
> {
    let row = match labels::parse(label) {
        Ok(l) => (
            Some(l.purposes),
            l.category,
            Some(l.subject),
            l.anonymize.map(|m| m.to_string()),
        ),
        Err(_) => (None, None, None, None),
    };
    TableIterator::once(row)
}
