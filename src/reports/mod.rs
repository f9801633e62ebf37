//! Compliance reports built from pg_privacy's catalog (issue 15):
//!
//! | module         | owns                                                          |
//! |----------------|---------------------------------------------------------------|
//! | `declarations` | controller, DPO, recipients, transfers, subject descriptions  |
//! | `catalog`      | one read of tables, columns, tags, indexes, keys, policies    |
//! | `heuristics`   | which column names and types look personal (pure)             |
//! | `lint`         | `privacy.lint()`: coverage findings with the SQL that fixes them |
//! | `record`       | `privacy.processing_record()`: the GDPR Art. 30(1) record     |
//! | `access`       | what `export_subject` adds for GDPR Art. 15, its Markdown form |
//! | `markdown`     | readable renderings of the record and of an export (pure)     |
//!
//! Every function here is administrative (EXECUTE revoked from PUBLIC in
//! `sql/reports.sql`): the record and the lint show the whole policy, an
//! export someone's data.

pub mod access;
pub mod catalog;
pub mod declarations;
pub mod heuristics;
pub mod lint;
pub mod markdown;
pub mod record;
