-- Data subject rights: access, objection, erasure — a user's session.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_privacy;
RESET client_min_messages;
BEGIN;
SELECT privacy.define_purpose('service', 'the product', 'contract');
SELECT privacy.define_purpose('billing', 'tax law', 'legal_obligation');
SELECT privacy.define_purpose('marketing', 'newsletters');

CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, name text, vip boolean,
                        joined timestamptz, plan text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers,
                     ship_to text, placed_at date);
CREATE INDEX ON orders (customer_id);
CREATE TABLE invoices (id int PRIMARY KEY, customer_id bigint REFERENCES customers ON DELETE SET NULL,
                       billing_name text NOT NULL, note text);
-- no index on invoices.customer_id: every call says so
CREATE TABLE visits (id int PRIMARY KEY, customer_id bigint REFERENCES customers ON DELETE CASCADE,
                     path text);

SECURITY LABEL FOR privacy ON COLUMN customers.id IS 'SUBJECT';
SECURITY LABEL FOR privacy ON COLUMN customers.email IS 'PURPOSE service, marketing CATEGORY contact ANONYMIZE EMAIL';
SELECT privacy.tag_column('customers', 'name', ARRAY['service'], 'identity');
SELECT privacy.tag_column('customers', 'vip', ARRAY['service']);
SELECT privacy.tag_column('customers', 'joined', ARRAY['service']);
SELECT privacy.mark_subject('orders', 'customer_id');
SELECT privacy.tag_column('orders', 'ship_to', ARRAY['service'], 'location');
SELECT privacy.tag_column('orders', 'placed_at', ARRAY['service']);
SELECT privacy.mark_subject('invoices', 'customer_id');
SELECT privacy.tag_column('invoices', 'billing_name', ARRAY['billing'], 'identity');
SELECT privacy.tag_column('invoices', 'note', ARRAY['service']);

INSERT INTO customers VALUES
  (1, 'ada@example.com', 'Ada Lovelace', true, '2024-01-02 03:04:05+00', 'pro'),
  (2, 'alan@example.org', 'Alan Turing', false, '2024-02-03 00:00:00+00', 'free');
INSERT INTO orders VALUES (10, 1, 'London', '2026-01-01'), (11, 1, 'Paris', '2026-02-01'), (20, 2, 'Bletchley', '2026-03-01');
INSERT INTO invoices VALUES (100, 1, 'Ada Lovelace', 'paid late'), (200, 2, 'Alan Turing', NULL);
INSERT INTO visits VALUES (1, 1, '/pricing'), (2, 2, '/docs'), (3, NULL, '/');

-- Access: everything tagged about customer 1, values as JSON types.
SELECT jsonb_pretty(privacy.export_subject('1') - 'exported_at');
SELECT jsonb_typeof(privacy.export_subject('1') -> 'exported_at') AS exported_at;
-- Someone we do not know: every subject table, no rows.
SELECT jsonb_pretty(privacy.export_subject('nobody') - 'exported_at');

-- Objection: customer 1 opts out of marketing; a policy-free check and a view.
SELECT privacy.may_process('1', 'marketing');
SELECT privacy.object_to_purpose('1', 'marketing');
SELECT privacy.object_to_purpose('1', 'marketing');   -- idempotent
SELECT id, privacy.may_process(id::text, 'marketing') AS marketing,
       privacy.may_process(id::text, 'service') AS service
  FROM customers ORDER BY id;
CREATE VIEW mailing_list AS
  SELECT email FROM customers WHERE privacy.may_process(id::text, 'marketing');
SELECT * FROM mailing_list;
SELECT privacy.withdraw_objection('1', 'marketing');
SELECT * FROM mailing_list ORDER BY email;
SELECT privacy.object_to_purpose('1', 'marketing');

-- Erasure: first what would happen, then the real thing.
SELECT * FROM privacy.forget_subject('1', dry_run => true);
SELECT count(*) AS customers_still_there FROM customers;
SELECT * FROM privacy.forget_subject('1');
SELECT * FROM customers ORDER BY id;
SELECT * FROM orders ORDER BY id;
SELECT * FROM invoices ORDER BY id;   -- kept for tax law, unlinked, note anonymized
SELECT * FROM visits ORDER BY id;     -- ON DELETE CASCADE from the untagged table
SELECT privacy.may_process('1', 'marketing');   -- the objection went with the person
-- The audit log names the subject only by its pseudonym.
SELECT action, object = details->>'subject_pseudonym' AS object_is_pseudonym,
       length(details->>'subject_pseudonym') AS pseudonym_length,
       details ? 'dry_run' AS has_dry_run
  FROM privacy.audit_log
 WHERE action IN ('export_subject', 'object_to_purpose', 'withdraw_objection', 'forget_subject')
 ORDER BY id;
SELECT count(*) AS entries_with_the_id FROM privacy.audit_log a WHERE a::text LIKE '%ada@%';
ROLLBACK;

-- Errors, with their SQLSTATE.
\set VERBOSITY default
\set ON_ERROR_STOP 0
BEGIN;
SELECT privacy.define_purpose('marketing');
CREATE TABLE customers (id bigint PRIMARY KEY, name text);
CREATE TABLE tickets (id int PRIMARY KEY, customer_id bigint REFERENCES customers);
SELECT privacy.mark_subject('customers', 'id');
INSERT INTO customers VALUES (1, 'Ada');
INSERT INTO tickets VALUES (1, 1);
SAVEPOINT s;
SELECT * FROM privacy.forget_subject('1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.object_to_purpose('1', 'spam');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.may_process('1', 'spam');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.may_process('1', NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.export_subject(NULL);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
CREATE TABLE a (id int PRIMARY KEY, who bigint, b_id int);
CREATE TABLE b (id int PRIMARY KEY, who bigint, a_id int REFERENCES a);
ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b;
SELECT privacy.mark_subject('a', 'who');
SELECT privacy.mark_subject('b', 'who');
-- a foreign-key cycle holding the subject's rows, its tables of two owners
CREATE ROLE subject_regress_other;
ALTER TABLE b OWNER TO subject_regress_other;
INSERT INTO a VALUES (1, 1, NULL);
INSERT INTO b VALUES (1, 1, 1);
SELECT * FROM privacy.forget_subject('1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
CREATE ROLE subject_regress_clerk;
GRANT USAGE ON SCHEMA privacy TO subject_regress_clerk;
SET LOCAL ROLE subject_regress_clerk;
SELECT * FROM privacy.forget_subject('1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT count(*) FROM customers;
ROLLBACK;
