//! The background worker: a launcher plus one worker per database.
//!
//! * The **launcher** (`pg_privacy launcher`) is registered from `_PG_init`
//!   when the library is in `shared_preload_libraries`, starts once recovery
//!   has finished (so it never runs on a standby, and starts after a
//!   promotion) and is restarted by the postmaster 10 s after a crash. Every
//!   `privacy.naptime` it lists the databases in `pg_database` and starts a
//!   dynamic **database worker** for each one that has none, at most
//!   `privacy.max_workers` at a time. It cannot see which databases have the
//!   extension (that is per database), so a worker that finds no extension
//!   exits at once and its database is only tried again after
//!   `RECHECK_NAPTIMES` naptimes: databases created, or where the extension is
//!   created, later are found without any per-database setting.
//! * A **database worker** (`pg_privacy worker`, application_name
//!   `pg_privacy worker`) holds a session advisory lock so there is never more
//!   than one per database, and every naptime runs each enabled policy that is
//!   due, through the same batch engine as `privacy.run_retention()`
//!   (`run::Run`), committing after each batch; the engine checks the
//!   policy owner's privileges and runs the statements as the table's owner.
//!   A failing batch is rolled back, recorded with its error, and the policy
//!   backs off (the engine computes `next_run_at`); other policies go on.
//! * While the database's catalog is not at the library's version (the
//!   package was upgraded, `ALTER EXTENSION pg_privacy UPDATE` not run), the
//!   worker runs nothing there and says so once in the server log; it
//!   starts (closing interrupted runs first) once the update is done.
//! * SIGHUP re-reads the configuration (`ProcessConfigFile`); SIGTERM stops
//!   between batches (the interrupted run is recorded as failed, its
//!   committed batches stay); postmaster death ends both processes;
//!   `privacy.worker_enabled = off` stops new runs and stops a run in
//!   progress at its next batch boundary.

use crate::error::PrivacyError;
use crate::gucs;
use crate::retention::run::{self, Run, TriggeredBy};
use pgrx::bgworkers::*;
use pgrx::prelude::*;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const LIBRARY: &str = "pg_privacy";
pub const LAUNCHER_TYPE: &str = "pg_privacy launcher";
pub const WORKER_TYPE: &str = "pg_privacy worker";
/// A database whose worker exited (no extension there, or a crash) is tried
/// again after this many naptimes.
const RECHECK_NAPTIMES: u32 = 5;
/// Key of the session advisory lock that makes a database worker unique.
const WORKER_LOCK_KEY: i64 = 0x7072_6976_6163_7901; // "privacy\x01"

/// Register the launcher; only possible while preloading.
pub fn init() {
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    BackgroundWorkerBuilder::new(LAUNCHER_TYPE)
        .set_type(LAUNCHER_TYPE)
        .set_library(LIBRARY)
        .set_function("pg_privacy_launcher_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(Duration::from_secs(10)))
        .load();
}

fn reload_config_if_asked() {
    if BackgroundWorker::sighup_received() {
        unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
    }
}

fn set_application_name(name: &str) {
    let value = CString::new(name).expect("no NUL in application name");
    unsafe {
        pg_sys::SetConfigOption(
            c"application_name".as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
        );
    }
}

fn report_activity(what: Option<&str>) {
    let text = CString::new(what.unwrap_or("")).unwrap_or_default();
    let state = if what.is_some() {
        pg_sys::BackendState::STATE_RUNNING
    } else {
        pg_sys::BackendState::STATE_IDLE
    };
    unsafe { pg_sys::pgstat_report_activity(state, text.as_ptr()) };
}

// ---------------------------------------------------------------- launcher

struct DbSlot {
    handle: Option<DynamicBackgroundWorker>,
    /// When the worker was last seen gone (exited, never started).
    gone_since: Option<Instant>,
}

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_privacy_launcher_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    // No database: the launcher only reads the shared catalog pg_database.
    BackgroundWorker::connect_worker_to_spi(None, None);
    set_application_name(LAUNCHER_TYPE);
    log!("pg_privacy launcher started");

    let mut slots: HashMap<pg_sys::Oid, DbSlot> = HashMap::new();
    let mut limit_logged: Option<Instant> = None;
    loop {
        reload_config_if_asked();
        let naptime = Duration::from_secs(gucs::naptime_secs());
        let recheck = naptime * RECHECK_NAPTIMES;

        // forget workers that are gone
        for slot in slots.values_mut() {
            if let Some(h) = &slot.handle {
                if matches!(h.pid(), Err(status) if !matches!(status, BackgroundWorkerStatus::NotYetStarted))
                {
                    slot.handle = None;
                    slot.gone_since = Some(Instant::now());
                }
            }
        }
        let databases = list_databases();
        slots.retain(|oid, _| databases.iter().any(|(d, _)| d == oid));

        let mut running = slots.values().filter(|s| s.handle.is_some()).count();
        let mut waiting = 0usize;
        for (oid, name) in &databases {
            let slot = slots.entry(*oid).or_insert(DbSlot {
                handle: None,
                gone_since: None,
            });
            if slot.handle.is_some() {
                continue;
            }
            if slot.gone_since.is_some_and(|t| t.elapsed() < recheck) {
                continue;
            }
            if running >= gucs::max_workers() {
                waiting += 1;
                continue;
            }
            match start_database_worker(*oid, name) {
                Some(h) => {
                    slot.handle = Some(h);
                    slot.gone_since = None;
                    running += 1;
                }
                None => {
                    // no free background worker slot: try again next round
                    slot.gone_since = Some(Instant::now());
                    warning!(
                        "pg_privacy: could not start a worker for database \"{name}\"; \
                         raise max_worker_processes"
                    );
                }
            }
        }

        if waiting > 0 && limit_logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(600)) {
            log!(
                "pg_privacy: privacy.max_workers ({}) reached; {waiting} database(s) wait for a worker",
                gucs::max_workers()
            );
            limit_logged = Some(Instant::now());
        }

        if !BackgroundWorker::wait_latch(Some(naptime)) {
            break;
        }
    }
    log!("pg_privacy launcher stopped");
}

