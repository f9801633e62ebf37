//! Typed catalog reads: the questions pg_privacy asks PostgreSQL's catalogs
//! (and its own tables) about relations, columns, roles, functions and
//! foreign keys, answered as structs decoded by column name ([`FromRow`]),
//! never as positional tuples. Every query is schema-qualified and runs
//! under the caller's pinned [`crate::security::Scope`]; the long ones live
//! in `sql/catalog/*.sql`.
//!
//! Tags (`pg_seclabel`) are read by `labels::tags`, the extension's own
//! tables by the module that owns each (`retention::policy`, `keys`…).

use crate::error::{PResult, PrivacyError};
use crate::security::as_extension_owner;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{SpiError, SpiHeapTupleData};

/// A row of a catalog query, decoded by column name.
pub trait FromRow: Sized {
    fn from_row(r: &SpiHeapTupleData<'_>) -> Result<Self, SpiError>;
}

/// Column `name` of row `r`, `default` when NULL.
fn col<T: FromDatum + IntoDatum>(
    r: &SpiHeapTupleData<'_>,
    name: &str,
    default: T,
) -> Result<T, SpiError> {
    Ok(r.get_by_name::<T, _>(name)?.unwrap_or(default))
}

/// The rows of `query` as `T`s.
pub fn all<T: FromRow>(query: &str, args: &[DatumWithOid]) -> PResult<Vec<T>> {
    crate::sql::rows(query, args, |r| T::from_row(r))
}

/// The first row of `query` as a `T`, `None` when there is none.
pub fn one<T: FromRow>(query: &str, args: &[DatumWithOid]) -> PResult<Option<T>> {
    Spi::connect(|c| {
        let rows = c.select(query, Some(1), args)?;
        match rows.into_iter().next() {
            Some(r) => Ok(Some(T::from_row(&r)?)),
            None => Ok(None),
        }
    })
}

/// A relation (`pg_class`).
#[derive(Clone, Debug)]
pub struct Relation {
    /// `relname`, unquoted
    pub name: String,
    /// `relkind`: `r` table, `p` partitioned table, …
    pub kind: String,
    /// `relpersistence`: `p` permanent, `u` unlogged, `t` temporary
    pub persistence: String,
    pub owner: pg_sys::Oid,
    /// the planner's statistics: -1 tuples when never analyzed
    pub pages: i32,
    pub tuples: f32,
}

impl FromRow for Relation {
    fn from_row(r: &SpiHeapTupleData<'_>) -> Result<Self, SpiError> {
        Ok(Relation {
            name: col(r, "relname", String::new())?,
            kind: col(r, "relkind", String::new())?,
            persistence: col(r, "relpersistence", String::new())?,
            owner: col(r, "relowner", pg_sys::Oid::INVALID)?,
            pages: col(r, "relpages", 0)?,
            tuples: col(r, "reltuples", -1.0)?,
        })
    }
}

/// Relation `relid`, `None` when it does not exist.
pub fn relation(relid: pg_sys::Oid) -> PResult<Option<Relation>> {
    one(
        "SELECT relname::text AS relname, relkind::text AS relkind,
                relpersistence::text AS relpersistence, relowner, relpages, reltuples
           FROM pg_catalog.pg_class WHERE oid = $1",
        &[relid.into()],
    )
}

/// Relation `relid`, 42P01 when it does not exist.
pub fn require_relation(relid: pg_sys::Oid) -> PResult<Relation> {
    relation(relid)?.ok_or_else(|| {
        PrivacyError::undefined_table(format!(
            "relation with oid {} does not exist",
            u32::from(relid)
        ))
    })
}

/// The blocks relation `relid` has now (`pg_relation_size` / block size).
pub fn relation_blocks(relid: pg_sys::Oid) -> PResult<i64> {
    Ok(crate::sql::opt::<i64>(
        "SELECT pg_catalog.pg_relation_size($1) / pg_catalog.current_setting('block_size')::pg_catalog.int8",
        &[relid.into()],
    )?
    .unwrap_or(0))
}

/// A column of a table (`pg_attribute`), not dropped.
#[derive(Clone, Debug)]
pub struct Column {
    pub attnum: i16,
    pub name: String,
    pub type_oid: pg_sys::Oid,
    pub typmod: i32,
    /// `format_type(type, typmod)`, as the SQL is run (pinned path)
    pub type_name: String,
    pub not_null: bool,
}

impl FromRow for Column {
    fn from_row(r: &SpiHeapTupleData<'_>) -> Result<Self, SpiError> {
        Ok(Column {
            attnum: col(r, "attnum", 0)?,
            name: col(r, "attname", String::new())?,
            type_oid: col(r, "atttypid", pg_sys::Oid::INVALID)?,
            typmod: col(r, "atttypmod", -1)?,
            type_name: col(r, "type_name", String::new())?,
            not_null: col(r, "attnotnull", false)?,
        })
    }
}

const COLUMN: &str = "SELECT attnum, attname::text AS attname, atttypid, atttypmod,
                             pg_catalog.format_type(atttypid, atttypmod) AS type_name, attnotnull
                        FROM pg_catalog.pg_attribute
                       WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped";

/// Column `name` of table `relid`.
pub fn column_named(relid: pg_sys::Oid, name: &str) -> PResult<Option<Column>> {
    one(
        &format!("{COLUMN} AND attname = $2"),
        &[relid.into(), name.into()],
    )
}

/// Column number `attnum` of table `relid`.
pub fn column_numbered(relid: pg_sys::Oid, attnum: i16) -> PResult<Option<Column>> {
    one(
        &format!("{COLUMN} AND attnum = $2"),
        &[relid.into(), attnum.into()],
    )
}

/// Whether a valid, non-partial btree index of `relid` starts with column
/// `attnum`.
pub fn btree_index_leads_with(relid: pg_sys::Oid, attnum: i16) -> PResult<bool> {
    Ok(crate::sql::opt::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                          JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
                          JOIN pg_catalog.pg_am am ON am.oid = c.relam
                         WHERE i.indrelid = $1 AND i.indkey[0] = $2 AND i.indisvalid
                           AND i.indpred IS NULL AND am.amname = 'btree')",
        &[relid.into(), attnum.into()],
    )?
    .unwrap_or(false))
}

