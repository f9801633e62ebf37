//! What an `ANONYMIZE` method runs on a column's values, and who must be
//! allowed to run it: shared by the label provider (checked against the
//! table's owner when a tag is placed) and by anonymization (checked again
//! when a policy is made, a run starts, or an erasure plans a table), and
//! which methods would break a foreign key ([`check_foreign_key`]).

use super::grammar::Method;
use crate::error::{PResult, PrivacyError};
use crate::types::regclass_text;
use pgrx::prelude::*;

/// The pseudonymization function a method applies to a column of type
/// `typid` (its signature), if it uses the keyed hash.
pub fn hash_function(method: &Method, typid: pg_sys::Oid) -> Option<&'static str> {
    Some(match (method, typid) {
        (Method::Email, _) => "privacy.pseudonymize_email(text, text)",
        (Method::Pseudonymize, t) if t == pg_sys::BYTEAOID => "privacy.pseudonymize(bytea, text)",
        (Method::Pseudonymize, t) if t == pg_sys::UUIDOID => {
            "privacy.pseudonymize_uuid(uuid, text)"
        }
        (Method::Pseudonymize, t)
            if t == pg_sys::INT2OID || t == pg_sys::INT4OID || t == pg_sys::INT8OID =>
        {
            "privacy.pseudonymize_bigint(bigint, text)"
        }
        (Method::Pseudonymize, _) => "privacy.pseudonymize(text, text)",
        _ => return None,
    })
}

/// Who must be able to run the keyed hash, for the error message.
#[derive(Clone, Copy, Debug)]
pub enum KeyUser {
    /// the owner of a retention policy (or the role creating one)
    PolicyOwner,
    /// the owner of the table whose rows are pseudonymized: a table's rows
    /// are hashed only with keys its owner may use, or the owner could
    /// write chosen values and read back their pseudonyms (an oracle)
    TableOwner(pg_sys::Oid),
}

/// 42501 for a role that may not execute pseudonymization function `f`.
pub fn execute_refused(f: &str, role: pg_sys::Oid, who: KeyUser) -> PrivacyError {
    let name = crate::security::role_name(role);
    match who {
        KeyUser::PolicyOwner => PrivacyError::insufficient_privilege(format!(
            "permission denied for function {f}"
        ))
        .with_hint(format!(
            "Anonymization checks that the policy owner could run it: GRANT EXECUTE ON FUNCTION {f} TO {};",
            spi::quote_identifier(&name)
        )),
        KeyUser::TableOwner(relid) => PrivacyError::insufficient_privilege(format!(
            "permission denied for function {f}: role \"{name}\", owner of table {}, may not execute it",
            regclass_text(relid)
        ))
        .with_hint(format!(
            "A table's rows are pseudonymized only with keys its owner may use: GRANT EXECUTE ON FUNCTION {f} TO {};",
            spi::quote_identifier(&name)
        )),
    }
}

/// Refuse (22023) a method that would break a foreign key the column is
/// part of: a pseudonym (PSEUDONYMIZE, EMAIL) or a truncated date is not a
/// key of the referenced table. NULL (in a nullable column), a CONSTANT
/// naming a placeholder row and a FUNCTION are the user's to choose. `link`:
/// the column is the table's SUBJECT column, rewritten to cut the link.
pub fn check_foreign_key(
    relid: pg_sys::Oid,
    attnum: i16,
    column: &str,
    method: &Method,
    not_null: bool,
    link: bool,
) -> PResult<()> {
    if !matches!(
        method,
        Method::Pseudonymize | Method::Email | Method::Truncate(_)
    ) {
        return Ok(());
    }
    let Some(fk) = crate::catalog::foreign_key_of_column(relid, attnum)? else {
        return Ok(());
    };
    let (conname, parent) = (fk.name, fk.other);
    let table = regclass_text(relid);
    let q = spi::quote_identifier(column);
    let hint = if !not_null {
        "Anonymize it with NULL (ANONYMIZE NULL): the foreign key accepts it.".to_string()
    } else if link {
        format!(
            "Make the column nullable (ALTER TABLE {table} ALTER COLUMN {q} DROP NOT NULL) so anonymization sets it to NULL, point it at a placeholder row of {parent} with ANONYMIZE CONSTANT '<its key>', or use a delete policy."
        )
    } else {
        format!(
            "Leave the column untagged and anonymize the referenced row of {parent} instead (tag its columns), make the column nullable and use ANONYMIZE NULL, or point it at a placeholder row with ANONYMIZE CONSTANT '<its key>'."
        )
    };
    Err(PrivacyError::invalid_parameter(format!(
        "ANONYMIZE {method} would break foreign key \"{conname}\": column \"{column}\" of table {table} references {parent}"
    ))
    .with_detail(format!(
        "The anonymized value would not be a key of {parent}, so the update would fail."
    ))
    .with_hint(hint))
}

/// A method that fits a column of type `typid` (for hints).
pub fn suggested_method(typid: pg_sys::Oid) -> &'static str {
    match typid {
        t if t == pg_sys::BOOLOID => "CONSTANT 'false'",
        t if t == pg_sys::NUMERICOID
            || t == pg_sys::FLOAT4OID
            || t == pg_sys::FLOAT8OID
            || t == pg_sys::INT2OID
            || t == pg_sys::INT4OID
            || t == pg_sys::INT8OID =>
        {
            "CONSTANT '0'"
        }
        t if t == pg_sys::DATEOID || t == pg_sys::TIMESTAMPOID || t == pg_sys::TIMESTAMPTZOID => {
            "TRUNCATE year"
        }
        t if t == pg_sys::TEXTOID || t == pg_sys::VARCHAROID => "CONSTANT 'redacted'",
        _ => "CONSTANT '<a value of the type>' or FUNCTION schema.func",
    }
}
