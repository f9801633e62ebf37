//! Legal holds: rows no purge, anonymization or erasure may touch.
//!
//! Two kinds, stored in `privacy.legal_holds` (closed to PUBLIC, written
//! only here as the extension owner) and shown by the view `privacy.holds`:
//! - a **filter hold** on one table (`place_hold`): the rows of that table —
//!   and of its partitions, when it is partitioned — for which the filter is
//!   TRUE. The filter is checked like a policy's `row_filter` and may only
//!   use built-in functions (it runs inside other roles' purges);
//! - a **subject hold** (`place_subject_hold`): every row, in every table
//!   with a `SUBJECT` column, whose subject column equals the subject.
//!
//! A hold is active at time T when it has not been released and its `until`
//! (if any) is later than T. Holds are audited; a subject hold is audited
//! with the subject's pseudonym, never in clear.
//!
//! Other modules call [`held_predicate`] (or [`ActiveHolds`] for many tables).

use crate::audit;
use crate::error::{OrRaise, PResult, PrivacyError};
use crate::filters::{self, FilterKind};
use crate::security::{self, as_extension_owner};
use crate::types::{regclass_text, Regclass};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use serde_json::json;

/// A SQL boolean expression over table `relid`'s own columns, TRUE for rows
/// under a hold active at `as_of`: the table's filter holds (and those of
/// its partitioned ancestors) and, when the table has a SUBJECT column, the
/// subject holds. `None` when no hold applies. Safe to splice into SQL that
/// runs under `search_path = pg_catalog, pg_temp` and
/// `standard_conforming_strings = on` (run it inside
/// `filters::with_settings`, as the purge does); never NULL (filters are
/// wrapped in `COALESCE(…, false)`).
pub fn held_predicate(relid: pg_sys::Oid, as_of: TimestampWithTimeZone) -> PResult<Option<String>> {
    let active = ActiveHolds::load(as_of)?;
    let subject_col = if active.subjects.is_empty() {
        None
    } else {
        crate::tags::table_tags(relid)?
            .into_iter()
            .find(|t| t.label.subject)
    };
    active.predicate(relid, subject_col.as_ref())
}

/// The holds active at one time, read once (two queries) for callers that
/// need the predicate of many tables (`forget_subject`).
pub struct ActiveHolds {
    /// (table oid, row filter) of the filter holds
    tables: Vec<(pg_sys::Oid, String)>,
    subjects: Vec<String>,
}

impl ActiveHolds {
    pub fn load(as_of: TimestampWithTimeZone) -> PResult<ActiveHolds> {
        as_extension_owner(|| {
            let tables = crate::sql::rows(
                "SELECT h.table_name::pg_catalog.oid, h.row_filter FROM privacy.legal_holds h
                  WHERE h.released_at IS NULL AND (h.until IS NULL OR h.until > $1)
                    AND h.table_name IS NOT NULL
                  ORDER BY h.id",
                &[as_of.into()],
                |r| {
                    Ok((
                        r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::Oid::INVALID),
                        r.get::<String>(2)?.unwrap_or_default(),
                    ))
                },
            )?;
            let subjects = crate::sql::rows(
                "SELECT DISTINCT h.subject FROM privacy.legal_holds h
                  WHERE h.released_at IS NULL AND (h.until IS NULL OR h.until > $1)
                    AND h.subject IS NOT NULL
                  ORDER BY 1",
                &[as_of.into()],
                |r| Ok(r.get::<String>(1)?.unwrap_or_default()),
            )?;
            Ok(ActiveHolds { tables, subjects })
        })
    }

    /// [`held_predicate`] of table `relid`, whose SUBJECT column (if any) is
    /// `subject_col`.
    pub fn predicate(
        &self,
        relid: pg_sys::Oid,
        subject_col: Option<&crate::tags::ColumnTag>,
    ) -> PResult<Option<String>> {
        // filter holds on the table or on a partitioned ancestor
        let ancestors = if self.tables.iter().any(|(t, _)| *t != relid) {
            crate::sql::rows(
                "SELECT a.relid::pg_catalog.oid FROM pg_catalog.pg_partition_ancestors($1) a",
                &[relid.into()],
                |r| Ok(r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::Oid::INVALID)),
            )?
        } else {
            Vec::new()
        };
        let mut parts: Vec<String> = self
            .tables
            .iter()
            .filter(|(t, _)| *t == relid || ancestors.contains(t))
            .map(|(_, f)| format!("COALESCE({}, false)", filters::spliced(f)))
            .collect();
        if let Some(col) = subject_col {
            if let Some(p) = subject_predicate(&col.name, col.type_oid, &self.subjects) {
                parts.push(p);
            }
        }
        Ok(if parts.is_empty() {
            None
        } else {
            Some(format!("({})", parts.join(" OR ")))
        })
    }
}

