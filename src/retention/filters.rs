//! Row filters: the boolean SQL expressions of retention policies
//! (`row_filter`) and legal holds, checked by PostgreSQL's own parser and
//! analyzer against an allow-list, never by string heuristics.
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
//! 4. every node of the analyzed expression is on an allow-list
//!    ([`check_allowed`]):
//!    - node kinds: columns of the table (no whole-row or system column),
//!      constants, function and operator calls, casts (including I/O
//!      casts), `IN`/`ANY`, row comparisons, `CASE`, `COALESCE`,
//!      `GREATEST`/`LEAST`, `NULLIF`, `IS [NOT] NULL/TRUE/…`, arrays and
//!      their subscripts, `COLLATE`, and the date/time SQL value functions
//!      (`CURRENT_DATE`, `CURRENT_TIMESTAMP`, `LOCALTIMESTAMP`…; not
//!      `CURRENT_USER` and the like). Anything else (XML constructors,
//!      sublinks, parameters…) is refused;
//!    - every function reached — directly, through an operator, a cast, a
//!      type's input/output function (`CoerceViaIO`), `= ANY`, a row
//!      comparison — is **built in** (oid below `FirstGenbkiObjectId`) and
//!      **immutable**, or one of a short list of stable date/time functions
//!      ([`STABLE_TIME_FUNCTIONS`]: stable only because they read the
//!      `TimeZone` or `DateStyle`). That excludes every function that runs
//!      SQL (`query_to_xml`, `table_to_xml`, `cursor_to_xml`,
//!      `database_to_xml`, `*_to_xmlschema`…), reads files
//!      (`pg_read_file`…), settings (`current_setting`) or the catalogs
//!      (`regclass` input, `has_*_privilege`, `pg_get_*`), or calls other
//!      types' output functions (`format`, `concat`, `to_json`);
//!    - the type of every value is built in, an enum, a domain over an
//!      allowed type or an array of one: no user-defined base, composite,
//!      range or multirange type, whose operations could run user code; a
//!      cast to a domain that has constraints of its own (user code) is
//!      refused.
//!
//! Filters are validated and run with `standard_conforming_strings = on`
//! and `search_path = pg_catalog, pg_temp` (the [`Scope`] every statement
//! runs in): with it off, `'\'` would not end where it ends with it on, and
//! a filter validated one way could close the parenthesis around it when run
//! the other way. A filter is validated when it is set, and again whenever
//! it is used (at the start of each run for a policy, each time holds are
//! read for a hold), so an older filter that no longer passes fails with
//! 22023 instead of running. Every failure is SQLSTATE 22023 with the reason
//! (PostgreSQL's own message for a parse error) in the text.

use crate::error::{PResult, PrivacyError};
use crate::security::Scope;
use pgrx::prelude::*;
use pgrx::PgList;
use std::ffi::{CStr, CString};

/// Longest filter accepted, in bytes.
pub const MAX_FILTER_LEN: usize = 8192;

/// Objects with an oid below this come from PostgreSQL's own catalog data
/// (`FirstGenbkiObjectId`, access/transam.h).
const FIRST_GENBKI_OBJECT_ID: u32 = 10_000;
/// Objects with an oid below this were created by initdb
/// (`FirstNormalObjectId`).
const FIRST_NORMAL_OBJECT_ID: u32 = 16_384;

/// Built-in functions that are only STABLE because they read `TimeZone`,
/// `DateStyle` or `IntervalStyle` (or the transaction's start time), and are
/// allowed in filters when at least one argument is a date/time value (or
/// they take none, like `now()`). The casts between date/time types and the
/// cross-type comparisons (`timestamptz_lt_date`…) are recognized by
/// [`is_time_comparison`].
pub const STABLE_TIME_FUNCTIONS: &[&str] = &[
    "now",
    "transaction_timestamp",
    "statement_timestamp",
    "date_trunc",
    "date_part",
    "extract",
    "age",
    "timezone",
    "to_char",
    "to_timestamp",
    "to_date",
    "make_timestamptz",
    "date",
    "time",
    "timetz",
    "timestamp",
    "timestamptz",
    "timestamptz_pl_interval",
    "timestamptz_mi_interval",
    "interval_pl_timestamptz",
    "date_in",
    "date_out",
    "time_in",
    "time_out",
    "timetz_in",
    "timetz_out",
    "timestamp_in",
    "timestamp_out",
    "timestamptz_in",
    "timestamptz_out",
    "interval_in",
    "interval_out",
];

