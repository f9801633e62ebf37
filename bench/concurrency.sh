#!/usr/bin/env bash
# Concurrency benchmark: pgbench's standard TPC-B-like workload alone, then
# while the background worker purges half of a large table, plus a second
# pgbench client updating random rows of the very table being purged.
# Reports TPS ratio, client errors, deadlocks, and max per-transaction latency.
#
#   bash bench/concurrency.sh            # ROWS=2000000 SECONDS_PER_RUN=20 CLIENTS=4
# Needs the release build installed (make bench does it).
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh

ROWS=${ROWS:-2000000}
T=${SECONDS_PER_RUN:-20}
CLIENTS=${CLIENTS:-4}
C=bench_conc
cluster_init $C "privacy.naptime = 1" "privacy.batch_size = 10000" "privacy.worker_enabled = off" \
    "shared_buffers = '512MB'" "max_wal_size = '4GB'" "checkpoint_timeout = '30min'" "lc_messages = 'C'"
cluster_start $C
trap 'cluster_stop $C' EXIT
PGBENCH="$PG_BIN/pgbench"
pgb() { as_pg "$PGBENCH" -h "$(cluster_dir $C)" -p "$(cluster_port $C)" -U postgres "$@"; }
q() { sql_value $C bench "$1"; }

psql_on $C -d postgres -c "CREATE DATABASE bench" >/dev/null
pgb -i -q -s 10 bench >/dev/null 2>&1
psql_on $C -d bench >/dev/null <<SQL
CREATE EXTENSION pg_privacy;
CREATE TABLE purge_me (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, payload text);
INSERT INTO purge_me SELECT g, CASE WHEN g % 2 = 0 THEN now() - interval '2 years' ELSE now() END, md5(g::text)
  FROM generate_series(1, $ROWS) g;
CREATE INDEX ON purge_me (created_at);
VACUUM ANALYZE;
SQL
work=$(cluster_dir $C)/pgbench
install -d -o postgres -g postgres "$work"
cat > "$work/update_purged.sql" <<SQL
\set id random(1, $ROWS)
UPDATE purge_me SET payload = md5(random()::text) WHERE id = :id;
SQL
chown postgres "$work/update_purged.sql"

run_tpcb() { # label -> prints tps, writes logs
    (cd "$work" && pgb -n -T "$T" -c "$CLIENTS" -j 2 -l --log-prefix="$1" bench 2>&1) > "$work/$1.out"
    grep -oP 'tps = \K[0-9.]+(?= \(without)' "$work/$1.out"
}
max_latency_ms() { # log prefix
    cat "$work"/"$1".* 2>/dev/null | awk 'BEGIN{m=0} {if ($3 > m) m = $3} END {printf "%.1f", m/1000}'
}
errors_of() { grep -oP 'number of failed transactions: \K[0-9]+' "$work/$1.out" || echo 0; }

echo "running baseline ($T s, $CLIENTS clients)…" >&2
tps_alone=$(run_tpcb alone)
deadlocks_before=$(q "SELECT deadlocks FROM pg_stat_database WHERE datname = 'bench'")

q "SELECT privacy.add_retention_policy('purge_me', '1 year', 'created_at', schedule_interval => '1 hour')" >/dev/null
psql_on $C -d postgres -c "ALTER SYSTEM SET privacy.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
echo "running with the worker purging $((ROWS / 2)) rows and a client updating them…" >&2
(cd "$work" && pgb -n -T "$T" -c 2 -j 1 -f update_purged.sql -l --log-prefix=updates bench > "$work/updates.out" 2>&1) &
upd=$!
tps_purge=$(run_tpcb during)
wait $upd || true
deadlocks_after=$(q "SELECT deadlocks FROM pg_stat_database WHERE datname = 'bench'")
left=$(q "SELECT count(*) FROM purge_me WHERE created_at < now() - interval '1 year'")
runs=$(q "SELECT format('%s rows in %s batches, %s s', sum(rows_affected), sum(batches),
                        round(extract(epoch FROM max(finished_at) - min(started_at))::numeric, 1))
            FROM privacy.retention_runs WHERE triggered_by = 'worker'")

ratio=$(awk -v a="$tps_alone" -v b="$tps_purge" 'BEGIN{printf "%.2f", b/a}')
echo
echo "| measure | value |"
echo "|---|---|"
echo "| pgbench TPS alone | $tps_alone |"
echo "| pgbench TPS while the worker purges | $tps_purge |"
echo "| ratio (target ≥ 0.9) | **$ratio** |"
echo "| worker purge | $runs; expired rows left: $left |"
echo "| TPC-B client errors | $(errors_of during) |"
echo "| update-the-purged-table client errors | $(errors_of updates) |"
echo "| deadlocks | $((deadlocks_after - deadlocks_before)) |"
echo "| max latency, TPC-B alone (ms) | $(max_latency_ms alone) |"
echo "| max latency, TPC-B during purge (ms) | $(max_latency_ms during) |"
echo "| max latency, updates of purged table (ms) | $(max_latency_ms updates) |"