/// `col IN (…)` for the subjects that can be values of the column's type.
/// Pure string building (unit tested).
pub fn subject_predicate(column: &str, typid: pg_sys::Oid, subjects: &[String]) -> Option<String> {
    let q = spi::quote_identifier(column);
    let values: Vec<String> =
        if typid == pg_sys::INT2OID || typid == pg_sys::INT4OID || typid == pg_sys::INT8OID {
            let (lo, hi) = if typid == pg_sys::INT2OID {
                (i16::MIN as i64, i16::MAX as i64)
            } else if typid == pg_sys::INT4OID {
                (i32::MIN as i64, i32::MAX as i64)
            } else {
                (i64::MIN, i64::MAX)
            };
            subjects
                .iter()
                .filter_map(|s| s.trim().parse::<i64>().ok())
                .filter(|v| *v >= lo && *v <= hi)
                .map(|v| v.to_string())
                .collect()
        } else if typid == pg_sys::UUIDOID {
            subjects
                .iter()
                .filter_map(|s| canonical_uuid(s))
                .map(|u| format!("CAST('{u}' AS pg_catalog.uuid)"))
                .collect()
        } else {
            subjects.iter().map(spi::quote_literal).collect()
        };
    if values.is_empty() {
        None
    } else {
        Some(format!("({q} IN ({}))", values.join(", ")))
    }
}

