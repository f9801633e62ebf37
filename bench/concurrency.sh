#!/usr/bin/env bash
# Concurrency benchmark: pgbench's standard TPC-B-like workload alone, then
# while the background worker purges half of a large table, plus a second
# pgbench client updating random rows of the very table being purged.
# Reports TPS ratio, client errors, deadlocks, and max per-transaction latency.
# First, with no other load, it times the worker's own path for the purge of
# 50 % of a table (the same engine as run_retention(), one committed
# transaction per batch) against one plain DELETE of the same rows.
#
#   bash bench/concurrency.sh     # CONC_ROWS=2000000 SECONDS_PER_RUN=20 CLIENTS=4
# `make bench` runs it as its `concurrency` section (ONLY=concurrency).
# Needs the release build installed (make bench does it). It installs
# nothing, but the installed library must not change under it: it holds the
# install lock, unless bench/run.sh already does (PG_PRIVACY_INSTALL_LOCK_HELD).
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh

if [ -z "${PG_PRIVACY_INSTALL_LOCK_HELD:-}" ]; then
    exec 9>/tmp/pg_privacy-install.lock
    flock 9
fi

ROWS=${CONC_ROWS:-2000000}
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
CREATE FUNCTION public.bench_ms(q text) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz;
BEGIN
    t0 := clock_timestamp();
    EXECUTE q;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END \$\$;
CREATE TABLE purge_alone_d (LIKE purge_me INCLUDING INDEXES);
INSERT INTO purge_alone_d SELECT * FROM purge_me;
CREATE TABLE purge_alone_w (LIKE purge_me INCLUDING INDEXES);
INSERT INTO purge_alone_w SELECT * FROM purge_me;
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
    cat "$work"/"$1".[0-9]* 2>/dev/null | awk 'BEGIN{m=0} {if ($3 > m) m = $3} END {printf "%.1f", m/1000}'
}
errors_of() { # failed transactions + aborted clients
    local failed aborted
    failed=$(grep -oP 'number of failed transactions: \K[0-9]+' "$work/$1.out" || echo 0)
    aborted=$(grep -c 'aborted' "$work/$1.out" || true)
    echo $((failed + aborted))
}

# The worker's path alone: one plain DELETE of half the rows, then the worker
# purging the same rows of an identical table (no other load).
echo "timing a plain DELETE and the worker's purge of $((ROWS / 2)) rows, no other load…" >&2
delete_ms=$(q "SELECT round(bench_ms('DELETE FROM purge_alone_d WHERE created_at < now() - interval ''1 year''')::numeric)")
q "SELECT privacy.add_retention_policy('purge_alone_w', '1 year', 'created_at', name => 'purge_alone_w')" >/dev/null
t0=$(date +%s.%N)
psql_on $C -d postgres -c "ALTER SYSTEM SET privacy.worker_enabled = on" -c "SELECT pg_reload_conf()" >/dev/null
wait_for $C bench "SELECT EXISTS (SELECT FROM privacy.retention_runs WHERE policy = 'purge_alone_w' AND status <> 'running')" 600
t1=$(date +%s.%N)
worker_alone=$(q "SELECT format('%s rows in %s batches, status %s', rows_affected, batches, status)
                    FROM privacy.retention_runs WHERE policy = 'purge_alone_w'")
worker_run_ms=$(q "SELECT round((extract(epoch FROM finished_at - started_at) * 1000)::numeric)
                     FROM privacy.retention_runs WHERE policy = 'purge_alone_w'")
worker_wall_ms=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
alone_left=$(q "SELECT count(*) FROM purge_alone_w WHERE created_at < now() - interval '1 year'")
q "SELECT privacy.drop_retention_policy('purge_alone_w')" >/dev/null
q "DROP TABLE purge_alone_d, purge_alone_w" >/dev/null

echo "running baseline ($T s, $CLIENTS clients)…" >&2
tps_alone=$(run_tpcb alone)
deadlocks_before=$(q "SELECT deadlocks FROM pg_stat_database WHERE datname = 'bench'")

q "SELECT privacy.add_retention_policy('purge_me', '1 year', 'created_at', name => 'purge_me', schedule_interval => '1 hour')" >/dev/null
echo "running with the worker purging $((ROWS / 2)) rows and a client updating them…" >&2
(cd "$work" && pgb -n -T "$T" -c 2 -j 1 -f update_purged.sql -l --log-prefix=updates bench > "$work/updates.out" 2>&1) &
upd=$!
tps_purge=$(run_tpcb during)
wait $upd || true
# the worker's run may outlast the pgbench window: let it finish, then report
wait_for $C bench "SELECT EXISTS (SELECT FROM privacy.retention_runs WHERE policy = 'purge_me')
                   AND NOT EXISTS (SELECT FROM privacy.retention_runs WHERE policy = 'purge_me' AND status = 'running')" 600
deadlocks_after=$(q "SELECT deadlocks FROM pg_stat_database WHERE datname = 'bench'")
left=$(q "SELECT count(*) FROM purge_me WHERE created_at < now() - interval '1 year'")
runs=$(q "SELECT format('%s run(s) (%s), %s rows in %s batches, %s s from the first start to the last finish', count(*),
                        string_agg(DISTINCT status, ', '), sum(rows_affected), sum(batches),
                        round(extract(epoch FROM max(finished_at) - min(started_at))::numeric, 1))
            FROM privacy.retention_runs WHERE triggered_by = 'worker' AND policy = 'purge_me'")

ratio=$(awk -v a="$tps_alone" -v b="$tps_purge" 'BEGIN{printf "%.2f", b/a}')
echo
echo "- pgbench scale 10, TPC-B-like, $CLIENTS clients, $T s per run; purged table: $ROWS rows, half of them expired;"
echo "  privacy.batch_size = 10000, privacy.naptime = 1s, shared_buffers 512MB"
echo
echo "| purge of $((ROWS / 2)) of $ROWS rows, no other load | ms |"
echo "|---|---:|"
echo "| one plain \`DELETE … WHERE created_at < now() - interval '1 year'\` | $delete_ms |"
echo "| the worker's run (retention_runs finished_at - started_at): $worker_alone, expired rows left: $alone_left | $worker_run_ms |"
echo "| the same, wall clock from enabling the worker to the recorded run (includes discovery, up to naptime) | $worker_wall_ms |"
echo
echo "| ratio | value | target | |"
echo "|---|---:|---:|---|"
awk -v a="$worker_run_ms" -v b="$delete_ms" 'BEGIN { r = a / b; printf "| worker purge / plain DELETE | %.3f | ≤ 1.3 | %s |\n", r, (r <= 1.3) ? "meets target" : "MISSES target" }'
echo
echo "| measure | value |"
echo "|---|---|"
echo "| pgbench TPS alone | $tps_alone |"
echo "| pgbench TPS while the worker purges | $tps_purge |"
echo "| ratio (target ≥ 0.9) | **$ratio** ($(awk -v r="$ratio" 'BEGIN { print (r >= 0.9) ? "meets target" : "MISSES target" }')) |"
echo "| worker purge (pgbench window: $T s) | $runs; expired rows left: $left |"
echo "| TPC-B client errors | $(errors_of during) |"
echo "| update-the-purged-table client errors | $(errors_of updates) |"
echo "| deadlocks | $((deadlocks_after - deadlocks_before)) |"
echo "| max latency, TPC-B alone (ms) | $(max_latency_ms alone) |"
echo "| max latency, TPC-B during purge (ms) | $(max_latency_ms during) |"
echo "| max latency, updates of purged table (ms) | $(max_latency_ms updates) |"
