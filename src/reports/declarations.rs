//! What only the DBA knows, declared for the record of processing (GDPR
//! Art. 30(1)): the controller and its DPO, the recipients and transfers to
//! third countries, what the data subjects of each SUBJECT table are.
//!
//! Stored in `privacy.controller`, `privacy.recipients` and
//! `privacy.subject_categories` (readable by everyone, written only here,
//! as the extension owner, each change audited). The functions are
//! administrative: EXECUTE is revoked from PUBLIC, a DBA grants it.

use crate::audit;
use crate::error::{PResult, PrivacyError};
use crate::security::as_extension_owner;
use crate::types::{regclass_text, Regclass};
use pgrx::prelude::*;
use serde_json::{json, Value};

/// The declared controller (with its DPO), or null. Reads a closed table:
/// call as the extension owner.
pub(super) fn controller() -> PResult<Value> {
    Ok(crate::sql::opt::<pgrx::JsonB>(
        "SELECT pg_catalog.jsonb_build_object('name', c.name, 'contact', c.contact,
                'representative', c.representative,
                'dpo', pg_catalog.jsonb_build_object('name', c.dpo_name, 'contact', c.dpo_contact))
           FROM privacy.controller c",
        &[],
    )?
    .map(|j| j.0)
    .unwrap_or(Value::Null))
}

/// The declared recipients, by name. Call as the extension owner.
pub(super) fn recipients() -> PResult<Vec<Value>> {
    crate::sql::rows(
        "SELECT name, description, purposes, country, third_country, safeguards
           FROM privacy.recipients ORDER BY name",
        &[],
        |r| {
            Ok(json!({
                "name": r.get::<String>(1)?,
                "description": r.get::<String>(2)?,
                "purposes": r.get::<Vec<String>>(3)?.unwrap_or_default(),
                "country": r.get::<String>(4)?,
                "third_country": r.get::<bool>(5)?.unwrap_or(false),
                "safeguards": r.get::<String>(6)?,
            }))
        },
    )
}

fn need<T>(v: Option<T>, what: &str) -> PResult<T> {
    v.ok_or_else(|| PrivacyError::null_value(what))
}

