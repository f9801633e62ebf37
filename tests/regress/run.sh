#!/usr/bin/env bash
# SQL scenario tests: pg_regress against a throwaway cluster with the
# extension preloaded. Cases are tests/regress/sql/*.sql; the expected output
# is tests/regress/expected/*.out. Set REGRESS_ACCEPT=1 to (re)write expected
# files from the actual output after reviewing regression.diffs.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

PG_REGRESS=$(/usr/bin/pg_config --pkglibdir)/pgxs/src/test/regress/pg_regress
cluster_init regress "timezone = 'UTC'" "datestyle = 'iso, mdy'" "lc_messages = 'C'" "privacy.worker_enabled = off"
cluster_start regress
trap 'cluster_stop regress' EXIT

psql_on regress -d postgres -c "CREATE DATABASE privacy_regress" >/dev/null
out=$(cluster_dir regress)/out
install -d -o postgres -g postgres "$out" "$out/expected" "$out/sql"
cp tests/regress/sql/*.sql "$out/sql/"
for f in tests/regress/sql/*.sql; do
    n=$(basename "$f" .sql)
    [ -f "tests/regress/expected/$n.out" ] && cp "tests/regress/expected/$n.out" "$out/expected/"
    [ -f "tests/regress/expected/$n.out" ] || touch "$out/expected/$n.out"
done
chown -R postgres:postgres "$out"
tests=$(for f in tests/regress/sql/*.sql; do basename "$f" .sql; done)

as_pg "$PG_REGRESS" --use-existing --host="$(cluster_dir regress)" --port="$(cluster_port regress)" \
    --user=postgres --inputdir="$out" --outputdir="$out" --dbname=privacy_regress $tests >"$out/pg_regress.log" 2>&1
rc=$?
for n in $tests; do
    if [ "${REGRESS_ACCEPT:-0}" = 1 ]; then cp "$out/results/$n.out" "tests/regress/expected/$n.out"; fi
    if grep -Eq "^(ok|     ) .* $n .*(ok|FAILED)|test $n .*\.\.\. ok|^ok [0-9]+ +- $n " "$out/pg_regress.log" && \
       ! grep -Eq "$n .*FAILED|not ok [0-9]+ +- $n " "$out/pg_regress.log"; then
        ok "regress $n"
    else
        fail "regress $n"
    fi
done
if [ $rc -ne 0 ]; then
    cat "$out/pg_regress.log"
    [ -f "$out/regression.diffs" ] && head -200 "$out/regression.diffs"
fi
exit 0
