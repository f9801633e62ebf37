//! `privacy.lint()`: one row per gap in the privacy policy, with the SQL that
//! closes it. A clean, fully tagged schema returns no row.
//!
//! | finding                         | severity | what                                                        |
//! |---------------------------------|----------|-------------------------------------------------------------|
//! | `untagged_personal_column`      | warning  | a column whose name or type looks personal has no tag       |
//! | `table_without_retention`       | warning  | a tagged table no retention policy covers                   |
//! | `partition_without_retention`   | warning  | a partition without the policy its siblings have            |
//! | `table_without_subject`         | warning  | a tagged table without SUBJECT: export and erasure skip it  |
//! | `table_not_linked_to_subject`   | warning  | an untagged table whose foreign key holds a subject's id    |
//! | `subject_column_without_index`  | warning  | erasure and export scan the whole table                     |
//! | `anchor_column_without_index`   | warning  | every retention batch scans the whole table                 |
//! | `policy_failing`                | error    | the last run of a retention policy failed                   |
//! | `policy_overdue`                | warning  | an enabled policy not run for twice its schedule            |
//! | `purpose_unused`                | info     | a purpose no column, policy or recipient uses               |
//! | `key_not_rotated`               | warning  | a key's active version is older than `key_max_age`          |
//! | `hold_expired`                  | info     | a legal hold past its end date, never released              |
//! | `transfer_without_safeguards`   | warning  | a recipient in a third country with no safeguards declared  |
//!
//! Partitions are judged through their partitioned table (tags and
//! policies on it cover them), temporary tables and tables of extensions
//! (pg_privacy's own included) are left out. A fix that needs a decision
//! only the DBA can make (a purpose, a retention period) holds a
//! placeholder in angle brackets (`<keep_for>`), so it cannot run by
//! mistake.

use super::catalog::{self, Catalog, Table};
use super::heuristics;
use crate::audit;
use crate::error::PResult;
use crate::security::as_extension_owner;
use pgrx::datum::Interval;
use pgrx::prelude::*;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    fn as_str(&self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub severity: Severity,
    pub object: String,
    pub finding: &'static str,
    pub problem: String,
    pub fix_sql: String,
}

/// `privacy.lint(key_max_age)`: see the module documentation.
#[pg_extern(volatile, parallel_unsafe)]
fn lint(
    key_max_age: default!(Option<Interval>, "'1 year'"),
) -> TableIterator<
    'static,
    (
        name!(finding, String),
        name!(severity, String),
        name!(object, String),
        name!(problem, String),
        name!(fix_sql, String),
    ),
> {
    let findings = audit::entry("lint", || {
        let key_max_age =
            key_max_age.ok_or_else(|| crate::error::PrivacyError::null_value("key_max_age"))?;
        findings(key_max_age)
    });
    TableIterator::new(findings.into_iter().map(|f| {
        (
            f.finding.to_string(),
            f.severity.as_str().to_string(),
            f.object,
            f.problem,
            f.fix_sql,
        )
    }))
}

fn quote_literal(s: &str) -> String {
    spi::quote_literal(s)
}

/// Every finding, errors first, then by object.
pub fn findings(key_max_age: Interval) -> PResult<Vec<Finding>> {
    let cat = catalog::load()?;
    let mut out = Vec::new();
    let purposes_in_use = tables(&cat, &mut out);
    policies(&cat, &mut out);
    state(&cat, key_max_age, &purposes_in_use, &mut out)?;
    out.sort();
    Ok(out)
}

