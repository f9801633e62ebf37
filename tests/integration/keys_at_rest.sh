#!/usr/bin/env bash
# Issue 18, keys kept separately: a key created with a known secret leaves
# no trace of that secret in the table's heap file, the WAL (raw segments and
# pg_waldump's output), a base backup or a plain pg_dump; the restored dump
# and a streaming standby (and the promoted standby) give the same
# pseudonyms with the same root key; a server with another root key, or none,
# refuses the keys with a clear error while everything else works; the root
# key is rotated through privacy.previous_root_key_command and
# privacy.rotate_root_key(); a failing root key command is a WARNING at
# start and never logs the key.
#
# Each "no trace" check has a positive control: a distinctive value stored
# in an ordinary table IS found by the same scan in the same place, so the
# scans are shown to see what they are looking for.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

P=atrest
S=atrest_stby
Q=atrest_restore
cluster_init $P "privacy.worker_enabled = off" "lc_messages = 'C'" "wal_level = replica" "max_wal_senders = 4"
echo "host replication postgres 127.0.0.1/32 trust" | as_pg tee -a "$(cluster_dir $P)/data/pg_hba.conf" >/dev/null
cluster_start $P || exit 1
trap 'cluster_stop $S; cluster_stop $Q; cluster_stop $P' EXIT
pdir=$(cluster_dir $P)
qp() { sql_value $P app "$1"; }

SECRET=d1a7e5b3c9f20486e1d2c3b4a5968778695a4b3c2d1e0ff0a1b2c3d4e5f60718
CONTROL=c0ffee00c0ffee11c0ffee22c0ffee33c0ffee44c0ffee55c0ffee66c0ffee77