/// Connectable, non-template databases, read straight from pg_database (the
/// launcher has no database to run SQL in).
fn list_databases() -> Vec<(pg_sys::Oid, String)> {
    BackgroundWorker::transaction(|| unsafe {
        let mut out = Vec::new();
        let rel = pg_sys::table_open(pg_sys::DatabaseRelationId, pg_sys::AccessShareLock as i32);
        let scan = pg_sys::table_beginscan_catalog(rel, 0, std::ptr::null_mut());
        loop {
            let tup = pg_sys::heap_getnext(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tup.is_null() {
                break;
            }
            let form = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_database>(tup);
            if (*form).datallowconn && !(*form).datistemplate {
                let name = CStr::from_ptr((*form).datname.data.as_ptr())
                    .to_string_lossy()
                    .into_owned();
                out.push(((*form).oid, name));
            }
        }
        pg_sys::table_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as i32);
        out
    })
}

fn start_database_worker(db: pg_sys::Oid, name: &str) -> Option<DynamicBackgroundWorker> {
    BackgroundWorkerBuilder::new(&format!("{WORKER_TYPE} for {name}"))
        .set_type(WORKER_TYPE)
        .set_library(LIBRARY)
        .set_function("pg_privacy_worker_main")
        .enable_spi_access()
        .set_argument(Some(pg_sys::Datum::from(db)))
        .set_notify_pid(unsafe { pg_sys::MyProcPid })
        .set_restart_time(None)
        .load_dynamic()
        .ok()
}

// ---------------------------------------------------------- database worker

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_privacy_worker_main(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let db = unsafe { pg_sys::Oid::from_datum(arg, false) }.expect("database oid");
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db), None);
    // ALTER DATABASE/ROLE … SET search_path reaches background workers too:
    // pin it for the whole session (and each transaction pins it again)
    crate::security::pin_session();
    set_application_name(WORKER_TYPE);

    let (installed, unique, dbname) = BackgroundWorker::transaction(|| {
        let installed = Spi::get_one::<bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_privacy')",
        )
        .ok()
        .flatten()
        .unwrap_or(false);
        let unique = installed
            && Spi::get_one_with_args::<bool>(
                "SELECT pg_catalog.pg_try_advisory_lock($1)",
                &[WORKER_LOCK_KEY.into()],
            )
            .ok()
            .flatten()
            .unwrap_or(false);
        (installed, unique, current_database())
    });
    if !installed || !unique {
        // nothing to do here (or another worker serves this database)
        return;
    }
    log!("pg_privacy worker started for database {dbname}");
    // the catalog is read only at the library's version: interrupted runs
    // are closed, and policies run, once `ALTER EXTENSION … UPDATE` is done
    let mut recovered = false;
    let mut stale_logged = false;

    loop {
        reload_config_if_asked();
        if sigterm() {
            break;
        }
        let installed =
            BackgroundWorker::transaction(|| crate::catalog::installed_version().ok().flatten());
        let Some(version) = installed else {
            log!("pg_privacy was dropped from database {dbname}; worker exits");
            break;
        };
        if version != crate::catalog::LIBRARY_VERSION {
            if !stale_logged {
                log!(
                    "pg_privacy worker: database {dbname} has pg_privacy {version} installed but the library is version {}; no policy runs there until ALTER EXTENSION pg_privacy UPDATE",
                    crate::catalog::LIBRARY_VERSION
                );
                stale_logged = true;
            }
        } else {
            stale_logged = false;
            if !recovered {
                recovered = true;
                if let Err(e) = in_transaction(recover_interrupted_runs) {
                    warning!(
                        "pg_privacy: could not close interrupted runs: {}",
                        crate::error::error_text(&e)
                    );
                }
            }
            if gucs::worker_enabled() && !unsafe { pg_sys::RecoveryInProgress() } {
                run_due_policies();
            }
        }
        report_activity(None);
        if !BackgroundWorker::wait_latch(Some(Duration::from_secs(gucs::naptime_secs()))) {
            break;
        }
    }
    log!("pg_privacy worker for database {dbname} stopped");
}

