# Shared helpers for tests that start their own PostgreSQL 15 cluster.
# Source it: `. tests/lib.sh`. Clusters live under $RUN_DIR/clusters/<name>
# (RUN_DIR: see below), are owned by the `postgres` OS user and listen on a
# free loopback port and a Unix socket in their own directory.

PG_BIN=${PG_BIN:-$(/usr/bin/pg_config --bindir)}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Outside the checkout: the `postgres` user must reach it whatever the
# checkout's path and permissions, and Unix socket paths must stay short.
# One directory per checkout (several checkouts may share a machine).
RUN_DIR=${PG_PRIVACY_RUN_DIR:-/tmp/pg_privacy-$(printf %s "$ROOT" | md5sum | cut -c1-8)}
install -d -m 755 "$RUN_DIR"
CLUSTERS=$RUN_DIR/clusters

# Run as the postgres OS user, from a directory it can enter (the checkout
# may not be readable by it): the current one when it is under $RUN_DIR.
as_pg() {
    local d=$PWD
    case "$d" in "$RUN_DIR"*) ;; *) d=$RUN_DIR ;; esac
    (cd "$d" && sudo -u postgres -- "$@")
}


free_port() {
    python3 - <<'PY'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

# The root key of pg_privacy (issue 18): every cluster gets one, in a file
# outside its data directory (so base backups do not carry it), read by
# privacy.root_key_command. All clusters share TEST_ROOT_KEY by default, so a
# dump or backup of one restores on another; root_key_write gives a cluster
# another one (restart it to load it), and a cluster started with the extra
# line "privacy.root_key_command = ''" has none.
TEST_ROOT_KEY=${TEST_ROOT_KEY:-8c3f1e0d2b4a69587766a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f7}
# root_key_write NAME HEX: the cluster's root key file
root_key_write() {
    local f=$CLUSTERS/$1/root.key
    as_pg bash -c "umask 077 && printf '%s\n' '$2' >'$f'"
}
# root_key_file NAME: its path
root_key_file() { echo "$CLUSTERS/$1/root.key"; }

# traces HEX FILE-OR-DIR...: how many files (directories: searched
# recursively) hold the value, as raw bytes or
# as hex text (a dump writes bytea as hex)
traces() {
    local hex=$1; shift
    python3 - "$hex" "$@" <<'PY'
import os, sys
hexv = sys.argv[1]
needles = [bytes.fromhex(hexv), hexv.encode(), hexv.upper().encode()]
n = 0
def scan(path):
    global n
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return
    if any(x in data for x in needles):
        n += 1
for p in sys.argv[2:]:
    if os.path.isdir(p):
        for root, _, files in os.walk(p):
            for name in files:
                scan(os.path.join(root, name))
    else:
        scan(p)
print(n)
PY
}

# key_secret_hex NAME DB KEY: the clear active secret of KEY, unwrapped
# outside the server with the cluster's root key file by an independent
# implementation (Python: hmac + cryptography's AES-GCM) of the format in
# src/rootkey.rs. Empty when the key does not exist.
key_secret_hex() {
    local row
    row=$(sql_value "$1" "$2" "SELECT version || ' ' || encode(wrapped_secret, 'hex') FROM privacy.key_secrets WHERE name = '$3' AND active")
    [ -n "$row" ] || return 0
    python3 - "$(root_key_file "$1")" "$3" $row <<'PY'
import hashlib, hmac, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
root = bytes.fromhex(open(sys.argv[1]).read().strip())
name, version, wrapped = sys.argv[2], int(sys.argv[3]), bytes.fromhex(sys.argv[4])
kek = hmac.new(root, b"pg_privacy root key: key wrapping, v1", hashlib.sha256).digest()
aad = b"pg_privacy key secret, v1\x00\x01" + name.encode() + b"\x00" + version.to_bytes(4, "big")
assert wrapped[0] == 1
print(AESGCM(kek).decrypt(wrapped[1:13], wrapped[13:], aad).hex())
PY
}

# cluster_init NAME [extra postgresql.conf lines...]: fresh data directory.
# Sets PGPORT_<NAME> and prints nothing.
cluster_init() {
    local name=$1; shift
    local dir=$CLUSTERS/$name
    cluster_stop "$name" 2>/dev/null || true
    rm -rf "$dir"
    install -d -o postgres -g postgres "$CLUSTERS" "$dir"
    as_pg "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log"; return 1; }
    local port; port=$(free_port)
    {
        echo "port = $port"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$dir'"
        echo "shared_preload_libraries = 'pg_privacy'"
        echo "privacy.root_key_command = 'cat $dir/root.key'"
        echo "fsync = off"
        echo "log_min_messages = info"
        for line in "$@"; do echo "$line"; done
    } | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
    echo "$port" | as_pg tee "$dir/port" >/dev/null
    root_key_write "$name" "$TEST_ROOT_KEY"
}

