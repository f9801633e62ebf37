//! Privacy by default (GDPR Art. 25): `privacy.require_tags = off | warn |
//! error`. With `warn` or `error`, a new column whose name or type looks
//! personal (the same test as `privacy.lint()`, see `reports::heuristics`)
//! must be tagged — with a purpose, or `NOT PERSONAL` for a false positive
//! — so personal data cannot arrive untagged.
//!
//! The event trigger `privacy_require_tags` (`ddl_command_end` of `CREATE
//! TABLE`, `CREATE TABLE AS`, `SELECT INTO`, `ALTER TABLE`) calls
//! [`privacy_require_tags`]. A new table has all its columns checked; an
//! `ALTER TABLE` the columns it adds (`ADD COLUMN`) or renames (`RENAME
//! COLUMN`), read from the statement's parse tree. Partitions (tagged
//! through their partitioned table) and temporary tables are not checked.
//!
//! - `warn`: a `WARNING` per such column, with the `SECURITY LABEL` to run.
//! - `error`: a `NOTICE` at once, and the transaction **fails at commit**
//!   (`42611`) while one of those columns is still untagged. A table cannot
//!   be tagged before it exists, so the check waits for the end of the
//!   transaction: `BEGIN; CREATE TABLE …; SECURITY LABEL …; COMMIT;`
//!   passes, a lone `CREATE TABLE` with an untagged `email` column does
//!   not. The setting in force at commit decides (`off` by then: nothing).
//!
//! The setting is `SUSET`: a role that is not a superuser cannot turn it
//! off for itself. Nothing is checked while an extension script runs, in
//! binary upgrade, or while a superuser restores a dump (`check_function_bodies
//! = off`, as `pg_dump` output sets it: the labels come after the tables).

use crate::error::{PResult, PrivacyError};
use crate::gucs::{self, RequireTags};
use crate::reports::heuristics::{self, Kind};
use crate::security::Scope;
use pgrx::prelude::*;
use pgrx::{PgList, PgLogLevel, PgSqlErrorCode};
use std::cell::{Cell, RefCell};
use std::ffi::CString;

/// A column to check again at commit.
struct Pending {
    relid: pg_sys::Oid,
    column: String,
    /// `schema.table.column`, for the message
    shown: String,
    kind: Kind,
}

thread_local! {
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_privacy_require_tags() -> &'static pg_sys::Pg_finfo_record {
    const V1_API: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1_API
}

/// `privacy._require_tags()`, the event trigger function.
///
/// # Safety
/// Called by PostgreSQL's function manager as a version-1 C function.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn privacy_require_tags(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let mode = gucs::require_tags();
    if mode == RequireTags::Off
        || pg_sys::creating_extension
        || pg_sys::IsBinaryUpgrade
        || (!pg_sys::check_function_bodies && pg_sys::superuser())
    {
        return pg_sys::Datum::from(0);
    }
    let context = (*fcinfo).context;
    if context.is_null() || !pgrx::is_a(context, pg_sys::NodeTag::T_EventTriggerData) {
        PrivacyError::new(
            PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
            "privacy._require_tags() must be called as an event trigger",
        )
        .raise();
    }
    let data = &*(context as *mut pg_sys::EventTriggerData);
    let columns = altered_columns(data.parsetree);
    let flagged = Scope::pinned().run(|| flagged_columns(columns.as_deref()));
    let flagged = match flagged {
        Ok(f) => f,
        Err(e) => e.raise(),
    };
    for p in flagged {
        match mode {
            RequireTags::Warn => {
                let (msg, hint) = message(&p);
                report(
                    PgLogLevel::WARNING,
                    PgSqlErrorCode::ERRCODE_WARNING,
                    msg,
                    hint,
                );
            }
            RequireTags::Error => {
                let (_, hint) = message(&p);
                report(
                    PgLogLevel::NOTICE,
                    PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
                    format!(
                        "column {} looks like it holds {}: tag it before the transaction commits",
                        p.shown,
                        p.kind.describe()
                    ),
                    hint,
                );
                register_callback();
                PENDING.with(|q| q.borrow_mut().push(p));
            }
            RequireTags::Off => {}
        }
    }
    pg_sys::Datum::from(0)
}

