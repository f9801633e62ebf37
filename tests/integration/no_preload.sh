#!/usr/bin/env bash
# Without shared_preload_libraries every SQL function still works (the
# library loads on first call and registers the label provider), no worker
# runs, and SECURITY LABEL in a database without the extension is refused.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

C=nopreload
cluster_init $C "shared_preload_libraries = ''" "lc_messages = 'C'"
cluster_start $C || exit 1
trap 'cluster_stop $C' EXIT
psql_on $C -d postgres -c "CREATE DATABASE app" >/dev/null
psql_on $C -d app >/dev/null <<'SQL'
CREATE EXTENSION pg_privacy;
CREATE TABLE t (id bigint PRIMARY KEY, email text);
SQL

out=$(psql_on $C -d app -c "SECURITY LABEL FOR privacy ON COLUMN t.email IS 'CATEGORY contact'" 2>&1)
check "bare SECURITY LABEL in a fresh session needs the library loaded" grep -q 'security label provider "privacy" is not loaded' <<<"$out"
out=$(psql_on $C -d app -At <<'SQL' 2>&1
SELECT privacy.define_purpose('support');
SELECT privacy.tag_column('t', 'email', ARRAY['support'], 'contact');
SELECT privacy.mark_subject('t', 'id');
SECURITY LABEL FOR privacy ON COLUMN t.email IS 'PURPOSE support CATEGORY contact ANONYMIZE EMAIL';
SELECT count(*) FROM privacy.column_tags;
SQL
)
check "wrappers work without preloading, and load the provider for the session" [ "$(tail -1 <<<"$out")" = 2 ]
check "no settings error, defaults apply once loaded" [ "$(sql_value $C app "SELECT privacy.tag_column('t', 'email', ARRAY['support']); SHOW privacy.batch_size" | tail -1)" = 10000 ]
check "no worker runs without preloading" [ "$(sql_value $C app "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'pg_privacy%'")" = 0 ]

# keys need the root key, which only a preloaded library loads at start
out=$(psql_on $C -d app -c "SELECT privacy.create_key()" 2>&1)
check "without preloading, create_key: no root key, a clear error" grep -q 'ERROR:  the root key of pg_privacy is not loaded' <<<"$out"
check "with a hint to preload" grep -q 'HINT:  Add pg_privacy to shared_preload_libraries, set privacy.root_key_command, and restart the server.' <<<"$out"
out=$(psql_on $C -d app -c "SELECT privacy.pseudonymize('x')" 2>&1)
check "without preloading, pseudonymize: the same error" grep -q 'ERROR:  the root key of pg_privacy is not loaded' <<<"$out"
check "no key was made" [ "$(sql_value $C app "SELECT count(*) FROM privacy.keys")" = 0 ]

# a database without the extension
psql_on $C -d postgres -c "CREATE TABLE x (a text)" >/dev/null
cluster_stop $C
echo "shared_preload_libraries = 'pg_privacy'" | as_pg tee -a "$(cluster_dir $C)/data/postgresql.conf" >/dev/null
cluster_start $C || exit 1
out=$(psql_on $C -d postgres -c "SECURITY LABEL FOR privacy ON COLUMN x.a IS 'CATEGORY contact'" 2>&1)
check "SECURITY LABEL where the extension is not installed: 55000 with a hint" grep -q 'extension "pg_privacy" is not installed in this database' <<<"$out"
exit 0
