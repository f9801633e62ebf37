//! The run state machine: runs a retention policy in bounded batches, and
//! `privacy.run_retention()`. The SQL of each batch comes from `statement`.
//!
//! # Interface (for the background worker)
//!
//! ```ignore
//! pub enum TriggeredBy { Worker, Manual }
//! impl Run {
//!     pub fn start(policy: &str, as_of: TimestampWithTimeZone, dry_run: bool, by: TriggeredBy) -> PResult<Run>;
//!     pub fn next_batch(&mut self) -> PResult<bool>;          // Ok(true) = more to do
//!     pub fn finish(self, error: Option<&PrivacyError>) -> PResult<RunSummary>;
//!     pub fn id(&self) -> i64;
//!     pub fn policy(&self) -> &str;
//!     pub fn progress(&self) -> Progress;                     // state after the last batch
//! }
//! impl Progress { pub fn record_failure_nowait(&self, e: &PrivacyError) -> PResult<Recorded>; } // exit callback
//! pub fn record_failed_start(policy: &str, as_of: TimestampWithTimeZone, e: &PrivacyError) -> PResult<()>;
//! pub fn record_failure(run_id: i64, policy: &str, error_text: &str) -> PResult<()>;
//! pub fn due_policies(now: TimestampWithTimeZone) -> PResult<Vec<String>>;
//! pub fn run_policy(policy: &str, as_of: TimestampWithTimeZone, dry_run: bool, by: TriggeredBy) -> PResult<RunSummary>;
//! pub fn close_interrupted_runs() -> PResult<Vec<String>>; // worker start-up after a crash
//! ```
//! Each method expects to run inside a transaction with an active snapshot
//! (as `BackgroundWorker::transaction` or a SQL function call provide), as
//! any role and with any settings: each pins its own (`security::Scope`)
//! and switches to the table owner / extension owner itself. A typical
//! worker loop:
//!
//! ```ignore
//! let mut run = tx(|| Run::start(&name, now, false, TriggeredBy::Worker))?; // Err: already recorded, or Kind::AlreadyRunning (skip)
//! loop {
//!     match tx(|| run.next_batch()) {            // commit after each batch
//!         Ok(true) if !sigterm => continue,
//!         Ok(_) => { tx(|| run.finish(None))?; break }
//!         Err(e) => { tx(|| run.finish(Some(&e)))?; break }
//!     }
//! }
//! // if a transaction aborted anyway: tx(|| record_failure(run.id(), run.policy(), &msg))
//! ```
//! `finish(Some(&e))` records `error::error_text(e)`, which already ends with the
//! SQLSTATE: pass the engine's error as it is. Stopping between batches
//! (SIGTERM) with `finish(None)` records the run as succeeded with the rows
//! done so far (the rest is found by the next run); pass an error to record
//! it as failed instead.
//! A `Run` holds only Rust-owned state (strings, counters, the keyset
//! position), so it lives across transactions: the worker calls `start`,
//! each `next_batch` and `finish` each in its own transaction and commits
//! in between; `run_retention()` calls them all in the caller's transaction.
//!
//! - `start` loads the policy (42704 when it does not exist), takes an
//!   advisory lock on it — session-level for the worker, transaction-level
//!   for manual runs (55P03, `Kind::AlreadyRunning`, when another session runs
//!   it: nothing is recorded then) — re-validates it (table, anchor column
//!   and type, the policy owner's privileges, row_filter against the
//!   allow-list, anonymize columns, the keyed hash for both the policy
//!   owner and the table owner) and inserts its `retention_runs` row
//!   (status `running`). When the re-validation fails, `start` itself
//!   records the failed run (row, policy status and back-off, audit),
//!   releases the lock and returns the error: the caller just commits.
//! - `next_batch` checks again that the policy owner holds SELECT and
//!   DELETE/UPDATE on the table, then changes at most `privacy.batch_size`
//!   rows **as the table's owner**, with `SECURITY_RESTRICTED_OPERATION`,
//!   pinned settings and `lock_timeout` scoped to the batch (a
//!   `security::Scope`: nothing leaks into the caller's transaction, nothing
//!   a trigger sets survives it), inside a subtransaction: a failing batch
//!   (lock timeout 55P03 on a table, FK violation, …) is rolled back alone
//!   and returned as `Err`; earlier batches stay done. The worker then
//!   calls `finish(Some(&err))`. Running as the table's owner, like VACUUM
//!   and REFRESH MATERIALIZED VIEW do, means the owner's triggers,
//!   constraints and functions (`ANONYMIZE FUNCTION`) never run with the
//!   policy owner's or the worker's rights; checking the policy owner's
//!   privileges first means a policy never does more than its owner could.
//!   Row locks: the fast shape changes the rows directly and waits for a
//!   row lock at most min(privacy.lock_timeout, deadlock_timeout / 2); past
//!   that it is rolled back and the careful shape (`FOR UPDATE SKIP LOCKED`,
//!   then change the rows locked) skips the rows others hold, left for the
//!   closing pass or the next run (see `run_statement`).
//! - `finish` records the outcome: status (`succeeded`, `failed`, `dry_run`),
//!   counts, batches, error text in `retention_runs`; for real runs the
//!   policy's `last_run_at`, `last_status` and `next_run_at` (now +
//!   schedule_interval; after n consecutive failures now + schedule_interval
//!   × 2^(n-1), capped at max(1 day, schedule_interval)); an audit entry;
//!   and releases the lock.
//! - `record_failure` is for a batch whose transaction ERRORed and aborted
//!   (should not happen, batches catch their errors, but e.g. a crash in
//!   between): in a new transaction it marks the run failed, updates the
//!   policy's back-off, audits, and releases the (worker's session-level)
//!   lock if this session holds it.
//!
//! # How a batch finds rows
//!
//! Expired at T = `anchor + keep_for <= T AND (row_filter)` and not held
//! (a NULL anchor never expires), computed in UTC (a `date` is midnight
//! UTC, a `timestamp` is UTC, a `timestamptz` is converted to UTC before
//! interval arithmetic), so the session TimeZone never changes the result.
//! The bound `T - keep_for` is a constant of each statement; without months
//! `anchor <= bound` is exact, with months a superset (`+ 4 days`) serves
//! the index and the exact test runs only near the bound (see
//! `statement::Target::expiry_conditions`). Two scan modes:
//! - the anchor has a btree index: keyset pagination on `(anchor, ctid)`
//!   (`ORDER BY anchor, ctid LIMIT batch_size`), which reads only the
//!   expired range of the index, then changes the page's rows by ctid. The
//!   position comes from an unlocked scan (a row updated concurrently is
//!   found as its new version, whose ctid must not move it). When a batch
//!   was full, one closing pass from the start of the range follows (rows
//!   already done no longer match) and takes the rows that were skipped or
//!   moved behind the position;
//! - no index, or a large backlog (at least a fifth of the table and ten
//!   batches, by the planner's estimate; counted for a table never
//!   analyzed): ctid windows (`ctid >= '(b,0)' AND ctid < '(b+w,0)'`, a TID
//!   range scan), one plain `DELETE`/`UPDATE` per window, over the blocks
//!   the table had when the run started, `w` sized from the statistics for
//!   about 0.8 × `batch_size` candidates and adapted (a window that changes
//!   more than a batch is rolled back and halved; one block too many is
//!   paged in ctid order); one `next_batch` visits at most 16 empty windows
//!   before returning.
//!
//! Held rows are counted (`held`) and never touched; for `anonymize` only
//! rows still needing a rewrite are candidates, so a second run changes
//! nothing.

