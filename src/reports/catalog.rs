//! One read of everything the reports look at: user tables and their
//! columns, tags, indexes, foreign keys, retention policies. A fixed number
//! of catalog queries whatever the number of tables (the lint and the record
//! of processing run in well under a second on 1 000 tables × 20 columns,
//! see `bench/60_reports.sql`), then plain Rust.
//!
//! Called inside a pinned scope (`audit::entry`): operators and functions
//! resolve in `pg_catalog`, whatever the caller's `search_path`. pg_privacy's
//! closed tables (policies, run log) are read as the extension owner.

use crate::error::PResult;
use crate::labels::grammar::{self as labels, Label};
use crate::security::as_extension_owner;
use pgrx::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A user table (plain or partitioned).
#[derive(Debug, Clone)]
pub struct Table {
    pub oid: pg_sys::Oid,
    /// `schema.table`, each part quoted when needed (safe in SQL, readable)
    pub qname: String,
    /// the parent of a partition
    pub parent: Option<pg_sys::Oid>,
    pub columns: Vec<Column>,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub attnum: i16,
    pub name: String,
    /// `format_type` of the column
    pub type_name: String,
    /// the type's own name (`inet`, `timestamptz`…)
    pub base_type: String,
    /// the column's parsed privacy label (a label that does not parse is
    /// treated as absent)
    pub label: Option<Label>,
    /// a valid, non-partial index leads with the column
    pub indexed: bool,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Columns with a tag that carries personal data (`NOT PERSONAL` left out).
    pub fn tagged(&self) -> impl Iterator<Item = &Column> {
        self.columns
            .iter()
            .filter(|c| c.label.as_ref().is_some_and(|l| !l.not_personal))
    }

    pub fn subject(&self) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.label.as_ref().is_some_and(|l| l.subject))
    }

    /// `schema.table.column`, quoted where needed.
    pub fn column_ref(&self, col: &str) -> String {
        format!("{}.{}", self.qname, spi::quote_identifier(col))
    }
}

/// A foreign key, single- or multi-column.
#[derive(Debug, Clone)]
pub struct ForeignKey {
    pub child: pg_sys::Oid,
    pub parent: pg_sys::Oid,
    pub child_cols: Vec<i16>,
    pub parent_cols: Vec<i16>,
}

/// A retention policy, with what the reports show of it.
#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub table: pg_sys::Oid,
    pub anchor: String,
    pub keep_for: String,
    pub action: String,
    pub row_filter: Option<String>,
    pub purpose: Option<String>,
    pub enabled: bool,
    pub schedule_interval: String,
    pub last_run_at: Option<String>,
    pub last_status: Option<String>,
    /// finished_at of the last successful run (ISO 8601)
    pub last_success: Option<String>,
    /// enabled, and neither run nor created within twice its schedule
    pub overdue: bool,
}

pub struct Catalog {
    pub tables: BTreeMap<u32, Table>,
    pub foreign_keys: Vec<ForeignKey>,
    pub policies: Vec<Policy>,
}

impl Catalog {
    pub fn table(&self, oid: pg_sys::Oid) -> Option<&Table> {
        self.tables.get(&u32::from(oid))
    }

    /// Tables in name order (the order every report uses).
    pub fn by_name(&self) -> Vec<&Table> {
        let mut v: Vec<&Table> = self.tables.values().collect();
        v.sort_by(|a, b| a.qname.cmp(&b.qname));
        v
    }

    /// The table's ancestors, nearest first.
    pub fn ancestors(&self, oid: pg_sys::Oid) -> Vec<pg_sys::Oid> {
        let mut out = Vec::new();
        let mut cur = self.table(oid).and_then(|t| t.parent);
        while let Some(p) = cur {
            if out.contains(&p) {
                break;
            }
            out.push(p);
            cur = self.table(p).and_then(|t| t.parent);
        }
        out
    }

    /// The table and its ancestors have these policies (a policy on a
    /// partitioned table covers its partitions).
    pub fn policies_covering(&self, oid: pg_sys::Oid) -> Vec<&Policy> {
        let mut oids = vec![oid];
        oids.extend(self.ancestors(oid));
        self.policies
            .iter()
            .filter(|p| oids.contains(&p.table))
            .collect()
    }

    /// Whether the table, an ancestor or a descendant has a policy.
    pub fn has_policy_around(&self, oid: pg_sys::Oid) -> bool {
        !self.policies_covering(oid).is_empty()
            || self
                .policies
                .iter()
                .any(|p| self.ancestors(p.table).contains(&oid))
    }
}

