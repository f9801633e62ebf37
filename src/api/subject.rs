//! `export_subject`, `forget_subject`.

use super::need;
use crate::audit;
use crate::subject;
use crate::types::Regclass;
use pgrx::prelude::*;
use pgrx::JsonB;

/// `privacy.export_subject(subject)`: everything tagged that the database
/// holds about the subject, as one jsonb document.
#[pg_extern(volatile, parallel_unsafe)]
fn export_subject(subject: Option<&str>) -> JsonB {
    audit::entry_quiet(|| subject::export::export_subject(need(subject, "subject")?))
}

/// `privacy.forget_subject(subject, dry_run)`: erase the subject; one row per
/// table per action.
#[pg_extern(volatile, parallel_unsafe)]
fn forget_subject(
    subject: Option<&str>,
    dry_run: default!(Option<bool>, "false"),
) -> TableIterator<
    'static,
    (
        name!(table_name, Regclass),
        name!(action, String),
        name!(rows, i64),
    ),
> {
    let rows = audit::entry_quiet(|| {
        subject::erase::forget_subject(need(subject, "subject")?, need(dry_run, "dry_run")?)
    });
    TableIterator::new(rows)
}

/// `privacy.export_subject_markdown(subject)`: the export as a document for
/// the person, audited and logged like `export_subject` (with `"format":
/// "markdown"`).
#[pg_extern(volatile, parallel_unsafe)]
fn export_subject_markdown(subject: Option<&str>) -> String {
    let doc = audit::entry_quiet(|| {
        subject::export::export_logged(need(subject, "subject")?, Some("markdown"))
    });
    crate::reports::markdown::export(&doc)
}
