//! Row filters: the boolean SQL expressions of retention policies
//! (`row_filter`) and legal holds, checked by PostgreSQL's own parser and
//! analyzer, never by string heuristics.
//!
//! A filter is accepted when
//! 1. PostgreSQL's grammar reads it, on its own, as exactly one expression
//!    (`raw_parser` in `RAW_PARSE_PLPGSQL_EXPR` mode: one statement, one
//!    target, no alias, no FROM/WHERE/GROUP/ORDER/LIMIT/locking clause). This
//!    is what makes splicing it as `(<filter>)` into a larger statement safe:
//!    its parentheses balance and it cannot close ours (`true) OR (true` is
//!    refused), and a comment cannot swallow the closing parenthesis because
//!    the filter is always spliced between newlines;
//! 2. `SELECT 1 FROM <table> WHERE (<filter>)` analyzes (`parse_analyze`) to
//!    a plain query over that one table only: no sublinks (subqueries,
//!    EXISTS, IN (SELECT …)), no other relation, no aggregate, window or
//!    set-returning function, no parameter, a boolean result;
//! 3. it calls no volatile function (`contain_volatile_functions`: no
//!    `pg_sleep`, `random()`, `nextval()`, …);
//! 4. for hold filters, which run with the privileges of whichever policy
//!    owner purges the table, only built-in functions and operators
//!    (oid < `FirstNormalObjectId`): a hold cannot smuggle a user function
//!    into another role's purge.
//!
//! Filters are resolved with `search_path = pg_catalog, pg_temp`, exactly as
//! they run (as the policy owner, through `security::as_role`): a user's own
//! functions and types must be schema-qualified. Every failure is SQLSTATE
//! 22023 with PostgreSQL's own message in the text.

use crate::error::{PResult, PrivacyError};
use pgrx::prelude::*;
use pgrx::PgList;
use std::ffi::CString;

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 8192;

/// Which kind of filter is checked (it changes messages and the function rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterKind {
    /// A retention policy's `row_filter`: runs as the policy's own owner.
    Policy,
    /// A legal hold's filter: runs inside other roles' purges.
    Hold,
}

impl FilterKind {
    fn what(self) -> &'static str {
        match self {
            FilterKind::Policy => "row_filter",
            FilterKind::Hold => "hold filter",
        }
    }
}

fn invalid(kind: FilterKind, why: impl std::fmt::Display) -> PrivacyError {
    PrivacyError::invalid_parameter(format!("invalid {}: {why}", kind.what())).with_hint(
        "A filter is one boolean SQL expression over the table's own columns, \
         without subqueries or volatile functions, e.g. plan = 'free'.",
    )
}

/// Splice a validated filter into SQL: parenthesized, between newlines.
pub fn spliced(filter: &str) -> String {
    format!("(\n{filter}\n)")
}

/// Check `filter` against table `relid` (quoted, qualified name `qualified`)
/// and return it trimmed. See the module documentation for the rules.
pub fn validate(relid: pg_sys::Oid, filter: &str, kind: FilterKind) -> PResult<String> {
    let f = filter.trim();
    if f.is_empty() {
        return Err(invalid(kind, "it is empty"));
    }
    if f.len() > MAX_FILTER_LEN {
        return Err(invalid(
            kind,
            format!("it is longer than {MAX_FILTER_LEN} bytes"),
        ));
    }
    if f.contains('\0') {
        return Err(invalid(kind, "it contains a NUL character"));
    }
    let qualified = crate::types::qualified_name(relid)?;
    let me = unsafe { pg_sys::GetUserId() };
    // Parse and analyze as the caller, with the search_path filters run with;
    // in a subtransaction so a parser ERROR comes back as a value.
    let checked = crate::subxact::run(|| {
        crate::security::as_role(me, || unsafe { check(f, &qualified, kind) })
    });
    match checked {
        Ok(()) => Ok(f.to_string()),
        Err(e) if e.code == pgrx::PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE => Err(e),
        Err(e) if e.code == pgrx::PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH => {
            Err(invalid(kind, "it is not a boolean expression").with_detail(e.message))
        }
        Err(e) if is_filter_fault(&e) => Err(invalid(kind, e.message)),
        // a lock timeout, a cancel, an internal error: not the filter's fault
        Err(e) => Err(e),
    }
}

/// Errors that say something about the filter text: syntax errors, access
/// rule violations and undefined objects (class 42), data exceptions (22),
/// unsupported features (0A).
fn is_filter_fault(e: &PrivacyError) -> bool {
    let state = crate::purge::sqlstate_text(e.code);
    state.starts_with("42") || state.starts_with("22") || state.starts_with("0A")
}

