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
//! * **Time bound.** A run lasts at most `privacy.run_timeout` (see
//!   [`Deadline`]): PostgreSQL's own `STATEMENT_TIMEOUT` timer, armed at the
//!   run's deadline around each of its transactions, cancels the statement
//!   running then, however long (a trigger sleeping, a lock wait). The run is
//!   recorded as failed (`57014`), its policy backs off, and the worker goes
//!   on with the next due policy at once. Code that catches the cancel and
//!   goes on is ended with the process [`RUN_TIMEOUT_GRACE`] later.
//! * **Stopping.** SIGTERM is PostgreSQL's `die`, as for PostgreSQL's own
//!   background workers: `pg_terminate_backend`, a fast shutdown and
//!   `DROP DATABASE … WITH (FORCE)` end even a long statement at its next
//!   `CHECK_FOR_INTERRUPTS()` (a FATAL exit); between statements the worker
//!   sees the request after every latch wait and before every batch, and
//!   returns. Either way the exit callback [`on_worker_exit`] records the
//!   run in progress as failed (`interrupted: …`, `57P01`), unless the
//!   postmaster is gone or the database is being dropped; a run left
//!   `running` by a crash is closed by the next worker's start-up
//!   (`close_interrupted_runs`). A terminated launcher exits with code 1
//!   either way, so the postmaster starts it again after its restart time.
//! * SIGHUP re-reads the configuration (`ProcessConfigFile`); postmaster
//!   death ends both processes; `privacy.worker_enabled = off` stops new
//!   runs and stops a run in progress at its next batch boundary; a query
//!   cancel (`pg_cancel_backend`) fails the run in progress.
//! * **Pausing one database.** `ALTER DATABASE … SET privacy.worker_enabled
//!   = off`: the database's worker finds no due policy from its next round
//!   on (`retention::run::due_policies` reads `pg_db_role_setting`); a
//!   worker started while its database is paused exits at once, and the
//!   launcher tries the database again later.

use crate::error::PrivacyError;
use crate::gucs;
use crate::retention::run::{self, Recorded, Run, TriggeredBy};
use pgrx::bgworkers::*;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LIBRARY: &str = "pg_privacy";
pub const LAUNCHER_TYPE: &str = "pg_privacy launcher";
pub const WORKER_TYPE: &str = "pg_privacy worker";
/// A database whose worker exited (no extension there, or a crash) is tried
/// again after this many naptimes.
const RECHECK_NAPTIMES: u32 = 5;
/// Key of the session advisory lock that makes a database worker unique.
const WORKER_LOCK_KEY: i64 = 0x7072_6976_6163_7901; // "privacy\x01"
/// How long a run's code may go on after the cancel at `privacy.run_timeout`
/// (PL/pgSQL can catch `query_canceled`) before the worker ends itself. A
/// cancelled statement normally ends within milliseconds.
const RUN_TIMEOUT_GRACE: Duration = Duration::from_secs(5);

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

// ------------------------------------------------------ signals and waiting

/// Signal handlers of both processes, as PostgreSQL's own background workers
/// have them: SIGTERM is `die`, which sets `ProcDiePending`, so a statement
/// ends at its next `CHECK_FOR_INTERRUPTS()` however long it runs; SIGHUP
/// is pgrx's (a flag, read by [`reload_config_if_asked`]); SIGINT stays the
/// `StatementCancelHandler` PostgreSQL installs for background workers with
/// a database connection. pgrx's `wait_latch` is not used: it runs
/// `CHECK_FOR_INTERRUPTS()` (a FATAL exit with `die`) and reports SIGTERM
/// through pgrx's own flag, which nothing sets any more; [`sleep`] replaces it.
fn attach_signal_handlers() {
    unsafe { pg_sys::pqsignal(pg_sys::SIGTERM as i32, Some(ffi::die)) };
    // installs SIGHUP's handler and unblocks signals
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP);
}

/// Whether SIGTERM arrived (the process is to exit).
fn terminate_requested() -> bool {
    unsafe { (&raw const pg_sys::ProcDiePending).read_volatile() != 0 }
}

fn reload_config_if_asked() {
    if BackgroundWorker::sighup_received() {
        unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
    }
}