/// The quoted primary key columns of `relid`, comma-separated, in key
/// order (`None`: no primary key).
pub fn primary_key(relid: pg_sys::Oid) -> PResult<Option<String>> {
    crate::sql::opt::<String>(
        "SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY k.i)
           FROM pg_catalog.pg_index x
          CROSS JOIN LATERAL pg_catalog.unnest(x.indkey) WITH ORDINALITY k(n, i)
           JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n
          WHERE x.indrelid = $1 AND x.indisprimary",
        &[relid.into()],
    )
}

/// Whether role `oid` exists.
pub fn role_exists(oid: pg_sys::Oid) -> PResult<bool> {
    Ok(crate::sql::opt::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE oid = $1)",
        &[oid.into()],
    )?
    .unwrap_or(false))
}

/// What a retention batch checks of its table: its owner, and whether
/// `role` holds SELECT and `privilege` on it (one query).
pub struct TableAccess {
    pub owner: pg_sys::Oid,
    pub granted: bool,
}

impl FromRow for TableAccess {
    fn from_row(r: &SpiHeapTupleData<'_>) -> Result<Self, SpiError> {
        Ok(TableAccess {
            owner: col(r, "relowner", pg_sys::Oid::INVALID)?,
            granted: col(r, "granted", false)?,
        })
    }
}

