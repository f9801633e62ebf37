//! `place_hold`, `place_subject_hold`, `release_hold`.

use super::need;
use crate::audit;
use crate::retention::holds;
use crate::types::Regclass;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

/// `privacy.place_hold(tbl, row_filter, reason, until)`: hold the rows of
/// `tbl` for which `row_filter` is TRUE. The caller needs SELECT on the table.
#[pg_extern(volatile, parallel_unsafe)]
fn place_hold(
    tbl: Option<Regclass>,
    row_filter: Option<String>,
    reason: Option<String>,
    until: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> i64 {
    audit::entry("place_hold", || {
        holds::place_hold(
            need(tbl, "tbl")?.0,
            &need(row_filter, "row_filter")?,
            &need(reason, "reason")?,
            until,
        )
    })
}

/// `privacy.place_subject_hold(subject, reason, until)`: hold every row of
/// the subject in every table with a SUBJECT column.
#[pg_extern(volatile, parallel_unsafe)]
fn place_subject_hold(
    subject: Option<String>,
    reason: Option<String>,
    until: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> i64 {
    audit::entry("place_subject_hold", || {
        holds::place_subject_hold(&need(subject, "subject")?, &need(reason, "reason")?, until)
    })
}

/// `privacy.release_hold(id)`: end a hold now (42704 unknown, 55000 already
/// released).
#[pg_extern(volatile, parallel_unsafe)]
fn release_hold(id: Option<i64>) {
    audit::entry("release_hold", || holds::release_hold(need(id, "id")?))
}