/// The columns an `ALTER TABLE` adds or renames; `None` for a statement
/// that creates a table (every column is new).
unsafe fn altered_columns(tree: *mut pg_sys::Node) -> Option<Vec<String>> {
    if tree.is_null() {
        return None;
    }
    let name = |p: *mut std::ffi::c_char| -> Option<String> {
        (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    if pgrx::is_a(tree, pg_sys::NodeTag::T_AlterTableStmt) {
        let stmt = &*(tree as *mut pg_sys::AlterTableStmt);
        let cmds = PgList::<pg_sys::AlterTableCmd>::from_pg(stmt.cmds);
        let mut out = Vec::new();
        for cmd in cmds.iter_ptr() {
            let cmd = &*cmd;
            if cmd.subtype == pg_sys::AlterTableType::AT_AddColumn
                && !cmd.def.is_null()
                && pgrx::is_a(cmd.def, pg_sys::NodeTag::T_ColumnDef)
            {
                let def = &*(cmd.def as *mut pg_sys::ColumnDef);
                out.extend(name(def.colname));
            }
        }
        return Some(out);
    }
    if pgrx::is_a(tree, pg_sys::NodeTag::T_RenameStmt) {
        let stmt = &*(tree as *mut pg_sys::RenameStmt);
        if stmt.renameType == pg_sys::ObjectType::OBJECT_COLUMN {
            return Some(name(stmt.newname).into_iter().collect());
        }
        return Some(Vec::new());
    }
    if pgrx::is_a(tree, pg_sys::NodeTag::T_CreateStmt)
        || pgrx::is_a(tree, pg_sys::NodeTag::T_CreateTableAsStmt)
        || pgrx::is_a(tree, pg_sys::NodeTag::T_SelectStmt)
    {
        return None;
    }
    // other ALTER TABLE forms (SET SCHEMA, OWNER TO…) add no column
    Some(Vec::new())
}

/// The untagged columns that look personal among the tables the command
/// created or altered (`only`: the names an ALTER TABLE added or renamed).
fn flagged_columns(only: Option<&[String]>) -> PResult<Vec<Pending>> {
    if only.is_some_and(|o| o.is_empty()) {
        return Ok(Vec::new());
    }
    let rows = crate::sql::rows(
        "SELECT c.oid, pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
                       OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname),
                a.attname::pg_catalog.text, t.typname::pg_catalog.text
           -- a column rename is reported with the column's number: any objsubid
           FROM (SELECT DISTINCT d.objid FROM pg_catalog.pg_event_trigger_ddl_commands() d
                  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass) d
           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
           JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid
           JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
          WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::pg_catalog.\"char\"[])
            AND c.relpersistence OPERATOR(pg_catalog.<>) 't' AND NOT c.relispartition
            AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_seclabel l
                             WHERE l.provider OPERATOR(pg_catalog.=) 'privacy'
                               AND l.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                               AND l.objoid OPERATOR(pg_catalog.=) c.oid
                               AND l.objsubid OPERATOR(pg_catalog.=) a.attnum)
          ORDER BY c.oid, a.attnum",
        &[],
        |r| {
            Ok((
                r.get::<pg_sys::Oid>(1)?.unwrap_or(pg_sys::Oid::INVALID),
                r.get::<String>(2)?.unwrap_or_default(),
                r.get::<String>(3)?.unwrap_or_default(),
                r.get::<String>(4)?.unwrap_or_default(),
            ))
        },
    )?;
    Ok(rows
        .into_iter()
        .filter(|(_, _, col, _)| only.is_none_or(|o| o.contains(col)))
        .filter_map(|(relid, table, col, typ)| {
            heuristics::personal_column(&col, &typ).map(|kind| Pending {
                relid,
                shown: format!("{table}.{}", spi::quote_identifier(&col)),
                column: col,
                kind,
            })
        })
        .collect())
}

fn message(p: &Pending) -> (String, String) {
    (
        format!(
            "column {} looks like it holds {} but has no privacy tag",
            p.shown,
            p.kind.describe()
        ),
        format!(
            "SECURITY LABEL FOR privacy ON COLUMN {} IS 'PURPOSE … CATEGORY {}'; or, when it holds no personal data, IS 'NOT PERSONAL'.",
            p.shown,
            p.kind.category()
        ),
    )
}

/// A WARNING or NOTICE with a hint.
fn report(level: PgLogLevel, code: PgSqlErrorCode, message: String, hint: String) {
    pgrx::pg_sys::panic::ErrorReport::new(code, message, "pg_privacy")
        .set_hint(hint)
        .report(level);
}

fn register_callback() {
    if !REGISTERED.with(|r| r.replace(true)) {
        unsafe { pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut()) };
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn xact_callback(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_PRE_COMMIT | XACT_EVENT_PRE_PREPARE => {
            let pending = PENDING.with(|q| std::mem::take(&mut *q.borrow_mut()));
            if !pending.is_empty() {
                check_at_commit(pending);
            }
        }
        XACT_EVENT_COMMIT | XACT_EVENT_ABORT | XACT_EVENT_PREPARE => {
            PENDING.with(|q| q.borrow_mut().clear());
        }
        _ => {}
    }
}

/// The columns still there and still untagged fail the commit (catalog
/// caches only: no SQL runs at this point of the commit).
unsafe fn check_at_commit(pending: Vec<Pending>) {
    let mode = gucs::require_tags();
    if mode == RequireTags::Off {
        return;
    }
    let mut untagged: Vec<Pending> = Vec::new();
    for p in pending {
        let Ok(col) = CString::new(p.column.as_str()) else {
            continue;
        };
        let attnum = pg_sys::get_attnum(p.relid, col.as_ptr());
        if attnum == pg_sys::InvalidAttrNumber as i16 {
            continue; // dropped, renamed, or rolled back with a savepoint
        }
        let address = pg_sys::ObjectAddress {
            classId: pg_sys::RelationRelationId,
            objectId: p.relid,
            objectSubId: attnum as i32,
        };
        let label = pg_sys::GetSecurityLabel(&address, crate::labels::provider::PROVIDER.as_ptr());
        if label.is_null() && !untagged.iter().any(|u| u.shown == p.shown) {
            untagged.push(p);
        }
    }
    if untagged.is_empty() {
        return;
    }
    if mode == RequireTags::Warn {
        for p in &untagged {
            let (msg, hint) = message(p);
            report(
                PgLogLevel::WARNING,
                PgSqlErrorCode::ERRCODE_WARNING,
                msg,
                hint,
            );
        }
        return;
    }
    let (first_msg, hint) = message(&untagged[0]);
    let msg = if untagged.len() == 1 {
        first_msg
    } else {
        format!(
            "{} new columns look personal but have no privacy tag: {}",
            untagged.len(),
            untagged
                .iter()
                .map(|p| p.shown.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    PrivacyError::new(PgSqlErrorCode::ERRCODE_INVALID_COLUMN_DEFINITION, msg)
        .with_detail("privacy.require_tags is error: a new column whose name or type looks personal must be tagged before its transaction commits.")
        .with_hint(format!("In the same transaction: {hint}"))
        .raise();
}
