//! Data subject rights: access (`export_subject`) and erasure
//! (`forget_subject`). Objections to purposes live in `objections`.
//!
//! Both functions visit every permanent table with a `SUBJECT` column
//! ([`tags::subject_tables`]) and find the subject's rows with
//! `subject_col = $1::<column type>`, so an index on the subject column is
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
//!    anonymized instead (with the methods of `anonymize::rewrites`, whose
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

use crate::audit;
use crate::error::{PResult, PrivacyError};
use crate::holds::{ActiveHolds, TableHolds};
use crate::security::{self, Scope};
use crate::sql::{Params, Value as SqlValue};
use crate::tags::{self, ColumnTag};
use crate::types::Regclass;
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
    owner: pg_sys::Oid,
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
    struct Facts {
        qname: String,
        key: String,
        owner: pg_sys::Oid,
        indexed: bool,
        rls_active: bool,
        can_select: bool,
        can_delete: bool,
        can_update: bool,
    }
    let tagged = tags::subject_tables()?;
    let relids: Vec<pg_sys::Oid> = tagged.iter().map(|t| t.0).collect();
    let attnums: Vec<i16> = tagged.iter().map(|t| t.1.attnum).collect();
    let facts: HashMap<pg_sys::Oid, Facts> = Spi::connect(|c| {
        // row security and privileges: of the caller
        let rows = c.select(
            "SELECT c.oid,
                    pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
                    n.nspname::text || '.' || c.relname::text,
                    c.relowner,
                    EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                             WHERE i.indrelid = c.oid AND i.indkey[0] = s.attnum
                               AND i.indisvalid AND i.indpred IS NULL),
                    pg_catalog.row_security_active(c.oid),
                    pg_catalog.has_table_privilege(c.oid, 'SELECT'),
                    pg_catalog.has_table_privilege(c.oid, 'DELETE'),
                    pg_catalog.has_table_privilege(c.oid, 'UPDATE')
               FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.oid[]), pg_catalog.unnest($2::pg_catalog.int2[])) AS s(relid, attnum)
               JOIN pg_catalog.pg_class c ON c.oid = s.relid
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relpersistence <> 't'",
            None,
            &[relids.into(), attnums.into()],
        )?;
        let mut out = HashMap::new();
        for r in rows {
            out.insert(
                r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::Oid::INVALID),
                Facts {
                    qname: r.get::<String>(2)?.unwrap_or_default(),
                    key: r.get::<String>(3)?.unwrap_or_default(),
                    owner: r.get::<pg_sys::Oid>(4)?.unwrap_or(pg_sys::Oid::INVALID),
                    indexed: r.get::<bool>(5)?.unwrap_or(false),
                    rls_active: r.get::<bool>(6)?.unwrap_or(false),
                    can_select: r.get::<bool>(7)?.unwrap_or(false),
                    can_delete: r.get::<bool>(8)?.unwrap_or(false),
                    can_update: r.get::<bool>(9)?.unwrap_or(false),
                },
            );
        }
        Ok::<_, PrivacyError>(out)
    })?;
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
            predicate: subject_predicate(&col, subject),
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
            crate::policies::role_name(t.owner)
        ))
        .with_hint("The subject's rows are read and changed as the table's owner: ALTER TABLE … NO FORCE ROW LEVEL SECURITY, or let the owner see every row."));
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
    JsonB(audit::entry_quiet(|| {
        export_logged(need(subject, "subject")?, None)
    }))
}

/// An export, audited and logged like every export; `format` (e.g.
/// `markdown`) is recorded with it when the document is rendered.
pub(crate) fn export_logged(subject: &str, format: Option<&str>) -> PResult<Value> {
    let pseudonym = pseudonym(subject)?;
    let extra = match format {
        Some(f) => json!({ "format": f }),
        None => json!({}),
    };
    audit::logged("export_subject", &pseudonym, &extra, || {
        let (doc, rows) = export(subject)?;
        let mut details = json!({ "subject_pseudonym": pseudonym, "tables": doc["tables"].as_object().map(|o| o.len()), "rows": rows });
        if let Some(f) = format {
            details["format"] = json!(f);
        }
        audit::record("export_subject", &pseudonym, details)?;
        Ok(doc)
    })
}

