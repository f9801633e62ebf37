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
