//! Settings: every `privacy.*` GUC, registered by [`init`] and read through
//! typed accessors. The prefix `privacy` is reserved so typos are rejected.
//!
//! | setting                  | default | context | meaning                                   |
//! |--------------------------|---------|---------|-------------------------------------------|
//! | `privacy.worker_enabled` | on      | SUSET   | the background worker starts new runs (server-wide, or per database with `ALTER DATABASE … SET`) |
//! | `privacy.naptime`        | 60s     | SIGHUP  | how often the worker looks for due policies |
//! | `privacy.batch_size`     | 10000   | SUSET   | rows per purge batch (worker and manual)  |
//! | `privacy.lock_timeout`   | 1s      | SUSET   | max wait for a row/table lock per batch   |
//! | `privacy.max_workers`    | 4       | SIGHUP  | per-database workers the launcher runs    |
//! | `privacy.batch_delay`    | 0       | SIGHUP  | worker's pause between two batches (throttle) |
//! | `privacy.run_timeout`    | 1h      | SIGHUP  | longest worker run; 0 = no bound          |
//! | `privacy.root_key_command` | ''    | postmaster | command printing the root key (see `rootkey`) |
//! | `privacy.previous_root_key_command` | '' | postmaster | the old root key, during a rotation |

//! | `privacy.require_tags`   | off     | SUSET   | new personal-looking columns must be tagged (off, warn, error) |

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::PostgresGucEnum;
use std::ffi::CString;

/// `privacy.require_tags`: what happens to a new column that looks personal
/// and has no tag (see `require_tags`).
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum RequireTags {
    #[name = c"off"]
    Off,
    #[name = c"warn"]
    Warn,
    #[name = c"error"]
    Error,
}

static WORKER_ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
static NAPTIME_S: GucSetting<i32> = GucSetting::<i32>::new(60);
static BATCH_SIZE: GucSetting<i32> = GucSetting::<i32>::new(10_000);
static LOCK_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(1_000);
static MAX_WORKERS: GucSetting<i32> = GucSetting::<i32>::new(4);
static BATCH_DELAY_MS: GucSetting<i32> = GucSetting::<i32>::new(0);
/// One hour: far above what a scheduled run needs (a run over a backlog of
/// a million rows takes seconds, half a minute throttled at
/// `batch_delay = 200ms`), low enough that one stuck policy cannot hold a
/// database's retention for long. A long run cut by it keeps its committed
/// batches and the next run goes on from there.
static RUN_TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(3_600_000);
static ROOT_KEY_COMMAND: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static PREVIOUS_ROOT_KEY_COMMAND: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
static REQUIRE_TAGS: GucSetting<RequireTags> = GucSetting::<RequireTags>::new(RequireTags::Off);

