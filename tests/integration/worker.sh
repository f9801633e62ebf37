#!/usr/bin/env bash
# The background worker on a cluster of its own: purges on schedule in
# batches, finds databases created later, isolates a failing policy, obeys
# SIGHUP (worker_enabled, batch_delay), runs each policy with its owner's privileges, and
# leaves a database where the extension is dropped.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

C=worker
cluster_init $C "privacy.naptime = 1" "privacy.batch_size = 100" "privacy.max_workers = 4" "lc_messages = 'C'"
cluster_start $C || exit 1
trap 'cluster_stop $C' EXIT

q() { sql_value $C "$@"; }

psql_on $C -d postgres -c "CREATE DATABASE app1" >/dev/null
psql_on $C -d app1 >/dev/null <<'SQL'
CREATE EXTENSION pg_privacy;
CREATE TABLE events (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, payload text);
CREATE INDEX ON events (created_at);
INSERT INTO events (created_at, payload)
SELECT now() - interval '100 days', 'old ' || g FROM generate_series(1, 1000) g;
INSERT INTO events (created_at, payload)
SELECT now() - interval '1 day', 'new ' || g FROM generate_series(1, 500) g;
SELECT privacy.add_retention_policy('events', '30 days', 'created_at', schedule_interval => '1 second');
SQL

check "launcher is running" wait_for $C postgres \
    "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'pg_privacy launcher'" 20
check "worker purges expired rows on its own" wait_for $C app1 "SELECT count(*) = 500 FROM events" 30
check "fresh rows are kept" [ "$(q app1 "SELECT count(*) FROM events WHERE payload LIKE 'new %'")" = 500 ]
check "the run is recorded as a worker run with several batches" wait_for $C app1 \
    "SELECT EXISTS (SELECT 1 FROM privacy.retention_runs WHERE triggered_by = 'worker' AND status = 'succeeded'
                     AND rows_affected = 1000 AND batches >= 10)" 10
check "worker visible in pg_stat_activity under its application_name" [ "$(q app1 \
    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_privacy worker' AND datname = 'app1'")" = 1 ]
check "the run is in the audit log" [ "$(q app1 "SELECT count(*) > 0 FROM privacy.audit_log WHERE action LIKE '%run%'")" = t ]

# --- a database created after the cluster started is found by itself
psql_on $C -d postgres -c "CREATE DATABASE app2" >/dev/null
psql_on $C -d app2 >/dev/null <<'SQL'
CREATE EXTENSION pg_privacy;
CREATE TABLE visits (id bigserial PRIMARY KEY, visited_at date NOT NULL);
INSERT INTO visits (visited_at) SELECT current_date - 400 FROM generate_series(1, 250);
INSERT INTO visits (visited_at) SELECT current_date FROM generate_series(1, 50);
SELECT privacy.add_retention_policy('visits', '1 year', 'visited_at', schedule_interval => '1 second');
SQL
check "a database created later is discovered and purged" wait_for $C app2 "SELECT count(*) = 50 FROM visits" 40

# --- one failing policy does not stop the others
psql_on $C -d app1 >/dev/null <<'SQL'
CREATE TABLE parents (id bigint PRIMARY KEY, closed_at timestamptz);
CREATE TABLE children (id bigint PRIMARY KEY, parent_id bigint REFERENCES parents ON DELETE RESTRICT);
INSERT INTO parents SELECT g, now() - interval '3 years' FROM generate_series(1, 10) g;
INSERT INTO children SELECT g, g FROM generate_series(1, 10) g;
CREATE TABLE logs (id bigserial PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO logs (at) SELECT now() - interval '3 years' FROM generate_series(1, 300);
SELECT privacy.add_retention_policy('parents', '1 year', 'closed_at', name => 'parents_fk', schedule_interval => '1 second');
SELECT privacy.add_retention_policy('logs', '1 year', 'at', name => 'logs_purge', schedule_interval => '1 second');
SQL
check "the other policy still purges" wait_for $C app1 "SELECT count(*) = 0 FROM logs" 30
check "the failing policy is recorded with its error" wait_for $C app1 \
    "SELECT EXISTS (SELECT 1 FROM privacy.retention_runs WHERE policy = 'parents_fk' AND status = 'failed'
                     AND error ILIKE '%foreign key%')" 20
check "… with the error's detail and SQLSTATE" wait_for $C app1 \
    "SELECT EXISTS (SELECT 1 FROM privacy.retention_runs WHERE policy = 'parents_fk' AND status = 'failed'
                     AND error LIKE '%is still referenced from table \"children\" (SQLSTATE 23503)')" 5
