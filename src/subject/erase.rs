//! Erasure: `forget_subject` (see the module documentation of `subject`
//! for the plan): each table's kept rows (holds, rows a kept row references)
//! described by a predicate, then one `DELETE`/`UPDATE` per table as its
//! owner, or one statement for a foreign-key cycle.

use super::fkgraph::{components, foreign_keys_to, key_arrays, key_match, ForeignKey};
use super::{as_owner, pseudonym, refuse_owner_row_security, refuse_row_security};
use super::{notice_missing_indexes, subject_tables, SubjectMatch, SubjectTable};
use crate::audit;
use crate::error::{PResult, PrivacyError};
use crate::labels::tags::ColumnTag;
use crate::retention::holds::{ActiveHolds, TableHolds};
use crate::security::{self, Scope};
use crate::sql::{Params, Value as SqlValue};
use crate::types::Regclass;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};

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

fn is_legal(tag: &ColumnTag, legal: &[String]) -> bool {
    tag.label.purposes.iter().any(|p| legal.contains(p))
}

/// Whether the subject has rows in table `t` (read as its owner).
fn has_rows(t: &SubjectTable, pred: &SubjectMatch) -> PResult<bool> {
    let mut params = Params::default();
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {} AS p__ WHERE {})",
        t.qname,
        pred.sql("p__", &mut params)
    );
    as_owner(t.owner, || {
        Ok(crate::sql::opt::<bool>(&sql, params.args())?.unwrap_or(false))
    })
}

fn plan_mode(t: &SubjectTable, legal: &[String]) -> PResult<Mode> {
    if !t.tags.iter().any(|c| is_legal(c, legal)) {
        return Ok(Mode::Delete);
    }
    let planned = crate::retention::anonymize::plan(t.relid, None)?;
    if let Some(pred) = &t.predicate {
        // The table's rows get hashed with a key its owner must be allowed
        // to use (else the owner, writing chosen values, would read back
        // their pseudonyms). Refused only when the subject has rows there:
        // one table cannot block every other erasure.
        if let Err(e) = crate::retention::anonymize::check_may_hash(
            &planned,
            t.owner,
            crate::labels::methods::KeyUser::TableOwner(t.relid),
        ) {
            if has_rows(t, pred)? {
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
                sets.push(r.set_item());
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
            let mut params = Params::default();
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
                kept.push(cp.sql("c__", &mut params));
            }
            if kept.is_empty() {
                continue;
            }
            let mut own = Params::default();
            let mine = pred.sql("p__", &mut own);
            let keys = as_owner(owner, || {
                key_arrays(&qname, "p__", &fk.parent_cols, &mine, &own)
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
            let mut params = Params::default();
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
            let mut params = Params::default();
            let p = protect(&mut params);
            if p == "false" {
                0
            } else {
                let m = pred.sql("p__", &mut params);
                as_owner(owner, || {
                    count(
                        &format!(
                            "SELECT pg_catalog.count(*) FROM {qname} AS p__ WHERE {m} AND COALESCE(({p}), false)"
                        ),
                        &params,
                    )
                })?
            }
        };
        let n = match &mode {
            Mode::Delete => {
                self.check_restrict(i, &|params: &mut Params| {
                    let m = pred.sql("p__", params);
                    format!("{m} AND NOT COALESCE(({}), false)", protect(params))
                })?;
                let mut params = Params::default();
                let m = pred.sql("p__", &mut params);
                let p = protect(&mut params);
                as_owner(owner, || {
                    changed(
                        &format!(
                            "DELETE FROM {qname} AS p__ WHERE {m} AND NOT COALESCE(({p}), false)"
                        ),
                        &params,
                    )
                })?
            }
            Mode::Anonymize { sets, .. } if sets.is_empty() => 0,
            Mode::Anonymize { sets, needs_change } => {
                let mut params = Params::default();
                let m = pred.sql("p__", &mut params);
                let p = protect(&mut params);
                as_owner(owner, || {
                    changed(
                        &format!(
                            "UPDATE {qname} AS p__ SET {} WHERE {m} AND NOT COALESCE(({p}), false)
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

    /// A line with 0 rows for each table of `comp`.
    fn nothing_erased(&self, comp: &[usize], out: &mut Vec<Erased>) {
        for &i in comp {
            let t = &self.tables[i];
            out.push((t.relid, t.key.clone(), self.modes[i].main(), 0));
        }
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
            self.nothing_erased(comp, out);
            return Ok(());
        }
        // 1. the subject's rows, locked (their ctids then stay put)
        let mut subj: HashMap<usize, Vec<String>> = HashMap::new();
        for &i in &with_rows {
            let t = &self.tables[i];
            let mut params = Params::default();
            let m = t
                .predicate
                .as_ref()
                .expect("filtered")
                .sql("p__", &mut params);
            let rows = as_owner(owner, || {
                ctids(
                    &format!(
                        "SELECT p__.ctid::pg_catalog.text FROM {} AS p__ WHERE {m} FOR UPDATE",
                        t.qname
                    ),
                    &params,
                    true,
                )
            })?;
            subj.insert(i, rows);
        }
        if subj.values().all(|v| v.is_empty()) {
            self.nothing_erased(comp, out);
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

/// One row of `forget_subject`'s result: table, action, rows.
pub type ForgetRow = (Regclass, String, i64);

/// `forget_subject(subject, dry_run)`: erase the subject; one row per
/// table per action.
pub fn forget_subject(subject: &str, dry_run: bool) -> PResult<Vec<ForgetRow>> {
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
            Ok(rows)
        },
    )
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
    let legal = crate::catalog::legal_obligation_purposes()?;
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
        modes.push(plan_mode(t, &legal)?);
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
            present |= has_rows(t, pred)?;
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
        crate::sql::subxact::rolled_back(|| eraser.run(&comps))
    } else {
        eraser.run(&comps)
    }
}
