//! Keyed-hash pseudonymization: `privacy.pseudonymize(text|bytea)`,
//! `pseudonymize_email`, `pseudonymize_uuid`, `pseudonymize_bigint`.
//!
//! Each is HMAC-SHA256 under the active secret of a key (see `keys`), over
//! the value's bytes: text as UTF-8, bytea as is, bigint as 8 bytes
//! big-endian, uuid as its 16 bytes. So `privacy.pseudonymize(x)` equals
//! pgcrypto's `encode(hmac(convert_to(x, 'UTF8'), secret, 'sha256'), 'hex')`.
//!
//! These are the hot functions of the extension (a whole table may go through
//! them), so they are plain version-1 C functions rather than `#[pg_extern]`
//! wrappers: the argument is detoasted at most once (short values are read in
//! place, without a copy), the keyed HMAC state comes from the per-backend
//! cache (no SPI, no catalog access per call), and the result is written
//! straight into one `palloc`ed datum (the hex digits of `pseudonymize(text)`
//! are encoded in place). Their SQL declarations are in `sql/keys.sql`:
//! `STABLE` (the result depends on a key that can be rotated), `STRICT` (NULL
//! in, NULL out) and `PARALLEL SAFE` (a parallel worker fills its own cache
//! through the query's snapshot, see `keys`).
//!
//! `pseudonymize_email(value)` — behaviour (pure Rust, [`email_parts`]):
//! - the whole address is lowercased (Unicode lowercase, locale-independent)
//!   and hashed; the result is the first 16 hex digits of that hash, `@`, and
//!   the lowercased domain;
//! - the domain is what follows the **last** `@` (`"a@b"@example.com` keeps
//!   `example.com`);
//! - an empty local part (`@example.com`) is hashed like any other value:
//!   `<16 hex>@example.com`; an empty domain (`user@`) stays empty: `<16 hex>@`;
//! - a value without `@` has no domain: the result is `<16 hex>@invalid`
//!   (the reserved `.invalid` name of RFC 2606), so it still looks like an
//!   address and `LIKE '%@%'` checks keep passing;
//! - no other normalization: spaces are kept, `+tags` are kept.

use crate::error::PrivacyError;
use crate::keys::{self, HmacSha256};
use hmac::Mac;
use pgrx::pg_sys;
use std::cell::Cell;

thread_local! {
    /// The database encoding, once read (it never changes in a backend).
    static DB_ENCODING: Cell<i32> = const { Cell::new(-1) };
}

fn database_is_utf8() -> bool {
    let mut enc = DB_ENCODING.with(|e| e.get());
    if enc < 0 {
        enc = unsafe { pg_sys::GetDatabaseEncoding() };
        DB_ENCODING.with(|e| e.set(enc));
    }
    enc == pg_sys::pg_enc::PG_UTF8 as i32 || enc == pg_sys::pg_enc::PG_SQL_ASCII as i32
}

/// Detoast (if needed) a varlena argument and return its payload in place.
/// Short, inline values are not copied.
#[inline]
unsafe fn varlena_bytes<'a>(d: pg_sys::Datum) -> &'a [u8] {
    let mut p = d.cast_mut_ptr::<pg_sys::varlena>();
    // compressed or external (toasted) values need pg_detoast_datum_packed;
    // a plain 1-byte or 4-byte header value is used where it is
    if pgrx::varlena::varatt_is_1b_e(p) || pgrx::varlena::varatt_is_4b_c(p) {
        p = pg_sys::pg_detoast_datum_packed(p);
    }
    pgrx::varlena::varlena_to_byte_slice(p)
}

/// The bytes of a text argument, in UTF-8 (converted when the database
/// encoding is not UTF-8).
#[inline]
unsafe fn text_utf8<'a>(d: pg_sys::Datum) -> &'a [u8] {
    let bytes = varlena_bytes(d);
    if database_is_utf8() || bytes.is_empty() {
        return bytes;
    }
    let conv = pg_sys::pg_server_to_any(
        bytes.as_ptr().cast(),
        bytes.len() as i32,
        pg_sys::pg_enc::PG_UTF8 as i32,
    );
    if conv as *const u8 == bytes.as_ptr() {
        bytes
    } else {
        std::slice::from_raw_parts(
            conv as *const u8,
            std::ffi::CStr::from_ptr(conv).count_bytes(),
        )
    }
}

