#!/usr/bin/env bash
# `make bench`: reproducible timings of pg_privacy against plain PostgreSQL.
#
#   make bench                      # 1M rows, 5 rounds
#   ROWS=10000000 RUNS=3 make bench # larger
#   ONLY=10_keys make bench         # one section
#   ONLY=concurrency make bench     # only the pgbench/worker comparison
#
# `make bench` builds and installs the release build, then runs this script,
# which starts its own throwaway cluster ($RUN_DIR/clusters/bench), runs every
# section bench/NN_name.sql in order and prints one markdown table per
# section, plus the ratios each section asks for. Then it runs the
# `concurrency` section, bench/concurrency.sh (pgbench alone and while the
# background worker purges; its own cluster, started while this script still
# holds the install lock).
#
# A section file is plain SQL run once by psql for its setup (`:rows` is the
# row count), plus directives in comments, one per line:
#   -- case: LABEL | QUERY        a query to time (LABEL must not contain '|')
#   -- before: SQL                untimed SQL run before each timed query of
#                                 the section (e.g. to restore deleted rows);
#                                 the before lines are run in order by psql,
#                                 each statement committed on its own (so
#                                 VACUUM is allowed), then the query is timed
#                                 in a new transaction
#   -- show: LABEL | QUERY        run once after the setup; its value is
#                                 printed under the section's title (e.g. a
#                                 row count or the scans a run makes)
#   -- baseline: LABEL            subtract this case's time in the "net" column
#   -- ratio: LABEL_A / LABEL_B <= TARGET
#                                 print time(A) / time(B) and whether it meets TARGET
# Each query runs RUNS times, rounds interleaved (case 1, 2, 3, 1, 2, 3, …)
# so drift affects every case alike; the table shows the median. Times are
# measured inside the server (clock_timestamp around EXECUTE), one backend,
# no parallel query, no JIT, data cached in shared_buffers after a warm-up.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh

ROWS=${ROWS:-1000000}
RUNS=${RUNS:-5}
ONLY=${ONLY:-}

# Other checkouts on this machine install into the same system directories:
# hold the install lock while the cluster runs, and make sure the installed
# library is this checkout's release build (reinstall it if someone else's
# build replaced it after `make install` released the lock).
# PG_PRIVACY_INSTALL_LOCK_HELD=1 tells bench/concurrency.sh that it runs
# under this lock (it must not take it again).
exec 9>/tmp/pg_privacy-install.lock
flock 9
export PG_PRIVACY_INSTALL_LOCK_HELD=1
built=target/release/pg_privacy-pg15$(/usr/bin/pg_config --pkglibdir)/pg_privacy.so
installed=$(/usr/bin/pg_config --pkglibdir)/pg_privacy.so
if [ ! -f "$built" ] || ! cmp -s "$built" "$installed"; then
    echo "(re)installing this checkout's release build" >&2
    PG_CONFIG=/usr/bin/pg_config tools/install.sh >&2
fi

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
echo "# pg_privacy benchmark"
echo
echo "- machine: ${cpu:-unknown CPU}, $(nproc) CPUs, $(free -g | awk '/^Mem:/ {print $2}') GB RAM, $(uname -sr)"
echo "- rows: $ROWS, rounds: $RUNS (median shown), pg_privacy release build, $(date -u '+%Y-%m-%d %H:%M UTC')"

sections=()
for section in bench/[0-9][0-9]_*.sql; do
    name=$(basename "$section" .sql)
    [ -n "$ONLY" ] && [ "$ONLY" != "$name" ] && continue
    sections+=("$section")
done

if [ "${#sections[@]}" -gt 0 ]; then
cluster_init bench "privacy.worker_enabled = off" "shared_buffers = '1GB'" "max_parallel_workers_per_gather = 0" \
    "jit = off" "work_mem = '64MB'" "lc_messages = 'C'" "checkpoint_timeout = '30min'" "max_wal_size = '8GB'"