/// [`TableAccess`] of `relid` for `role`, `None` when the table is gone.
pub fn table_access(
    relid: pg_sys::Oid,
    role: pg_sys::Oid,
    privilege: &str,
) -> PResult<Option<TableAccess>> {
    one(
        "SELECT c.relowner,
                pg_catalog.has_table_privilege($2, c.oid, 'SELECT')
                AND pg_catalog.has_table_privilege($2, c.oid, $3) AS granted
           FROM pg_catalog.pg_class c WHERE c.oid = $1",
        &[relid.into(), role.into(), privilege.into()],
    )
}

/// Whether a function `schema.name` taking at least one argument exists.
pub fn function_exists(schema: &str, name: &str) -> PResult<bool> {
    Ok(crate::sql::opt::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                          JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                         WHERE n.nspname = $1 AND p.proname = $2 AND p.pronargs >= 1)",
        &[schema.into(), name.into()],
    )?
    .unwrap_or(false))
}

/// Whether `role` may execute some function `schema.name` taking at least
/// one argument (`None`: there is none).
pub fn role_may_execute_named(
    role: pg_sys::Oid,
    schema: &str,
    name: &str,
) -> PResult<Option<bool>> {
    crate::sql::opt::<bool>(
        "SELECT pg_catalog.bool_or(pg_catalog.has_function_privilege($3, p.oid, 'EXECUTE'))
           FROM pg_catalog.pg_proc p
           JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
          WHERE n.nspname = $1 AND p.proname = $2 AND p.pronargs >= 1",
        &[schema.into(), name.into(), role.into()],
    )
}

/// A foreign key referencing one of the subject tables (erasure's graph).
#[derive(Clone, Debug)]
pub struct ForeignKey {
    pub name: String,
    pub child: pg_sys::Oid,
    pub parent: pg_sys::Oid,
    /// `confdeltype`: a no action, r restrict, c cascade, n set null, d set default.
    pub on_delete: String,
    /// quoted column names, in key order
    pub child_cols: Vec<String>,
    pub parent_cols: Vec<String>,
    /// `OPERATOR(schema.op)`, the key's equality operators (parent = child)
    pub ops: Vec<String>,
    /// quoted `schema.table` of the child
    pub child_qname: String,
    pub child_owner: pg_sys::Oid,
}

impl FromRow for ForeignKey {
    fn from_row(r: &SpiHeapTupleData<'_>) -> Result<Self, SpiError> {
        Ok(ForeignKey {
            name: col(r, "name", String::new())?,
            child: col(r, "child", pg_sys::Oid::INVALID)?,
            parent: col(r, "parent", pg_sys::Oid::INVALID)?,
            on_delete: col(r, "on_delete", String::new())?,
            child_cols: col(r, "child_cols", Vec::new())?,
            parent_cols: col(r, "parent_cols", Vec::new())?,
            ops: col(r, "ops", Vec::new())?,
            child_qname: col(r, "child_qname", String::new())?,
            child_owner: col(r, "child_owner", pg_sys::Oid::INVALID)?,
        })
    }
}

/// Foreign keys of permanent tables referencing one of `parents`, by child
/// then name.
pub fn foreign_keys_to(parents: &[pg_sys::Oid]) -> PResult<Vec<ForeignKey>> {
    all(
        concat!(
            include_str!("../../sql/catalog/foreign_keys.sql"),
            "   AND c.confrelid = ANY ($1::pg_catalog.oid[]) AND cc.relpersistence <> 't'
             ORDER BY c.conrelid, c.conname"
        ),
        &[parents.to_vec().into()],
    )
}

/// Foreign keys of the tables `children` to permanent tables outside
/// them (partition clones left out), by parent, child, name: the subject
/// tables' links to the rows they reference.
pub fn foreign_keys_from(children: &[pg_sys::Oid]) -> PResult<Vec<ForeignKey>> {
    all(
        concat!(
            include_str!("../../sql/catalog/foreign_keys.sql"),
            "   AND c.conrelid = ANY ($1::pg_catalog.oid[])
               AND NOT c.confrelid = ANY ($1::pg_catalog.oid[])
               AND pc.relpersistence <> 't'
             ORDER BY c.confrelid, c.conrelid, c.conname"
        ),
        &[children.to_vec().into()],
    )
}

