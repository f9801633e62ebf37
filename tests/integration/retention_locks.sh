#!/usr/bin/env bash
# The retention engine keeps the application's waits short: a row locked by
# another session is waited for briefly, then skipped (and purged by a later
# run), a table lock is
# waited for at most privacy.lock_timeout (then the run fails with 55P03 and
# is recorded), a policy runs in one session at a time. Policies, holds and
# run history survive pg_dump + restore.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

cluster_init retlocks "privacy.worker_enabled = off"
cluster_start retlocks || exit 1
bg_pids=()
cleanup() {
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
    cluster_stop retlocks
}
trap cleanup EXIT

psql_on retlocks -d postgres -c "CREATE DATABASE app" -c "CREATE DATABASE app_copy" >/dev/null
psql_on retlocks -d app >/dev/null <<'SQL'
CREATE EXTENSION pg_privacy;
CREATE TABLE accounts (id bigint PRIMARY KEY, plan text NOT NULL, unsubscribed_at timestamptz);
CREATE INDEX ON accounts (unsubscribed_at);
INSERT INTO accounts SELECT g, 'free', '2020-01-01+00' FROM generate_series(1, 10) g;
SELECT privacy.add_retention_policy('accounts', '30 days', 'unsubscribed_at', row_filter => $$plan = 'free'$$, name => 'free_30d');
SELECT privacy.place_hold('accounts', 'id = 10', 'case 7');
SQL

# wait until a background session holds its lock: it shows up in pg_stat_activity sleeping
wait_sleeping() {
    wait_for retlocks app "SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND state = 'active' AND pid <> pg_backend_pid()" 10
}
stop_background() {
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    bg_pids=()
    psql_on retlocks -d app -Atc "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()" >/dev/null
    sleep 0.3
}

# 1. a row locked by the application is skipped, the rest is purged at once
psql_on retlocks -d app -c "BEGIN; SELECT id FROM accounts WHERE id = 1 FOR UPDATE; SELECT pg_sleep(30); COMMIT;" >/dev/null 2>&1 &
bg_pids+=($!)
wait_sleeping
start=$(date +%s%N)
out=$(psql_on retlocks -d app -Atc "SELECT rows || ' ' || held FROM privacy.run_retention('free_30d')" 2>&1)
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "a locked row is skipped: 8 purged, 1 held" [ "$out" = "8 1" ]
check "the purge waited only briefly for the row lock (${elapsed_ms} ms)" [ "$elapsed_ms" -lt 3000 ]
check "the locked row is still there" [ "$(sql_value retlocks app 'SELECT string_agg(id::text, $$,$$ ORDER BY id) FROM accounts')" = "1,10" ]
stop_background
check "a later run purges it" [ "$(sql_value retlocks app "SELECT rows FROM privacy.run_retention('free_30d')")" = 1 ]

# 1b. a row lock held briefly is waited for (a batch first waits up to
# min(privacy.lock_timeout, deadlock_timeout / 2) before it skips locked rows)
psql_on retlocks -d app -c "INSERT INTO accounts SELECT g, 'free', '2020-01-01+00' FROM generate_series(40, 44) g" >/dev/null
psql_on retlocks -d app -c "BEGIN; SELECT id FROM accounts WHERE id = 42 FOR UPDATE; SELECT pg_sleep(1.5) AS pg_sleep_brief; COMMIT;" >/dev/null 2>&1 &
bg_pids+=($!)
wait_for retlocks app "SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE '%pg_sleep_brief%' AND state = 'active' AND pid <> pg_backend_pid()" 10
start=$(date +%s%N)
out=$(psql_on retlocks -d app -Atc "SET deadlock_timeout = '4s'; SET privacy.lock_timeout = '3s'; SELECT rows || ' ' || held FROM privacy.run_retention('free_30d')" 2>&1)
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "a briefly locked row is waited for: all 5 purged in one run" [ "$out" = "5 1" ] || echo "$out"
check "within the wait bound (${elapsed_ms} ms)" [ "$elapsed_ms" -lt 2500 ]
stop_background

# 2. a table lock is waited for at most privacy.lock_timeout: 55P03, recorded
psql_on retlocks -d app -c "INSERT INTO accounts VALUES (20, 'free', '2020-01-01+00')" >/dev/null
psql_on retlocks -d app -c "BEGIN; LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(30); COMMIT;" >/dev/null 2>&1 &
bg_pids+=($!)
wait_sleeping
start=$(date +%s%N)
out=$(psql_on retlocks -d app -Atc "SET privacy.lock_timeout = '300ms'; SELECT coalesce(rows::text, 'failed') FROM privacy.run_retention('free_30d')" 2>&1)
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "a table lock makes the run fail" grep -q "^failed$" <<<"$out"
check "with a warning naming 55P03" grep -q "SQLSTATE 55P03" <<<"$out" || echo "$out"
check "after about privacy.lock_timeout (${elapsed_ms} ms)" [ "$elapsed_ms" -lt 3000 ]
check "the failure is recorded with its error" \
    [ "$(sql_value retlocks app "SELECT status FROM privacy.retention_runs ORDER BY run_id DESC LIMIT 1")" = failed ]
