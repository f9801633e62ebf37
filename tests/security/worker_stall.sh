#!/usr/bin/env bash
# Issue 11, point 8: one policy cannot stall all retention of a database.
# privacy.run_timeout bounds every worker run: a run whose table's trigger
# sleeps is cancelled inside that statement (even though the trigger lifts
# statement_timeout first), recorded as failed (57014), its policy backs off,
# and the other due policy of the database runs right after. A trigger that
# catches the cancel and goes on is ended with the worker process, the run
# recorded, and a new worker serves the database.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

C=worker_stall
cluster_init $C "privacy.naptime = 1" "privacy.run_timeout = '2s'" "lc_messages = 'C'"
cluster_start $C || exit 1
trap 'cluster_stop $C' EXIT
q() { sql_value $C app "$@"; }
worker_pid() {
    q "SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_privacy worker' AND datname = 'app'"
}
run_of() { # run_of POLICY COLUMN: that column of the policy's latest run
    q "SELECT $2 FROM privacy.retention_runs WHERE policy = '$1' ORDER BY run_id DESC LIMIT 1"
}

check "run_timeout is a reload setting shown in its unit" \
    [ "$(sql_value $C postgres "SELECT setting || ' ' || unit || ' ' || context FROM pg_settings WHERE name = 'privacy.run_timeout'")" = "2000 ms sighup" ]
check "run_timeout defaults to one hour" \
    [ "$(sql_value $C postgres "SELECT boot_val FROM pg_settings WHERE name = 'privacy.run_timeout'")" = 3600000 ]

psql_on $C -d postgres -c "CREATE DATABASE app" >/dev/null
psql_on $C -d app >/dev/null <<'SQL'
CREATE EXTENSION pg_privacy;
CREATE TABLE a_slow (id bigint PRIMARY KEY, at timestamptz NOT NULL);
CREATE INDEX ON a_slow (at);
CREATE TABLE b_fast (id bigint PRIMARY KEY, at timestamptz NOT NULL);
CREATE INDEX ON b_fast (at);
INSERT INTO a_slow SELECT g, now() - interval '3 years' FROM generate_series(1, 10) g;
INSERT INTO b_fast SELECT g, now() - interval '3 years' FROM generate_series(1, 10) g;
-- the table owner's trigger lifts statement_timeout, then sleeps a minute a row
CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.set_config('statement_timeout', '0', false);
    PERFORM pg_catalog.set_config('statement_timeout', '0', true);
    PERFORM pg_catalog.pg_sleep(60);
    RETURN OLD;
END $$;
CREATE TRIGGER stall BEFORE DELETE ON a_slow FOR EACH ROW EXECUTE FUNCTION stall();
-- both due at the same moment: a_slow comes first (name order); an hourly
-- schedule, so that neither runs twice during the test
BEGIN;
SELECT privacy.add_retention_policy('a_slow', '1 year', 'at', name => 'a_slow', schedule_interval => '1 hour');
SELECT privacy.add_retention_policy('b_fast', '1 year', 'at', name => 'b_fast', schedule_interval => '1 hour');
COMMIT;
SQL

# a_slow's rows would take 10 minutes to delete: b_fast done within 30 s
# means a_slow's run was cut
check "the other due policy still runs (within 30 s, while a_slow's trigger sleeps 60 s a row)" \
    wait_for $C app "SELECT EXISTS (SELECT 1 FROM privacy.retention_runs
                                     WHERE policy = 'b_fast' AND status = 'succeeded' AND rows_affected = 10)" 30
check "the stalled run is recorded as failed with the time bound's error" \
    [ "$(run_of a_slow "status || ' | ' || error")" = "failed | run exceeded privacy.run_timeout (2s); committed batches are kept (SQLSTATE 57014)" ]
check "a_slow ran first and b_fast started only after a_slow's run was over" [ "$(q "
    SELECT a.run_id < b.run_id AND b.started_at >= a.finished_at
      FROM privacy.retention_runs a, privacy.retention_runs b
     WHERE a.policy = 'a_slow' AND b.policy = 'b_fast'")" = t ]
