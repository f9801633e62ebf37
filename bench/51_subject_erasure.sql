-- title: Erasure and export of one subject among `:rows` customers with 3 orders and 3 order lines each and one invoice kept for a legal obligation (`:rows` × 8 rows over four tables), every SUBJECT column indexed. `forget_subject(…, dry_run => true)` does the whole erasure (deletes, anonymization, hold and foreign-key checks) in a subtransaction it rolls back, so every round erases the same rows. The "ns per row" column is per customer in the database, not per row erased.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_privacy;
SELECT privacy.define_purpose('service', NULL, 'contract');
SELECT privacy.define_purpose('billing', NULL, 'legal_obligation');
DROP TABLE IF EXISTS bench_order_lines, bench_orders, bench_invoices, bench_accounts CASCADE;
CREATE TABLE bench_accounts (id bigint PRIMARY KEY, email text NOT NULL, name text);
INSERT INTO bench_accounts SELECT g, 'user' || g || '@example.com', 'User ' || g FROM generate_series(1, :rows) g;
CREATE TABLE bench_orders (id bigint PRIMARY KEY, account_id bigint NOT NULL REFERENCES bench_accounts ON DELETE CASCADE, ship_to text);
INSERT INTO bench_orders SELECT g, (g % :rows) + 1, 'street ' || g FROM generate_series(1, :rows * 3) g;
CREATE TABLE bench_order_lines (id bigint PRIMARY KEY, order_id bigint NOT NULL REFERENCES bench_orders ON DELETE CASCADE,
                                account_id bigint NOT NULL, item text);
INSERT INTO bench_order_lines SELECT g, g, (g % :rows) + 1, 'item' FROM generate_series(1, :rows * 3) g;
CREATE TABLE bench_invoices (id bigint PRIMARY KEY, account_id bigint REFERENCES bench_accounts ON DELETE SET NULL,
                             billing_name text NOT NULL, note text);
INSERT INTO bench_invoices SELECT g, g, 'User ' || g, 'note' FROM generate_series(1, :rows) g;
SECURITY LABEL FOR privacy ON COLUMN bench_accounts.id IS 'SUBJECT';
SELECT privacy.tag_column('bench_accounts', 'email', ARRAY['service'], 'contact', 'EMAIL');
SELECT privacy.tag_column('bench_accounts', 'name', ARRAY['service']);
SELECT privacy.mark_subject('bench_orders', 'account_id');
SELECT privacy.tag_column('bench_orders', 'ship_to', ARRAY['service']);
SELECT privacy.mark_subject('bench_order_lines', 'account_id');
SELECT privacy.tag_column('bench_order_lines', 'item', ARRAY['service']);
SELECT privacy.mark_subject('bench_invoices', 'account_id');
SELECT privacy.tag_column('bench_invoices', 'billing_name', ARRAY['billing']);
SELECT privacy.tag_column('bench_invoices', 'note', ARRAY['service']);
CREATE INDEX bench_orders_account ON bench_orders (account_id);
CREATE INDEX bench_order_lines_account ON bench_order_lines (account_id);
CREATE INDEX bench_order_lines_order ON bench_order_lines (order_id);
CREATE INDEX bench_invoices_account ON bench_invoices (account_id);
VACUUM ANALYZE bench_accounts, bench_orders, bench_order_lines, bench_invoices;
-- case: forget_subject dry run | SELECT count(*) FROM privacy.forget_subject('4242', dry_run => true)
-- case: export_subject | SELECT length(privacy.export_subject('4242')::text)
-- case: the same rows selected by hand | SELECT count(*) FROM (SELECT 1 FROM bench_order_lines WHERE account_id = 4242 UNION ALL SELECT 1 FROM bench_orders WHERE account_id = 4242 UNION ALL SELECT 1 FROM bench_invoices WHERE account_id = 4242 UNION ALL SELECT 1 FROM bench_accounts WHERE id = 4242) s