/// Read the catalog (see the module documentation).
pub fn load() -> PResult<Catalog> {
    let mut tables: BTreeMap<u32, Table> = BTreeMap::new();
    crate::sql::rows(
        "SELECT c.oid, pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
                       OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname),
                (SELECT i.inhparent FROM pg_catalog.pg_inherits i
                  WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid AND c.relispartition)
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog.\"char\"[])
            AND c.relpersistence OPERATOR(pg_catalog.<>) 't'
            AND n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema,pg_toast,privacy}'::pg_catalog.name[])
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                             WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                               AND d.objid OPERATOR(pg_catalog.=) c.oid
                               AND d.deptype OPERATOR(pg_catalog.=) 'e')",
        &[],
        |r| {
            Ok(Table {
                oid: r.get(1)?.unwrap_or(pg_sys::Oid::INVALID),
                qname: r.get(2)?.unwrap_or_default(),
                parent: r.get::<pg_sys::Oid>(3)?,
                columns: Vec::new(),
            })
        },
    )?
    .into_iter()
    .for_each(|t| {
        tables.insert(u32::from(t.oid), t);
    });
    let oids: Vec<pg_sys::Oid> = tables.values().map(|t| t.oid).collect();

    let labels: HashMap<(u32, i16), Label> = crate::sql::rows(
        "SELECT l.objoid, l.objsubid, l.label
           FROM pg_catalog.pg_seclabel l
          WHERE l.provider OPERATOR(pg_catalog.=) 'privacy'
            AND l.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
            AND l.objsubid OPERATOR(pg_catalog.>) 0",
        &[],
        |r| {
            Ok((
                r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::Oid::INVALID),
                r.get::<i32>(2)?.unwrap_or(0),
                r.get::<String>(3)?.unwrap_or_default(),
            ))
        },
    )?
    .into_iter()
    .filter_map(|(oid, sub, text)| {
        labels::parse(&text)
            .ok()
            .map(|l| ((u32::from(oid), sub as i16), l))
    })
    .collect();

    let indexed: HashSet<(u32, i16)> = crate::sql::rows(
        "SELECT x.indrelid, x.indkey[0]
           FROM pg_catalog.pg_index x
          WHERE x.indrelid OPERATOR(pg_catalog.=) ANY ($1)
            AND x.indisvalid AND x.indpred IS NULL",
        &[oids.clone().into()],
        |r| {
            Ok((
                r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::Oid::INVALID),
                r.get::<i16>(2)?.unwrap_or(0),
            ))
        },
    )?
    .into_iter()
    .map(|(o, n)| (u32::from(o), n))
    .collect();

    for (oid, attnum, name, type_name, base_type) in crate::sql::rows(
        "SELECT a.attrelid, a.attnum, a.attname::pg_catalog.text,
                pg_catalog.format_type(a.atttypid, a.atttypmod), t.typname::pg_catalog.text
           FROM pg_catalog.pg_attribute a
           JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
          WHERE a.attrelid OPERATOR(pg_catalog.=) ANY ($1)
            AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
          ORDER BY a.attrelid, a.attnum",
        &[oids.clone().into()],
        |r| {
            Ok((
                r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::Oid::INVALID),
                r.get::<i16>(2)?.unwrap_or(0),
                r.get::<String>(3)?.unwrap_or_default(),
                r.get::<String>(4)?.unwrap_or_default(),
                r.get::<String>(5)?.unwrap_or_default(),
            ))
        },
    )? {
        let key = (u32::from(oid), attnum);
        if let Some(t) = tables.get_mut(&key.0) {
            t.columns.push(Column {
                attnum,
                name,
                type_name,
                base_type,
                label: labels.get(&key).cloned(),
                indexed: indexed.contains(&key),
            });
        }
    }

    let foreign_keys = crate::sql::rows(
        "SELECT k.conrelid, k.confrelid, k.conkey, k.confkey
           FROM pg_catalog.pg_constraint k
          WHERE k.contype OPERATOR(pg_catalog.=) 'f'
            AND k.conrelid OPERATOR(pg_catalog.=) ANY ($1)
            AND k.conparentid OPERATOR(pg_catalog.=) 0",
        &[oids.into()],
        |r| {
            Ok(ForeignKey {
                child: r.get(1)?.unwrap_or(pg_sys::Oid::INVALID),
                parent: r.get(2)?.unwrap_or(pg_sys::Oid::INVALID),
                child_cols: r.get::<Vec<i16>>(3)?.unwrap_or_default(),
                parent_cols: r.get::<Vec<i16>>(4)?.unwrap_or_default(),
            })
        },
    )?;

    let policies = load_policies()?;

    Ok(Catalog {
        tables,
        foreign_keys,
        policies,
    })
}

/// Every retention policy, by name (read as the extension owner).
pub fn load_policies() -> PResult<Vec<Policy>> {
    as_extension_owner(|| {
        crate::sql::rows(
            "SELECT p.name, p.table_name::pg_catalog.oid, p.anchor::pg_catalog.text,
                    p.keep_for::pg_catalog.text, p.action, p.row_filter, p.purpose, p.enabled,
                    p.schedule_interval::pg_catalog.text,
                    pg_catalog.to_char(p.last_run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    p.last_status,
                    (SELECT pg_catalog.to_char(pg_catalog.max(r.finished_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                       FROM privacy.retention_run_log r
                      WHERE r.policy OPERATOR(pg_catalog.=) p.name
                        AND r.status OPERATOR(pg_catalog.=) 'succeeded'),
                    p.enabled AND (COALESCE(p.last_run_at, p.created_at)
                        OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-)
                           (p.schedule_interval OPERATOR(pg_catalog.*) 2::pg_catalog.float8)))
               FROM privacy.retention_policy_defs p
              ORDER BY p.name",
            &[],
            |r| {
                Ok(Policy {
                    name: r.get(1)?.unwrap_or_default(),
                    table: r.get(2)?.unwrap_or(pg_sys::Oid::INVALID),
                    anchor: r.get(3)?.unwrap_or_default(),
                    keep_for: r.get(4)?.unwrap_or_default(),
                    action: r.get(5)?.unwrap_or_default(),
                    row_filter: r.get(6)?,
                    purpose: r.get(7)?,
                    enabled: r.get(8)?.unwrap_or(false),
                    schedule_interval: r.get(9)?.unwrap_or_default(),
                    last_run_at: r.get(10)?,
                    last_status: r.get(11)?,
                    last_success: r.get(12)?,
                    overdue: r.get(13)?.unwrap_or(false),
                })
            },
        )
    })
}
