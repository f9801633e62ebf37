#!/usr/bin/env bash
# Runs the SQL scenario tests (pg_regress) and every integration test in
# tests/integration/*.sh and every security test in tests/security/*.sh. Each prints "ok"/"not ok" lines; the summary line
# at the end is "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh

total_pass=0
total_fail=0
failed=()

run_suite() {
    local name=$1; shift
    echo "=== $name"
    local out rc
    out=$("$@" 2>&1); rc=$?
    echo "$out"
    local p f
    p=$(grep -c '^ok - ' <<<"$out")
    f=$(grep -c '^not ok - ' <<<"$out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "not ok - $name exited with status $rc"; fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    [ "$f" -gt 0 ] && failed+=("$name")
}

only=${1:-}
if [ -z "$only" ] || [ "$only" = regress ]; then
    run_suite regress bash tests/regress/run.sh
fi
for t in tests/integration/*.sh tests/security/*.sh; do
    [ -e "$t" ] || continue
    name=$(basename "$t" .sh)
    if [ -z "$only" ] || [ "$only" = "$name" ]; then
        run_suite "$name" bash "$t"
    fi
done

echo
[ ${#failed[@]} -gt 0 ] && echo "failed suites: ${failed[*]}"
echo "integration: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
