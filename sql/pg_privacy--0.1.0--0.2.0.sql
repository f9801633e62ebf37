-- pg_privacy 0.1.0 -> 0.2.0 (ALTER EXTENSION pg_privacy UPDATE).
--
-- Every change of the extension's SQL objects between the two versions is
-- made here, in the order a fresh 0.2.0 install creates them: new table
-- columns go last (as in the install script), so the updated catalog is
-- exactly a fresh install's (tests/integration/upgrade.sh compares them).
\echo Use "ALTER EXTENSION pg_privacy UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Issue 13, retention semantics (branch sem)
-- keep_for may be zero ("deleted at once"), never negative.
ALTER TABLE privacy.retention_policy_defs
    DROP CONSTRAINT retention_policy_defs_keep_for_check,
    ADD CONSTRAINT retention_policy_defs_keep_for_check CHECK (keep_for >= interval '0');
-- add_retention_policy(..., enabled => false) creates a policy disabled: the
-- new last parameter changes the signature (as a fresh install defines it).
DROP FUNCTION privacy.add_retention_policy(regclass, interval, name, text, text, text, text, interval);
CREATE FUNCTION privacy."add_retention_policy"(
	"tbl" regclass, /* Option < Regclass > */
	"keep_for" interval, /* Option < Interval > */
	"anchor" name, /* Option < SqlName > */
	"action" TEXT DEFAULT 'delete', /* Option < String > */
	"row_filter" TEXT DEFAULT NULL, /* Option < String > */
	"purpose" TEXT DEFAULT NULL, /* Option < String > */
	"name" TEXT DEFAULT NULL, /* Option < String > */
	"schedule_interval" interval DEFAULT '1 hour', /* Option < Interval > */
	"enabled" bool DEFAULT true /* Option < bool > */
) RETURNS TEXT /* String */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'add_retention_policy_wrapper';
-- A dry run executes the real statements and rolls them back; a failed dry
-- run is recorded as failed: retention_runs shows which runs were dry.
CREATE OR REPLACE VIEW privacy.retention_runs AS
SELECT r.run_id, r.policy, r.triggered_by, r.as_of, r.started_at, r.finished_at,
       r.status, r.rows_affected, r.rows_held, r.batches, r.error, r.dry_run
  FROM privacy.retention_run_log r
 WHERE CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_roles o WHERE o.oid = r.owner::pg_catalog.oid)
            THEN pg_catalog.pg_has_role(r.owner::pg_catalog.oid, 'USAGE')
            ELSE COALESCE((SELECT o.rolsuper FROM pg_catalog.pg_roles o WHERE o.rolname = current_user), false)
       END;
