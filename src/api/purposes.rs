//! `define_purpose`, `drop_purpose`.

use super::need;
use crate::audit;
use crate::labels::purposes;
use pgrx::prelude::*;

/// `privacy.define_purpose(name, description, legal_basis)`: create or update.
#[pg_extern(volatile, parallel_unsafe)]
fn define_purpose(
    name: Option<String>,
    description: default!(Option<String>, "NULL"),
    legal_basis: default!(Option<String>, "'consent'"),
) {
    audit::entry("define_purpose", || {
        purposes::define(
            &need(name, "name")?,
            description,
            &need(legal_basis, "legal_basis")?,
        )
    })
}

/// `privacy.drop_purpose(name)`: 2BP01 while a column or a policy uses it.
#[pg_extern(volatile, parallel_unsafe)]
fn drop_purpose(name: Option<String>) {
    audit::entry("drop_purpose", || purposes::drop(&need(name, "name")?))
}
