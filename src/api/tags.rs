//! `tag_column`, `mark_subject`, `untag_column` and the label parts of the
//! `privacy.column_tags` view.

use super::need;
use crate::audit;
use crate::labels::{grammar, tags};
use crate::types::{Regclass, SqlName};
use pgrx::prelude::*;

/// `privacy.tag_column(tbl, col, purposes, category, anonymize)`: replaces the
/// column's purposes, category and method; keeps its SUBJECT mark.
#[pg_extern(volatile, parallel_unsafe)]
fn tag_column(
    tbl: Option<Regclass>,
    col: Option<SqlName>,
    purposes: Option<Vec<Option<String>>>,
    category: default!(Option<String>, "NULL"),
    anonymize: default!(Option<String>, "NULL"),
) {
    audit::entry("tag_column", || {
        tags::tag_column(
            need(tbl, "tbl")?.0,
            need(col, "col")?.as_str(),
            need(purposes, "purposes")?,
            category,
            anonymize,
        )
    })
}

/// `privacy.mark_subject(tbl, col)`: adds SUBJECT to the column's tag.
#[pg_extern(volatile, parallel_unsafe)]
fn mark_subject(tbl: Option<Regclass>, col: Option<SqlName>) {
    audit::entry("mark_subject", || {
        tags::mark_subject(need(tbl, "tbl")?.0, need(col, "col")?.as_str())
    })
}

/// `privacy.untag_column(tbl, col)`: removes the column's tag entirely.
#[pg_extern(volatile, parallel_unsafe)]
fn untag_column(tbl: Option<Regclass>, col: Option<SqlName>) {
    audit::entry("untag_column", || {
        tags::untag_column(need(tbl, "tbl")?.0, need(col, "col")?.as_str())
    })
}

/// The parts of a label, for the `privacy.column_tags` view. A label that
/// does not parse yields NULLs rather than breaking the view.
#[pg_extern(immutable, parallel_safe, strict)]
pub fn _label_parts(
    label: &str,
) -> TableIterator<
    'static,
    (
        name!(purposes, Option<Vec<String>>),
        name!(category, Option<String>),
        name!(is_subject, Option<bool>),
        name!(anonymize, Option<String>),
    ),
> {
    let row = match grammar::parse(label) {
        Ok(l) => (
            Some(l.purposes),
            l.category,
            Some(l.subject),
            l.anonymize.map(|m| m.to_string()),
        ),
        Err(_) => (None, None, None, None),
    };
    TableIterator::once(row)
}