psql_on $P -d postgres -c "CREATE DATABASE app" >/dev/null
start_lsn=$(qp "SELECT pg_current_wal_insert_lsn()")
start_wal=$(qp "SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
psql_on $P -d app >/dev/null <<SQL
CREATE EXTENSION pg_privacy;
CREATE EXTENSION pgcrypto;
SELECT privacy.define_purpose('service');
SELECT privacy.create_key('k', '\\x$SECRET'::bytea);
SELECT privacy.create_key('other');
CREATE TABLE control (b bytea);
INSERT INTO control VALUES ('\\x$CONTROL'::bytea);
CREATE TABLE accounts (id bigint PRIMARY KEY, email text, gone_at timestamptz);
SELECT privacy.tag_column('accounts', 'email', ARRAY['service'], 'contact');
SELECT privacy.add_retention_policy('accounts', '30 days', 'gone_at', name => 'accounts_30d');
INSERT INTO accounts SELECT g, 'u' || g || '@example.com', now() - interval '60 days' FROM generate_series(1, 10) g;
SQL
probe="SELECT privacy.pseudonymize('ada@example.com', 'k') || ' ' || privacy.pseudonymize_bigint(42, 'other')"
pseud=$(qp "$probe")
check "the pseudonym is the HMAC of the known secret" \
    [ "$(qp "SELECT privacy.pseudonymize('ada@example.com', 'k') = encode(hmac('ada@example.com', '\\x$SECRET'::bytea, 'sha256'), 'hex')")" = t ]
check "key_wrapping names this server's root key for both keys" \
    [ "$(qp "SELECT count(*) FROM privacy.key_wrapping WHERE root_key_fingerprint = privacy.root_key_fingerprint()")" = 2 ]
qp "CHECKPOINT" >/dev/null
psql_on $P -d app -c "CHECKPOINT" >/dev/null
end_lsn=$(qp "SELECT pg_current_wal_insert_lsn()")

# --- the heap file
heap=$pdir/data/$(qp "SELECT pg_relation_filepath('privacy.key_secrets')")
control_heap=$pdir/data/$(qp "SELECT pg_relation_filepath('control')")
check "the key table's heap file exists and is not empty" test -s "$heap"
check "control: the scan finds the control value in its heap file" [ "$(traces $CONTROL "$control_heap")" = 1 ]
check "the secret is not in the key table's heap file" [ "$(traces $SECRET "$heap")" = 0 ]
check "the secret is in no file of the data directory" [ "$(traces $SECRET "$pdir/data")" = 0 ]

# --- the WAL since the key was created: raw segments and pg_waldump
walfiles=()
for f in "$pdir"/data/pg_wal/0*; do
    [ "$(basename "$f")" \< "$start_wal" ] || walfiles+=("$f")
done
check "control: the scan finds the control value in the WAL" [ "$(traces $CONTROL "${walfiles[@]}")" -ge 1 ]
check "the secret is in no WAL segment written since the key was created" [ "$(traces $SECRET "${walfiles[@]}")" = 0 ]
waldump=$pdir/waldump.txt
as_pg "$PG_BIN/pg_waldump" -p "$pdir/data/pg_wal" -s "$start_lsn" -e "$end_lsn" >"$waldump" 2>"$pdir/waldump.err"
keyfile=$(qp "SELECT pg_relation_filenode('privacy.key_secrets')")
check "pg_waldump shows the key table's inserts" grep -q "rel [0-9]*/[0-9]*/$keyfile" "$waldump"
check "the secret is not in pg_waldump's output" [ "$(traces $SECRET "$waldump")" = 0 ]

# --- a base backup (also the standby's data directory)
sdir=$(cluster_dir $S)
cluster_stop $S 2>/dev/null; rm -rf "$sdir"; install -d -o postgres -g postgres "$sdir"
as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$(cluster_port $P)" -U postgres -D "$sdir/data" -R -X stream >/dev/null 2>&1
check "control: the scan finds the control value in the base backup" [ "$(traces $CONTROL "$sdir/data")" -ge 1 ]
check "the secret is in no file of the base backup" [ "$(traces $SECRET "$sdir/data")" = 0 ]
check "nor is the root key (it lives outside the data directory)" [ "$(traces "$TEST_ROOT_KEY" "$sdir/data")" = 0 ]

# --- a plain pg_dump
dump=$pdir/app.sql
as_pg "$PG_BIN/pg_dump" -h "$pdir" -p "$(cluster_port $P)" -U postgres -d app -f "$dump"
check "control: the scan finds the control value in the dump" [ "$(traces $CONTROL "$dump")" = 1 ]
check "the dump carries the wrapped key table" grep -q "COPY privacy.key_secrets" "$dump"
check "the secret is not in the dump" [ "$(traces $SECRET "$dump")" = 0 ]

# --- the standby and the promoted standby, with the same root key
sport=$(free_port); echo "$sport" | as_pg tee "$sdir/port" >/dev/null
printf "port = %s\nunix_socket_directories = '%s'\nprivacy.root_key_command = 'cat %s/root.key'\n" "$sport" "$sdir" "$sdir" |
    as_pg tee -a "$sdir/data/postgresql.conf" >/dev/null
root_key_write $S "$TEST_ROOT_KEY"
cluster_start $S || exit 1
check "the standby is in recovery" [ "$(sql_value $S app "SELECT pg_is_in_recovery()")" = t ]
check "the standby gives the same pseudonyms" [ "$(sql_value $S app "$probe")" = "$pseud" ]
qp "SELECT privacy.create_key('late', '\\x00112233445566778899aabbccddeeff')" >/dev/null
late=$(qp "SELECT privacy.pseudonymize('x', 'late')")
check "a key created later replays to the standby" wait_for $S app "SELECT count(*) = 1 FROM privacy.keys WHERE name = 'late'" 30
check "and gives the same pseudonyms there" [ "$(sql_value $S app "SELECT privacy.pseudonymize('x', 'late')")" = "$late" ]
as_pg "$PG_BIN/pg_ctl" -D "$sdir/data" -w promote >/dev/null
check "the promoted standby leaves recovery" wait_for $S app "SELECT NOT pg_is_in_recovery()" 30
check "the promoted standby gives the same pseudonyms" [ "$(sql_value $S app "$probe")" = "$pseud" ]
check "and creates keys of its own" [ "$(sql_value $S app "SELECT length(privacy.create_key('promoted'))")" = 16 ]
cluster_stop $S

# --- restore on another server: same root key, another one, none
cluster_init $Q "privacy.worker_enabled = off" "lc_messages = 'C'"
cluster_start $Q || exit 1
psql_on $Q -d postgres -c "CREATE DATABASE app" >/dev/null
psql_on $Q -d app -f "$dump" >/dev/null 2>"$(cluster_dir $Q)/restore.err"
check "the dump restores without errors" [ ! -s "$(cluster_dir $Q)/restore.err" ]
check "restored with the same root key: the same pseudonyms" [ "$(sql_value $Q app "$probe")" = "$pseud" ]

root_key_write $Q "$(python3 -c 'import os; print(os.urandom(32).hex())')"
cluster_stop $Q && cluster_start $Q || exit 1
other_fp=$(sql_value $Q app "SELECT privacy.root_key_fingerprint()")
our_fp=$(qp "SELECT privacy.root_key_fingerprint()")
check "another root key has another fingerprint" [ -n "$other_fp" -a "$other_fp" != "$our_fp" ]
out=$(psql_on $Q -d app -c "$probe" 2>&1)
check "another root key: the restored keys are refused with a clear error" \
    grep -q "ERROR:  key \"k\" version 1 is wrapped under root key $our_fp, which this server does not have" <<<"$out"
check "the error has the hint" grep -q "HINT:  Start the server with root key $our_fp in privacy.root_key_command" <<<"$out"
check "nothing else breaks: tags" [ "$(sql_value $Q app "SELECT count(*) FROM privacy.column_tags WHERE table_name = 'accounts'::regclass")" = 1 ]
check "nothing else breaks: a retention run that does not pseudonymize" \
    [ "$(sql_value $Q app "SELECT rows FROM privacy.run_retention('accounts_30d')" | head -1)" = 10 ]
check "new keys work under the new root key" [ "$(sql_value $Q app "SELECT length(privacy.pseudonymize('x', 'k2')) FROM (SELECT privacy.create_key('k2')) c")" = 64 ]

echo "privacy.root_key_command = ''" | as_pg tee -a "$(cluster_dir $Q)/data/postgresql.conf" >/dev/null
cluster_stop $Q && cluster_start $Q || exit 1
check "no root key: a WARNING at start" grep -q "WARNING:  pg_privacy: privacy.root_key_command is not set" "$(cluster_dir $Q)/server.log"
out=$(psql_on $Q -d app -c "$probe" 2>&1)
check "no root key: pseudonymization fails with a clear error" grep -q "ERROR:  no root key is configured for pg_privacy" <<<"$out"
check "and a hint" grep -q "HINT:  Set privacy.root_key_command" <<<"$out"
out=$(psql_on $Q -d app -c "SELECT privacy.create_key('k3')" 2>&1)
check "no root key: create_key fails the same way" grep -q "ERROR:  no root key is configured for pg_privacy" <<<"$out"
check "no root key: the keys are still listed, tags still read" \
    [ "$(sql_value $Q app "SELECT (SELECT count(*) FROM privacy.keys) > 0 AND (SELECT count(*) FROM privacy.column_tags) = 1")" = t ]
check "no root key: drop_key still shreds a key" [ "$(sql_value $Q app "SELECT privacy.drop_key('other'); SELECT count(*) FROM privacy.keys WHERE name = 'other'" | tail -1)" = 0 ]

echo "privacy.root_key_command = 'echo not-a-key; exit 0'" | as_pg tee -a "$(cluster_dir $Q)/data/postgresql.conf" >/dev/null
cluster_stop $Q && cluster_start $Q || exit 1
check "a command printing no key: a WARNING at start" \
    grep -q "WARNING:  pg_privacy: privacy.root_key_command gave no root key: its output is not 64 hex digits" "$(cluster_dir $Q)/server.log"
out=$(psql_on $Q -d app -c "$probe" 2>&1)
check "and key operations say why" grep -q "DETAIL:  privacy.root_key_command failed: its output is not 64 hex digits" <<<"$out"
check "the command's output is never logged" bash -c "! grep -q 'not-a-key' '$(cluster_dir $Q)/server.log'"
cluster_stop $Q

# --- root key rotation on the primary: new key, old one as previous
as_pg bash -c "umask 077 && cp '$pdir/root.key' '$pdir/old.key'"
root_key_write $P "$(python3 -c 'import os; print(os.urandom(32).hex())')"
echo "privacy.previous_root_key_command = 'cat $pdir/old.key'" | as_pg tee -a "$pdir/data/postgresql.conf" >/dev/null
cluster_stop $P && cluster_start $P || exit 1
new_fp=$(qp "SELECT privacy.root_key_fingerprint()")
check "after the restart the server has the new root key" [ -n "$new_fp" -a "$new_fp" != "$our_fp" ]
check "secrets under the previous root key still work" [ "$(qp "$probe")" = "$pseud" ]
check "key_wrapping shows them under the previous root key" \
    [ "$(qp "SELECT string_agg(DISTINCT root_key_fingerprint, ',') FROM privacy.key_wrapping WHERE name IN ('k', 'other')")" = "$our_fp" ]
out=$(psql_on $P -d app -c "CREATE ROLE clerk; GRANT EXECUTE ON FUNCTION privacy.rotate_root_key() TO clerk; SET ROLE clerk; SELECT privacy.rotate_root_key()" 2>&1)
check "only a superuser or the extension owner rotates" grep -q "ERROR:  only a superuser or the owner of extension \"pg_privacy\" may rotate the root key" <<<"$out"
n=$(qp "SELECT privacy.rotate_root_key()")
check "rotate_root_key rewraps every secret (k, other, late)" [ "$n" = 3 ]
check "every secret is now under the new root key" \
    [ "$(qp "SELECT string_agg(DISTINCT root_key_fingerprint, ',') FROM privacy.key_wrapping WHERE active")" = "$new_fp" ]
check "the rotation is audited by fingerprints" \
    [ "$(qp "SELECT details->>'rewrapped' || ' ' || (details->>'root_key_fingerprint') || ' ' || (details->'previous_root_key_fingerprints'->>0) FROM privacy.audit_log WHERE action = 'rotate_root_key'")" = "3 $new_fp $our_fp" ]
echo "privacy.previous_root_key_command = ''" | as_pg tee -a "$pdir/data/postgresql.conf" >/dev/null
rm -f "$pdir/old.key"
cluster_stop $P && cluster_start $P || exit 1
check "without the old root key, the same pseudonyms" [ "$(qp "$probe")" = "$pseud" ]
check "the server log never shows a root key or the secret" \
    [ "$(traces "$TEST_ROOT_KEY" "$pdir/server.log")" = 0 -a "$(traces $SECRET "$pdir/server.log")" = 0 ]
exit 0
