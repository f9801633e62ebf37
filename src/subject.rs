//! Data subject rights: access (`export_subject`) and erasure
//! (`forget_subject`). Objections to purposes live in `objections`.
//!
//! Both functions visit every table with a `SUBJECT` column
//! ([`tags::subject_columns`]) and find the subject's rows with
//! `subject_col = $1::<column type>`, so an index on the subject column is
//! used; a subject that is not a valid value of a column's type (say `'ada'`
//! for a `bigint` column) matches no row in that table. Both run with the
//! caller's privileges: PostgreSQL checks SELECT/DELETE/UPDATE on each table,
//! and both refuse to run where row-level security would hide rows from the
//! caller (an export or an erasure that silently misses rows is worse than an
//! error). Audit entries carry the subject's pseudonym, never the id.
//!
//! Erasure, in one transaction:
//! 1. plan: the foreign keys among subject tables give an order, children
//!    first (a cycle is an error, nothing changed); tables holding a column
//!    whose purposes include one with legal basis `legal_obligation` keep
//!    their rows and have their other tagged columns anonymized instead
//!    (with the methods of `anonymize::rewrites`), the `SUBJECT` column
//!    included unless it carries such a purpose itself;
//! 2. per table, in that order: rows under an active hold are kept and
//!    counted as `held`, and so is a row still referenced by a kept row
//!    (held, or kept for a legal obligation) through a foreign key, since
//!    deleting it would cascade to the kept row or be refused; rows of an
//!    untagged table that still reference a row to delete through an
//!    `ON DELETE RESTRICT`/`NO ACTION` key make a clear error (23503) before
//!    anything is deleted from that table;
//! 3. the subject's objections go too.
//!
//! A dry run executes exactly the same statements inside a subtransaction
//! that is always rolled back, so what it reports is what would happen
//! (cascades, holds, errors included) and nothing changes.

use crate::audit;
use crate::error::{OrRaise, PResult, PrivacyError};
use crate::security;
use crate::tags::{self, ColumnTag};
use crate::types::{qualified_name, Regclass};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::{JsonB, PgLogLevel, PgSqlErrorCode};
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};

/// The subject's pseudonym for the audit log (keyed hash, never the id).
pub(crate) fn pseudonym(subject: &str) -> PResult<String> {
    crate::keys::subject_pseudonym(subject)
}

/// `count(*)` of a statement that may write (`WITH d AS (DELETE …) SELECT count(*) FROM d`).
fn count_mut(query: &str, subject: &str) -> PResult<i64> {
    Ok(crate::sql::opt_mut::<i64>(query, &[subject.into()])?.unwrap_or(0))
}

/// Rows changed by a `DELETE`/`UPDATE` (SPI's count: no `RETURNING`).
fn changed(query: &str, subject: &str) -> PResult<i64> {
    Spi::connect_mut(|c| Ok(c.update(query, None, &[subject.into()])?.len() as i64))
}

