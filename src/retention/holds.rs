//! Legal holds: rows no purge, anonymization or erasure may touch.
//!
//! Two kinds, stored in `privacy.legal_holds` (closed to PUBLIC, written
//! only here as the extension owner) and shown by the view `privacy.holds`:
//! - a **filter hold** on one table (`place_hold`): the rows of that table —
//!   and of its partitions, when it is partitioned — for which the filter is
//!   TRUE. The filter is checked like a policy's `row_filter` (the
//!   allow-list of `filters`) when it is placed, and again every time it is
//!   used: it runs inside other roles' purges and erasures, as the table's
//!   owner;
//! - a **subject hold** (`place_subject_hold`): every row, in every table
//!   with a `SUBJECT` column, whose subject column equals the subject. The
//!   held subject ids reach the generated SQL as bound array parameters
//!   (`col = ANY($n)`), never as literals: no function or trigger running
//!   in the statement can read them from its text.
//!
//! A hold is active at time T when it has not been released and its `until`
//! (if any) is later than T. Holds are audited; a subject hold is audited
//! with the subject's pseudonym, never in clear.
//!
//! Other modules read [`ActiveHolds`] once and ask it for the holds of each
//! table ([`ActiveHolds::for_table`]), then splice
//! [`TableHolds::predicate`] into their statements.

use crate::audit;
use crate::error::{PResult, PrivacyError};
use crate::retention::filters::{self, FilterKind};
use crate::security::{self, as_extension_owner};
use crate::sql::Params;
use crate::types::{regclass_text, Regclass};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use serde_json::json;

/// The holds active at one time, read once (two queries) for callers that
/// need the holds of many tables.
pub struct ActiveHolds {
    /// (hold id, table oid, row filter) of the filter holds
    tables: Vec<(i64, pg_sys::Oid, String)>,
    subjects: Vec<String>,
}

/// The holds that apply to one table.
#[derive(Clone, Debug, Default)]
pub struct TableHolds {
    /// validated filters over the table's own columns
    filters: Vec<String>,
    /// (subject column, its type, the held subjects)
    subjects: Option<(String, pg_sys::Oid, Vec<String>)>,
}

