//! pg_privacy: a privacy policy the database enforces.
//!
//! `lib.rs` only wires the modules together; each module owns one concern:
//!
//! | module      | owns                                                        |
//! |-------------|-------------------------------------------------------------|
//! | `error`     | the error type and its SQLSTATE constructors                |
//! | `gucs`      | the `privacy.*` settings                                    |
//! | `security`  | the one scope guard: identity (table/extension owner, restricted), pinned settings |
//! | `audit`     | `privacy.audit_log`, audit lines in the server log, SQL entry points |
//! | `labels`    | the label grammar (pure Rust parser and printer)            |
//! | `tags`      | the `privacy` label provider, tag wrappers, tag readers     |
//! | `purposes`  | `define_purpose` / `drop_purpose`                           |
//! | `types`     | `regclass` and `name` SQL types                             |
//! | `subject`   | data subject rights: `export_subject`, `forget_subject`     |
//! | `objections` | `object_to_purpose`, `withdraw_objection`, `may_process`    |
//! | `keys`      | key store, per-backend HMAC cache, invalidation, key admin  |
//! | `pseudonym` | `pseudonymize*` SQL functions (keyed HMAC-SHA256)           |
//! | `subxact`   | running work in a subtransaction, errors as values          |
//! | `sql`       | SPI helpers, statement parameters, values carried between statements |
//! | `filters`   | row_filter / hold filter validation (analyzer + allow-list) |
//! | `policies`  | `add/alter/drop_retention_policy`, policy checks            |
//! | `holds`     | legal holds and the predicate of each table's holds         |
//! | `anonymize` | per-column anonymization SQL (`anonymize::rewrites`)        |
//! | `purge`     | the batch engine (`purge::Run`) and `run_retention`         |
//! | `worker`    | the background launcher and per-database workers            |
//! | `reports`   | `lint`, `processing_record`, declarations, Art. 15 export additions |
//! | `require_tags` | the `privacy.require_tags` event trigger (privacy by default) |

use pgrx::prelude::*;

mod anonymize;
mod audit;
mod error;
mod filters;
mod gucs;
mod holds;
pub mod keys;
mod labels;
mod objections;
mod policies;
mod pseudonym;
mod purge;
mod purposes;
mod reports;
mod require_tags;
mod security;
mod sql;
mod subject;
mod subxact;
mod tags;
mod types;
mod worker;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

pgrx::pg_module_magic!();

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!(
    "../sql/views.sql",
    name = "views",
    requires = ["schema", tags::_label_parts]
);
extension_sql_file!(
    "../sql/subject.sql",
    name = "subject",
    requires = ["schema"]
);
extension_sql_file!("../sql/keys.sql", name = "keys", requires = ["schema"]);
extension_sql_file!(
    "../sql/retention.sql",
    name = "retention",
    requires = ["schema"]
);
extension_sql_file!(
    "../sql/reports.sql",
    name = "reports",
    requires = ["schema"]
);
extension_sql_file!("../sql/grants.sql", name = "grants", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
    tags::init();
    worker::init();
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'pg_privacy'"]
    }
}
