//! `add_retention_policy`, `alter_retention_policy`, `drop_retention_policy`,
//! `run_retention`.

use super::need;
use crate::audit;
use crate::retention::{policy, run};
use crate::types::{Regclass, SqlName};
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;

/// `privacy.add_retention_policy(...)`: returns the policy's name.
#[allow(clippy::too_many_arguments)] // the SQL signature
#[pg_extern(volatile, parallel_unsafe)]
fn add_retention_policy(
    tbl: Option<Regclass>,
    keep_for: Option<Interval>,
    anchor: Option<SqlName>,
    action: default!(Option<String>, "'delete'"),
    row_filter: default!(Option<String>, "NULL"),
    purpose: default!(Option<String>, "NULL"),
    name: default!(Option<String>, "NULL"),
    schedule_interval: default!(Option<Interval>, "'1 hour'"),
) -> String {
    audit::entry("add_retention_policy", || {
        policy::add(policy::NewPolicy {
            relid: need(tbl, "tbl")?.0,
            keep_for: need(keep_for, "keep_for")?,
            anchor: need(anchor, "anchor")?,
            action: need(action, "action")?,
            row_filter,
            purpose,
            name,
            schedule: need(schedule_interval, "schedule_interval")?,
        })
    })
}

/// `privacy.alter_retention_policy(name, keep_for, row_filter,
/// schedule_interval, enabled)`: NULL leaves a setting as is; an empty
/// `row_filter` ('') removes the filter.
#[pg_extern(volatile, parallel_unsafe)]
fn alter_retention_policy(
    name: Option<String>,
    keep_for: default!(Option<Interval>, "NULL"),
    row_filter: default!(Option<String>, "NULL"),
    schedule_interval: default!(Option<Interval>, "NULL"),
    enabled: default!(Option<bool>, "NULL"),
) {
    audit::entry("alter_retention_policy", || {
        policy::alter(
            &need(name, "name")?,
            keep_for,
            row_filter,
            schedule_interval,
            enabled,
        )
    })
}

/// `privacy.drop_retention_policy(name)`.
#[pg_extern(volatile, parallel_unsafe)]
fn drop_retention_policy(name: Option<String>) {
    audit::entry("drop_retention_policy", || {
        policy::drop(&need(name, "name")?)
    })
}

/// `privacy.run_retention(policy, as_of, dry_run)`.
#[pg_extern(volatile, parallel_unsafe)]
fn run_retention(
    policy: default!(Option<String>, "NULL"),
    as_of: default!(Option<TimestampWithTimeZone>, "now()"),
    dry_run: default!(Option<bool>, "false"),
) -> TableIterator<
    'static,
    (
        name!(policy, String),
        name!(table_name, Option<Regclass>),
        name!(action, Option<String>),
        name!(rows, Option<i64>),
        name!(held, Option<i64>),
    ),
> {
    let rows = audit::entry("run_retention", || {
        run::run_retention(
            policy.as_deref(),
            need(as_of, "as_of")?,
            need(dry_run, "dry_run")?,
        )
    });
    TableIterator::new(rows)
}
