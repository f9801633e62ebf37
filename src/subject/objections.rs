//! Objections to purposes (GDPR Art. 21 / consent withdrawal): opt-outs the
//! database itself answers.
//!
//! `object_to_purpose` and `withdraw_objection` write `privacy.objections`
//! (closed to every role but the extension owner) through
//! [`security::as_extension_owner`] and record the change in the audit log
//! under the subject's pseudonym. `may_process` answers one question, "did
//! this subject object to this purpose?", and is built to sit in a row-level
//! security policy or a view over a large table: it runs no SQL at all, but
//! probes the primary key indexes of `privacy.objections` and
//! `privacy.purposes` directly (like PostgreSQL's own catalog lookups), so an
//! ordinary role can call it without any privilege on those tables and
//! learns nothing but the boolean.

use crate::audit;
use crate::error::{PResult, PrivacyError};
use crate::labels::purposes;
use crate::security::as_extension_owner;
use pgrx::prelude::*;
use serde_json::json;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::CStr;

/// `object_to_purpose(subject, purpose)`: the subject opts out of the
/// purpose. Idempotent: objecting twice keeps the first objection's time.
pub fn object_to_purpose(subject: &str, purpose: &str) -> PResult<()> {
    let purpose = purposes::require(purpose)?;
    let pseudonym = crate::keys::subject_pseudonym(subject)?;
    let created = as_extension_owner(|| {
        Ok(crate::sql::opt_mut::<bool>(
            "INSERT INTO privacy.objections (subject, purpose) VALUES ($1, $2)
             ON CONFLICT (subject, purpose) DO NOTHING RETURNING true",
            &[subject.into(), purpose.as_str().into()],
        )?
        .unwrap_or(false))
    })?;
    audit::record(
        "object_to_purpose",
        &purpose,
        json!({ "subject_pseudonym": pseudonym, "already_objected": !created }),
    )
}

/// `withdraw_objection(subject, purpose)`: the subject opts back in.
/// Idempotent for a defined purpose; an objection to a purpose that has since
/// been dropped can still be withdrawn.
pub fn withdraw_objection(subject: &str, purpose: &str) -> PResult<()> {
    let purpose = purposes::normalize_name(purpose)?;
    let pseudonym = crate::keys::subject_pseudonym(subject)?;
    let existed = as_extension_owner(|| {
        Ok(crate::sql::opt_mut::<bool>(
            "DELETE FROM privacy.objections WHERE subject = $1 AND purpose = $2 RETURNING true",
            &[subject.into(), purpose.as_str().into()],
        )?
        .unwrap_or(false))
    })?;
    if !existed {
        purposes::require(&purpose)?;
    }
    audit::record(
        "withdraw_objection",
        &purpose,
        json!({ "subject_pseudonym": pseudonym, "had_objected": existed }),
    )
}

/// `may_process(subject, purpose)`: FALSE when the subject objected
/// to the purpose, TRUE otherwise. A NULL subject (a row that identifies
/// nobody) cannot have objected: TRUE. An unknown purpose is an error (42704),
/// so a misspelt purpose in a policy fails loudly instead of allowing all.
pub fn may_process(subject: Option<&str>, purpose: &str) -> PResult<bool> {
    // no SQL here (index probes only): nothing a search_path could redirect
    let purpose: Cow<str> = if is_normalized(purpose) {
        Cow::Borrowed(purpose)
    } else {
        Cow::Owned(purposes::normalize_name(purpose)?)
    };
    with_statement_cache(|cache| cache.may_process(subject, &purpose))
}

/// The common case, without allocating: an already lower-case plain
/// identifier is its own normalized name.
fn is_normalized(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 63
        && p.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !["purpose", "category", "subject", "anonymize"].contains(&p)
}

/// Calls of `may_process` for one purpose within one snapshot that are
/// answered by index probes; after that, the purpose's objectors are read
/// once into memory (when the table is small enough) and every further call
/// of the statement is a hash lookup.
const PROBES_BEFORE_LOAD: u32 = 64;
/// Largest `privacy.objections` (in 8 kB pages, about 100 000 objections per
/// 1 000 pages) that is read into memory; beyond it every call probes.
const MAX_LOAD_PAGES: u32 = 10_000;

