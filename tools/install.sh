#!/usr/bin/env bash
# Install pg_privacy into the PostgreSQL 15 installation of $PG_CONFIG
# without crashing a server that runs the old library: `cargo pgrx install`
# rewrites pg_privacy.so in place, under the feet of every process that has
# it mapped. Here the package is built into a staging directory first, and
# each file is copied beside its destination and renamed over it: processes
# already running keep the old file's inode, new ones load the new library
# (a restart picks it up everywhere).
#
#   tools/install.sh [--debug]
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-/usr/bin/pg_config}
export PGRX_HOME=${PGRX_HOME:-$PWD/pgrx-config}
profile=release
[ "${1:-}" = --debug ] && profile=debug
# cargo pgrx package's own output directory (bench/run.sh compares with it)
stage=${CARGO_TARGET_DIR:-target}/$profile/pg_privacy-pg$("$PG_CONFIG" --version | sed 's/[^0-9]*\([0-9]*\).*/\1/')
rm -rf "$stage"
cargo pgrx package --pg-config "$PG_CONFIG" "$@" >&2
(cd "$stage" && find . -type f) | while read -r f; do
    dest=/${f#./}
    install -d -m 755 "$(dirname "$dest")"
    install -m 644 "$stage/$f" "$dest.new.$$"
    mv -f "$dest.new.$$" "$dest"
    echo "installed $dest"
done
