//! Per-column anonymization SQL: for each tagged column, the expression of
//! its anonymized value and a test telling whether the row still needs it.
//!
//! Used by the retention engine for `anonymize` policies and by erasure
//! (`subject`) in tables kept for a legal obligation: [`plan`] gives, for
//! each column, a [`ColumnRewrite`]. `column` is the plain column name;
//! `set_expr` and `needs_change` are SQL expressions over the table's own
//! columns (already quoted, schema-qualified, safe under `search_path =
//! pg_catalog, pg_temp`). An update sets [`ColumnRewrite::set_item`] (`col =
//! CASE WHEN <needs_change> THEN <set_expr> ELSE col END`) and selects rows
//! with `(<needs_change 1> OR <needs_change 2> …)`: then a second run changes
//! no row.
//!
//! Which columns: every column whose tag names at least one purpose or an
//! explicit `ANONYMIZE` method (a column tagged only `SUBJECT` is the link
//! between the subject's rows and is left alone); with `only_purpose`, only
//! columns whose purposes include it. The method is the tag's `ANONYMIZE`, or
//! by default `NULL` for a nullable column and `PSEUDONYMIZE` for a NOT NULL
//! text, varchar, uuid or integer column; any other NOT NULL column without a
//! method is an error (22023).
//!
//! Idempotence, per method ("needs_change" is FALSE once done):
//! - `NULL`: `col IS NOT NULL`.
//! - `CONSTANT 'v'`, `TRUNCATE unit`, `FUNCTION s.f`: `col IS DISTINCT FROM
//!   <new value>` (a `FUNCTION` must be idempotent, f(f(x)) = f(x)).
//!   `TRUNCATE` of a timestamptz truncates in UTC, whatever the TimeZone.
//! - `PSEUDONYMIZE` (key `default`): text and varchar hold the 64 lowercase
//!   hex digits of `privacy.pseudonymize` (cut to n for `varchar(n)`) and are
//!   done when they look like that; uuid holds `privacy.pseudonymize_uuid`
//!   (RFC 9562 version 8) and is done when it is a version 8 uuid; bytea
//!   holds the 32 raw bytes of the hash and is done at 32 bytes; integers
//!   hold `-1 - privacy.pseudonymize_bigint(v)` (reduced modulo the type's
//!   range for smallint and integer) — a negative number — and are done when
//!   negative. Limits: a genuine value that already looks done (a 64-hex
//!   text, a v8 uuid, a 32-byte bytea, a negative integer) is left as is.
//! - `EMAIL` (key `default`): `privacy.pseudonymize_email`, done when the
//!   value starts with 16 lowercase hex digits and `@`.

use crate::error::{PResult, PrivacyError};
use crate::labels::grammar::{Method, TruncateUnit};
use crate::labels::methods::{execute_refused, hash_function, KeyUser};
use crate::labels::tags;
use crate::types::regclass_text;
use pgrx::prelude::*;

/// The key anonymization pseudonymizes with.
pub const KEY: &str = "default";

/// One column's rewrite: see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRewrite {
    pub column: String,
    pub set_expr: String,
    pub needs_change: String,
}

impl ColumnRewrite {
    /// The `SET` item of an `UPDATE`: the new value where the row still
    /// needs it, the old one otherwise (so a second run changes nothing).
    pub fn set_item(&self) -> String {
        let c = spi::quote_identifier(&self.column);
        format!(
            "{c} = CASE WHEN {} THEN {} ELSE {c} END",
            self.needs_change, self.set_expr
        )
    }
}

/// A column to rewrite with the method that applies to it.
#[derive(Debug, Clone)]
pub struct Planned {
    pub method: Method,
    pub type_oid: pg_sys::Oid,
    pub rewrite: ColumnRewrite,
}

/// The rewrites of every tagged column of `relid` (of `only_purpose`), with
/// the method of each column. Type names are
/// rendered under `search_path = pg_catalog, pg_temp`, as the SQL runs.
pub fn plan(relid: pg_sys::Oid, only_purpose: Option<&str>) -> PResult<Vec<Planned>> {
    crate::security::Scope::pinned()
        .qualified_names()
        .run(|| plan_pinned(relid, only_purpose))
}

