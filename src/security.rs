//! Privilege switching: the one place where pg_privacy acts as another role.
//!
//! Extension tables that hold secrets or the audit trail are closed to
//! ordinary roles. Rust code that must read or append to them runs the fixed,
//! fully qualified statement inside [`as_extension_owner`], which behaves like
//! a `SECURITY DEFINER` function with `SET search_path = pg_catalog, pg_temp`:
//! the user id becomes the extension owner (with `SECURITY_LOCAL_USERID_CHANGE`,
//! so `SET ROLE` is refused inside) and `search_path` is pinned, both restored
//! on exit, on error and on panic. [`as_role`] does the same for a policy's
//! owner when the worker runs a policy.

use crate::error::{PResult, PrivacyError};
use pgrx::prelude::*;

/// Oid of the role that owns the pg_privacy extension in this database.
pub fn extension_owner() -> PResult<pg_sys::Oid> {
    crate::sql::opt::<pg_sys::Oid>(
        "SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'pg_privacy'",
        &[],
    )?
    .ok_or_else(|| {
        PrivacyError::object_state("extension \"pg_privacy\" is not installed in this database")
            .with_hint("Run CREATE EXTENSION pg_privacy.")
    })
}

/// Name of the role the caller currently acts as (`current_user`).
pub fn current_role_name() -> String {
    unsafe {
        let oid = pg_sys::GetUserId();
        let name = pg_sys::GetUserNameFromId(oid, false);
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    }
}

struct Restore {
    user: pg_sys::Oid,
    sec_context: i32,
    guc_level: i32,
}

impl Drop for Restore {
    fn drop(&mut self) {
        unsafe {
            // On an ERROR the transaction (or subtransaction) abort restores
            // both itself; restoring here is harmless and covers the normal
            // and Rust-panic paths.
            pg_sys::AtEOXact_GUC(true, self.guc_level);
            pg_sys::SetUserIdAndSecContext(self.user, self.sec_context);
        }
    }
}

/// Run `f` as `role`, with a pinned `search_path`.
pub fn as_role<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let mut user = pg_sys::Oid::INVALID;
    let mut sec_context: i32 = 0;
    let guard = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut sec_context);
        pg_sys::SetUserIdAndSecContext(
            role,
            sec_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
        let guc_level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        Restore {
            user,
            sec_context,
            guc_level,
        }
    };
    let out = f();
    drop(guard);
    out
}

/// Run `f` as the extension owner, with a pinned `search_path`.
pub fn as_extension_owner<R>(f: impl FnOnce() -> PResult<R>) -> PResult<R> {
    let owner = extension_owner()?;
    as_role(owner, f)
}

/// Whether the current user holds `privilege` ("DELETE", "UPDATE", "SELECT")
/// on the table.
pub fn has_table_privilege(table: pg_sys::Oid, privilege: &str) -> PResult<bool> {
    Ok(Spi::get_one_with_args::<bool>(
        "SELECT pg_catalog.has_table_privilege($1, $2)",
        &[table.into(), privilege.into()],
    )?
    .unwrap_or(false))
}

/// Whether the current user is a superuser.
pub fn is_superuser() -> bool {
    unsafe { pg_sys::superuser() }
}
