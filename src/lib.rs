//! pg_privacy: a privacy policy the database enforces.
//!
//! `lib.rs` only wires the modules together. They are declared in
//! dependency order: a module uses only modules declared **above** it (its
//! own files aside). `tests::layers` checks this on every `make test`
//! (no upward `crate::` path, hence no import cycle).
//!
//! | module      | owns                                                        |
//! |-------------|-------------------------------------------------------------|
//! | `error`     | the error type, its SQLSTATE constructors, caught errors    |
//! | `gucs`      | the `privacy.*` settings                                    |
//! | `sql`       | SPI helpers, statement parameters (`Params`), subtransactions |
//! | `security`  | the one scope guard: identity (table/extension owner, restricted), pinned settings |
//! | `types`     | `regclass` and `name` SQL types                             |
//! | `catalog`   | typed catalog reads                                         |
//! | `audit`     | `privacy.audit_log`, audit lines in the server log, SQL entry points |
//! | `keys`      | root key and wrapping, key store, per-backend HMAC cache, key admin, `pseudonymize*` |
//! | `labels`    | label grammar, methods, tag readers, purposes, the label provider |
//! | `retention` | filters, holds, anonymization SQL, policies, the run engine |
//! | `subject`   | data subject rights: export, erasure, objections            |
//! | `worker`    | the background launcher and per-database workers            |
//! | `api`       | the thin `#[pg_extern]` SQL functions, one file per area    |
//! | `reports`   | `lint`, `processing_record`, declarations, Art. 15 export additions |
//! | `require_tags` | the `privacy.require_tags` event trigger (privacy by default) |

use pgrx::prelude::*;

mod error;
mod gucs;
mod sql;
mod security;
mod types;
mod catalog;
mod audit;
pub mod keys;
mod labels;
mod retention;
mod reports;
mod require_tags;
mod subject;
mod worker;
mod api;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

pgrx::pg_module_magic!();

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!(
    "../sql/views.sql",
    name = "views",
    requires = ["schema", api::tags::_label_parts]
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
    keys::rootkey::load_at_start();
    labels::provider::init();
    worker::init();
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        // the root keys of the test cluster (fixed, like tests/lib.sh's):
        // the previous one lets the rotation test rewrap secrets
        vec![
            "shared_preload_libraries = 'pg_privacy'",
            "privacy.root_key_command = 'echo 5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0'",
            "privacy.previous_root_key_command = 'echo 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff'",
        ]
    }
}
