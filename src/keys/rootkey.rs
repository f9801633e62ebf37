//! The root key: kept outside the database, it wraps every key secret.
//!
//! **Loading.** `privacy.root_key_command` (postmaster-level) is a shell
//! command whose standard output is the root key as 64 hex digits (surrounding
//! whitespace ignored), e.g. `cat /etc/postgresql/privacy-root.key` or a KMS
//! client. The postmaster runs it **once**, while it loads
//! `shared_preload_libraries` ([`load_at_start`], from `_PG_init`); every
//! backend, background worker and parallel worker is forked from it and
//! inherits the result. The command's standard error goes to the server's
//! standard error (the log file); its standard output is never logged, and no
//! error message ever shows it. A command that fails, or prints something
//! else than 64 hex digits, leaves the server running without a root key: a
//! WARNING at start, and every key operation fails with a clear error
//! (SQLSTATE 55000) and hint.
//!
//! Preloading is required: a library loaded later by a backend (no
//! `shared_preload_libraries`) never runs the command, and key operations say
//! so in their hint. One command run per server start keeps a KMS client's
//! rate limits and latency out of the sessions.
//!
//! **What is kept.** Not the root key itself: two keys derived from it with
//! HMAC-SHA256 under fixed labels (domain separation) — the wrapping key and a
//! public fingerprint (16 hex digits) — then the root key's bytes are zeroed.
//! Both stay in process memory for the life of the server.
//!
//! **Rotation.** `privacy.previous_root_key_command` (also postmaster-level)
//! gives the old root key during a rotation: secrets wrapped under either key
//! can be read, and `privacy.rotate_root_key()` (see `keys`) rewraps every
//! secret under the current one.
//!
//! **Wrapping.** AES-256-GCM (RustCrypto `aes-gcm`), a random 96-bit nonce per
//! wrap, and the key's name and version (with a format tag) as associated
//! data: a wrapped secret moved onto another key or version no longer
//! authenticates. Stored form: `0x01 || nonce (12) || ciphertext || tag (16)`.

use crate::error::{PResult, PrivacyError};
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::Mac;
use pgrx::pg_sys;
use std::sync::OnceLock;
use zeroize::{Zeroize, Zeroizing};

/// Format tag: the first byte of a wrapped secret, and part of its AAD.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const WRAP_LABEL: &[u8] = b"pg_privacy root key: key wrapping, v1";
const FINGERPRINT_LABEL: &[u8] = b"pg_privacy root key: fingerprint, v1";
const AAD_LABEL: &[u8] = b"pg_privacy key secret, v1";

/// What is kept of a root key: the wrapping key and the fingerprint.
pub struct RootKey {
    wrap: Zeroizing<[u8; 32]>,
    fingerprint: String,
}

impl RootKey {
    /// Derive the kept keys from the 32 bytes of a root key.
    pub fn from_bytes(root: &[u8; 32]) -> RootKey {
        let derive = |label: &[u8]| -> Zeroizing<[u8; 32]> {
            let mut m = <crate::keys::HmacSha256 as Mac>::new_from_slice(root)
                .expect("HMAC accepts keys of any length");
            m.update(label);
            Zeroizing::new(m.finalize().into_bytes().into())
        };
        let fp = derive(FINGERPRINT_LABEL);
        let mut fingerprint = String::with_capacity(16);
        crate::keys::hex_into(&fp[..8], &mut fingerprint);
        RootKey {
            wrap: derive(WRAP_LABEL),
            fingerprint,
        }
    }