use super::anonymize::ColumnRewrite;
use super::filters::{self, FilterKind};
use super::holds::{ActiveHolds, TableHolds};
use super::policy::{self, Action, AnchorType, Policy};
use super::statement::{AnchorValue, Page, Shape, Statement, Target};
use super::validate;
use crate::audit;
use crate::catalog;
use crate::error::{error_text, Kind, PResult, PrivacyError};
use crate::security::{self, as_extension_owner, Scope};
use crate::types::Regclass;
use pgrx::datum::{Date, Timestamp, TimestampWithTimeZone};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::spi::{SpiError, SpiHeapTupleData};
use serde_json::json;

/// Advisory lock class of a running policy (the policy is the second key).
const LOCK_CLASS: i32 = 0x7072_6976; // "priv"
/// Most empty ctid windows one `next_batch` visits before returning.
const MAX_EMPTY_WINDOWS: usize = 16;

/// Who started a run (recorded in `retention_runs.triggered_by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggeredBy {
    Worker,
    Manual,
}

impl TriggeredBy {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggeredBy::Worker => "worker",
            TriggeredBy::Manual => "manual",
        }
    }
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub rows: i64,
    pub held: i64,
    // read by the tests (the worker and `run_retention` show rows and held)
    #[cfg_attr(not(any(test, feature = "pg_test")), allow(dead_code))]
    pub status: &'static str,
    #[cfg_attr(not(any(test, feature = "pg_test")), allow(dead_code))]
    pub batches: i32,
}

#[derive(Clone, Debug)]
enum Scan {
    /// keyset on (anchor, ctid) through the anchor's index; `full` when a
    /// batch of this pass was full (the position moved past rows), `swept`
    /// once the closing pass from the start has begun
    Index {
        last: Option<(AnchorValue, String)>,
        full: bool,
        swept: bool,
    },
    /// ctid windows of `width` blocks over [next_block, end_block); `after`
    /// when the window at next_block held more than a batch and is paged
    /// (in ctid order, after that position)
    Window {
        next_block: i64,
        end_block: i64,
        width: i64,
        max_width: i64,
        after: Option<String>,
        paging: bool,
    },
}

/// One batch statement's result: (acted, held, seen, last anchor, last
/// ctid as text).
type BatchRow = (i64, i64, i64, Option<AnchorValue>, Option<String>);

/// A run in progress: Rust-owned state only (it lives across transactions).
pub struct Run {
    id: i64,
    policy: String,
    relid: pg_sys::Oid,
    /// the policy's owner (whose privileges are checked)
    owner: pg_sys::Oid,
    /// the table's owner (who runs the statements), read at each batch
    table_owner: pg_sys::Oid,
    dry_run: bool,
    by: TriggeredBy,
    /// what its statements are built from
    target: Target,
    scan: Scan,
    rows: i64,
    held: i64,
    batches: i32,
    done: bool,
}

/// Take the policy's advisory lock: for the worker at session level (it
/// spans the run's transactions; released by `finish`/`record_failure`), for
/// a manual run at transaction level (released when the caller's
/// transaction ends, also when it is cancelled; it keeps the worker away
/// from the rows until the manual run's changes are committed).
fn try_lock(policy: &str, by: TriggeredBy) -> PResult<bool> {
    let sql = match by {
        TriggeredBy::Worker => {
            "SELECT pg_catalog.pg_try_advisory_lock($1, pg_catalog.hashtext($2))"
        }
        TriggeredBy::Manual => {
            "SELECT pg_catalog.pg_try_advisory_xact_lock($1, pg_catalog.hashtext($2))"
        }
    };
    Ok(Spi::get_one_with_args::<bool>(sql, &[LOCK_CLASS.into(), policy.into()])?.unwrap_or(false))
}

/// Release the session-level lock of a worker run (transaction-level locks
/// of manual runs go with their transaction).
fn unlock(policy: &str, by: TriggeredBy) -> PResult<()> {
    if by == TriggeredBy::Manual {
        return Ok(());
    }
    // only when this session holds it (pg_advisory_unlock would WARN otherwise)
    Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_unlock($1, pg_catalog.hashtext($2))
          WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_locks
                         WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid()
                           AND classid = $1::pg_catalog.int8::pg_catalog.oid
                           AND objid = (pg_catalog.hashtext($2)::pg_catalog.int8 & 4294967295)::pg_catalog.oid
                           AND objsubid = 2 AND granted)",
        &[LOCK_CLASS.into(), policy.into()],
    )?;
    Ok(())
}