/// A free text: trimmed, `None` when empty.
fn text(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn required_text(v: Option<String>, what: &str, max: usize) -> PResult<String> {
    let s = text(Some(need(v, what)?))
        .ok_or_else(|| PrivacyError::invalid_parameter(format!("{what} must not be empty")))?;
    if s.chars().count() > max {
        return Err(PrivacyError::invalid_parameter(format!(
            "{what} is longer than {max} characters"
        )));
    }
    Ok(s)
}

/// `privacy.declare_controller(name, contact, representative, dpo_name,
/// dpo_contact)`: who is responsible for the processing (replaces the
/// previous declaration).
#[pg_extern(volatile, parallel_unsafe)]
fn declare_controller(
    name: Option<String>,
    contact: default!(Option<String>, "NULL"),
    representative: default!(Option<String>, "NULL"),
    dpo_name: default!(Option<String>, "NULL"),
    dpo_contact: default!(Option<String>, "NULL"),
) {
    audit::entry("declare_controller", || {
        let name = required_text(name, "name", 500)?;
        let (contact, representative, dpo_name, dpo_contact) = (
            text(contact),
            text(representative),
            text(dpo_name),
            text(dpo_contact),
        );
        as_extension_owner(|| {
            Spi::run_with_args(
                "INSERT INTO privacy.controller AS c (id, name, contact, representative, dpo_name, dpo_contact)
                 VALUES (true, $1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE
                    SET name = EXCLUDED.name, contact = EXCLUDED.contact,
                        representative = EXCLUDED.representative, dpo_name = EXCLUDED.dpo_name,
                        dpo_contact = EXCLUDED.dpo_contact, updated_at = pg_catalog.now()",
                &[
                    name.as_str().into(),
                    contact.clone().into(),
                    representative.clone().into(),
                    dpo_name.clone().into(),
                    dpo_contact.clone().into(),
                ],
            )?;
            Ok(())
        })?;
        audit::record(
            "declare_controller",
            &name,
            json!({ "contact": contact, "representative": representative,
                    "dpo_name": dpo_name, "dpo_contact": dpo_contact }),
        )
    })
}

/// `privacy.declare_recipient(name, description, purposes, country,
/// third_country, safeguards)`: create or replace a recipient.
#[pg_extern(volatile, parallel_unsafe)]
fn declare_recipient(
    name: Option<String>,
    description: default!(Option<String>, "NULL"),
    purposes: default!(Option<Vec<Option<String>>>, "NULL"),
    country: default!(Option<String>, "NULL"),
    third_country: default!(Option<bool>, "false"),
    safeguards: default!(Option<String>, "NULL"),
) {
    audit::entry("declare_recipient", || {
        let name = required_text(name, "name", 200)?;
        let third_country = need(third_country, "third_country")?;
        let (description, country, safeguards) =
            (text(description), text(country), text(safeguards));
        let mut names: Vec<String> = Vec::new();
        for p in purposes.unwrap_or_default() {
            let p = crate::labels::purposes::require(&need(p, "a purpose")?)?;
            if !names.contains(&p) {
                names.push(p);
            }
        }
        if third_country && country.is_none() {
            return Err(PrivacyError::invalid_parameter(format!(
                "recipient \"{name}\" is in a third country but no country is given"
            ))
            .with_hint("Name the country (Art. 30(1)(e)): country => 'US'."));
        }
        as_extension_owner(|| {
            Spi::run_with_args(
                "INSERT INTO privacy.recipients AS r (name, description, purposes, country, third_country, safeguards)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (name) DO UPDATE
                    SET description = EXCLUDED.description, purposes = EXCLUDED.purposes,
                        country = EXCLUDED.country, third_country = EXCLUDED.third_country,
                        safeguards = EXCLUDED.safeguards, updated_at = pg_catalog.now()",
                &[
                    name.as_str().into(),
                    description.clone().into(),
                    names.clone().into(),
                    country.clone().into(),
                    third_country.into(),
                    safeguards.clone().into(),
                ],
            )?;
            Ok(())
        })?;
        audit::record(
            "declare_recipient",
            &name,
            json!({ "description": description, "purposes": names, "country": country,
                    "third_country": third_country, "safeguards": safeguards }),
        )
    })
}

/// `privacy.drop_recipient(name)`: 42704 when there is no such recipient.
#[pg_extern(volatile, parallel_unsafe)]
fn drop_recipient(name: Option<String>) {
    audit::entry("drop_recipient", || {
        let name = need(name, "name")?;
        let gone = as_extension_owner(|| {
            Ok(crate::sql::opt_mut::<String>(
                "DELETE FROM privacy.recipients WHERE name = $1 RETURNING name",
                &[name.as_str().into()],
            )?)
        })?;
        if gone.is_none() {
            return Err(PrivacyError::undefined_object(format!(
                "recipient \"{name}\" does not exist"
            )));
        }
        audit::record("drop_recipient", &name, json!({}))
    })
}

/// `privacy.describe_subjects(tbl, description)`: what the data subjects of
/// a table with a SUBJECT column are ("customers", "employees"…); NULL
/// removes the description.
#[pg_extern(volatile, parallel_unsafe)]
fn describe_subjects(tbl: Option<Regclass>, description: Option<String>) {
    audit::entry("describe_subjects", || {
        let relid = need(tbl, "tbl")?.0;
        let has_subject = crate::labels::tags::table_tags(relid)?
            .iter()
            .any(|t| t.label.subject);
        if !has_subject {
            return Err(PrivacyError::invalid_parameter(format!(
                "table {} has no SUBJECT column",
                regclass_text(relid)
            ))
            .with_hint(
                "Mark the column that identifies the data subject first: privacy.mark_subject().",
            ));
        }
        let description = match description {
            None => None,
            Some(d) => Some(required_text(Some(d), "description", 2000)?),
        };
        as_extension_owner(|| {
            match &description {
                Some(d) => Spi::run_with_args(
                    "INSERT INTO privacy.subject_categories AS s (table_name, description)
                     VALUES ($1, $2)
                     ON CONFLICT (table_name) DO UPDATE
                        SET description = EXCLUDED.description, updated_at = pg_catalog.now()",
                    &[relid.into(), d.as_str().into()],
                )?,
                None => Spi::run_with_args(
                    "DELETE FROM privacy.subject_categories WHERE table_name = $1",
                    &[relid.into()],
                )?,
            }
            Ok(())
        })?;
        audit::record(
            "describe_subjects",
            &regclass_text(relid),
            json!({ "description": description }),
        )
    })
}
