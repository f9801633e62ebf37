#!/usr/bin/env bash
# Pausing one database's worker: ALTER DATABASE … SET privacy.worker_enabled
# = off is honoured by that database's worker at its next round (no restart),
# while other databases go on; RESET resumes it. A dump restored into a
# database paused beforehand does not purge by itself (docs/operations.md,
# "A restored database purges by itself").
#
# Absence of a purge is checked after a witness database, purged by its own
# worker in the same rounds, has been purged of rows inserted after the pause,
# and three more naptimes have passed.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

C=pause
cluster_init $C "privacy.naptime = 1" "lc_messages = 'C'"
cluster_start $C || exit 1
trap 'cluster_stop $C' EXIT
q() { sql_value $C "$@"; }

setup() { # setup DB: a table with a policy due every second
    psql_on $C -d postgres -c "CREATE DATABASE $1" >/dev/null
    psql_on $C -d "$1" >/dev/null <<'SQL'
CREATE EXTENSION pg_privacy;
CREATE TABLE events (id bigserial PRIMARY KEY, at timestamptz NOT NULL);
CREATE INDEX ON events (at);
SELECT privacy.add_retention_policy('events', '30 days', 'at', schedule_interval => '1 second');
SQL
}
expired() { # expired DB N: insert N expired rows
    psql_on $C -d "$1" -c "INSERT INTO events (at) SELECT now() - interval '90 days' FROM generate_series(1, $2)" >/dev/null
}
witness_round() { # rows inserted into the witness now are purged by its worker
    expired witness 10
    wait_for $C witness "SELECT count(*) = 0 FROM events" 30 && sleep 3
}

setup app
setup witness
expired app 20
check "the worker purges app" wait_for $C app "SELECT count(*) = 0 FROM events" 30

psql_on $C -d postgres -c "ALTER DATABASE app SET privacy.worker_enabled = off" >/dev/null
expired app 20
check "the witness database is still purged" witness_round
check "the paused database is not purged" [ "$(q app "SELECT count(*) FROM events")" = 20 ]
check "manual runs still work in a paused database" \
    [ "$(q app "SELECT rows FROM privacy.run_retention('events_delete', dry_run => true)")" = 20 ]
check "the paused database's worker stays connected" [ "$(q app \
    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_privacy worker' AND datname = 'app'")" = 1 ]

psql_on $C -d postgres -c "ALTER DATABASE app RESET privacy.worker_enabled" >/dev/null
check "RESET resumes it" wait_for $C app "SELECT count(*) = 0 FROM events" 30

# --- restoring a dump paused
expired app 15
psql_on $C -d postgres -c "ALTER DATABASE app SET privacy.worker_enabled = off" >/dev/null
witness_round >/dev/null
dump=$(cluster_dir $C)/app.dump
as_pg "$PG_BIN/pg_dump" -h "$(cluster_dir $C)" -p "$(cluster_port $C)" -U postgres -Fc -f "$dump" app
psql_on $C -d postgres -c "CREATE DATABASE app_copy" \
    -c "ALTER DATABASE app_copy SET privacy.worker_enabled = off" >/dev/null
as_pg "$PG_BIN/pg_restore" -h "$(cluster_dir $C)" -p "$(cluster_port $C)" -U postgres -d app_copy "$dump"
check "the copy has the expired rows and the enabled policy" [ "$(q app_copy \
    "SELECT count(*) || ' ' || bool_and(p.enabled) FROM events, privacy.retention_policies p")" = "15 true" ]
check "the witness database is still purged (after the restore)" witness_round
check "the restored copy, paused, is not purged" [ "$(q app_copy "SELECT count(*) FROM events")" = 15 ]
psql_on $C -d postgres -c "ALTER DATABASE app_copy RESET privacy.worker_enabled" >/dev/null
check "once resumed, the copy is purged" wait_for $C app_copy "SELECT count(*) = 0 FROM events" 30
check "the original, still paused, is not" [ "$(q app "SELECT count(*) FROM events")" = 15 ]
exit 0
