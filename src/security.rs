//! Identity and settings scopes: the one place where pg_privacy changes who
//! it runs as, or the settings its SQL runs under.
//!
//! Modelled on PostgreSQL's maintenance commands (`vacuum_rel`,
//! `ExecRefreshMatView`, `DefineIndex`), a [`Scope`]
//! 1. saves the user id and security context;
//! 2. optionally switches to another role with `SECURITY_LOCAL_USERID_CHANGE`
//!    (so `SET ROLE` is refused inside) and, for other roles' code,
//!    `SECURITY_RESTRICTED_OPERATION` (no temporary objects, no `SET ROLE`,
//!    no cursors `WITH HOLD`, …);
//! 3. opens a GUC nest level and pins `search_path = pg_catalog, pg_temp`
//!    and `standard_conforming_strings = on`, plus the caller's extra
//!    settings (`lock_timeout`…);
//! 4. on exit — normal return, `Err`, Rust panic or PostgreSQL ERROR — rolls
//!    every setting made inside back with `AtEOXact_GUC(false, level)`
//!    (*false*: nothing set inside survives, not even a `set_config(…,
//!    false)` or `SET` run by a trigger), then restores the user and the
//!    security context. On an ERROR the (sub)transaction abort would restore
//!    both anyway; restoring here also covers the Rust paths.
//!
//! Uses:
//! - [`Scope::pinned`]: the caller's own identity, pinned settings. Every
//!   SQL-facing entry point runs its internal SPI inside one, so catalog
//!   queries resolve operators and functions in `pg_catalog` only, whatever
//!   the caller (or an `ALTER ROLE/DATABASE … SET`) put on its path;
//! - [`Scope::as_role`]`(owner).restricted()`: code that touches a table
//!   (retention batches, erasure and export statements, anonymization
//!   functions) runs as the **table's owner**, restricted, so the table
//!   owner's triggers, constraints and functions never run with anybody
//!   else's rights;
//! - [`as_extension_owner`]: pg_privacy's own fixed, fully qualified
//!   statements on its closed tables (keys, holds, audit log…).
//!
//! [`caller_path`] keeps the search path the outermost scope was entered
//! with, so that names shown in messages read as the caller would write
//! them (`accounts`, not `public.accounts`), computed without running any
//! user code.

use crate::error::{PResult, PrivacyError};
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString};

/// The settings every scope pins.
const PINNED: [(&CStr, &CStr); 2] = [
    (c"search_path", c"pg_catalog, pg_temp"),
    (c"standard_conforming_strings", c"on"),
];

