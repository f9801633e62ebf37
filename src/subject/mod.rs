//! Data subject rights: access (`export_subject`) and erasure
//! (`forget_subject`). Objections to purposes live in `objections`.
//!
//! Both functions visit every permanent table with a `SUBJECT` column
//! ([`tags::subject_tables`]) and find the subject's rows with
//! `subject_col = CAST($n AS <column type>)`, so an index on the subject column is
//! used; a subject that is not a valid value of a column's type (say `'ada'`
//! for a `bigint` column) matches no row in that table. Audit entries carry
//! the subject's pseudonym, never the id, and every call (and every refusal)
//! is also written to the server log (`audit::logged`), which a rollback
//! does not undo.
//!
//! **Whose rights.** Both check the **caller's** privileges on every table
//! first — SELECT, and DELETE or UPDATE (tables kept under a legal
//! obligation) for an erasure — and refuse (42501) a table where row-level
//! security filters the caller's view (an export or erasure that silently
//! misses rows is worse than an error), all before reading or changing
//! anything. Then each table's statements run **as that table's owner**,
//! restricted (`security::Scope`), like VACUUM does: the owner's triggers,
//! constraints, `ANONYMIZE FUNCTION`s and output functions (`to_jsonb` of
//! its types) never run with the caller's rights. A table whose owner is
//! subject to its own row-level security (`FORCE ROW LEVEL SECURITY`) is
//! refused too. Reads of *other* tables — which rows of a child table still
//! reference a row that must then be kept — run as that child's owner,
//! beforehand, and reach the parent's statement as bound arrays of key
//! values (no statement of one owner reads another owner's table).
//!
//! Erasure, in one transaction:
//! 1. plan: the foreign keys among subject tables give an order, children
//!    first, by strongly connected components (a foreign-key cycle is a
//!    component of several tables, or one table referencing itself); tables
//!    holding a column whose purposes include one with legal basis
//!    `legal_obligation` keep their rows and have their other tagged columns
//!    anonymized instead (with the methods of `anonymize::plan`, whose
//!    keyed hash the table's owner must be allowed to use), the `SUBJECT`
//!    column included unless it carries such a purpose itself;
//! 2. per component, in that order: rows under an active hold are kept and
//!    counted as `held`, and so is a row still referenced by a kept row
//!    (held, or kept for a legal obligation) through a foreign key, since
//!    deleting it would cascade to the kept row or be refused; rows of an
//!    untagged table that still reference a row to delete through an
//!    `ON DELETE RESTRICT`/`NO ACTION` key make a clear error (23503) before
//!    anything is deleted from that table. A component of several tables is
//!    skipped when the subject has no row in it; otherwise its tables must
//!    have one owner (else 55000 naming them, nothing changed): the
//!    subject's rows are locked, the kept ones found (holds, then what kept
//!    rows reference, until nothing changes) and the rest erased in one
//!    statement (writable CTEs), so the keys inside the cycle hold at its
//!    end;
//! 3. the subject's objections go too.
//!
//! A dry run executes exactly the same statements inside a subtransaction
//! that is always rolled back, so what it reports is what would happen
//! (cascades, holds, errors included) and nothing changes.
//!
//! | file         | owns                                                      |
//! |--------------|-----------------------------------------------------------|
//! | `mod.rs`     | the subject tables, how the subject's rows are matched, the caller's checks |
//! | `export`     | `export_subject`                                          |
//! | `erase`      | `forget_subject`: plan, kept rows, the erasing statements |
//! | `fkgraph`    | foreign keys among subject tables, their order, key matching |
//! | `objections` | `object_to_purpose`, `withdraw_objection`, `may_process`  |

pub mod erase;
pub mod export;
mod fkgraph;
pub mod objections;

use crate::catalog;
use crate::error::{PResult, PrivacyError};
use crate::labels::tags::{self, ColumnTag};
use crate::security::{self, Scope};
use crate::sql::Params;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use std::collections::HashMap;

/// The subject's pseudonym for the audit log (keyed hash, never the id).
pub(crate) fn pseudonym(subject: &str) -> PResult<String> {
    crate::keys::subject_pseudonym(subject)
}

