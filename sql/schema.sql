-- pg_privacy: purposes and the audit log.
-- Loaded first (extension_sql_file! name = "schema"); later files require it.

CREATE TABLE privacy.purposes (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z_][a-z0-9_]*$' AND length(name) <= 63),
    description text,
    legal_basis text NOT NULL DEFAULT 'consent' CHECK (legal_basis IN
                ('consent', 'contract', 'legal_obligation', 'vital_interests',
                 'public_task', 'legitimate_interests')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE privacy.purposes IS 'Why data is kept, and the GDPR Art. 6 legal basis; written by privacy.define_purpose()';
REVOKE ALL ON privacy.purposes FROM PUBLIC;
GRANT SELECT ON privacy.purposes TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('privacy.purposes', '');

CREATE TABLE privacy.audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor   text NOT NULL DEFAULT current_user,
    action  text NOT NULL,
    object  text,
    details jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE privacy.audit_log IS 'Append-only record of every pg_privacy change, run, export and erasure';
CREATE INDEX audit_log_at_idx ON privacy.audit_log (at);
REVOKE ALL ON privacy.audit_log FROM PUBLIC;
REVOKE ALL ON SEQUENCE privacy.audit_log_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('privacy.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('privacy.audit_log_id_seq', '');

-- Append-only: only a superuser may rewrite history (e.g. to apply a
-- retention rule to the log itself). Everyone else, including a role that
-- was granted UPDATE/DELETE/TRUNCATE by mistake, is refused.
CREATE FUNCTION privacy._audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT COALESCE((SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false) THEN
        RAISE EXCEPTION 'privacy.audit_log is append-only'
            USING ERRCODE = '42501',
                  HINT = 'Only a superuser may ' || lower(TG_OP) || ' audit entries.';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION privacy._audit_log_append_only() FROM PUBLIC;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON privacy.audit_log
    FOR EACH ROW EXECUTE FUNCTION privacy._audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON privacy.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION privacy._audit_log_append_only();
