//! SQL types the contract uses that pgrx has no plain value type for:
//! `regclass` (an oid shown as a table name) and `name`.

use pgrx::prelude::*;
use std::ffi::CStr;

/// A `regclass` value: a table's oid, printed by PostgreSQL as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Regclass(pub pg_sys::Oid);

impl FromDatum for Regclass {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            None
        } else {
            Some(Regclass(pg_sys::Oid::from_datum(datum, false)?))
        }
    }
}

impl IntoDatum for Regclass {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(pg_sys::Datum::from(self.0))
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::REGCLASSOID
    }
}

pgrx::impl_sql_translatable!(Regclass, "regclass");

/// A `name` value (an identifier, at most 63 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlName(pub String);

impl FromDatum for SqlName {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            None
        } else {
            let p = datum.cast_mut_ptr::<std::ffi::c_char>();
            Some(SqlName(CStr::from_ptr(p).to_string_lossy().into_owned()))
        }
    }
}

impl IntoDatum for SqlName {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        unsafe {
            let p = pg_sys::palloc0(pg_sys::NAMEDATALEN as usize) as *mut std::ffi::c_char;
            let bytes = self.0.as_bytes();
            let n = bytes.len().min(pg_sys::NAMEDATALEN as usize - 1);
            std::ptr::copy_nonoverlapping(bytes.as_ptr() as *const std::ffi::c_char, p, n);
            Some(pg_sys::Datum::from(p))
        }
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::NAMEOID
    }
}

pgrx::impl_sql_translatable!(SqlName, "name");

impl SqlName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The text PostgreSQL shows for a table oid (`oid::regclass::text`),
/// schema-qualified when the table is not on the caller's search_path (the
/// path the SQL-facing function was called with, see
/// `security::caller_path`: the statement has no operator or function to
/// resolve, only a cast by qualified type names, so that path cannot make it
/// run anything).
pub fn regclass_text(oid: pg_sys::Oid) -> String {
    crate::security::caller_path(|| {
        crate::sql::opt::<String>(
            "SELECT $1::pg_catalog.regclass::pg_catalog.text",
            &[oid.into()],
        )
    })
    .ok()
    .flatten()
    .unwrap_or_else(|| format!("{}", u32::from(oid)))
}

/// Always schema-qualified, quoted name of a table: safe to splice into SQL.
pub fn qualified_name(oid: pg_sys::Oid) -> crate::error::PResult<String> {
    crate::security::Scope::pinned().run(|| {
        crate::sql::opt::<String>(
            "SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
                    OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname)
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n
                 ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
              WHERE c.oid OPERATOR(pg_catalog.=) $1",
            &[oid.into()],
        )?
        .ok_or_else(|| {
            crate::error::PrivacyError::undefined_table(format!(
                "relation with oid {} does not exist",
                u32::from(oid)
            ))
        })
    })
}

macro_rules! sql_value_abi {
    ($($t:ty),*) => {$(
        unsafe impl<'fcx> pgrx::callconv::ArgAbi<'fcx> for $t {
            unsafe fn unbox_arg_unchecked(arg: pgrx::callconv::Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                unsafe { arg.unbox_arg_using_from_datum() }
                    .unwrap_or_else(|| panic!("argument {index} must not be null"))
            }
            unsafe fn unbox_nullable_arg(arg: pgrx::callconv::Arg<'_, 'fcx>) -> pgrx::nullable::Nullable<Self> {
                unsafe { arg.unbox_arg_using_from_datum() }.into()
            }
        }
        unsafe impl pgrx::callconv::BoxRet for $t {
            unsafe fn box_into<'fcx>(self, fcinfo: &mut pgrx::callconv::FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
                match self.into_datum() {
                    Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
                    None => fcinfo.return_null(),
                }
            }
        }
    )*};
}

sql_value_abi!(Regclass, SqlName);
