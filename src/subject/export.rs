//! Access: `export_subject`, every tagged value of the subject as one
//! jsonb document, each table read as its owner. The rows the subject's
//! rows reference in tagged tables without a SUBJECT column (`linked`: the
//! customer's address) are exported too, each once.

use super::linked::{self, check_linked_rights, linked_keys, linked_match, linked_tables};
use super::{as_owner, pseudonym, refuse_owner_row_security, refuse_row_security};
use super::{notice_missing_indexes, subject_tables, SubjectMatch, SubjectTable};
use crate::audit;
use crate::error::{PResult, PrivacyError};
use crate::labels::tags::ColumnTag;
use crate::sql::Params;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};

/// `export_subject(subject)`: everything tagged that the database
/// holds about the subject, as one jsonb document.
pub fn export_subject(subject: &str) -> PResult<JsonB> {
    Ok(JsonB(export_logged(subject, None)?))
}

/// An export, audited and logged like every export; `format` (e.g.
/// `markdown`) is recorded with it when the document is rendered.
pub fn export_logged(subject: &str, format: Option<&str>) -> PResult<Value> {
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
    // the rows the subject's rows reference in tagged tables without a
    // SUBJECT column (the customer's address): the caller's rights first
    let linked = linked_tables(&tables)?;
    let mut linked_rows = Vec::with_capacity(linked.len());
    for l in &linked {
        let keys = linked_keys(l, &tables)?;
        if !keys.is_empty() {
            check_linked_rights(l, false)?;
        }
        linked_rows.push(keys);
    }
    notice_missing_indexes(&tables)?;
    let exported_at = Spi::get_one::<JsonB>("SELECT pg_catalog.to_jsonb(pg_catalog.now())")?
        .map(|j| j.0)
        .unwrap_or(Value::Null);
    let mut out_tables = Map::new();
    let mut total = 0;
    // Art. 15 (legal bases, retention, objections…): reports::access
    let mut access = crate::reports::access::Context::load()?;
    for (l, keys) in linked.iter().zip(&linked_rows) {
        let rows = if keys.is_empty() {
            Vec::new()
        } else {
            let mut params = Params::default();
            let m = linked_match(l, keys, &mut params);
            as_owner(l.owner, || {
                linked::refuse_owner_row_security(l, "export")?;
                select_tagged(l.relid, &l.qname, &l.tags, &m, params.args())
            })?
        };
        total += rows.len();
        out_tables.insert(
            l.key.clone(),
            json!({ "columns": columns_of(&mut access, l.relid, &l.tags)?, "rows": rows,
                    "retention": access.table_retention(l.relid)? }),
        );
    }
    for t in &tables {
        let columns = columns_of(&mut access, t.relid, &t.tags)?;
        let rows = match &t.predicate {
            Some(pred) => export_rows(t, pred)?,
            None => Vec::new(),
        };
        total += rows.len();
        out_tables.insert(
            t.key.clone(),
            json!({ "columns": columns, "rows": rows,
                    "retention": access.table_retention(t.relid)? }),
        );
    }
    let mut doc = json!({ "subject": subject, "exported_at": exported_at, "tables": Value::Object(out_tables) });
    access.complete(&mut doc, subject)?;
    Ok((doc, total))
}

/// The export's description of a table's tagged columns (with their
/// Art. 15 details, `reports::access`).
fn columns_of(
    access: &mut crate::reports::access::Context,
    relid: pg_sys::Oid,
    tags: &[ColumnTag],
) -> PResult<Value> {
    let mut columns = Map::new();
    for c in tags {
        columns.insert(c.name.clone(), access.column(relid, &c.label)?);
    }
    Ok(Value::Object(columns))
}

/// The subject's rows of one table, tagged columns only, each value as
/// PostgreSQL renders it in JSON (`to_jsonb`, which calls the output
/// functions of the columns' types: as the table's owner), in primary key
/// order.
fn export_rows(t: &SubjectTable, pred: &SubjectMatch) -> PResult<Vec<Value>> {
    as_owner(t.owner, || {
        refuse_owner_row_security(t, "export")?;
        let mut params = Params::default();
        let cond = pred.sql("p__", &mut params);
        select_tagged(t.relid, &t.qname, &t.tags, &cond, params.args())
    })
}

/// The tagged columns of the rows of `relid AS p__` matching `cond`, as
/// JSON objects, in primary key order. Call it as the table's owner.
fn select_tagged(
    relid: pg_sys::Oid,
    qname: &str,
    tags: &[ColumnTag],
    cond: &str,
    args: &[DatumWithOid],
) -> PResult<Vec<Value>> {
    let select: Vec<String> = tags
        .iter()
        .map(|c| {
            format!(
                "pg_catalog.to_jsonb(p__.{})",
                spi::quote_identifier(&c.name)
            )
        })
        .collect();
    let pk = crate::catalog::primary_key(relid)?;
    let order = pk.map(|k| format!(" ORDER BY {k}")).unwrap_or_default();
    let sql = format!(
        "SELECT {} FROM {qname} AS p__ WHERE {cond}{order}",
        select.join(", ")
    );
    Spi::connect(|c| {
        let mut out = Vec::new();
        for row in c.select(&sql, None, args)? {
            let mut obj = Map::new();
            for (i, col) in tags.iter().enumerate() {
                let v = row.get::<JsonB>(i + 1)?.map(|j| j.0).unwrap_or(Value::Null);
                obj.insert(col.name.clone(), v);
            }
            out.push(Value::Object(obj));
        }
        Ok(out)
    })
}