/// Findings about tables and columns; returns the purposes the tags use.
fn tables(cat: &Catalog, out: &mut Vec<Finding>) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for t in cat.by_name() {
        for c in t.tagged() {
            used.extend(
                c.label
                    .as_ref()
                    .map(|l| l.purposes.clone())
                    .unwrap_or_default(),
            );
        }
        // partitions are covered by their partitioned table's tags
        if t.parent.is_some() {
            partition_retention(cat, t, out);
            continue;
        }
        untagged_columns(t, out);
        let tagged = t.tagged().count() > 0;
        if tagged && !cat.has_policy_around(t.oid) {
            let anchor = guess_anchor(t);
            out.push(Finding {
                severity: Severity::Warning,
                object: t.qname.clone(),
                finding: "table_without_retention",
                problem: format!(
                    "table {} holds tagged personal data but no retention policy covers it: its rows are kept for ever",
                    t.qname
                ),
                fix_sql: format!(
                    "SELECT privacy.add_retention_policy({}, '<keep_for>', {});",
                    quote_literal(&t.qname),
                    quote_literal(&anchor)
                ),
            });
        }
        match t.subject() {
            Some(s) => {
                if !s.indexed {
                    out.push(Finding {
                        severity: Severity::Warning,
                        object: t.column_ref(&s.name),
                        finding: "subject_column_without_index",
                        problem: format!(
                            "SUBJECT column {} has no index: every export and erasure reads the whole table",
                            t.column_ref(&s.name)
                        ),
                        fix_sql: format!(
                            "CREATE INDEX ON {} ({});",
                            t.qname,
                            spi::quote_identifier(&s.name)
                        ),
                    });
                }
            }
            None if tagged => out.push(Finding {
                severity: Severity::Warning,
                object: t.qname.clone(),
                finding: "table_without_subject",
                problem: format!(
                    "table {} has tagged columns but no SUBJECT column: its rows escape export_subject and forget_subject",
                    t.qname
                ),
                fix_sql: format!(
                    "SELECT privacy.mark_subject({}, {});",
                    quote_literal(&t.qname),
                    quote_literal(&subject_link(cat, t).unwrap_or_else(|| "<column>".into()))
                ),
            }),
            None => {
                if let Some(col) = subject_link(cat, t) {
                    out.push(Finding {
                        severity: Severity::Warning,
                        object: t.qname.clone(),
                        finding: "table_not_linked_to_subject",
                        problem: format!(
                            "column {} refers to data subjects (a foreign key to a SUBJECT column) but table {} has no SUBJECT column: its rows escape export_subject and forget_subject",
                            t.column_ref(&col),
                            t.qname
                        ),
                        fix_sql: format!(
                            "SELECT privacy.mark_subject({}, {});",
                            quote_literal(&t.qname),
                            quote_literal(&col)
                        ),
                    });
                }
            }
        }
    }
    used
}

/// Columns that look personal and carry no tag (not even NOT PERSONAL).
fn untagged_columns(t: &Table, out: &mut Vec<Finding>) {
    let table_purposes: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for c in t.tagged() {
            for p in c
                .label
                .as_ref()
                .map(|l| l.purposes.clone())
                .unwrap_or_default()
            {
                if !v.contains(&p) {
                    v.push(p);
                }
            }
        }
        v
    };
    for c in &t.columns {
        if c.label.is_some() {
            continue;
        }
        let Some(kind) = heuristics::personal_column(&c.name, &c.base_type) else {
            continue;
        };
        let purposes = if table_purposes.is_empty() {
            "<purpose>".to_string()
        } else {
            table_purposes.join(", ")
        };
        let target = t.column_ref(&c.name);
        out.push(Finding {
            severity: Severity::Warning,
            object: target.clone(),
            finding: "untagged_personal_column",
            problem: format!(
                "column {target} ({}) looks like it holds {} but has no privacy tag",
                c.type_name,
                kind.describe()
            ),
            fix_sql: format!(
                "SECURITY LABEL FOR privacy ON COLUMN {target} IS 'PURPOSE {purposes} CATEGORY {}';\n\
                 -- or, when it holds no personal data:\n\
                 -- SECURITY LABEL FOR privacy ON COLUMN {target} IS 'NOT PERSONAL';",
                kind.category()
            ),
        });
    }
}

