#!/usr/bin/env bash
# Performance of the data subject rights functions, on a throwaway cluster
# (target/clusters/bench_subject) with the installed (release) extension:
#   1. privacy.may_process in a row-level security policy over a large table,
#      against the same table without a policy and against a hand-written
#      anti-join on privacy.objections;
#   2. privacy.forget_subject and privacy.export_subject on a schema of
#      indexed subject columns, and the same without the indexes.
# Usage: make install && bash bench/subject.sh [rows, default 1000000]
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh
ROWS=${1:-1000000}

cluster_init bench_subject "privacy.worker_enabled = off" "shared_buffers = '512MB'" "max_parallel_workers_per_gather = 0" "jit = off"
cluster_start bench_subject
trap 'cluster_stop bench_subject' EXIT
psql_on bench_subject -d postgres -c "CREATE DATABASE bench" >/dev/null

q() { psql_on bench_subject -d bench "$@"; }
# best of 3 runs of one statement, in milliseconds
best_ms() {
    local sql=$1 role=${2:-postgres} best=
    for _ in 1 2 3; do
        local ms
        ms=$(q -At <<SQL | grep -Eo 'Time: [0-9.]+' | awk '{print $2}' | tail -1
SET ROLE $role;
\timing on
$sql
SQL
)
        if [ -z "$best" ] || awk "BEGIN{exit !($ms < $best)}"; then best=$ms; fi
    done
    echo "$best"
}

echo "setting up: $ROWS rows, 1% of subjects objected to marketing"
q >/dev/null <<SQL
CREATE EXTENSION pg_privacy;
SELECT privacy.define_purpose('marketing');
SELECT privacy.define_purpose('service', NULL, 'contract');
SELECT privacy.define_purpose('billing', NULL, 'legal_obligation');
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, name text);
INSERT INTO customers SELECT g, 'user' || g || '@example.com', 'User ' || g FROM generate_series(1, $ROWS) g;
SELECT count(privacy.object_to_purpose(g::text, 'marketing')) FROM generate_series(1, $ROWS, 100) g;
VACUUM ANALYZE customers;
ANALYZE privacy.objections;
CREATE ROLE mailer;
GRANT SELECT ON customers TO mailer;
ALTER TABLE customers ENABLE ROW LEVEL SECURITY;
CREATE POLICY consent ON customers FOR SELECT TO mailer
  USING (privacy.may_process(id::text, 'marketing'));
SQL

visible=$(q -At -c "SET ROLE mailer" -c "SELECT count(*) FROM customers")
echo "rows visible to the mailer through the policy: $visible of $ROWS"
plain=$(best_ms "SELECT count(*) FROM customers;")
rls=$(best_ms "SELECT count(*) FROM customers;" mailer)
expl=$(best_ms "SELECT count(*) FROM customers WHERE privacy.may_process(id::text, 'marketing');")
anti=$(best_ms "SELECT count(*) FROM customers c WHERE NOT EXISTS (SELECT 1 FROM privacy.objections o WHERE o.subject = c.id::text AND o.purpose = 'marketing');")
echo "count(*) without policy:                      $plain ms"
echo "count(*) through the RLS policy (may_process): $rls ms"
echo "count(*) WHERE may_process(...) (superuser):   $expl ms"
echo "hand-written anti-join on privacy.objections:   $anti ms"
awk -v a="$rls" -v b="$plain" -v n="$ROWS" 'BEGIN{printf "may_process cost per row: %.2f us\n", (a-b)*1000/n}'

echo
echo "forget_subject / export_subject: customers($ROWS) <- orders($((ROWS * 3))) <- order_lines, invoices (legal obligation)"
q >/dev/null <<SQL
ALTER TABLE customers DISABLE ROW LEVEL SECURITY;
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers ON DELETE CASCADE, ship_to text);
INSERT INTO orders SELECT g, (g % $ROWS) + 1, 'street ' || g FROM generate_series(1, $ROWS * 3) g;
CREATE TABLE order_lines (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders ON DELETE CASCADE, customer_id bigint NOT NULL, item text);
INSERT INTO order_lines SELECT g, g, (g % $ROWS) + 1, 'item' FROM generate_series(1, $ROWS * 3) g;
CREATE TABLE invoices (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers ON DELETE SET NULL, billing_name text NOT NULL, note text);
INSERT INTO invoices SELECT g, g, 'User ' || g, 'note' FROM generate_series(1, $ROWS) g;
SECURITY LABEL FOR privacy ON COLUMN customers.id IS 'SUBJECT';
SELECT privacy.tag_column('customers', 'email', ARRAY['service', 'marketing'], 'contact', 'EMAIL');
SELECT privacy.tag_column('customers', 'name', ARRAY['service']);
SELECT privacy.mark_subject('orders', 'customer_id');
SELECT privacy.tag_column('orders', 'ship_to', ARRAY['service']);
SELECT privacy.mark_subject('order_lines', 'customer_id');
SELECT privacy.tag_column('order_lines', 'item', ARRAY['service']);
SELECT privacy.mark_subject('invoices', 'customer_id');
SELECT privacy.tag_column('invoices', 'billing_name', ARRAY['billing']);
SELECT privacy.tag_column('invoices', 'note', ARRAY['service']);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX order_lines_customer ON order_lines (customer_id);
CREATE INDEX order_lines_order ON order_lines (order_id);
CREATE INDEX invoices_customer ON invoices (customer_id);
VACUUM ANALYZE;
SQL
# each erasure in a rolled-back transaction, so every run erases the same subject
ms_forget() { q -At 2>/dev/null <<SQL | grep -Eo 'Time: [0-9.]+' | awk '{print $2}' | tail -1
BEGIN;
\timing on
SELECT count(*) FROM privacy.forget_subject('$1');
\timing off
ROLLBACK;
SQL
}
ms_export() { q -At 2>/dev/null <<SQL | grep -Eo 'Time: [0-9.]+' | awk '{print $2}' | tail -1
\timing on
SELECT length(privacy.export_subject('$1')::text);
SQL
}
echo "with indexes on every subject column:"
for s in 17 4242 99999; do
    echo "  forget_subject('$s'): $(ms_forget $s) ms   export_subject('$s'): $(ms_export $s) ms"
done
q -c "DROP INDEX orders_customer, order_lines_customer, invoices_customer" >/dev/null
echo "without indexes on the subject columns (the NOTICE case):"
for s in 17 4242; do
    echo "  forget_subject('$s'): $(ms_forget $s) ms   export_subject('$s'): $(ms_export $s) ms"
done
