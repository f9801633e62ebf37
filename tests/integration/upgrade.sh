#!/usr/bin/env bash
# ALTER EXTENSION pg_privacy UPDATE from the released 0.1.0, the way a DBA
# does it: a server runs the 0.1.0 library and catalog with real objects in
# it (purposes, tags, keys, policies, holds, objections, runs, audit
# entries); the new library replaces the old one, the server restarts, and
# `ALTER EXTENSION pg_privacy UPDATE` brings the catalog to the new version.
# Then everything made under 0.1.0 still works, and the extension's catalog
# is exactly what a fresh install of the new version creates.
#
# The 0.1.0 library is built from tests/upgrade/pg_privacy-0.1.0-src.tar.gz
# (the released source; built once, kept under $RUN_DIR/v0.1.0). The cluster
# runs from a private copy of the PostgreSQL 15 installation (hard links to
# the system files, pg_privacy's own files replaced), so the system
# directories are never touched.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TREE_ROOT=/tmp/pg_privacy-$(printf %s "$ROOT" | md5sum | cut -c1-8)/pgtree
export PG_BIN=$TREE_ROOT/usr/lib/postgresql/15/bin
. tests/lib.sh

SRC=$ROOT/tests/upgrade/pg_privacy-0.1.0-src.tar.gz
OLD=$RUN_DIR/v0.1.0
SYS_LIB=$(/usr/bin/pg_config --pkglibdir)
SYS_EXT=$(/usr/bin/pg_config --sharedir)/extension
NEW_VERSION=$(sed -n "s/^version = \"\(.*\)\"/\1/p" Cargo.toml | head -1)

