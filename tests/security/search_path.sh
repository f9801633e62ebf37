#!/usr/bin/env bash
# Attack 1 (and point 2 of the brief): a hostile, non-superuser table owner
# plants "=" operators in its own schema and gets them on the search_path of
# the sessions that call pg_privacy — by a superuser's own setting, by
# set_config() from a trigger during a run, by ALTER DATABASE … SET for the
# background worker. Every operator would record who ran it and try to make
# the owner a superuser. Secure outcome: pg_privacy's internal queries never
# resolve anything in that schema (the side-effect table stays empty, the
# owner stays an ordinary role), while the operators demonstrably capture a
# plain query (control) and the owner's trigger does run (as the owner).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/security/common.inc
sec_cluster sec_search_path "privacy.naptime = 1" "privacy.worker_enabled = off"

as app_owner >/dev/null <<'SQL'
CREATE SCHEMA app;
GRANT USAGE ON SCHEMA app TO PUBLIC;
CREATE TABLE app.side (who text, what text);
GRANT INSERT, SELECT ON app.side TO PUBLIC;
DO $d$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['name', 'oid', 'text', 'int2', 'int4', 'int8', 'bool', 'regclass', 'regrole'] LOOP
    EXECUTE format($f$
      CREATE FUNCTION app.pwn_%1$s(a %1$s, b %1$s) RETURNS boolean LANGUAGE plpgsql AS $b$
      BEGIN
        INSERT INTO app.side VALUES (current_user::text, %2$L);
        BEGIN
          EXECUTE 'ALTER ROLE app_owner SUPERUSER';
        EXCEPTION WHEN OTHERS THEN NULL;
        END;
        RETURN a::text OPERATOR(pg_catalog.=) b::text;
      END $b$;
      CREATE OPERATOR app.= (LEFTARG = %1$s, RIGHTARG = %1$s, FUNCTION = app.pwn_%1$s);
    $f$, t, t);
  END LOOP;
END $d$;
CREATE TABLE app.accounts (id bigint PRIMARY KEY, email text, gone timestamptz);
INSERT INTO app.accounts SELECT g, 'u' || g || '@example.com', now() - interval '2 years'
  FROM generate_series(1, 20) g;
INSERT INTO app.accounts SELECT g, 'u' || g || '@example.com', now()
  FROM generate_series(21, 25) g;
CREATE TABLE app.trigger_log (who text, path text);
GRANT INSERT, SELECT ON app.trigger_log TO PUBLIC;
CREATE FUNCTION app.on_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_catalog.set_config('search_path', 'app, pg_catalog', false);
  INSERT INTO app.trigger_log VALUES (current_user, pg_catalog.current_setting('search_path'));
  RETURN OLD;
END $$;
CREATE TRIGGER on_delete BEFORE DELETE ON app.accounts FOR EACH ROW EXECUTE FUNCTION app.on_delete();
SECURITY LABEL FOR privacy ON COLUMN app.accounts.id IS 'SUBJECT';
SELECT privacy.add_retention_policy('app.accounts', '1 year', 'gone', name => 'acc');
GRANT SELECT, DELETE ON app.accounts TO backoffice;
SQL

# control: the operators do capture a plain query on that path (run as the
# owner itself, so that the control escalates nothing)
as app_owner -c "SET search_path = app, pg_catalog" \
    -c "SELECT count(*) FROM pg_catalog.pg_extension WHERE extname = 'pg_privacy'" >/dev/null
check "control: the planted operator captures a plain query" is t "$(pq "SELECT count(*) > 0 FROM app.side")"
pq "TRUNCATE app.side" >/dev/null

# the attack as reported: the superuser's own path is the default; during
# the run the owner's trigger puts its schema first with set_config(…, false)
out=$(as postgres -c "SELECT count(*) FROM privacy.run_retention()" -c "SHOW search_path" 2>&1)
check "a run whose trigger changes the path succeeds" no_error "$out"
check "the trigger ran and changed the path inside the run" is "app_owner|app, pg_catalog" \
    "$(pq "SELECT DISTINCT who || '|' || path FROM app.trigger_log")"
check "the trigger's setting did not survive the run" is '"$user", public' "$(tail -1 <<<"$out")"
check "no planted operator ran after the trigger" is 0 "$(pq "SELECT count(*) FROM app.side")"
check "the owner is not a superuser after the run" is f \
    "$(pq "SELECT rolsuper FROM pg_roles WHERE rolname = 'app_owner'")"