/// A foreign key one column takes part in, and the table at its other end
/// (as `regclass` prints it), for refusals and hints.
#[derive(Clone, Debug)]
pub struct ColumnForeignKey {
    pub name: String,
    pub other: String,
}

impl FromRow for ColumnForeignKey {
    fn from_row(r: &SpiHeapTupleData<'_>) -> Result<Self, SpiError> {
        Ok(ColumnForeignKey {
            name: col(r, "name", String::new())?,
            other: col(r, "other", String::new())?,
        })
    }
}

/// The first (by name) foreign key of `relid` whose columns include
/// `attnum`, with the table it references.
pub fn foreign_key_of_column(relid: pg_sys::Oid, attnum: i16) -> PResult<Option<ColumnForeignKey>> {
    one(
        "SELECT c.conname::pg_catalog.text AS name,
                CAST(CAST(c.confrelid AS pg_catalog.regclass) AS pg_catalog.text) AS other
           FROM pg_catalog.pg_constraint c
          WHERE c.contype = 'f' AND c.conrelid = $1 AND $2 = ANY (c.conkey)
          ORDER BY c.conname LIMIT 1",
        &[relid.into(), attnum.into()],
    )
}

/// The first (by name) foreign key of another table referencing column
/// `attnum` of `relid` that neither follows nor releases an update (`ON
/// UPDATE NO ACTION` / `RESTRICT`), with the referencing table.
pub fn update_blocking_key_to_column(
    relid: pg_sys::Oid,
    attnum: i16,
) -> PResult<Option<ColumnForeignKey>> {
    one(
        "SELECT c.conname::pg_catalog.text AS name,
                CAST(CAST(c.conrelid AS pg_catalog.regclass) AS pg_catalog.text) AS other
           FROM pg_catalog.pg_constraint c
          WHERE c.contype = 'f' AND c.confrelid = $1 AND $2 = ANY (c.confkey)
            AND c.confupdtype IN ('a', 'r') AND c.conparentid = 0
          ORDER BY c.conname LIMIT 1",
        &[relid.into(), attnum.into()],
    )
}

/// The values of `privacy.worker_enabled` set for the current database
/// itself (`ALTER DATABASE … SET`, also `ALTER ROLE ALL IN DATABASE`), as
/// written in `pg_db_role_setting`. A running worker does not see a
/// database setting made after it started: it reads them here.
pub fn database_worker_enabled_settings() -> PResult<Vec<String>> {
    crate::sql::rows(
        "SELECT pg_catalog.substr(c, pg_catalog.strpos(c, '=') + 1)
           FROM pg_catalog.pg_db_role_setting s, pg_catalog.unnest(s.setconfig) AS c
          WHERE s.setdatabase = (SELECT d.oid FROM pg_catalog.pg_database d
                                  WHERE d.datname = pg_catalog.current_database())
            AND s.setrole = 0
            AND pg_catalog.lower(pg_catalog.split_part(c, '=', 1)) = 'privacy.worker_enabled'",
        &[],
        |r| Ok(r.get::<String>(1)?.unwrap_or_default()),
    )
}

/// What export and erasure need to know about a table with a SUBJECT
/// column; privileges and row security are the **caller's**.
#[derive(Clone, Debug)]
pub struct SubjectTableFacts {
    pub oid: pg_sys::Oid,
    /// quoted `schema.table`
    pub qname: String,
    /// `schema.table` as written (the export's key)
    pub key: String,
    pub owner: pg_sys::Oid,
    /// a valid, non-partial index leads with the subject column
    pub indexed: bool,
    pub rls_active: bool,
    pub can_select: bool,
    pub can_delete: bool,
    pub can_update: bool,
}

