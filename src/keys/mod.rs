//! Keys: the secret store, the per-backend HMAC cache and its invalidation.
//!
//! Secrets live in `privacy.key_secrets` (see `sql/keys.sql`), a table no role
//! but the extension owner can read, and only **wrapped** under the root key
//! (see `rootkey`): column `wrapped_secret`, with `root_key_fingerprint`
//! naming the root key that wraps it. The clear secret exists only in the
//! memory of a backend, between reading and keying the HMAC state (zeroed
//! after), so the table's pages, the WAL, base backups, standbys and dumps
//! hold only the wrapped form. This module is the only reader and writer of
//! that table; it reads it as the extension owner through
//! [`security::as_extension_owner`] and never puts a secret in a view, an
//! error message, an audit entry or a log line (key changes are audited by
//! fingerprint only).
//!
//! **Cache.** Each backend keeps, per key name, the HMAC-SHA256 state already
//! keyed with the active secret (`Hmac<Sha256>`: the inner and outer pads are
//! hashed once). A call clones that state, so the hot path does no catalog
//! lookup, no SPI and no key schedule.
//!
//! **Invalidation.** `create_key`, `rotate_key` and `drop_key` queue a relcache
//! invalidation of the key table (`CacheInvalidateRelcacheByRelid`), which
//! PostgreSQL sends to every backend at commit (and replays locally at the
//! next command, and again on abort). A relcache callback registered by each
//! backend bumps a generation counter when it sees that table (or a full
//! reset); a cache entry is valid only for the generation it was filled in.
//! Backends process invalidations at the start of each transaction and when
//! they take a new lock; the SQL functions also take them in at their first
//! call in each statement (see `pseudonym`), so another session's rotation is
//! seen at the next statement, even inside an open transaction. Entries are filled with
//! a snapshot taken *after* pending invalidations were processed
//! (`GetLatestSnapshot`), and an entry whose generation moved during the fill
//! is not kept, so a rotation can never leave a stale secret cached.
//!
//! Unwrapping happens in [`fill`] only: once per backend and key version.
//!
//! In a parallel worker (or a leader in parallel mode) no new snapshot may be
//! taken: the entry is then filled with the query's snapshot and is only kept
//! for the current transaction. That makes the SQL functions PARALLEL SAFE.

pub mod pseudonym;
pub mod rootkey;

use crate::audit;
use crate::error::{PResult, PrivacyError};
use crate::security;
use hmac::{Hmac, Mac};
use pgrx::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use zeroize::Zeroizing;

pub type HmacSha256 = Hmac<Sha256>;

/// Name of the internal key that pseudonymizes subjects in the audit log.
pub const AUDIT_KEY: &str = "_audit";

/// Length of generated secrets, and the minimum for given ones.
pub const GENERATED_SECRET_LEN: usize = 32;
pub const MIN_SECRET_LEN: usize = 16;

// ---------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------

/// Public identifier of a secret: the first 16 hex digits of its SHA-256.
/// 64 bits of a one-way hash: enough to tell versions apart, useless to
/// recover the secret.
pub fn fingerprint(secret: &[u8]) -> String {
    let digest = Sha256::digest(secret);
    let mut out = String::with_capacity(16);
    hex_into(&digest[..8], &mut out);
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Lowercase hex of `bytes`, appended to `out`.
pub fn hex_into(bytes: &[u8], out: &mut String) {
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0x0f) as usize] as char);
    }
}

/// Lowercase hex of `bytes` written to `dst` (which holds `2 * bytes.len()`).
#[inline]
pub fn hex_to_slice(bytes: &[u8], dst: &mut [u8]) {
    for (i, b) in bytes.iter().enumerate() {
        dst[2 * i] = HEX[(b >> 4) as usize];
        dst[2 * i + 1] = HEX[(b & 0x0f) as usize];
    }
}

