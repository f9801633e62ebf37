#!/usr/bin/env bash
# Keys survive pg_dump + restore on a server with the same root key
# (pseudonyms stay the same, versions and fingerprints too), and the
# pseudonymization functions work in a database whose encoding is not UTF-8
# (text is hashed as UTF-8). Without shared_preload_libraries there is no
# root key (it is loaded by the postmaster at start): key operations fail
# with a clear error and hint (tests/integration/no_preload.sh).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

C=keysdump
cluster_init $C "privacy.worker_enabled = off" "lc_messages = 'C'"
cluster_start $C || exit 1
trap 'cluster_stop $C' EXIT

psql_on $C -d postgres -c "CREATE DATABASE src" -c "CREATE DATABASE dst" >/dev/null
psql_on $C -d src >/dev/null <<'SQL'
CREATE EXTENSION pg_privacy;
SELECT privacy.create_key();
SELECT privacy.create_key('analytics');
SELECT privacy.rotate_key('analytics');
SQL
probe="SELECT privacy.pseudonymize('ada@example.com') || ' ' || privacy.pseudonymize('ada', 'analytics')
              || ' ' || privacy.pseudonymize_email('Ada@Example.com', 'analytics')
              || ' ' || privacy.pseudonymize_bigint(42) || ' ' || privacy.pseudonymize_uuid('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')"
keys_of() { sql_value $C "$1" "SELECT string_agg(format('%s/%s/%s/%s', name, version, active, fingerprint), ',' ORDER BY name, version) FROM privacy.keys"; }

before=$(sql_value $C src "$probe")
check "the functions compute every pseudonym" [ "$(wc -w <<<"$before")" = 5 ]
check "a fresh session computes the same pseudonyms" [ "$(sql_value $C src "$probe")" = "$before" ]

dumpfile=$(cluster_dir $C)/src.sql
as_pg "$PG_BIN/pg_dump" -h "$(cluster_dir $C)" -p "$(cluster_port $C)" -U postgres -d src -f "$dumpfile"
check "the dump carries the key table (wrapped secrets)" grep -q "COPY privacy.key_secrets" "$dumpfile"
psql_on $C -d dst -f "$dumpfile" >/dev/null 2>"$(cluster_dir $C)/restore.err"
check "restore has no errors" [ ! -s "$(cluster_dir $C)/restore.err" ]
check "restored keys: same names, versions and fingerprints" [ "$(keys_of dst)" = "$(keys_of src)" ]
check "restored database gives the same pseudonyms" [ "$(sql_value $C dst "$probe")" = "$before" ]
check "rotation works after restore" [ "$(sql_value $C dst "SELECT length(privacy.rotate_key('analytics'))")" = 16 ]
check "and the restored table still takes new versions" \
    [ "$(sql_value $C dst "SELECT max(version) FROM privacy.keys WHERE name = 'analytics'")" = 3 ]
nokeys=$(cluster_dir $C)/nokeys.sql
as_pg "$PG_BIN/pg_dump" -h "$(cluster_dir $C)" -p "$(cluster_port $C)" -U postgres -d src \
    --exclude-table-data=privacy.key_secrets -f "$nokeys"
check "--exclude-table-data=privacy.key_secrets leaves the secrets out" bash -c "! grep -q 'COPY privacy.key_secrets' '$nokeys'"

# A LATIN1 database: the hash is over the UTF-8 bytes, like convert_to(x, 'UTF8').
psql_on $C -d postgres -c "CREATE DATABASE latin TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'" >/dev/null
out=$(psql_on $C -d latin -At <<'SQL'
SET client_encoding = 'UTF8';
CREATE EXTENSION pg_privacy;
CREATE EXTENSION pgcrypto;
SELECT privacy.create_key('k', '\x000102030405060708090a0b0c0d0e0f') IS NOT NULL;
SELECT privacy.pseudonymize('Zoë Ünal', 'k') = encode(hmac(convert_to('Zoë Ünal', 'UTF8'), '\x000102030405060708090a0b0c0d0e0f'::bytea, 'sha256'), 'hex');
SELECT privacy.pseudonymize_email('ZOË@Exämple.DE', 'k') = left(encode(hmac(convert_to('zoë@exämple.de', 'UTF8'), '\x000102030405060708090a0b0c0d0e0f'::bytea, 'sha256'), 'hex'), 16) || '@exämple.de';
SQL
)
check "LATIN1 database: text hashed as UTF-8, equal to pgcrypto" [ "$(sed -n 2p <<<"$out")" = t ]
check "LATIN1 database: pseudonymize_email lowercases and keeps a non-ASCII domain" [ "$(sed -n 3p <<<"$out")" = t ]
echo "$out" | grep -v '^t$' || true
cat "$(cluster_dir $C)/restore.err"
exit 0
