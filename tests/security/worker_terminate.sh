#!/usr/bin/env bash
# Issue 11, point 9: the worker stops at once when told, even inside a long
# statement, and leaves its run recorded as interrupted (with the counts of
# the batches it committed): pg_terminate_backend, a fast shutdown and
# DROP DATABASE ... WITH (FORCE). Also: pg_cancel_backend fails the run in
# progress and the worker goes on; while idle a cancel changes nothing.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

C=worker_terminate
cluster_init $C "privacy.naptime = 1" "privacy.batch_size = 50" "lc_messages = 'C'"
cluster_start $C || exit 1
trap 'cluster_stop $C' EXIT
q() { sql_value $C app "$@"; }
LOG=$(cluster_dir $C)/server.log

worker_pid() { # worker_pid DB
    sql_value $C postgres "SELECT pid FROM pg_stat_activity
                            WHERE application_name = 'pg_privacy worker' AND datname = '$1'"
}
# sleeping DB SECONDS: the worker of DB is inside the trigger's pg_sleep, a
# statement of its run
sleeping() {
    wait_for $C postgres "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                                          WHERE application_name = 'pg_privacy worker' AND datname = '$1'
                                            AND state = 'active' AND wait_event = 'PgSleep')" "$2"
}
# gone PID: the process has left pg_stat_activity and the process table.
# Polls for at most 5 s: the assertion is "gone", the bound only ends the wait.
gone() {
    local i st
    for ((i = 0; i < 50; i++)); do
        st=$(ps -o stat= -p "$1" 2>/dev/null | tr -d ' ')
        if [ "$(sql_value $C postgres "SELECT count(*) FROM pg_stat_activity WHERE pid = $1")" = 0 ] \
            && { [ -z "$st" ] || [ "${st:0:1}" = Z ]; }; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}
# is EXPECTED ACTUAL: equality for check, showing both when they differ
is() { [ "$1" = "$2" ] || { echo "  expected [$1], got [$2]" >&2; return 1; }; }
INTERRUPTED="interrupted: the worker was terminated (pg_terminate_backend, shutdown or DROP DATABASE); committed batches are kept (SQLSTATE 57P01)"

psql_on $C -d postgres -c "CREATE DATABASE app" -c "CREATE DATABASE quiet" >/dev/null
psql_on $C -d quiet -c "CREATE EXTENSION pg_privacy" >/dev/null
psql_on $C -d app >/dev/null <<'SQL'
CREATE EXTENSION pg_privacy;
-- an anchor index, distinct anchors: batches of 50 go in anchor order
CREATE TABLE t (id bigint PRIMARY KEY, at timestamptz NOT NULL, slow boolean NOT NULL);
CREATE INDEX ON t (at);
INSERT INTO t SELECT g, now() - interval '3 years' + g * interval '1 minute', g > 100
  FROM generate_series(1, 200) g;
-- a slow row takes ten minutes to delete
CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.slow THEN
        PERFORM pg_catalog.pg_sleep(600);
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER slow BEFORE DELETE ON t FOR EACH ROW EXECUTE FUNCTION slow();
SQL

# --- a cancel while idle cancels nothing
check "the idle worker of database quiet is up" wait_for $C postgres \
    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'pg_privacy worker' AND datname = 'quiet')" 30
quiet_pid=$(worker_pid quiet)
sql_value $C postgres "SELECT pg_cancel_backend($quiet_pid)" >/dev/null
sleep 1
check "pg_cancel_backend on an idle worker leaves it running" [ "$(worker_pid quiet)" = "$quiet_pid" ]

# --- pg_cancel_backend inside a statement: the run fails, the worker goes on
q "SELECT privacy.add_retention_policy('t', '1 year', 'at', name => 'p', schedule_interval => '1 second')" >/dev/null
check "the worker's run is inside the trigger's sleep" sleeping app 30
pid=$(worker_pid app)
sql_value $C postgres "SELECT pg_cancel_backend($pid)" >/dev/null
check "pg_cancel_backend: the run is recorded as failed" wait_for $C app \
    "SELECT EXISTS (SELECT 1 FROM privacy.retention_runs WHERE policy = 'p' AND status = 'failed'
                     AND error = 'canceling statement due to user request (SQLSTATE 57014)')" 10
check "and the same worker goes on" [ "$(worker_pid app)" = "$pid" ]
check "the run's first two batches (the fast rows) are committed" [ "$(q "SELECT count(*) FROM t")" = 100 ]

