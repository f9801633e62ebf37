//! Labels: what a column's tag says, and PostgreSQL's `privacy` label
//! provider that checks it.
//!
//! | file          | owns                                                        |
//! |---------------|-------------------------------------------------------------|
//! | `grammar`     | the label grammar: pure Rust parser and printer (`#[test]`s) |
//! | `methods`     | what an `ANONYMIZE` method runs, who must be allowed to run it |
//! | `tags`        | reading tags back (`table_tags`, `subject_tables`), setting them |
//! | `purposes`    | the purposes a tag names (`define_purpose`, `drop_purpose`) |
//! | `provider`    | the label hook: validates and audits every `SECURITY LABEL` |

pub mod grammar;
pub mod methods;
pub mod provider;
pub mod purposes;
pub mod tags;