check "the run purged the expired rows" is 5 "$(pq "SELECT count(*) FROM app.accounts")"

# the superuser calls pg_privacy with the owner's schema first on its path
out=$(as postgres -c "SET search_path = app, pg_catalog" \
    -c "SELECT count(*) FROM privacy.run_retention()" \
    -c "SELECT privacy.export_subject('21') IS NOT NULL" \
    -c "SELECT count(*) FROM privacy.forget_subject('21')" \
    -c "SELECT count(*) FROM privacy.forget_subject('22', dry_run => true)" \
    -c "SECURITY LABEL FOR privacy ON COLUMN app.accounts.email IS 'PURPOSE service'" \
    -c "SELECT privacy.tag_column('app.accounts', 'email', ARRAY['service'], 'contact')" \
    -c "SELECT privacy.create_key('k1') IS NOT NULL" \
    -c "SELECT privacy.pseudonymize('x', 'k1') IS NOT NULL" \
    -c "SELECT privacy.place_subject_hold('6', 'case 1') > 0" \
    -c "SELECT privacy.place_hold('app.accounts', 'id > 1000', 'case 2') > 0" \
    -c "SELECT privacy.object_to_purpose('8', 'service')" \
    -c "SELECT privacy.alter_retention_policy('acc', keep_for => '1 year')" \
    -c "SHOW search_path" 2>&1)
check "every call succeeded under the hostile path" no_error "$out"
check "the caller's search_path is left as it was" is "app, pg_catalog" "$(tail -1 <<<"$out")"
check "the owner's trigger ran during the run and the erasure, as the owner" \
    is app_owner "$(pq "SELECT string_agg(DISTINCT who, ',') FROM app.trigger_log")"
check "the run and the erasure did their work" is 4 "$(pq "SELECT count(*) FROM app.accounts")"
check "no planted operator ran in any pg_privacy query" is 0 "$(pq "SELECT count(*) FROM app.side")"
check "the owner did not become a superuser" is f \
    "$(pq "SELECT rolsuper FROM pg_roles WHERE rolname = 'app_owner'")"

# the back office with the hostile path in its own session
out=$(as backoffice -c "SET search_path = app, pg_catalog" -c "SELECT privacy.export_subject('23') IS NOT NULL" \
    -c "SELECT count(*) FROM privacy.forget_subject('23')" 2>&1)
check "the back office's calls succeed under that path" no_error "$out"
check "the back office's calls run no planted operator" is 0 "$(pq "SELECT count(*) FROM app.side")"
check "the back office's erasure happened" is 3 "$(pq "SELECT count(*) FROM app.accounts")"

# the background worker: the database owner sets the path for every session
# of the database, the worker's included (read when it connects)
as app_owner -c "ALTER DATABASE sec SET search_path = app, pg_catalog" >/dev/null
pq "INSERT INTO app.accounts SELECT g, 'w' || g, now() - interval '2 years' FROM generate_series(100, 150) g" >/dev/null
as app_owner -c "SELECT privacy.alter_retention_policy('acc', schedule_interval => '1 second')" >/dev/null
pq "ALTER SYSTEM SET privacy.worker_enabled = on" >/dev/null
cluster_stop "$SEC"
cluster_start "$SEC" || exit 1
check "the worker purges under the database's hostile path" wait_for "$SEC" sec \
    "SET search_path = pg_catalog; SELECT count(*) = 0 FROM app.accounts WHERE id >= 100" 40
check "the worker's run is recorded as succeeded" wait_for "$SEC" sec \
    "SET search_path = pg_catalog; SELECT EXISTS (SELECT 1 FROM privacy.retention_runs
                                      WHERE triggered_by = 'worker' AND status = 'succeeded')" 20
check "the owner's trigger ran in the worker's run, as the owner" \
    is app_owner "$(pq "SELECT string_agg(DISTINCT who, ',') FROM app.trigger_log")"
check "no planted operator ran in the worker" is 0 "$(pq "SELECT count(*) FROM app.side")"
check "the owner is still not a superuser" is f \
    "$(pq "SELECT rolsuper FROM pg_roles WHERE rolname = 'app_owner'")"
exit 0
