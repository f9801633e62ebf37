//! The policy store: `add_retention_policy`, `alter_retention_policy`,
//! `drop_retention_policy`, and loading a policy for a run. The checks a
//! policy's creation shares with a run's start live in `validate`.
//!
//! A policy is stored in `privacy.retention_policy_defs` (closed to PUBLIC,
//! written only here and by `run` as the extension owner) and shown by the
//! view `privacy.retention_policies`. It records its **owner**, the role
//! that created it. Every run first checks that the owner still holds the
//! privileges the action needs, then runs its statements as the **table's
//! owner**, restricted (`run`): a policy never does more than its owner
//! could do by hand, and the table owner's triggers, constraints and
//! functions never run with the policy owner's (or the worker's) rights.
//!
//! Everything is validated up front: the table exists and is a plain table
//! (42P01, 22023), the anchor column exists (42703) and is date, timestamp
//! or timestamptz (42804), `keep_for` is positive, the action, purpose and
//! row_filter are valid (22023), the creator holds SELECT and DELETE
//! (delete) or UPDATE (anonymize) on the table (42501), and an anonymize
//! policy has columns to rewrite with a usable method and key. A NOTICE
//! suggests an index when the anchor column has none.

use super::filters::{self, FilterKind};
use super::validate;
use crate::audit;
use crate::error::{PResult, PrivacyError};
use crate::security::{self, as_extension_owner};
use crate::types::{regclass_text, Regclass, SqlName};
use pgrx::datum::Interval;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Delete,
    Anonymize,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Delete => "delete",
            Action::Anonymize => "anonymize",
        }
    }

    pub fn parse(s: &str) -> PResult<Action> {
        match s.trim().to_ascii_lowercase().as_str() {
            "delete" => Ok(Action::Delete),
            "anonymize" => Ok(Action::Anonymize),
            _ => Err(
                PrivacyError::invalid_parameter(format!("invalid retention action \"{s}\""))
                    .with_hint("The action is 'delete' or 'anonymize'."),
            ),
        }
    }

    /// The table privilege the action needs.
    pub fn privilege(self) -> &'static str {
        match self {
            Action::Delete => "DELETE",
            Action::Anonymize => "UPDATE",
        }
    }
}

/// The type of an anchor column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnchorType {
    Date,
    Timestamp,
    TimestampTz,
}

/// A stored policy.
#[derive(Clone, Debug)]
pub struct Policy {
    pub name: String,
    pub relid: pg_sys::Oid,
    pub anchor: String,
    pub keep_for: Interval,
    pub action: Action,
    pub row_filter: Option<String>,
    pub purpose: Option<String>,
    pub owner: pg_sys::Oid,
}

/// Load a policy by name (as the extension owner).
pub fn load(name: &str) -> PResult<Option<Policy>> {
    as_extension_owner(|| {
        Spi::connect(|c| {
            let rows = c.select(
                "SELECT name, table_name::pg_catalog.oid, anchor::pg_catalog.text, keep_for, action,
                        row_filter, purpose, owner::pg_catalog.oid
                   FROM privacy.retention_policy_defs WHERE name = $1",
                Some(1),
                &[name.into()],
            )?;
            for r in rows {
                return Ok(Some(Policy {
                    name: r.get::<String>(1)?.unwrap_or_default(),
                    relid: r.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::Oid::INVALID),
                    anchor: r.get::<String>(3)?.unwrap_or_default(),
                    keep_for: r
                        .get::<Interval>(4)?
                        .ok_or_else(|| PrivacyError::internal("policy without keep_for"))?,
                    action: Action::parse(&r.get::<String>(5)?.unwrap_or_default())?,
                    row_filter: r.get::<String>(6)?,
                    purpose: r.get::<String>(7)?,
                    owner: r.get::<pg_sys::Oid>(8)?.unwrap_or(pg_sys::Oid::INVALID),
                }));
            }
            Ok(None)
        })
    })
}

/// Load a policy or fail with 42704.
pub fn require(name: &str) -> PResult<Policy> {
    load(name)?.ok_or_else(|| {
        PrivacyError::undefined_object(format!("retention policy \"{name}\" does not exist"))
            .with_hint("See privacy.retention_policies.")
    })
}

/// Whether the current role may run, alter or drop a policy owned by
/// `owner`: it is a superuser, the owner, or has the owner's privileges.
pub fn may_manage(owner: pg_sys::Oid) -> PResult<bool> {
    if security::is_superuser() {
        return Ok(true);
    }
    Ok(Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE oid = $1)
            AND pg_catalog.pg_has_role($1, 'USAGE')",
        &[owner.into()],
    )?
    .unwrap_or(false))
}

