//! Validation of a retention policy, shared by `add_retention_policy` (as
//! the creating role) and by a run's start (again, as the policy's owner,
//! since the table, its tags, the privileges and the keys may have changed
//! in between): the same checks with the same SQLSTATEs both times.

use super::anonymize::{self, Planned};
use super::policy::{Action, AnchorType};
use crate::catalog;
use crate::error::{PResult, PrivacyError};
use crate::labels::methods::KeyUser;
use crate::security;
use crate::types::regclass_text;
use pgrx::prelude::*;

/// The table must exist and be a plain table.
pub fn check_table(relid: pg_sys::Oid) -> PResult<()> {
    let relation = catalog::relation(relid)?;
    match relation.as_ref().map(|r| r.kind.as_str()) {
        None => Err(PrivacyError::undefined_table(format!(
            "table with oid {} does not exist",
            u32::from(relid)
        ))),
        Some("r") => Ok(()),
        Some("p") => Err(PrivacyError::invalid_parameter(format!(
            "\"{}\" is a partitioned table",
            regclass_text(relid)
        ))
        .with_hint(
            "Create a policy on each partition (or drop old partitions); holds on the parent apply to its partitions.",
        )),
        Some(_) => Err(PrivacyError::invalid_parameter(format!(
            "\"{}\" is not a table",
            regclass_text(relid)
        ))),
    }
}

/// The anchor column's number and type: 42703 when it does not exist,
/// 42804 when it is not a date, timestamp or timestamptz.
pub fn anchor_info(relid: pg_sys::Oid, anchor: &str) -> PResult<(i16, AnchorType)> {
    let Some(c) = catalog::column_named(relid, anchor)? else {
        return Err(PrivacyError::undefined_column(format!(
            "anchor column \"{anchor}\" of table {} does not exist",
            regclass_text(relid)
        ))
        .with_hint("A renamed or dropped anchor column breaks the policy: alter or drop it."));
    };
    let t = if c.type_oid == pg_sys::DATEOID {
        AnchorType::Date
    } else if c.type_oid == pg_sys::TIMESTAMPOID {
        AnchorType::Timestamp
    } else if c.type_oid == pg_sys::TIMESTAMPTZOID {
        AnchorType::TimestampTz
    } else {
        return Err(PrivacyError::datatype_mismatch(format!(
            "anchor column \"{anchor}\" of table {} has type {}",
            regclass_text(relid),
            c.type_name
        ))
        .with_hint("The anchor must be a date, timestamp or timestamptz column."));
    };
    Ok((c.attnum, t))
}

/// `role`'s privileges on the table for this action (42501): a policy does
/// nothing its owner could not do by hand.
pub fn check_privileges_of(role: pg_sys::Oid, relid: pg_sys::Oid, action: Action) -> PResult<()> {
    for privilege in ["SELECT", action.privilege()] {
        if !security::role_has_table_privilege(role, relid, privilege)? {
            let mut e = PrivacyError::insufficient_privilege(format!(
                "permission denied for table {}",
                regclass_text(relid)
            ))
            .with_hint(format!(
                "A {} policy needs SELECT and {} on the table: it never does more than its owner could do by hand.",
                action.as_str(),
                action.privilege()
            ));
            if role != unsafe { pg_sys::GetUserId() } {
                e = e.with_detail(format!(
                    "The policy's owner, role \"{}\", does not have {privilege} on it.",
                    security::role_name(role)
                ));
            }
            return Err(e);
        }
    }
    check_row_security_of(role, relid)
}

/// Refuse (42501) a table where row-level security filters `role`'s view:
/// the run's statements execute as the table's owner, who is not subject to
/// the table's policies (unless it forces them on itself), so the policy
/// would purge rows its owner could neither see nor delete by hand.
pub fn check_row_security_of(role: pg_sys::Oid, relid: pg_sys::Oid) -> PResult<()> {
    let filtered = security::Scope::as_role(role).restricted().run(|| {
        crate::sql::opt::<bool>("SELECT pg_catalog.row_security_active($1)", &[relid.into()])
    })?;
    if filtered == Some(true) {
        return Err(PrivacyError::insufficient_privilege(format!(
            "row-level security is active on table {} for role \"{}\": a retention policy could change rows that role cannot see",
            regclass_text(relid),
            security::role_name(role)
        ))
        .with_hint("Retention runs as the table's owner: create the policy as the table's owner or as a role with BYPASSRLS."));
    }
    Ok(())
}

/// The columns an anonymize policy rewrites, after checking there is at
/// least one (22023) and that the keyed hash they use may run for the
/// policy's owner and for the table's owner, whose rows are hashed.
pub fn anonymize_plan(
    relid: pg_sys::Oid,
    purpose: Option<&str>,
    policy_owner: pg_sys::Oid,
    table_owner: pg_sys::Oid,
) -> PResult<Vec<Planned>> {
    let planned = anonymize::plan(relid, purpose)?;
    if planned.is_empty() {
        return Err(PrivacyError::invalid_parameter(format!(
            "table {} has no tagged column to anonymize{}",
            regclass_text(relid),
            purpose
                .map(|p| format!(" for purpose \"{p}\""))
                .unwrap_or_default()
        ))
        .with_hint("Tag columns with SECURITY LABEL FOR privacy or privacy.tag_column() first."));
    }
    anonymize::check_key_usable(&planned, policy_owner, KeyUser::PolicyOwner)?;
    anonymize::check_key_usable(&planned, table_owner, KeyUser::TableOwner(relid))?;
    Ok(planned)
}
