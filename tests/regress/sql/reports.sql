-- Compliance reports: privacy.require_tags in each mode (it acts at
-- commit, so these statements commit and clean up after themselves), the
-- record of processing on the demo schema, the Markdown renderings.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_privacy;
RESET client_min_messages;
\set VERBOSITY default
\set ON_ERROR_STOP 0
SELECT privacy.define_purpose('service', 'run the product', 'contract');

-- off (the default): nothing is said
SHOW privacy.require_tags;
CREATE TABLE rt_off (id bigint, email text);
DROP TABLE rt_off;

-- warn: a warning per new personal-looking column, the statement goes on
SET privacy.require_tags = warn;
CREATE TABLE rt_warn (id bigint, email text, product_name text, origin inet);
ALTER TABLE rt_warn ADD COLUMN telefon text, ADD COLUMN amount numeric;
ALTER TABLE rt_warn RENAME COLUMN amount TO iban;
-- other ALTER TABLE forms and tagged columns are quiet
ALTER TABLE rt_warn ADD CONSTRAINT rt_warn_pk PRIMARY KEY (id);
SECURITY LABEL FOR privacy ON COLUMN rt_warn.email IS 'PURPOSE service CATEGORY contact';
ALTER TABLE rt_warn RENAME COLUMN email TO e_mail;
-- partitions are tagged through their table; temporary tables are not checked
CREATE TABLE rt_parts (account_id bigint, email text) PARTITION BY HASH (account_id);
CREATE TABLE rt_parts_0 PARTITION OF rt_parts FOR VALUES WITH (MODULUS 1, REMAINDER 0);
CREATE TEMP TABLE rt_temp (email text);
DROP TABLE rt_warn, rt_parts, rt_temp;

-- error: a NOTICE at once, and the commit fails while the column is untagged
SET privacy.require_tags = error;
CREATE TABLE rt_error (id bigint, email text);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT count(*) AS rt_error_exists FROM pg_class WHERE relname = 'rt_error';
-- tagged (or marked NOT PERSONAL) in the same transaction: it commits
BEGIN;
CREATE TABLE rt_error (id bigint, email text, full_name text, note text);
SECURITY LABEL FOR privacy ON COLUMN rt_error.email IS 'PURPOSE service CATEGORY contact';
SECURITY LABEL FOR privacy ON COLUMN rt_error.full_name IS 'NOT PERSONAL';
COMMIT;
SELECT column_name, purposes, category FROM privacy.column_tags WHERE table_name = 'rt_error'::regclass ORDER BY 1;
-- ALTER TABLE … ADD COLUMN: several untagged columns are named together
ALTER TABLE rt_error ADD COLUMN phone text, ADD COLUMN birth_date date;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
-- a column dropped (or rolled back to a savepoint) before commit is fine
BEGIN;
ALTER TABLE rt_error ADD COLUMN phone text;
ALTER TABLE rt_error DROP COLUMN phone;
SAVEPOINT s;
ALTER TABLE rt_error ADD COLUMN mobile text;
ROLLBACK TO SAVEPOINT s;
COMMIT;
-- the setting is the superuser's: an ordinary role cannot turn it off
CREATE ROLE rt_user;
SET ROLE rt_user;
SET privacy.require_tags = off;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE rt_user;
SET privacy.require_tags = bogus;
RESET privacy.require_tags;
DROP TABLE rt_error;
SELECT privacy.drop_purpose('service');

-- The record of processing, field by field, on the demo schema (examples/demo).
BEGIN;
CREATE TABLE accounts (
    id bigint PRIMARY KEY, email text NOT NULL, full_name text, plan text NOT NULL,
    country text, birth_date date, unsubscribed_at timestamptz, last_seen_at timestamptz);
CREATE TABLE invoices (
    id bigserial PRIMARY KEY, account_id bigint REFERENCES accounts (id) ON DELETE SET NULL,
    billing_name text NOT NULL, vat_number text, total numeric(10, 2) NOT NULL, issued_at date NOT NULL);
CREATE TABLE web_visits (
    id bigserial PRIMARY KEY, account_id bigint, ip text, user_agent text,
    path text NOT NULL, visited_at timestamptz NOT NULL);
