//! `privacy.processing_record()`: the record of processing activities (GDPR
//! Art. 30(1)) built from pg_privacy's catalog, as `jsonb`, and
//! `privacy.processing_record_markdown()`, the same as a document a DPO can
//! hand over (rendered by `markdown`).
//!
//! ```text
//! { "generated_at", "database",
//!   "controller": {name, contact, representative, dpo: {name, contact}} | null,   (a)
//!   "purposes": [ {name, description, legal_basis,                                (b)
//!                  "data_categories": [ {category, columns: ["s.t.c", …]} ],      (c)
//!                  "data_subjects": ["s.t", …],                                   (c)
//!                  "retention": ["policy", …],                                    (f)
//!                  "recipients": ["name", …] } ],                                 (d)
//!   "data_subject_categories": [ {table, subject_column, description} ],          (c)
//!   "recipients": [ {name, description, purposes, country, third_country, safeguards} ],  (d)
//!   "transfers":  [ the recipients in a third country ],                          (e)
//!   "retention_policies": [ {name, table, anchor, keep_for, action, row_filter,   (f)
//!                            purpose, schedule_interval, enabled, last_successful_run} ],
//!   "technical_measures": {                                                       (g)
//!       "pseudonymization_keys": [ {name, version, fingerprint, active_since, age_days} ],
//!       "anonymization": [ {column, method} ],
//!       "legal_holds_in_force": {count, tables: [..], subject_holds},
//!       "audit_log": {entries, since} } }
//! ```
//! A column counts for a purpose when its tag names it; a table's data
//! subjects are those of its SUBJECT column; a table's retention is the
//! policies on it or on a table it is a partition of. Holds are counted,
//! never listed by subject (a subject hold names the person).

use super::catalog;
use crate::audit;
use crate::error::PResult;
use crate::security::as_extension_owner;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// `privacy.processing_record()`.
#[pg_extern(volatile, parallel_unsafe)]
fn processing_record() -> JsonB {
    JsonB(audit::entry("processing_record", build))
}

/// `privacy.processing_record_markdown()`.
#[pg_extern(volatile, parallel_unsafe)]
fn processing_record_markdown() -> String {
    let doc = audit::entry("processing_record", build);
    super::markdown::record(&doc)
}

/// One `jsonb` value from a query (`Null` when no row).
fn one_json(query: &str) -> PResult<Value> {
    Ok(crate::sql::opt::<JsonB>(query, &[])?
        .map(|j| j.0)
        .unwrap_or(Value::Null))
}