check "the cancelled batch changed nothing" [ "$(q "SELECT count(*) FROM a_slow")" = 10 ]
check "the policy failed and backs off (failures = 1, next run after the failed one)" [ "$(q "
    SELECT d.last_status = 'failed' AND d.failures = 1 AND d.next_run_at > r.finished_at
      FROM privacy.retention_policy_defs d, privacy.retention_runs r
     WHERE d.name = 'a_slow' AND r.policy = 'a_slow'")" = t ]
check "the worker is alive and no longer inside the trigger's sleep" [ "$(q "
    SELECT count(*) FILTER (WHERE wait_event IS DISTINCT FROM 'PgSleep') || '/' || count(*)
      FROM pg_stat_activity WHERE application_name = 'pg_privacy worker' AND datname = 'app'")" = 1/1 ]

# --- a manual run is bounded by the caller's statement_timeout (documented):
# the trigger's set_config cannot lift the timer armed for the statement
err=$(psql_on $C -d app -At -c "SET statement_timeout = '1s'" -c '\set VERBOSITY verbose' \
    -c "SELECT privacy.run_retention('a_slow')" 2>&1 >/dev/null)
check "a manual run is cancelled by the caller's statement_timeout" \
    grep -q "ERROR:  57014: canceling statement due to statement timeout" <<<"$err"
check "and changed nothing" [ "$(q "SELECT count(*) FROM a_slow")" = 10 ]

# --- code that catches the cancel and goes on: the worker ends itself
pid_before=$(worker_pid)
psql_on $C -d app >/dev/null <<'SQL'
CREATE TABLE c_stubborn (id bigint PRIMARY KEY, at timestamptz NOT NULL);
CREATE INDEX ON c_stubborn (at);
INSERT INTO c_stubborn SELECT g, now() - interval '3 years' FROM generate_series(1, 10) g;
CREATE FUNCTION stubborn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM pg_catalog.pg_sleep(60);
    EXCEPTION WHEN query_canceled THEN
        PERFORM pg_catalog.pg_sleep(60);
    END;
    RETURN OLD;
END $$;
CREATE TRIGGER stubborn BEFORE DELETE ON c_stubborn FOR EACH ROW EXECUTE FUNCTION stubborn();
SELECT privacy.add_retention_policy('c_stubborn', '1 year', 'at', name => 'c_stubborn', schedule_interval => '1 hour');
SQL
check "a run whose code swallows the cancel is recorded as failed once the worker has ended it" \
    wait_for $C app "SELECT EXISTS (SELECT 1 FROM privacy.retention_runs
                                     WHERE policy = 'c_stubborn' AND status = 'failed'
                                       AND error = 'run exceeded privacy.run_timeout (2s) and its statement went on '
                                                || 'after the cancel: the worker process was ended; committed batches '
                                                || 'are kept (SQLSTATE 57014)')" 30
check "the worker that ran it is gone" wait_for $C app \
    "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $pid_before)" 10
check "its batch changed nothing" [ "$(q "SELECT count(*) FROM c_stubborn")" = 10 ]
psql_on $C -d app >/dev/null <<'SQL'
CREATE TABLE d_after (id bigint PRIMARY KEY, at timestamptz NOT NULL);
CREATE INDEX ON d_after (at);
INSERT INTO d_after SELECT g, now() - interval '3 years' FROM generate_series(1, 10) g;
SELECT privacy.add_retention_policy('d_after', '1 year', 'at', name => 'd_after', schedule_interval => '1 hour');
SQL
check "a new worker serves the database and runs its policies" \
    wait_for $C app "SELECT EXISTS (SELECT 1 FROM privacy.retention_runs
                                     WHERE policy = 'd_after' AND status = 'succeeded' AND rows_affected = 10)" 40
check "no run is left 'running'" [ "$(q "SELECT count(*) FROM privacy.retention_runs WHERE status = 'running'")" = 0 ]

cluster_stop $C
log=$(cluster_dir $C)/server.log
check "no process crashed" bash -c "! grep -E 'terminated by signal|exited with exit code ([2-9]|[1-9][0-9])' '$log'"
exit 0