/// HMAC-SHA256 of `data` under `secret`, without any cache (reference code).
pub fn hmac_with_secret(secret: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Validate a key name given to `create_key`/`rotate_key`/`drop_key`:
/// 1 to 63 characters among letters, digits, `_`, `-` and `.`, not starting
/// with `_` (reserved for pg_privacy's internal keys).
pub fn validate_name(name: &str) -> PResult<()> {
    if name.starts_with('_') {
        return Err(
            PrivacyError::invalid_parameter(format!("key name \"{name}\" is reserved")).with_hint(
                "Key names starting with \"_\" are reserved for pg_privacy's internal keys.",
            ),
        );
    }
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.');
    if !ok {
        return Err(
            PrivacyError::invalid_parameter(format!("invalid key name \"{name}\"")).with_hint(
                "A key name has 1 to 63 characters: letters, digits, \"_\", \"-\" and \".\".",
            ),
        );
    }
    Ok(())
}

fn missing_key(name: &str) -> PrivacyError {
    PrivacyError::undefined_object(format!("key \"{name}\" does not exist")).with_hint(format!(
        "Create it with SELECT privacy.create_key({});",
        pgrx::spi::quote_literal(name)
    ))
}

// ---------------------------------------------------------------------------
// The per-backend cache
// ---------------------------------------------------------------------------

struct Entry {
    name: Box<[u8]>,
    mac: HmacSha256,
    generation: u64,
    /// `Some(lxid)`: filled in parallel mode with the query's snapshot, valid
    /// only in that local transaction.
    only_in_xact: Option<pg_sys::LocalTransactionId>,
}

thread_local! {
    static CACHE: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    /// Bumped by the relcache callback whenever the key table may have changed.
    static GENERATION: Cell<u64> = const { Cell::new(1) };
    /// Oid of `privacy.key_secrets` in this database, once looked up.
    static KEY_TABLE: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::Oid::INVALID) };
    static CALLBACK_REGISTERED: Cell<bool> = const { Cell::new(false) };
}

#[pg_guard]
unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let table = KEY_TABLE.with(|t| t.get());
    if relid == pg_sys::Oid::INVALID || relid == table {
        GENERATION.with(|g| g.set(g.get() + 1));
        // the table may have been dropped (DROP EXTENSION): look it up again
        KEY_TABLE.with(|t| t.set(pg_sys::Oid::INVALID));
    }
}

fn register_callback() {
    if !CALLBACK_REGISTERED.with(|r| r.get()) {
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0))
        };
        CALLBACK_REGISTERED.with(|r| r.set(true));
    }
}

fn current_lxid() -> pg_sys::LocalTransactionId {
    unsafe {
        if pg_sys::MyProc.is_null() {
            0
        } else {
            (*pg_sys::MyProc).lxid
        }
    }
}

/// Oid of the key table, or an error when the extension is not installed.
fn key_table_oid() -> PResult<pg_sys::Oid> {
    let cached = KEY_TABLE.with(|t| t.get());
    if cached != pg_sys::Oid::INVALID {
        return Ok(cached);
    }
    let oid = unsafe {
        let ns = pg_sys::get_namespace_oid(c"privacy".as_ptr(), true);
        if ns == pg_sys::Oid::INVALID {
            pg_sys::Oid::INVALID
        } else {
            pg_sys::get_relname_relid(c"key_secrets".as_ptr(), ns)
        }
    };
    if oid == pg_sys::Oid::INVALID {
        return Err(PrivacyError::object_state(
            "extension \"pg_privacy\" is not installed in this database",
        )
        .with_hint("Run CREATE EXTENSION pg_privacy."));
    }
    KEY_TABLE.with(|t| t.set(oid));
    Ok(oid)
}

/// The keyed HMAC state of `name` when it is cached and still valid.
#[inline]
fn cached(name: &[u8]) -> Option<HmacSha256> {
    let generation = GENERATION.with(|g| g.get());
    CACHE.with(|c| {
        let c = c.borrow();
        let e = c.iter().find(|e| &*e.name == name)?;
        if e.generation != generation {
            return None;
        }
        if let Some(lxid) = e.only_in_xact {
            if lxid != current_lxid() {
                return None;
            }
        }
        Some(e.mac.clone())
    })
}

/// The keyed HMAC state for the active secret of key `name` (bytes of its
/// name, as given to the SQL functions): from the cache, or read once from
/// the key table. `Ok(None)` when no such key exists.
pub fn mac_for(name: &[u8]) -> PResult<Option<HmacSha256>> {
    if let Some(m) = cached(name) {
        return Ok(Some(m));
    }
    fill(name)
}