/// Build the record (see the module documentation).
pub fn build() -> PResult<Value> {
    let cat = catalog::load()?;
    let head = one_json(
        "SELECT pg_catalog.jsonb_build_object(
                  'generated_at', pg_catalog.to_char(pg_catalog.now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                  'database', pg_catalog.current_database())",
    )?;
    let (controller, purposes, recipients, subject_desc, holds, audit_log) = as_extension_owner(
        || {
            let controller = super::declarations::controller()?;
            let purposes = crate::sql::rows(
                "SELECT name, description, legal_basis FROM privacy.purposes ORDER BY name",
                &[],
                |r| {
                    Ok((
                        r.get::<String>(1)?.unwrap_or_default(),
                        r.get::<String>(2)?,
                        r.get::<String>(3)?.unwrap_or_default(),
                    ))
                },
            )?;
            let recipients = super::declarations::recipients()?;
            let subject_desc: BTreeMap<u32, String> = crate::sql::rows(
                "SELECT table_name::pg_catalog.oid, description FROM privacy.subject_categories",
                &[],
                |r| {
                    Ok((
                        r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::Oid::INVALID),
                        r.get::<String>(2)?.unwrap_or_default(),
                    ))
                },
            )?
            .into_iter()
            .map(|(o, d)| (u32::from(o), d))
            .collect();
            let holds = crate::sql::rows(
                "SELECT h.table_name::pg_catalog.oid
                   FROM privacy.legal_holds h
                  WHERE h.released_at IS NULL
                    AND (h.until IS NULL OR h.until OPERATOR(pg_catalog.>) pg_catalog.now())",
                &[],
                |r| Ok(r.get::<pg_sys::Oid>(1)?),
            )?;
            let audit_log = one_json(
                "SELECT pg_catalog.jsonb_build_object('entries', pg_catalog.count(*),
                        'since', pg_catalog.to_char(pg_catalog.min(a.at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))
                   FROM privacy.audit_log a",
            )?;
            Ok((
                controller,
                purposes,
                recipients,
                subject_desc,
                holds,
                audit_log,
            ))
        },
    )?;
    let keys = crate::sql::rows(
        "SELECT k.name, k.version, k.fingerprint,
                pg_catalog.to_char(k.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                pg_catalog.date_part('day', pg_catalog.now() OPERATOR(pg_catalog.-) k.created_at)::pg_catalog.int4
           FROM privacy.keys k
          WHERE k.active AND pg_catalog.left(k.name, 1) OPERATOR(pg_catalog.<>) '_'
          ORDER BY k.name",
        &[],
        |r| {
            Ok(json!({
                "name": r.get::<String>(1)?,
                "version": r.get::<i32>(2)?,
                "fingerprint": r.get::<String>(3)?,
                "active_since": r.get::<String>(4)?,
                "age_days": r.get::<i32>(5)?,
            }))
        },
    )?;

    // purposes → categories → columns; tables per purpose
    let tables = cat.by_name();
    let mut subject_categories = Vec::new();
    let mut anonymization = Vec::new();
    for t in &tables {
        if t.parent.is_some() {
            continue;
        }
        if let Some(s) = t.subject() {
            subject_categories.push(json!({
                "table": t.qname,
                "subject_column": s.name,
                "description": subject_desc.get(&u32::from(t.oid)),
            }));
        }
        for c in t.tagged() {
            if let Some(m) = c.label.as_ref().and_then(|l| l.anonymize.as_ref()) {
                anonymization
                    .push(json!({ "column": t.column_ref(&c.name), "method": m.to_string() }));
            }
        }
    }
    let mut out_purposes = Vec::new();
    for (name, description, basis) in &purposes {
        let mut categories: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut subjects: Vec<String> = Vec::new();
        let mut retention: Vec<String> = Vec::new();
        for t in &tables {
            if t.parent.is_some() {
                continue;
            }
            let mut uses = false;
            for c in t.tagged() {
                let l = c.label.as_ref().expect("tagged");
                if l.purposes.contains(name) {
                    uses = true;
                    categories
                        .entry(l.category.clone().unwrap_or_else(|| "uncategorized".into()))
                        .or_default()
                        .push(t.column_ref(&c.name));
                }
            }
            if uses {
                if t.subject().is_some() {
                    subjects.push(t.qname.clone());
                }
                for p in cat.policies_covering(t.oid) {
                    if !retention.contains(&p.name) {
                        retention.push(p.name.clone());
                    }
                }
            }
        }
        let recips: Vec<Value> = recipients
            .iter()
            .filter(|r| {
                r["purposes"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|p| p == name.as_str()))
            })
            .map(|r| r["name"].clone())
            .collect();
        out_purposes.push(json!({
            "name": name,
            "description": description,
            "legal_basis": basis,
            "data_categories": categories.into_iter()
                .map(|(c, cols)| json!({ "category": c, "columns": cols }))
                .collect::<Vec<_>>(),
            "data_subjects": subjects,
            "retention": retention,
            "recipients": recips,
        }));
    }
    let policies: Vec<Value> = cat
        .policies
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "table": cat.table(p.table).map(|t| t.qname.clone()),
                "anchor": p.anchor,
                "keep_for": p.keep_for,
                "action": p.action,
                "row_filter": p.row_filter,
                "purpose": p.purpose,
                "schedule_interval": p.schedule_interval,
                "enabled": p.enabled,
                "last_run_at": p.last_run_at,
                "last_status": p.last_status,
                "last_successful_run": p.last_success,
            })
        })
        .collect();
    let transfers: Vec<Value> = recipients
        .iter()
        .filter(|r| r["third_country"] == json!(true))
        .cloned()
        .collect();
    let mut hold_tables: Vec<String> = holds
        .iter()
        .flatten()
        .filter_map(|o| cat.table(*o).map(|t| t.qname.clone()))
        .collect();
    hold_tables.sort();
    hold_tables.dedup();
    let subject_holds = holds.iter().filter(|o| o.is_none()).count();

    let mut doc = Map::new();
    if let Value::Object(h) = head {
        doc.extend(h);
    }
    doc.insert("controller".into(), controller);
    doc.insert("purposes".into(), Value::Array(out_purposes));
    doc.insert(
        "data_subject_categories".into(),
        Value::Array(subject_categories),
    );
    doc.insert("recipients".into(), Value::Array(recipients));
    doc.insert("transfers".into(), Value::Array(transfers));
    doc.insert("retention_policies".into(), Value::Array(policies));
    doc.insert(
        "technical_measures".into(),
        json!({
            "pseudonymization_keys": keys,
            "anonymization": anonymization,
            "legal_holds_in_force": {
                "count": holds.len(),
                "tables": hold_tables,
                "subject_holds": subject_holds,
            },
            "audit_log": audit_log,
        }),
    );
    Ok(Value::Object(doc))
}