/// Runs left `running` by a worker that died (server crash, kill -9) are
/// closed as failed when the next worker of the database starts: this worker
/// holds the database's worker lock, so no such run is still in progress.
fn recover_interrupted_runs() -> Result<(), PrivacyError> {
    for policy in run::close_interrupted_runs()? {
        log!("pg_privacy: closed the run of policy {policy} interrupted by a crash");
    }
    Ok(())
}

/// Needs a transaction (catalog lookup).
fn current_database() -> String {
    unsafe {
        let name = pg_sys::get_database_name(pg_sys::MyDatabaseId);
        if name.is_null() {
            "?".into()
        } else {
            CStr::from_ptr(name).to_string_lossy().into_owned()
        }
    }
}

/// Whether SIGTERM arrived. pgrx's `sigterm_received()` clears its flag
/// when read: a SIGTERM seen between two batches must still end the main
/// loop afterwards, so the answer is kept here once true.
fn sigterm() -> bool {
    static STOP: AtomicBool = AtomicBool::new(false);
    if BackgroundWorker::sigterm_received() {
        STOP.store(true, Ordering::SeqCst);
    }
    STOP.load(Ordering::SeqCst)
}

fn should_stop() -> bool {
    reload_config_if_asked();
    sigterm() || !gucs::worker_enabled()
}

fn run_due_policies() {
    let due = match in_transaction(|| run::due_policies(now())) {
        Ok(d) => d,
        Err(e) => {
            warning!(
                "pg_privacy: could not list due policies: {}",
                crate::error::error_text(&e)
            );
            return;
        }
    };
    for policy in due {
        if should_stop() {
            return;
        }
        run_one(&policy);
    }
}

fn now() -> TimestampWithTimeZone {
    unsafe {
        TimestampWithTimeZone::from_datum(pg_sys::Datum::from(pg_sys::GetCurrentTimestamp()), false)
    }
    .expect("current timestamp")
}

/// One policy, batch by batch, each batch in its own transaction.
fn run_one(policy: &str) {
    report_activity(Some(&format!("pg_privacy: retention policy {policy}")));
    let mut run = match in_transaction(|| Run::start(policy, now(), false, TriggeredBy::Worker)) {
        Ok(r) => r,
        Err(e) => {
            // `start` has recorded the failed run itself (policy gone bad,
            // privileges lost…), or another session is running this policy.
            log!(
                "pg_privacy: policy {policy} did not start: {}",
                crate::error::error_text(&e)
            );
            return;
        }
    };
    loop {
        if should_stop() {
            let why = PrivacyError::object_state(
                "retention run interrupted: the worker was stopped or disabled; committed batches are kept",
            );
            finish(run, Some(why));
            return;
        }
        match in_transaction(|| run.next_batch()) {
            Ok(true) => {
                // privacy.batch_delay: a signal (SIGTERM, SIGHUP) wakes it early
                let delay = gucs::batch_delay_ms();
                if delay > 0 && !BackgroundWorker::wait_latch(Some(Duration::from_millis(delay))) {
                    finish(run, Some(PrivacyError::object_state(
                        "retention run interrupted: the postmaster died; committed batches are kept",
                    )));
                    return;
                }
                continue;
            }
            Ok(false) => {
                finish(run, None);
                return;
            }
            Err(e) => {
                finish(run, Some(e));
                return;
            }
        }
    }
}

/// Record the end of a run in a transaction of its own; if even that fails,
/// fall back to the engine's minimal failure record.
fn finish(run: Run, error: Option<PrivacyError>) {
    let (id, policy) = (run.id(), run.policy().to_string());
    let mut run = Some(run);
    if let Err(e) = in_transaction(|| {
        run.take()
            .expect("finish once")
            .finish(error.as_ref())
            .map(|_| ())
    }) {
        warning!(
            "pg_privacy: could not record the end of policy {policy}: {}",
            crate::error::error_text(&e)
        );
        let text = crate::error::error_text(error.as_ref().unwrap_or(&e));
        let _ = in_transaction(|| run::record_failure(id, &policy, &text));
    }
}

/// Run `f` in its own transaction. Whatever `f` returns, `Ok` or `Err`, is
/// committed: the engine records its own failures (a failed start, a batch
/// rolled back in its subtransaction) and expects the caller to commit them.
/// Only an ERROR that escapes `f` (or the commit) aborts the transaction; it
/// comes back as an `Err`, so the worker goes on. Call outside a transaction.
fn in_transaction<R>(f: impl FnOnce() -> Result<R, PrivacyError>) -> Result<R, PrivacyError> {
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let outcome = crate::error::catch(|| {
        let r = crate::security::Scope::pinned().run(f);
        unsafe {
            pg_sys::PopActiveSnapshot();
            pg_sys::CommitTransactionCommand();
        }
        r
    });
    match outcome {
        Ok(r) => r,
        Err(c) => {
            unsafe { pg_sys::AbortCurrentTransaction() };
            Err(c.error)
        }
    }
}