fn fill(name: &[u8]) -> PResult<Option<HmacSha256>> {
    register_callback();
    let name_str = std::str::from_utf8(name)
        .map_err(|_| PrivacyError::invalid_parameter("key name is not valid UTF-8"))?;
    for _attempt in 0..3 {
        // Process pending invalidations first, then remember the generation:
        // anything committed after the snapshot below sends an invalidation
        // we have not seen yet, which will bump the generation.
        unsafe { pg_sys::AcceptInvalidationMessages() };
        let parallel = unsafe { pg_sys::IsInParallelMode() };
        let generation = GENERATION.with(|g| g.get());
        // known before reading, so the callback recognizes the table
        key_table_oid()?;
        let secret = read_active_secret(name_str, !parallel)?;
        let Some(secret) = secret else {
            return Ok(None);
        };
        let mac = HmacSha256::new_from_slice(&secret).expect("HMAC accepts keys of any length");
        drop(secret);
        if GENERATION.with(|g| g.get()) != generation {
            // keys changed while we read: read again
            continue;
        }
        CACHE.with(|c| {
            let mut c = c.borrow_mut();
            c.retain(|e| &*e.name != name);
            c.push(Entry {
                name: name.into(),
                mac: mac.clone(),
                generation,
                only_in_xact: if parallel { Some(current_lxid()) } else { None },
            });
        });
        return Ok(Some(mac));
    }
    // Keys keep changing under us: use the last read without caching it.
    let secret = read_active_secret(name_str, unsafe { !pg_sys::IsInParallelMode() })?;
    Ok(secret.map(|s| HmacSha256::new_from_slice(&s).expect("HMAC accepts keys of any length")))
}

/// Read and unwrap the active secret of `name` (as the extension owner).
/// With `latest`, through a fresh snapshot (sees every committed change and
/// this transaction's earlier commands); otherwise through the active
/// snapshot. The root key is checked first: without one, even a missing key
/// reports the missing root key (the server cannot pseudonymize at all).
fn read_active_secret(name: &str, latest: bool) -> PResult<Option<Zeroizing<Vec<u8>>>> {
    rootkey::current()?;
    let Some(row) = read_active_row(name, latest)? else {
        return Ok(None);
    };
    let (Some(wrapped), Some(fp)) = (row.wrapped, row.root_fp) else {
        return Err(PrivacyError::object_state(format!(
            "key \"{name}\" version {} has no wrapped secret",
            row.version
        ))
        .with_hint(
            "Secrets of pg_privacy 0.1.0 are wrapped by ALTER EXTENSION pg_privacy UPDATE.",
        ));
    };
    let root = rootkey::by_fingerprint(&fp, name, row.version)?;
    root.unwrap(name, row.version, &wrapped).map(Some)
}

/// The stored form of one key version.
struct StoredRow {
    version: i32,
    wrapped: Option<Vec<u8>>,
    root_fp: Option<String>,
}

fn read_active_row(name: &str, latest: bool) -> PResult<Option<StoredRow>> {
    security::as_extension_owner(|| {
        Spi::connect(|_client| unsafe {
            let mut argtypes = [pg_sys::TEXTOID];
            let plan = pg_sys::SPI_prepare(
                c"SELECT version, wrapped_secret, root_key_fingerprint FROM privacy.key_secrets WHERE name = $1 AND active".as_ptr(),
                1,
                argtypes.as_mut_ptr(),
            );
            if plan.is_null() {
                return Err(PrivacyError::internal("could not prepare the key lookup"));
            }
            let mut values = [name.into_datum().expect("text datum")];
            let nulls = [b' ' as std::ffi::c_char];
            let snapshot = if latest {
                pg_sys::GetLatestSnapshot()
            } else {
                std::ptr::null_mut()
            };
            let rc = pg_sys::SPI_execute_snapshot(
                plan,
                values.as_mut_ptr(),
                nulls.as_ptr(),
                snapshot,
                std::ptr::null_mut(),
                true,
                false,
                1,
            );
            if rc != pg_sys::SPI_OK_SELECT as i32 {
                return Err(PrivacyError::internal(format!(
                    "key lookup failed (SPI code {rc})"
                )));
            }
            let result = if pg_sys::SPI_processed == 0 || pg_sys::SPI_tuptable.is_null() {
                None
            } else {
                let tt = &*pg_sys::SPI_tuptable;
                let mut isnull = false;
                let d = pg_sys::SPI_getbinval(*tt.vals, tt.tupdesc, 1, &mut isnull);
                let version = if isnull { 0 } else { d.value() as i32 };
                let d = pg_sys::SPI_getbinval(*tt.vals, tt.tupdesc, 2, &mut isnull);
                let wrapped = if isnull {
                    None
                } else {
                    let v = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
                    Some(pgrx::varlena::varlena_to_byte_slice(v).to_vec())
                };
                let d = pg_sys::SPI_getbinval(*tt.vals, tt.tupdesc, 3, &mut isnull);
                let root_fp = String::from_datum(d, isnull);
                Some(StoredRow {
                    version,
                    wrapped,
                    root_fp,
                })
            };
            pg_sys::SPI_freeplan(plan);
            Ok(result)
        })
    })
}