/// Run `f` as `owner`, restricted: how every statement on a table runs.
fn as_owner<R>(owner: pg_sys::Oid, f: impl FnOnce() -> PResult<R>) -> PResult<R> {
    Scope::as_role(owner).restricted().run(f)
}

/// Whether `s` is accepted by PostgreSQL 15's `int4in`/`int8in`: optional
/// white space, an optional sign, decimal digits, optional white space, and
/// in range.
fn parses_as_int(s: &str, bits: u32) -> bool {
    let t = s.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'));
    match bits {
        32 => t.parse::<i32>().is_ok(),
        _ => t.parse::<i64>().is_ok(),
    }
}

/// Whether `s` is accepted by PostgreSQL's `uuid_in`: 32 hex digits,
/// optionally in braces, with an optional hyphen after any group of four.
fn parses_as_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let braces = b.first() == Some(&b'{');
    if braces {
        i += 1;
    }
    for byte in 0..16 {
        if i + 2 > b.len() {
            return false;
        }
        if !b[i].is_ascii_hexdigit() || !b[i + 1].is_ascii_hexdigit() {
            return false;
        }
        i += 2;
        if b.get(i) == Some(&b'-') && byte % 2 == 1 && byte < 15 {
            i += 1;
        }
    }
    if braces {
        if b.get(i) != Some(&b'}') {
            return false;
        }
        i += 1;
    }
    i == b.len()
}

/// How the subject's rows of one table are found: `col = CAST($n AS type)`,
/// the subject bound as text.
#[derive(Clone)]
struct SubjectMatch {
    /// the quoted subject column
    column: String,
    cast: &'static str,
    subject: String,
}

impl SubjectMatch {
    /// `None` when the subject cannot be a value of the column's type.
    fn new(col: &ColumnTag, subject: &str) -> Option<SubjectMatch> {
        let (ok, cast) = match col.type_oid {
            pg_sys::INT4OID => (parses_as_int(subject, 32), "pg_catalog.int4"),
            pg_sys::INT8OID => (parses_as_int(subject, 64), "pg_catalog.int8"),
            pg_sys::UUIDOID => (parses_as_uuid(subject), "pg_catalog.uuid"),
            _ => (true, "pg_catalog.text"),
        };
        ok.then(|| SubjectMatch {
            column: spi::quote_identifier(&col.name),
            cast,
            subject: subject.to_string(),
        })
    }

    /// The condition over the row of `alias` ("": the statement's only
    /// table), the subject bound into `params`.
    fn sql(&self, alias: &str, params: &mut Params) -> String {
        let v = params.push_as(self.subject.as_str(), self.cast);
        if alias.is_empty() {
            format!("{} = {v}", self.column)
        } else {
            format!("{alias}.{} = {v}", self.column)
        }
    }
}

/// One table with a SUBJECT column.
struct SubjectTable {
    relid: pg_sys::Oid,
    /// Quoted `schema.table`, safe to splice into SQL.
    qname: String,
    /// `schema.table` as written (the export's key).
    key: String,
    owner: pg_sys::Oid,
    subject_col: ColumnTag,
    tags: Vec<ColumnTag>,
    /// Selects the subject's rows; `None`: the subject cannot occur here.
    predicate: Option<SubjectMatch>,
    /// a valid, non-partial index leads with the subject column
    indexed: bool,
    /// row-level security filters the caller's view of the table
    rls_active: bool,
    can_select: bool,
    can_delete: bool,
    can_update: bool,
}

