-- Purposes and column tags: a user's session, with expected output.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_privacy;
RESET client_min_messages;
BEGIN;
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, name text, born date, note text);
SELECT privacy.define_purpose('marketing', 'newsletters');
SELECT privacy.define_purpose('support', 'help desk', 'contract');
SELECT privacy.define_purpose('accounting', NULL, 'legal_obligation');
SELECT name, description, legal_basis FROM privacy.purposes ORDER BY name;

SECURITY LABEL FOR privacy ON COLUMN customers.id IS 'SUBJECT';
SECURITY LABEL FOR privacy ON COLUMN customers.email IS 'Purpose Marketing, support category contact anonymize email';
SELECT privacy.tag_column('customers', 'born', ARRAY['support'], 'demographic', 'truncate year');
SELECT privacy.tag_column('customers', 'note', ARRAY['support'], NULL, 'CONSTANT ''n/a''');
SELECT table_name, column_name, purposes, category, is_subject, anonymize
  FROM privacy.column_tags ORDER BY column_name;
-- pg_seclabel keeps the label as written; the view shows it parsed
SELECT objname, label FROM pg_seclabels WHERE provider = 'privacy' ORDER BY objname;
ROLLBACK;

-- Every error, with its SQLSTATE.
\set VERBOSITY default
\set ON_ERROR_STOP 0
BEGIN;
CREATE TABLE customers (id bigint PRIMARY KEY, email text NOT NULL, name text, born date);
SELECT privacy.define_purpose('marketing');
SAVEPOINT s;
SECURITY LABEL FOR privacy ON COLUMN customers.name IS 'PURPOSE marketing KEEP forever';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SECURITY LABEL FOR privacy ON COLUMN customers.name IS 'PURPOSE sales';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SECURITY LABEL FOR privacy ON COLUMN customers.name IS 'PURPOSE marketing, ';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SECURITY LABEL FOR privacy ON COLUMN customers.name IS 'CATEGORY a CATEGORY b';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SECURITY LABEL FOR privacy ON COLUMN customers.name IS 'ANONYMIZE CONSTANT ''unterminated';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SECURITY LABEL FOR privacy ON COLUMN customers.email IS 'ANONYMIZE NULL';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SECURITY LABEL FOR privacy ON COLUMN customers.born IS 'ANONYMIZE EMAIL';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SECURITY LABEL FOR privacy ON TABLE customers IS 'PURPOSE marketing';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.define_purpose('x', NULL, 'because I said so');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.drop_purpose('nosuch');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.tag_column('customers', 'nosuch', ARRAY['marketing']);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.tag_column('customers', 'name', ARRAY['marketing']);
SELECT privacy.drop_purpose('marketing');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK;