pub fn require_manage(p: &Policy, verb: &str) -> PResult<()> {
    if may_manage(p.owner)? {
        Ok(())
    } else {
        Err(PrivacyError::insufficient_privilege(format!(
            "permission denied to {verb} retention policy \"{}\"",
            p.name
        ))
        .with_hint(format!(
            "Only its owner ({}), a member of that role or a superuser may {verb} it.",
            security::role_name(p.owner)
        )))
    }
}

fn check_keep_for(keep_for: &Interval) -> PResult<()> {
    if keep_for.months() < 0 || keep_for.days() < 0 || keep_for.micros() < 0 {
        return Err(
            PrivacyError::invalid_parameter("keep_for must not have negative parts")
                .with_hint("Write a positive interval such as '30 days' or '1 year'."),
        );
    }
    if keep_for.months() == 0 && keep_for.days() == 0 && keep_for.micros() == 0 {
        return Err(PrivacyError::invalid_parameter("keep_for must be positive"));
    }
    Ok(())
}

fn check_schedule(s: &Interval) -> PResult<()> {
    let positive = s.months() >= 0 && s.days() >= 0 && s.micros() >= 0;
    let long_enough = s.months() > 0 || s.days() > 0 || s.micros() >= 1_000_000;
    if !positive || !long_enough {
        return Err(PrivacyError::invalid_parameter(
            "schedule_interval must be at least 1 second",
        ));
    }
    Ok(())
}

fn check_policy_name(name: &str) -> PResult<String> {
    let n = name.trim();
    if n.is_empty() || n.len() > 63 || n.chars().any(|c| c.is_control()) {
        return Err(PrivacyError::invalid_parameter(format!(
            "invalid retention policy name \"{name}\""
        ))
        .with_hint("A policy name is 1 to 63 bytes of printable text."));
    }
    Ok(n.to_string())
}

fn policy_exists(name: &str) -> PResult<bool> {
    as_extension_owner(|| {
        Ok(Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM privacy.retention_policy_defs WHERE name = $1)",
            &[name.into()],
        )?
        .unwrap_or(false))
    })
}

/// Default name: `<table>_<action>`, then `_2`, `_3`… when taken.
fn default_name(relid: pg_sys::Oid, action: Action) -> PResult<String> {
    let relname = crate::catalog::relation(relid)?
        .map(|r| r.name)
        .unwrap_or_else(|| "table".into());
    let suffix = format!("_{}", action.as_str());
    let base: String = relname.chars().take(50).collect::<String>() + &suffix;
    if !policy_exists(&base)? {
        return Ok(base);
    }
    for i in 2..10_000 {
        let n = format!("{base}_{i}");
        if !policy_exists(&n)? {
            return Ok(n);
        }
    }
    Err(PrivacyError::duplicate_object(format!(
        "no free default name for a policy on {}",
        regclass_text(relid)
    ))
    .with_hint("Pass a name."))
}

/// A policy as `add_retention_policy` receives it (its SQL NULLs refused).
pub struct NewPolicy {
    pub relid: pg_sys::Oid,
    pub keep_for: Interval,
    pub anchor: SqlName,
    pub action: String,
    pub row_filter: Option<String>,
    pub purpose: Option<String>,
    pub name: Option<String>,
    pub schedule: Interval,
}