check "the failed batch changed nothing" [ "$(q app1 "SELECT count(*) FROM parents")" = 10 ]
check "the policy shows its failure" [ "$(q app1 "SELECT last_status FROM privacy.retention_policies WHERE name = 'parents_fk'")" = failed ]
n1=$(q app1 "SELECT count(*) FROM privacy.retention_runs WHERE policy = 'parents_fk'")
sleep 4
n2=$(q app1 "SELECT count(*) FROM privacy.retention_runs WHERE policy = 'parents_fk'")
check "a failing policy backs off (at most 3 retries in 4 s with a 1 s schedule, saw $((n2 - n1)))" [ $((n2 - n1)) -le 3 ]
check "the worker is still alive after the failure" [ "$(q app1 \
    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_privacy worker' AND datname = 'app1'")" = 1 ]

# --- SIGHUP: worker_enabled off stops new work, on resumes it
psql_on $C -d postgres -c "ALTER SYSTEM SET privacy.worker_enabled = off" -c "SELECT pg_reload_conf()" >/dev/null
sleep 2
q app1 "INSERT INTO events (created_at, payload) SELECT now() - interval '100 days', 'late' FROM generate_series(1, 50)" >/dev/null
sleep 4
check "worker_enabled = off: nothing purged" [ "$(q app1 "SELECT count(*) FROM events WHERE payload = 'late'")" = 50 ]
psql_on $C -d postgres -c "ALTER SYSTEM SET privacy.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
check "worker_enabled = on again: purged" wait_for $C app1 "SELECT count(*) = 0 FROM events WHERE payload = 'late'" 20

# --- privacy.batch_delay paces the batches of a worker run (SIGHUP)
psql_on $C -d postgres -c "ALTER SYSTEM SET privacy.batch_delay = '300ms'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 2
q app1 "INSERT INTO events (created_at, payload) SELECT now() - interval '100 days', 'paced' FROM generate_series(1, 500)" >/dev/null
check "batch_delay: the rows are purged" wait_for $C app1 "SELECT count(*) = 0 FROM events WHERE payload = 'paced'" 30
# the rows are gone before the run records its end: wait for the record
wait_for $C app1 "SELECT EXISTS (SELECT 1 FROM privacy.retention_runs
                                  WHERE triggered_by = 'worker' AND rows_affected = 500 AND status = 'succeeded')" 20
check "batch_delay: 5 batches of 100 took at least 4 pauses of 300 ms" [ "$(q app1 \
    "SELECT max(finished_at - started_at) >= interval '1.2 seconds' FROM privacy.retention_runs
      WHERE triggered_by = 'worker' AND rows_affected = 500 AND batches >= 5")" = t ]
psql_on $C -d postgres -c "ALTER SYSTEM RESET privacy.batch_delay" -c "SELECT pg_reload_conf()" >/dev/null

# --- a policy runs with its owner's privileges, never more
psql_on $C -d app1 >/dev/null <<'SQL'
CREATE ROLE alice;
GRANT USAGE ON SCHEMA privacy TO alice;
CREATE TABLE secrets (id bigserial PRIMARY KEY, made_at timestamptz NOT NULL);
INSERT INTO secrets (made_at) SELECT now() - interval '10 years' FROM generate_series(1, 20);
GRANT SELECT, DELETE ON secrets TO alice;
SET ROLE alice;
SELECT privacy.add_retention_policy('secrets', '1 year', 'made_at', name => 'alice_secrets', schedule_interval => '1 second');
RESET ROLE;
REVOKE DELETE ON secrets FROM alice;
SQL
check "a policy whose owner lost DELETE fails with permission denied" wait_for $C app1 \
    "SELECT EXISTS (SELECT 1 FROM privacy.retention_runs WHERE policy = 'alice_secrets' AND status = 'failed'
                     AND error ILIKE '%permission denied%')" 20
check "and deletes nothing" [ "$(q app1 "SELECT count(*) FROM secrets")" = 20 ]

# --- dropping the extension ends that database's worker
q app2 "DROP EXTENSION pg_privacy" >/dev/null
check "worker leaves a database where the extension is dropped" wait_for $C postgres \
    "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'pg_privacy worker' AND datname = 'app2'" 20

# --- clean shutdown: SIGTERM ends launcher and workers without errors
cluster_stop $C
log=$(cluster_dir $C)/server.log
check "workers stop cleanly on shutdown" grep -q "pg_privacy worker for database app1 stopped" "$log"
# (exit code 1 is a FATAL exit: SIGTERM landing inside a statement of a run)
check "no worker crashed" bash -c "! grep -E 'pg_privacy (launcher|worker).*(terminated by signal|exited with exit code ([2-9]|[1-9][0-9]))' '$log'"
exit 0