fn count(query: &str, subject: &str) -> PResult<i64> {
    Ok(crate::sql::opt::<i64>(query, &[subject.into()])?.unwrap_or(0))
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

/// SQL over the table's columns selecting the subject's rows (`$1` is the
/// subject as text), or `None` when the subject cannot be a value of the
/// column's type.
fn subject_predicate(col: &ColumnTag, subject: &str) -> Option<String> {
    let q = spi::quote_identifier(&col.name);
    let (ok, cast) = match col.type_oid {
        pg_sys::INT4OID => (parses_as_int(subject, 32), "pg_catalog.int4"),
        pg_sys::INT8OID => (parses_as_int(subject, 64), "pg_catalog.int8"),
        pg_sys::UUIDOID => (parses_as_uuid(subject), "pg_catalog.uuid"),
        _ => (true, "pg_catalog.text"),
    };
    ok.then(|| format!("{q} = $1::{cast}"))
}

/// One table with a SUBJECT column.
struct SubjectTable {
    relid: pg_sys::Oid,
    /// Quoted `schema.table`, safe to splice into SQL.
    qname: String,
    /// `schema.table` as written (the export's key).
    key: String,
    subject_col: ColumnTag,
    tags: Vec<ColumnTag>,
    /// Selects the subject's rows; `None`: the subject cannot occur here.
    predicate: Option<String>,
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
    // (quoted name, key, indexed, row security active, SELECT, DELETE, UPDATE)
    type Facts = (String, String, bool, bool, bool, bool, bool);
    let facts: HashMap<pg_sys::Oid, Facts> = Spi::connect(|c| {
        let rows = c.select(
            "SELECT c.oid,
                    pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
                    n.nspname::text || '.' || c.relname::text,
                    EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                             WHERE i.indrelid = c.oid AND i.indkey[0] = s.attnum
                               AND i.indisvalid AND i.indpred IS NULL),
                    pg_catalog.row_security_active(c.oid),
                    pg_catalog.has_table_privilege(c.oid, 'SELECT'),
                    pg_catalog.has_table_privilege(c.oid, 'DELETE'),
                    pg_catalog.has_table_privilege(c.oid, 'UPDATE')
               FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.oid[]), pg_catalog.unnest($2::pg_catalog.int2[])) AS s(relid, attnum)
               JOIN pg_catalog.pg_class c ON c.oid = s.relid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace",
            None,
            &[relids.into(), attnums.into()],
        )?;
        let mut out = HashMap::new();
        for r in rows {
            out.insert(
                r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::Oid::INVALID),
                (
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<String>(3)?.unwrap_or_default(),
                    r.get::<bool>(4)?.unwrap_or(false),
                    r.get::<bool>(5)?.unwrap_or(false),
                    r.get::<bool>(6)?.unwrap_or(false),
                    r.get::<bool>(7)?.unwrap_or(false),
                    r.get::<bool>(8)?.unwrap_or(false),
                ),
            );
        }
        Ok::<_, PrivacyError>(out)
    })?;
    let mut out = Vec::new();
    for (relid, col, tags) in tagged {
        let Some((qname, key, indexed, rls_active, can_select, can_delete, can_update)) =
            facts.get(&relid).cloned()
        else {
            continue; // dropped meanwhile
        };
        out.push(SubjectTable {
            relid,
            qname,
            key,
            predicate: subject_predicate(&col, subject),
            tags,
            subject_col: col,
            indexed,
            rls_active,
            can_select,
            can_delete,
            can_update,
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

fn need<T>(v: Option<T>, what: &str) -> PResult<T> {
    v.ok_or_else(|| PrivacyError::null_value(what))
}

// ---------------------------------------------------------------------------
// export

/// `privacy.export_subject(subject)`: everything tagged that the database
/// holds about the subject, as one jsonb document.
#[pg_extern(volatile, parallel_unsafe)]
fn export_subject(subject: Option<&str>) -> JsonB {
    (|| -> PResult<JsonB> {
        let subject = need(subject, "subject")?;
        let pseudonym = pseudonym(subject)?;
        let (doc, rows) = export(subject)?;
        audit::record(
            "export_subject",
            &pseudonym,
            json!({ "subject_pseudonym": pseudonym, "tables": doc["tables"].as_object().map(|o| o.len()), "rows": rows }),
        )?;
        Ok(JsonB(doc))
    })()
    .or_raise()
}

fn export(subject: &str) -> PResult<(Value, usize)> {
    let tables = subject_tables(subject)?;
    notice_missing_indexes(&tables)?;
    let exported_at = Spi::get_one::<JsonB>("SELECT pg_catalog.to_jsonb(pg_catalog.now())")?
        .map(|j| j.0)
        .unwrap_or(Value::Null);
    let mut out_tables = Map::new();
    let mut total = 0;
    for t in &tables {
        refuse_row_security(t, "export")?;
        let mut columns = Map::new();
        for c in &t.tags {
            columns.insert(
                c.name.clone(),
                json!({ "purposes": c.label.purposes, "category": c.label.category }),
            );
        }
        let rows = match &t.predicate {
            Some(pred) => export_rows(t, pred, subject)?,
            None => Vec::new(),
        };
        total += rows.len();
        out_tables.insert(
            t.key.clone(),
            json!({ "columns": Value::Object(columns), "rows": rows }),
        );
    }
    Ok((
        json!({ "subject": subject, "exported_at": exported_at, "tables": Value::Object(out_tables) }),
        total,
    ))
}

/// The subject's rows of one table, tagged columns only, each value as
/// PostgreSQL renders it in JSON (`to_jsonb`), in primary key order.
fn export_rows(t: &SubjectTable, pred: &str, subject: &str) -> PResult<Vec<Value>> {
    let select: Vec<String> = t
        .tags
        .iter()
        .map(|c| format!("pg_catalog.to_jsonb({})", spi::quote_identifier(&c.name)))
        .collect();
    let pk: Option<String> = crate::sql::opt::<String>(
        "SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY k.i)
           FROM pg_catalog.pg_index x
          CROSS JOIN LATERAL pg_catalog.unnest(x.indkey) WITH ORDINALITY k(n, i)
           JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n
          WHERE x.indrelid = $1 AND x.indisprimary",
        &[t.relid.into()],
    )?;
    let order = pk.map(|k| format!(" ORDER BY {k}")).unwrap_or_default();
    let sql = format!(
        "SELECT {} FROM {} WHERE {pred}{order}",
        select.join(", "),
        t.qname
    );
    Spi::connect(|c| {
        let mut out = Vec::new();
        for row in c.select(&sql, None, &[subject.into()])? {
            let mut obj = Map::new();
            for (i, col) in t.tags.iter().enumerate() {
                let v = row.get::<JsonB>(i + 1)?.map(|j| j.0).unwrap_or(Value::Null);
                obj.insert(col.name.clone(), v);
            }
            out.push(Value::Object(obj));
        }
        Ok(out)
    })
}

// ---------------------------------------------------------------------------
// erasure

/// A foreign key whose referenced table has a SUBJECT column.
struct ForeignKey {
    name: String,
    child: pg_sys::Oid,
    parent: pg_sys::Oid,
    /// `confdeltype`: a no action, r restrict, c cascade, n set null, d set default.
    on_delete: String,
    child_cols: Vec<String>,
    parent_cols: Vec<String>,
}

impl ForeignKey {
    /// `c__.x = p__.y AND …`
    fn join(&self) -> String {
        self.child_cols
            .iter()
            .zip(&self.parent_cols)
            .map(|(c, p)| format!("c__.{c} = p__.{p}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    fn on_delete_text(&self) -> &'static str {
        match self.on_delete.as_str() {
            "r" => "RESTRICT",
            "c" => "CASCADE",
            "n" => "SET NULL",
            "d" => "SET DEFAULT",
            _ => "NO ACTION",
        }
    }
}

fn foreign_keys_to(parents: &[pg_sys::Oid]) -> PResult<Vec<ForeignKey>> {
    Spi::connect(|c| {
        let rows = c.select(
            "SELECT c.conname::text, c.conrelid, c.confrelid, c.confdeltype::text,
                    ARRAY(SELECT pg_catalog.quote_ident(a.attname)
                            FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY k(n, i)
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
                           ORDER BY k.i),
                    ARRAY(SELECT pg_catalog.quote_ident(a.attname)
                            FROM pg_catalog.unnest(c.confkey) WITH ORDINALITY k(n, i)
                            JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n
                           ORDER BY k.i)
               FROM pg_catalog.pg_constraint c
              WHERE c.contype = 'f' AND c.conparentid = 0
              ORDER BY c.conrelid, c.conname",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let parent: pg_sys::Oid = r.get(3)?.unwrap_or(pg_sys::Oid::INVALID);
            if !parents.contains(&parent) {
                continue;
            }
            out.push(ForeignKey {
                name: r.get(1)?.unwrap_or_default(),
                child: r.get(2)?.unwrap_or(pg_sys::Oid::INVALID),
                parent,
                on_delete: r.get(4)?.unwrap_or_default(),
                child_cols: r.get(5)?.unwrap_or_default(),
                parent_cols: r.get(6)?.unwrap_or_default(),
            });
        }
        Ok(out)
    })
}

/// Order subject tables so that a table comes before every subject table it
/// references (children first). Self references are handled by PostgreSQL
/// within one DELETE. A cycle is an error.
fn children_first(tables: &[SubjectTable], fks: &[ForeignKey]) -> PResult<Vec<usize>> {
    let idx: HashMap<pg_sys::Oid, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.relid, i))
        .collect();
    // waiting[p] = children of p not yet placed
    let mut waiting: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); tables.len()];
    for fk in fks {
        if let (Some(&c), Some(&p)) = (idx.get(&fk.child), idx.get(&fk.parent)) {
            if c != p {
                waiting[p].insert(c);
            }
        }
    }
    let mut placed = vec![false; tables.len()];
    let mut order = Vec::with_capacity(tables.len());
    while order.len() < tables.len() {
        let next = (0..tables.len()).find(|&i| !placed[i] && waiting[i].is_empty());
        let Some(i) = next else {
            let cycle: Vec<&str> = (0..tables.len())
                .filter(|&i| !placed[i])
                .map(|i| tables[i].key.as_str())
                .collect();
            return Err(PrivacyError::object_state(format!(
                "foreign keys among tables with a SUBJECT column form a cycle: {}",
                cycle.join(", ")
            ))
            .with_detail("forget_subject deletes children before parents, which a cycle makes impossible; nothing was changed.")
            .with_hint("Remove the SUBJECT mark from one table of the cycle (its rows then follow the foreign key's ON DELETE action), or erase these rows yourself."));
        };
        placed[i] = true;
        order.push(i);
        for w in waiting.iter_mut() {
            w.remove(&i);
        }
    }
    Ok(order)
}

/// How a subject table is erased.
enum Mode {
    Delete,
    /// Kept for a legal obligation: `SET` list and "needs a change" test.
    Anonymize {
        sets: Vec<String>,
        needs_change: Vec<String>,
    },
}

struct Plan {
    table: usize,
    mode: Mode,
}

fn legal_obligation_purposes() -> PResult<Vec<String>> {
    crate::sql::rows(
        "SELECT name FROM privacy.purposes WHERE legal_basis = 'legal_obligation'",
        &[],
        |r| Ok(r.get::<String>(1)?.unwrap_or_default()),
    )
}

fn is_legal(tag: &ColumnTag, legal: &[String]) -> bool {
    tag.label.purposes.iter().any(|p| legal.contains(p))
}

fn plan_mode(t: &SubjectTable, legal: &[String]) -> PResult<Mode> {
    if !t.tags.iter().any(|c| is_legal(c, legal)) {
        return Ok(Mode::Delete);
    }
    let rewrites = crate::anonymize::rewrites(t.relid, None)?;
    let mut sets = Vec::new();
    let mut needs_change = Vec::new();
    for c in t.tags.iter().filter(|c| !is_legal(c, legal)) {
        let q = spi::quote_identifier(&c.name);
        match rewrites.iter().find(|r| r.column == c.name) {
            Some(r) => {
                sets.push(format!(
                    "{q} = CASE WHEN {} THEN {} ELSE {q} END",
                    r.needs_change, r.set_expr
                ));
                needs_change.push(format!("({})", r.needs_change));
            }
            // The anonymizer leaves a column tagged only SUBJECT alone (it is
            // the link retention needs); erasure must cut that link.
            None if !c.not_null => {
                sets.push(format!("{q} = NULL"));
                needs_change.push(format!("({q} IS NOT NULL)"));
            }
            None => {
                return Err(PrivacyError::object_state(format!(
                    "cannot unlink the kept rows of table {} from the subject: SUBJECT column \"{}\" is NOT NULL and has no ANONYMIZE method",
                    t.key, c.name
                ))
                .with_detail("The table holds a column kept for a legal obligation, so its rows are anonymized instead of deleted; nothing was changed.")
                .with_hint(format!(
                    "Give the column a method, e.g. SECURITY LABEL FOR privacy ON COLUMN {}.{q} IS 'SUBJECT ANONYMIZE PSEUDONYMIZE', or tag it with the legal purpose to keep it as is.",
                    t.qname
                )))
            }
        }
    }
    Ok(Mode::Anonymize { sets, needs_change })
}

struct Eraser<'a> {
    subject: &'a str,
    tables: &'a [SubjectTable],
    fks: &'a [ForeignKey],
    holds: crate::holds::ActiveHolds,
    held: HashMap<pg_sys::Oid, Option<String>>,
    legal_tables: Vec<pg_sys::Oid>,
}