// ---------------------------------------------------------------------------
// Interfaces for other modules
// ---------------------------------------------------------------------------

/// HMAC-SHA256 of `data` with the active secret of `key`, through the
/// per-backend cache. A missing key is 42704 with a hint to create it.
pub fn hmac_sha256(key: &str, data: &[u8]) -> PResult<[u8; 32]> {
    // see another session's key change even inside an open transaction
    unsafe { pg_sys::AcceptInvalidationMessages() };
    let mut mac = mac_for(key.as_bytes())?.ok_or_else(|| missing_key(key))?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().into())
}

/// The pseudonym that stands for a data subject in the audit log: lowercase
/// hex (64 characters) of HMAC-SHA256 of the subject's UTF-8 bytes under the
/// internal key `_audit`. That key is created on first use (32 random bytes,
/// as the extension owner) and cannot be rotated or dropped through the public
/// functions, so a subject keeps the same pseudonym for the life of the
/// database (and across pg_dump, which carries the key).
pub fn subject_pseudonym(subject: &str) -> PResult<String> {
    unsafe { pg_sys::AcceptInvalidationMessages() };
    let mac = match mac_for(AUDIT_KEY.as_bytes())? {
        Some(m) => m,
        None => {
            ensure_audit_key()?;
            mac_for(AUDIT_KEY.as_bytes())?.ok_or_else(|| missing_key(AUDIT_KEY))?
        }
    };
    let mut mac = mac;
    mac.update(subject.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(64);
    hex_into(&digest, &mut out);
    Ok(out)
}

fn ensure_audit_key() -> PResult<()> {
    let root = rootkey::current()?;
    let secret = random_secret()?;
    let fp = fingerprint(&secret);
    let wrapped = root.wrap(AUDIT_KEY, 1, &secret)?;
    drop(secret);
    let inserted = security::as_extension_owner(|| {
        // same lock order as the key administration functions: no deadlock
        // with a create/rotate/drop_key later in this transaction
        lock_keys()?;
        Ok(crate::sql::opt_mut::<bool>(
            "INSERT INTO privacy.key_secrets (name, version, wrapped_secret, fingerprint, active, root_key_fingerprint)
             VALUES ($1, 1, $2, $3, true, $4) ON CONFLICT DO NOTHING RETURNING true",
            &[
                AUDIT_KEY.into(),
                wrapped.as_slice().into(),
                fp.as_str().into(),
                root.fingerprint().into(),
            ],
        )?
        .unwrap_or(false))
    })?;
    if inserted {
        invalidate()?;
        audit::record(
            "create_key",
            AUDIT_KEY,
            json!({ "version": 1, "fingerprint": fp, "secret": "generated", "internal": true }),
        )?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Key administration
// ---------------------------------------------------------------------------

fn random_secret() -> PResult<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; GENERATED_SECRET_LEN]);
    let ok = unsafe { pg_sys::pg_strong_random(buf.as_mut_ptr().cast(), buf.len()) };
    if !ok {
        return Err(PrivacyError::internal(
            "could not generate random bytes for a key",
        ));
    }
    Ok(buf)
}

/// Queue the invalidation every backend (this one included) acts on, and make
/// it effective here at once.
fn invalidate() -> PResult<()> {
    let table = key_table_oid()?;
    unsafe {
        pg_sys::CacheInvalidateRelcacheByRelid(table);
        pg_sys::CommandCounterIncrement();
    }
    // the local replay happened in CommandCounterIncrement; be explicit
    GENERATION.with(|g| g.set(g.get() + 1));
    Ok(())
}

/// Serialize key administration (readers are not blocked).
fn lock_keys() -> PResult<()> {
    Spi::run("LOCK TABLE privacy.key_secrets IN SHARE ROW EXCLUSIVE MODE")?;
    Ok(())
}