/// A partition with no policy (on itself, an ancestor or a descendant)
/// while a sibling has one: typically the newest partition.
fn partition_retention(cat: &Catalog, t: &Table, out: &mut Vec<Finding>) {
    let Some(parent) = t.parent else { return };
    if cat.has_policy_around(t.oid) {
        return;
    }
    let sibling_covered = cat
        .tables
        .values()
        .any(|s| s.parent == Some(parent) && s.oid != t.oid && cat.has_policy_around(s.oid));
    if !sibling_covered {
        return;
    }
    let template = cat
        .policies
        .iter()
        .find(|p| cat.table(p.table).and_then(|s| s.parent) == Some(parent));
    let fix = match template {
        Some(p) => format!(
            "SELECT privacy.add_retention_policy({}, {}, {}, action => {});",
            quote_literal(&t.qname),
            quote_literal(&p.keep_for),
            quote_literal(&p.anchor),
            quote_literal(&p.action)
        ),
        None => format!(
            "SELECT privacy.add_retention_policy({}, '<keep_for>', '<anchor>');",
            quote_literal(&t.qname)
        ),
    };
    out.push(Finding {
        severity: Severity::Warning,
        object: t.qname.clone(),
        finding: "partition_without_retention",
        problem: format!(
            "partition {} has no retention policy while other partitions of {} have one",
            t.qname,
            cat.table(parent)
                .map(|p| p.qname.as_str())
                .unwrap_or("its table")
        ),
        fix_sql: fix,
    });
}

/// The column of `t` that a single-column foreign key points at the
/// SUBJECT column of another table with.
fn subject_link(cat: &Catalog, t: &Table) -> Option<String> {
    cat.foreign_keys
        .iter()
        .filter(|fk| fk.child == t.oid && fk.child_cols.len() == 1)
        .find_map(|fk| {
            let parent = cat.table(fk.parent)?;
            let subject = parent.subject()?;
            if fk.parent_cols == [subject.attnum] {
                t.columns
                    .iter()
                    .find(|c| c.attnum == fk.child_cols[0])
                    .map(|c| c.name.clone())
            } else {
                None
            }
        })
}

/// The date or timestamp column a retention policy most likely anchors on.
fn guess_anchor(t: &Table) -> String {
    let dated: Vec<&str> = t
        .columns
        .iter()
        .filter(|c| ["date", "timestamp", "timestamptz"].contains(&c.base_type.as_str()))
        .map(|c| c.name.as_str())
        .collect();
    for hint in [
        "deleted",
        "closed",
        "ended",
        "unsubscribed",
        "last",
        "updated",
        "created",
    ] {
        if let Some(c) = dated.iter().find(|c| c.contains(hint)) {
            return c.to_string();
        }
    }
    dated
        .first()
        .map(|c| c.to_string())
        .unwrap_or_else(|| "<anchor>".into())
}

/// Policies: failing, overdue, anchors without an index.
fn policies(cat: &Catalog, out: &mut Vec<Finding>) {
    for p in &cat.policies {
        let object = format!("retention policy {}", p.name);
        if p.last_status.as_deref() == Some("failed") {
            out.push(Finding {
                severity: Severity::Error,
                object: object.clone(),
                finding: "policy_failing",
                problem: format!(
                    "the last run of retention policy \"{}\" failed: expired rows are not being removed",
                    p.name
                ),
                fix_sql: format!(
                    "SELECT run_id, started_at, error FROM privacy.retention_runs WHERE policy = {} ORDER BY run_id DESC LIMIT 1;\n\
                     SELECT * FROM privacy.run_retention({}, dry_run => true);",
                    quote_literal(&p.name),
                    quote_literal(&p.name)
                ),
            });
        } else if p.overdue {
            out.push(Finding {
                severity: Severity::Warning,
                object: object.clone(),
                finding: "policy_overdue",
                problem: format!(
                    "retention policy \"{}\" runs every {} but has not run for more than twice that (is the worker running? privacy.worker_enabled, shared_preload_libraries)",
                    p.name, p.schedule_interval
                ),
                fix_sql: format!("SELECT * FROM privacy.run_retention({});", quote_literal(&p.name)),
            });
        }
        if let Some(t) = cat.table(p.table) {
            if let Some(a) = t.column(&p.anchor) {
                if !a.indexed {
                    out.push(Finding {
                        severity: Severity::Warning,
                        object: t.column_ref(&a.name),
                        finding: "anchor_column_without_index",
                        problem: format!(
                            "anchor column {} of retention policy \"{}\" has no index: every run reads the whole table",
                            t.column_ref(&a.name),
                            p.name
                        ),
                        fix_sql: format!(
                            "CREATE INDEX ON {} ({});",
                            t.qname,
                            spi::quote_identifier(&a.name)
                        ),
                    });
                }
            }
        }
    }
}

