-- pg_privacy: retention policies, legal holds, run history, and the event
-- trigger that forgets policies and holds of dropped tables.
-- Written only by pg_privacy's Rust code acting as the extension owner
-- (src/policies.rs, src/holds.rs, src/purge.rs); read through the views.

CREATE TABLE privacy.retention_policy_defs (
    name              text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 63),
    table_name        regclass NOT NULL,
    anchor            name NOT NULL,
    keep_for          interval NOT NULL CHECK (keep_for >= interval '0'),
    action            text NOT NULL CHECK (action IN ('delete', 'anonymize')),
    row_filter        text,
    purpose           text,
    enabled           boolean NOT NULL DEFAULT true,
    schedule_interval interval NOT NULL CHECK (schedule_interval >= interval '1 second'),
    owner             regrole NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_run_at       timestamptz,
    last_status       text,
    next_run_at       timestamptz NOT NULL DEFAULT now(),
    failures          integer NOT NULL DEFAULT 0
);
COMMENT ON TABLE privacy.retention_policy_defs IS 'Retention policies; written by privacy.add/alter/drop_retention_policy() and runs';
CREATE INDEX retention_policy_defs_table_idx ON privacy.retention_policy_defs (table_name);
REVOKE ALL ON privacy.retention_policy_defs FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('privacy.retention_policy_defs', '');

CREATE VIEW privacy.retention_policies AS
SELECT p.name, p.table_name, p.anchor, p.keep_for, p.action, p.row_filter,
       p.purpose, p.enabled, p.schedule_interval, p.owner,
       p.last_run_at, p.last_status, p.next_run_at
  FROM privacy.retention_policy_defs p;
COMMENT ON VIEW privacy.retention_policies IS 'Every retention policy';
GRANT SELECT ON privacy.retention_policies TO PUBLIC;

CREATE TABLE privacy.legal_holds (
    id          bigserial PRIMARY KEY,
    table_name  regclass,
    subject     text,
    row_filter  text,
    reason      text NOT NULL,
    placed_by   text NOT NULL,
    placed_at   timestamptz NOT NULL DEFAULT now(),
    until       timestamptz,
    released_at timestamptz,
    released_by text,
    CHECK ((table_name IS NOT NULL AND row_filter IS NOT NULL AND subject IS NULL)
        OR (table_name IS NULL AND row_filter IS NULL AND subject IS NOT NULL))
);
COMMENT ON TABLE privacy.legal_holds IS 'Legal holds; written by privacy.place_hold(), place_subject_hold(), release_hold()';
REVOKE ALL ON privacy.legal_holds FROM PUBLIC;
REVOKE ALL ON SEQUENCE privacy.legal_holds_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('privacy.legal_holds', '');
SELECT pg_catalog.pg_extension_config_dump('privacy.legal_holds_id_seq', '');

-- A subject hold names the data subject in clear (it must, to find the
-- rows): the view is closed to PUBLIC, a DBA grants it.
CREATE VIEW privacy.holds AS
SELECT h.id, h.table_name, h.subject, h.row_filter, h.reason, h.placed_by,
       h.placed_at, h.until,
       (h.released_at IS NULL AND (h.until IS NULL OR h.until > pg_catalog.now())) AS active
  FROM privacy.legal_holds h;
COMMENT ON VIEW privacy.holds IS 'Legal holds, active or not';
REVOKE ALL ON privacy.holds FROM PUBLIC;

CREATE TABLE privacy.retention_run_log (
    run_id        bigserial PRIMARY KEY,
    policy        text NOT NULL,
    owner         regrole,
    triggered_by  text NOT NULL CHECK (triggered_by IN ('worker', 'manual')),
    as_of         timestamptz NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at   timestamptz,
    status        text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'dry_run')),
    rows_affected bigint NOT NULL DEFAULT 0,
    rows_held     bigint NOT NULL DEFAULT 0,
    batches       integer NOT NULL DEFAULT 0,
    error         text,
    dry_run       boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE privacy.retention_run_log IS 'One row per retention run; written by the retention engine';
CREATE INDEX retention_run_log_policy_idx ON privacy.retention_run_log (policy, started_at);
REVOKE ALL ON privacy.retention_run_log FROM PUBLIC;
REVOKE ALL ON SEQUENCE privacy.retention_run_log_run_id_seq FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('privacy.retention_run_log', '');
SELECT pg_catalog.pg_extension_config_dump('privacy.retention_run_log_run_id_seq', '');

-- Error texts may quote row values: each role sees the runs of the policies
-- it may run (it is, or is a member of, the policy's owner); a superuser
-- sees all.
CREATE VIEW privacy.retention_runs AS
SELECT r.run_id, r.policy, r.triggered_by, r.as_of, r.started_at, r.finished_at,
       r.status, r.rows_affected, r.rows_held, r.batches, r.error, r.dry_run
  FROM privacy.retention_run_log r
 WHERE CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_roles o WHERE o.oid = r.owner::pg_catalog.oid)
            THEN pg_catalog.pg_has_role(r.owner::pg_catalog.oid, 'USAGE')
            ELSE COALESCE((SELECT o.rolsuper FROM pg_catalog.pg_roles o WHERE o.rolname = current_user), false)
       END;
COMMENT ON VIEW privacy.retention_runs IS 'Retention runs of the policies the current role may run';
GRANT SELECT ON privacy.retention_runs TO PUBLIC;

-- Dropped tables take their policies and filter holds with them (audited),
-- so no policy is left to fail forever.
CREATE FUNCTION privacy._retention_on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        DELETE FROM privacy.retention_policy_defs p
         USING pg_catalog.pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objsubid = 0 AND p.table_name::pg_catalog.oid = d.objid
        RETURNING p.name, d.object_identity
    LOOP
        INSERT INTO privacy.audit_log (actor, action, object, details)
        VALUES (session_user, 'drop_retention_policy', r.name,
                pg_catalog.jsonb_build_object('reason', 'table dropped', 'table', r.object_identity));
    END LOOP;
    FOR r IN
        DELETE FROM privacy.legal_holds h
         USING pg_catalog.pg_event_trigger_dropped_objects() d
         WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
           AND d.objsubid = 0 AND h.table_name::pg_catalog.oid = d.objid
        RETURNING h.id, d.object_identity
    LOOP
        INSERT INTO privacy.audit_log (actor, action, object, details)
        VALUES (session_user, 'release_hold', r.id::text,
                pg_catalog.jsonb_build_object('reason', 'table dropped', 'table', r.object_identity));
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION privacy._retention_on_sql_drop() FROM PUBLIC;
CREATE EVENT TRIGGER privacy_retention_sql_drop ON sql_drop
    EXECUTE FUNCTION privacy._retention_on_sql_drop();
