//! The statement builder of a run: the SQL of every batch shape, its
//! values bound as parameters through one [`Params`] per statement (no
//! placeholder numbered by hand, no value spliced into the text).
//!
//! A run reads its table in one of two **scans** (see `run`): pages of at
//! most `batch_size` candidates in `(anchor, ctid)` order through the
//! anchor's index, or in ctid order inside a window ([`Target::page`]); or
//! whole ctid windows ([`Target::window`]). Each is built in one of three
//! **shapes**:
//! - [`Shape::Dry`]: count, change nothing;
//! - [`Shape::Fast`]: change the candidates directly (a row locked by
//!   another transaction is waited for, bounded by the batch's
//!   lock_timeout);
//! - [`Shape::Careful`]: lock the candidates `SKIP LOCKED` first, then change
//!   the rows locked (never waits for a row lock).
//!
//! Held rows are never changed: every shape excludes the rows the table's
//! holds cover ([`TableHolds::predicate`], bound into the same `Params`)
//! and reports how many it met.

use super::anonymize::ColumnRewrite;
use super::filters;
use super::holds::TableHolds;
use super::policy::{Action, AnchorType};
use crate::sql::Params;
use pgrx::datum::{Date, DatumWithOid, Interval, Timestamp, TimestampWithTimeZone};
use pgrx::prelude::*;

/// How a batch statement treats its candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Dry,
    Fast,
    Careful,
}

/// An anchor value (the position of an index scan).
#[derive(Clone, Copy, Debug)]
pub enum AnchorValue {
    Date(Date),
    Ts(Timestamp),
    Tstz(TimestampWithTimeZone),
}

impl AnchorValue {
    fn arg(self) -> DatumWithOid<'static> {
        match self {
            AnchorValue::Date(v) => v.into(),
            AnchorValue::Ts(v) => v.into(),
            AnchorValue::Tstz(v) => v.into(),
        }
    }
}

/// Where one page of candidates lies.
#[derive(Clone, Copy)]
pub enum Page<'a> {
    /// `(anchor, ctid)` order, after this position
    Index(Option<&'a (AnchorValue, String)>),
    /// ctid order within the blocks [lo, hi), after this ctid
    Window {
        lo: i64,
        hi: i64,
        after: Option<&'a String>,
    },
}

/// A statement and its parameters.
pub struct Statement {
    pub sql: String,
    pub params: Params,
}

/// The statements of one whole ctid window: `act` changes (or, dry, counts)
/// the candidates that are not held; `held_count`, when the table has
/// holds, counts the held ones. Both take the same parameters.
pub struct WindowStatements {
    pub act: String,
    pub held_count: Option<String>,
    pub params: Params,
}

/// What every statement of a run is built from, fixed when the run starts.
pub struct Target {
    /// quoted `schema.table`
    pub qualified: String,
    pub anchor: String,
    pub anchor_type: AnchorType,
    pub as_of: TimestampWithTimeZone,
    pub keep_for: Interval,
    /// validated (`filters::validate`), spliced with `filters::spliced`
    pub row_filter: Option<String>,
    pub action: Action,
    /// the columns an anonymize run rewrites (empty for delete)
    pub rewrites: Vec<ColumnRewrite>,
    /// the table's owner may lock rows (`FOR UPDATE` needs UPDATE)
    pub skip_locked: bool,
}

/// The held-row test of a table, bound into `params`: an expression that is
/// TRUE for a held row, FALSE otherwise (never NULL).
fn held_expr(holds: &TableHolds, params: &mut Params) -> Option<String> {
    holds
        .predicate(params)
        .map(|h| format!("COALESCE({h}, false)"))
}