cluster_start bench
trap 'cluster_stop bench' EXIT
psql_on bench -d postgres -c "CREATE DATABASE bench" >/dev/null
psql_on bench -d bench >/dev/null <<'SQL'
CREATE FUNCTION public.bench_ms(q text, before text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz;
BEGIN
    IF before <> '' THEN EXECUTE before; END IF;
    t0 := clock_timestamp();
    EXECUTE q;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
SQL

echo "- $(sql_value bench bench 'SELECT version()' | cut -d, -f1), shared_buffers 1GB, one backend (no parallel query, no JIT)"

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

for section in "${sections[@]}"; do
    name=$(basename "$section" .sql)
    echo
    echo "## $name"
    echo
    title=$(sed -n 's/^-- title: *//p' "$section" | head -1)
    [ -n "$title" ] && echo "$title" && echo
    # setup (files are read by the postgres OS user through stdin)
    psql_on bench -d bench -v rows="$ROWS" <"$section" >/dev/null
    labels=(); queries=()
    while IFS= read -r line; do
        body=${line#-- case:}
        labels+=("$(sed 's/^ *//; s/ *$//' <<<"${body%%|*}")")
        queries+=("$(sed 's/^ *//' <<<"${body#*|}")")
    done < <(grep '^-- case:' "$section")
    before=$(sed -n 's/^-- before: *//p' "$section")
    baseline=$(sed -n 's/^-- baseline: *//p' "$section" | head -1)
    # shown values
    while IFS= read -r line; do
        body=${line#-- show:}
        label=$(sed 's/^ *//; s/ *$//' <<<"${body%%|*}")
        value=$(psql_on bench -d bench -At -v ON_ERROR_STOP=1 -c "$(sed 's/^ *//' <<<"${body#*|}")" | paste -sd' ' -)
        echo "- $label: $value"
    done < <(grep '^-- show:' "$section")
    grep -q '^-- show:' "$section" && echo
    timed() { # query -> ms (the before lines first, each committed)
        if [ -n "$before" ]; then
            psql_on bench -d bench -q -v ON_ERROR_STOP=1 <<<"$before" >/dev/null
        fi
        psql_on bench -d bench -At -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" \
            -c "SELECT bench_ms(\$q\$${1}\$q\$, '')"
    }
    # warm-up: every query once
    for q in "${queries[@]}"; do
        timed "$q" >/dev/null
    done
    declare -A times=()
    for ((r = 0; r < RUNS; r++)); do
        for i in "${!queries[@]}"; do
            t=$(timed "${queries[$i]}")
            times[$i]="${times[$i]:-} $t"
        done
    done
    declare -A med=()
    for i in "${!queries[@]}"; do
        med[${labels[$i]}]=$(tr ' ' '\n' <<<"${times[$i]}" | grep . | median)
    done
    base_ms=
    [ -n "$baseline" ] && base_ms=${med[$baseline]:-}
    echo "| case | query | median ms | ns per row | net of ${baseline:-baseline} (ms) |"
    echo "|---|---|---:|---:|---:|"
    for i in "${!queries[@]}"; do
        l=${labels[$i]}; m=${med[$l]}
        net=$([ -n "$base_ms" ] && awk -v a="$m" -v b="$base_ms" 'BEGIN { printf "%.1f", a - b }' || echo "")
        printf '| %s | `%s` | %.1f | %.0f | %s |\n' "$l" "${queries[$i]}" "$m" \
            "$(awk -v a="$m" -v n="$ROWS" 'BEGIN { print a * 1e6 / n }')" "$net"
    done
    if grep -q '^-- ratio:' "$section"; then
        echo
        echo "| ratio | value | target | net of ${baseline:-baseline} | |"
        echo "|---|---:|---:|---:|---|"
        while IFS= read -r line; do
            spec=${line#-- ratio:}
            lhs=${spec%%<=*}; target=$(tr -d ' ' <<<"${spec#*<=}")
            a=$(sed 's/^ *//; s/ *$//' <<<"${lhs%%/*}"); b=$(sed 's/^ *//; s/ *$//' <<<"${lhs#*/}")
            ratio=$(awk -v x="${med[$a]}" -v y="${med[$b]}" 'BEGIN { printf "%.3f", x / y }')
            netr=$([ -n "$base_ms" ] && awk -v x="${med[$a]}" -v y="${med[$b]}" -v z="$base_ms" \
                'BEGIN { printf "%.3f", (x - z) / (y - z) }' || echo "")
            verdict=$(awk -v r="$ratio" -v t="$target" 'BEGIN { print (r <= t) ? "meets target" : "MISSES target" }')
            echo "| $a / $b | $ratio | ≤ $target | $netr | $verdict |"
        done < <(grep '^-- ratio:' "$section")
    fi
    unset times med
done
cluster_stop bench
trap - EXIT
fi

# The concurrency section: its own cluster (bench/concurrency.sh), run while
# this script holds the install lock (PG_PRIVACY_INSTALL_LOCK_HELD is set).
if [ -z "$ONLY" ] || [ "$ONLY" = concurrency ]; then
    echo
    echo "## concurrency"
    echo
    bash bench/concurrency.sh
fi