/// The scope a run's statements run in: as the table's owner
/// `table_owner`, restricted, pinned settings, `lock_timeout = ms`.
fn owner_scope(table_owner: pg_sys::Oid, ms: i32) -> Scope {
    Scope::as_role(table_owner)
        .restricted()
        .setting(c"lock_timeout", &format!("{ms}ms"))
}

/// What `start` checks; gives the scan plan.
struct Checked {
    table_owner: pg_sys::Oid,
    qualified: String,
    anchor_type: AnchorType,
    row_filter: Option<String>,
    rewrites: Vec<ColumnRewrite>,
    scan: Scan,
    skip_locked: bool,
}

/// The table's current owner, after checking that the policy's owner may
/// still do what the policy does (42501 otherwise).
fn check_owners(
    relid: pg_sys::Oid,
    policy_owner: pg_sys::Oid,
    action: Action,
) -> PResult<pg_sys::Oid> {
    // one query for what every batch checks
    let access =
        catalog::table_access(relid, policy_owner, action.privilege())?.ok_or_else(|| {
            PrivacyError::undefined_table(format!(
                "table with oid {} does not exist",
                u32::from(relid)
            ))
        })?;
    let table_owner = access.owner;
    if !access.granted {
        // the precise error (which privilege, whose)
        validate::check_privileges_of(policy_owner, relid, action)?;
    }
    validate::check_row_security_of(policy_owner, relid)?;
    Ok(table_owner)
}

fn check_as_owner(p: &Policy) -> PResult<Checked> {
    if !catalog::role_exists(p.owner)? {
        return Err(PrivacyError::object_state(format!(
            "owner of retention policy \"{}\" (role with oid {}) does not exist",
            p.name,
            u32::from(p.owner)
        ))
        .with_hint("Drop the policy and create it again as an existing role."));
    }
    let timeout = crate::gucs::lock_timeout_ms();
    crate::sql::subxact::run(|| {
        Scope::pinned()
            .setting(c"lock_timeout", &format!("{timeout}ms"))
            .run(|| {
                validate::check_table(p.relid)?;
                let (attnum, anchor_type) = validate::anchor_info(p.relid, &p.anchor)?;
                let table_owner = check_owners(p.relid, p.owner, p.action)?;
                // parsed as the table's owner, who runs it (a literal's
                // type input function runs at parse time)
                let row_filter = match &p.row_filter {
                    None => None,
                    Some(f) => Some(
                        owner_scope(table_owner, timeout)
                            .run(|| filters::validate(p.relid, f, FilterKind::Policy))?,
                    ),
                };
                let rewrites = if p.action == Action::Anonymize {
                    validate::anonymize_plan(p.relid, p.purpose.as_deref(), p.owner, table_owner)?
                        .into_iter()
                        .map(|x| x.rewrite)
                        .collect()
                } else {
                    Vec::new()
                };
                let scan = if crate::catalog::btree_index_leads_with(p.relid, attnum)? {
                    Scan::Index {
                        last: None,
                        full: false,
                        swept: false,
                    }
                } else {
                    window_scan(p.relid, 1.0)?
                };
                // FOR UPDATE needs UPDATE: an owner with DELETE only waits
                // (bounded by lock_timeout) instead of skipping locked rows
                let skip_locked =
                    security::role_has_table_privilege(table_owner, p.relid, "UPDATE")?;
                Ok(Checked {
                    table_owner,
                    skip_locked,
                    qualified: crate::types::qualified_name(p.relid)?,
                    anchor_type,
                    row_filter,
                    rewrites,
                    scan,
                })
            })
    })
}

/// ctid windows over the blocks the table has now, each sized from the
/// table's statistics to hold about 0.8 × `privacy.batch_size` candidates
/// when a `fraction` of the rows are candidates (1.0 when unknown). Windows
/// then adapt: halved when one holds more than a batch (rolled back), widened
/// towards 0.8 × batch (at most doubled) after one with less than 0.7 × batch,
/// up to five batches' worth of rows.
fn window_scan(relid: pg_sys::Oid, fraction: f64) -> PResult<Scan> {
    let blocks = catalog::relation_blocks(relid)?;
    // rows per block by the statistics (100 when never analyzed)
    let per_block = match catalog::relation(relid)? {
        Some(r) if r.pages > 0 && r.tuples > 0.0 => r.tuples as f64 / r.pages as f64,
        _ => 100.0,
    }
    .max(1.0);
    let batch = crate::gucs::batch_size() as f64;
    let fraction = fraction.clamp(0.2, 1.0);
    let width = ((0.8 * batch / (per_block * fraction)).ceil() as i64).max(1);
    let max_width = ((5.0 * batch / per_block).ceil() as i64).max(width);
    Ok(Scan::Window {
        next_block: 0,
        end_block: blocks,
        width,
        max_width,
        after: None,
        paging: false,
    })
}

fn next_run_id() -> PResult<i64> {
    as_extension_owner(|| {
        Ok(Spi::get_one::<i64>(
            "SELECT pg_catalog.nextval('privacy.retention_run_log_run_id_seq'::pg_catalog.regclass)",
        )?
        .unwrap_or(0))
    })
}

/// A run's row in `privacy.retention_run_log`: who, when, how far.
struct RunRecord {
    owner: Option<pg_sys::Oid>,
    by: TriggeredBy,
    as_of: Option<TimestampWithTimeZone>,
    dry_run: bool,
    rows: i64,
    held: i64,
    batches: i32,
}

impl catalog::FromRow for RunRecord {
    fn from_row(r: &SpiHeapTupleData<'_>) -> Result<Self, SpiError> {
        Ok(RunRecord {
            owner: r.get_by_name("owner")?,
            by: match r.get_by_name::<String, _>("triggered_by")?.as_deref() {
                Some("manual") => TriggeredBy::Manual,
                _ => TriggeredBy::Worker,
            },
            as_of: r.get_by_name("as_of")?,
            dry_run: r.get_by_name("dry_run")?.unwrap_or(false),
            rows: r.get_by_name("rows_affected")?.unwrap_or(0),
            held: r.get_by_name("rows_held")?.unwrap_or(0),
            batches: r.get_by_name("batches")?.unwrap_or(0),
        })
    }
}