impl FromRow for SubjectTableFacts {
    fn from_row(r: &SpiHeapTupleData<'_>) -> Result<Self, SpiError> {
        Ok(SubjectTableFacts {
            oid: col(r, "oid", pg_sys::Oid::INVALID)?,
            qname: col(r, "qname", String::new())?,
            key: col(r, "key", String::new())?,
            owner: col(r, "owner", pg_sys::Oid::INVALID)?,
            indexed: col(r, "indexed", false)?,
            rls_active: col(r, "rls_active", false)?,
            can_select: col(r, "can_select", false)?,
            can_delete: col(r, "can_delete", false)?,
            can_update: col(r, "can_update", false)?,
        })
    }
}

/// [`SubjectTableFacts`] of the permanent tables among `relids`, whose
/// subject columns are `attnums` (one query whatever their number).
pub fn subject_table_facts(
    relids: &[pg_sys::Oid],
    attnums: &[i16],
) -> PResult<Vec<SubjectTableFacts>> {
    all(
        include_str!("../../sql/catalog/subject_table_facts.sql"),
        &[relids.to_vec().into(), attnums.to_vec().into()],
    )
}

/// The purposes whose legal basis is `legal_obligation`.
pub fn legal_obligation_purposes() -> PResult<Vec<String>> {
    crate::sql::rows(
        "SELECT name FROM privacy.purposes WHERE legal_basis = 'legal_obligation'",
        &[],
        |r| Ok(r.get::<String>(1)?.unwrap_or_default()),
    )
}

/// Whether `role` may execute function `signature` (`None`: no such
/// function).
pub fn role_may_execute(role: pg_sys::Oid, signature: &str) -> PResult<Option<bool>> {
    crate::security::Scope::pinned().run(|| {
        crate::sql::opt::<bool>(
            "SELECT CASE WHEN pg_catalog.to_regprocedure($2) IS NULL THEN NULL
                         ELSE pg_catalog.has_function_privilege($1, pg_catalog.to_regprocedure($2), 'EXECUTE') END",
            &[role.into(), signature.into()],
        )
    })
}

/// Names of the retention policies that name `purpose` (for
/// `drop_purpose`).
pub fn policies_using_purpose(purpose: &str) -> PResult<Vec<String>> {
    as_extension_owner(|| {
        crate::sql::rows(
            "SELECT name FROM privacy.retention_policy_defs WHERE purpose = $1 ORDER BY name",
            &[purpose.into()],
            |r| Ok(r.get::<String>(1)?.unwrap_or_default()),
        )
    })
}

/// The library's version: the catalog it was built for.
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The version of pg_privacy installed in this database
/// (`pg_extension.extversion`), `None` when it is not installed.
pub fn installed_version() -> PResult<Option<String>> {
    crate::sql::opt::<String>(
        "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_privacy'",
        &[],
    )
}

/// 55000 while the installed catalog is not the library's version (the
/// package was upgraded, `ALTER EXTENSION pg_privacy UPDATE` not run yet):
/// the library's SQL would meet tables, columns and functions it does not
/// know. Not checked inside `CREATE/ALTER EXTENSION` (the update script
/// itself runs then, with `extversion` already the target's).
pub fn check_version() -> PResult<()> {
    if unsafe { pg_sys::creating_extension } {
        return Ok(());
    }
    match installed_version()? {
        Some(v) if v == LIBRARY_VERSION => Ok(()),
        Some(v) => Err(version_mismatch(&v)),
        None => Err(crate::error::PrivacyError::object_state(
            "extension \"pg_privacy\" is not installed in this database",
        )
        .with_hint("Run CREATE EXTENSION pg_privacy.")),
    }
}

/// The error of a catalog at version `installed` under this library.
pub fn version_mismatch(installed: &str) -> crate::error::PrivacyError {
    crate::error::PrivacyError::object_state(format!(
        "pg_privacy {installed} is installed in this database but the loaded library is version {LIBRARY_VERSION}"
    ))
    .with_hint("Run ALTER EXTENSION pg_privacy UPDATE.")
}
