#!/usr/bin/env bash
# kill -9 of the postmaster (and every backend) in the middle of a worker
# purge: after restart and crash recovery no live row is lost, the purge
# completes, and amcheck finds table and indexes clean. The run is throttled
# (batches of 500, 100 ms apart: 100 000 expired rows take 20 s at least),
# so the kill lands mid-purge, and the restart checks that it did.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

C=crash
cluster_init $C "privacy.naptime = 1" "privacy.batch_size = 500" "privacy.batch_delay = '100ms'" "lc_messages = 'C'"
cluster_start $C || exit 1
trap 'cluster_stop $C' EXIT
q() { sql_value $C "$@"; }

psql_on $C -d postgres -c "CREATE DATABASE app" >/dev/null
psql_on $C -d app >/dev/null <<'SQL'
CREATE EXTENSION pg_privacy;
CREATE EXTENSION amcheck;
CREATE TABLE big (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, keep boolean NOT NULL, payload text);
CREATE INDEX big_created_at ON big (created_at);
CREATE INDEX big_payload ON big (payload);
INSERT INTO big (created_at, keep, payload)
SELECT CASE WHEN g % 2 = 0 THEN now() - interval '2 years' ELSE now() END, g % 2 = 1, md5(g::text)
  FROM generate_series(1, 200000) g;
-- disabled until the data is in place
SELECT privacy.add_retention_policy('big', '1 year', 'created_at', name => 'big_purge', schedule_interval => '1 second');
SELECT privacy.alter_retention_policy('big_purge', enabled => false);
SQL
live_before=$(q app "SELECT count(*) FROM big WHERE keep")
q app "SELECT privacy.alter_retention_policy('big_purge', enabled => true)" >/dev/null

# wait until the purge is under way (some batches committed, not all)
check "purge starts" wait_for $C app "SELECT count(*) < 200000 FROM big" 30
# the restart comes up with the worker off (read from postgresql.auto.conf;
# the running worker is not told), so that what the crash left can be counted
psql_on $C -d postgres -c "ALTER SYSTEM SET privacy.worker_enabled = off" >/dev/null

# a power cut: the postmaster first, then every backend it leaves behind
pid=$(head -1 "$(cluster_dir $C)/data/postmaster.pid")
children=$(pgrep -P "$pid" | tr '\n' ' ')
kill -9 "$pid"; [ -n "$children" ] && kill -9 $children 2>/dev/null
for _ in $(seq 100); do
    alive=0
    for p in $pid $children; do
        st=$(awk '/^State:/ {print $2}' /proc/$p/status 2>/dev/null)
        [ -n "$st" ] && [ "$st" != Z ] && alive=1
    done
    [ $alive = 0 ] && break
    sleep 0.1
done
# a killed postmaster nobody reaps stays a zombie whose pid still "exists":
# remove its lock files as a reboot would
rm -f "$(cluster_dir $C)/data/postmaster.pid" "$(cluster_dir $C)"/.s.PGSQL.*.lock
cluster_start $C || exit 1

remaining=$(q app "SELECT count(*) FROM big WHERE NOT keep")
check "the crash happened mid-purge ($remaining of 100000 expired rows left)" \
    test "$remaining" -gt 0 -a "$remaining" -lt 100000
psql_on $C -d postgres -c "ALTER SYSTEM RESET privacy.worker_enabled" -c "SELECT pg_reload_conf()" >/dev/null
check "after restart the worker completes the purge" wait_for $C app "SELECT count(*) = 0 FROM big WHERE NOT keep" 90
check "no live row lost ($live_before kept)" [ "$(q app "SELECT count(*) FROM big WHERE keep")" = "$live_before" ]
check "the interrupted run is not left 'running'" wait_for $C app \
    "SELECT count(*) = 0 FROM privacy.retention_runs WHERE finished_at IS NULL AND started_at < now() - interval '5 seconds'" 20
check "a worker run succeeded after the crash" [ "$(q app "SELECT count(*) > 0 FROM privacy.retention_runs WHERE policy = 'big_purge' AND status = 'succeeded'")" = t ]
for idx in big_pkey big_created_at big_payload; do
    check "amcheck: $idx is clean" q app "SELECT bt_index_check('$idx', true)"
done
check "amcheck: heap is clean" [ "$(q app "SELECT count(*) FROM verify_heapam('big')")" = 0 ]
check "server log shows crash recovery" grep -q "database system was interrupted\|was not properly shut down" "$(cluster_dir $C)/server.log"
exit 0
