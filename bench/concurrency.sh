#!/usr/bin/env bash
# Concurrency benchmark, on its own cluster:
# 1. with no other load, the worker's purge of 50 % of a table (the same
#    engine as run_retention(), one committed transaction per batch) against
#    one plain DELETE of the same rows;
# 2. pgbench's standard TPC-B-like workload alone, then again while the
#    background worker purges half of a large table: the TPS ratio counts the
#    transactions completed while the run was going on;
# 3. the same while two more pgbench clients update random rows of the very
#    table being purged: client errors, deadlocks, max per-transaction
#    latency.
#
#   bash bench/concurrency.sh     # CONC_ROWS=2000000 SECONDS_PER_RUN=20 CLIENTS=4 BATCH_DELAY=0
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
BATCH_DELAY=${BATCH_DELAY:-0}
C=bench_conc
cluster_init $C "privacy.naptime = 1" "privacy.batch_size = 10000" "privacy.worker_enabled = off" "privacy.batch_delay = $BATCH_DELAY" \
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

# TPS while the worker purges: pgbench runs alone first, the policy is
# created 2 s in (the worker, naptime 1 s, starts it within a second); the
# TPS that counts is the one over the run's own interval (retention_runs
# started_at .. finished_at), from pgbench's per-transaction log.
echo "running pgbench while the worker purges $((ROWS / 2)) rows…" >&2
(run_tpcb during > "$work/during.tps") &
bg=$!
sleep 2
q "SELECT privacy.add_retention_policy('purge_me', '1 year', 'created_at', name => 'purge_me', schedule_interval => '1 hour')" >/dev/null
wait $bg
tps_during_window=$(cat "$work/during.tps")
wait_for $C bench "SELECT EXISTS (SELECT FROM privacy.retention_runs WHERE policy = 'purge_me')
                   AND NOT EXISTS (SELECT FROM privacy.retention_runs WHERE policy = 'purge_me' AND status = 'running')" 600
read -r run_start run_end <<<"$(q "SELECT extract(epoch FROM min(started_at)) || ' ' || extract(epoch FROM max(finished_at))
                                   FROM privacy.retention_runs WHERE policy = 'purge_me'")"
# transactions that completed during the run (log: client xact latency script epoch_s epoch_us)
read -r tps_during_run purge_in_window <<<"$(cat "$work"/during.[0-9]* | awk -v a="$run_start" -v b="$run_end" '
    { t = $5 + $6 / 1e6; if (t >= a && t <= b) n++; if (t > last) last = t; if (first == 0 || t < first) first = t }
    END { d = b - a; inside = (a >= first && b <= last) ? "yes" : "no"; printf "%.1f %s\n", (d > 0 ? n / d : 0), inside }')"
run1=$(q "SELECT format('%s rows in %s batches, %s, %s s', sum(rows_affected), sum(batches), string_agg(DISTINCT status, ', '),
                        round(extract(epoch FROM max(finished_at) - min(started_at))::numeric, 2))
            FROM privacy.retention_runs WHERE policy = 'purge_me'")
left1=$(q "SELECT count(*) FROM purge_me WHERE created_at < now() - interval '1 year'")

# Errors, deadlocks and latency while the worker purges a table that two
# more clients update at random (expired rows included).
echo "running pgbench and a client updating the purged table while the worker purges it…" >&2
q "INSERT INTO purge_me SELECT g, now() - interval '2 years', md5(g::text) FROM generate_series(2, $ROWS, 2) g" >/dev/null
q "VACUUM ANALYZE purge_me" >/dev/null
(cd "$work" && pgb -n -T "$T" -c 2 -j 1 -f update_purged.sql -l --log-prefix=updates bench > "$work/updates.out" 2>&1) &
upd=$!
(run_tpcb mixed > "$work/mixed.tps") &
bg=$!
sleep 2
q "SELECT privacy.drop_retention_policy('purge_me')" >/dev/null
q "SELECT privacy.add_retention_policy('purge_me', '1 year', 'created_at', name => 'purge_me_mixed', schedule_interval => '1 hour')" >/dev/null
wait $bg
wait $upd || true
wait_for $C bench "SELECT EXISTS (SELECT FROM privacy.retention_runs WHERE policy = 'purge_me_mixed')
                   AND NOT EXISTS (SELECT FROM privacy.retention_runs WHERE policy = 'purge_me_mixed' AND status = 'running')" 600
deadlocks_after=$(q "SELECT deadlocks FROM pg_stat_database WHERE datname = 'bench'")
left=$(q "SELECT count(*) FROM purge_me WHERE created_at < now() - interval '1 year'")
runs=$(q "SELECT format('%s rows in %s batches, status %s, %s s', rows_affected, batches, status,
                        round(extract(epoch FROM finished_at - started_at)::numeric, 2))
            FROM privacy.retention_runs WHERE policy = 'purge_me_mixed' ORDER BY run_id LIMIT 1")

ratio=$(awk -v a="$tps_alone" -v b="$tps_during_run" 'BEGIN{printf "%.2f", b/a}')
echo
echo "- pgbench scale 10, TPC-B-like, $CLIENTS clients, $T s per run; purged table: $ROWS rows, half of them expired;"
echo "  privacy.batch_size = 10000, privacy.batch_delay = ${BATCH_DELAY}ms, privacy.naptime = 1s, shared_buffers 512MB, $(nproc) CPUs"
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
echo "| pgbench TPC-B | value |"
echo "|---|---|"
echo "| TPS alone ($T s) | $tps_alone |"
echo "| TPS over the whole $T s window in which the worker purged | $tps_during_window |"
echo "| the worker's run in that window | $run1; expired rows left: $left1; run inside the pgbench window: $purge_in_window |"
echo "| TPS while the run was going on (transactions completed between its start and finish) | $tps_during_run |"
echo "| ratio while purging / alone (target ≥ 0.9) | **$ratio** ($(awk -v r="$ratio" 'BEGIN { print (r >= 0.9) ? "meets target" : "MISSES target" }')) |"
echo
echo "| with 2 more clients updating random rows of the purged table | value |"
echo "|---|---|"
echo "| the worker's run | $runs; expired rows left: $left |"
echo "| TPS of TPC-B over the window (6 clients share $(nproc) CPUs) | $(cat "$work/mixed.tps") |"
echo "| TPC-B client errors | $(errors_of during) + $(errors_of mixed) |"
echo "| update-the-purged-table client errors | $(errors_of updates) |"
echo "| deadlocks | $((deadlocks_after - deadlocks_before)) |"
echo "| max latency, TPC-B alone (ms) | $(max_latency_ms alone) |"
echo "| max latency, TPC-B during the purge (ms) | $(max_latency_ms during) |"
echo "| max latency, TPC-B with the update clients (ms) | $(max_latency_ms mixed) |"
echo "| max latency, updates of the purged table (ms) | $(max_latency_ms updates) |"