# --- the 0.1.0 library, built once per source archive
stamp=$(md5sum <"$SRC" | cut -c1-32)
if [ "$(cat "$OLD/stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$OLD"
    mkdir -p "$OLD/src" "$OLD/files"
    tar -xzf "$SRC" -C "$OLD/src"
    echo "# building pg_privacy 0.1.0 from $SRC (once)"
    if ! (cd "$OLD/src/pg_privacy-0.1.0" &&
        PGRX_HOME=$ROOT/pgrx-config CARGO_TARGET_DIR=$ROOT/target \
            cargo pgrx package --pg-config /usr/bin/pg_config --out-dir "$OLD/pkg" >"$OLD/build.log" 2>&1); then
        tail -30 "$OLD/build.log"
        fail "the 0.1.0 library builds"
        exit 1
    fi
    find "$OLD/pkg" -name 'pg_privacy.so' -exec cp {} "$OLD/files/" \;
    find "$OLD/pkg" -name 'pg_privacy.control' -exec cp {} "$OLD/files/" \;
    find "$OLD/pkg" -name 'pg_privacy--0.1.0.sql' -exec cp {} "$OLD/files/" \;
    echo "$stamp" >"$OLD/stamp"
fi
check "the 0.1.0 build has its library, control file and install script" \
    test -f "$OLD/files/pg_privacy.so" -a -f "$OLD/files/pg_privacy.control" -a -f "$OLD/files/pg_privacy--0.1.0.sql"
check "the kept 0.1.0 install script is the released one" \
    cmp -s <(grep -v '^--' "$OLD/files/pg_privacy--0.1.0.sql" | sort) <(grep -v '^--' sql/pg_privacy--0.1.0.sql | sort)

# --- a private PostgreSQL installation: hard links, never written through
TREE_LIB=$TREE_ROOT/usr/lib/postgresql/15/lib
TREE_EXT=$TREE_ROOT/usr/share/postgresql/15/extension
rm -rf "$TREE_ROOT"
mkdir -p "$TREE_ROOT/usr/lib/postgresql" "$TREE_ROOT/usr/share/postgresql"
cp -al /usr/lib/postgresql/15 "$TREE_ROOT/usr/lib/postgresql/" 2>/dev/null ||
    cp -a /usr/lib/postgresql/15 "$TREE_ROOT/usr/lib/postgresql/"
cp -al /usr/share/postgresql/15 "$TREE_ROOT/usr/share/postgresql/" 2>/dev/null ||
    cp -a /usr/share/postgresql/15 "$TREE_ROOT/usr/share/postgresql/"

# install_version DIR-OF-FILES: replace pg_privacy's files in the private
# tree (unlink first: the links point at the system's files)
install_files() {
    rm -f "$TREE_LIB/pg_privacy.so" "$TREE_EXT"/pg_privacy.control "$TREE_EXT"/pg_privacy--*.sql
    cp "$1/pg_privacy.so" "$TREE_LIB/"
    cp "$1/pg_privacy.control" "$1"/pg_privacy--*.sql "$TREE_EXT/"
}
install_files "$OLD/files"

C=upgrade
cluster_init $C "privacy.naptime = 1" "lc_messages = 'C'"
cluster_start $C || exit 1
trap 'cluster_stop $C' EXIT
q() { sql_value $C app "$1"; }

psql_on $C -d postgres -c "CREATE DATABASE app" >/dev/null
# a database where the extension only goes through the update, for the
# catalog comparison at the end (app holds user objects as well)
psql_on $C -d postgres -c "CREATE DATABASE cat" >/dev/null
psql_on $C -d cat -c "CREATE EXTENSION pg_privacy VERSION '0.1.0'" >/dev/null
# --- life under 0.1.0
psql_on $C -d app >/dev/null <<'SQL' || { fail "objects are made under 0.1.0"; exit 1; }
CREATE ROLE app_owner LOGIN;
CREATE ROLE back_office LOGIN;
CREATE EXTENSION pg_privacy VERSION '0.1.0';
SELECT privacy.define_purpose('service', 'run the product', 'contract');
SELECT privacy.define_purpose('marketing', 'newsletters', 'consent');
SELECT privacy.define_purpose('billing', 'accounting law', 'legal_obligation');
SELECT privacy.create_key('default', '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea);
SELECT privacy.create_key('analytics');
SELECT privacy.rotate_key('analytics');

CREATE TABLE accounts (
    id bigint PRIMARY KEY,
    email text NOT NULL,
    plan text NOT NULL,
    unsubscribed_at timestamptz
);
CREATE INDEX ON accounts (unsubscribed_at);
CREATE TABLE invoices (
    id bigserial PRIMARY KEY,
    account_id bigint,
    amount numeric NOT NULL,
    issued_at date NOT NULL
);
CREATE INDEX ON invoices (account_id);
SECURITY LABEL FOR privacy ON COLUMN accounts.id IS 'SUBJECT';
SECURITY LABEL FOR privacy ON COLUMN accounts.email
    IS 'PURPOSE service, marketing CATEGORY contact ANONYMIZE EMAIL';
SELECT privacy.tag_column('accounts', 'plan', ARRAY['service']);
SELECT privacy.mark_subject('invoices', 'account_id');
SELECT privacy.tag_column('invoices', 'amount', ARRAY['billing'], 'financial', 'CONSTANT ''0''');

INSERT INTO accounts
SELECT g, 'user' || g || '@example.com', CASE WHEN g % 10 = 0 THEN 'vip' ELSE 'free' END,
       CASE WHEN g % 2 = 0 THEN now() - interval '90 days' END
  FROM generate_series(1, 100) g;
INSERT INTO invoices (account_id, amount, issued_at)
SELECT g % 100 + 1, g, DATE '2020-01-01' + g FROM generate_series(1, 300) g;

SELECT privacy.add_retention_policy('accounts', '30 days', 'unsubscribed_at', name => 'accounts_30d');
SELECT privacy.add_retention_policy('accounts', '2 years', 'unsubscribed_at', action => 'anonymize',
                                    purpose => 'marketing', name => 'accounts_anon', schedule_interval => '1 day');
SELECT privacy.alter_retention_policy('accounts_anon', enabled => false);
SELECT privacy.place_hold('accounts', 'plan = ''vip''', 'audit 2026-17');
SELECT privacy.place_subject_hold('42', 'case 8', now() + interval '1 year');
SELECT privacy.release_hold(privacy.place_hold('accounts', 'id = 1', 'released at once'));
SELECT privacy.object_to_purpose('3', 'marketing');
SELECT privacy.object_to_purpose('5', 'marketing');
SELECT privacy.withdraw_objection('5', 'marketing');
SELECT * FROM privacy.run_retention('accounts_30d', dry_run => true);
SELECT * FROM privacy.run_retention('accounts_30d');
SELECT privacy.export_subject('3');
SELECT * FROM privacy.forget_subject('7');
SQL
check "0.1.0 is installed and used" [ "$(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_privacy'")" = 0.1.0 ]
# what must survive the update
tags_before=$(q "SELECT string_agg(format('%s.%s %s %s %s %s', table_name, column_name, purposes, category, is_subject, anonymize), '; ' ORDER BY 1) FROM privacy.column_tags")
keys_before=$(q "SELECT string_agg(format('%s %s %s %s', name, version, active, fingerprint), '; ' ORDER BY name, version) FROM privacy.keys")
pseud_before=$(q "SELECT privacy.pseudonymize('ada@example.com') || ' ' || privacy.pseudonymize('ada@example.com', 'analytics')")
policies_before=$(q "SELECT string_agg(format('%s %s %s %s %s %s %s %s', name, table_name, anchor, keep_for, action, enabled, schedule_interval, last_status), '; ' ORDER BY name) FROM privacy.retention_policies")
holds_before=$(q "SELECT string_agg(format('%s %s %s %s %s', id, table_name, subject, row_filter, active), '; ' ORDER BY id) FROM privacy.holds")
runs_before=$(q "SELECT string_agg(format('%s %s %s %s', run_id, policy, status, rows_affected), '; ' ORDER BY run_id) FROM privacy.retention_runs")
runs_max=$(q "SELECT max(run_id) FROM privacy.retention_runs")
audit_before=$(q "SELECT count(*) || ' ' || max(id) FROM privacy.audit_log")
# 0.1.0 stores secrets in clear: the update wraps them (issue 18)
clear_secrets=$(q "SELECT string_agg(encode(secret, 'hex'), ' ') FROM privacy.key_secrets WHERE secret IS NOT NULL")
check "0.1.0 made real objects (runs, holds, audit)" \
    [ -n "$runs_before" -a -n "$holds_before" -a "${audit_before%% *}" -gt 20 ]

# --- the package upgrade: new library, restart, ALTER EXTENSION UPDATE
cluster_stop $C
mkdir -p "$RUN_DIR/v-new"
cp "$SYS_LIB/pg_privacy.so" "$SYS_EXT/pg_privacy.control" "$SYS_EXT"/pg_privacy--*.sql "$RUN_DIR/v-new/"
install_files "$RUN_DIR/v-new"
# first without a root key: the update must fail whole, with a clear error
conf=$(cluster_dir $C)/data/postgresql.conf
echo "privacy.root_key_command = ''" | as_pg tee -a "$conf" >/dev/null
cluster_start $C || exit 1
check "the new library starts with the 0.1.0 catalog" [ "$(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_privacy'")" = 0.1.0 ]
out=$(psql_on $C -d app -c "ALTER EXTENSION pg_privacy UPDATE" 2>&1)
check "without a root key, ALTER EXTENSION UPDATE fails with a clear error" grep -q "ERROR:  no root key is configured for pg_privacy" <<<"$out"
check "and a hint that nothing was changed" grep -q "HINT:  .*ALTER EXTENSION pg_privacy UPDATE wraps the existing key secrets under the root key, so it needs one; nothing was changed." <<<"$out"
check "nothing half-done: still 0.1.0, secrets untouched" \
    [ "$(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_privacy'")" = 0.1.0 \
      -a "$(q "SELECT string_agg(encode(secret, 'hex'), ' ') FROM privacy.key_secrets WHERE secret IS NOT NULL")" = "$clear_secrets" ]
cluster_stop $C
# the server log from this start on (the start before had its own worker)
log_from=$(( $(wc -l < "$(cluster_dir $C)/server.log") + 1 ))
echo "privacy.root_key_command = 'cat $(root_key_file $C)'" | as_pg tee -a "$conf" >/dev/null
cluster_start $C || exit 1
# until the update, the new library refuses to run its SQL on the old
# catalog: a clear error with the command to run
stale=$(psql_on $C -d app -c "SELECT privacy.define_purpose('support')" 2>&1)
check "before the update, an admin function is refused" \
    grep -q "ERROR:  pg_privacy 0.1.0 is installed in this database but the loaded library is version $NEW_VERSION" <<<"$stale"
check "… with the hint to update" grep -q "HINT:  Run ALTER EXTENSION pg_privacy UPDATE." <<<"$stale"
check "… and nothing was done" [ "$(q "SELECT count(*) FROM privacy.purposes WHERE name = 'support'")" = 0 ]
check "before the update, the catalog's views still read" [ "$(q "SELECT count(*) > 0 FROM privacy.column_tags")" = t ]
# the worker of app runs nothing on the old catalog: one LOG line, then waits
server_log=$(cluster_dir $C)/server.log
stale_line="pg_privacy worker: database app has pg_privacy 0.1.0 installed but the library is version $NEW_VERSION"
stale_said() { tail -n "+$log_from" "$server_log" | grep -qF "$stale_line"; }
for _ in $(seq 1 120); do stale_said && break; sleep 0.5; done
check "before the update, the worker skips the database and says so" stale_said
check "ALTER EXTENSION pg_privacy UPDATE succeeds" psql_on $C -d app -c "ALTER EXTENSION pg_privacy UPDATE"
psql_on $C -d cat -c "ALTER EXTENSION pg_privacy UPDATE" >/dev/null
check "the extension is now $NEW_VERSION" [ "$(q "SELECT extversion FROM pg_extension WHERE extname = 'pg_privacy'")" = "$NEW_VERSION" ]

# --- the secrets are wrapped, the clear copies gone from the table's file
check "every secret is wrapped under the server's root key" \
    [ "$(q "SELECT count(*) FILTER (WHERE root_key_fingerprint = privacy.root_key_fingerprint()) || ' ' || count(*) FROM privacy.key_wrapping WHERE active")" = "3 3" ]
check "the update is audited" [ "$(q "SELECT details->>'wrapped' FROM privacy.audit_log WHERE action = 'wrap_key_secrets'")" = 3 ]
q "CHECKPOINT" >/dev/null
heap=$(cluster_dir $C)/data/$(q "SELECT pg_relation_filepath('privacy.key_secrets')")
check "the key table's file is not empty" test -s "$heap"
for s in $clear_secrets; do
    check "the clear secret ${s:0:8}… is gone from the key table's file" [ "$(traces "$s" "$heap")" = 0 ]
done

# --- everything made under 0.1.0 still works
check "tags unchanged" [ "$(q "SELECT string_agg(format('%s.%s %s %s %s %s', table_name, column_name, purposes, category, is_subject, anonymize), '; ' ORDER BY 1) FROM privacy.column_tags")" = "$tags_before" ]
check "keys unchanged" [ "$(q "SELECT string_agg(format('%s %s %s %s', name, version, active, fingerprint), '; ' ORDER BY name, version) FROM privacy.keys")" = "$keys_before" ]
check "the same pseudonyms with the same keys" [ "$(q "SELECT privacy.pseudonymize('ada@example.com') || ' ' || privacy.pseudonymize('ada@example.com', 'analytics')")" = "$pseud_before" ]
check "the pseudonym is the HMAC of the known secret" [ "$(q "SELECT privacy.pseudonymize('x')")" = \
    "$(python3 -c 'import hmac,hashlib;print(hmac.new(bytes(range(32)),b"x",hashlib.sha256).hexdigest())')" ]
check "policies unchanged" [ "$(q "SELECT string_agg(format('%s %s %s %s %s %s %s %s', name, table_name, anchor, keep_for, action, enabled, schedule_interval, last_status), '; ' ORDER BY name) FROM privacy.retention_policies")" = "$policies_before" ]
check "holds unchanged" [ "$(q "SELECT string_agg(format('%s %s %s %s %s', id, table_name, subject, row_filter, active), '; ' ORDER BY id) FROM privacy.holds")" = "$holds_before" ]
check "run history kept" [ "$(q "SELECT string_agg(format('%s %s %s %s', run_id, policy, status, rows_affected), '; ' ORDER BY run_id) FROM privacy.retention_runs WHERE run_id <= $runs_max")" = "$runs_before" ]
check "audit entries kept" [ "$(q "SELECT count(*) FILTER (WHERE id <= ${audit_before##* }) || ' ' || ${audit_before##* } FROM privacy.audit_log")" = "$audit_before" ]
check "objections kept (3 objected, 5 withdrew)" [ "$(q "SELECT privacy.may_process('3', 'marketing')::text || privacy.may_process('5', 'marketing')::text")" = falsetrue ]

# the policy made under 0.1.0 runs under the new version; holds still hold
psql_on $C -d app -c "UPDATE accounts SET unsubscribed_at = now() - interval '90 days' WHERE id IN (11, 20, 42, 43)" >/dev/null
q "SELECT count(*) FROM privacy.run_retention('accounts_30d')" >/dev/null
check "the 0.1.0 policy runs after the update" \
    [ "$(q "SELECT status FROM privacy.retention_runs WHERE run_id > $runs_max AND policy = 'accounts_30d' AND triggered_by = 'manual'")" = succeeded ]
check "it purged the expired unheld rows" [ "$(q "SELECT count(*) FROM accounts WHERE id IN (11, 43)")" = 0 ]
check "the filter hold made under 0.1.0 still holds (vip 20)" [ "$(q "SELECT count(*) FROM accounts WHERE id = 20")" = 1 ]
check "the subject hold made under 0.1.0 still holds (42)" [ "$(q "SELECT count(*) FROM accounts WHERE id = 42")" = 1 ]
check "new audit entries follow the old ones" [ "$(q "SELECT min(id) > ${audit_before##* } FROM privacy.audit_log WHERE action = 'run_retention' AND at > now() - interval '1 hour' AND id > ${audit_before##* }")" = t ]
check "export and erasure work on the 0.1.0 objects" \
    [ "$(q "SELECT jsonb_array_length(privacy.export_subject('9')->'tables'->'public.accounts'->'rows')")" = 1 ]
check "a worker serves the updated database" wait_for $C app \
    "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'pg_privacy worker' AND datname = 'app'" 30
check "the worker said it once (LOG once per stale catalog)" [ "$(tail -n "+$log_from" "$server_log" | grep -cF "$stale_line")" = 1 ]

# --- the updated catalog is a fresh install's catalog
psql_on $C -d postgres -c "CREATE DATABASE fresh" >/dev/null
psql_on $C -d fresh -c "CREATE EXTENSION pg_privacy" >/dev/null
# pg_dump skips extension members except in binary-upgrade mode, where it
# writes every member object (and ALTER EXTENSION … ADD for each) of a
# database that holds nothing else; lines carrying OIDs (TOC entries, the
# preserved-OID calls), session settings and sequence positions are left out
catalog_of() {
    as_pg "$PG_BIN/pg_dump" -h "$(cluster_dir $C)" -p "$(cluster_port $C)" -U postgres \
        --schema-only --binary-upgrade "$1" |
        grep -v -e '^--' -e 'binary_upgrade_set_' -e 'binary_upgrade_create_empty_extension' -e '^$' \
                -e '^SET ' -e 'pg_catalog.set_config' -e 'pg_catalog.setval' -e "^WHERE oid = '[0-9]*';$" -e '^\\\(un\)\?restrict '
}
catalog_of cat >"$RUN_DIR/catalog-updated.sql"
catalog_of fresh >"$RUN_DIR/catalog-fresh.sql"
if diff -u "$RUN_DIR/catalog-fresh.sql" "$RUN_DIR/catalog-updated.sql" >"$RUN_DIR/catalog.diff"; then
    ok "the updated catalog equals a fresh install ($(wc -l <"$RUN_DIR/catalog-fresh.sql") lines of DDL)"
else
    head -60 "$RUN_DIR/catalog.diff"
    fail "the updated catalog equals a fresh install (diff in $RUN_DIR/catalog.diff)"
fi
config_of() {
    sql_value $C "$1" "SELECT string_agg(format('%s %s', c.cfg::regclass, c.cond), '; ' ORDER BY c.cfg::regclass::text)
                         FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS c(cfg, cond)
                        WHERE e.extname = 'pg_privacy'"
}
check "the same tables are dumped with the data (pg_extension_config_dump)" [ "$(config_of app)" = "$(config_of fresh)" -a "$(config_of cat)" = "$(config_of fresh)" ]
check "the update left no ERROR or crash in the server log" \
    bash -c "! grep -E 'PANIC|server process .* terminated' '$(cluster_dir $C)/server.log'"

echo "# upgrade: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