unsafe fn check(f: &str, qualified: &str, kind: FilterKind) -> PResult<()> {
    // 1. exactly one expression, on its own
    let cf = CString::new(f).map_err(|_| invalid(kind, "it contains a NUL character"))?;
    let list = pg_sys::raw_parser(cf.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_PLPGSQL_EXPR);
    let stmts = PgList::<pg_sys::RawStmt>::from_pg(list);
    if stmts.len() != 1 {
        return Err(invalid(kind, "it is not a single expression"));
    }
    let raw = stmts.get_ptr(0).unwrap();
    let node = (*raw).stmt;
    if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_SelectStmt {
        return Err(invalid(kind, "it is not a single expression"));
    }
    let sel = node as *mut pg_sys::SelectStmt;
    let s = &*sel;
    let targets = PgList::<pg_sys::Node>::from_pg(s.targetList);
    let clean = s.distinctClause.is_null()
        && s.intoClause.is_null()
        && s.fromClause.is_null()
        && s.whereClause.is_null()
        && s.groupClause.is_null()
        && s.havingClause.is_null()
        && s.windowClause.is_null()
        && s.valuesLists.is_null()
        && s.sortClause.is_null()
        && s.limitOffset.is_null()
        && s.limitCount.is_null()
        && s.lockingClause.is_null()
        && s.withClause.is_null()
        && s.op == pg_sys::SetOperation::SETOP_NONE
        && targets.len() == 1;
    if !clean {
        return Err(invalid(kind, "it is not a single expression"));
    }
    let target = targets.get_ptr(0).unwrap();
    if (*target).type_ != pg_sys::NodeTag::T_ResTarget {
        return Err(invalid(kind, "it is not a single expression"));
    }
    let rt = &*(target as *mut pg_sys::ResTarget);
    if !rt.name.is_null() || !rt.indirection.is_null() {
        return Err(invalid(kind, "it is not a single expression"));
    }
    // say "subquery" before the analyzer complains about what it refers to
    if raw_sublink_walker(rt.val, std::ptr::null_mut()) {
        return Err(invalid(kind, "subqueries are not allowed"));
    }

    // 2. a plain boolean condition over this one table
    let sql = format!("SELECT 1 FROM {qualified} WHERE {}", spliced(f));
    let csql = CString::new(sql).map_err(|_| invalid(kind, "it contains a NUL character"))?;
    let list = pg_sys::raw_parser(csql.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
    let stmts = PgList::<pg_sys::RawStmt>::from_pg(list);
    if stmts.len() != 1 {
        return Err(invalid(kind, "it is not a single expression"));
    }
    let q = pg_sys::parse_analyze_fixedparams(
        stmts.get_ptr(0).unwrap(),
        csql.as_ptr(),
        std::ptr::null(),
        0,
        std::ptr::null_mut(),
    );
    let q = &*q;
    if q.commandType != pg_sys::CmdType::CMD_SELECT || !q.utilityStmt.is_null() {
        return Err(invalid(kind, "it is not a single expression"));
    }
    if q.hasSubLinks {
        return Err(invalid(kind, "subqueries are not allowed"));
    }
    if q.hasAggs || q.hasWindowFuncs || q.hasTargetSRFs {
        return Err(invalid(
            kind,
            "aggregate, window and set-returning functions are not allowed",
        ));
    }
    let rtable = PgList::<pg_sys::RangeTblEntry>::from_pg(q.rtable);
    if rtable.len() != 1 || !q.cteList.is_null() || !q.setOperations.is_null() {
        return Err(invalid(
            kind,
            "it may only refer to the columns of its own table",
        ));
    }
    let quals = if q.jointree.is_null() {
        std::ptr::null_mut()
    } else {
        (*q.jointree).quals
    };
    if quals.is_null() {
        return Err(invalid(kind, "it is not a single expression"));
    }

    // 3. no volatile function
    if pg_sys::contain_volatile_functions(quals) {
        return Err(invalid(
            kind,
            "volatile functions (such as random() or pg_sleep()) are not allowed",
        ));
    }

    // 4. hold filters: built-in functions only
    if kind == FilterKind::Hold && uses_user_function(quals) {
        return Err(invalid(
            kind,
            "only built-in functions and operators are allowed in a hold filter",
        ));
    }
    Ok(())
}

#[pg_guard]
unsafe extern "C-unwind" fn raw_sublink_walker(
    node: *mut pg_sys::Node,
    context: *mut std::ffi::c_void,
) -> bool {
    if node.is_null() {
        return false;
    }
    if (*node).type_ == pg_sys::NodeTag::T_SubLink {
        return true;
    }
    pg_sys::raw_expression_tree_walker(node, Some(raw_sublink_walker), context)
}

#[pg_guard]
unsafe extern "C-unwind" fn user_function_checker(
    func_id: pg_sys::Oid,
    _context: *mut std::ffi::c_void,
) -> bool {
    u32::from(func_id) >= pg_sys::FirstNormalObjectId
}

#[pg_guard]
unsafe extern "C-unwind" fn user_function_walker(
    node: *mut pg_sys::Node,
    context: *mut std::ffi::c_void,
) -> bool {
    if node.is_null() {
        return false;
    }
    if pg_sys::check_functions_in_node(node, Some(user_function_checker), context) {
        return true;
    }
    pg_sys::expression_tree_walker(node, Some(user_function_walker), context)
}

/// Whether the analyzed expression calls any function that is not built in
/// (directly, through an operator, a cast or a type's I/O function).
unsafe fn uses_user_function(expr: *mut pg_sys::Node) -> bool {
    user_function_walker(expr, std::ptr::null_mut())
}