fn plan_pinned(relid: pg_sys::Oid, only_purpose: Option<&str>) -> PResult<Vec<Planned>> {
    let mut out = Vec::new();
    for tag in tags::table_tags(relid)? {
        let l = &tag.label;
        let selected = match only_purpose {
            Some(p) => l.purposes.iter().any(|x| x == p),
            None => !l.purposes.is_empty() || l.anonymize.is_some(),
        };
        if !selected {
            continue;
        }
        let col = crate::catalog::column_numbered(relid, tag.attnum)?.ok_or_else(|| {
            PrivacyError::undefined_column(format!(
                "column \"{}\" of table {} does not exist",
                tag.name,
                regclass_text(relid)
            ))
        })?;
        let (typmod, typname) = (col.typmod, col.type_name);
        let method = match &l.anonymize {
            Some(m) => m.clone(),
            None if !tag.not_null => Method::Null,
            None if default_pseudonymizable(tag.type_oid) => Method::Pseudonymize,
            None => {
                return Err(PrivacyError::invalid_parameter(format!(
                    "column \"{}\" of table {} is NOT NULL {typname} and has no ANONYMIZE method",
                    tag.name,
                    regclass_text(relid)
                ))
                .with_hint(
                    "Tag it with an explicit method, e.g. ANONYMIZE CONSTANT '…' or ANONYMIZE FUNCTION schema.func.",
                ));
            }
        };
        if matches!(method, Method::Null) && tag.not_null {
            return Err(PrivacyError::invalid_parameter(format!(
                "column \"{}\" of table {} is NOT NULL and cannot be anonymized with NULL",
                tag.name,
                regclass_text(relid)
            ))
            .with_hint("Tag it with another ANONYMIZE method."));
        }
        let rewrite = column_rewrite(&tag.name, &method, tag.type_oid, typmod, &typname)?;
        out.push(Planned {
            method,
            type_oid: tag.type_oid,
            rewrite,
        });
    }
    Ok(out)
}

/// Whether any planned column uses the keyed hash (needs the key).
pub fn needs_key(planned: &[Planned]) -> bool {
    planned
        .iter()
        .any(|p| matches!(p.method, Method::Pseudonymize | Method::Email))
}

fn default_pseudonymizable(typid: pg_sys::Oid) -> bool {
    [
        pg_sys::TEXTOID,
        pg_sys::VARCHAROID,
        pg_sys::UUIDOID,
        pg_sys::INT2OID,
        pg_sys::INT4OID,
        pg_sys::INT8OID,
    ]
    .contains(&typid)
}

fn lit(s: &str) -> String {
    spi::quote_literal(s)
}