/// Sleep on the latch for at most `timeout`. Returns false when the process
/// is to exit (SIGTERM): the caller returns from the main function, which
/// exits cleanly. Otherwise it serves what arrived meanwhile: a
/// configuration reload, PostgreSQL's own interrupts (`CHECK_FOR_INTERRUPTS`:
/// barriers, memory context logging…). A query cancel (`pg_cancel_backend`)
/// while no statement runs cancels nothing here: with `keep_cancel` it is
/// left pending, so the run in progress fails with it at its next batch;
/// without, it is dropped, as an idle backend does. Postmaster death ends
/// the process (`WL_EXIT_ON_PM_DEATH`).
fn sleep(timeout: Duration, keep_cancel: bool) -> bool {
    // an earlier wait may have consumed the latch SIGTERM set
    if terminate_requested() {
        return false;
    }
    let ms = timeout.as_millis().min(i32::MAX as u128) as std::ffi::c_long;
    unsafe {
        pg_sys::WaitLatch(
            pg_sys::MyLatch,
            (pg_sys::WL_LATCH_SET | pg_sys::WL_TIMEOUT | pg_sys::WL_EXIT_ON_PM_DEATH) as i32,
            ms,
            pg_sys::PG_WAIT_EXTENSION,
        );
        pg_sys::ResetLatch(pg_sys::MyLatch);
    }
    if terminate_requested() {
        return false;
    }
    let cancel_pending = unsafe { (&raw const pg_sys::QueryCancelPending).read_volatile() != 0 };
    if cancel_pending && !keep_cancel {
        unsafe { (&raw mut pg_sys::QueryCancelPending).write_volatile(0) };
    }
    if !(cancel_pending && keep_cancel) {
        // outside a transaction a pending cancel would be an ERROR here
        pg_sys::check_for_interrupts!();
    }
    reload_config_if_asked();
    true
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

/// PostgreSQL functions pgrx's bindings lack (`utils/timeout.h` and
/// `storage/pmsignal.h` are not among its headers) or wrap: `pg_sys::die` is
/// a Rust wrapper, a signal handler must be the C function itself. None of
/// them raises an ERROR (a failing timer is FATAL), so no guard is needed.
mod ffi {
    use pgrx::pg_sys::TimestampTz;
    use std::ffi::c_int;

    /// `enum TimeoutId` of PostgreSQL 15's `utils/timeout.h`
    pub type TimeoutId = c_int;
    pub const STATEMENT_TIMEOUT: TimeoutId = 3;
    pub const USER_TIMEOUT: TimeoutId = 12;

    unsafe extern "C-unwind" {
        pub fn die(signal: c_int);
        pub fn RegisterTimeout(
            id: TimeoutId,
            handler: Option<unsafe extern "C-unwind" fn()>,
        ) -> TimeoutId;
        pub fn enable_timeout_at(id: TimeoutId, fin_time: TimestampTz);
        pub fn disable_timeout(id: TimeoutId, keep_indicator: bool);
        pub fn disable_all_timeouts(keep_indicators: bool);
        pub fn PostmasterIsAliveInternal() -> bool;
    }
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
    attach_signal_handlers();
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

        if !sleep(naptime, false) {
            break;
        }
    }
    log!("pg_privacy launcher stopped");
    // Exit code 1, as a SIGTERM inside a transaction (a FATAL) gives: the
    // postmaster starts the launcher again after its restart time, as it
    // does PostgreSQL's own launchers; code 0 would unregister it for good.
    // (At shutdown nothing is restarted.) privacy.worker_enabled = off is
    // the way to stop the runs.
    unsafe { pg_sys::proc_exit(1) };
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

/// The database this process serves, once it has started serving it (for
/// the exit callback's log line).
static WORKER_DB: Mutex<Option<String>> = Mutex::new(None);

#[pg_guard]
#[unsafe(no_mangle)]
pub extern "C-unwind" fn pg_privacy_worker_main(arg: pg_sys::Datum) {
    attach_signal_handlers();
    let db = unsafe { pg_sys::Oid::from_datum(arg, false) }.expect("database oid");
    BackgroundWorker::connect_worker_to_spi_by_oid(Some(db), None);
    // ALTER DATABASE/ROLE … SET search_path reaches background workers too:
    // pin it for the whole session (and each transaction pins it again)
    crate::security::pin_session();
    set_application_name(WORKER_TYPE);
    // The launcher starts workers only while privacy.worker_enabled is on
    // server-wide: off here means the database (ALTER DATABASE … SET) paused
    // it, as this session's connection applied. Nothing to do: the launcher
    // tries the database again a few naptimes later. (A database paused
    // while its worker runs is seen by `retention::run::due_policies` every
    // round.)
    if !gucs::worker_enabled() {
        return;
    }
    // Registered after InitPostgres's ShutdownPostgres, so it runs before it
    // (callbacks run in reverse order), with the session still usable.
    unsafe { pg_sys::before_shmem_exit(Some(on_worker_exit), pg_sys::Datum::from(0)) };
    register_run_timeout_escalation();

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
    if let Ok(mut d) = WORKER_DB.lock() {
        *d = Some(dbname.clone());
    }
    // the catalog is read only at the library's version: interrupted runs
    // are closed, and policies run, once `ALTER EXTENSION … UPDATE` is done
    let mut recovered = false;
    let mut stale_logged = false;

    loop {
        reload_config_if_asked();
        if terminate_requested() {
            break;
        }
        // (a cancel arriving here only fails this check: in_transaction)
        let version = match in_transaction(crate::catalog::installed_version) {
            Ok(Some(v)) => Some(v),
            Ok(None) => {
                log!("pg_privacy was dropped from database {dbname}; worker exits");
                break;
            }
            Err(e) => {
                // checked again after the naptime
                warning!(
                    "pg_privacy: could not check the extension: {}",
                    crate::error::error_text(&e)
                );
                None
            }
        };
        match version {
            None => {}
            Some(version) if version != crate::catalog::LIBRARY_VERSION => {
                if !stale_logged {
                    log!(
                        "pg_privacy worker: database {dbname} has pg_privacy {version} installed but the library is version {}; no policy runs there until ALTER EXTENSION pg_privacy UPDATE",
                        crate::catalog::LIBRARY_VERSION
                    );
                    stale_logged = true;
                }
            }
            Some(_) => {
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
        }
        report_activity(None);
        if !sleep(Duration::from_secs(gucs::naptime_secs()), false) {
            break;
        }
    }
    // a run left open by SIGTERM is recorded by on_worker_exit
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
        reload_config_if_asked();
        if terminate_requested() || !gucs::worker_enabled() {
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

// ------------------------------------------------------------ the time bound

/// The time bound of one worker run: `privacy.run_timeout` after its start
/// (the setting as it was then; 0 = no bound, no `Deadline`).
#[derive(Clone, Debug)]
struct Deadline {
    /// microseconds since 2000-01-01, as `GetCurrentTimestamp()`
    at: pg_sys::TimestampTz,
    /// the setting as PostgreSQL shows it, e.g. `2s`, `1h`
    setting: String,
}

impl Deadline {
    fn for_new_run() -> Option<Deadline> {
        let ms = gucs::run_timeout_ms()?;
        let start = unsafe { pg_sys::GetCurrentTimestamp() };
        Some(Deadline {
            at: start.saturating_add((ms as i64).saturating_mul(1000)),
            setting: duration_text(ms),
        })
    }

    fn remaining(&self) -> Duration {
        let now = unsafe { pg_sys::GetCurrentTimestamp() };
        Duration::from_micros(self.at.saturating_sub(now).max(0) as u64)
    }

    fn passed(&self) -> bool {
        self.remaining().is_zero()
    }

    /// How a run past its bound is recorded.
    fn exceeded(&self) -> PrivacyError {
        PrivacyError::new(
            PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
            format!(
                "run exceeded privacy.run_timeout ({}); committed batches are kept",
                self.setting
            ),
        )
    }

    /// How a run is recorded whose code went on after the cancel, until the
    /// worker ended itself.
    fn cancel_ignored(&self) -> PrivacyError {
        PrivacyError::new(
            PgSqlErrorCode::ERRCODE_QUERY_CANCELED,
            format!(
                "run exceeded privacy.run_timeout ({}) and its statement went on after the cancel: \
                 the worker process was ended; committed batches are kept",
                self.setting
            ),
        )
    }
}

/// A duration in milliseconds the way PostgreSQL shows a setting in ms: in
/// the largest unit that divides it (`2s`, `90s`, `1h`, `1500ms`).
fn duration_text(ms: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1_000, "s"),
        (1, "ms"),
    ];
    let (size, unit) = UNITS
        .iter()
        .find(|(size, _)| ms > 0 && ms % size == 0)
        .unwrap_or(&(1, "ms"));
    format!("{}{unit}", ms / size)
}

/// Id of the timeout that ends the worker when a run's code goes on
/// [`RUN_TIMEOUT_GRACE`] past the cancel (0 until registered).
static ESCALATION_TIMEOUT: AtomicI32 = AtomicI32::new(0);
/// Set by that timeout's handler: the exit callback records why.
static RUN_CANCEL_IGNORED: AtomicBool = AtomicBool::new(false);

fn register_run_timeout_escalation() {
    let id = unsafe { ffi::RegisterTimeout(ffi::USER_TIMEOUT, Some(end_worker_past_grace)) };
    ESCALATION_TIMEOUT.store(id, Ordering::SeqCst);
}

/// Timeout handler (runs in the SIGALRM handler): the run's statement went
/// on past its cancel and the grace. End the process as SIGTERM does; the
/// exit callback records the run.
unsafe extern "C-unwind" fn end_worker_past_grace() {
    RUN_CANCEL_IGNORED.store(true, Ordering::SeqCst);
    ffi::die(pg_sys::SIGTERM as i32);
}

/// Run `f` in a transaction that PostgreSQL cancels when `deadline` passes,
/// wherever it is then (inside a user's trigger, a lock wait…):
/// `STATEMENT_TIMEOUT` is armed at the deadline (its handler raises a query
/// cancel, seen at the next `CHECK_FOR_INTERRUPTS()`) and the escalation
/// timeout at the deadline plus the grace, both disarmed when the
/// transaction is over. They are timers, not settings: a `SET
/// statement_timeout` in the run's code cannot touch them. A cancel at or
/// after the deadline comes back as [`Deadline::exceeded`]. Outer `Err`:
/// the transaction was aborted (see [`transaction`]).
fn bounded<R>(
    deadline: Option<&Deadline>,
    f: impl FnOnce() -> Result<R, PrivacyError>,
) -> Result<Result<R, PrivacyError>, PrivacyError> {
    let Some(d) = deadline else {
        return transaction(f);
    };
    if d.passed() {
        return Err(d.exceeded());
    }
    let grace = RUN_TIMEOUT_GRACE.as_micros() as i64;
    let escalation = ESCALATION_TIMEOUT.load(Ordering::SeqCst);
    unsafe {
        ffi::enable_timeout_at(ffi::STATEMENT_TIMEOUT, d.at);
        ffi::enable_timeout_at(escalation, d.at.saturating_add(grace));
    }
    let out = transaction(f);
    unsafe {
        ffi::disable_timeout(ffi::STATEMENT_TIMEOUT, false);
        ffi::disable_timeout(escalation, false);
    }
    if !d.passed() {
        return out;
    }
    // A cancel the timer raised after the statement was over must not hit
    // the next transaction; the run stops here anyway.
    unsafe { (&raw mut pg_sys::QueryCancelPending).write_volatile(0) };
    let timed_out = |e: PrivacyError| {
        if e.code == PgSqlErrorCode::ERRCODE_QUERY_CANCELED {
            d.exceeded()
        } else {
            e
        }
    };
    match out {
        Ok(r) => Ok(r.map_err(timed_out)),
        Err(e) => Err(timed_out(e)),
    }
}

// ------------------------------------------------------------------- runs

/// The run in progress as of its last committed batch, for the exit
/// callback; `None` between runs.
struct OpenRun {
    progress: run::Progress,
    deadline: Option<Deadline>,
}

static OPEN_RUN: Mutex<Option<OpenRun>> = Mutex::new(None);

fn set_open_run(open: Option<OpenRun>) {
    if let Ok(mut o) = OPEN_RUN.lock() {
        *o = open;
    }
}

/// Why a run stops before its next batch.
enum Stop {
    /// SIGTERM: return to the main loop, leave the run open for the exit
    /// callback
    Exit,
    /// record the run as failed with this error and go on
    Fail(PrivacyError),
}

fn stop_before_batch(deadline: Option<&Deadline>) -> Option<Stop> {
    reload_config_if_asked();
    if terminate_requested() {
        return Some(Stop::Exit);
    }
    if !gucs::worker_enabled() {
        return Some(Stop::Fail(PrivacyError::object_state(
            "retention run interrupted: privacy.worker_enabled was turned off; committed batches are kept",
        )));
    }
    deadline
        .filter(|d| d.passed())
        .map(|d| Stop::Fail(d.exceeded()))
}

/// One policy, batch by batch, each batch in its own transaction, within
/// the run's time bound.
fn run_one(policy: &str) {
    report_activity(Some(&format!("pg_privacy: retention policy {policy}")));
    let deadline = Deadline::for_new_run();
    let as_of = now();
    let mut run = match bounded(deadline.as_ref(), || {
        Run::start(policy, as_of, false, TriggeredBy::Worker)
    }) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            // `start` has recorded the failed run itself (policy gone bad,
            // privileges lost…), or another session is running this policy.
            log!(
                "pg_privacy: policy {policy} did not start: {}",
                crate::error::error_text(&e)
            );
            return;
        }
        Err(e) => {
            // aborted (cancelled, past the time bound): nothing of the start
            // is recorded and its policy lock may still be held
            log!("pg_privacy: policy {policy} did not start: {}", e.message);
            if let Err(e) = in_transaction(|| run::record_failed_start(policy, as_of, &e)) {
                warning!(
                    "pg_privacy: could not record the failed start of policy {policy}: {}",
                    e.message
                );
            }
            return;
        }
    };
    let open = |run: &Run| OpenRun {
        progress: run.progress(),
        deadline: deadline.clone(),
    };
    set_open_run(Some(open(&run)));
    loop {
        match stop_before_batch(deadline.as_ref()) {
            Some(Stop::Exit) => return,
            Some(Stop::Fail(e)) => {
                finish(run, Some(e));
                return;
            }
            None => {}
        }
        match bounded(deadline.as_ref(), || run.next_batch()).and_then(|r| r) {
            Ok(true) => {
                set_open_run(Some(open(&run)));
                // privacy.batch_delay, within the time bound; a signal
                // (SIGTERM, SIGHUP) wakes it early
                let mut delay = Duration::from_millis(gucs::batch_delay_ms());
                if let Some(d) = &deadline {
                    delay = delay.min(d.remaining());
                }
                if !delay.is_zero() && !sleep(delay, true) {
                    return;
                }
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
    set_open_run(None);
}

// --------------------------------------------------------------- exit path

/// `before_shmem_exit` callback of the database worker, on every exit: a
/// return from the main function (SIGTERM between statements, extension
/// dropped) or a FATAL (SIGTERM inside a statement, the run timeout's
/// escalation). Records the run left open as failed — `interrupted: …`
/// (`57P01`), or the time bound's error after an escalation — with the
/// counts of its committed batches, in a transaction of its own, unless
/// the postmaster is gone (nothing may be written then) or the database is
/// being dropped (`DROP DATABASE` waits for this process). Whatever it
/// cannot record is closed by the next worker's start-up.
#[pg_guard]
extern "C-unwind" fn on_worker_exit(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    unsafe { ffi::disable_all_timeouts(false) };
    let open = OPEN_RUN.lock().ok().and_then(|mut o| o.take());
    if let Some(open) = open {
        record_interrupted(open);
    }
    let db = WORKER_DB.lock().ok().and_then(|d| d.clone());
    if let Some(db) = db {
        log!("pg_privacy worker for database {db} stopped");
    }
}

fn record_interrupted(open: OpenRun) {
    let (run_id, policy) = (open.progress.run_id(), open.progress.policy().to_string());
    if !unsafe { ffi::PostmasterIsAliveInternal() } {
        return;
    }
    let error = match &open.deadline {
        Some(d) if RUN_CANCEL_IGNORED.load(Ordering::SeqCst) => d.cancel_ignored(),
        _ => PrivacyError::new(
            PgSqlErrorCode::ERRCODE_ADMIN_SHUTDOWN,
            "interrupted: the worker was terminated (pg_terminate_backend, shutdown or DROP DATABASE); \
             committed batches are kept",
        ),
    };
    unsafe {
        // the transaction a FATAL left behind, if any
        pg_sys::AbortOutOfAnyTransaction();
        // interrupts are held while the process exits: do not wait for a
        // synchronous standby either
        pg_sys::SetConfigOption(
            c"synchronous_commit".as_ptr(),
            c"local".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
        );
    }
    let outcome = in_transaction(|| {
        if database_being_dropped() {
            return Ok(None);
        }
        open.progress.record_failure_nowait(&error).map(Some)
    });
    match outcome {
        Ok(Some(Recorded::Yes)) => {
            log!("pg_privacy: run {run_id} of policy {policy} recorded as interrupted")
        }
        Ok(Some(Recorded::AlreadyClosed)) | Ok(None) => {}
        Ok(Some(Recorded::Busy)) => log!(
            "pg_privacy: run {run_id} of policy {policy} is left to the next worker's start-up \
             (its records are locked by another session)"
        ),
        Err(e) => warning!(
            "pg_privacy: could not record the interrupted run {run_id} of policy {policy}: {}",
            e.message
        ),
    }
}

/// Whether another session holds this database locked against new work:
/// `DROP DATABASE` holds it in AccessExclusiveLock while it waits for the
/// database's processes to exit. Tested without waiting (needs a
/// transaction; the lock taken goes with it).
fn database_being_dropped() -> bool {
    unsafe {
        let mut tag: pg_sys::LOCKTAG = std::mem::zeroed();
        // SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, MyDatabaseId, 0)
        tag.locktag_field1 = 0;
        tag.locktag_field2 = pg_sys::DatabaseRelationId.to_u32();
        tag.locktag_field3 = pg_sys::MyDatabaseId.to_u32();
        tag.locktag_field4 = 0;
        tag.locktag_type = pg_sys::LockTagType::LOCKTAG_OBJECT as u8;
        tag.locktag_lockmethodid = pg_sys::DEFAULT_LOCKMETHOD as u8;
        pg_sys::LockAcquire(&tag, pg_sys::RowExclusiveLock as i32, false, true)
            == pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
    }
}

// ------------------------------------------------------------ transactions

/// Run `f` in its own transaction. Whatever `f` returns, `Ok` or `Err`, is
/// committed: the engine records its own failures (a failed start, a batch
/// rolled back in its subtransaction) and expects the caller to commit them.
/// Only an ERROR that escapes `f` (or the commit) aborts the transaction; it
/// comes back as an `Err`, so the worker goes on. Call outside a transaction.
fn in_transaction<R>(f: impl FnOnce() -> Result<R, PrivacyError>) -> Result<R, PrivacyError> {
    transaction(f).and_then(|r| r)
}

/// The same, telling the two apart: `Ok(result of f)` when the transaction
/// committed, `Err` when an ERROR aborted it.
fn transaction<R>(
    f: impl FnOnce() -> Result<R, PrivacyError>,
) -> Result<Result<R, PrivacyError>, PrivacyError> {
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
        Ok(r) => Ok(r),
        Err(c) => {
            unsafe { pg_sys::AbortCurrentTransaction() };
            Err(c.error)
        }
    }
}

#[cfg(test)]
mod unit_tests {
    use super::duration_text;

    #[test]
    fn durations_read_like_postgresql_settings() {
        assert_eq!(duration_text(2_000), "2s");
        assert_eq!(duration_text(3_600_000), "1h");
        assert_eq!(duration_text(90_000), "90s");
        assert_eq!(duration_text(5_400_000), "90min");
        assert_eq!(duration_text(1_500), "1500ms");
        assert_eq!(duration_text(86_400_000), "1d");
        assert_eq!(duration_text(1), "1ms");
    }
}