#[inline]
unsafe fn arg(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> pg_sys::Datum {
    (*fcinfo).args.as_slice(n + 1)[n].value
}

/// The keyed HMAC state for the key named by argument `n`, or an ERROR.
#[inline]
unsafe fn mac_arg(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> HmacSha256 {
    // First call of this call site in this statement (fn_extra is reset with
    // each executor start): take in pending invalidations, so a key change
    // committed by another session is seen at the next statement even inside
    // an open transaction (where no lock acquisition would process them).
    let flinfo = (*fcinfo).flinfo;
    if !flinfo.is_null() && (*flinfo).fn_extra.is_null() {
        pg_sys::AcceptInvalidationMessages();
        (*flinfo).fn_extra = pg_sys::MemoryContextAlloc((*flinfo).fn_mcxt, 1);
    }
    let name = varlena_bytes(arg(fcinfo, n));
    if name.first() == Some(&b'_') {
        PrivacyError::invalid_parameter(format!(
            "key name \"{}\" is reserved",
            String::from_utf8_lossy(name)
        ))
        .with_hint("Key names starting with \"_\" are reserved for pg_privacy's internal keys.")
        .raise();
    }
    match keys::mac_for(name) {
        Ok(Some(m)) => m,
        Ok(None) => {
            let name = String::from_utf8_lossy(name);
            PrivacyError::undefined_object(format!("key \"{name}\" does not exist"))
                .with_hint(format!(
                    "Create it with SELECT privacy.create_key({});",
                    pgrx::spi::quote_literal(&name)
                ))
                .raise()
        }
        Err(e) => e.raise(),
    }
}

#[inline]
fn digest(mut mac: HmacSha256, data: &[u8]) -> [u8; 32] {
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// A new varlena of `len` payload bytes (4-byte header set), and its payload.
#[inline]
unsafe fn new_varlena<'a>(len: usize) -> (*mut pg_sys::varlena, &'a mut [u8]) {
    let total = len + pg_sys::VARHDRSZ;
    let p = pg_sys::palloc(total) as *mut pg_sys::varlena;
    pgrx::varlena::set_varsize_4b(p, total as i32);
    let payload = std::slice::from_raw_parts_mut((p as *mut u8).add(pg_sys::VARHDRSZ), len);
    (p, payload)
}

/// `uuid` bytes from a hash: its first 16 bytes with the RFC 9562 version 8
/// and variant (10xx) bits set.
pub fn uuid_from_hash(h: &[u8; 32]) -> [u8; 16] {
    let mut u = [0u8; 16];
    u.copy_from_slice(&h[..16]);
    u[6] = (u[6] & 0x0f) | 0x80;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// `bigint` from a hash: its first 8 bytes, big-endian, sign bit cleared.
pub fn bigint_from_hash(h: &[u8; 32]) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    (u64::from_be_bytes(b) & 0x7fff_ffff_ffff_ffff) as i64
}

/// What `pseudonymize_email` hashes, and the domain it keeps: the lowercased
/// address and its part after the last `@` (`None` without any `@`).
pub fn email_parts(address: &str) -> (String, Option<String>) {
    let lower = address.to_lowercase();
    let domain = lower.rfind('@').map(|i| lower[i + 1..].to_string());
    (lower, domain)
}

/// The complete `pseudonymize_email` result given the hash of the lowercased
/// address.
pub fn email_result(h: &[u8; 32], domain: Option<&str>) -> String {
    let domain = domain.unwrap_or("invalid");
    let mut out = String::with_capacity(17 + domain.len());
    keys::hex_into(&h[..8], &mut out);
    out.push('@');
    out.push_str(domain);
    out
}

/// HMAC of the ASCII-lowercased bytes of an ASCII value, without allocating.
pub fn digest_ascii_lower(mut mac: HmacSha256, ascii: &[u8]) -> [u8; 32] {
    let mut buf = [0u8; 128];
    for chunk in ascii.chunks(buf.len()) {
        for (d, s) in buf.iter_mut().zip(chunk) {
            *d = s.to_ascii_lowercase();
        }
        mac.update(&buf[..chunk.len()]);
    }
    mac.finalize().into_bytes().into()
}

/// The domain of an ASCII address: what follows the last `@`, if any.
pub fn ascii_domain(ascii: &[u8]) -> Option<&[u8]> {
    ascii
        .iter()
        .rposition(|&b| b == b'@')
        .map(|i| &ascii[i + 1..])
}

/// Length of the `pseudonymize_email` result for an ASCII address.
pub fn email_ascii_len(domain: Option<&[u8]>) -> usize {
    17 + domain.map_or("invalid".len(), |d| d.len())
}

/// Write `<16 hex>@<lowercased domain or "invalid">` into `out`.
pub fn write_email_ascii(h: &[u8; 32], domain: Option<&[u8]>, out: &mut [u8]) {
    keys::hex_to_slice(&h[..8], &mut out[..16]);
    out[16] = b'@';
    let domain = domain.unwrap_or(b"invalid");
    for (d, s) in out[17..].iter_mut().zip(domain) {
        *d = s.to_ascii_lowercase();
    }
}

macro_rules! v1_function {
    ($finfo:ident) => {
        #[no_mangle]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static pg_sys::Pg_finfo_record {
            const V1_API: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
            &V1_API
        }
    };
}

v1_function!(pg_finfo_privacy_pseudonymize_text);
/// `privacy.pseudonymize(text, key text) RETURNS text`: 64 lowercase hex.
#[pgrx::pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn privacy_pseudonymize_text(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let mac = mac_arg(fcinfo, 1);
    let h = digest(mac, text_utf8(arg(fcinfo, 0)));
    let (p, out) = new_varlena(64);
    keys::hex_to_slice(&h, out);
    pg_sys::Datum::from(p)
}