    /// Parse the output of a root key command: 64 hex digits, surrounding
    /// whitespace ignored. The error never contains the output.
    pub fn parse(output: &[u8]) -> Result<RootKey, String> {
        let text = output.trim_ascii();
        if text.len() != 64 || !text.iter().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "its output is not 64 hex digits ({} bytes after trimming whitespace)",
                text.len()
            ));
        }
        let mut root = Zeroizing::new([0u8; 32]);
        for (i, pair) in text.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16).expect("hex digit") as u8;
            let lo = (pair[1] as char).to_digit(16).expect("hex digit") as u8;
            root[i] = (hi << 4) | lo;
        }
        Ok(RootKey::from_bytes(&root))
    }

    /// Public identifier of the root key: 16 hex digits.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Wrap `secret` for version `version` of key `name`, with a fresh random
    /// nonce.
    pub fn wrap(&self, name: &str, version: i32, secret: &[u8]) -> PResult<Vec<u8>> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        self.wrap_with_nonce(name, version, secret, nonce.into())
    }

    fn wrap_with_nonce(
        &self,
        name: &str,
        version: i32,
        secret: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> PResult<Vec<u8>> {
        let cipher = Aes256Gcm::new_from_slice(&self.wrap[..]).expect("a 32-byte key");
        let aad = aad(name, version);
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| PrivacyError::internal("could not wrap a key secret"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Unwrap the stored form of version `version` of key `name`. Fails
    /// (XX001) when it was altered or belongs to another key or version.
    pub fn unwrap(&self, name: &str, version: i32, wrapped: &[u8]) -> PResult<Zeroizing<Vec<u8>>> {
        let corrupted = || {
            PrivacyError::new(
                pgrx::PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                format!(
                    "the wrapped secret of key \"{name}\" version {version} does not authenticate"
                ),
            )
            .with_detail(format!(
                "It is wrapped under root key {}.",
                self.fingerprint
            ))
            .with_hint("The stored secret was altered, or copied from another key or version.")
        };
        if wrapped.len() < 1 + NONCE_LEN + TAG_LEN || wrapped[0] != FORMAT_V1 {
            return Err(corrupted());
        }
        let cipher = Aes256Gcm::new_from_slice(&self.wrap[..]).expect("a 32-byte key");
        let aad = aad(name, version);
        cipher
            .decrypt(
                Nonce::from_slice(&wrapped[1..1 + NONCE_LEN]),
                Payload {
                    msg: &wrapped[1 + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| corrupted())
    }
}

/// Associated data of a wrapped secret: label, format, name, version.
fn aad(name: &str, version: i32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + name.len() + 7);
    aad.extend_from_slice(AAD_LABEL);
    aad.push(0);
    aad.push(FORMAT_V1);
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

/// One root key setting's outcome at server start.
enum Loaded {
    Key(RootKey),
    /// The setting is empty.
    NotSet,
    /// Why the command gave no key (never contains its output).
    Failed(String),
}

struct State {
    current: Loaded,
    previous: Loaded,
}

/// Set once in the postmaster; inherited by every process forked from it.
static STATE: OnceLock<State> = OnceLock::new();

/// Run `command` through `/bin/sh -c` and parse its standard output.
fn run_command(command: &str) -> Result<RootKey, String> {
    use std::process::{Command, Stdio};
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("it could not be started: {e}"))?;
    let mut stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        stdout.zeroize();
        return Err(format!("it exited with {}", out.status));
    }
    RootKey::parse(&stdout)
}

fn load(setting: Option<String>) -> Loaded {
    match setting {
        None => Loaded::NotSet,
        Some(s) if s.trim().is_empty() => Loaded::NotSet,
        Some(s) => match run_command(&s) {
            Ok(k) => Loaded::Key(k),
            Err(e) => Loaded::Failed(e),
        },
    }
}

/// Called by `_PG_init`: in the postmaster loading
/// `shared_preload_libraries`, run the root key commands once. Anywhere else
/// (a backend loading the library on demand) do nothing: the key operations
/// then explain that preloading is required.
pub fn load_at_start() {
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    let state = State {
        current: load(crate::gucs::root_key_command()),
        previous: load(crate::gucs::previous_root_key_command()),
    };
    for (setting, loaded) in [
        ("privacy.root_key_command", &state.current),
        ("privacy.previous_root_key_command", &state.previous),
    ] {
        match loaded {
            Loaded::Failed(why) => pgrx::warning!(
                "pg_privacy: {setting} gave no root key: {why}; key operations will fail until the server is restarted with a working command"
            ),
            Loaded::NotSet if setting == "privacy.root_key_command" => pgrx::warning!(
                "pg_privacy: privacy.root_key_command is not set; key operations will fail until it is set and the server restarted"
            ),
            Loaded::Key(k) => pgrx::log!("pg_privacy: {setting}: root key {} loaded", k.fingerprint),
            Loaded::NotSet => {}
        }
    }
    let _ = STATE.set(state);
}

fn not_preloaded() -> PrivacyError {
    PrivacyError::object_state("the root key of pg_privacy is not loaded")
        .with_detail("pg_privacy was not loaded at server start (shared_preload_libraries), so privacy.root_key_command was not run.")
        .with_hint("Add pg_privacy to shared_preload_libraries, set privacy.root_key_command, and restart the server.")
}

fn unusable(loaded: &Loaded) -> PrivacyError {
    match loaded {
        Loaded::NotSet => PrivacyError::object_state("no root key is configured for pg_privacy")
            .with_hint("Set privacy.root_key_command to a command that prints the root key as 64 hex digits (e.g. 'cat /etc/postgresql/privacy-root.key') and restart the server."),
        Loaded::Failed(why) => PrivacyError::object_state("the root key of pg_privacy could not be loaded at server start")
            .with_detail(format!("privacy.root_key_command failed: {why}."))
            .with_hint("Fix privacy.root_key_command and restart the server."),
        Loaded::Key(_) => PrivacyError::internal("root key state"),
    }
}

/// The current root key, which wraps new secrets; or the error that explains
/// why there is none.
pub fn current() -> PResult<&'static RootKey> {
    match STATE.get() {
        None => Err(not_preloaded()),
        Some(State {
            current: Loaded::Key(k),
            ..
        }) => Ok(k),
        Some(s) => Err(unusable(&s.current)),
    }
}

/// The previous root key, when `privacy.previous_root_key_command` gave one.
pub fn previous() -> Option<&'static RootKey> {
    match STATE.get() {
        Some(State {
            previous: Loaded::Key(k),
            ..
        }) => Some(k),
        _ => None,
    }
}

