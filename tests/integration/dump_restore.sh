#!/usr/bin/env bash
# Tags, purposes and the audit log survive pg_dump + restore into a fresh
# database (plain SQL through psql, and custom format through pg_restore).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

cluster_init dump "privacy.worker_enabled = off"
cluster_start dump || exit 1
trap 'cluster_stop dump' EXIT

psql_on dump -d postgres -c "CREATE DATABASE src" -c "CREATE DATABASE dst_plain" -c "CREATE DATABASE dst_custom"
psql_on dump -d src <<'SQL'
CREATE EXTENSION pg_privacy;
CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL, "Full Name" text, born date);
INSERT INTO accounts VALUES (1, 'a@example.com', 'Ada', '1815-12-10');
SELECT privacy.define_purpose('service', 'the product', 'contract');
SELECT privacy.define_purpose('marketing');
SECURITY LABEL FOR privacy ON COLUMN accounts.id IS 'SUBJECT';
SECURITY LABEL FOR privacy ON COLUMN accounts.email IS 'PURPOSE service, marketing CATEGORY contact ANONYMIZE EMAIL';
SECURITY LABEL FOR privacy ON COLUMN accounts."Full Name" IS 'PURPOSE service ANONYMIZE CONSTANT ''it''''s gone''';
SELECT privacy.tag_column('accounts', 'born', ARRAY['service'], 'demographic', 'TRUNCATE year');
SQL

tags_of() {
    sql_value dump "$1" "SELECT string_agg(format('%s|%s|%s|%s|%s|%s', table_name, column_name, purposes, category, is_subject, anonymize), E'\n' ORDER BY column_name) FROM privacy.column_tags"
}
purposes_of() {
    sql_value dump "$1" "SELECT string_agg(name || ':' || legal_basis || ':' || coalesce(description, ''), ',' ORDER BY name) FROM privacy.purposes"
}
audit_of() {
    sql_value dump "$1" "SELECT count(*) FROM privacy.audit_log"
}

expected_tags=$(tags_of src)
expected_purposes=$(purposes_of src)
expected_audit=$(audit_of src)
check "source has 4 tagged columns" [ "$(sql_value dump src 'SELECT count(*) FROM privacy.column_tags')" = 4 ]

dumpfile=$(cluster_dir dump)/src.sql
as_pg "$PG_BIN/pg_dump" -h "$(cluster_dir dump)" -p "$(cluster_port dump)" -U postgres -d src -f "$dumpfile"
check "dump contains the security labels" grep -q "SECURITY LABEL FOR privacy ON COLUMN public.accounts.email" "$dumpfile"
psql_on dump -d dst_plain -f "$dumpfile" >/dev/null 2>"$(cluster_dir dump)/restore_plain.err"
check "plain restore has no errors" [ ! -s "$(cluster_dir dump)/restore_plain.err" ]
check "plain restore: tags identical" [ "$(tags_of dst_plain)" = "$expected_tags" ]
check "plain restore: purposes identical" [ "$(purposes_of dst_plain)" = "$expected_purposes" ]
check "plain restore: audit log kept" [ "$(audit_of dst_plain)" = "$expected_audit" ]

archive=$(cluster_dir dump)/src.dump
as_pg "$PG_BIN/pg_dump" -Fc -h "$(cluster_dir dump)" -p "$(cluster_port dump)" -U postgres -d src -f "$archive"
as_pg "$PG_BIN/pg_restore" -h "$(cluster_dir dump)" -p "$(cluster_port dump)" -U postgres -d dst_custom "$archive" \
    2>"$(cluster_dir dump)/restore_custom.err"
check "pg_restore has no errors" [ ! -s "$(cluster_dir dump)/restore_custom.err" ]
check "pg_restore: tags identical" [ "$(tags_of dst_custom)" = "$expected_tags" ]
check "pg_restore: purposes identical" [ "$(purposes_of dst_custom)" = "$expected_purposes" ]

# the restored database still validates new labels
out=$(psql_on dump -d dst_custom -c "SECURITY LABEL FOR privacy ON COLUMN accounts.born IS 'PURPOSE nosuch'" 2>&1)
check "restored database still rejects unknown purposes" grep -q 'purpose "nosuch" does not exist' <<<"$out"
cat "$(cluster_dir dump)"/restore_*.err
exit 0
