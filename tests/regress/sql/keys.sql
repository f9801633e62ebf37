-- Keys and keyed-hash pseudonymization: a user's session, with expected output.
-- Secrets are given here so that the output is reproducible.
CREATE EXTENSION IF NOT EXISTS pg_privacy;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
BEGIN;
-- create_key returns the fingerprint: first 16 hex of SHA-256 of the secret
SELECT privacy.create_key('default', '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f');
SELECT left(encode(sha256('\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'), 'hex'), 16) AS sha256_prefix;
SELECT name, version, active, fingerprint FROM privacy.keys WHERE name NOT LIKE '\_%' ORDER BY name, version;
-- stored wrapped under the root key (never in clear): format tag, nonce, ciphertext, tag
SELECT octet_length(wrapped_secret) AS wrapped_length,
       position('\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea IN wrapped_secret) = 0 AS not_in_clear,
       root_key_fingerprint = privacy.root_key_fingerprint() AS under_this_root_key
  FROM privacy.key_secrets WHERE name = 'default';

-- text: 64 lowercase hex, equal to pgcrypto's HMAC
SELECT privacy.pseudonymize('ada@example.com') AS pseudonym;
SELECT privacy.pseudonymize('ada@example.com')
     = encode(hmac(convert_to('ada@example.com', 'UTF8'),
                   '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea, 'sha256'), 'hex')
       AS equals_pgcrypto;
SELECT privacy.pseudonymize('') AS empty, privacy.pseudonymize('Zoë ☃') AS utf8;
-- bytea: 32 raw bytes
SELECT privacy.pseudonymize('\xdeadbeef'::bytea);
-- bigint: first 8 bytes, big-endian, sign bit cleared; uuid: version 8
SELECT privacy.pseudonymize_bigint(42), privacy.pseudonymize_bigint(-1);
SELECT privacy.pseudonymize_uuid('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
-- email: hash of the lowercased address, lowercased domain after the last @
SELECT v AS address, privacy.pseudonymize_email(v) AS pseudonym
  FROM (VALUES ('Ada@Example.COM'), ('ada@example.com'), ('"a@b"@Example.org'),
               ('@example.com'), ('user@'), ('no-at-sign'), ('')) t(v);
-- NULL in, NULL out
SELECT privacy.pseudonymize(NULL::text) IS NULL AS t1, privacy.pseudonymize_email(NULL) IS NULL AS t2,
       privacy.pseudonymize_uuid(NULL) IS NULL AS t3, privacy.pseudonymize_bigint(NULL) IS NULL AS t4,
       privacy.pseudonymize('x', NULL) IS NULL AS t5;

-- a second key gives other pseudonyms
SELECT privacy.create_key('analytics', '\xffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100');
SELECT privacy.pseudonymize('ada@example.com', 'analytics') <> privacy.pseudonymize('ada@example.com') AS differs;

-- rotation: a new active version, the old secret destroyed, new pseudonyms
SELECT privacy.pseudonymize('ada@example.com', 'analytics') AS before_rotation \gset
SELECT length(privacy.rotate_key('analytics')) AS fingerprint_length;
SELECT name, version, active FROM privacy.keys WHERE name = 'analytics' ORDER BY version;
SELECT version, wrapped_secret IS NULL AS secret_destroyed, root_key_fingerprint IS NOT NULL AS wrapped
  FROM privacy.key_secrets WHERE name = 'analytics' ORDER BY version;
SELECT privacy.pseudonymize('ada@example.com', 'analytics') <> :'before_rotation' AS uses_new_secret;

-- drop: every version deleted (crypto-shredding)
SELECT privacy.drop_key('analytics');
SELECT count(*) AS versions_left FROM privacy.key_secrets WHERE name = 'analytics';

-- the audit trail: fingerprints only
SELECT action, object, details - 'fingerprint' - 'previous_fingerprint' - 'fingerprints' AS details,
       details ? 'fingerprint' OR details ? 'fingerprints' AS has_fingerprint
  FROM privacy.audit_log WHERE action LIKE '%key' ORDER BY id;
ROLLBACK;

-- A rolled-back rotation leaves the session on the old key.
BEGIN;
SELECT privacy.create_key('k', '\x0f0e0d0c0b0a09080706050403020100');
SAVEPOINT s;
SELECT privacy.pseudonymize('x', 'k') AS before_rotation \gset
SELECT :'before_rotation' AS before_rotation;
SELECT privacy.rotate_key('k') IS NOT NULL AS rotated;
SELECT privacy.pseudonymize('x', 'k') <> :'before_rotation' AS changed;
ROLLBACK TO s;
SELECT privacy.pseudonymize('x', 'k') = :'before_rotation' AS restored_after_rollback;
ROLLBACK;

-- Every error, with its SQLSTATE.
\set VERBOSITY default
\set ON_ERROR_STOP 0
BEGIN;
SELECT privacy.create_key('k', '\x0f0e0d0c0b0a09080706050403020100');
SAVEPOINT s;
SELECT privacy.pseudonymize('x', 'nokey');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.pseudonymize_email('a@b', 'nokey');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.create_key('k');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.create_key('short', '\x00010203040506070809');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.create_key('no spaces');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.create_key('_audit');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.pseudonymize('x', '_audit');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.create_key(NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.rotate_key('nokey');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.drop_key('nokey');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
-- an ordinary role: no secret, no function without a grant
CREATE ROLE keys_regress_user;
GRANT USAGE ON SCHEMA privacy TO keys_regress_user;
SET ROLE keys_regress_user;
SELECT name, version FROM privacy.keys WHERE name = 'k';
SAVEPOINT r;
SELECT wrapped_secret FROM privacy.key_secrets;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO r;
SELECT privacy.pseudonymize('x', 'k');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO r;
SELECT privacy.rotate_key('k');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO r;
RESET ROLE;
GRANT EXECUTE ON FUNCTION privacy.pseudonymize(text, text) TO keys_regress_user;
SET ROLE keys_regress_user;
SELECT privacy.pseudonymize('x', 'k') AS granted;
RESET ROLE;
ROLLBACK;
\set ON_ERROR_STOP 1
