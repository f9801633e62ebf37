#!/usr/bin/env bash
# Keys across sessions, on a real cluster:
# - a long-lived session (same backend throughout) sees another session's
#   create/rotate/drop at its next statement, also inside an open transaction;
#   an uncommitted or rolled-back rotation is seen by nobody;
# - secrets never reach the server log, with log_statement = all,
#   log_min_error_statement = info and log_min_messages = debug1.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/lib.sh

cluster_init keys "privacy.worker_enabled = off" "log_statement = 'all'" \
    "log_min_error_statement = info" "log_min_messages = debug1" "lc_messages = 'C'"
cluster_start keys || exit 1
dir=$(cluster_dir keys)
cleanup() {
    session_close
    cluster_stop keys
}
trap cleanup EXIT

psql_on keys -d postgres -c "CREATE DATABASE k" >/dev/null
psql_on keys -d k -c "CREATE EXTENSION pg_privacy" -c "CREATE EXTENSION pgcrypto" >/dev/null

# Session A: one psql (one backend) for the whole test; a SQL runs SQL in it.
session_open keys k
# b SQL: one statement in a new session B
b() { sql_value keys k "$1"; }
# the clear secret, unwrapped outside the server with the root key file
secret_hex() { key_secret_hex keys k "$1"; }
expected() { # expected pseudonym of $1 under the current secret of key $2,
    # computed outside the server (a statement would put the secret in the log)
    python3 -c 'import hmac, hashlib, sys; print(hmac.new(bytes.fromhex(sys.argv[1]), sys.argv[2].encode(), hashlib.sha256).hexdigest())' \
        "$(secret_hex "$2")" "$1"
}
secrets=()

pid1=$(a "SELECT pg_backend_pid();")
out=$(a "SELECT privacy.pseudonymize('ada', 'k1');")
check "A: a missing key is an error" grep -q 'key "k1" does not exist' <<<"$out"

b "SELECT privacy.create_key('k1')" >/dev/null
secrets+=("$(secret_hex k1)")
v1=$(a "SELECT privacy.pseudonymize('ada', 'k1');")
check "A sees B's create_key at its next statement" [ "$v1" = "$(expected ada k1)" ]
check "A computes it again from its cache" [ "$(a "SELECT privacy.pseudonymize('ada', 'k1');")" = "$v1" ]

b "SELECT privacy.rotate_key('k1')" >/dev/null
secrets+=("$(secret_hex k1)")
v2=$(a "SELECT privacy.pseudonymize('ada', 'k1');")
check "A sees B's rotate_key at its next statement" [ "$v2" = "$(expected ada k1)" ]
check "the rotated pseudonym differs" [ "$v2" != "$v1" ]

# inside an open transaction of A (read committed, then repeatable read)
for iso in "READ COMMITTED" "REPEATABLE READ"; do
    before=$(a "BEGIN ISOLATION LEVEL $iso; SELECT privacy.pseudonymize('ada', 'k1');")
    b "SELECT privacy.rotate_key('k1')" >/dev/null
    secrets+=("$(secret_hex k1)")
    after=$(a "SELECT privacy.pseudonymize('ada', 'k1');")
    a "COMMIT;" >/dev/null
    check "A ($iso, open transaction) sees the rotation at its next statement" \
        [ "$after" = "$(expected ada k1)" -a "$after" != "$before" ]
done

# an uncommitted rotation is invisible; a rolled-back one leaves nothing behind
cur=$(a "SELECT privacy.pseudonymize('ada', 'k1');")
out=$(psql_on keys -d k -At <<'SQL'
BEGIN;
SELECT privacy.pseudonymize('ada', 'k1');
SELECT privacy.rotate_key('k1') IS NOT NULL;
SELECT privacy.pseudonymize('ada', 'k1');
SELECT pg_sleep(0.5);
ROLLBACK;
SELECT privacy.pseudonymize('ada', 'k1');
SQL
)
mapfile -t lines <<<"$out"
check "B sees its own rotation before commit" [ "${lines[0]}" = "$cur" -a "${lines[2]}" != "$cur" ]
check "B's rollback restores the old key in B's cache" [ "${lines[4]}" = "$cur" ]
check "A never saw the rolled-back rotation" [ "$(a "SELECT privacy.pseudonymize('ada', 'k1');")" = "$cur" ]

