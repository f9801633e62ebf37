#!/usr/bin/env bash
# A physical standby made with pg_basebackup: the launcher never starts there
# (it waits for recovery to finish), the standby stays idle and error-free
# while it replays the primary's purges, and after promotion it purges itself.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

P=primary
S=standby
cluster_init $P "privacy.naptime = 1" "lc_messages = 'C'" "wal_level = replica" "max_wal_senders = 4"
echo "host replication postgres 127.0.0.1/32 trust" | as_pg tee -a "$(cluster_dir $P)/data/pg_hba.conf" >/dev/null
cluster_start $P || exit 1
trap 'cluster_stop $S; cluster_stop $P' EXIT
psql_on $P -d postgres -c "CREATE DATABASE app" >/dev/null
psql_on $P -d app >/dev/null <<'SQL'
CREATE EXTENSION pg_privacy;
CREATE TABLE sessions (id bigserial PRIMARY KEY, seen_at timestamptz NOT NULL);
INSERT INTO sessions (seen_at) SELECT now() FROM generate_series(1, 100);
SELECT privacy.add_retention_policy('sessions', '7 days', 'seen_at', schedule_interval => '1 second');
SQL

# standby
sdir=$(cluster_dir $S)
cluster_stop $S 2>/dev/null; rm -rf "$sdir"; install -d -o postgres -g postgres "$sdir"
as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$(cluster_port $P)" -U postgres -D "$sdir/data" -R -X stream >/dev/null 2>&1
sport=$(free_port); echo "$sport" | as_pg tee "$sdir/port" >/dev/null
printf "port = %s\nunix_socket_directories = '%s'\n" "$sport" "$sdir" | as_pg tee -a "$sdir/data/postgresql.conf" >/dev/null
cluster_start $S || exit 1

check "standby is in recovery" [ "$(sql_value $S app "SELECT pg_is_in_recovery()")" = t ]
q_p() { sql_value $P app "$1"; }
q_p "INSERT INTO sessions (seen_at) SELECT now() - interval '30 days' FROM generate_series(1, 40)" >/dev/null
check "primary purges" wait_for $P app "SELECT count(*) = 100 FROM sessions" 30
check "standby replays the purge" wait_for $S app "SELECT count(*) = 100 FROM sessions" 30
sleep 3
check "no pg_privacy process on the standby" [ "$(sql_value $S postgres \
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'pg_privacy%'")" = 0 ]
check "standby log has no errors" bash -c "! grep -E 'ERROR|FATAL|PANIC' '$sdir/server.log' | grep -v 'the database system is starting up'"

# promotion: the promoted node runs its policies itself
as_pg "$PG_BIN/pg_ctl" -D "$sdir/data" -w promote >/dev/null
cluster_stop $P
check "promoted node leaves recovery" wait_for $S app "SELECT NOT pg_is_in_recovery()" 30
sql_value $S app "INSERT INTO sessions (seen_at) SELECT now() - interval '30 days' FROM generate_series(1, 25)" >/dev/null
check "after promotion the worker purges there" wait_for $S app "SELECT count(*) = 100 FROM sessions" 40
exit 0