v1_function!(pg_finfo_privacy_pseudonymize_bytea);
/// `privacy.pseudonymize(bytea, key text) RETURNS bytea`: 32 raw bytes.
#[pgrx::pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn privacy_pseudonymize_bytea(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let mac = mac_arg(fcinfo, 1);
    let h = digest(mac, varlena_bytes(arg(fcinfo, 0)));
    let (p, out) = new_varlena(32);
    out.copy_from_slice(&h);
    pg_sys::Datum::from(p)
}

v1_function!(pg_finfo_privacy_pseudonymize_email);
/// `privacy.pseudonymize_email(text, key text) RETURNS text`.
#[pgrx::pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn privacy_pseudonymize_email(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let mac = mac_arg(fcinfo, 1);
    let raw = varlena_bytes(arg(fcinfo, 0));
    if raw.is_ascii() {
        // Fast path (ASCII is the same in every server encoding): hash the
        // lowercased bytes in chunks and write the result in place.
        let h = digest_ascii_lower(mac, raw);
        let domain = ascii_domain(raw);
        let (p, out) = new_varlena(email_ascii_len(domain));
        write_email_ascii(&h, domain, out);
        return pg_sys::Datum::from(p);
    }
    let bytes = text_utf8(arg(fcinfo, 0));
    // server text is valid in its encoding, so valid UTF-8 after conversion
    let address = String::from_utf8_lossy(bytes);
    let (lower, domain) = email_parts(&address);
    let h = digest(mac, lower.as_bytes());
    let result = email_result(&h, domain.as_deref());
    // back to the database encoding for a non-UTF-8 database
    let out_bytes: &[u8] = if database_is_utf8() {
        result.as_bytes()
    } else {
        let c = std::ffi::CString::new(result.clone()).unwrap_or_default();
        let conv = pg_sys::pg_any_to_server(
            c.as_ptr(),
            result.len() as i32,
            pg_sys::pg_enc::PG_UTF8 as i32,
        );
        std::slice::from_raw_parts(
            conv as *const u8,
            std::ffi::CStr::from_ptr(conv).count_bytes(),
        )
    };
    let (p, out) = new_varlena(out_bytes.len());
    out.copy_from_slice(out_bytes);
    pg_sys::Datum::from(p)
}