impl Target {
    /// The WHERE conditions every candidate satisfies, `as_of` and
    /// `keep_for` bound into `params`.
    ///
    /// A row is expired when `anchor_utc + keep_for <= as_of_utc`. The bound
    /// `c = as_of_utc - keep_for` is a constant of the statement (folded
    /// once, it serves the index or filters cheaply):
    /// - keep_for without months: adding days and microseconds to a UTC
    ///   timestamp is a plain shift, so `anchor <= c` is the exact test;
    /// - with months (clamped: Jan 31 + 1 month = Feb 28): `anchor <= c + 4
    ///   days` is a superset, and the exact test is evaluated only for rows
    ///   after `c - 31 days`. For months N > 0, a row on day k of month M
    ///   moves by at most L(M, N), the days of months M..M+N-1, while `as_of`
    ///   (month P) lies at least L(P-N, N) + days + time after `c`; sums of N
    ///   consecutive months differ by a few days (3, plus leap days), far
    ///   less than 31: such a row is expired. Exhaustive checks over three
    ///   years put every boundary within 3 days of `c` (see the tests).
    ///
    /// `index`: the conditions will be used through the anchor's index (the
    /// range bound stays a top-level condition).
    pub fn expiry_conditions(&self, params: &mut Params, index: bool) -> Vec<String> {
        let a = spi::quote_identifier(&self.anchor);
        let as_of = params.push_as(self.as_of, "pg_catalog.timestamptz");
        let keep_for = params.push_as(self.keep_for, "pg_catalog.interval");
        // timezone(interval) is a fixed offset: no zone lookup per row
        let utc = "interval '00:00'";
        let now_utc = format!("pg_catalog.timezone({utc}, {as_of})");
        let bound = format!("({now_utc} - {keep_for})");
        // `anchor <= x`, x a UTC timestamp expression
        let anchor_le = |x: &str| match self.anchor_type {
            AnchorType::TimestampTz => format!("{a} <= pg_catalog.timezone({utc}, {x})"),
            AnchorType::Timestamp => format!("{a} <= {x}"),
            AnchorType::Date => format!("{a} <= CAST({x} AS pg_catalog.date)"),
        };
        let anchor_utc = match self.anchor_type {
            AnchorType::TimestampTz => format!("pg_catalog.timezone({utc}, {a})"),
            AnchorType::Timestamp => a.clone(),
            AnchorType::Date => format!("CAST({a} AS pg_catalog.timestamp)"),
        };
        let exact = format!("{anchor_utc} + {keep_for} <= {now_utc}");
        // (a NULL anchor fails every comparison: never expired)
        let mut c = Vec::new();
        if self.keep_for.months() == 0 {
            c.push(anchor_le(&bound));
        } else {
            // keep_for has no negative parts (checked when the policy is made)
            let superset = anchor_le(&format!("({bound} + interval '4 days')"));
            let sure = anchor_le(&format!("({bound} - interval '31 days')"));
            if index {
                // the superset as a top-level condition: the index's range
                c.push(superset);
                c.push(format!("({sure} OR {exact})"));
            } else {
                // one comparison for the rows well past the bound
                c.push(format!("({sure} OR ({superset} AND {exact}))"));
            }
        }
        if let Some(f) = &self.row_filter {
            c.push(filters::spliced(f));
        }
        if self.action == Action::Anonymize {
            let needs: Vec<&str> = self
                .rewrites
                .iter()
                .map(|r| r.needs_change.as_str())
                .collect();
            c.push(format!("({})", needs.join(" OR ")));
        }
        c
    }

    /// The statement that changes the rows matching `target` (a condition
    /// over the table's row), without `RETURNING` (SPI counts the rows).
    fn change(&self, target: &str) -> String {
        let t = &self.qualified;
        match self.action {
            Action::Delete => format!("DELETE FROM {t} WHERE {target}"),
            Action::Anonymize => {
                let sets: Vec<String> = self.rewrites.iter().map(|r| r.set_item()).collect();
                format!("UPDATE {t} SET {} WHERE {target}", sets.join(", "))
            }
        }
    }