/// The canonical text of a uuid written in any of PostgreSQL's input forms
/// (braces, hyphens, upper case), or None when it is not 32 hex digits.
fn canonical_uuid(s: &str) -> Option<String> {
    let hex: String = s
        .trim()
        .chars()
        .filter(|c| !matches!(c, '-' | '{' | '}'))
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

fn need<T>(v: Option<T>, what: &str) -> PResult<T> {
    v.ok_or_else(|| PrivacyError::null_value(what))
}

fn check_reason(reason: &str) -> PResult<String> {
    let r = reason.trim();
    if r.is_empty() {
        return Err(PrivacyError::invalid_parameter("reason must not be empty")
            .with_hint("Say why the data must be kept, e.g. the case or ticket number."));
    }
    Ok(r.to_string())
}

fn check_until(until: Option<TimestampWithTimeZone>) -> PResult<()> {
    if let Some(u) = until {
        let future = Spi::get_one_with_args::<bool>("SELECT $1 > pg_catalog.now()", &[u.into()])?
            .unwrap_or(false);
        if !future {
            return Err(
                PrivacyError::invalid_parameter("until must be in the future")
                    .with_hint("Leave it NULL for a hold without end."),
            );
        }
    }
    Ok(())
}

/// The pseudonym a subject is audited under.
fn subject_pseudonym(subject: &str) -> PResult<String> {
    crate::keys::subject_pseudonym(subject)
}

/// `privacy.place_hold(tbl, row_filter, reason, until)`: hold the rows of
/// `tbl` for which `row_filter` is TRUE. The caller needs SELECT on the table.
#[pg_extern(volatile, parallel_unsafe)]
fn place_hold(
    tbl: Option<Regclass>,
    row_filter: Option<String>,
    reason: Option<String>,
    until: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> i64 {
    (|| -> PResult<i64> {
        let relid = need(tbl, "tbl")?.0;
        let filter = need(row_filter, "row_filter")?;
        let reason = check_reason(&need(reason, "reason")?)?;
        let relkind = crate::sql::opt::<String>(
            "SELECT relkind::text FROM pg_catalog.pg_class WHERE oid = $1",
            &[relid.into()],
        )?
        .ok_or_else(|| {
            PrivacyError::undefined_table(format!(
                "relation with oid {} does not exist",
                u32::from(relid)
            ))
        })?;
        if !matches!(relkind.as_str(), "r" | "p") {
            return Err(PrivacyError::invalid_parameter(format!(
                "\"{}\" is not a table",
                regclass_text(relid)
            )));
        }
        if !security::has_table_privilege(relid, "SELECT")? {
            return Err(PrivacyError::insufficient_privilege(format!(
                "permission denied for table {}",
                regclass_text(relid)
            ))
            .with_hint("Placing a hold needs SELECT on the table."));
        }
        let filter = filters::validate(relid, &filter, FilterKind::Hold)?;
        check_until(until)?;
        let actor = security::current_role_name();
        let id = as_extension_owner(|| {
            Ok(Spi::get_one_with_args::<i64>(
                "INSERT INTO privacy.legal_holds (table_name, row_filter, reason, placed_by, until)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    Regclass(relid).into(),
                    filter.as_str().into(),
                    reason.as_str().into(),
                    actor.as_str().into(),
                    until.into(),
                ],
            )?
            .unwrap_or(0))
        })?;
        audit::record(
            "place_hold",
            &id.to_string(),
            // not the filter: it may name a subject in clear (privacy.holds has it)
            json!({ "table": regclass_text(relid), "reason": reason,
                    "until": until.map(|u| u.to_string()) }),
        )?;
        Ok(id)
    })()
    .or_raise()
}

/// `privacy.place_subject_hold(subject, reason, until)`: hold every row of
/// the subject in every table with a SUBJECT column.
#[pg_extern(volatile, parallel_unsafe)]
fn place_subject_hold(
    subject: Option<String>,
    reason: Option<String>,
    until: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> i64 {
    (|| -> PResult<i64> {
        let subject = need(subject, "subject")?;
        if subject.trim().is_empty() {
            return Err(PrivacyError::invalid_parameter("subject must not be empty"));
        }
        let reason = check_reason(&need(reason, "reason")?)?;
        check_until(until)?;
        let pseudonym = subject_pseudonym(&subject)?;
        let actor = security::current_role_name();
        let id = as_extension_owner(|| {
            Ok(Spi::get_one_with_args::<i64>(
                "INSERT INTO privacy.legal_holds (subject, reason, placed_by, until)
                 VALUES ($1, $2, $3, $4) RETURNING id",
                &[
                    subject.as_str().into(),
                    reason.as_str().into(),
                    actor.as_str().into(),
                    until.into(),
                ],
            )?
            .unwrap_or(0))
        })?;
        audit::record(
            "place_subject_hold",
            &id.to_string(),
            json!({ "subject_pseudonym": pseudonym, "reason": reason,
                    "until": until.map(|u| u.to_string()) }),
        )?;
        Ok(id)
    })()
    .or_raise()
}

/// `privacy.release_hold(id)`: end a hold now (42704 unknown, 55000 already
/// released).
#[pg_extern(volatile, parallel_unsafe)]
fn release_hold(id: Option<i64>) {
    (|| -> PResult<()> {
        let id = need(id, "id")?;
        let actor = security::current_role_name();
        let state = as_extension_owner(|| {
            Spi::connect_mut(|c| {
                let rows = c.update(
                    "SELECT released_at IS NOT NULL FROM privacy.legal_holds WHERE id = $1 FOR UPDATE",
                    Some(1),
                    &[id.into()],
                )?;
                for r in rows {
                    return Ok(r.get::<bool>(1)?);
                }
                Ok(None)
            })
        })?;
        match state {
            None => {
                return Err(PrivacyError::undefined_object(format!(
                    "hold {id} does not exist"
                ))
                .with_hint("See privacy.holds."))
            }
            Some(true) => {
                return Err(PrivacyError::object_state(format!(
                    "hold {id} is already released"
                )))
            }
            Some(false) => {}
        }
        as_extension_owner(|| {
            Spi::run_with_args(
                "UPDATE privacy.legal_holds SET released_at = pg_catalog.now(), released_by = $2 WHERE id = $1",
                &[id.into(), actor.as_str().into()],
            )?;
            Ok(())
        })?;
        audit::record("release_hold", &id.to_string(), json!({}))
    })()
    .or_raise()
}