thread_local! {
    /// Number of scopes currently entered.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// `search_path` as it was when the outermost scope was entered.
    static CALLER_PATH: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Whose identity a scope runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Identity {
    Caller,
    Role(pg_sys::Oid),
}

/// A scope: an identity, pinned settings, extra settings. Build it, then
/// [`run`](Scope::run) a closure inside.
#[must_use]
pub struct Scope {
    identity: Identity,
    restricted: bool,
    qualified_names: bool,
    settings: Vec<(&'static CStr, CString)>,
}

impl Scope {
    /// The caller's identity with pinned settings.
    pub fn pinned() -> Scope {
        Scope {
            identity: Identity::Caller,
            restricted: false,
            qualified_names: false,
            settings: Vec::new(),
        }
    }

    /// Act as `role` (`SECURITY_LOCAL_USERID_CHANGE`), pinned settings.
    pub fn as_role(role: pg_sys::Oid) -> Scope {
        Scope {
            identity: Identity::Role(role),
            restricted: false,
            qualified_names: false,
            settings: Vec::new(),
        }
    }

    /// Inside, names in messages are schema-qualified ([`caller_path`] is
    /// the pinned path): for what is recorded and read later, elsewhere
    /// (retention runs, erasures).
    pub fn qualified_names(mut self) -> Scope {
        self.qualified_names = true;
        self
    }

    /// Add `SECURITY_RESTRICTED_OPERATION` (for code other roles wrote).
    pub fn restricted(mut self) -> Scope {
        self.restricted = true;
        self
    }

    /// One more setting, rolled back on exit like the pinned ones.
    pub fn setting(mut self, name: &'static CStr, value: &str) -> Scope {
        self.settings
            .push((name, CString::new(value).expect("no NUL in a setting")));
        self
    }

    /// Run `f` inside the scope.
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        let guard = unsafe { self.enter() };
        let out = f();
        drop(guard);
        out
    }

    unsafe fn enter(self) -> Restore {
        let mut user = pg_sys::Oid::INVALID;
        let mut sec_context: i32 = 0;
        pg_sys::GetUserIdAndSecContext(&mut user, &mut sec_context);
        let depth = DEPTH.with(|d| d.get());
        if depth == 0 {
            let path = if pg_sys::namespace_search_path.is_null() {
                None
            } else {
                Some(CStr::from_ptr(pg_sys::namespace_search_path).to_owned())
            };
            CALLER_PATH.with(|p| *p.borrow_mut() = path);
        }
        DEPTH.with(|d| d.set(depth + 1));
        let previous_path = if self.qualified_names {
            let pinned = CString::from(PINNED[0].1);
            Some(CALLER_PATH.with(|p| p.replace(Some(pinned))))
        } else {
            None
        };
        // From here on, Restore undoes everything, whatever happens next.
        let guc_level = pg_sys::NewGUCNestLevel();
        let restore = Restore {
            user,
            sec_context,
            guc_level,
            previous_path,
        };
        if let Identity::Role(role) = self.identity {
            let mut ctx = sec_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32;
            if self.restricted {
                ctx |= pg_sys::SECURITY_RESTRICTED_OPERATION as i32;
            }
            pg_sys::SetUserIdAndSecContext(role, ctx);
        }
        for (name, value) in PINNED {
            set(name, value);
        }
        for (name, value) in &self.settings {
            set(name, value);
        }
        restore
    }
}

unsafe fn set(name: &CStr, value: &CStr) {
    pg_sys::set_config_option(
        name.as_ptr(),
        value.as_ptr(),
        pg_sys::GucContext::PGC_SUSET,
        pg_sys::GucSource::PGC_S_SESSION,
        pg_sys::GucAction::GUC_ACTION_SAVE,
        true,
        0,
        false,
    );
}

struct Restore {
    user: pg_sys::Oid,
    sec_context: i32,
    guc_level: i32,
    /// the caller path to put back (scopes with qualified names)
    previous_path: Option<Option<CString>>,
}

impl Drop for Restore {
    fn drop(&mut self) {
        unsafe {
            // false: roll back every change made at this level or deeper,
            // SET and set_config(…, false) included
            pg_sys::AtEOXact_GUC(false, self.guc_level);
            pg_sys::SetUserIdAndSecContext(self.user, self.sec_context);
        }
        let depth = DEPTH.with(|d| d.get()).saturating_sub(1);
        DEPTH.with(|d| d.set(depth));
        if depth == 0 {
            CALLER_PATH.with(|p| *p.borrow_mut() = None);
        } else if let Some(previous) = self.previous_path.take() {
            CALLER_PATH.with(|p| *p.borrow_mut() = previous);
        }
    }
}

/// Run `f` (which must run no user code: it is meant for rendering names)
/// with the `search_path` the outermost scope was entered with, so that
/// `regclass` output reads as the caller would write it. Outside any scope,
/// `f` just runs.
pub fn caller_path<R>(f: impl FnOnce() -> R) -> R {
    let path = CALLER_PATH.with(|p| p.borrow().clone());
    let Some(path) = path else {
        return f();
    };
    let level = unsafe {
        let level = pg_sys::NewGUCNestLevel();
        set(c"search_path", &path);
        level
    };
    struct Back(i32);
    impl Drop for Back {
        fn drop(&mut self) {
            unsafe { pg_sys::AtEOXact_GUC(false, self.0) };
        }
    }
    let back = Back(level);
    let out = f();
    drop(back);
    out
}

/// Oid of the role that owns the pg_privacy extension in this database
/// (read under pinned settings).
pub fn extension_owner() -> PResult<pg_sys::Oid> {
    Scope::pinned().run(|| {
        crate::sql::opt::<pg_sys::Oid>(
            "SELECT extowner FROM pg_catalog.pg_extension WHERE extname = 'pg_privacy'",
            &[],
        )?
        .ok_or_else(|| {
            PrivacyError::object_state("extension \"pg_privacy\" is not installed in this database")
                .with_hint("Run CREATE EXTENSION pg_privacy.")
        })
    })
}

/// The owner of table `relid` (42P01 when it does not exist).
pub fn table_owner(relid: pg_sys::Oid) -> PResult<pg_sys::Oid> {
    Scope::pinned().run(|| {
        crate::sql::opt::<pg_sys::Oid>(
            "SELECT relowner FROM pg_catalog.pg_class WHERE oid = $1",
            &[relid.into()],
        )?
        .ok_or_else(|| {
            PrivacyError::undefined_table(format!(
                "relation with oid {} does not exist",
                u32::from(relid)
            ))
        })
    })
}

/// Run `f` as the extension owner: pg_privacy's own fixed statements on its
/// closed tables. Restricted like any switch, pinned settings.
pub fn as_extension_owner<R>(f: impl FnOnce() -> PResult<R>) -> PResult<R> {
    let owner = extension_owner()?;
    Scope::as_role(owner).restricted().run(f)
}

/// Name of the role the caller currently acts as (`current_user`).
pub fn current_role_name() -> String {
    role_name(unsafe { pg_sys::GetUserId() })
}

/// Name of the session's role (`session_user`).
pub fn session_role_name() -> String {
    role_name(unsafe { pg_sys::GetSessionUserId() })
}

pub fn role_name(oid: pg_sys::Oid) -> String {
    unsafe {
        let name = pg_sys::GetUserNameFromId(oid, true);
        if name.is_null() {
            format!("role with oid {}", u32::from(oid))
        } else {
            CStr::from_ptr(name).to_string_lossy().into_owned()
        }
    }
}

/// Whether the current user holds `privilege` ("DELETE", "UPDATE",
/// "SELECT") on the table.
pub fn has_table_privilege(table: pg_sys::Oid, privilege: &str) -> PResult<bool> {
    role_has_table_privilege(unsafe { pg_sys::GetUserId() }, table, privilege)
}

/// Whether `role` holds `privilege` on the table.
pub fn role_has_table_privilege(
    role: pg_sys::Oid,
    table: pg_sys::Oid,
    privilege: &str,
) -> PResult<bool> {
    Scope::pinned().run(|| {
        Ok(crate::sql::opt::<bool>(
            "SELECT pg_catalog.has_table_privilege($1, $2, $3)",
            &[role.into(), table.into(), privilege.into()],
        )?
        .unwrap_or(false))
    })
}

/// Whether the current user is a superuser.
pub fn is_superuser() -> bool {
    unsafe { pg_sys::superuser() }
}

/// Pin the settings of a whole session (the background worker's): its
/// `search_path` may come from `ALTER DATABASE/ROLE … SET`, which a
/// database or role owner controls. Set at the highest source so no later
/// configuration reload overrides it.
pub fn pin_session() {
    unsafe {
        for (name, value) in PINNED {
            pg_sys::SetConfigOption(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_SUSET,
                pg_sys::GucSource::PGC_S_OVERRIDE,
            );
        }
    }
}