/// Fingerprint of the current root key, if any.
pub fn current_fingerprint() -> Option<&'static str> {
    current().ok().map(|k| k.fingerprint())
}

/// The root key (current or previous) whose fingerprint is `fp`, for the
/// secret of version `version` of key `name`; otherwise a clear error.
pub fn by_fingerprint(fp: &str, name: &str, version: i32) -> PResult<&'static RootKey> {
    let current = current()?;
    if current.fingerprint == fp {
        return Ok(current);
    }
    if let Some(p) = previous() {
        if p.fingerprint == fp {
            return Ok(p);
        }
    }
    let previous_note = match STATE.get().map(|s| &s.previous) {
        Some(Loaded::Failed(why)) => {
            format!(" privacy.previous_root_key_command failed at start: {why}.")
        }
        _ => String::new(),
    };
    Err(PrivacyError::object_state(format!(
        "key \"{name}\" version {version} is wrapped under root key {fp}, which this server does not have"
    ))
    .with_detail(format!("This server's root key is {}.{previous_note}", current.fingerprint))
    .with_hint(format!(
        "Start the server with root key {fp} in privacy.root_key_command, or in privacy.previous_root_key_command and then run privacy.rotate_root_key()."
    )))
}

/// `privacy.root_key_fingerprint()`: the fingerprint of the server's current
/// root key, NULL without one.
#[pgrx::pg_extern(stable, parallel_safe)]
fn root_key_fingerprint() -> Option<String> {
    current_fingerprint().map(str::to_owned)
}