impl Eraser<'_> {
    fn held_of(&mut self, relid: pg_sys::Oid) -> PResult<Option<String>> {
        if let Some(h) = self.held.get(&relid) {
            return Ok(h.clone());
        }
        // (a referencing table without a SUBJECT column: filter holds only)
        let subject_col = self.subject_table(relid).map(|t| &t.subject_col);
        let h = self.holds.predicate(relid, subject_col)?;
        self.held.insert(relid, h.clone());
        Ok(h)
    }

    fn subject_table(&self, relid: pg_sys::Oid) -> Option<&SubjectTable> {
        self.tables.iter().find(|t| t.relid == relid)
    }

    /// SQL over `p__` (a row of `t`) that is TRUE when the row must be kept:
    /// it is held, or a kept row references it.
    fn protect(&mut self, t: &SubjectTable) -> PResult<String> {
        let mut parts = Vec::new();
        if let Some(h) = self.held_of(t.relid)? {
            parts.push(format!("({h})"));
        }
        let fks: Vec<&ForeignKey> = self
            .fks
            .iter()
            .filter(|f| f.parent == t.relid && f.child != t.relid)
            .collect();
        for fk in fks {
            let child = qualified_name(fk.child)?;
            let join = fk.join();
            if let Some(h) = self.held_of(fk.child)? {
                parts.push(format!(
                    "EXISTS (SELECT 1 FROM {child} AS c__ WHERE {join} AND ({h}))"
                ));
            }
            if let Some(ct) = self.subject_table(fk.child) {
                // The child was processed before: its rows of this subject
                // that are still there are kept ones.
                if let Some(pred) = &ct.predicate {
                    parts.push(format!(
                        "EXISTS (SELECT 1 FROM {child} AS c__ WHERE {join} AND c__.{pred})"
                    ));
                }
                if self.legal_tables.contains(&fk.child) && fk.on_delete == "c" {
                    parts.push(format!(
                        "EXISTS (SELECT 1 FROM {child} AS c__ WHERE {join})"
                    ));
                }
            }
        }
        Ok(if parts.is_empty() {
            "false".into()
        } else {
            parts.join(" OR ")
        })
    }

    /// Rows of untagged tables referencing a row about to be deleted through
    /// a RESTRICT / NO ACTION key: a clear error instead of PostgreSQL's.
    fn check_restrict(&self, t: &SubjectTable, pred: &str, protect: &str) -> PResult<()> {
        for fk in self.fks.iter().filter(|f| {
            f.parent == t.relid
                && f.child != t.relid
                && matches!(f.on_delete.as_str(), "a" | "r")
                && self.subject_table(f.child).is_none()
        }) {
            if !security::has_table_privilege(fk.child, "SELECT")? {
                continue; // PostgreSQL's own check reports it at DELETE time
            }
            let child = qualified_name(fk.child)?;
            let n = count(
                &format!(
                    "SELECT count(*) FROM {child} AS c__ WHERE EXISTS (
                        SELECT 1 FROM {} AS p__ WHERE {} AND p__.{pred} AND NOT COALESCE(({protect}), false))",
                    t.qname,
                    fk.join()
                ),
                self.subject,
            )?;
            if n > 0 {
                return Err(PrivacyError::new(
                    PgSqlErrorCode::ERRCODE_FOREIGN_KEY_VIOLATION,
                    format!(
                        "cannot erase the subject: {n} row(s) of table {} reference the subject's rows in {} through foreign key \"{}\" (ON DELETE {})",
                        crate::types::regclass_text(fk.child),
                        t.key,
                        fk.name,
                        fk.on_delete_text()
                    ),
                )
                .with_detail("Nothing was erased.")
                .with_hint("Delete or re-point those rows first, mark the table's subject column with privacy.mark_subject(), or make the foreign key ON DELETE CASCADE or SET NULL."));
            }
        }
        Ok(())
    }

    fn run(&mut self, plans: &[Plan]) -> PResult<Vec<Erased>> {
        let mut out = Vec::new();
        for plan in plans {
            let t = &self.tables[plan.table];
            let main = match plan.mode {
                Mode::Delete => "deleted",
                Mode::Anonymize { .. } => "anonymized",
            };
            let Some(pred) = &t.predicate else {
                out.push((t.relid, t.key.clone(), main, 0));
                continue;
            };
            let protect = self.protect(t)?;
            let held = if protect == "false" {
                0
            } else {
                count(
                    &format!(
                        "SELECT count(*) FROM {} AS p__ WHERE p__.{pred} AND COALESCE(({protect}), false)",
                        t.qname
                    ),
                    self.subject,
                )?
            };
            let n = match &plan.mode {
                Mode::Delete => {
                    self.check_restrict(t, pred, &protect)?;
                    changed(
                        &format!(
                            "DELETE FROM {} AS p__ WHERE p__.{pred} AND NOT COALESCE(({protect}), false)",
                            t.qname
                        ),
                        self.subject,
                    )?
                }
                Mode::Anonymize { sets, .. } if sets.is_empty() => 0,
                Mode::Anonymize { sets, needs_change } => changed(
                    &format!(
                        "UPDATE {} AS p__ SET {} WHERE p__.{pred} AND NOT COALESCE(({protect}), false)
                                       AND ({})",
                        t.qname,
                        sets.join(", "),
                        needs_change.join(" OR ")
                    ),
                    self.subject,
                )?,
            };
            out.push((t.relid, t.key.clone(), main, n));
            if held > 0 {
                out.push((t.relid, t.key.clone(), "held", held));
            }
        }
        let objections = security::as_extension_owner(|| {
            count_mut(
                "WITH d AS (DELETE FROM privacy.objections WHERE subject = $1 RETURNING 1)
                 SELECT count(*) FROM d",
                self.subject,
            )
        })?;
        if objections > 0 {
            let relid = crate::sql::opt::<pg_sys::Oid>(
                "SELECT 'privacy.objections'::pg_catalog.regclass::pg_catalog.oid",
                &[],
            )?
            .unwrap_or(pg_sys::Oid::INVALID);
            out.push((relid, "privacy.objections".into(), "deleted", objections));
        }
        Ok(out)
    }
}