    /// The row lock the careful shape takes (none when the owner may not
    /// lock rows: then it waits like the fast shape).
    fn lock_clause(&self) -> &'static str {
        if !self.skip_locked {
            ""
        } else if self.action == Action::Delete {
            "FOR UPDATE SKIP LOCKED"
        } else {
            "FOR NO KEY UPDATE SKIP LOCKED"
        }
    }

    /// The planner's estimate (`analyzed`: `EXPLAIN (FORMAT JSON)`) or the
    /// count, up to `cap`, of the expired rows: one JSON value.
    pub fn backlog_probe(&self, analyzed: bool, cap: i64) -> Statement {
        let mut params = Params::default();
        let conds = self.expiry_conditions(&mut params, true).join(" AND ");
        let t = &self.qualified;
        let sql = if analyzed {
            format!("EXPLAIN (FORMAT JSON) SELECT 1 FROM {t} WHERE {conds}")
        } else {
            let cap = params.push(cap);
            format!(
                "SELECT pg_catalog.to_json(pg_catalog.count(*)) FROM (SELECT 1 FROM {t} WHERE {conds} LIMIT {cap}) AS s"
            )
        };
        Statement { sql, params }
    }

    /// One page of at most `limit` candidates, in `(anchor, ctid)` order
    /// through the anchor's index, or in ctid order within a window. Returns
    /// one row: (acted, held, seen, last anchor, last ctid as text).
    ///
    /// The position comes from an unlocked `scan` (locking a row that
    /// another session updated meanwhile returns its new version, whose
    /// ctid may lie far beyond the position and must not move it). Then the
    /// fast shape changes the scanned rows by ctid, the conditions rechecked
    /// on the version the change finds; the careful shape locks them first
    /// (one more visit of each row and one more WAL record per row).
    pub fn page(&self, holds: &TableHolds, page: Page<'_>, shape: Shape, limit: i64) -> Statement {
        let a = spi::quote_identifier(&self.anchor);
        let t = &self.qualified;
        let mut params = Params::default();
        // `base`: what makes a row a candidate (rechecked on the version a
        // change or a lock finds); `conds`: plus the position
        let base = self.expiry_conditions(&mut params, true).join("\n   AND ");
        let mut conds = base.clone();
        let (order, last_order) = match page {
            Page::Index(last) => {
                if let Some((v, tid)) = last {
                    let pa = params.push(v.arg());
                    let pt = params.push_as(tid.as_str(), "pg_catalog.tid");
                    conds.push_str(&format!(
                        "\n   AND {a} >= {pa} AND ({a} > {pa} OR ctid > {pt})"
                    ));
                }
                (format!("{a}, ctid"), "a DESC, tid DESC")
            }
            Page::Window { lo, hi, after } => {
                conds.push_str(&format!("\n   AND {}", block_range(&mut params, lo, hi)));
                if let Some(tid) = after {
                    let pt = params.push_as(tid.as_str(), "pg_catalog.tid");
                    conds.push_str(&format!("\n   AND ctid > {pt}"));
                }
                ("ctid".to_string(), "tid DESC")
            }
        };
        let limit = params.push(limit);
        let held = held_expr(holds, &mut params).unwrap_or_else(|| "false".into());
        let (cand, act) = match shape {
            Shape::Dry => (
                "SELECT tid, held FROM scan".to_string(),
                "SELECT 1 FROM scan WHERE NOT held".to_string(),
            ),
            Shape::Careful => (
                format!(
                    "SELECT ctid AS tid, {held} AS held FROM {t}
                      WHERE ctid = ANY (ARRAY(SELECT tid FROM scan)) AND {base}
                      {}",
                    self.lock_clause()
                ),
                self.change("ctid = ANY (ARRAY(SELECT tid FROM cand WHERE NOT held))"),
            ),
            Shape::Fast => (
                "SELECT tid, held FROM scan".to_string(),
                self.change(&format!(
                    "ctid = ANY (ARRAY(SELECT tid FROM scan WHERE NOT held))
                     AND {base} AND NOT {held}"
                )),
            ),
        };
        let act = match shape {
            Shape::Dry => act,
            _ => format!("{act} RETURNING 1"),
        };
        let sql = format!(
            "WITH scan AS MATERIALIZED (
                SELECT ctid AS tid, {a} AS a, {held} AS held
                  FROM {t}
                 WHERE {conds}
                 ORDER BY {order}
                 LIMIT {limit}
             ), cand AS (
                {cand}
             ), act AS (
                {act}
             )
             SELECT (SELECT pg_catalog.count(*) FROM act),
                    (SELECT pg_catalog.count(*) FROM cand WHERE held),
                    (SELECT pg_catalog.count(*) FROM scan),
                    l.a, CAST(l.tid AS pg_catalog.text)
               FROM (SELECT 1) AS one
               LEFT JOIN LATERAL (SELECT a, tid FROM scan ORDER BY {last_order} LIMIT 1) AS l ON true"
        );
        Statement { sql, params }
    }

    /// One whole ctid window `[lo, hi)` (a TID range scan), the shape for
    /// large backlogs: the fast shape is one plain `DELETE`/`UPDATE` of the
    /// window's candidates, each row visited once, counted by SPI (no
    /// `RETURNING` to store); the careful shape locks the candidates `SKIP
    /// LOCKED` and changes those; the dry shape counts them.
    pub fn window(&self, holds: &TableHolds, lo: i64, hi: i64, shape: Shape) -> WindowStatements {
        let t = &self.qualified;
        let mut params = Params::default();
        let conds = format!(
            "{}\n   AND {}",
            block_range(&mut params, lo, hi),
            self.expiry_conditions(&mut params, false).join("\n   AND ")
        );
        let held = held_expr(holds, &mut params);
        let not_held = match &held {
            None => String::new(),
            Some(h) => format!(" AND NOT {h}"),
        };
        let act = match shape {
            Shape::Dry => format!("SELECT pg_catalog.count(*) FROM {t} WHERE {conds}{not_held}"),
            Shape::Careful => format!(
                "WITH cand AS (SELECT ctid AS tid FROM {t} WHERE {conds}{not_held} {})
                 {}",
                self.lock_clause(),
                self.change("ctid = ANY (ARRAY(SELECT tid FROM cand))")
            ),
            Shape::Fast => self.change(&format!("{conds}{not_held}")),
        };
        let held_count =
            held.map(|h| format!("SELECT pg_catalog.count(*) FROM {t} WHERE {conds} AND {h}"));
        WindowStatements {
            act,
            held_count,
            params,
        }
    }
}

/// `ctid` within the blocks `[lo, hi)`: a TID range scan.
fn block_range(params: &mut Params, lo: i64, hi: i64) -> String {
    let lo = params.push_as(format!("({lo},0)"), "pg_catalog.tid");
    let hi = params.push_as(format!("({hi},0)"), "pg_catalog.tid");
    format!("ctid >= {lo} AND ctid < {hi}")
}