# --- pg_terminate_backend inside a statement
check "the next run is inside the trigger's sleep" sleeping app 30
# 100 fast rows older than the slow ones: the next run commits two batches
# before it reaches a slow row (this run is already past them)
q "INSERT INTO t SELECT g, now() - interval '4 years' + g * interval '1 minute', false
     FROM generate_series(1001, 1100) g" >/dev/null
pid=$(worker_pid app)
sql_value $C postgres "SELECT pg_terminate_backend($pid)" >/dev/null
check "pg_terminate_backend: the worker is gone at once" gone "$pid"
check "the run is recorded as interrupted" wait_for $C app \
    "SELECT EXISTS (SELECT 1 FROM privacy.retention_runs WHERE policy = 'p' AND status = 'failed'
                     AND error = '$INTERRUPTED'
                     AND run_id = (SELECT max(run_id) FROM privacy.retention_runs WHERE policy = 'p'))" 10
check "no run is left 'running'" [ "$(q "SELECT count(*) FROM privacy.retention_runs WHERE status = 'running'")" = 0 ]
check "the policy shows the failure" \
    [ "$(q "SELECT last_status FROM privacy.retention_policies WHERE name = 'p'")" = failed ]
check "the server log says so" grep -q "run [0-9]* of policy p recorded as interrupted" "$LOG"

check "a new worker comes (5 naptimes later) and its run sleeps again" sleeping app 40
pid=$(worker_pid app)
sql_value $C postgres "SELECT pg_terminate_backend($pid)" >/dev/null
check "the worker is gone at once again" gone "$pid"
check "the interrupted run records its two committed batches (100 rows)" wait_for $C app \
    "SELECT EXISTS (SELECT 1 FROM privacy.retention_runs WHERE policy = 'p' AND error = '$INTERRUPTED'
                     AND rows_affected = 100 AND batches = 2)" 10
check "those rows are deleted, the slow ones kept" is "100 true" "$(q "SELECT count(*) || ' ' || bool_and(slow) FROM t")"

# --- fast shutdown inside a statement (the statement would sleep 10 minutes)
check "a new worker's run sleeps in the trigger" sleeping app 40
check "pg_ctl stop -m fast returns (within its 60 s bound)" cluster_stop $C
cluster_start $C || exit 1
# recorded by the exiting worker itself: the start-up recovery of the next
# worker would have written "ended abnormally"
check "after restart the run shows interrupted, recorded at shutdown" \
    [ "$(q "SELECT status || ' | ' || error FROM privacy.retention_runs
             WHERE policy = 'p' AND started_at < pg_catalog.pg_postmaster_start_time()
             ORDER BY run_id DESC LIMIT 1")" = "failed | $INTERRUPTED" ]

# --- DROP DATABASE ... WITH (FORCE) inside a statement
check "after restart the worker's run sleeps in the trigger" sleeping app 40
pid=$(worker_pid app)
check "DROP DATABASE app WITH (FORCE) succeeds" psql_on $C -d postgres -c "DROP DATABASE app WITH (FORCE)"
check "the database is gone" [ "$(sql_value $C postgres "SELECT count(*) FROM pg_database WHERE datname = 'app'")" = 0 ]
check "and so is its worker" gone "$pid"

# --- SIGTERM while idle: a clean exit
quiet_pid=$(worker_pid quiet)
sql_value $C postgres "SELECT pg_terminate_backend($quiet_pid)" >/dev/null
check "an idle worker leaves at once" gone "$quiet_pid"
check "and says it stopped" grep -q "pg_privacy worker for database quiet stopped" "$LOG"

# --- the launcher: gone at once, started again by the postmaster (10 s)
launcher=$(sql_value $C postgres "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_privacy launcher'")
sql_value $C postgres "SELECT pg_terminate_backend($launcher)" >/dev/null
check "a terminated launcher leaves at once" gone "$launcher"
check "and the postmaster starts it again" wait_for $C postgres \
    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'pg_privacy launcher' AND pid <> $launcher)" 30

cluster_stop $C
check "the launcher stops cleanly at shutdown" grep -q "pg_privacy launcher stopped" "$LOG"
check "no process crashed" bash -c "! grep -E 'terminated by signal|exited with exit code ([2-9]|[1-9][0-9])' '$LOG'"
exit 0