/// Run `f` in a subtransaction that is always rolled back, on success, on
/// `Err` and on ERROR (which is then re-raised).
fn rolled_back<R>(f: impl FnOnce() -> PResult<R>) -> PResult<R> {
    let (ctx, owner) = unsafe {
        let ctx = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(ctx);
        (ctx, owner)
    };
    let rollback = move || unsafe {
        pg_sys::RollbackAndReleaseCurrentSubTransaction();
        pg_sys::MemoryContextSwitchTo(ctx);
        pg_sys::CurrentResourceOwner = owner;
    };
    let f = std::panic::AssertUnwindSafe(f);
    let on_ok = std::panic::AssertUnwindSafe(rollback);
    PgTryBuilder::new(move || {
        let out = f();
        on_ok();
        out
    })
    .catch_others(|e| {
        rollback();
        e.rethrow()
    })
    .execute()
}

type ForgetRow = (Regclass, String, i64);

/// One line of an erasure: (table, its `schema.table` key, action, rows).
type Erased = (pg_sys::Oid, String, &'static str, i64);

/// `privacy.forget_subject(subject, dry_run)`: erase the subject; one row per
/// table per action.
#[pg_extern(volatile, parallel_unsafe)]
fn forget_subject(
    subject: Option<&str>,
    dry_run: default!(Option<bool>, "false"),
) -> TableIterator<
    'static,
    (
        name!(table_name, Regclass),
        name!(action, String),
        name!(rows, i64),
    ),
> {
    (|| -> PResult<TableIterator<'static, ForgetRow>> {
        let subject = need(subject, "subject")?;
        let dry_run = need(dry_run, "dry_run")?;
        let pseudonym = pseudonym(subject)?;
        let result = forget(subject, dry_run)?;
        let details: Vec<Value> = result
            .iter()
            .map(|(_, key, action, n)| json!({ "table": key, "action": action, "rows": n }))
            .collect();
        audit::record(
            "forget_subject",
            &pseudonym,
            json!({ "subject_pseudonym": pseudonym, "dry_run": dry_run, "result": details }),
        )?;
        let rows: Vec<ForgetRow> = result
            .into_iter()
            .map(|(relid, _, action, n)| (Regclass(relid), action.to_string(), n))
            .collect();
        Ok(TableIterator::new(rows))
    })()
    .or_raise()
}