/// Everything recorded at the end of a run.
struct Outcome<'a> {
    run_id: i64,
    policy: &'a str,
    run: RunRecord,
    error: Option<String>,
}

impl Outcome<'_> {
    fn status(&self) -> &'static str {
        if self.error.is_some() {
            "failed"
        } else if self.run.dry_run {
            "dry_run"
        } else {
            "succeeded"
        }
    }
}

/// Write the outcome: run row (upsert), policy schedule (real runs), audit,
/// lock release.
fn record(o: &Outcome) -> PResult<()> {
    let status = o.status();
    as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO privacy.retention_run_log AS r
                 (run_id, policy, owner, triggered_by, as_of, status, finished_at,
                  rows_affected, rows_held, batches, error, dry_run)
             VALUES ($1, $2, $3::pg_catalog.oid::pg_catalog.regrole, $4, COALESCE($5, pg_catalog.now()), $6,
                     pg_catalog.clock_timestamp(), $7, $8, $9, $10, $11)
             ON CONFLICT (run_id) DO UPDATE
                SET status = EXCLUDED.status, finished_at = EXCLUDED.finished_at,
                    rows_affected = EXCLUDED.rows_affected, rows_held = EXCLUDED.rows_held,
                    batches = EXCLUDED.batches, error = EXCLUDED.error",
            &[
                o.run_id.into(),
                o.policy.into(),
                o.run.owner.into(),
                o.run.by.as_str().into(),
                o.run.as_of.into(),
                status.into(),
                o.run.rows.into(),
                o.run.held.into(),
                o.run.batches.into(),
                o.error.clone().into(),
                o.run.dry_run.into(),
            ],
        )?;
        if !o.run.dry_run {
            Spi::run_with_args(
                "UPDATE privacy.retention_policy_defs p
                    SET last_run_at = r.started_at,
                        last_status = $3,
                        failures = CASE WHEN $3 = 'failed' THEN p.failures + 1 ELSE 0 END,
                        next_run_at = pg_catalog.clock_timestamp() + CASE
                            WHEN $3 = 'failed' THEN LEAST(
                                p.schedule_interval * pg_catalog.power(2::float8, LEAST(p.failures, 16)),
                                GREATEST(p.schedule_interval, interval '1 day'))
                            ELSE p.schedule_interval END
                   FROM privacy.retention_run_log r
                  WHERE p.name = $2 AND r.run_id = $1",
                &[o.run_id.into(), o.policy.into(), status.into()],
            )?;
        }
        Ok(())
    })?;
    audit::record(
        "run_retention",
        o.policy,
        json!({
            "run_id": o.run_id, "status": status, "triggered_by": o.run.by.as_str(),
            "as_of": o.run.as_of.map(|t| t.to_string()), "dry_run": o.run.dry_run,
            "rows": o.run.rows, "held": o.run.held, "batches": o.run.batches, "error": o.error,
        }),
    )?;
    unlock(o.policy, o.run.by)
}

impl Run {
    /// Load and re-validate the policy, take its lock, insert its run row.
    pub fn start(
        policy: &str,
        as_of: TimestampWithTimeZone,
        dry_run: bool,
        by: TriggeredBy,
    ) -> PResult<Run> {
        Scope::pinned()
            .qualified_names()
            .run(|| Run::start_pinned(policy, as_of, dry_run, by))
    }

    fn start_pinned(
        policy: &str,
        as_of: TimestampWithTimeZone,
        dry_run: bool,
        by: TriggeredBy,
    ) -> PResult<Run> {
        let p = policy::require(policy)?;
        if !try_lock(&p.name, by)? {
            return Err(PrivacyError::already_running(&p.name));
        }
        let id = match next_run_id() {
            Ok(id) => id,
            Err(e) => {
                unlock(&p.name, by)?;
                return Err(e);
            }
        };
        let checked = match check_as_owner(&p) {
            Ok(c) => c,
            Err(e) => {
                record(&Outcome {
                    run_id: id,
                    policy: &p.name,
                    run: RunRecord {
                        owner: Some(p.owner),
                        by,
                        as_of: Some(as_of),
                        dry_run,
                        rows: 0,
                        held: 0,
                        batches: 0,
                    },
                    error: Some(error_text(&e)),
                })?;
                audit::log_refusal(
                    "run_retention",
                    &e,
                    &json!({ "policy": p.name, "run_id": id }),
                );
                return Err(e);
            }
        };
        as_extension_owner(|| {
            Spi::run_with_args(
                "INSERT INTO privacy.retention_run_log
                     (run_id, policy, owner, triggered_by, as_of, status, dry_run)
                 VALUES ($1, $2, $3::pg_catalog.oid::pg_catalog.regrole, $4, $5, 'running', $6)",
                &[
                    id.into(),
                    p.name.as_str().into(),
                    p.owner.into(),
                    by.as_str().into(),
                    as_of.into(),
                    dry_run.into(),
                ],
            )?;
            Ok(())
        })?;
        let mut run = Run {
            id,
            policy: p.name,
            relid: p.relid,
            owner: p.owner,
            table_owner: checked.table_owner,
            dry_run,
            by,
            target: Target {
                qualified: checked.qualified,
                anchor: p.anchor,
                anchor_type: checked.anchor_type,
                as_of,
                keep_for: p.keep_for,
                row_filter: checked.row_filter,
                action: p.action,
                rewrites: checked.rewrites,
                skip_locked: checked.skip_locked,
            },
            scan: checked.scan,
            rows: 0,
            held: 0,
            batches: 0,
            done: false,
        };
        run.windows_for_large_backlog()?;
        Ok(run)
    }

