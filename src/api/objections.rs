//! `object_to_purpose`, `withdraw_objection`, `may_process`.

use super::need;
use crate::audit;
use crate::error::OrRaise;
use crate::subject::objections;
use pgrx::prelude::*;

/// `privacy.object_to_purpose(subject, purpose)`: the subject opts out of the
/// purpose. Idempotent: objecting twice keeps the first objection's time.
#[pg_extern(volatile, parallel_unsafe)]
fn object_to_purpose(subject: Option<&str>, purpose: Option<&str>) {
    audit::entry("object_to_purpose", || {
        objections::object_to_purpose(need(subject, "subject")?, need(purpose, "purpose")?)
    })
}

/// `privacy.withdraw_objection(subject, purpose)`: the subject opts back in.
/// Idempotent for a defined purpose; an objection to a purpose that has since
/// been dropped can still be withdrawn.
#[pg_extern(volatile, parallel_unsafe)]
fn withdraw_objection(subject: Option<&str>, purpose: Option<&str>) {
    audit::entry("withdraw_objection", || {
        objections::withdraw_objection(need(subject, "subject")?, need(purpose, "purpose")?)
    })
}

/// `privacy.may_process(subject, purpose)`: FALSE when the subject objected
/// to the purpose, TRUE otherwise. A NULL subject (a row that identifies
/// nobody) cannot have objected: TRUE. An unknown purpose is an error (42704),
/// so a misspelt purpose in a policy fails loudly instead of allowing all.
/// No audit entry point: it runs no SQL (see `objections`), per row.
#[pg_extern(stable, parallel_safe)]
fn may_process(subject: Option<&str>, purpose: Option<&str>) -> bool {
    need(purpose, "purpose")
        .and_then(|p| objections::may_process(subject, p))
        .or_raise()
}