/// Identity of the snapshot answers are valid for: two snapshots with the
/// same fields (same transaction, command, xmin/xmax and completed-transaction
/// count) see exactly the same rows.
#[derive(PartialEq, Eq, Clone, Copy)]
struct SnapshotKey {
    lxid: u32,
    xmin: u32,
    xmax: u32,
    curcid: u32,
    completions: u64,
}

type Objectors = HashSet<String>;

struct PurposeAnswers {
    probes: u32,
    objectors: Option<Objectors>,
}

struct StatementCache {
    key: SnapshotKey,
    snapshot: pg_sys::Snapshot,
    rels: Rels,
    purposes: HashMap<String, PurposeAnswers>,
}

thread_local! {
    static CACHE: RefCell<Option<StatementCache>> = const { RefCell::new(None) };
}

fn with_statement_cache<R>(f: impl FnOnce(&mut StatementCache) -> PResult<R>) -> PResult<R> {
    let (key, snapshot) = unsafe {
        let snapshot = if pg_sys::ActiveSnapshotSet() {
            pg_sys::GetActiveSnapshot()
        } else {
            pg_sys::GetTransactionSnapshot()
        };
        let s = &*snapshot;
        let lxid = if pg_sys::MyProc.is_null() {
            0
        } else {
            (*pg_sys::MyProc).lxid
        };
        (
            SnapshotKey {
                lxid,
                xmin: s.xmin.into_inner(),
                xmax: s.xmax.into_inner(),
                curcid: s.curcid,
                completions: s.snapXactCompletionCount,
            },
            snapshot,
        )
    };
    CACHE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let fresh = !matches!(&*slot, Some(c) if c.key == key);
        if fresh {
            // drop the previous statement's answers before looking anything up
            *slot = None;
            *slot = Some(StatementCache {
                key,
                snapshot,
                rels: Rels::lookup()?,
                purposes: HashMap::new(),
            });
        }
        let cache = slot.as_mut().expect("cache was just filled");
        cache.snapshot = snapshot;
        f(cache)
    })
}

impl StatementCache {
    fn may_process(&mut self, subject: Option<&str>, purpose: &str) -> PResult<bool> {
        if !self.purposes.contains_key(purpose) {
            if !index_has(
                self.rels.purposes,
                self.rels.purposes_pkey,
                &[purpose],
                self.snapshot,
            )? {
                return Err(PrivacyError::undefined_object(format!(
                    "purpose \"{purpose}\" does not exist"
                ))
                .with_hint("Define it with privacy.define_purpose()."));
            }
            self.purposes.insert(
                purpose.to_string(),
                PurposeAnswers {
                    probes: 0,
                    objectors: None,
                },
            );
        }
        let Some(subject) = subject else {
            return Ok(true);
        };
        let (rels, snapshot) = (&self.rels, self.snapshot);
        let answers = self
            .purposes
            .get_mut(purpose)
            .expect("purpose was just cached");
        if answers.objectors.is_none() && answers.probes >= PROBES_BEFORE_LOAD {
            answers.objectors = load_objectors(rels, purpose, snapshot)?;
        }
        if let Some(set) = &answers.objectors {
            return Ok(!set.contains(subject));
        }
        answers.probes += 1;
        Ok(!index_has(
            rels.objections,
            rels.objections_pkey,
            &[subject, purpose],
            snapshot,
        )?)
    }
}

/// Oids of the tables and indexes `may_process` reads, resolved through the
/// syscache once per statement, so a dropped and re-created extension is
/// never looked up through stale oids.
struct Rels {
    purposes: pg_sys::Oid,
    purposes_pkey: pg_sys::Oid,
    objections: pg_sys::Oid,
    objections_pkey: pg_sys::Oid,
}