    /// The anchor's index serves a run that touches a small part of the
    /// table. When the backlog is large (at least a fifth of the table, and
    /// ten batches), one pass over the table in ctid windows reads each row
    /// once, where keyset pages over the index would re-read and re-sort
    /// every group of rows sharing one anchor value at each batch (quadratic
    /// for a bulk load with one timestamp, or a `date` anchor). The backlog
    /// is the planner's estimate (the anchor's statistics; a misestimate
    /// costs speed, never correctness), so starting a run stays cheap; for
    /// a table never analyzed it is counted, up to the threshold.
    fn windows_for_large_backlog(&mut self) -> PResult<()> {
        if !matches!(self.scan, Scan::Index { .. }) {
            return Ok(());
        }
        let batch = crate::gucs::batch_size();
        let relid = self.relid;
        let reltuples = catalog::relation(relid)?.map_or(-1.0, |r| r.tuples);
        let analyzed = reltuples >= 0.0;
        let cap = (batch.saturating_mul(10)).max(reltuples.max(0.0) as i64 / 5);
        // never analyzed (reltuples = -1): the planner would guess, count
        // up to the threshold instead
        let probe = self.target.backlog_probe(analyzed, cap);
        // EXPLAIN is refused in SPI's read-only mode
        let found = self.as_owner(crate::gucs::lock_timeout_ms(), |_| {
            crate::sql::opt_mut::<pgrx::Json>(&probe.sql, probe.params.args())
        })?;
        let backlog = found
            .and_then(|j| match j.0.get(0) {
                Some(p) => p.get("Plan")?.get("Plan Rows")?.as_f64(),
                None => j.0.as_f64(),
            })
            .unwrap_or(0.0) as i64;
        if backlog >= cap {
            let fraction = backlog as f64 / reltuples.max(1.0) as f64;
            self.scan = window_scan(relid, fraction)?;
        }
        Ok(())
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    pub fn policy(&self) -> &str {
        &self.policy
    }

    #[cfg(any(test, feature = "pg_test"))] // the tests' view of a run
    pub fn rows(&self) -> i64 {
        self.rows
    }

    #[cfg(any(test, feature = "pg_test"))]
    pub fn batches(&self) -> i32 {
        self.batches
    }

    /// What has been done so far (see [`Progress`]).
    pub fn progress(&self) -> Progress {
        Progress {
            run_id: self.id,
            policy: self.policy.clone(),
            owner: self.owner,
            by: self.by,
            as_of: self.target.as_of,
            dry_run: self.dry_run,
            rows: self.rows,
            held: self.held,
            batches: self.batches,
        }
    }

    /// One whole ctid window `[lo, hi)` as the owner with lock_timeout
    /// `timeout_ms`, in a subtransaction. Returns (acted, held). When it
    /// changes more than `cap` rows it is rolled back (`TooManyRows`) and
    /// `next_batch` narrows or pages it.
    fn window_batch(
        &self,
        holds: &TableHolds,
        (lo, hi): (i64, i64),
        shape: Shape,
        timeout_ms: i32,
        cap: Option<i64>,
    ) -> PResult<(i64, i64)> {
        let w = self.target.window(holds, lo, hi, shape);
        let args = w.params.args();
        self.as_owner(timeout_ms, |c| {
            let acted = c.update(&w.act, None, args)?.len() as i64;
            if cap.is_some_and(|cap| acted > cap) {
                // rolled back with the subtransaction
                return Err(PrivacyError::too_many_rows());
            }
            let held_n = match &w.held_count {
                None => 0,
                Some(q) => c
                    .select(q, None, args)?
                    .first()
                    .get_one::<i64>()?
                    .unwrap_or(0),
            };
            Ok((acted, held_n))
        })
    }

    /// Run `f` as the table's owner, restricted, with lock_timeout
    /// `timeout_ms`, in a subtransaction (rolled back when `f` fails, and
    /// always in a dry run): how every statement of a run touches the table.
    /// A dry run thus executes the real statements (triggers, cascades,
    /// foreign-key checks, lock waits included) and reports their counts and
    /// failures, then undoes them.
    fn as_owner<R>(
        &self,
        timeout_ms: i32,
        f: impl FnOnce(&mut pgrx::spi::SpiClient<'_>) -> PResult<R>,
    ) -> PResult<R> {
        let owner = self.table_owner;
        let work = || owner_scope(owner, timeout_ms).run(|| Spi::connect_mut(f));
        if self.dry_run {
            crate::sql::subxact::run_rolled_back(work)
        } else {
            crate::sql::subxact::run(work)
        }
    }

    /// Execute one statement as the owner with lock_timeout `timeout_ms`,
    /// in a subtransaction. Returns (acted, held, seen, last anchor, last
    /// tid).
    fn execute(&self, st: Statement, timeout_ms: i32) -> PResult<BatchRow> {
        let anchor_type = self.target.anchor_type;
        self.as_owner(timeout_ms, |c| {
            let rows = c.update(&st.sql, None, st.params.args())?;
            for r in rows {
                let last = match anchor_type {
                    AnchorType::Date => r.get::<Date>(4)?.map(AnchorValue::Date),
                    AnchorType::Timestamp => r.get::<Timestamp>(4)?.map(AnchorValue::Ts),
                    AnchorType::TimestampTz => {
                        r.get::<TimestampWithTimeZone>(4)?.map(AnchorValue::Tstz)
                    }
                };
                return Ok((
                    r.get::<i64>(1)?.unwrap_or(0),
                    r.get::<i64>(2)?.unwrap_or(0),
                    r.get::<i64>(3)?.unwrap_or(0),
                    last,
                    r.get::<String>(5)?,
                ));
            }
            Err(PrivacyError::internal("retention batch returned no row"))
        })
    }

    /// Run one batch: the fast shape first; when it times out on a lock
    /// (55P03; its subtransaction is rolled back, nothing is half done), the
    /// careful shape, which skips the rows others hold locked (retried by
    /// the closing pass or the next run). The fast shape's wait is bounded
    /// by half of `deadlock_timeout`, so that a client waiting for a row
    /// this batch changed is released by the batch's timeout before its own
    /// deadlock check could fire (it would be the one to fail); the careful
    /// shape gets the rest of `privacy.lock_timeout` (for the table lock).
    fn run_statement<T>(&self, exec: impl Fn(Shape, i32) -> PResult<T>) -> PResult<T> {
        let total = crate::gucs::lock_timeout_ms();
        let deadlock = unsafe { pg_sys::DeadlockTimeout }.max(2);
        let fast = total.min(deadlock / 2).max(1);
        match exec(Shape::Fast, fast) {
            Err(e)
                if e.code == pgrx::PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE
                    && self.target.skip_locked =>
            {
                exec(Shape::Careful, (total - fast).max(1))
            }
            other => other,
        }
    }

    /// The holds of the run's table now (re-read for every batch: one placed
    /// meanwhile counts), their filters validated as the table's owner.
    fn holds(&self) -> PResult<TableHolds> {
        let (relid, as_of, owner) = (self.relid, self.target.as_of, self.table_owner);
        crate::sql::subxact::run(|| {
            owner_scope(owner, crate::gucs::lock_timeout_ms()).run(|| {
                let active = ActiveHolds::load(as_of)?;
                let subject_col = if active.has_subject_holds() {
                    crate::labels::tags::table_tags(relid)?
                        .into_iter()
                        .find(|t| t.label.subject)
                } else {
                    None
                };
                active.for_table(relid, subject_col.as_ref())
            })
        })
    }

    /// One batch of at most `privacy.batch_size` rows. Ok(true) = more to do.
    pub fn next_batch(&mut self) -> PResult<bool> {
        Scope::pinned()
            .qualified_names()
            .run(|| self.next_batch_pinned())
    }

    fn next_batch_pinned(&mut self) -> PResult<bool> {
        if self.done {
            return Ok(false);
        }
        let limit = crate::gucs::batch_size();
        // the policy's owner may still do this; the table's owner runs it
        self.table_owner = check_owners(self.relid, self.owner, self.target.action)?;
        let holds = self.holds()?;
        let holds = &holds;
        self.batches += 1;
        match self.scan.clone() {
            Scan::Index { last, full, swept } => {
                let page = Page::Index(last.as_ref());
                let (acted, held_n, seen, last_a, last_tid) =
                    self.run_statement(|shape, timeout| {
                        self.execute(self.target.page(holds, page, shape, limit), timeout)
                    })?;
                self.rows += acted;
                if !swept {
                    // the closing pass meets the held rows a second time
                    self.held += held_n;
                }
                let last = match (last_a, last_tid) {
                    (Some(a), Some(t)) => Some((a, t)),
                    _ => last,
                };
                if seen >= limit {
                    self.scan = Scan::Index {
                        last,
                        full: true,
                        swept,
                    };
                } else if full && !swept && !self.dry_run {
                    // End of the range. Rows whose locks were skipped (the
                    // careful shape) or whose new versions moved behind the
                    // position: one closing pass from the start of the
                    // expired range retries them (rows already deleted or
                    // anonymized no longer match, held rows are not counted
                    // twice).
                    self.scan = Scan::Index {
                        last: None,
                        full: false,
                        swept: true,
                    };
                } else {
                    self.done = true;
                }
            }
            Scan::Window {
                mut next_block,
                end_block,
                mut width,
                max_width,
                mut after,
                mut paging,
            } => {
                let mut visited = 0;
                while next_block < end_block {
                    let hi = next_block.saturating_add(width);
                    let (acted, held_n) = if paging {
                        // a window with more than a batch: pages in ctid order
                        let page = Page::Window {
                            lo: next_block,
                            hi,
                            after: after.as_ref(),
                        };
                        let (acted, held_n, seen, _, tid) =
                            self.run_statement(|shape, timeout| {
                                self.execute(self.target.page(holds, page, shape, limit), timeout)
                            })?;
                        if seen >= limit {
                            after = tid;
                        } else {
                            (next_block, after, paging) = (hi, None, false);
                        }
                        (acted, held_n)
                    } else {
                        let window = (next_block, hi);
                        let cap = Some(limit);
                        match self.run_statement(|shape, timeout| {
                            self.window_batch(holds, window, shape, timeout, cap)
                        }) {
                            Ok((acted, held_n)) => {
                                next_block = hi;
                                // too few candidates: widen towards 0.8 batch
                                // (at most doubling, up to max_width)
                                let n = acted + held_n;
                                if n < limit * 7 / 10 {
                                    let f = (0.8 * limit as f64 / n.max(1) as f64).min(2.0);
                                    let w = (width as f64 * f).ceil() as i64;
                                    width = w.min(max_width).max(width);
                                }
                                (acted, held_n)
                            }
                            Err(e) if e.kind == Kind::TooManyRows => {
                                // the statistics were off (rolled back): narrower
                                // windows from here on, pages when one block is too much
                                if width > 1 {
                                    width = (width / 2).max(1);
                                } else {
                                    paging = true;
                                }
                                continue;
                            }
                            Err(e) => return Err(e),
                        }
                    };
                    self.rows += acted;
                    self.held += held_n;
                    visited += 1;
                    if acted + held_n > 0 || visited >= MAX_EMPTY_WINDOWS {
                        break;
                    }
                }
                if next_block >= end_block {
                    self.done = true;
                }
                self.scan = Scan::Window {
                    next_block,
                    end_block,
                    width,
                    max_width,
                    after,
                    paging,
                };
            }
        }
        Ok(!self.done)
    }

    /// Record the outcome and release the policy.
    pub fn finish(self, error: Option<&PrivacyError>) -> PResult<RunSummary> {
        Scope::pinned()
            .qualified_names()
            .run(|| self.finish_pinned(error))
    }

    fn finish_pinned(self, error: Option<&PrivacyError>) -> PResult<RunSummary> {
        if let Some(e) = error {
            audit::log_refusal(
                "run_retention",
                e,
                &json!({ "policy": self.policy, "run_id": self.id }),
            );
        }
        let error = error.map(error_text);
        let o = Outcome {
            run_id: self.id,
            policy: &self.policy,
            run: RunRecord {
                owner: Some(self.owner),
                by: self.by,
                as_of: Some(self.target.as_of),
                dry_run: self.dry_run,
                rows: self.rows,
                held: self.held,
                batches: self.batches,
            },
            error,
        };
        record(&o)?;
        Ok(RunSummary {
            rows: self.rows,
            held: self.held,
            status: o.status(),
            batches: self.batches,
        })
    }
}

/// After a batch's transaction aborted: mark run `run_id` failed (in a new
/// transaction), update the policy's back-off, audit, release the lock.
pub fn record_failure(run_id: i64, policy: &str, error_text: &str) -> PResult<()> {
    Scope::pinned()
        .qualified_names()
        .run(|| record_failure_pinned(run_id, policy, error_text))
}

fn record_failure_pinned(run_id: i64, policy: &str, error_text: &str) -> PResult<()> {
    let known: Option<RunRecord> = as_extension_owner(|| {
        catalog::one(
            "SELECT owner::pg_catalog.oid AS owner, triggered_by, as_of, dry_run,
                    rows_affected, rows_held, batches
               FROM privacy.retention_run_log WHERE run_id = $1",
            &[run_id.into()],
        )
    })?;
    let run = known.unwrap_or(RunRecord {
        owner: None,
        by: TriggeredBy::Worker,
        as_of: None,
        dry_run: false,
        rows: 0,
        held: 0,
        batches: 0,
    });
    record(&Outcome {
        run_id,
        policy,
        run,
        error: Some(error_text.to_string()),
    })
}

/// For a worker starting up: close the worker runs a dead worker left
/// `running` (crash, immediate shutdown) as failed, audited; their policies
/// back off like after any failure. Returns the policies concerned. Call it
/// only while no other worker of the database can be running a policy.
pub fn close_interrupted_runs() -> PResult<Vec<String>> {
    Scope::pinned().run(close_interrupted_runs_pinned)
}

fn close_interrupted_runs_pinned() -> PResult<Vec<String>> {
    let open: Vec<(i64, String)> = as_extension_owner(|| {
        crate::sql::rows(
            "SELECT run_id, policy FROM privacy.retention_run_log
              WHERE status = 'running' AND triggered_by = 'worker' ORDER BY run_id",
            &[],
            |r| {
                Ok((
                    r.get::<i64>(1)?.unwrap_or(0),
                    r.get::<String>(2)?.unwrap_or_default(),
                ))
            },
        )
    })?;
    for (run_id, policy) in &open {
        record_failure(
            *run_id,
            policy,
            "interrupted: the worker running it ended abnormally; committed batches are kept",
        )?;
    }
    Ok(open.into_iter().map(|(_, p)| p).collect())
}

/// A worker run as of its last committed batch. The worker keeps one while
/// a run is open, so that its exit callback can still record the run when
/// the process is ended in the middle of a statement (`worker`, SIGTERM).
#[derive(Clone, Debug)]
pub struct Progress {
    run_id: i64,
    policy: String,
    owner: pg_sys::Oid,
    by: TriggeredBy,
    as_of: TimestampWithTimeZone,
    dry_run: bool,
    rows: i64,
    held: i64,
    batches: i32,
}

/// What [`Progress::record_failure_nowait`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    Yes,
    /// the run was no longer `running`: recorded before
    AlreadyClosed,
    /// another session holds a lock it needs: left to the next worker's
    /// start-up (`close_interrupted_runs`)
    Busy,
}

impl Progress {
    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// Record the run as failed with `error` and the counts of its
    /// committed batches, back its policy off and release its lock, as
    /// `Run::finish` does — without ever waiting for a lock: this runs while
    /// the process exits, with interrupts held, where no `lock_timeout` or
    /// cancel could end a wait. The tables and rows it writes are locked
    /// first, conditionally; when one is busy nothing is written.
    pub fn record_failure_nowait(&self, error: &PrivacyError) -> PResult<Recorded> {
        Scope::pinned()
            .qualified_names()
            .run(|| self.record_failure_nowait_pinned(error))
    }

