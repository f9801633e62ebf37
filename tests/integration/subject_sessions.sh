#!/usr/bin/env bash
# Data subject rights on a real cluster:
# - may_process answers follow the statement's snapshot across sessions: in
#   an open READ COMMITTED transaction a long-lived session sees another
#   session's committed objection at its next statement (even after its
#   per-statement answers were bulk-loaded), a REPEATABLE READ transaction
#   keeps its snapshot's answers;
# - through a row-level security policy, a role without any privilege on the
#   privacy schema is filtered by may_process;
# - objections survive pg_dump + restore (pg_extension_config_dump).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

cluster_init subject "privacy.worker_enabled = off" "lc_messages = 'C'"
cluster_start subject || exit 1
dir=$(cluster_dir subject)
cleanup() {
    session_close
    cluster_stop subject
}
trap cleanup EXIT

psql_on subject -d postgres -c "CREATE DATABASE s" -c "CREATE DATABASE s_restored" >/dev/null
psql_on subject -d s >/dev/null <<'SQL'
CREATE EXTENSION pg_privacy;
SELECT privacy.define_purpose('marketing');
CREATE TABLE newsletter (account_id bigint PRIMARY KEY, email text);
INSERT INTO newsletter SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 1000) g;
ALTER TABLE newsletter ENABLE ROW LEVEL SECURITY;
CREATE POLICY consent ON newsletter USING (privacy.may_process(account_id::text, 'marketing'));
CREATE ROLE mailer LOGIN;
GRANT SELECT ON newsletter TO mailer;
SQL

# Session A: one psql (one backend) for the whole test; a SQL runs SQL in it.
session_open subject s
b() { sql_value subject s "$1"; }
count_q="SELECT count(*) FROM newsletter WHERE privacy.may_process(account_id::text, 'marketing');"

pid1=$(a "SELECT pg_backend_pid();")
a "BEGIN;" >/dev/null
check "A, open READ COMMITTED transaction: nobody objected" [ "$(a "$count_q")" = 1000 ]
b "SELECT privacy.object_to_purpose('5', 'marketing')" >/dev/null
check "A sees B's committed objection at its next statement" [ "$(a "$count_q")" = 999 ]
check "A answers one subject the same way" [ "$(a "SELECT privacy.may_process('5', 'marketing');")" = f ]
b "SELECT privacy.withdraw_objection('5', 'marketing')" >/dev/null
check "A sees B's withdrawal at its next statement" [ "$(a "$count_q")" = 1000 ]
a "COMMIT;" >/dev/null

a "BEGIN ISOLATION LEVEL REPEATABLE READ;" >/dev/null
check "A, REPEATABLE READ: first count" [ "$(a "$count_q")" = 1000 ]
b "SELECT privacy.object_to_purpose('6', 'marketing')" >/dev/null
check "A, REPEATABLE READ: its snapshot does not see B's objection" [ "$(a "$count_q")" = 1000 ]
a "COMMIT;" >/dev/null
check "A after commit sees it" [ "$(a "$count_q")" = 999 ]
check "A kept one backend throughout" [ "$(a "SELECT pg_backend_pid();")" = "$pid1" ]

mailer_count=$(as_pg "$PG_BIN/psql" -X -q -At -h "$dir" -p "$(cluster_port subject)" -U mailer -d s \
    -c "SELECT count(*) FROM newsletter" 2>&1)
check "the policy filters a role with no privilege on the privacy schema" [ "$mailer_count" = 999 ]
denied=$(as_pg "$PG_BIN/psql" -X -q -At -h "$dir" -p "$(cluster_port subject)" -U mailer -d s \
    -c "SELECT count(*) FROM privacy.objections" 2>&1)
check "that role cannot read who objected" grep -q "permission denied" <<<"$denied"

dumpfile=$dir/s.sql
as_pg "$PG_BIN/pg_dump" -h "$dir" -p "$(cluster_port subject)" -U postgres -d s -f "$dumpfile"
psql_on subject -d s_restored -f "$dumpfile" >/dev/null 2>"$dir/restore.err"
check "restore has no errors" [ ! -s "$dir/restore.err" ]
check "restored objections" [ "$(sql_value subject s_restored "SELECT string_agg(subject || ':' || purpose, ',') FROM privacy.objections")" = "6:marketing" ]
check "restored database answers may_process the same" \
    [ "$(sql_value subject s_restored "$count_q")" = 999 ]

exit 0