b "SELECT privacy.drop_key('k1')" >/dev/null
out=$(a "SELECT privacy.pseudonymize('ada', 'k1');")
check "A sees B's drop_key at its next statement (42704)" grep -q 'key "k1" does not exist' <<<"$out"
check "A kept one backend throughout" [ "$(a "SELECT pg_backend_pid();")" = "$pid1" ]

# The audit key, and the other functions, as an ordinary role with grants.
b "SELECT privacy.create_key()" >/dev/null
secrets+=("$(secret_hex default)")
psql_on keys -d k >/dev/null <<'SQL'
CREATE ROLE analyst LOGIN;
GRANT USAGE ON SCHEMA privacy TO analyst;
GRANT EXECUTE ON FUNCTION privacy.pseudonymize(text, text), privacy.pseudonymize(bytea, text),
      privacy.pseudonymize_email(text, text), privacy.pseudonymize_uuid(uuid, text),
      privacy.pseudonymize_bigint(bigint, text) TO analyst;
SQL
out=$(psql_on keys -d k -U analyst -At -v ON_ERROR_STOP=0 2>&1 <<'SQL'
SELECT privacy.pseudonymize('x'), privacy.pseudonymize('\x01'::bytea), privacy.pseudonymize_email('A@B.org'),
       privacy.pseudonymize_uuid(gen_random_uuid()), privacy.pseudonymize_bigint(7);
SELECT * FROM privacy.key_secrets;
SELECT privacy.rotate_key();
SQL
)
check "analyst: granted functions work" grep -q '@b.org|' <<<"$out"
check "analyst: the secret table is denied" grep -q 'permission denied for table key_secrets' <<<"$out"
check "analyst: rotate_key is denied" grep -q 'permission denied for function rotate_key' <<<"$out"

# An imported secret, in a session that keeps its statements out of the log
# (the documented way): even its errors do not log it.
imported=00112233445566778899aabbccddeeff0123456789abcdef
secrets+=("$imported")
psql_on keys -d k -v ON_ERROR_STOP=0 >/dev/null 2>&1 <<SQL
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
SELECT privacy.create_key('imported', '\\x$imported');
SELECT privacy.create_key('imported', '\\x$imported');
SELECT privacy.create_key('short', '\\x${imported:0:20}');
SQL
check "the imported key exists" [ "$(b "SELECT count(*) FROM privacy.keys WHERE name = 'imported'")" = 1 ]
check "its duplicate was refused (logged without the statement)" grep -q 'key "imported" already exists' "$dir/server.log"

# errors from every function, logged with their statements
psql_on keys -d k -v ON_ERROR_STOP=0 >/dev/null 2>&1 <<'SQL'
SELECT privacy.create_key('default');
SELECT privacy.rotate_key('nokey');
SELECT privacy.drop_key('nokey');
SELECT privacy.pseudonymize('x', 'nokey');
SELECT privacy.create_key('_audit');
SQL
check "the server log has statements and errors to scan" grep -q 'key "nokey" does not exist' "$dir/server.log"
check "the server log records statements (log_statement = all)" grep -q 'statement: SELECT privacy.rotate_key' "$dir/server.log"

leaks=0
for n in $(b "SELECT string_agg(name, ' ') FROM privacy.key_secrets WHERE active"); do
    secrets+=("$(secret_hex "$n")")
done
check "every active secret was unwrapped for the scan" [ -n "${secrets[-1]}" ]
for s in "${secrets[@]}"; do
    for one in $s; do
        [ ${#one} -ge 32 ] || continue
        if grep -qi -- "$one" "$dir/server.log"; then leaks=$((leaks + 1)); echo "secret found in the log: ${one:0:8}..." >&2; fi
        # also as an upper-case or \x-escaped form
        if grep -qi -- "${one:0:24}" "$dir/server.log"; then leaks=$((leaks + 1)); fi
    done
done
check "no secret (${#secrets[@]} checked) appears in the server log" [ "$leaks" = 0 ]

# Control: the scan does find a secret typed into a logged statement (why the
# README says to import secrets with statement logging off, as for passwords).
control=ffeeddccbbaa99887766554433221100
b "SELECT privacy.create_key('logged', '\\x$control')" >/dev/null
check "control: a secret in a logged statement is found by the scan" grep -q "$control" "$dir/server.log"
check "the scanned log is not empty ($(wc -l <"$dir/server.log") lines)" [ "$(wc -l <"$dir/server.log")" -gt 50 ]
exit 0
