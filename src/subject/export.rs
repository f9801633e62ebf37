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
    let pseudonym = pseudonym(subject)?;
    audit::logged("export_subject", &pseudonym, &json!({}), || {
        let (doc, rows) = export(subject)?;
        audit::record(
            "export_subject",
            &pseudonym,
            json!({ "subject_pseudonym": pseudonym, "tables": doc["tables"].as_object().map(|o| o.len()), "rows": rows }),
        )?;
        Ok(JsonB(doc))
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
            json!({ "columns": columns_of(&l.tags), "rows": rows }),
        );
    }
    for t in &tables {
        let columns = columns_of(&t.tags);
        let rows = match &t.predicate {
            Some(pred) => export_rows(t, pred)?,
            None => Vec::new(),
        };
        total += rows.len();
        out_tables.insert(t.key.clone(), json!({ "columns": columns, "rows": rows }));
    }
    Ok((
        json!({ "subject": subject, "exported_at": exported_at, "tables": Value::Object(out_tables) }),
        total,
    ))
}

/// The export's description of a table's tagged columns.
fn columns_of(tags: &[ColumnTag]) -> Value {
    let mut columns = Map::new();
    for c in tags {
        columns.insert(
            c.name.clone(),
            json!({ "purposes": c.label.purposes, "category": c.label.category }),
        );
    }
    Value::Object(columns)
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