fn required_name(name: Option<String>) -> PResult<String> {
    let name = name.ok_or_else(|| PrivacyError::null_value("key name"))?;
    validate_name(&name)?;
    Ok(name)
}

/// `privacy.create_key(name, secret)`: a new key at version 1. Without a
/// secret, 32 bytes come from PostgreSQL's strong random source. Returns the
/// fingerprint.
#[pg_extern(volatile, parallel_unsafe)]
fn create_key(
    name: default!(Option<String>, "'default'"),
    secret: default!(Option<Vec<u8>>, "NULL"),
) -> String {
    audit::entry("create_key", || {
        let name = required_name(name)?;
        let root = rootkey::current()?;
        let generated = secret.is_none();
        let secret = match secret.map(Zeroizing::new) {
            Some(s) if s.len() < MIN_SECRET_LEN => return Err(PrivacyError::invalid_parameter(
                format!("a key secret must be at least {MIN_SECRET_LEN} bytes long"),
            )
            .with_detail(format!("The given secret has {} bytes.", s.len()))
            .with_hint(
                "Omit the secret to get 32 random bytes from a cryptographically strong source.",
            )),
            Some(s) => s,
            None => random_secret()?,
        };
        let fp = fingerprint(&secret);
        let wrapped = root.wrap(&name, 1, &secret)?;
        drop(secret);
        let inserted = security::as_extension_owner(|| {
            lock_keys()?;
            let exists = crate::sql::opt::<bool>(
                "SELECT true FROM privacy.key_secrets WHERE name = $1 LIMIT 1",
                &[name.as_str().into()],
            )?
            .unwrap_or(false);
            if exists {
                return Ok(false);
            }
            Spi::run_with_args(
                "INSERT INTO privacy.key_secrets (name, version, wrapped_secret, fingerprint, active, root_key_fingerprint)
                 VALUES ($1, 1, $2, $3, true, $4)",
                &[
                    name.as_str().into(),
                    wrapped.as_slice().into(),
                    fp.as_str().into(),
                    root.fingerprint().into(),
                ],
            )?;
            Ok(true)
        });
        if !inserted? {
            return Err(
                PrivacyError::duplicate_object(format!("key \"{name}\" already exists")).with_hint(
                    format!(
                    "Use privacy.rotate_key({0}) for a new secret, or privacy.drop_key({0}) first.",
                    pgrx::spi::quote_literal(&name)
                ),
                ),
            );
        }
        invalidate()?;
        audit::record(
            "create_key",
            &name,
            json!({
                "version": 1,
                "fingerprint": fp,
                "secret": if generated { "generated" } else { "given" },
            }),
        )?;
        Ok(fp)
    })
}

/// `privacy.rotate_key(name)`: a new version with 32 random bytes becomes
/// active; the previous version is retired and its secret destroyed.
#[pg_extern(volatile, parallel_unsafe)]
fn rotate_key(name: default!(Option<String>, "'default'")) -> String {
    audit::entry("rotate_key", || {
        let name = required_name(name)?;
        let root = rootkey::current()?;
        let secret = random_secret()?;
        let fp = fingerprint(&secret);
        let previous = security::as_extension_owner(|| {
            lock_keys()?;
            Spi::connect_mut(|c| {
                let rows = c.update(
                    "UPDATE privacy.key_secrets SET active = false, wrapped_secret = NULL,
                            root_key_fingerprint = NULL, retired_at = pg_catalog.now()
                      WHERE name = $1 AND active
                  RETURNING version, fingerprint",
                    None,
                    &[name.as_str().into()],
                )?;
                let Some(row) = rows.into_iter().next() else {
                    return Ok(None);
                };
                let version: i32 = row.get(1)?.unwrap_or(0);
                let old_fp: String = row.get(2)?.unwrap_or_default();
                let wrapped = root.wrap(&name, version + 1, &secret)?;
                c.update(
                    "INSERT INTO privacy.key_secrets (name, version, wrapped_secret, fingerprint, active, root_key_fingerprint)
                     VALUES ($1, $2, $3, $4, true, $5)",
                    None,
                    &[
                        name.as_str().into(),
                        (version + 1).into(),
                        wrapped.as_slice().into(),
                        fp.as_str().into(),
                        root.fingerprint().into(),
                    ],
                )?;
                Ok::<_, PrivacyError>(Some((version + 1, old_fp)))
            })
        });
        drop(secret);
        let (version, old_fp) = previous?.ok_or_else(|| missing_key(&name))?;
        invalidate()?;
        audit::record(
            "rotate_key",
            &name,
            json!({ "version": version, "fingerprint": fp, "previous_fingerprint": old_fp }),
        )?;
        Ok(fp)
    })
}