    fn record_failure_nowait_pinned(&self, error: &PrivacyError) -> PResult<Recorded> {
        let state = as_extension_owner(|| {
            for table in [
                "privacy.retention_run_log",
                "privacy.retention_policy_defs",
                "privacy.audit_log",
            ] {
                let oid = Spi::get_one_with_args::<pg_sys::Oid>(
                    "SELECT pg_catalog.to_regclass($1)::pg_catalog.oid",
                    &[table.into()],
                )?;
                let locked = oid.is_some_and(|oid| unsafe {
                    pg_sys::ConditionalLockRelationOid(oid, pg_sys::RowExclusiveLock as i32)
                });
                if !locked {
                    return Ok(Recorded::Busy);
                }
            }
            let open = Spi::get_one_with_args::<bool>(
                "SELECT EXISTS (SELECT 1 FROM privacy.retention_run_log
                                 WHERE run_id = $1 AND status = 'running')",
                &[self.run_id.into()],
            )?
            .unwrap_or(false);
            if !open {
                return Ok(Recorded::AlreadyClosed);
            }
            let free = Spi::get_one_with_args::<bool>(
                "SELECT (SELECT pg_catalog.count(*) FROM
                           (SELECT 1 FROM privacy.retention_run_log
                             WHERE run_id = $1 FOR UPDATE SKIP LOCKED) AS r) = 1
                    AND (NOT EXISTS (SELECT 1 FROM privacy.retention_policy_defs WHERE name = $2)
                         OR (SELECT pg_catalog.count(*) FROM
                               (SELECT 1 FROM privacy.retention_policy_defs
                                 WHERE name = $2 FOR UPDATE SKIP LOCKED) AS p) = 1)",
                &[self.run_id.into(), self.policy.as_str().into()],
            )?
            .unwrap_or(false);
            Ok(if free { Recorded::Yes } else { Recorded::Busy })
        })?;
        if state != Recorded::Yes {
            return Ok(state);
        }
        record(&Outcome {
            run_id: self.run_id,
            policy: &self.policy,
            run: RunRecord {
                owner: Some(self.owner),
                by: self.by,
                as_of: Some(self.as_of),
                dry_run: self.dry_run,
                rows: self.rows,
                held: self.held,
                batches: self.batches,
            },
            error: Some(error_text(error)),
        })?;
        Ok(Recorded::Yes)
    }
}

