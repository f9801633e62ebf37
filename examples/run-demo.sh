#!/usr/bin/env bash
# `make demo`: a throwaway cluster ($RUN_DIR/clusters/demo) with pg_privacy
# preloaded and a short worker naptime, playing examples/demo.sql.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh

cluster_init demo "privacy.naptime = 1" "privacy.worker_enabled = off" "timezone = 'UTC'" "lc_messages = 'C'"
cluster_start demo
trap 'cluster_stop demo' EXIT
psql_on demo -d postgres -c "CREATE DATABASE saas"
# demo files are read by the postgres OS user
cp -r examples "$(cluster_dir demo)/examples" && chown -R postgres:postgres "$(cluster_dir demo)/examples"
psql_on demo -d saas -v ON_ERROR_STOP=1 -f "$(cluster_dir demo)/examples/demo.sql"
echo
echo "demo finished; the cluster's log is $(cluster_dir demo)/server.log"