/// `privacy.drop_key(name)`: delete every version (crypto-shredding).
#[pg_extern(volatile, parallel_unsafe)]
fn drop_key(name: Option<String>) {
    audit::entry("drop_key", || {
        let name = required_name(name)?;
        let fingerprints = security::as_extension_owner(|| {
            lock_keys()?;
            Spi::connect_mut(|c| {
                let rows = c.update(
                    "DELETE FROM privacy.key_secrets WHERE name = $1 RETURNING version, fingerprint",
                    None,
                    &[name.as_str().into()],
                )?;
                let mut out = Vec::new();
                for r in rows {
                    let v: i32 = r.get(1)?.unwrap_or(0);
                    let f: String = r.get(2)?.unwrap_or_default();
                    out.push((v, f));
                }
                out.sort();
                Ok::<_, PrivacyError>(out)
            })
        })?;
        if fingerprints.is_empty() {
            return Err(missing_key(&name));
        }
        invalidate()?;
        audit::record(
            "drop_key",
            &name,
            json!({
                "versions": fingerprints.len(),
                "fingerprints": fingerprints.iter().map(|(_, f)| f.clone()).collect::<Vec<_>>(),
            }),
        )
    })
}

// ---------------------------------------------------------------------------
// Root key rotation and the upgrade from clear secrets
// ---------------------------------------------------------------------------

/// Every stored (not destroyed) secret, as the extension owner, in a stable
/// order: `(name, version, wrapped_secret, root_key_fingerprint)`.
fn stored_secrets(where_clause: &str) -> PResult<Vec<(String, i32, Vec<u8>, Option<String>)>> {
    Spi::connect(|c| {
        let mut out = Vec::new();
        let rows = c.select(
            &format!(
                "SELECT name, version, wrapped_secret, root_key_fingerprint
                   FROM privacy.key_secrets WHERE wrapped_secret IS NOT NULL AND {where_clause}
                  ORDER BY name, version"
            ),
            None,
            &[],
        )?;
        for r in rows {
            out.push((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<i32>(2)?.unwrap_or(0),
                r.get::<Vec<u8>>(3)?.unwrap_or_default(),
                r.get::<String>(4)?,
            ));
        }
        Ok::<_, PrivacyError>(out)
    })
}

fn store_wrapped(name: &str, version: i32, wrapped: &[u8], root_fp: &str) -> PResult<()> {
    Spi::run_with_args(
        "UPDATE privacy.key_secrets SET wrapped_secret = $3, root_key_fingerprint = $4
          WHERE name = $1 AND version = $2",
        &[name.into(), version.into(), wrapped.into(), root_fp.into()],
    )?;
    Ok(())
}

/// `privacy.rotate_root_key()`: rewrap every secret that is not yet under the
/// current root key (it must be under the previous one, from
/// `privacy.previous_root_key_command`), in one transaction, audited.
/// Returns how many secrets were rewrapped. Superusers and the extension
/// owner only (EXECUTE is also revoked from PUBLIC).
#[pg_extern(volatile, parallel_unsafe)]
fn rotate_root_key() -> i64 {
    audit::entry("rotate_root_key", || {
        let owner = security::extension_owner()?;
        if !security::is_superuser() && unsafe { pg_sys::GetUserId() } != owner {
            return Err(PrivacyError::insufficient_privilege(
                "only a superuser or the owner of extension \"pg_privacy\" may rotate the root key",
            ));
        }
        let root = rootkey::current()?;
        let (rewrapped, from) = security::as_extension_owner(|| {
            lock_keys()?;
            let rows = stored_secrets("true")?;
            let mut from: Vec<String> = Vec::new();
            let mut n = 0i64;
            for (name, version, wrapped, fp) in rows {
                let fp = fp.unwrap_or_default();
                if fp == root.fingerprint() {
                    continue;
                }
                let old = rootkey::by_fingerprint(&fp, &name, version)?;
                let secret = old.unwrap(&name, version, &wrapped)?;
                let new = root.wrap(&name, version, &secret)?;
                drop(secret);
                store_wrapped(&name, version, &new, root.fingerprint())?;
                if !from.contains(&fp) {
                    from.push(fp);
                }
                n += 1;
            }
            Ok((n, from))
        })?;
        audit::record(
            "rotate_root_key",
            "",
            json!({
                "root_key_fingerprint": root.fingerprint(),
                "previous_root_key_fingerprints": from,
                "rewrapped": rewrapped,
            }),
        )?;
        Ok(rewrapped)
    })
}

