//! What `privacy.export_subject` adds so that the answer to an access
//! request is complete (GDPR Art. 15(1)): per column the purposes with
//! their legal bases and the retention that applies, per table the
//! retention policies, and for the whole export the purposes, the
//! objections on record, the controller and the recipients (Art. 15(1)(a),
//! (b), (c), (d)). The keys the export had before (`subject`,
//! `exported_at`, `tables.*.columns.*.purposes/category`,
//! `tables.*.rows`) are unchanged.
//!
//! `privacy.export_subject_markdown(subject)` renders the same export as a
//! document for the person (see `markdown`).
//!
//! ```text
//! tables.<t>.columns.<c>: {purposes, category,
//!                          legal_bases: {purpose: basis},
//!                          retention: [{policy, anchor, keep_for, action}]}
//! tables.<t>.retention:   [{policy, anchor, keep_for, action, purpose, row_filter}]
//! purposes:   {name: {description, legal_basis}}     (the purposes named above)
//! objections: [{purpose, objected_at}]
//! controller: {name, contact, representative, dpo: {name, contact}} | null
//! recipients: [{name, description, purposes, country, third_country, safeguards}]
//! ```

use super::catalog::{self, Policy};
use crate::error::PResult;
use crate::labels::grammar::Label;
use crate::security::as_extension_owner;
use pgrx::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// What one export needs beyond the rows: read once per export.
pub struct Context {
    purposes: BTreeMap<String, (Option<String>, String)>,
    policies: Vec<Policy>,
    /// purposes named by the columns exported so far
    used: BTreeSet<String>,
}

impl Context {
    pub fn load() -> PResult<Context> {
        let purposes = as_extension_owner(|| {
            crate::sql::rows(
                "SELECT name, description, legal_basis FROM privacy.purposes",
                &[],
                |r| {
                    Ok((
                        r.get::<String>(1)?.unwrap_or_default(),
                        (r.get::<String>(2)?, r.get::<String>(3)?.unwrap_or_default()),
                    ))
                },
            )
        })?
        .into_iter()
        .collect();
        Ok(Context {
            purposes,
            policies: catalog::load_policies()?,
            used: BTreeSet::new(),
        })
    }

    /// The policies on the table or on a table it is a partition of.
    fn covering(&self, relid: pg_sys::Oid) -> PResult<Vec<&Policy>> {
        // the table itself and every table it is a partition of (the
        // function returns nothing for a table outside any partition tree)
        let mut oids = vec![relid];
        oids.extend(crate::sql::rows(
            "SELECT a.relid::pg_catalog.oid FROM pg_catalog.pg_partition_ancestors($1::pg_catalog.regclass) a",
            &[relid.into()],
            |r| Ok(r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::Oid::INVALID)),
        )?);
        Ok(self
            .policies
            .iter()
            .filter(|p| oids.contains(&p.table))
            .collect())
    }

    /// The entry of one exported column.
    pub fn column(&mut self, relid: pg_sys::Oid, label: &Label) -> PResult<Value> {
        let mut bases = Map::new();
        for p in &label.purposes {
            self.used.insert(p.clone());
            bases.insert(
                p.clone(),
                self.purposes
                    .get(p)
                    .map(|(_, b)| json!(b))
                    .unwrap_or(Value::Null),
            );
        }
        let retention: Vec<Value> = self
            .covering(relid)?
            .into_iter()
            .filter(|p| {
                p.action == "delete"
                    || p.purpose
                        .as_ref()
                        .is_none_or(|pp| label.purposes.contains(pp))
            })
            .map(|p| {
                json!({ "policy": p.name, "anchor": p.anchor, "keep_for": p.keep_for, "action": p.action })
            })
            .collect();
        Ok(json!({
            "purposes": label.purposes,
            "category": label.category,
            "legal_bases": bases,
            "retention": retention,
        }))
    }

    /// The retention policies of one exported table.
    pub fn table_retention(&self, relid: pg_sys::Oid) -> PResult<Value> {
        Ok(Value::Array(
            self.covering(relid)?
                .into_iter()
                .map(|p| {
                    json!({ "policy": p.name, "anchor": p.anchor, "keep_for": p.keep_for,
                            "action": p.action, "purpose": p.purpose, "row_filter": p.row_filter })
                })
                .collect(),
        ))
    }

    /// Add the export-wide keys to the document.
    pub fn complete(&self, doc: &mut Value, subject: &str) -> PResult<()> {
        let (objections, controller, recipients) = as_extension_owner(|| {
            let objections = crate::sql::rows(
                "SELECT purpose,
                        pg_catalog.to_char(objected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                   FROM privacy.objections WHERE subject OPERATOR(pg_catalog.=) $1 ORDER BY purpose",
                &[subject.into()],
                |r| Ok(json!({ "purpose": r.get::<String>(1)?, "objected_at": r.get::<String>(2)? })),
            )?;
            let controller = super::declarations::controller()?;
            let recipients = super::declarations::recipients()?;
            Ok((objections, controller, recipients))
        })?;
        let mut purposes = Map::new();
        for p in &self.used {
            if let Some((d, b)) = self.purposes.get(p) {
                purposes.insert(p.clone(), json!({ "description": d, "legal_basis": b }));
            }
        }
        let recipients: Vec<Value> = recipients
            .into_iter()
            .filter(|r| {
                r["purposes"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|p| p.as_str().is_some_and(|p| self.used.contains(p)))
                })
            })
            .collect();
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("purposes".into(), Value::Object(purposes));
            obj.insert("objections".into(), Value::Array(objections));
            obj.insert("controller".into(), controller);
            obj.insert("recipients".into(), Value::Array(recipients));
        }
        Ok(())
    }
}