#[cfg(test)]
mod unit {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn parse_accepts_64_hex_digits_with_whitespace() {
        let a = RootKey::parse(HEX.as_bytes()).unwrap();
        let b = RootKey::parse(format!("  {}\n", HEX.to_uppercase()).as_bytes()).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 16);
        for bad in [
            "",
            "00",
            &HEX[..63],
            &format!("{HEX}00"),
            &format!("{}g", &HEX[..63]),
        ] {
            let e = RootKey::parse(bad.as_bytes()).err().unwrap();
            assert!(e.starts_with("its output is not 64 hex digits"), "{e}");
            // the error never repeats the output
            if bad.len() > 4 {
                assert!(!e.contains(bad), "{e}");
            }
        }
    }

    #[test]
    fn fingerprint_is_domain_separated() {
        let root: [u8; 32] = core::array::from_fn(|i| i as u8);
        let k = RootKey::from_bytes(&root);
        // not a prefix of the root key, of its SHA-256 or of the wrapping key
        use sha2::Digest;
        let sha = sha2::Sha256::digest(root);
        let mut sha_hex = String::new();
        crate::keys::hex_into(&sha[..8], &mut sha_hex);
        assert_ne!(k.fingerprint(), sha_hex);
        assert_ne!(k.fingerprint(), &HEX[..16]);
        let mut wrap_hex = String::new();
        crate::keys::hex_into(&k.wrap[..8], &mut wrap_hex);
        assert_ne!(k.fingerprint(), wrap_hex);
        // another root key, another fingerprint
        let mut other = root;
        other[31] ^= 1;
        assert_ne!(RootKey::from_bytes(&other).fingerprint(), k.fingerprint());
    }

    #[test]
    fn wrap_round_trip_and_binding() {
        let k = RootKey::parse(HEX.as_bytes()).unwrap();
        let secret = [0x5au8; 32];
        let w = k.wrap("default", 1, &secret).unwrap();
        assert_eq!(w.len(), 1 + NONCE_LEN + 32 + TAG_LEN);
        assert_eq!(w[0], FORMAT_V1);
        // the secret's bytes are not in the wrapped form
        assert!(!w.windows(8).any(|x| x == &secret[..8]));
        assert_eq!(&k.unwrap("default", 1, &w).unwrap()[..], &secret[..]);
        // two wraps differ (fresh nonce) and both unwrap
        let w2 = k.wrap("default", 1, &secret).unwrap();
        assert_ne!(w, w2);
        assert_eq!(&k.unwrap("default", 1, &w2).unwrap()[..], &secret[..]);
        // bound to name and version
        let e = k.unwrap("other", 1, &w).unwrap_err();
        assert_eq!(e.code, pgrx::PgSqlErrorCode::ERRCODE_DATA_CORRUPTED);
        assert!(k.unwrap("default", 2, &w).is_err());
        assert!(k.unwrap("defaul", 1, &w).is_err());
        // altered bytes, a wrong format tag, a truncated value
        for i in [0, 1, 13, w.len() - 1] {
            let mut bad = w.clone();
            bad[i] ^= 0x01;
            assert!(k.unwrap("default", 1, &bad).is_err(), "byte {i}");
        }
        assert!(k.unwrap("default", 1, &w[..20]).is_err());
        // another root key cannot unwrap it
        let mut other = HEX.to_string();
        other.replace_range(0..2, "ff");
        let k2 = RootKey::parse(other.as_bytes()).unwrap();
        assert!(k2.unwrap("default", 1, &w).is_err());
    }

    #[test]
    fn known_answer() {
        // computed independently (Python: hmac + cryptography's AESGCM), so
        // the format is stable and documented by an outside implementation
        let k = RootKey::parse(HEX.as_bytes()).unwrap();
        assert_eq!(k.fingerprint(), "b4b2bbe7c5c412ff");
        let w = k
            .wrap_with_nonce("default", 1, &[0u8; 32], [7u8; NONCE_LEN])
            .unwrap();
        let mut got = String::new();
        crate::keys::hex_into(&w, &mut got);
        assert_eq!(
            got,
            "01070707070707070707070707\
             4b0870ef2b7a19e35fc5519dac92ea2a7780370f43bed2229af3456bac455096\
             04c3164cb945f5c61b40612f097aa7cc"
        );
    }

    #[test]
    fn commands() {
        let k = run_command(&format!("echo {HEX}")).unwrap();
        assert_eq!(
            k.fingerprint(),
            RootKey::parse(HEX.as_bytes()).unwrap().fingerprint()
        );
        let e = run_command("exit 3").err().unwrap();
        assert!(e.contains("exit status: 3"), "{e}");
        let e = run_command("echo not-a-key").err().unwrap();
        assert!(!e.contains("not-a-key"), "{e}");
        assert!(matches!(load(Some("  ".into())), Loaded::NotSet));
        assert!(matches!(load(None), Loaded::NotSet));
    }
}