check "the policy backs off" \
    [ "$(sql_value retlocks app "SELECT last_status || ' ' || (next_run_at > now()) FROM privacy.retention_policies WHERE name = 'free_30d'")" = "failed true" ]
check "lock_timeout did not leak into the session" \
    [ "$(psql_on retlocks -d app -At -c "SELECT count(*) FROM privacy.run_retention('free_30d', dry_run => true)" -c "SHOW lock_timeout")" = "$(printf '1\n0')" ]
stop_background

# 2b. a policy owner with DELETE but not UPDATE: the statements run as the
# table's owner, who may lock rows, so the locked row is skipped (not waited
# for) and purged once free
psql_on retlocks -d app >/dev/null <<'SQL'
CREATE ROLE purger;
GRANT SELECT, DELETE ON accounts TO purger;
GRANT USAGE ON SCHEMA privacy TO purger;
INSERT INTO accounts VALUES (30, 'free', '2020-01-01+00');
SET ROLE purger;
SELECT privacy.add_retention_policy('accounts', '30 days', 'unsubscribed_at', row_filter => 'id = 30', name => 'purger_30d');
SQL
psql_on retlocks -d app -c "BEGIN; SELECT id FROM accounts WHERE id = 30 FOR UPDATE; SELECT pg_sleep(30); COMMIT;" >/dev/null 2>&1 &
bg_pids+=($!)
wait_sleeping
start=$(date +%s%N)
out=$(psql_on retlocks -d app -Atc "SET privacy.lock_timeout = '300ms'; SET ROLE purger; SELECT coalesce(rows::text, 'failed') FROM privacy.run_retention('purger_30d')" 2>&1)
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
check "a DELETE-only policy owner's run skips the locked row" [ "$out" = 0 ] || echo "$out"
check "after at most privacy.lock_timeout (${elapsed_ms} ms)" [ "$elapsed_ms" -lt 3000 ]
stop_background
check "it purges the row once it is free" \
    [ "$(psql_on retlocks -d app -Atc "SET ROLE purger; SELECT rows FROM privacy.run_retention('purger_30d')")" = 1 ]
psql_on retlocks -d app -c "SELECT privacy.drop_retention_policy('purger_30d')" >/dev/null

# 3. one session at a time per policy
psql_on retlocks -d app -c "SELECT pg_advisory_lock(1886546294, hashtext('free_30d')), pg_sleep(30)" >/dev/null 2>&1 &
bg_pids+=($!)
wait_sleeping
out=$(psql_on retlocks -d app -Atc "SELECT * FROM privacy.run_retention('free_30d')" 2>&1)
check "a policy running elsewhere is refused with 55P03" grep -q 'retention policy "free_30d" is already running' <<<"$out"
stop_background
check "and runs once the other session is done" \
    [ "$(sql_value retlocks app "SELECT rows FROM privacy.run_retention('free_30d')")" = 1 ]

# 4. policies, holds and runs survive pg_dump + restore
dumpfile=$(cluster_dir retlocks)/app.sql
as_pg "$PG_BIN/pg_dump" -h "$(cluster_dir retlocks)" -p "$(cluster_port retlocks)" -U postgres -d app -f "$dumpfile"
psql_on retlocks -d app_copy -f "$dumpfile" >/dev/null 2>"$(cluster_dir retlocks)/restore.err"
check "restore has no errors" [ ! -s "$(cluster_dir retlocks)/restore.err" ]
policies_q="SELECT string_agg(format('%s|%s|%s|%s|%s|%s', name, table_name, anchor, keep_for, row_filter, owner), ',') FROM privacy.retention_policies"
check "policies restored" [ "$(sql_value retlocks app_copy "$policies_q")" = "$(sql_value retlocks app "$policies_q")" ]
holds_q="SELECT string_agg(format('%s|%s|%s|%s', id, table_name, row_filter, reason), ',') FROM privacy.holds"
check "holds restored" [ "$(sql_value retlocks app_copy "$holds_q")" = "$(sql_value retlocks app "$holds_q")" ]
check "run history restored" [ "$(sql_value retlocks app_copy 'SELECT count(*) FROM privacy.retention_runs')" = "$(sql_value retlocks app 'SELECT count(*) FROM privacy.retention_runs')" ]
check "the restored policy runs" [ "$(sql_value retlocks app_copy "SELECT held FROM privacy.run_retention('free_30d')")" = 1 ]
cat "$(cluster_dir retlocks)/restore.err"
exit 0
