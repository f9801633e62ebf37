//! `#[pg_test]`s: behaviour inside one backend, one file per concern.
//! Helpers shared by them live here.

mod dvdrental;
mod errors;
mod keys;
mod reports;
#[cfg(test)] // plain #[test]s: not in the library `cargo pgrx test` installs
mod layers;
mod retention;
mod security;
mod semantics;
mod subject;
mod tags;
mod worker;

use pgrx::prelude::*;

/// Run `sql` in a subtransaction; `Some((SQLSTATE, message))` when it
/// failed, `None` when it succeeded (its effects are then kept).
pub fn error_of(sql: &str) -> Option<(String, String)> {
    Spi::run(
        r#"CREATE OR REPLACE FUNCTION pg_temp.error_of(stmt text, OUT state text, OUT msg text)
           LANGUAGE plpgsql AS $f$
           BEGIN
               EXECUTE stmt;
           EXCEPTION WHEN OTHERS THEN
               state := SQLSTATE; msg := SQLERRM;
           END
           $f$"#,
    )
    .expect("create error_of");
    let (s, m) = Spi::get_two_with_args::<String, String>(
        "SELECT state, msg FROM pg_temp.error_of($1)",
        &[sql.into()],
    )
    .expect("error_of");
    s.map(|s| (s, m.unwrap_or_default()))
}

/// Assert that `sql` fails with `state`.
#[track_caller]
pub fn assert_sqlstate(sql: &str, state: &str) {
    let got = error_of(sql);
    match got {
        Some((s, m)) => assert_eq!(s, state, "{sql}\n failed with {s}: {m}"),
        None => panic!("{sql}\n succeeded, expected SQLSTATE {state}"),
    }
}

/// Run `f` (a direct Rust call) on the catalog as of a fresh snapshot, as
/// the worker's transactions see it.
pub fn fresh<R>(f: impl FnOnce() -> R) -> R {
    unsafe {
        pg_sys::CommandCounterIncrement();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let r = f();
    unsafe { pg_sys::PopActiveSnapshot() };
    r
}

pub fn run(sql: &str) {
    Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

pub fn one<T: FromDatum + IntoDatum>(sql: &str) -> Option<T> {
    Spi::get_one::<T>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// (SQLSTATE, message, hint) of a failing statement.
pub fn error_hint_of(sql: &str) -> (Option<String>, Option<String>, Option<String>) {
    run(
        r#"CREATE OR REPLACE FUNCTION pg_temp.error_hint_of(stmt text, OUT state text, OUT msg text, OUT hint text)
           LANGUAGE plpgsql AS $f$
           BEGIN
               EXECUTE stmt;
           EXCEPTION WHEN OTHERS THEN
               GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                                       hint = PG_EXCEPTION_HINT;
           END
           $f$"#,
    );
    Spi::get_three_with_args::<String, String, String>(
        "SELECT state, msg, hint FROM pg_temp.error_hint_of($1)",
        &[sql.into()],
    )
    .unwrap()
}