impl Rels {
    fn lookup() -> PResult<Rels> {
        let missing = || {
            PrivacyError::object_state("extension \"pg_privacy\" is not installed in this database")
                .with_hint("Run CREATE EXTENSION pg_privacy.")
        };
        unsafe {
            let nsp = pg_sys::get_namespace_oid(c"privacy".as_ptr(), true);
            if nsp == pg_sys::Oid::INVALID {
                return Err(missing());
            }
            let rel = |name: &CStr| pg_sys::get_relname_relid(name.as_ptr(), nsp);
            let r = Rels {
                purposes: rel(c"purposes"),
                purposes_pkey: rel(c"purposes_pkey"),
                objections: rel(c"objections"),
                objections_pkey: rel(c"objections_pkey"),
            };
            if [r.purposes, r.purposes_pkey, r.objections, r.objections_pkey]
                .contains(&pg_sys::Oid::INVALID)
            {
                return Err(missing());
            }
            Ok(r)
        }
    }
}

fn text_scankeys(keys: &[&str]) -> PResult<(Vec<pg_sys::ScanKeyData>, Vec<pg_sys::Datum>)> {
    let datums: Vec<pg_sys::Datum> = keys
        .iter()
        .map(|k| {
            k.into_datum()
                .ok_or_else(|| PrivacyError::internal("could not build a text datum"))
        })
        .collect::<PResult<_>>()?;
    let mut scankeys = Vec::with_capacity(keys.len());
    for (i, d) in datums.iter().enumerate() {
        let mut sk: pg_sys::ScanKeyData = unsafe { std::mem::zeroed() };
        unsafe {
            pg_sys::ScanKeyEntryInitialize(
                &mut sk,
                0,
                (i + 1) as pg_sys::AttrNumber,
                pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
                pg_sys::Oid::INVALID,
                pg_sys::DEFAULT_COLLATION_OID,
                pg_sys::Oid::from(pg_sys::F_TEXTEQ),
                *d,
            )
        };
        scankeys.push(sk);
    }
    Ok((scankeys, datums))
}

/// Whether the table holds a row whose first `keys.len()` text columns equal
/// `keys`, found through the btree index `index` (whose leading columns are
/// those, in that order, with the default collation), as seen by `snapshot`.
fn index_has(
    table: pg_sys::Oid,
    index: pg_sys::Oid,
    keys: &[&str],
    snapshot: pg_sys::Snapshot,
) -> PResult<bool> {
    let (mut scankeys, _datums) = text_scankeys(keys)?;
    unsafe {
        let rel = pg_sys::table_open(table, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let scan = pg_sys::systable_beginscan(
            rel,
            index,
            true,
            snapshot,
            scankeys.len() as i32,
            scankeys.as_mut_ptr(),
        );
        let found = !pg_sys::systable_getnext(scan).is_null();
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        Ok(found)
    }
}

/// Every subject that objected to `purpose`, as seen by `snapshot`, or `None`
/// when `privacy.objections` is too large to hold in memory.
fn load_objectors(
    rels: &Rels,
    purpose: &str,
    snapshot: pg_sys::Snapshot,
) -> PResult<Option<Objectors>> {
    let (mut scankeys, _datums) = text_scankeys(&[purpose])?;
    // the purpose is the table's second column
    scankeys[0].sk_attno = 2;
    unsafe {
        let rel = pg_sys::table_open(rels.objections, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let pages = pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM);
        if pages > MAX_LOAD_PAGES {
            pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
            return Ok(None);
        }
        let scan = pg_sys::systable_beginscan(
            rel,
            pg_sys::Oid::INVALID,
            false,
            snapshot,
            1,
            scankeys.as_mut_ptr(),
        );
        let mut set = Objectors::default();
        loop {
            let tuple = pg_sys::systable_getnext(scan);
            if tuple.is_null() {
                break;
            }
            let mut isnull = false;
            let d = pg_sys::heap_getattr(tuple, 1, (*rel).rd_att, &mut isnull);
            if let Some(s) = String::from_datum(d, isnull) {
                set.insert(s);
            }
        }
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        Ok(Some(set))
    }
}

#[cfg(test)]
mod unit {
    use super::is_normalized;

    #[test]
    fn fast_normalization_only_takes_plain_lowercase_names() {
        assert!(is_normalized("marketing"));
        assert!(is_normalized("_x1"));
        assert!(!is_normalized("Marketing"));
        assert!(!is_normalized("1x"));
        assert!(!is_normalized(""));
        assert!(!is_normalized("subject"));
        assert!(!is_normalized("bad name"));
    }
}
