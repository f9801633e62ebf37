-- pg_privacy: keys and keyed-hash pseudonymization (see src/keys.rs, src/pseudonym.rs).

-- The secrets. Readable and writable by the extension owner only: pg_privacy
-- reads them in Rust as the owner and never returns them. No CHECK or NOT
-- NULL constraint on `secret`: a violation would print the failing row (and
-- so the secret) in the error detail; the Rust code validates instead.
-- A retired version keeps its row for the history but its secret is
-- destroyed (set to NULL) at rotation.
CREATE TABLE privacy.key_secrets (
    name        text NOT NULL,
    version     integer NOT NULL,
    secret      bytea,
    fingerprint text NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz,
    PRIMARY KEY (name, version)
);
CREATE UNIQUE INDEX key_secrets_one_active ON privacy.key_secrets (name) WHERE active;
COMMENT ON TABLE privacy.key_secrets IS 'pg_privacy key secrets: readable by the extension owner only; use the view privacy.keys';
REVOKE ALL ON privacy.key_secrets FROM PUBLIC;
-- A dump carries the keys (pseudonyms stay the same after a restore): dumps
-- therefore contain secrets and must be protected like the keys themselves.
SELECT pg_catalog.pg_extension_config_dump('privacy.key_secrets', '');

-- Everything about the keys but the secrets. A view runs with its owner's
-- privileges, so PUBLIC may read it without any access to the table.
CREATE VIEW privacy.keys AS
SELECT name, version, created_at, active, fingerprint
  FROM privacy.key_secrets;
COMMENT ON VIEW privacy.keys IS 'Keys and their versions: name, version, created_at, active, fingerprint (never the secret)';
REVOKE ALL ON privacy.keys FROM PUBLIC;
GRANT SELECT ON privacy.keys TO PUBLIC;

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
