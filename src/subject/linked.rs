//! The subject's foreign-key graph beyond the subject tables: a tagged
//! table without a `SUBJECT` column whose rows the subject's rows reference
//! through a foreign key (`customer.address_id -> address`) holds the
//! subject's data too. Its referenced rows are exported with the subject
//! (once, however many of the subject's rows reference them) and erased
//! with it when no other row references them any more (`erase`).
//!
//! The caller's rights on such a table are checked up front, as for the
//! subject tables (SELECT, and DELETE for an erasure; no row-level security
//! filtering the caller's view), but only when the subject's rows reference
//! some of its rows. Every statement runs as the owner of the table it
//! reads or changes, restricted; the key values travel between owners as
//! bound arrays.

use super::fkgraph::{key_arrays, key_match};
use super::{as_owner, SubjectTable};
use crate::catalog::{self, ForeignKey};
use crate::error::{PResult, PrivacyError};
use crate::labels::tags::{self, ColumnTag};
use crate::security;
use crate::sql::{Params, Value as SqlValue};
use pgrx::prelude::*;

/// A tagged table without a SUBJECT column that subject tables reference.
pub(super) struct Linked {
    pub relid: pg_sys::Oid,
    /// quoted `schema.table`
    pub qname: String,
    /// `schema.table` as written (the export's key)
    pub key: String,
    pub owner: pg_sys::Oid,
    pub tags: Vec<ColumnTag>,
    rls_active: bool,
    can_select: bool,
    can_delete: bool,
    /// the foreign keys from subject tables to it
    keys: Vec<(usize, ForeignKey)>,
}

/// The key values the subject's rows hold, per foreign key of a
/// [`Linked`] table: (index into its keys, one array per key column).
pub(super) type LinkedKeys = Vec<(usize, Vec<SqlValue>)>;

/// The tagged tables without a SUBJECT column that the subject tables
/// reference through a foreign key (one step), by name.
pub(super) fn linked_tables(tables: &[SubjectTable]) -> PResult<Vec<Linked>> {
    let relids: Vec<pg_sys::Oid> = tables.iter().map(|t| t.relid).collect();
    let mut out: Vec<Linked> = Vec::new();
    for fk in catalog::foreign_keys_from(&relids)? {
        let Some(ci) = relids.iter().position(|&r| r == fk.child) else {
            continue;
        };
        if let Some(l) = out.iter_mut().find(|l| l.relid == fk.parent) {
            l.keys.push((ci, fk));
            continue;
        }
        let tags = tags::table_tags(fk.parent)?;
        if tags.is_empty() {
            continue;
        }
        // (`indexed` is about a subject column: unused here)
        let Some(f) = catalog::subject_table_facts(&[fk.parent], &[0])?
            .into_iter()
            .next()
        else {
            continue;
        };
        out.push(Linked {
            relid: fk.parent,
            qname: f.qname,
            key: f.key,
            owner: f.owner,
            tags,
            rls_active: f.rls_active,
            can_select: f.can_select,
            can_delete: f.can_delete,
            keys: vec![(ci, fk)],
        });
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// For each foreign key of `l`, the key values the subject's rows of the
/// referencing table hold (read as that table's owner). Empty when the
/// subject's rows reference nothing there.
pub(super) fn linked_keys(l: &Linked, tables: &[SubjectTable]) -> PResult<LinkedKeys> {
    let mut out = Vec::new();
    for (ki, (child, fk)) in l.keys.iter().enumerate() {
        let t = &tables[*child];
        let Some(pred) = &t.predicate else { continue };
        let mut params = Params::default();
        let cond = pred.sql("c__", &mut params);
        let keys = as_owner(t.owner, || {
            key_arrays(&t.qname, "c__", &fk.child_cols, &cond, &params)
        })?;
        if let Some(arrays) = keys {
            out.push((ki, arrays));
        }
    }
    Ok(out)
}

/// SQL over `p__` (a row of `l`) true for the rows the key values
/// reference, parameters added to `params`.
pub(super) fn linked_match(l: &Linked, keys: &LinkedKeys, params: &mut Params) -> String {
    let parts: Vec<String> = keys
        .iter()
        .map(|(ki, arrays)| {
            let fk = &l.keys[*ki].1;
            key_match("p__", &fk.parent_cols, &fk.ops, arrays, true, params)
        })
        .collect();
    format!("({})", parts.join(" OR "))
}

/// Refuse (42501) a linked table the caller may not read (or, for an
/// erasure, delete from), or whose rows row-level security filters: the
/// subject's data there would be silently missed.
pub(super) fn check_linked_rights(l: &Linked, erase: bool) -> PResult<()> {
    let what = if erase { "erasure" } else { "export" };
    if l.rls_active {
        return Err(PrivacyError::insufficient_privilege(format!(
            "row-level security is active on table {} for role \"{}\": the {what} could miss rows",
            l.key,
            security::current_role_name()
        ))
        .with_hint("Run it as the table owner or as a role with BYPASSRLS."));
    }
    let privilege = if !l.can_select {
        "SELECT"
    } else if erase && !l.can_delete {
        "DELETE"
    } else {
        return Ok(());
    };
    Err(PrivacyError::insufficient_privilege(format!(
        "permission denied to {} the subject's rows of table {}: {privilege} is needed",
        if erase { "erase" } else { "export" },
        l.key
    ))
    .with_detail("The subject's rows reference rows of that tagged table through a foreign key; they belong to the subject's data.")
    .with_hint("Grant the privilege, or remove the table's tags if its rows are not personal data."))
}

/// Refuse a linked table whose owner, who reads and changes it, is subject
/// to its own row-level security. Call it as the owner.
pub(super) fn refuse_owner_row_security(l: &Linked, what: &str) -> PResult<()> {
    let forced = crate::sql::opt::<bool>(
        "SELECT pg_catalog.row_security_active($1)",
        &[l.relid.into()],
    )?
    .unwrap_or(false);
    if forced {
        return Err(PrivacyError::insufficient_privilege(format!(
            "row-level security is forced on table {} for its owner \"{}\": the {what} could miss rows",
            l.key,
            security::role_name(l.owner)
        ))
        .with_hint("The subject's rows are read and changed as the table's owner: ALTER TABLE … NO FORCE ROW LEVEL SECURITY, or let the owner see every row."));
    }
    Ok(())
}