impl ActiveHolds {
    pub fn load(as_of: TimestampWithTimeZone) -> PResult<ActiveHolds> {
        as_extension_owner(|| {
            let tables = crate::sql::rows(
                "SELECT h.id, h.table_name::pg_catalog.oid, h.row_filter FROM privacy.legal_holds h
                  WHERE h.released_at IS NULL AND (h.until IS NULL OR h.until > $1)
                    AND h.table_name IS NOT NULL
                  ORDER BY h.id",
                &[as_of.into()],
                |r| {
                    Ok((
                        r.get::<i64>(1)?.unwrap_or(0),
                        r.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::Oid::INVALID),
                        r.get::<String>(3)?.unwrap_or_default(),
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

    /// Whether any subject hold is active (then the SUBJECT column of a
    /// table matters).
    pub fn has_subject_holds(&self) -> bool {
        !self.subjects.is_empty()
    }

    /// The holds of table `relid`, whose SUBJECT column (if any) is
    /// `subject_col`: its filter holds and those of its partitioned
    /// ancestors, each validated again (as the current role: call it as the
    /// role the statements run as), and the subject holds. A filter that no
    /// longer passes is an error (22023): a hold is never silently ignored.
    pub fn for_table(
        &self,
        relid: pg_sys::Oid,
        subject_col: Option<&crate::labels::tags::ColumnTag>,
    ) -> PResult<TableHolds> {
        let ancestors = if self.tables.iter().any(|(_, t, _)| *t != relid) {
            crate::sql::rows(
                "SELECT a.relid::pg_catalog.oid FROM pg_catalog.pg_partition_ancestors($1) a",
                &[relid.into()],
                |r| Ok(r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::Oid::INVALID)),
            )?
        } else {
            Vec::new()
        };
        let mut filters_of = Vec::new();
        for (id, table, filter) in &self.tables {
            if *table != relid && !ancestors.contains(table) {
                continue;
            }
            let f = filters::validate(*table, filter, FilterKind::Hold).map_err(|e| {
                PrivacyError::invalid_parameter(format!(
                    "legal hold {id} on table {} has a filter that is not allowed any more: {}",
                    regclass_text(*table),
                    e.message
                ))
                .with_hint(
                    "Release the hold and place it again with an allowed filter; until then the table's rows are neither purged nor erased.",
                )
            })?;
            filters_of.push(f);
        }
        let subjects = match subject_col {
            Some(col) if !self.subjects.is_empty() => {
                Some((col.name.clone(), col.type_oid, self.subjects.clone()))
            }
            _ => None,
        };
        Ok(TableHolds {
            filters: filters_of,
            subjects,
        })
    }
}

impl TableHolds {
    #[cfg_attr(not(any(test, feature = "pg_test")), allow(dead_code))]
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty() && self.subjects.is_none()
    }

    /// A SQL boolean expression over the table's own columns, TRUE for rows
    /// under one of the holds, never NULL; the held subjects are added to
    /// `params`. `None` when no hold applies. Run it inside a
    /// `security::Scope` (`standard_conforming_strings = on`, pinned path).
    pub fn predicate(&self, params: &mut Params) -> Option<String> {
        let mut parts: Vec<String> = self
            .filters
            .iter()
            .map(|f| format!("COALESCE({}, false)", filters::spliced(f)))
            .collect();
        if let Some((col, typid, subjects)) = &self.subjects {
            if let Some(p) = subject_predicate(col, *typid, subjects, params) {
                parts.push(p);
            }
        }
        if parts.is_empty() {
            None
        } else {
            Some(format!("({})", parts.join(" OR ")))
        }
    }
}

/// `col = ANY($n)` for the subjects that can be values of the column's type,
/// the array bound as a parameter (pure string building, unit tested).
pub fn subject_predicate(
    column: &str,
    typid: pg_sys::Oid,
    subjects: &[String],
    params: &mut Params,
) -> Option<String> {
    let q = spi::quote_identifier(column);
    if typid == pg_sys::INT2OID || typid == pg_sys::INT4OID || typid == pg_sys::INT8OID {
        let (lo, hi) = if typid == pg_sys::INT2OID {
            (i16::MIN as i64, i16::MAX as i64)
        } else if typid == pg_sys::INT4OID {
            (i32::MIN as i64, i32::MAX as i64)
        } else {
            (i64::MIN, i64::MAX)
        };
        let values: Vec<i64> = subjects
            .iter()
            .filter_map(|s| s.trim().parse::<i64>().ok())
            .filter(|v| *v >= lo && *v <= hi)
            .collect();
        if values.is_empty() {
            return None;
        }
        let p = params.push(values);
        Some(format!("({q} = ANY ({p}::pg_catalog.int8[]))"))
    } else if typid == pg_sys::UUIDOID {
        let values: Vec<String> = subjects.iter().filter_map(|s| canonical_uuid(s)).collect();
        if values.is_empty() {
            return None;
        }
        let p = params.push(values);
        Some(format!("({q} = ANY (CAST({p} AS pg_catalog.uuid[])))"))
    } else {
        if subjects.is_empty() {
            return None;
        }
        let p = params.push(subjects.to_vec());
        Some(format!("({q} = ANY ({p}::pg_catalog.text[]))"))
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

/// `place_hold(tbl, row_filter, reason, until)`: hold the rows of
/// `tbl` for which `row_filter` is TRUE. The caller needs SELECT on the table.
pub fn place_hold(
    relid: pg_sys::Oid,
    filter: &str,
    reason: &str,
    until: Option<TimestampWithTimeZone>,
) -> PResult<i64> {
    let reason = check_reason(reason)?;
    let relation = crate::catalog::require_relation(relid)?;
    if !matches!(relation.kind.as_str(), "r" | "p") {
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
    let filter = filters::validate(relid, filter, FilterKind::Hold)?;
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
}

/// `place_subject_hold(subject, reason, until)`: hold every row of
/// the subject in every table with a SUBJECT column.
pub fn place_subject_hold(
    subject: &str,
    reason: &str,
    until: Option<TimestampWithTimeZone>,
) -> PResult<i64> {
    if subject.trim().is_empty() {
        return Err(PrivacyError::invalid_parameter("subject must not be empty"));
    }
    let reason = check_reason(reason)?;
    check_until(until)?;
    let pseudonym = subject_pseudonym(subject)?;
    let actor = security::current_role_name();
    let id = as_extension_owner(|| {
        Ok(Spi::get_one_with_args::<i64>(
            "INSERT INTO privacy.legal_holds (subject, reason, placed_by, until)
             VALUES ($1, $2, $3, $4) RETURNING id",
            &[
                subject.into(),
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
}

/// `release_hold(id)`: end a hold now (42704 unknown, 55000 already
/// released).
pub fn release_hold(id: i64) -> PResult<()> {
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
            return Err(
                PrivacyError::undefined_object(format!("hold {id} does not exist"))
                    .with_hint("See privacy.holds."),
            )
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
}