cluster_port() { cat "$CLUSTERS/$1/port"; }
cluster_dir() { echo "$CLUSTERS/$1"; }

cluster_start() {
    local dir=$CLUSTERS/$1
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
        || { tail -50 "$dir/server.log"; return 1; }
}

cluster_stop() {
    local dir=$CLUSTERS/$1
    [ -f "$dir/data/postmaster.pid" ] || return 0
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
}

# psql_on NAME [psql args...]: psql as the postgres superuser.
psql_on() {
    local name=$1; shift
    as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$CLUSTERS/$name" -p "$(cluster_port "$name")" -U postgres "$@"
}

# sql_value NAME DB SQL: one value, unaligned.
sql_value() {
    psql_on "$1" -d "$2" -At -c "$3"
}

# wait_for NAME DB SQL SECONDS: poll until SQL returns 't'.
wait_for() {
    local i
    for ((i = 0; i < $4 * 10; i++)); do
        [ "$(sql_value "$1" "$2" "$3" 2>/dev/null)" = "t" ] && return 0
        sleep 0.1
    done
    echo "timed out after $4 s waiting for: $3" >&2
    return 1
}

PASS=0
FAIL=0
FAILED_NAMES=()
ok()   { PASS=$((PASS + 1)); echo "ok - $*"; }
fail() { FAIL=$((FAIL + 1)); FAILED_NAMES+=("$*"); echo "not ok - $*"; }
check() { # check "description" command...
    local desc=$1; shift
    if "$@"; then ok "$desc"; else fail "$desc"; fi
}

# --- one long-lived session (one backend for the whole test), fed through a
# FIFO, for tests of what another session sees at its next statement.
#   session_open CLUSTER DB    start it (call session_close in your EXIT trap)
#   a "SQL;"                   run SQL in it, print its output and errors
SESSION_PID=
session_open() {
    local dir; dir=$(cluster_dir "$1")
    SESSION_DIR=$dir
    rm -f "$dir/a.fifo" "$dir/a.out"
    mkfifo "$dir/a.fifo"
    as_pg "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=0 -h "$dir" -p "$(cluster_port "$1")" -U postgres -d "$2" \
        <"$dir/a.fifo" >"$dir/a.out" 2>&1 &
    SESSION_PID=$!
    exec 7>"$dir/a.fifo"
    echo 0 >"$dir/a.n"
}
session_close() {
    exec 7>&- 2>/dev/null
    [ -n "$SESSION_PID" ] && kill "$SESSION_PID" 2>/dev/null
    SESSION_PID=
}
# (called in $(...) subshells: the statement counter lives in a file)
a() {
    local dir=$SESSION_DIR
    local n; n=$(($(cat "$dir/a.n") + 1)); echo "$n" >"$dir/a.n"
    local mark="--mark-$n--"
    printf '%s\n\\echo %s\n' "$1" "$mark" >&7
    local i
    for ((i = 0; i < 300; i++)); do
        grep -qx -- "$mark" "$dir/a.out" && break
        sleep 0.05
    done
    awk -v m="$mark" -v p="--mark-$((n - 1))--" '
        $0 == p { on = 1; next }
        $0 == m { exit }
        on || p == "--mark-0--" { print }' "$dir/a.out"
}