/// The SQL of one column's rewrite. Pure string building (unit tested).
pub fn column_rewrite(
    column: &str,
    method: &Method,
    typid: pg_sys::Oid,
    typmod: i32,
    typname: &str,
) -> PResult<ColumnRewrite> {
    let q = spi::quote_identifier(column);
    let key = lit(KEY);
    let distinct = |expr: &str| format!("({q} IS DISTINCT FROM {expr})");
    let mismatch = |m: &str| {
        PrivacyError::invalid_parameter(format!(
            "ANONYMIZE {m} does not fit column \"{column}\" of type {typname}"
        ))
    };
    let (set_expr, needs_change) = match method {
        Method::Null => ("NULL".to_string(), format!("({q} IS NOT NULL)")),
        Method::Constant(v) => {
            let e = format!("CAST({} AS {typname})", lit(v));
            let n = distinct(&e);
            (e, n)
        }
        Method::Truncate(unit) => {
            let u = lit(match unit {
                TruncateUnit::Day => "day",
                TruncateUnit::Month => "month",
                TruncateUnit::Year => "year",
            });
            let e = if typid == pg_sys::DATEOID {
                format!("CAST(pg_catalog.date_trunc({u}, CAST({q} AS pg_catalog.timestamp)) AS pg_catalog.date)")
            } else if typid == pg_sys::TIMESTAMPOID {
                format!("pg_catalog.date_trunc({u}, {q})")
            } else if typid == pg_sys::TIMESTAMPTZOID {
                format!(
                    "pg_catalog.timezone('UTC', pg_catalog.date_trunc({u}, pg_catalog.timezone('UTC', {q})))"
                )
            } else {
                return Err(mismatch("TRUNCATE"));
            };
            let n = distinct(&e);
            (e, n)
        }
        Method::Function { schema, name } => {
            let e = format!(
                "CAST({}.{}({q}) AS {typname})",
                spi::quote_identifier(schema),
                spi::quote_identifier(name)
            );
            let n = distinct(&e);
            (e, n)
        }
        Method::Email => {
            if typid != pg_sys::TEXTOID && typid != pg_sys::VARCHAROID {
                return Err(mismatch("EMAIL"));
            }
            (
                format!(
                    "CAST(privacy.pseudonymize_email(CAST({q} AS pg_catalog.text), {key}) AS {typname})"
                ),
                format!("({q} IS NOT NULL AND {q} !~ '^[0-9a-f]{{16}}@')"),
            )
        }
        Method::Pseudonymize => {
            if typid == pg_sys::TEXTOID || typid == pg_sys::VARCHAROID {
                // varchar(n): typmod is n + 4
                let n = if typid == pg_sys::VARCHAROID && typmod > 4 {
                    ((typmod - 4) as usize).min(64)
                } else {
                    64
                };
                let hash = format!("privacy.pseudonymize(CAST({q} AS pg_catalog.text), {key})");
                let e = if n < 64 {
                    format!("CAST(pg_catalog.left({hash}, {n}) AS {typname})")
                } else {
                    format!("CAST({hash} AS {typname})")
                };
                (
                    e,
                    format!("({q} IS NOT NULL AND {q} !~ '^[0-9a-f]{{{n}}}$')"),
                )
            } else if typid == pg_sys::BYTEAOID {
                (
                    format!("privacy.pseudonymize({q}, {key})"),
                    format!("({q} IS NOT NULL AND pg_catalog.octet_length({q}) <> 32)"),
                )
            } else if typid == pg_sys::UUIDOID {
                (
                    format!("privacy.pseudonymize_uuid({q}, {key})"),
                    format!(
                        "({q} IS NOT NULL AND NOT (pg_catalog.substr(CAST({q} AS pg_catalog.text), 15, 1) = '8' \
                         AND pg_catalog.substr(CAST({q} AS pg_catalog.text), 20, 1) IN ('8', '9', 'a', 'b')))"
                    ),
                )
            } else if typid == pg_sys::INT8OID {
                (
                    format!("(-1 - privacy.pseudonymize_bigint({q}, {key}))"),
                    format!("({q} >= 0)"),
                )
            } else if typid == pg_sys::INT4OID || typid == pg_sys::INT2OID {
                let (modulus, ty) = if typid == pg_sys::INT4OID {
                    (2_147_483_647i64, "pg_catalog.int4")
                } else {
                    (32_767i64, "pg_catalog.int2")
                };
                (
                    format!(
                        "CAST(-1 - privacy.pseudonymize_bigint(CAST({q} AS pg_catalog.int8), {key}) % {modulus} AS {ty})"
                    ),
                    format!("({q} >= 0)"),
                )
            } else {
                return Err(mismatch("PSEUDONYMIZE"));
            }
        }
    };
    Ok(ColumnRewrite {
        column: column.to_string(),
        set_expr,
        needs_change,
    })
}

/// Check that the hash functions `planned` needs can run for `role`: the
/// role may execute them (42501) and key `default` exists (42704). Cheap,
/// done when a policy is created and when a run starts.
pub fn check_key_usable(planned: &[Planned], role: pg_sys::Oid, who: KeyUser) -> PResult<()> {
    check_may_hash(planned, role, who)?;
    check_key_exists(planned)
}

/// Check that `role` may execute the keyed-hash functions `planned` uses
/// (42501 otherwise, with the GRANT to make).
pub fn check_may_hash(planned: &[Planned], role: pg_sys::Oid, who: KeyUser) -> PResult<()> {
    let mut funcs: Vec<&str> = Vec::new();
    for p in planned {
        if let Some(f) = hash_function(&p.method, p.type_oid) {
            if !funcs.contains(&f) {
                funcs.push(f);
            }
        }
    }
    for f in funcs {
        match crate::catalog::role_may_execute(role, f)? {
            None => return Err(
                PrivacyError::object_state(format!("function {f} does not exist")).with_hint(
                    "Pseudonymization needs the pg_privacy key functions; update the extension.",
                ),
            ),
            Some(false) => return Err(execute_refused(f, role, who)),
            Some(true) => {}
        }
    }
    Ok(())
}

/// Check that key `default`, which `planned` hashes with, exists (42704).
pub fn check_key_exists(planned: &[Planned]) -> PResult<()> {
    if !needs_key(planned) {
        return Ok(());
    }
    let key_exists = crate::security::as_extension_owner(|| {
        Ok(Spi::get_one_with_args::<bool>(
            "SELECT pg_catalog.to_regclass('privacy.keys') IS NULL
                 OR EXISTS (SELECT 1 FROM privacy.keys WHERE name = $1)",
            &[KEY.into()],
        )?
        .unwrap_or(false))
    })?;
    if !key_exists {
        return Err(
            PrivacyError::undefined_object(format!("key \"{KEY}\" does not exist"))
                .with_hint("Create it with privacy.create_key(): anonymization pseudonymizes with the key \"default\"."),
        );
    }
    Ok(())
}