fn export(subject: &str) -> PResult<(Value, usize)> {
    let tables = subject_tables(subject)?;
    // the caller's rights, all checked before anything is read
    for t in &tables {
        refuse_row_security(t, "export")?;
        if t.predicate.is_some() && !t.can_select {
            return Err(PrivacyError::insufficient_privilege(format!(
                "permission denied to export the subject from table {}: SELECT is needed",
                t.key
            ))
            .with_hint("export_subject needs SELECT on every table with a SUBJECT column; it then reads each table as the table's owner."));
        }
    }
    notice_missing_indexes(&tables)?;
    let exported_at = Spi::get_one::<JsonB>("SELECT pg_catalog.to_jsonb(pg_catalog.now())")?
        .map(|j| j.0)
        .unwrap_or(Value::Null);
    let mut out_tables = Map::new();
    let mut total = 0;
    // Art. 15 (legal bases, retention, objections…): reports::access
    let mut access = crate::reports::access::Context::load()?;
    for t in &tables {
        let mut columns = Map::new();
        for c in &t.tags {
            columns.insert(c.name.clone(), access.column(t.relid, &c.label)?);
        }
        let rows = match &t.predicate {
            Some(pred) => export_rows(t, pred, subject)?,
            None => Vec::new(),
        };
        total += rows.len();
        out_tables.insert(
            t.key.clone(),
            json!({ "columns": Value::Object(columns), "rows": rows,
                    "retention": access.table_retention(t.relid)? }),
        );
    }
    let mut doc = json!({ "subject": subject, "exported_at": exported_at, "tables": Value::Object(out_tables) });
    access.complete(&mut doc, subject)?;
    Ok((doc, total))
}