/// Purposes, keys, holds, recipients.
fn state(
    cat: &Catalog,
    key_max_age: Interval,
    tag_purposes: &BTreeSet<String>,
    out: &mut Vec<Finding>,
) -> PResult<()> {
    let mut used = tag_purposes.clone();
    used.extend(cat.policies.iter().filter_map(|p| p.purpose.clone()));
    let (purposes, recipients) = as_extension_owner(|| {
        let purposes = crate::sql::rows(
            "SELECT name FROM privacy.purposes ORDER BY name",
            &[],
            |r| Ok(r.get::<String>(1)?.unwrap_or_default()),
        )?;
        let recipients = crate::sql::rows(
            "SELECT name, purposes, third_country, safeguards IS NULL, country FROM privacy.recipients ORDER BY name",
            &[],
            |r| {
                Ok((
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<Vec<String>>(2)?.unwrap_or_default(),
                    r.get::<bool>(3)?.unwrap_or(false),
                    r.get::<bool>(4)?.unwrap_or(true),
                    r.get::<String>(5)?.unwrap_or_default(),
                ))
            },
        )?;
        Ok((purposes, recipients))
    })?;
    for (_, ps, _, _, _) in &recipients {
        used.extend(ps.iter().cloned());
    }
    for p in purposes {
        if !used.contains(&p) {
            out.push(Finding {
                severity: Severity::Info,
                object: format!("purpose {p}"),
                finding: "purpose_unused",
                problem: format!(
                    "purpose \"{p}\" is defined but no column, retention policy or recipient uses it"
                ),
                fix_sql: format!("SELECT privacy.drop_purpose({});", quote_literal(&p)),
            });
        }
    }
    for (name, _, third, no_safeguards, country) in &recipients {
        if *third && *no_safeguards {
            out.push(Finding {
                severity: Severity::Warning,
                object: format!("recipient {name}"),
                finding: "transfer_without_safeguards",
                problem: format!(
                    "recipient \"{name}\" receives personal data in a third country ({country}) but no safeguards are declared (Art. 46: adequacy decision, standard contractual clauses…)"
                ),
                fix_sql: format!(
                    "SELECT privacy.declare_recipient({}, country => {}, third_country => true, safeguards => '<safeguards>');",
                    quote_literal(name),
                    quote_literal(country)
                ),
            });
        }
    }
    let keys = crate::sql::rows(
        "SELECT k.name, k.version, pg_catalog.to_char(k.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
           FROM privacy.keys k
          WHERE k.active AND pg_catalog.left(k.name, 1) OPERATOR(pg_catalog.<>) '_'
            AND k.created_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) $1)
          ORDER BY k.name",
        &[key_max_age.into()],
        |r| {
            Ok((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<i32>(2)?.unwrap_or(0),
                r.get::<String>(3)?.unwrap_or_default(),
            ))
        },
    )?;
    for (name, version, since) in keys {
        out.push(Finding {
            severity: Severity::Warning,
            object: format!("key {name}"),
            finding: "key_not_rotated",
            problem: format!(
                "key \"{name}\" (version {version}) has been in use since {since}, longer than the rotation age"
            ),
            fix_sql: format!("SELECT privacy.rotate_key({});", quote_literal(&name)),
        });
    }
    let holds = as_extension_owner(|| {
        crate::sql::rows(
            "SELECT h.id, pg_catalog.to_char(h.until AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), h.reason
               FROM privacy.legal_holds h
              WHERE h.released_at IS NULL AND h.until OPERATOR(pg_catalog.<=) pg_catalog.now()
              ORDER BY h.id",
            &[],
            |r| {
                Ok((
                    r.get::<i64>(1)?.unwrap_or(0),
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<String>(3)?.unwrap_or_default(),
                ))
            },
        )
    })?;
    for (id, until, reason) in holds {
        out.push(Finding {
            severity: Severity::Info,
            object: format!("legal hold {id}"),
            finding: "hold_expired",
            problem: format!(
                "legal hold {id} (\"{reason}\") ended on {until} UTC and no longer protects anything, but was never released"
            ),
            fix_sql: format!("SELECT privacy.release_hold({id});"),
        });
    }
    Ok(())
}