/// For the worker, when the transaction of `Run::start` was aborted (a
/// cancel, the run's time bound): nothing of the start is recorded, and
/// the session-level policy lock it may have taken is still held. Records a
/// failed run of `policy` (its policy backs off) and releases the lock.
pub fn record_failed_start(
    policy: &str,
    as_of: TimestampWithTimeZone,
    error: &PrivacyError,
) -> PResult<()> {
    Scope::pinned()
        .qualified_names()
        .run(|| record_failed_start_pinned(policy, as_of, error))
}

fn record_failed_start_pinned(
    policy: &str,
    as_of: TimestampWithTimeZone,
    error: &PrivacyError,
) -> PResult<()> {
    let owner = policy::load(policy)?.map(|p| p.owner);
    record(&Outcome {
        run_id: next_run_id()?,
        policy,
        run: RunRecord {
            owner,
            by: TriggeredBy::Worker,
            as_of: Some(as_of),
            dry_run: false,
            rows: 0,
            held: 0,
            batches: 0,
        },
        error: Some(error_text(error)),
    })
}

/// Whether this database's worker is paused by `ALTER DATABASE <db> SET
/// privacy.worker_enabled = off` (also `ALTER ROLE ALL IN DATABASE`). Read
/// from `pg_db_role_setting` at every round, since a running worker does
/// not see a database setting made after it started. Needs a transaction.
pub fn database_paused() -> PResult<bool> {
    Ok(crate::catalog::database_worker_enabled_settings()?
        .iter()
        .any(|v| crate::gucs::parse_bool(v) == Some(false)))
}