/// The subject's rows of one table, tagged columns only, each value as
/// PostgreSQL renders it in JSON (`to_jsonb`, which calls the output
/// functions of the columns' types: as the table's owner), in primary key
/// order.
fn export_rows(t: &SubjectTable, pred: &str, subject: &str) -> PResult<Vec<Value>> {
    as_owner(t.owner, || {
        refuse_owner_row_security(t, "export")?;
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
    /// quoted column names
    child_cols: Vec<String>,
    parent_cols: Vec<String>,
    /// `OPERATOR(schema.op)`, the key's equality operators (parent = child)
    ops: Vec<String>,
    child_qname: String,
    child_owner: pg_sys::Oid,
}

impl ForeignKey {
    /// `p__.y OPERATOR(…) c__.x AND …`
    fn join(&self) -> String {
        self.parent_cols
            .iter()
            .zip(&self.child_cols)
            .zip(&self.ops)
            .map(|((p, c), op)| format!("p__.{p} {op} c__.{c}"))
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

/// Foreign keys of permanent tables referencing one of `parents`.
fn foreign_keys_to(parents: &[pg_sys::Oid]) -> PResult<Vec<ForeignKey>> {
    crate::sql::rows(
        "SELECT c.conname::text, c.conrelid, c.confrelid, c.confdeltype::text,
                ARRAY(SELECT pg_catalog.quote_ident(a.attname)
                        FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY k(n, i)
                        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
                       ORDER BY k.i),
                ARRAY(SELECT pg_catalog.quote_ident(a.attname)
                        FROM pg_catalog.unnest(c.confkey) WITH ORDINALITY k(n, i)
                        JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n
                       ORDER BY k.i),
                ARRAY(SELECT 'OPERATOR(' || pg_catalog.quote_ident(o.nspname) || '.' || o.oprname || ')'
                        FROM pg_catalog.unnest(c.conpfeqop) WITH ORDINALITY e(op, i)
                        JOIN (SELECT p.oid, p.oprname::text, n.nspname
                                FROM pg_catalog.pg_operator p
                                JOIN pg_catalog.pg_namespace n ON n.oid = p.oprnamespace) o ON o.oid = e.op
                       ORDER BY e.i),
                pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(cc.relname),
                cc.relowner
           FROM pg_catalog.pg_constraint c
           JOIN pg_catalog.pg_class cc ON cc.oid = c.conrelid
           JOIN pg_catalog.pg_namespace cn ON cn.oid = cc.relnamespace
          WHERE c.contype = 'f' AND c.conparentid = 0
            AND c.confrelid = ANY ($1::pg_catalog.oid[]) AND cc.relpersistence <> 't'
          ORDER BY c.conrelid, c.conname",
        &[parents.to_vec().into()],
        |r| {
            Ok(ForeignKey {
                name: r.get(1)?.unwrap_or_default(),
                child: r.get(2)?.unwrap_or(pg_sys::Oid::INVALID),
                parent: r.get(3)?.unwrap_or(pg_sys::Oid::INVALID),
                on_delete: r.get(4)?.unwrap_or_default(),
                child_cols: r.get(5)?.unwrap_or_default(),
                parent_cols: r.get(6)?.unwrap_or_default(),
                ops: r.get(7)?.unwrap_or_default(),
                child_qname: r.get(8)?.unwrap_or_default(),
                child_owner: r.get(9)?.unwrap_or(pg_sys::Oid::INVALID),
            })
        },
    )
}

/// The strongly connected components of the foreign-key graph among
/// subject tables (edges child → parent), in processing order: a component
/// comes before every component it references (children first); among
/// those ready, the one holding the first table in name order.
fn components(n: usize, edges: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    // Tarjan's algorithm
    struct State<'a> {
        edges: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in s.edges[v].iter() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().expect("v is on the stack");
                s.on_stack[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            comp.sort_unstable();
            s.out.push(comp);
        }
    }
    let mut s = State {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    let comps = s.out;
    let mut comp_of = vec![0; n];
    for (ci, c) in comps.iter().enumerate() {
        for &v in c {
            comp_of[v] = ci;
        }
    }
    // waiting[d] = components with an edge into d not yet placed
    let mut waiting: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); comps.len()];
    for (v, parents) in edges.iter().enumerate() {
        for &p in parents {
            if comp_of[v] != comp_of[p] {
                waiting[comp_of[p]].insert(comp_of[v]);
            }
        }
    }
    let mut placed = vec![false; comps.len()];
    let mut order = Vec::with_capacity(comps.len());
    while order.len() < comps.len() {
        let next = (0..comps.len())
            .filter(|&c| !placed[c] && waiting[c].is_empty())
            .min_by_key(|&c| comps[c][0])
            .expect("the condensation of a graph has no cycle");
        placed[next] = true;
        order.push(comps[next].clone());
        for w in waiting.iter_mut() {
            w.remove(&next);
        }
    }
    order
}

/// How a subject table is erased.
#[derive(Clone)]
enum Mode {
    Delete,
    /// Kept for a legal obligation: `SET` list and "needs a change" test.
    Anonymize {
        sets: Vec<String>,
        needs_change: Vec<String>,
    },
}

impl Mode {
    fn main(&self) -> &'static str {
        match self {
            Mode::Delete => "deleted",
            Mode::Anonymize { .. } => "anonymized",
        }
    }
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

fn plan_mode(t: &SubjectTable, legal: &[String], subject: &str) -> PResult<Mode> {
    if !t.tags.iter().any(|c| is_legal(c, legal)) {
        return Ok(Mode::Delete);
    }
    let planned = crate::anonymize::plan(t.relid, None)?;
    if let Some(pred) = &t.predicate {
        // The table's rows get hashed with a key its owner must be allowed
        // to use (else the owner, writing chosen values, would read back
        // their pseudonyms). Refused only when the subject has rows there:
        // one table cannot block every other erasure.
        if let Err(e) = crate::anonymize::check_may_hash(
            &planned,
            t.owner,
            crate::anonymize::KeyUser::TableOwner(t.relid),
        ) {
            let sql = format!(
                "SELECT EXISTS (SELECT 1 FROM {} AS p__ WHERE p__.{pred})",
                t.qname
            );
            let present = as_owner(t.owner, || {
                Ok(crate::sql::opt::<bool>(&sql, &[subject.into()])?.unwrap_or(false))
            })?;
            if present {
                return Err(e);
            }
            // nothing to hash here, and a statement naming the function
            // would be refused even for no row
            return Ok(Mode::Anonymize {
                sets: Vec::new(),
                needs_change: Vec::new(),
            });
        }
    }
    let rewrites: Vec<_> = planned.into_iter().map(|p| p.rewrite).collect();
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

/// `EXISTS` over the key tuples in `arrays` (one array per key column, bound
/// as parameters): TRUE when the row `alias` has one of them. `alias_is_pk`:
/// the alias's columns are the referenced (parent) ones, the left operands
/// of the key's operators.
fn key_match(
    alias: &str,
    cols: &[String],
    ops: &[String],
    arrays: &[SqlValue],
    alias_is_pk: bool,
    params: &mut Params,
) -> String {
    let unnests: Vec<String> = arrays
        .iter()
        .map(|a| format!("pg_catalog.unnest({})", params.push(a.arg())))
        .collect();
    let names: Vec<String> = (1..=arrays.len()).map(|i| format!("k{i}")).collect();
    let conds: Vec<String> = cols
        .iter()
        .zip(ops)
        .zip(&names)
        .map(|((c, op), k)| {
            if alias_is_pk {
                format!("{alias}.{c} {op} k__.{k}")
            } else {
                format!("k__.{k} {op} {alias}.{c}")
            }
        })
        .collect();
    format!(
        "EXISTS (SELECT 1 FROM ROWS FROM ({}) AS k__({}) WHERE {})",
        unnests.join(", "),
        names.join(", "),
        conds.join(" AND ")
    )
}

/// `array_agg` of each column of `cols` over the rows of `table AS alias`
/// matching `cond`, with no NULL in the key: `None` when no row matches.
fn key_arrays(
    table: &str,
    alias: &str,
    cols: &[String],
    cond: &str,
    params: &Params,
) -> PResult<Option<Vec<SqlValue>>> {
    let aggs: Vec<String> = cols
        .iter()
        .map(|c| format!("pg_catalog.array_agg({alias}.{c})"))
        .collect();
    let not_null: Vec<String> = cols
        .iter()
        .map(|c| format!("{alias}.{c} IS NOT NULL"))
        .collect();
    let sql = format!(
        "SELECT {} FROM {table} AS {alias} WHERE ({cond}) AND {}",
        aggs.join(", "),
        not_null.join(" AND ")
    );
    Spi::connect(|c| {
        let row = c.select(&sql, Some(1), params.args())?.first();
        let mut out = Vec::with_capacity(cols.len());
        for i in 1..=cols.len() {
            match row.get::<SqlValue>(i)? {
                Some(v) => out.push(v),
                None => return Ok(None),
            }
        }
        Ok(Some(out))
    })
}

/// ctids (as text) of the rows a query returns in its first column.
fn ctids(sql: &str, params: &Params, write: bool) -> PResult<Vec<String>> {
    Spi::connect_mut(|c| {
        let rows = if write {
            c.update(sql, None, params.args())?
        } else {
            c.select(sql, None, params.args())?
        };
        Ok(rows
            .map(|r| r.get::<String>(1).map(|v| v.unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()?)
    })
}

fn count(sql: &str, params: &Params) -> PResult<i64> {
    Ok(crate::sql::opt::<i64>(sql, params.args())?.unwrap_or(0))
}

/// Rows changed by a `DELETE`/`UPDATE` (SPI's count: no `RETURNING`).
fn changed(sql: &str, params: &Params) -> PResult<i64> {
    Spi::connect_mut(|c| Ok(c.update(sql, None, params.args())?.len() as i64))
}

/// One line of an erasure: (table, its `schema.table` key, action, rows).
type Erased = (pg_sys::Oid, String, &'static str, i64);

struct Eraser<'a> {
    subject: &'a str,
    tables: &'a [SubjectTable],
    fks: &'a [ForeignKey],
    modes: Vec<Mode>,
    holds: ActiveHolds,
    /// the holds of each table visited, validated as its owner
    table_holds: HashMap<pg_sys::Oid, TableHolds>,
}

impl Eraser<'_> {
    fn subject_index(&self, relid: pg_sys::Oid) -> Option<usize> {
        self.tables.iter().position(|t| t.relid == relid)
    }

    fn params(&self) -> Params {
        Params::with(vec![self.subject.into()])
    }

    /// The holds of a table, its filters validated as its owner `owner`.
    fn holds_of(&mut self, relid: pg_sys::Oid, owner: pg_sys::Oid) -> PResult<TableHolds> {
        if let Some(h) = self.table_holds.get(&relid) {
            return Ok(h.clone());
        }
        let subject_col = self
            .subject_index(relid)
            .map(|i| self.tables[i].subject_col.clone());
        let active = &self.holds;
        let h = as_owner(owner, || active.for_table(relid, subject_col.as_ref()))?;
        self.table_holds.insert(relid, h.clone());
        Ok(h)
    }

    fn is_legal(&self, relid: pg_sys::Oid) -> bool {
        self.subject_index(relid)
            .is_some_and(|i| matches!(self.modes[i], Mode::Anonymize { .. }))
    }

    /// For each foreign key into table `i` from a table outside `comp`:
    /// the key values, among the subject's rows of `i`, that a kept row of
    /// the child references (held, a subject row the child kept, any row of
    /// a child kept for a legal obligation that ON DELETE CASCADE would
    /// delete). Read as the child's owner, from the keys read as `i`'s
    /// owner. (foreign key index, one array per key column)
    fn external_kept(&mut self, i: usize, comp: &[usize]) -> PResult<Vec<(usize, Vec<SqlValue>)>> {
        let Some(pred) = self.tables[i].predicate.clone() else {
            return Ok(Vec::new());
        };
        let (relid, owner, qname) = {
            let t = &self.tables[i];
            (t.relid, t.owner, t.qname.clone())
        };
        let fks = self.fks;
        let mut out = Vec::new();
        for (fi, fk) in fks.iter().enumerate() {
            if fk.parent != relid || fk.child == relid {
                continue;
            }
            let child = self.subject_index(fk.child);
            if child.is_some_and(|c| comp.contains(&c)) {
                continue;
            }
            let child_holds = self.holds_of(fk.child, fk.child_owner)?;
            let mut params = self.params();
            let mut kept = Vec::new();
            if self.is_legal(fk.child) && fk.on_delete == "c" {
                kept.push("true".to_string());
            }
            if let Some(h) = child_holds.predicate(&mut params) {
                kept.push(h);
            }
            // the child was erased before: its rows of the subject still
            // there are kept ones
            if let Some(cp) = child.and_then(|c| self.tables[c].predicate.as_ref()) {
                kept.push(format!("c__.{cp}"));
            }
            if kept.is_empty() {
                continue;
            }
            let keys = as_owner(owner, || {
                key_arrays(
                    &qname,
                    "p__",
                    &fk.parent_cols,
                    &format!("p__.{pred}"),
                    &self.params(),
                )
            })?;
            let Some(keys) = keys else {
                continue;
            };
            let m = key_match("c__", &fk.child_cols, &fk.ops, &keys, false, &mut params);
            let cond = format!("{m} AND ({})", kept.join(" OR "));
            let referenced = as_owner(fk.child_owner, || {
                key_arrays(&fk.child_qname, "c__", &fk.child_cols, &cond, &params)
            })?;
            if let Some(arrays) = referenced {
                out.push((fi, arrays));
            }
        }
        Ok(out)
    }

    /// Rows of untagged tables referencing a row about to be deleted through
    /// a RESTRICT / NO ACTION key: a clear error instead of PostgreSQL's.
    /// `doomed` builds the condition (over `p__`) of the rows to delete.
    fn check_restrict(&self, i: usize, doomed: &dyn Fn(&mut Params) -> String) -> PResult<()> {
        let t = &self.tables[i];
        for fk in self.fks.iter().filter(|f| {
            f.parent == t.relid
                && f.child != t.relid
                && matches!(f.on_delete.as_str(), "a" | "r")
                && self.subject_index(f.child).is_none()
        }) {
            // the count is told to the caller: only from a table it may read
            if !security::has_table_privilege(fk.child, "SELECT")? {
                continue; // PostgreSQL's own check reports it at DELETE time
            }
            let mut params = self.params();
            let cond = doomed(&mut params);
            let keys = as_owner(t.owner, || {
                key_arrays(&t.qname, "p__", &fk.parent_cols, &cond, &params)
            })?;
            let Some(keys) = keys else {
                continue;
            };
            let mut params = Params::default();
            let m = key_match("c__", &fk.child_cols, &fk.ops, &keys, false, &mut params);
            let n = as_owner(fk.child_owner, || {
                count(
                    &format!(
                        "SELECT pg_catalog.count(*) FROM {} AS c__ WHERE {m}",
                        fk.child_qname
                    ),
                    &params,
                )
            })?;
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

    fn run(&mut self, comps: &[Vec<usize>]) -> PResult<Vec<Erased>> {
        let mut out = Vec::new();
        for comp in comps {
            let single = comp.len() == 1 && {
                let relid = self.tables[comp[0]].relid;
                !self
                    .fks
                    .iter()
                    .any(|f| f.child == relid && f.parent == relid)
            };
            if single {
                self.erase_table(comp[0], &mut out)?;
            } else {
                self.erase_cycle(comp, &mut out)?;
            }
        }
        let subject = self.subject;
        let objections = security::as_extension_owner(|| {
            Ok(crate::sql::opt_mut::<i64>(
                "WITH d AS (DELETE FROM privacy.objections WHERE subject = $1 RETURNING 1)
                 SELECT pg_catalog.count(*) FROM d",
                &[subject.into()],
            )?
            .unwrap_or(0))
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

    /// A table in no foreign-key cycle: its kept rows are described by a
    /// predicate (holds, bound arrays of referenced keys), then one
    /// DELETE/UPDATE as its owner.
    fn erase_table(&mut self, i: usize, out: &mut Vec<Erased>) -> PResult<()> {
        let mode = self.modes[i].clone();
        let (relid, key, owner, qname) = {
            let t = &self.tables[i];
            (t.relid, t.key.clone(), t.owner, t.qname.clone())
        };
        let Some(pred) = self.tables[i].predicate.clone() else {
            out.push((relid, key, mode.main(), 0));
            return Ok(());
        };
        let holds = self.holds_of(relid, owner)?;
        let ext = self.external_kept(i, &[i])?;
        let fks = self.fks;
        // the SQL (over p__) that is TRUE for rows to keep, params added
        let protect = |params: &mut Params| -> String {
            let mut parts = Vec::new();
            if let Some(h) = holds.predicate(params) {
                parts.push(h);
            }
            for (fi, arrays) in &ext {
                let fk = &fks[*fi];
                parts.push(key_match(
                    "p__",
                    &fk.parent_cols,
                    &fk.ops,
                    arrays,
                    true,
                    params,
                ));
            }
            if parts.is_empty() {
                "false".into()
            } else {
                parts.join(" OR ")
            }
        };
        let held = {
            let mut params = self.params();
            let p = protect(&mut params);
            if p == "false" {
                0
            } else {
                as_owner(owner, || {
                    count(
                        &format!(
                            "SELECT pg_catalog.count(*) FROM {qname} AS p__ WHERE p__.{pred} AND COALESCE(({p}), false)"
                        ),
                        &params,
                    )
                })?
            }
        };
        let n = match &mode {
            Mode::Delete => {
                self.check_restrict(i, &|params: &mut Params| {
                    format!("p__.{pred} AND NOT COALESCE(({}), false)", protect(params))
                })?;
                let mut params = self.params();
                let p = protect(&mut params);
                as_owner(owner, || {
                    changed(
                        &format!(
                            "DELETE FROM {qname} AS p__ WHERE p__.{pred} AND NOT COALESCE(({p}), false)"
                        ),
                        &params,
                    )
                })?
            }
            Mode::Anonymize { sets, .. } if sets.is_empty() => 0,
            Mode::Anonymize { sets, needs_change } => {
                let mut params = self.params();
                let p = protect(&mut params);
                as_owner(owner, || {
                    changed(
                        &format!(
                            "UPDATE {qname} AS p__ SET {} WHERE p__.{pred} AND NOT COALESCE(({p}), false)
                                 AND ({})",
                            sets.join(", "),
                            needs_change.join(" OR ")
                        ),
                        &params,
                    )
                })?
            }
        };
        out.push((relid, key.clone(), mode.main(), n));
        if held > 0 {
            out.push((relid, key, "held", held));
        }
        Ok(())
    }

    /// The tables of a foreign-key cycle (one owner, checked when planning):
    /// the subject's rows are locked, the kept ones found until nothing
    /// changes, the others erased in one statement.
    fn erase_cycle(&mut self, comp: &[usize], out: &mut Vec<Erased>) -> PResult<()> {
        let with_rows: Vec<usize> = comp
            .iter()
            .copied()
            .filter(|&i| self.tables[i].predicate.is_some())
            .collect();
        let owner = self.tables[comp[0]].owner;
        if comp.iter().any(|&i| self.tables[i].owner != owner) {
            // several owners: planning made sure the subject has no row here
            for &i in comp {
                let t = &self.tables[i];
                out.push((t.relid, t.key.clone(), self.modes[i].main(), 0));
            }
            return Ok(());
        }
        // 1. the subject's rows, locked (their ctids then stay put)
        let mut subj: HashMap<usize, Vec<String>> = HashMap::new();
        for &i in &with_rows {
            let t = &self.tables[i];
            let pred = t.predicate.as_ref().expect("filtered");
            let params = self.params();
            let rows = as_owner(owner, || {
                ctids(
                    &format!(
                        "SELECT p__.ctid::pg_catalog.text FROM {} AS p__ WHERE p__.{pred} FOR UPDATE",
                        t.qname
                    ),
                    &params,
                    true,
                )
            })?;
            subj.insert(i, rows);
        }
        if subj.values().all(|v| v.is_empty()) {
            for &i in comp {
                let t = &self.tables[i];
                out.push((t.relid, t.key.clone(), self.modes[i].main(), 0));
            }
            return Ok(());
        }
        // 2. kept at first: held, or referenced from outside the cycle
        let mut protected: HashMap<usize, Vec<String>> = HashMap::new();
        for &i in &with_rows {
            let (relid, qname) = (self.tables[i].relid, self.tables[i].qname.clone());
            let holds = self.holds_of(relid, owner)?;
            let ext = self.external_kept(i, comp)?;
            let mut params = Params::default();
            let rows = params.push(subj[&i].clone());
            let mut parts = Vec::new();
            if let Some(h) = holds.predicate(&mut params) {
                parts.push(h);
            }
            for (fi, arrays) in &ext {
                let fk = &self.fks[*fi];
                parts.push(key_match(
                    "p__",
                    &fk.parent_cols,
                    &fk.ops,
                    arrays,
                    true,
                    &mut params,
                ));
            }
            let kept = if parts.is_empty() {
                Vec::new()
            } else {
                as_owner(owner, || {
                    ctids(
                        &format!(
                            "SELECT p__.ctid::pg_catalog.text FROM {qname} AS p__
                              WHERE p__.ctid = ANY (CAST({rows} AS pg_catalog.tid[]))
                                AND COALESCE(({}), false)",
                            parts.join(" OR ")
                        ),
                        &params,
                        false,
                    )
                })?
            };
            protected.insert(i, kept);
        }
        // 3. what kept rows reference is kept, until nothing changes
        let fks = self.fks;
        loop {
            let mut grew = false;
            for fk in fks {
                let (Some(ci), Some(pi)) =
                    (self.subject_index(fk.child), self.subject_index(fk.parent))
                else {
                    continue;
                };
                if !comp.contains(&ci) || !comp.contains(&pi) || !with_rows.contains(&pi) {
                    continue;
                }
                let child_holds = self.holds_of(fk.child, owner)?;
                let mut params = Params::default();
                let mut conds = Vec::new();
                // the child's kept rows: all of them in a table kept for a
                // legal obligation, else the protected ones
                let kept_c = if self.is_legal(fk.child) {
                    subj.get(&ci).cloned().unwrap_or_default()
                } else {
                    protected.get(&ci).cloned().unwrap_or_default()
                };
                if !kept_c.is_empty() {
                    let k = params.push(kept_c);
                    conds.push(format!("c__.ctid = ANY (CAST({k} AS pg_catalog.tid[]))"));
                }
                if let Some(h) = child_holds.predicate(&mut params) {
                    conds.push(h);
                }
                if self.is_legal(fk.child) && fk.on_delete == "c" {
                    conds.push("true".into());
                }
                if conds.is_empty() {
                    continue;
                }
                let rows = params.push(subj[&pi].clone());
                let prot = params.push(protected[&pi].clone());
                let new = as_owner(owner, || {
                    ctids(
                        &format!(
                            "SELECT p__.ctid::pg_catalog.text FROM {} AS p__
                              WHERE p__.ctid = ANY (CAST({rows} AS pg_catalog.tid[]))
                                AND NOT p__.ctid = ANY (CAST({prot} AS pg_catalog.tid[]))
                                AND EXISTS (SELECT 1 FROM {} AS c__ WHERE {} AND ({}))",
                            self.tables[pi].qname,
                            fk.child_qname,
                            fk.join(),
                            conds.join(" OR ")
                        ),
                        &params,
                        false,
                    )
                })?;
                if !new.is_empty() {
                    protected.get_mut(&pi).expect("listed").extend(new);
                    grew = true;
                }
            }
            if !grew {
                break;
            }
        }
        // references from untagged tables to rows about to go
        for &i in &with_rows {
            if matches!(self.modes[i], Mode::Delete) {
                let (rows, prot) = (subj[&i].clone(), protected[&i].clone());
                self.check_restrict(i, &|params: &mut Params| {
                    let r = params.push(rows.clone());
                    let k = params.push(prot.clone());
                    format!(
                        "p__.ctid = ANY (CAST({r} AS pg_catalog.tid[])) AND NOT p__.ctid = ANY (CAST({k} AS pg_catalog.tid[]))"
                    )
                })?;
            }
        }
        // 4. one statement for the whole cycle
        let mut params = Params::default();
        let mut ctes = Vec::new();
        let mut names = Vec::new();
        for (n, &i) in with_rows.iter().enumerate() {
            let t = &self.tables[i];
            let r = params.push(subj[&i].clone());
            let k = params.push(protected[&i].clone());
            let target = format!(
                "p__.ctid = ANY (CAST({r} AS pg_catalog.tid[])) AND NOT p__.ctid = ANY (CAST({k} AS pg_catalog.tid[]))"
            );
            let stmt = match &self.modes[i] {
                Mode::Delete => {
                    format!("DELETE FROM {} AS p__ WHERE {target} RETURNING 1", t.qname)
                }
                Mode::Anonymize { sets, .. } if sets.is_empty() => {
                    "SELECT 1 WHERE false".to_string()
                }
                Mode::Anonymize { sets, needs_change } => format!(
                    "UPDATE {} AS p__ SET {} WHERE {target} AND ({}) RETURNING 1",
                    t.qname,
                    sets.join(", "),
                    needs_change.join(" OR ")
                ),
            };
            ctes.push(format!("e{n} AS ({stmt})"));
            names.push(format!("(SELECT pg_catalog.count(*) FROM e{n})"));
        }
        let sql = format!("WITH {} SELECT {}", ctes.join(", "), names.join(", "));
        let counts: Vec<i64> = as_owner(owner, || {
            Spi::connect_mut(|c| {
                let row = c.update(&sql, None, params.args())?.first();
                let mut v = Vec::with_capacity(with_rows.len());
                for n in 1..=with_rows.len() {
                    v.push(row.get::<i64>(n)?.unwrap_or(0));
                }
                Ok(v)
            })
        })?;
        for &i in comp {
            let t = &self.tables[i];
            let main = self.modes[i].main();
            match with_rows.iter().position(|&w| w == i) {
                Some(n) => {
                    out.push((t.relid, t.key.clone(), main, counts[n]));
                    let held = protected[&i].len() as i64;
                    if held > 0 {
                        out.push((t.relid, t.key.clone(), "held", held));
                    }
                }
                None => out.push((t.relid, t.key.clone(), main, 0)),
            }
        }
        Ok(())
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
    audit::entry_quiet(|| {
        let subject = need(subject, "subject")?;
        let dry_run = need(dry_run, "dry_run")?;
        let pseudonym = pseudonym(subject)?;
        audit::logged(
            "forget_subject",
            &pseudonym,
            &json!({ "dry_run": dry_run }),
            || {
                let result = Scope::pinned()
                    .qualified_names()
                    .run(|| forget(subject, dry_run))?;
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
            },
        )
    })
}

fn forget(subject: &str, dry_run: bool) -> PResult<Vec<Erased>> {
    let tables = subject_tables(subject)?;
    let relids: Vec<pg_sys::Oid> = tables.iter().map(|t| t.relid).collect();
    let fks = foreign_keys_to(&relids)?;
    let idx: HashMap<pg_sys::Oid, usize> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (t.relid, i))
        .collect();
    let mut edges = vec![BTreeSet::new(); tables.len()];
    for fk in &fks {
        if let (Some(&c), Some(&p)) = (idx.get(&fk.child), idx.get(&fk.parent)) {
            if c != p {
                edges[c].insert(p);
            }
        }
    }
    let comps = components(tables.len(), &edges);
    let legal = legal_obligation_purposes()?;
    // Everything the caller must be allowed, checked before any change.
    let mut modes = Vec::with_capacity(tables.len());
    for t in &tables {
        if t.predicate.is_some() {
            refuse_row_security(t, "erasure")?;
            let write = if t.tags.iter().any(|c| is_legal(c, &legal)) {
                "UPDATE"
            } else {
                "DELETE"
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
                    .with_hint("forget_subject checks the caller's privileges: it needs SELECT and DELETE on every table with a SUBJECT column (UPDATE where rows are kept for a legal obligation); it then changes each table as the table's owner."));
                }
            }
            as_owner(t.owner, || refuse_owner_row_security(t, "erasure"))?;
        }
        modes.push(plan_mode(t, &legal, subject)?);
    }
    // A foreign-key cycle holding rows of the subject is erased in one
    // statement, by one owner.
    for comp in comps.iter().filter(|c| c.len() > 1) {
        let owners: BTreeSet<u32> = comp.iter().map(|&i| u32::from(tables[i].owner)).collect();
        if owners.len() < 2 {
            continue;
        }
        let mut present = false;
        for &i in comp {
            let t = &tables[i];
            let Some(pred) = &t.predicate else { continue };
            let sql = format!(
                "SELECT EXISTS (SELECT 1 FROM {} AS p__ WHERE p__.{pred})",
                t.qname
            );
            present |= as_owner(t.owner, || {
                Ok(crate::sql::opt::<bool>(&sql, &[subject.into()])?.unwrap_or(false))
            })?;
        }
        if present {
            let names: Vec<&str> = comp.iter().map(|&i| tables[i].key.as_str()).collect();
            return Err(PrivacyError::object_state(format!(
                "cannot erase the subject from tables {}: their foreign keys form a cycle and they have different owners",
                names.join(", ")
            ))
            .with_detail("The rows of a foreign-key cycle are erased in one statement, which runs as one owner; nothing was changed.")
            .with_hint("Give the tables of the cycle one owner, or remove the SUBJECT mark from one of them (its rows then follow the foreign keys' ON DELETE actions)."));
        }
    }
    notice_missing_indexes(&tables)?;
    let as_of = Spi::get_one::<TimestampWithTimeZone>("SELECT pg_catalog.now()")?
        .ok_or_else(|| PrivacyError::internal("now() returned NULL"))?;
    let mut eraser = Eraser {
        subject,
        tables: &tables,
        fks: &fks,
        modes,
        holds: ActiveHolds::load(as_of)?,
        table_holds: HashMap::new(),
    };
    if dry_run {
        rolled_back(|| eraser.run(&comps))
    } else {
        eraser.run(&comps)
    }
}

#[cfg(test)]
mod unit {
    use super::{components, parses_as_int, parses_as_uuid};
    use std::collections::BTreeSet;

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

    fn graph(n: usize, edges: &[(usize, usize)]) -> Vec<Vec<usize>> {
        let mut g = vec![BTreeSet::new(); n];
        for &(c, p) in edges {
            g[c].insert(p);
        }
        components(n, &g)
    }

    #[test]
    fn components_come_children_first() {
        // 0 accounts <- 1 orders <- 2 lines; 3 alone
        assert_eq!(
            graph(4, &[(1, 0), (2, 1)]),
            vec![vec![2], vec![1], vec![0], vec![3]]
        );
        // without edges: name order
        assert_eq!(graph(3, &[]), vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn cycles_are_one_component_and_do_not_block_the_others() {
        // 0 <-> 1 form a cycle; 2 references 0; 3 is referenced by 1
        let order = graph(4, &[(0, 1), (1, 0), (2, 0), (1, 3)]);
        assert_eq!(order, vec![vec![2], vec![0, 1], vec![3]]);
        // a three-table cycle with a tail
        let order = graph(5, &[(0, 1), (1, 2), (2, 0), (4, 2)]);
        assert_eq!(order, vec![vec![3], vec![4], vec![0, 1, 2]]);
    }
}