SELECT privacy.define_purpose('service',   'run the product the customer pays for', 'contract');
SELECT privacy.define_purpose('billing',   'invoices we must keep for tax law',    'legal_obligation');
SELECT privacy.define_purpose('marketing', 'newsletters and product news',          'consent');
SELECT privacy.define_purpose('analytics', 'understand how the site is used',       'legitimate_interests');
SECURITY LABEL FOR privacy ON COLUMN accounts.id     IS 'SUBJECT';
SECURITY LABEL FOR privacy ON COLUMN accounts.email  IS 'PURPOSE service, marketing CATEGORY contact ANONYMIZE EMAIL';
SECURITY LABEL FOR privacy ON COLUMN accounts.full_name IS 'PURPOSE service CATEGORY identity';
SECURITY LABEL FOR privacy ON COLUMN accounts.birth_date IS 'PURPOSE service CATEGORY demographic ANONYMIZE TRUNCATE year';
SELECT privacy.tag_column('accounts', 'country', ARRAY['service', 'analytics'], 'location');
SELECT privacy.mark_subject('invoices', 'account_id');
SELECT privacy.tag_column('invoices', 'billing_name', ARRAY['billing'], 'identity');
SELECT privacy.tag_column('invoices', 'vat_number', ARRAY['billing'], 'financial');
SELECT privacy.mark_subject('web_visits', 'account_id');
SELECT privacy.tag_column('web_visits', 'ip', ARRAY['analytics'], 'network', 'PSEUDONYMIZE');
SELECT privacy.tag_column('web_visits', 'user_agent', ARRAY['analytics'], 'device');
SELECT privacy.create_key('default', '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea);
CREATE INDEX ON accounts (unsubscribed_at);
CREATE INDEX ON web_visits (visited_at);
SET client_min_messages = warning;
SELECT privacy.add_retention_policy('accounts', '30 days', 'unsubscribed_at',
           row_filter => $$plan = 'free'$$, name => 'free_plan_30d');
SELECT privacy.add_retention_policy('web_visits', '2 months', 'visited_at',
           name => 'web_visits_2m', schedule_interval => '1 day');
RESET client_min_messages;
-- what the lint finds in the demo, with the fixes
SELECT finding, severity, object, fix_sql FROM privacy.lint();
SELECT privacy.declare_controller('Example SaaS Ltd', '1 Example Street, London', NULL,
                                  'Jane Doe', 'dpo@example.com');
SELECT privacy.describe_subjects('accounts', 'customers (account holders)');
SELECT privacy.declare_recipient('mailer', 'newsletter delivery', ARRAY['marketing'], 'US', true,
                                 'standard contractual clauses');
-- (a)
SELECT privacy.processing_record()->'controller' AS controller;
-- (b), (c), (d), (f) per purpose
SELECT p->>'name' AS purpose, p->>'legal_basis' AS legal_basis, p->'data_categories' AS categories,
       p->'data_subjects' AS subjects, p->'retention' AS retention, p->'recipients' AS recipients
  FROM jsonb_array_elements(privacy.processing_record()->'purposes') p;
-- (c)
SELECT jsonb_pretty(privacy.processing_record()->'data_subject_categories');
-- (d), (e)
SELECT privacy.processing_record()->'recipients' = privacy.processing_record()->'transfers' AS all_recipients_are_transfers,
       privacy.processing_record()->'transfers'->0->>'safeguards' AS safeguards;
-- (f)
SELECT r->>'name' AS policy, r->>'table' AS tbl, r->>'anchor' AS anchor, r->>'keep_for' AS keep_for,
       r->>'action' AS action, r->>'row_filter' AS row_filter, r->>'schedule_interval' AS every,
       r->>'last_successful_run' AS last_success
  FROM jsonb_array_elements(privacy.processing_record()->'retention_policies') r;
-- (g)
SELECT k->>'name' AS key, k->>'version' AS version, k->>'fingerprint' AS fingerprint, k->>'age_days' AS age_days
  FROM jsonb_array_elements(privacy.processing_record()->'technical_measures'->'pseudonymization_keys') k;
SELECT privacy.processing_record()->'technical_measures'->'anonymization' AS anonymization,
       privacy.processing_record()->'technical_measures'->'legal_holds_in_force' AS holds;
-- the document for the DPO (the date lines differ from run to run)
SELECT line FROM regexp_split_to_table(privacy.processing_record_markdown(), E'\n') AS line
 WHERE line !~ 'generated|active since|Audit log';
ROLLBACK;