pub fn init() {
    // PostgreSQL refuses a new postmaster-level setting after startup (a
    // backend that loads the library on demand): there the root key settings
    // are defined at SIGHUP level, only so their postgresql.conf lines are
    // accepted; such a backend never runs the commands (see `rootkey`).
    let preloading = unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress };
    let root_key_context = || {
        if preloading {
            GucContext::Postmaster
        } else {
            GucContext::Sighup
        }
    };
    GucRegistry::define_int_guc(
        c"privacy.run_timeout",
        c"Longest time one retention run of the pg_privacy worker may take.",
        c"A run past it is cancelled, even inside a statement, and recorded as failed; committed batches are kept. 0 means no bound.",
        &RUN_TIMEOUT_MS,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"privacy.batch_delay",
        c"Pause of the pg_privacy worker between two batches of a run.",
        c"Throttles background purges on a busy server (like autovacuum's cost delay); manual runs never pause.",
        &BATCH_DELAY_MS,
        0,
        60_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_bool_guc(
        c"privacy.worker_enabled",
        c"Whether the pg_privacy background worker starts new retention runs.",
        c"When off in the server's configuration, the launcher and per-database workers stay idle and runs in progress stop at the next batch boundary; ALTER DATABASE ... SET privacy.worker_enabled = off pauses that database's worker from its next round.",
        &WORKER_ENABLED,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"privacy.naptime",
        c"Time between two scheduling rounds of the pg_privacy worker.",
        c"A due policy starts at most this late.",
        &NAPTIME_S,
        1,
        86_400,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"privacy.batch_size",
        c"Rows deleted or anonymized per batch by a retention run.",
        c"The worker commits after each batch.",
        &BATCH_SIZE,
        1,
        100_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"privacy.lock_timeout",
        c"Longest wait for a lock by one retention batch.",
        c"A batch that cannot get its locks in time is given up and retried later.",
        &LOCK_TIMEOUT_MS,
        1,
        3_600_000,
        GucContext::Suset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"privacy.max_workers",
        c"Largest number of per-database pg_privacy workers running at once.",
        c"Each worker is a background worker and counts against max_worker_processes.",
        &MAX_WORKERS,
        1,
        64,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"privacy.root_key_command",
        c"Command that prints pg_privacy's root key (64 hex digits) on its standard output.",
        c"Run once by the postmaster at start when pg_privacy is in shared_preload_libraries; the root key wraps every key secret and never enters the database.",
        &ROOT_KEY_COMMAND,
        root_key_context(),
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_string_guc(
        c"privacy.previous_root_key_command",
        c"Command that prints pg_privacy's previous root key, during a root key rotation.",
        c"Secrets wrapped under it can still be read, and privacy.rotate_root_key() rewraps them under the current root key.",
        &PREVIOUS_ROOT_KEY_COMMAND,
        root_key_context(),
        GucFlags::SUPERUSER_ONLY,
    );
    GucRegistry::define_enum_guc(
        c"privacy.require_tags",
        c"Whether a new column that looks personal must be tagged (off, warn, error).",
        c"warn: a warning when CREATE TABLE or ALTER TABLE ADD COLUMN makes such a column; error: its transaction fails at commit until the column is tagged (or marked NOT PERSONAL).",
        &REQUIRE_TAGS,
        GucContext::Suset,
        GucFlags::default(),
    );
    unsafe { pgrx::pg_sys::MarkGUCPrefixReserved(c"privacy".as_ptr()) };
}

pub fn worker_enabled() -> bool {
    WORKER_ENABLED.get()
}

/// PostgreSQL's `parse_bool`: true/false, yes/no and their prefixes, on,
/// off (at least "of"), 1, 0; case-insensitive.
pub fn parse_bool(v: &str) -> Option<bool> {
    let v = v.trim().to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| v.len() >= min && word.starts_with(v.as_str());
    if prefix_of("true", 1) || prefix_of("yes", 1) || v == "on" || v == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || v == "0" {
        Some(false)
    } else {
        None
    }
}

pub fn naptime_secs() -> u64 {
    NAPTIME_S.get().max(1) as u64
}

pub fn batch_size() -> i64 {
    BATCH_SIZE.get().max(1) as i64
}

pub fn lock_timeout_ms() -> i32 {
    LOCK_TIMEOUT_MS.get().max(1)
}

pub fn batch_delay_ms() -> u64 {
    BATCH_DELAY_MS.get().max(0) as u64
}

/// `privacy.run_timeout` in milliseconds; `None` when it is 0 (no bound).
pub fn run_timeout_ms() -> Option<u64> {
    match RUN_TIMEOUT_MS.get() {
        ms if ms > 0 => Some(ms as u64),
        _ => None,
    }
}

pub fn max_workers() -> usize {
    MAX_WORKERS.get().max(1) as usize
}

fn string_setting(s: &GucSetting<Option<CString>>) -> Option<String> {
    s.get().map(|c| c.to_string_lossy().into_owned())
}

pub fn root_key_command() -> Option<String> {
    string_setting(&ROOT_KEY_COMMAND)
}

pub fn previous_root_key_command() -> Option<String> {
    string_setting(&PREVIOUS_ROOT_KEY_COMMAND)
}

pub fn require_tags() -> RequireTags {
    REQUIRE_TAGS.get()
}

#[cfg(test)]
mod unit {
    use super::parse_bool;

    #[test]
    fn booleans_parse_like_postgres() {
        for v in [
            "off", "OFF", "of", "false", "f", "fal", "no", "n", "0", " off ",
        ] {
            assert_eq!(parse_bool(v), Some(false), "{v}");
        }
        for v in ["on", "true", "t", "yes", "y", "1", "TRUE"] {
            assert_eq!(parse_bool(v), Some(true), "{v}");
        }
        for v in ["o", "", "banana", "2", "offf"] {
            assert_eq!(parse_bool(v), None, "{v}");
        }
    }
}