/// Enabled policies due at `now` (next_run_at <= now), earliest first;
/// none while the database's worker is paused (`ALTER DATABASE … SET
/// privacy.worker_enabled = off`, see [`database_paused`]).
pub fn due_policies(now: TimestampWithTimeZone) -> PResult<Vec<String>> {
    if database_paused()? {
        return Ok(Vec::new());
    }
    as_extension_owner(|| {
        crate::sql::rows(
            "SELECT name FROM privacy.retention_policy_defs
              WHERE enabled AND next_run_at <= $1 ORDER BY next_run_at, name",
            &[now.into()],
            |r| Ok(r.get::<String>(1)?.unwrap_or_default()),
        )
    })
}

/// Run one policy to the end in the current transaction.
pub fn run_policy(
    policy: &str,
    as_of: TimestampWithTimeZone,
    dry_run: bool,
    by: TriggeredBy,
) -> PResult<RunSummary> {
    let mut run = Run::start(policy, as_of, dry_run, by)?;
    loop {
        match run.next_batch() {
            Ok(true) => continue,
            Ok(false) => return run.finish(None),
            Err(e) => {
                run.finish(Some(&e))?;
                return Err(e);
            }
        }
    }
}

/// Policies `run_retention(NULL)` runs for the current role: enabled, and
/// owned by a role whose privileges it has (all, for a superuser).
fn runnable_policies() -> PResult<(Vec<String>, usize)> {
    let all: Vec<(String, pg_sys::Oid)> = as_extension_owner(|| {
        crate::sql::rows(
            "SELECT name, owner::pg_catalog.oid FROM privacy.retention_policy_defs
              WHERE enabled ORDER BY name",
            &[],
            |r| {
                Ok((
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<pg_sys::Oid>(2)?.unwrap_or(pg_sys::Oid::INVALID),
                ))
            },
        )
    })?;
    let mut mine = Vec::new();
    let mut skipped = 0;
    for (name, owner) in all {
        if policy::may_manage(owner)? {
            mine.push(name);
        } else {
            skipped += 1;
        }
    }
    Ok((mine, skipped))
}

/// One row of `run_retention`'s result: policy, table, action, rows, held.
pub type RunRow = (
    String,
    Option<Regclass>,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

fn warn_failed(policy: &str, e: &PrivacyError) {
    ErrorReport::new(
        pgrx::PgSqlErrorCode::ERRCODE_WARNING,
        format!("retention policy \"{policy}\" failed: {}", error_text(e)),
        "pg_privacy",
    )
    .set_hint("The failure is recorded in privacy.retention_runs.")
    .report(pgrx::PgLogLevel::WARNING);
}

/// A real run purges only what is expired now: an `as_of` later than
/// `now()` (the transaction's start, the default) is refused (22023). A dry
/// run may look ahead.
fn check_as_of(as_of: TimestampWithTimeZone, dry_run: bool) -> PResult<()> {
    if dry_run {
        return Ok(());
    }
    let future =
        crate::sql::opt::<bool>("SELECT $1 > pg_catalog.now()", &[as_of.into()])?.unwrap_or(false);
    if future {
        return Err(PrivacyError::invalid_parameter(format!(
            "as_of {as_of} is in the future: a real retention run cannot purge rows that are not yet due"
        ))
        .with_hint("Pass dry_run => true to see what a run at that time would do."));
    }
    Ok(())
}

/// `run_retention(policy, as_of, dry_run)`: one policy, or (`None`) every
/// enabled policy the current role may run; one row per policy.
pub fn run_retention(
    policy: Option<&str>,
    as_of: TimestampWithTimeZone,
    dry_run: bool,
) -> PResult<Vec<RunRow>> {
    check_as_of(as_of, dry_run)?;
    let names = match policy {
        Some(name) => {
            let p = policy::require(name)?;
            policy::require_manage(&p, "run")?;
            vec![p.name]
        }
        None => {
            let (mine, skipped) = runnable_policies()?;
            if skipped > 0 {
                pgrx::notice!(
                    "skipping {skipped} retention policies owned by roles whose privileges {} does not have",
                    security::current_role_name()
                );
            }
            mine
        }
    };
    let mut out = Vec::new();
    for name in names {
        let p = policy::load(&name)?;
        let (relid, action) = match &p {
            Some(p) => (Some(Regclass(p.relid)), Some(p.action.as_str().to_string())),
            None => (None, None),
        };
        match run_policy(&name, as_of, dry_run, TriggeredBy::Manual) {
            Ok(s) => out.push((name, relid, action, Some(s.rows), Some(s.held))),
            Err(e) => {
                if policy.is_some() && e.kind == Kind::AlreadyRunning {
                    return Err(e);
                }
                warn_failed(&name, &e);
                out.push((name, relid, action, None, None));
            }
        }
    }
    Ok(out)
}