/// Every table with a SUBJECT column, with what erasure and export need to
/// know about it, read in two queries whatever the number of tables.
fn subject_tables(subject: &str) -> PResult<Vec<SubjectTable>> {
    let tagged = tags::subject_tables()?;
    let relids: Vec<pg_sys::Oid> = tagged.iter().map(|t| t.0).collect();
    let attnums: Vec<i16> = tagged.iter().map(|t| t.1.attnum).collect();
    let facts: HashMap<pg_sys::Oid, catalog::SubjectTableFacts> =
        catalog::subject_table_facts(&relids, &attnums)?
            .into_iter()
            .map(|f| (f.oid, f))
            .collect();
    let mut out = Vec::new();
    for (relid, col, tags) in tagged {
        let Some(f) = facts.get(&relid) else {
            continue; // dropped meanwhile
        };
        out.push(SubjectTable {
            relid,
            qname: f.qname.clone(),
            key: f.key.clone(),
            owner: f.owner,
            predicate: SubjectMatch::new(&col, subject),
            tags,
            subject_col: col,
            indexed: f.indexed,
            rls_active: f.rls_active,
            can_select: f.can_select,
            can_delete: f.can_delete,
            can_update: f.can_update,
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// One NOTICE per table whose SUBJECT column has no index.
fn notice_missing_indexes(tables: &[SubjectTable]) -> PResult<()> {
    for t in tables {
        if !t.indexed {
            ErrorReport::new(
                PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
                format!(
                    "SUBJECT column \"{}\" of table {} has no index: finding a subject's rows scans the whole table",
                    t.subject_col.name, t.key
                ),
                "pg_privacy",
            )
            .set_hint(format!(
                "CREATE INDEX ON {} ({});",
                t.qname,
                spi::quote_identifier(&t.subject_col.name)
            ))
            .report(PgLogLevel::NOTICE);
        }
    }
    Ok(())
}

/// Refuse to work on a table where row-level security filters the caller's
/// view: rows would be silently missed.
fn refuse_row_security(t: &SubjectTable, what: &str) -> PResult<()> {
    if t.rls_active {
        return Err(PrivacyError::insufficient_privilege(format!(
            "row-level security is active on table {} for role \"{}\": the {what} could miss rows",
            t.key,
            security::current_role_name()
        ))
        .with_hint("Run it as the table owner or as a role with BYPASSRLS."));
    }
    Ok(())
}

/// Refuse a table whose owner, who runs its statements, is subject to the
/// table's own row-level security (`FORCE ROW LEVEL SECURITY`). Call it as
/// the owner.
fn refuse_owner_row_security(t: &SubjectTable, what: &str) -> PResult<()> {
    let forced = crate::sql::opt::<bool>(
        "SELECT pg_catalog.row_security_active($1)",
        &[t.relid.into()],
    )?
    .unwrap_or(false);
    if forced {
        return Err(PrivacyError::insufficient_privilege(format!(
            "row-level security is forced on table {} for its owner \"{}\": the {what} could miss rows",
            t.key,
            crate::security::role_name(t.owner)
        ))
        .with_hint("The subject's rows are read and changed as the table's owner: ALTER TABLE … NO FORCE ROW LEVEL SECURITY, or let the owner see every row."));
    }
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::{parses_as_int, parses_as_uuid};

    #[test]
    fn ints_parse_like_postgres() {
        assert!(parses_as_int("42", 32));
        assert!(parses_as_int(" -42 ", 32));
        assert!(parses_as_int("+7", 64));
        assert!(parses_as_int("9223372036854775807", 64));
        assert!(!parses_as_int("9223372036854775808", 64));
        assert!(!parses_as_int("2147483648", 32));
        assert!(!parses_as_int("4x", 64));
        assert!(!parses_as_int("", 64));
        assert!(!parses_as_int("-", 64));
        assert!(!parses_as_int("1 2", 64));
    }

    #[test]
    fn uuids_parse_like_postgres() {
        assert!(parses_as_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
        assert!(parses_as_uuid("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"));
        assert!(parses_as_uuid("{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}"));
        assert!(parses_as_uuid("a0eebc999c0b4ef8bb6d6bb9bd380a11"));
        assert!(parses_as_uuid("a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11"));
        assert!(!parses_as_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"));
        assert!(!parses_as_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-"));
        assert!(!parses_as_uuid("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
        assert!(!parses_as_uuid("a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11"));
        assert!(!parses_as_uuid(" a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
        assert!(!parses_as_uuid("42"));
        assert!(!parses_as_uuid(""));
    }
}
