//! Purposes: why a column is kept, and under which GDPR Art. 6 legal basis.
//!
//! Stored in `privacy.purposes` (readable by everyone, written only here, as
//! the extension owner). `define_purpose` is an upsert; `drop_purpose` refuses
//! (2BP01) while a column tag or a retention policy still names the purpose.

use super::grammar;
use crate::audit;
use crate::error::{PResult, PrivacyError};
use crate::security::as_extension_owner;
use pgrx::prelude::*;
use serde_json::json;

pub const LEGAL_BASES: &[&str] = &[
    "consent",
    "contract",
    "legal_obligation",
    "vital_interests",
    "public_task",
    "legitimate_interests",
];

/// Validate and normalize a purpose name (folded to lower case like an
/// unquoted SQL identifier).
pub fn normalize_name(name: &str) -> PResult<String> {
    let n = name.trim();
    let ok = !n.is_empty()
        && n.len() <= 63
        && n.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(PrivacyError::invalid_parameter(format!("invalid purpose name \"{name}\""))
            .with_hint("A purpose name is an identifier: letters, digits and underscores, starting with a letter."));
    }
    let lower = n.to_ascii_lowercase();
    if ["purpose", "category", "subject", "anonymize"].contains(&lower.as_str()) {
        return Err(PrivacyError::invalid_parameter(format!(
            "invalid purpose name \"{name}\": it is a label keyword"
        )));
    }
    Ok(lower)
}

pub fn exists(name: &str) -> PResult<bool> {
    Ok(Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM privacy.purposes WHERE name = $1)",
        &[name.into()],
    )?
    .unwrap_or(false))
}

/// Fail with 42704 unless the purpose exists; returns its normalized name.
pub fn require(name: &str) -> PResult<String> {
    let n = normalize_name(name)?;
    if exists(&n)? {
        Ok(n)
    } else {
        Err(
            PrivacyError::undefined_object(format!("purpose \"{n}\" does not exist"))
                .with_hint("Define it with privacy.define_purpose()."),
        )
    }
}

/// `define_purpose(name, description, legal_basis)`: create or update.
pub fn define(name: &str, description: Option<String>, legal_basis: &str) -> PResult<()> {
    let name = normalize_name(name)?;
    let basis = legal_basis;
    let basis_norm = basis.trim().to_ascii_lowercase();
    if !LEGAL_BASES.contains(&basis_norm.as_str()) {
        return Err(
            PrivacyError::invalid_parameter(format!("invalid legal basis \"{basis}\"")).with_hint(
                format!("The legal basis is one of: {}.", LEGAL_BASES.join(", ")),
            ),
        );
    }
    let created = as_extension_owner(|| {
        Ok(Spi::get_one_with_args::<bool>(
            "INSERT INTO privacy.purposes AS p (name, description, legal_basis)
             VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE
                SET description = EXCLUDED.description, legal_basis = EXCLUDED.legal_basis,
                    updated_at = pg_catalog.now()
             RETURNING (xmax = 0)",
            &[
                name.as_str().into(),
                description.clone().into(),
                basis_norm.as_str().into(),
            ],
        )?
        .unwrap_or(true))
    })?;
    audit::record(
        if created {
            "define_purpose"
        } else {
            "update_purpose"
        },
        &name,
        json!({ "description": description, "legal_basis": basis_norm }),
    )
}

/// Columns whose tag names the purpose, as `table.column` strings.
fn columns_using(purpose: &str) -> PResult<Vec<String>> {
    let tagged = Spi::connect(|c| {
        let rows = c.select(
            "SELECT l.objoid, pg_catalog.quote_ident(a.attname), l.label
               FROM pg_catalog.pg_seclabel l
               JOIN pg_catalog.pg_class c ON c.oid = l.objoid
               JOIN pg_catalog.pg_attribute a ON a.attrelid = l.objoid AND a.attnum = l.objsubid
              WHERE l.provider = 'privacy' AND l.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
                AND NOT a.attisdropped AND c.relpersistence <> 't'",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let label: String = r.get(3)?.unwrap_or_default();
            if grammar::parse(&label).is_ok_and(|l| l.purposes.iter().any(|p| p == purpose)) {
                out.push((
                    r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::Oid::INVALID),
                    r.get::<String>(2)?.unwrap_or_default(),
                ));
            }
        }
        Ok::<_, PrivacyError>(out)
    })?;
    // table names as the caller reads them
    let mut cols: Vec<String> = tagged
        .into_iter()
        .map(|(relid, col)| format!("{}.{col}", crate::types::regclass_text(relid)))
        .collect();
    cols.sort();
    Ok(cols)
}

/// `drop_purpose(name)`: 2BP01 while a column or a policy uses it.
pub fn drop(name: &str) -> PResult<()> {
    let name = require(name)?;
    let cols = columns_using(&name)?;
    if !cols.is_empty() {
        return Err(PrivacyError::dependent_objects(format!(
            "cannot drop purpose \"{name}\" because columns are tagged with it"
        ))
        .with_detail(format!("Tagged columns: {}.", cols.join(", ")))
        .with_hint("Retag or untag those columns first."));
    }
    let policies = crate::catalog::policies_using_purpose(&name)?;
    if !policies.is_empty() {
        return Err(PrivacyError::dependent_objects(format!(
            "cannot drop purpose \"{name}\" because retention policies use it"
        ))
        .with_detail(format!("Retention policies: {}.", policies.join(", ")))
        .with_hint("Drop those policies first."));
    }
    as_extension_owner(|| {
        Spi::run_with_args(
            "DELETE FROM privacy.purposes WHERE name = $1",
            &[name.as_str().into()],
        )?;
        Ok(())
    })?;
    audit::record("drop_purpose", &name, json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_and_validate() {
        assert_eq!(normalize_name("Marketing").unwrap(), "marketing");
        assert_eq!(normalize_name("_x1").unwrap(), "_x1");
        assert!(normalize_name("").is_err());
        assert!(normalize_name("1x").is_err());
        assert!(normalize_name("a b").is_err());
        assert!(normalize_name("ümlaut").is_err());
        assert!(normalize_name("subject").is_err());
        assert!(normalize_name(&"a".repeat(64)).is_err());
    }
}