/// Upgrade from 0.1.0 (`privacy._wrap_clear_secrets()`, created, called and
/// dropped by `sql/pg_privacy--0.1.0--0.2.0.sql`): wrap every secret still in
/// clear (`root_key_fingerprint IS NULL`; the script renamed `secret` to
/// `wrapped_secret` first) under the current root key, audited. Without a
/// root key it fails, and with it the whole `ALTER EXTENSION … UPDATE`.
fn wrap_clear_secrets() -> PResult<i64> {
    let root = rootkey::current().map_err(|e| {
        let hint = e.hint.clone().unwrap_or_default();
        e.with_hint(format!(
            "{hint} ALTER EXTENSION pg_privacy UPDATE wraps the existing key secrets under the root key, so it needs one; nothing was changed."
        ))
    })?;
    let n = security::as_extension_owner(|| {
        lock_keys()?;
        let rows = stored_secrets("root_key_fingerprint IS NULL")?;
        let n = rows.len() as i64;
        for (name, version, clear, _) in rows {
            let clear = Zeroizing::new(clear);
            let wrapped = root.wrap(&name, version, &clear)?;
            store_wrapped(&name, version, &wrapped, root.fingerprint())?;
        }
        Ok(n)
    })?;
    invalidate()?;
    audit::record(
        "wrap_key_secrets",
        "",
        json!({ "root_key_fingerprint": root.fingerprint(), "wrapped": n }),
    )?;
    Ok(n)
}

#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_privacy_wrap_clear_secrets() -> &'static pg_sys::Pg_finfo_record {
    const V1_API: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1_API
}

/// The C entry point of `privacy._wrap_clear_secrets() RETURNS bigint`.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn privacy_wrap_clear_secrets(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let n: i64 = audit::entry("wrap_key_secrets", wrap_clear_secrets);
    pg_sys::Datum::from(n)
}

/// Test-only: the clear active secret of `name` (for `#[pg_test]`s that
/// compare with pgcrypto).
#[cfg(any(test, feature = "pg_test"))]
pub fn active_secret_for_tests(name: &str) -> PResult<Option<Vec<u8>>> {
    Ok(read_active_secret(name, true)?.map(|s| s.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hex(b: &[u8]) -> String {
        let mut s = String::new();
        hex_into(b, &mut s);
        s
    }

    /// RFC 4231, test cases 1-7 (HMAC-SHA-256).
    #[test]
    fn rfc4231_vectors() {
        let cases: &[(Vec<u8>, Vec<u8>, &str)] = &[
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, want) in cases {
            assert_eq!(hex(&hmac_with_secret(key, data)), *want);
        }
        // test case 5: output truncated to 128 bits
        let t5 = hmac_with_secret(&[0x0c; 20], b"Test With Truncation");
        assert_eq!(hex(&t5[..16]), "a3b6167473100ee06e0c796c2955552b");
    }

    #[test]
    fn cloned_state_equals_fresh_mac() {
        let key = b"0123456789abcdef0123456789abcdef";
        let base = HmacSha256::new_from_slice(key).unwrap();
        for data in [&b""[..], b"a", &[7u8; 1000][..]] {
            let mut m = base.clone();
            m.update(data);
            let got: [u8; 32] = m.finalize().into_bytes().into();
            assert_eq!(got, hmac_with_secret(key, data));
        }
    }

    #[test]
    fn fingerprint_is_16_hex_of_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223...
        assert_eq!(fingerprint(b"abc"), "ba7816bf8f01cfea");
    }

    #[test]
    fn key_names() {
        assert!(validate_name("default").is_ok());
        assert!(validate_name("Analytics-2026.v1").is_ok());
        assert!(validate_name("_audit").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("x'; drop").is_err());
        assert!(validate_name(&"k".repeat(64)).is_err());
        assert_eq!(
            validate_name("_x").unwrap_err().code,
            pgrx::PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
        );
    }
}