fn forget(subject: &str, dry_run: bool) -> PResult<Vec<Erased>> {
    let tables = subject_tables(subject)?;
    notice_missing_indexes(&tables)?;
    let relids: Vec<pg_sys::Oid> = tables.iter().map(|t| t.relid).collect();
    let fks = foreign_keys_to(&relids)?;
    let order = children_first(&tables, &fks)?;
    let legal = legal_obligation_purposes()?;
    let mut plans = Vec::new();
    for i in order {
        let t = &tables[i];
        let mode = plan_mode(t, &legal)?;
        if t.predicate.is_some() {
            refuse_row_security(t, "erasure")?;
            let write = match mode {
                Mode::Delete => "DELETE",
                Mode::Anonymize { .. } => "UPDATE",
            };
            let granted = |privilege: &str| match privilege {
                "SELECT" => t.can_select,
                "DELETE" => t.can_delete,
                _ => t.can_update,
            };
            for privilege in ["SELECT", write] {
                if !granted(privilege) {
                    return Err(PrivacyError::insufficient_privilege(format!(
                        "permission denied to erase the subject from table {}: {privilege} is needed",
                        t.key
                    ))
                    .with_hint("forget_subject runs with the caller's privileges: it needs SELECT and DELETE on every table with a SUBJECT column (UPDATE where rows are kept for a legal obligation)."));
                }
            }
        }
        plans.push(Plan { table: i, mode });
    }
    let legal_tables = plans
        .iter()
        .filter(|p| matches!(p.mode, Mode::Anonymize { .. }))
        .map(|p| tables[p.table].relid)
        .collect();
    let as_of = Spi::get_one::<TimestampWithTimeZone>("SELECT pg_catalog.now()")?
        .ok_or_else(|| PrivacyError::internal("now() returned NULL"))?;
    let mut eraser = Eraser {
        subject,
        tables: &tables,
        fks: &fks,
        holds: crate::holds::ActiveHolds::load(as_of)?,
        held: HashMap::new(),
        legal_tables,
    };
    // Run as the caller, with search_path pinned like the retention engine:
    // hold filters and anonymization expressions are written for it.
    let me = unsafe { pg_sys::GetUserId() };
    security::as_role(me, || {
        if dry_run {
            rolled_back(|| eraser.run(&plans))
        } else {
            eraser.run(&plans)
        }
    })
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
