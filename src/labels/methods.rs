//! What an `ANONYMIZE` method runs on a column's values, and who must be
//! allowed to run it: shared by the label provider (checked against the
//! table's owner when a tag is placed) and by anonymization (checked again
//! when a policy is made, a run starts, or an erasure plans a table).

use super::grammar::Method;
use crate::error::PrivacyError;
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