/// `add_retention_policy`: validate, store, audit; returns the policy's name.
pub fn add(new: NewPolicy) -> PResult<String> {
    let NewPolicy {
        relid,
        keep_for,
        anchor,
        action,
        row_filter,
        purpose,
        name,
        schedule,
    } = new;
    let action = Action::parse(&action)?;
    validate::check_table(relid)?;
    let (attnum, _) = validate::anchor_info(relid, anchor.as_str())?;
    check_keep_for(&keep_for)?;
    check_schedule(&schedule)?;
    let purpose = match purpose {
        None => None,
        Some(p) => {
            if action != Action::Anonymize {
                return Err(PrivacyError::invalid_parameter(
                    "purpose applies only to anonymize policies",
                )
                .with_hint("A delete policy removes whole rows."));
            }
            let n = crate::labels::purposes::normalize_name(&p)?;
            if !crate::labels::purposes::exists(&n)? {
                return Err(PrivacyError::invalid_parameter(format!(
                    "purpose \"{n}\" does not exist"
                ))
                .with_hint("Define it with privacy.define_purpose()."));
            }
            Some(n)
        }
    };
    let row_filter = match row_filter {
        None => None,
        Some(f) => Some(filters::validate(relid, &f, FilterKind::Policy)?),
    };
    validate::check_privileges_of(unsafe { pg_sys::GetUserId() }, relid, action)?;
    if action == Action::Anonymize {
        validate::anonymize_plan(
            relid,
            purpose.as_deref(),
            unsafe { pg_sys::GetUserId() },
            security::table_owner(relid)?,
        )?;
    }
    let name = match name {
        Some(n) => {
            let n = check_policy_name(&n)?;
            if policy_exists(&n)? {
                return Err(PrivacyError::duplicate_object(format!(
                    "retention policy \"{n}\" already exists"
                )));
            }
            n
        }
        None => default_name(relid, action)?,
    };
    let owner = unsafe { pg_sys::GetUserId() };
    as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO privacy.retention_policy_defs
                (name, table_name, anchor, keep_for, action, row_filter, purpose,
                 schedule_interval, owner)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::pg_catalog.oid::pg_catalog.regrole)",
            &[
                name.as_str().into(),
                Regclass(relid).into(),
                anchor.clone().into(),
                keep_for.into(),
                action.as_str().into(),
                row_filter.clone().into(),
                purpose.clone().into(),
                schedule.into(),
                owner.into(),
            ],
        )?;
        Ok(())
    })?;
    if !crate::catalog::btree_index_leads_with(relid, attnum)? {
        ErrorReport::new(
            pgrx::PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
            format!(
                "anchor column \"{}\" of table {} has no index",
                anchor.as_str(),
                regclass_text(relid)
            ),
            "pg_privacy",
        )
        .set_hint(format!(
            "Runs then scan the whole table in ctid ranges; CREATE INDEX ON {} ({}) lets them read only expired rows.",
            crate::types::qualified_name(relid)?,
            spi::quote_identifier(anchor.as_str())
        ))
        .report(pgrx::PgLogLevel::NOTICE);
    }
    audit::record(
        "add_retention_policy",
        &name,
        json!({
            "table": regclass_text(relid), "anchor": anchor.as_str(),
            "keep_for": keep_for.to_string(), "action": action.as_str(),
            "row_filter": row_filter, "purpose": purpose,
            "schedule_interval": schedule.to_string(),
        }),
    )?;
    Ok(name)
}

/// `alter_retention_policy`: NULL leaves a setting as is; an empty
/// `row_filter` ('') removes the filter.
pub fn alter(
    name: &str,
    keep_for: Option<Interval>,
    row_filter: Option<String>,
    schedule_interval: Option<Interval>,
    enabled: Option<bool>,
) -> PResult<()> {
    let p = require(name)?;
    require_manage(&p, "alter")?;
    if let Some(k) = &keep_for {
        check_keep_for(k)?;
    }
    if let Some(s) = &schedule_interval {
        check_schedule(s)?;
    }
    // Some(None) = remove the filter
    let new_filter: Option<Option<String>> = match row_filter {
        None => None,
        Some(f) if f.trim().is_empty() => Some(None),
        Some(f) => {
            validate::check_table(p.relid)?;
            Some(Some(filters::validate(p.relid, &f, FilterKind::Policy)?))
        }
    };
    as_extension_owner(|| {
        Spi::run_with_args(
            "UPDATE privacy.retention_policy_defs
                SET keep_for = COALESCE($2, keep_for),
                    row_filter = CASE WHEN $3 THEN $4 ELSE row_filter END,
                    schedule_interval = COALESCE($5, schedule_interval),
                    next_run_at = CASE WHEN $5 IS NULL THEN next_run_at
                                       ELSE COALESCE(last_run_at + $5, pg_catalog.now()) END,
                    enabled = COALESCE($6, enabled)
              WHERE name = $1",
            &[
                p.name.as_str().into(),
                keep_for.into(),
                new_filter.is_some().into(),
                new_filter.clone().flatten().into(),
                schedule_interval.into(),
                enabled.into(),
            ],
        )?;
        Ok(())
    })?;
    let mut changes = serde_json::Map::new();
    if let Some(k) = keep_for {
        changes.insert("keep_for".into(), json!(k.to_string()));
    }
    if let Some(f) = new_filter {
        changes.insert("row_filter".into(), json!(f));
    }
    if let Some(s) = schedule_interval {
        changes.insert("schedule_interval".into(), json!(s.to_string()));
    }
    if let Some(e) = enabled {
        changes.insert("enabled".into(), json!(e));
    }
    audit::record(
        "alter_retention_policy",
        &p.name,
        serde_json::Value::Object(changes),
    )
}

/// `drop_retention_policy`.
pub fn drop(name: &str) -> PResult<()> {
    let p = require(name)?;
    require_manage(&p, "drop")?;
    as_extension_owner(|| {
        Spi::run_with_args(
            "DELETE FROM privacy.retention_policy_defs WHERE name = $1",
            &[p.name.as_str().into()],
        )?;
        Ok(())
    })?;
    audit::record(
        "drop_retention_policy",
        &p.name,
        json!({ "table": regclass_text(p.relid) }),
    )
}