/// Which kind of filter is checked (it changes messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterKind {
    /// A retention policy's `row_filter`.
    Policy,
    /// A legal hold's filter.
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
/// Run the SQL inside a [`Scope`] (`standard_conforming_strings = on`).
pub fn spliced(filter: &str) -> String {
    format!("(\n{filter}\n)")
}

/// Check `filter` against table `relid` and return it trimmed. See the
/// module documentation for the rules. Parsing runs as the current role
/// (type input functions of literals run at parse time: call it as the
/// role the filter is then run as).
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
    // Parse and analyze with the settings filters run with; in a
    // subtransaction so a parser ERROR comes back as a value.
    let checked =
        crate::sql::subxact::run(|| Scope::pinned().run(|| unsafe { check(f, &qualified, kind) }));
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
    let state = crate::error::sqlstate_text(e.code);
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

    // 4. the allow-list
    check_allowed(quals).map_err(|why| invalid(kind, why))
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

/// What the allow-list walk found first, if anything.
struct Walk {
    refusal: Option<String>,
}

/// Check an analyzed expression against the allow-list (module
/// documentation, rule 4). `Err` carries the reason, in words.
///
/// # Safety
/// `expr` is an analyzed expression tree.
pub unsafe fn check_allowed(expr: *mut pg_sys::Node) -> Result<(), String> {
    let mut walk = Walk { refusal: None };
    if allow_walker(expr, (&mut walk as *mut Walk).cast()) {
        Err(walk
            .refusal
            .unwrap_or_else(|| "it uses an expression that is not allowed".into()))
    } else {
        Ok(())
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn allow_walker(
    node: *mut pg_sys::Node,
    context: *mut std::ffi::c_void,
) -> bool {
    if node.is_null() {
        return false;
    }
    let walk = &mut *(context as *mut Walk);
    if let Err(why) = check_node(node) {
        walk.refusal = Some(why);
        return true;
    }
    if pg_sys::check_functions_in_node(node, Some(function_checker), context) {
        return true;
    }
    pg_sys::expression_tree_walker(node, Some(allow_walker), context)
}

#[pg_guard]
unsafe extern "C-unwind" fn function_checker(
    func_id: pg_sys::Oid,
    context: *mut std::ffi::c_void,
) -> bool {
    match function_refusal(func_id) {
        Some(why) => {
            (*(context as *mut Walk)).refusal = Some(why);
            true
        }
        None => false,
    }
}

/// The node kinds a filter may contain; for expression nodes, their type.
unsafe fn check_node(node: *mut pg_sys::Node) -> Result<(), String> {
    use pg_sys::NodeTag::*;
    let typed = match (*node).type_ {
        // containers without a value of their own
        T_List | T_CaseWhen => false,
        T_Var => {
            let v = &*(node as *mut pg_sys::Var);
            if v.varattno <= 0 || v.varlevelsup != 0 {
                return Err(
                    "it may only refer to the table's own columns one by one (no whole-row or system column)"
                        .into(),
                );
            }
            true
        }
        T_SQLValueFunction => {
            use pg_sys::SQLValueFunctionOp::*;
            let f = &*(node as *mut pg_sys::SQLValueFunction);
            if !matches!(
                f.op,
                SVFOP_CURRENT_DATE
                    | SVFOP_CURRENT_TIME
                    | SVFOP_CURRENT_TIME_N
                    | SVFOP_CURRENT_TIMESTAMP
                    | SVFOP_CURRENT_TIMESTAMP_N
                    | SVFOP_LOCALTIME
                    | SVFOP_LOCALTIME_N
                    | SVFOP_LOCALTIMESTAMP
                    | SVFOP_LOCALTIMESTAMP_N
            ) {
                return Err("it may not read the session's state (CURRENT_USER, CURRENT_SCHEMA and the like)".into());
            }
            true
        }
        T_CoerceToDomain => {
            let d = &*(node as *mut pg_sys::CoerceToDomain);
            if u32::from(d.resulttype) >= FIRST_NORMAL_OBJECT_ID
                && pg_sys::DomainHasConstraints(d.resulttype)
            {
                return Err(format!(
                    "casts to domain {} are not allowed: its constraints are user code",
                    type_name(d.resulttype)
                ));
            }
            true
        }
        T_Const | T_FuncExpr | T_OpExpr | T_DistinctExpr | T_NullIfExpr | T_ScalarArrayOpExpr
        | T_BoolExpr | T_RelabelType | T_CoerceViaIO | T_ArrayCoerceExpr | T_CollateExpr
        | T_CaseExpr | T_CaseTestExpr | T_ArrayExpr | T_RowExpr | T_RowCompareExpr
        | T_CoalesceExpr | T_MinMaxExpr | T_NullTest | T_BooleanTest | T_SubscriptingRef
        | T_FieldSelect => true,
        T_SubLink => return Err("subqueries are not allowed".into()),
        T_Param => return Err("parameters are not allowed".into()),
        T_XmlExpr => return Err("XML constructors are not allowed".into()),
        _ => return Err("it uses a kind of expression that is not allowed".into()),
    };
    if typed {
        let t = pg_sys::exprType(node);
        if !type_allowed(t) {
            return Err(format!(
                "values of type {} are not allowed: only built-in types, enums, domains and arrays of them",
                type_name(t)
            ));
        }
    }
    Ok(())
}

/// Built-in types, enums, domains over allowed types, arrays of allowed
/// types.
pub fn type_allowed(t: pg_sys::Oid) -> bool {
    if u32::from(t) < FIRST_NORMAL_OBJECT_ID {
        return true;
    }
    unsafe {
        match pg_sys::get_typtype(t) as u8 {
            b'e' => true,
            b'd' => {
                let base = pg_sys::getBaseType(t);
                base != t && type_allowed(base)
            }
            b'b' => {
                let elem = pg_sys::get_element_type(t);
                elem != pg_sys::Oid::INVALID && type_allowed(elem)
            }
            _ => false,
        }
    }
}

/// Why function `f` may not appear in a filter, or `None` when it may.
pub fn function_refusal(f: pg_sys::Oid) -> Option<String> {
    let name = function_name(f);
    if u32::from(f) >= FIRST_GENBKI_OBJECT_ID {
        return Some(format!(
            "function {name} is not built in: filters may only use PostgreSQL's own functions and operators"
        ));
    }
    match unsafe { pg_sys::func_volatile(f) } as u8 {
        b'i' => None,
        b's' if stable_time_function(f, &name) => None,
        b's' => Some(format!(
            "function {name} depends on the session or the database's contents: only immutable functions and date/time functions are allowed"
        )),
        _ => Some(format!(
            "volatile functions (such as {name}) are not allowed"
        )),
    }
}

const DATE_TIME_TYPES: [pg_sys::Oid; 6] = [
    pg_sys::DATEOID,
    pg_sys::TIMEOID,
    pg_sys::TIMETZOID,
    pg_sys::TIMESTAMPOID,
    pg_sys::TIMESTAMPTZOID,
    pg_sys::INTERVALOID,
];

/// `date_lt_timestamptz`, `timestamptz_cmp_timestamp`…: comparisons across
/// date/time types (stable: they convert with the session's TimeZone).
pub fn is_time_comparison(name: &str) -> bool {
    let kinds = ["date", "timestamp", "timestamptz"];
    let ops = ["eq", "ne", "lt", "le", "gt", "ge", "cmp"];
    kinds.iter().any(|a| {
        kinds.iter().any(|b| {
            a != b
                && ops
                    .iter()
                    .any(|op| name == format!("{a}_{op}_{b}").as_str())
        })
    })
}

fn stable_time_function(f: pg_sys::Oid, name: &str) -> bool {
    if !STABLE_TIME_FUNCTIONS.contains(&name) && !is_time_comparison(name) {
        return false;
    }
    let args = function_args(f);
    args.is_empty()
        || args.iter().any(|a| DATE_TIME_TYPES.contains(a))
        // input functions take (cstring, oid, int4) and return a date/time
        || DATE_TIME_TYPES.contains(&unsafe { pg_sys::get_func_rettype(f) }) && name.ends_with("_in")
}

fn function_args(f: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    unsafe {
        let mut argtypes: *mut pg_sys::Oid = std::ptr::null_mut();
        let mut nargs: i32 = 0;
        pg_sys::get_func_signature(f, &mut argtypes, &mut nargs);
        if argtypes.is_null() || nargs <= 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(argtypes, nargs as usize).to_vec()
        }
    }
}

fn function_name(f: pg_sys::Oid) -> String {
    unsafe {
        let p = pg_sys::get_func_name(f);
        if p.is_null() {
            format!("with oid {}", u32::from(f))
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

fn type_name(t: pg_sys::Oid) -> String {
    unsafe {
        let p = pg_sys::format_type_extended(t, -1, 0);
        if p.is_null() {
            format!("with oid {}", u32::from(t))
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}
