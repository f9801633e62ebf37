-- pg_privacy 0.1.0 -> 0.2.0 (ALTER EXTENSION pg_privacy UPDATE).
--
-- Every change of the extension's SQL objects between the two versions is
-- made here, in the order a fresh 0.2.0 install creates them: new table
-- columns go last (as in the install script), so the updated catalog is
-- exactly a fresh install's (tests/integration/upgrade.sh compares them).
\echo Use "ALTER EXTENSION pg_privacy UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Issue 18: keys kept separately. Key secrets are stored wrapped under a root
-- key that never enters the database (privacy.root_key_command, see
-- src/rootkey.rs); 0.1.0's clear secrets are wrapped here, by the new
-- library, under the server's root key. Without one the wrapping fails, and
-- with it the whole ALTER EXTENSION UPDATE (nothing is half-done).
-- ---------------------------------------------------------------------------
-- the column keeps its place; it holds the clear secret until wrapped below
ALTER TABLE privacy.key_secrets RENAME COLUMN secret TO wrapped_secret;
ALTER TABLE privacy.key_secrets ADD COLUMN root_key_fingerprint text;
CREATE FUNCTION privacy._wrap_clear_secrets() RETURNS bigint
    VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'privacy_wrap_clear_secrets';
SELECT privacy._wrap_clear_secrets();
DROP FUNCTION privacy._wrap_clear_secrets();
-- Rewrite the table (a column "changed" through an expression forces it):
-- the old row versions, which hold the clear secrets, leave its file at
-- commit instead of waiting for VACUUM. (WAL written before the update, and
-- backups taken before it, still hold them: see docs/security.md.)
ALTER TABLE privacy.key_secrets
    ALTER COLUMN root_key_fingerprint TYPE text USING root_key_fingerprint || '';

CREATE VIEW privacy.key_wrapping AS
SELECT name, version, active, fingerprint, root_key_fingerprint
  FROM privacy.key_secrets;
COMMENT ON VIEW privacy.key_wrapping IS 'Key versions and the fingerprint of the root key that wraps their secret (compare with privacy.root_key_fingerprint())';
REVOKE ALL ON privacy.key_wrapping FROM PUBLIC;
GRANT SELECT ON privacy.key_wrapping TO PUBLIC;

CREATE FUNCTION privacy.root_key_fingerprint() RETURNS text
    STRICT STABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'root_key_fingerprint_wrapper';
CREATE FUNCTION privacy.rotate_root_key() RETURNS bigint
    STRICT VOLATILE PARALLEL UNSAFE LANGUAGE c AS 'MODULE_PATHNAME', 'rotate_root_key_wrapper';
REVOKE EXECUTE ON FUNCTION privacy.rotate_root_key() FROM PUBLIC;
