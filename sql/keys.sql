-- pg_privacy: keys and keyed-hash pseudonymization (see src/keys.rs, src/pseudonym.rs).

-- The secrets, wrapped: `wrapped_secret` is the secret encrypted and
-- authenticated under the root key (AES-256-GCM, bound to name and version;
-- see src/rootkey.rs), which never enters the database, and
-- `root_key_fingerprint` names that root key. No clear secret is stored, so
-- the table's pages, the WAL, base backups and dumps hold only the wrapped
-- form. Readable and writable by the extension owner only: pg_privacy reads
-- it in Rust as the owner and never returns a secret. No CHECK or NOT NULL
-- constraint on `wrapped_secret`: the Rust code validates instead. A retired
-- version keeps its row for the history but its secret is destroyed (set to
-- NULL) at rotation.
CREATE TABLE privacy.key_secrets (
    name        text NOT NULL,
    version     integer NOT NULL,
    wrapped_secret bytea,
    fingerprint text NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz,
    root_key_fingerprint text,
    PRIMARY KEY (name, version)
);
CREATE UNIQUE INDEX key_secrets_one_active ON privacy.key_secrets (name) WHERE active;
COMMENT ON TABLE privacy.key_secrets IS 'pg_privacy key secrets: readable by the extension owner only; use the view privacy.keys';
REVOKE ALL ON privacy.key_secrets FROM PUBLIC;
-- A dump carries the wrapped keys: a restore on a server with the same root
-- key gives the same pseudonyms; without it the keys are refused.
SELECT pg_catalog.pg_extension_config_dump('privacy.key_secrets', '');

-- Everything about the keys but the secrets. A view runs with its owner's
-- privileges, so PUBLIC may read it without any access to the table.
CREATE VIEW privacy.keys AS
SELECT name, version, created_at, active, fingerprint
  FROM privacy.key_secrets;
COMMENT ON VIEW privacy.keys IS 'Keys and their versions: name, version, created_at, active, fingerprint (never the secret)';
REVOKE ALL ON privacy.keys FROM PUBLIC;
GRANT SELECT ON privacy.keys TO PUBLIC;

-- Which root key wraps each secret (by fingerprint). Retired versions have
-- no secret left, so no root key.
CREATE VIEW privacy.key_wrapping AS
SELECT name, version, active, fingerprint, root_key_fingerprint
  FROM privacy.key_secrets;
COMMENT ON VIEW privacy.key_wrapping IS 'Key versions and the fingerprint of the root key that wraps their secret (compare with privacy.root_key_fingerprint())';
REVOKE ALL ON privacy.key_wrapping FROM PUBLIC;
GRANT SELECT ON privacy.key_wrapping TO PUBLIC;

-- The pseudonymization functions (version-1 C functions in src/pseudonym.rs).
-- STABLE: the result depends on a key that can be rotated. STRICT: NULL in,
-- NULL out. PARALLEL SAFE: a worker reads the key through the query snapshot.
CREATE FUNCTION privacy.pseudonymize(value text, key text DEFAULT 'default') RETURNS text
    STABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'privacy_pseudonymize_text';
COMMENT ON FUNCTION privacy.pseudonymize(text, text) IS 'HMAC-SHA256 of the UTF-8 bytes under the active secret of key, 64 lowercase hex digits';
CREATE FUNCTION privacy.pseudonymize(value bytea, key text DEFAULT 'default') RETURNS bytea
    STABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'privacy_pseudonymize_bytea';
COMMENT ON FUNCTION privacy.pseudonymize(bytea, text) IS 'HMAC-SHA256 under the active secret of key, 32 raw bytes';
CREATE FUNCTION privacy.pseudonymize_email(value text, key text DEFAULT 'default') RETURNS text
    STABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'privacy_pseudonymize_email';
COMMENT ON FUNCTION privacy.pseudonymize_email(text, text) IS 'first 16 hex of the HMAC of the lowercased address, @, the lowercased domain';
CREATE FUNCTION privacy.pseudonymize_uuid(value uuid, key text DEFAULT 'default') RETURNS uuid
    STABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'privacy_pseudonymize_uuid';
COMMENT ON FUNCTION privacy.pseudonymize_uuid(uuid, text) IS 'first 16 bytes of the HMAC of the uuid bytes, as a version 8 uuid';
CREATE FUNCTION privacy.pseudonymize_bigint(value bigint, key text DEFAULT 'default') RETURNS bigint
    STABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'privacy_pseudonymize_bigint';
COMMENT ON FUNCTION privacy.pseudonymize_bigint(bigint, text) IS 'first 8 bytes of the HMAC of the 8 big-endian bytes, sign bit cleared';

-- A DBA grants these, e.g.
--   GRANT EXECUTE ON FUNCTION privacy.pseudonymize(text, text) TO analyst;
REVOKE EXECUTE ON FUNCTION privacy.pseudonymize(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.pseudonymize(bytea, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.pseudonymize_email(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.pseudonymize_uuid(uuid, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.pseudonymize_bigint(bigint, text) FROM PUBLIC;
