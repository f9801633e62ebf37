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

-- Compliance reports (issue 15): declarations, privacy.lint(),
-- privacy.processing_record(), the Markdown export, privacy.require_tags.
-- The tables and event triggers as in sql/reports.sql, the functions as
-- pgrx generates them, the grants as in sql/grants.sql.

-- pg_privacy: compliance reports (src/reports/): what the DBA declares for
-- the record of processing (GDPR Art. 30(1)), and the privacy-by-default
-- event trigger (privacy.require_tags, src/require_tags.rs).
-- The declaration tables are written only by pg_privacy's functions acting
-- as the extension owner (privacy.declare_controller(), declare_recipient(),
-- drop_recipient(), describe_subjects(), all audited); everyone may read
-- them, like privacy.purposes. They are dumped with the data.

-- The controller (Art. 30(1)(a)): one row at most.
CREATE TABLE privacy.controller (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 500),
    contact        text,
    representative text,
    dpo_name       text,
    dpo_contact    text,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE privacy.controller IS 'The controller and its data protection officer, for the record of processing; written by privacy.declare_controller()';
REVOKE ALL ON privacy.controller FROM PUBLIC;
GRANT SELECT ON privacy.controller TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('privacy.controller', '');

-- Recipients (Art. 30(1)(d)) and transfers to third countries (Art. 30(1)(e)).
CREATE TABLE privacy.recipients (
    name          text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
    description   text,
    purposes      text[] NOT NULL DEFAULT '{}',
    country       text,
    third_country boolean NOT NULL DEFAULT false,
    safeguards    text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (country IS NOT NULL OR NOT third_country)
);
COMMENT ON TABLE privacy.recipients IS 'Who receives personal data, for which purposes, and transfers to third countries with their safeguards; written by privacy.declare_recipient()';
REVOKE ALL ON privacy.recipients FROM PUBLIC;
GRANT SELECT ON privacy.recipients TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('privacy.recipients', '');

-- Categories of data subjects (Art. 30(1)(c)): a description per table with
-- a SUBJECT column.
CREATE TABLE privacy.subject_categories (
    table_name  regclass PRIMARY KEY,
    description text NOT NULL CHECK (length(description) BETWEEN 1 AND 2000),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE privacy.subject_categories IS 'What the data subjects of each SUBJECT table are (customers, employees…); written by privacy.describe_subjects()';
REVOKE ALL ON privacy.subject_categories FROM PUBLIC;
GRANT SELECT ON privacy.subject_categories TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('privacy.subject_categories', '');

-- A dropped table takes its description with it (audited), so a new table
-- that reuses the oid does not inherit it.
CREATE FUNCTION privacy._reports_on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        DELETE FROM privacy.subject_categories s
         USING pg_catalog.pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objsubid = 0 AND s.table_name::pg_catalog.oid = d.objid
        RETURNING d.object_identity
    LOOP
        INSERT INTO privacy.audit_log (actor, action, object, details)
        VALUES (session_user, 'describe_subjects', r.object_identity,
                pg_catalog.jsonb_build_object('reason', 'table dropped', 'description', NULL));
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION privacy._reports_on_sql_drop() FROM PUBLIC;
CREATE EVENT TRIGGER privacy_reports_sql_drop ON sql_drop
    EXECUTE FUNCTION privacy._reports_on_sql_drop();

-- Privacy by default (Art. 25): with privacy.require_tags = warn or error,
-- a new column whose name or type looks personal must be tagged (or marked
-- NOT PERSONAL). A version-1 C function (src/require_tags.rs): it reads the
-- statement's parse tree to find the columns ALTER TABLE adds or renames.
CREATE FUNCTION privacy._require_tags() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'privacy_require_tags';
REVOKE ALL ON FUNCTION privacy._require_tags() FROM PUBLIC;
CREATE EVENT TRIGGER privacy_require_tags ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE')
    EXECUTE FUNCTION privacy._require_tags();

-- pg_privacy::reports::declarations::declare_controller
CREATE FUNCTION privacy."declare_controller"(
	"name" TEXT, /* Option < String > */
	"contact" TEXT DEFAULT NULL, /* Option < String > */
	"representative" TEXT DEFAULT NULL, /* Option < String > */
	"dpo_name" TEXT DEFAULT NULL, /* Option < String > */
	"dpo_contact" TEXT DEFAULT NULL /* Option < String > */
) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'declare_controller_wrapper';

-- pg_privacy::reports::declarations::declare_recipient
CREATE FUNCTION privacy."declare_recipient"(
	"name" TEXT, /* Option < String > */
	"description" TEXT DEFAULT NULL, /* Option < String > */
	"purposes" TEXT[] DEFAULT NULL, /* :: std :: option :: Option < Vec < Option < String > > > */
	"country" TEXT DEFAULT NULL, /* Option < String > */
	"third_country" bool DEFAULT false, /* Option < bool > */
	"safeguards" TEXT DEFAULT NULL /* Option < String > */
) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'declare_recipient_wrapper';

-- pg_privacy::reports::declarations::describe_subjects
CREATE FUNCTION privacy."describe_subjects"(
	"tbl" regclass, /* Option < Regclass > */
	"description" TEXT /* Option < String > */
) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'describe_subjects_wrapper';

-- pg_privacy::reports::declarations::drop_recipient
CREATE FUNCTION privacy."drop_recipient"(
	"name" TEXT /* Option < String > */
) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'drop_recipient_wrapper';

-- pg_privacy::reports::access::export_subject_markdown
CREATE FUNCTION privacy."export_subject_markdown"(
	"subject" TEXT /* Option < & str > */
) RETURNS TEXT /* String */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'export_subject_markdown_wrapper';

-- pg_privacy::reports::lint::lint
CREATE FUNCTION privacy."lint"(
	"key_max_age" interval DEFAULT '1 year' /* Option < Interval > */
) RETURNS TABLE (
	"finding" TEXT,  /* String */
	"severity" TEXT,  /* String */
	"object" TEXT,  /* String */
	"problem" TEXT,  /* String */
	"fix_sql" TEXT  /* String */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'lint_wrapper';

-- pg_privacy::reports::record::processing_record
CREATE FUNCTION privacy."processing_record"() RETURNS jsonb /* JsonB */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'processing_record_wrapper';

-- pg_privacy::reports::record::processing_record_markdown
CREATE FUNCTION privacy."processing_record_markdown"() RETURNS TEXT /* String */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'processing_record_markdown_wrapper';

-- Compliance reports (src/reports/): declaring the controller, recipients
-- and subject categories is administrative; the record and the lint show
-- the whole policy, the Markdown export someone's data (like export_subject).
REVOKE EXECUTE ON FUNCTION privacy.declare_controller(text, text, text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.declare_recipient(text, text, text[], text, boolean, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.drop_recipient(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.describe_subjects(regclass, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.lint(interval) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.processing_record() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.processing_record_markdown() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.export_subject_markdown(text) FROM PUBLIC;

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