v1_function!(pg_finfo_privacy_pseudonymize_uuid);
/// `privacy.pseudonymize_uuid(uuid, key text) RETURNS uuid`.
#[pgrx::pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn privacy_pseudonymize_uuid(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let mac = mac_arg(fcinfo, 1);
    let input = std::slice::from_raw_parts(arg(fcinfo, 0).cast_mut_ptr::<u8>() as *const u8, 16);
    let u = uuid_from_hash(&digest(mac, input));
    let p = pg_sys::palloc(16) as *mut u8;
    std::ptr::copy_nonoverlapping(u.as_ptr(), p, 16);
    pg_sys::Datum::from(p)
}

v1_function!(pg_finfo_privacy_pseudonymize_bigint);
/// `privacy.pseudonymize_bigint(bigint, key text) RETURNS bigint`.
#[pgrx::pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn privacy_pseudonymize_bigint(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let mac = mac_arg(fcinfo, 1);
    let v = arg(fcinfo, 0).value() as i64;
    let r = bigint_from_hash(&digest(mac, &v.to_be_bytes()));
    pg_sys::Datum::from(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_bits() {
        let h = [0xffu8; 32];
        let u = uuid_from_hash(&h);
        assert_eq!(u[6] >> 4, 8, "version 8");
        assert_eq!(u[8] >> 6, 0b10, "RFC variant");
        let z = uuid_from_hash(&[0u8; 32]);
        assert_eq!(z[6], 0x80);
        assert_eq!(z[8], 0x80);
    }

    #[test]
    fn bigint_sign_cleared() {
        let mut h = [0u8; 32];
        h[0] = 0xff;
        h[7] = 0x01;
        assert_eq!(bigint_from_hash(&h), 0x7f00_0000_0000_0001);
        assert!(bigint_from_hash(&[0xff; 32]) > 0);
    }

    #[test]
    fn email_rules() {
        assert_eq!(
            email_parts("Ada@Example.COM"),
            ("ada@example.com".into(), Some("example.com".into()))
        );
        assert_eq!(
            email_parts("\"a@b\"@Example.org"),
            ("\"a@b\"@example.org".into(), Some("example.org".into()))
        );
        assert_eq!(email_parts("no-at-sign"), ("no-at-sign".into(), None));
        assert_eq!(
            email_parts("@example.com"),
            ("@example.com".into(), Some("example.com".into()))
        );
        assert_eq!(email_parts("user@"), ("user@".into(), Some(String::new())));
        assert_eq!(email_parts("ÉLODIE@Exämple.de").0, "élodie@exämple.de");
        let h = [0xabu8; 32];
        assert_eq!(email_result(&h, Some("x.org")), "abababababababab@x.org");
        assert_eq!(email_result(&h, None), "abababababababab@invalid");
    }

    #[test]
    fn email_ascii_fast_path_matches_general_rules() {
        let key = HmacSha256::new_from_slice(b"0123456789abcdef").unwrap();
        let long = format!("{}@Example.COM", "Ab".repeat(300));
        for input in [
            "Ada@Example.COM",
            "\"a@b\"@Example.org",
            "@example.com",
            "user@",
            "no-at-sign",
            "",
            "  Spaces+Tag@X.io ",
            long.as_str(),
        ] {
            let (lower, domain) = email_parts(input);
            let want = email_result(&digest(key.clone(), lower.as_bytes()), domain.as_deref());
            let h = digest_ascii_lower(key.clone(), input.as_bytes());
            let d = ascii_domain(input.as_bytes());
            let mut out = vec![0u8; email_ascii_len(d)];
            write_email_ascii(&h, d, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), want, "{input:?}");
        }
    }
}
