-- Retention policies, legal holds and runs: a DBA's session, with expected output.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_privacy;
RESET client_min_messages;
SET privacy.batch_size = 2;

-- 1. Delete policies with row filters, dry run first, then for real.
BEGIN;
CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL, plan text NOT NULL,
                       unsubscribed_at timestamptz);
CREATE INDEX ON accounts (unsubscribed_at);
INSERT INTO accounts VALUES
  (1, 'a@example.com', 'free',       '2026-09-01 00:00+00'),
  (2, 'b@example.com', 'free',       '2026-09-15 00:00+00'),
  (3, 'c@example.com', 'free',       NULL),
  (4, 'd@example.com', 'enterprise', '2026-08-01 00:00+00'),
  (5, 'e@example.com', 'enterprise', '2026-08-20 00:00+00'),
  (6, 'f@example.com', 'free',       '2026-08-01 00:00+00'),
  (7, 'g@example.com', 'free',       '2026-08-02 00:00+00');
SELECT privacy.add_retention_policy('accounts', '30 days', 'unsubscribed_at',
                                    row_filter => $$plan = 'free'$$, name => 'free_30d');
SELECT privacy.add_retention_policy('accounts', '60 days', 'unsubscribed_at',
                                    row_filter => $$plan = 'enterprise'$$, name => 'enterprise_60d');
SELECT name, table_name, anchor, keep_for, action, row_filter, purpose, enabled,
       schedule_interval, owner, last_status
  FROM privacy.retention_policies ORDER BY name;
-- what a purge on 2026-10-15 would do
SELECT * FROM privacy.run_retention(NULL, '2026-10-15 00:00+00', dry_run => true);
SELECT count(*) AS still_there FROM accounts;
-- exactly at the boundary (unsubscribed_at + 30 days = as_of) account 2 is expired, a microsecond before it is not
SELECT * FROM privacy.run_retention('free_30d', '2026-10-14 23:59:59.999999+00', dry_run => true);
-- the session's TimeZone changes nothing
SET LOCAL TimeZone = 'Pacific/Kiritimati';
SELECT * FROM privacy.run_retention(NULL, '2026-10-15 00:00+00', dry_run => true);
SET LOCAL TimeZone = 'America/Los_Angeles';
SELECT * FROM privacy.run_retention(NULL, '2026-10-15 00:00+00', dry_run => true);
RESET TimeZone;
-- a legal hold on one account: kept and counted as held
SELECT privacy.place_hold('accounts', 'id = 6', 'case 2026-17') AS hold_id \gset
SELECT * FROM privacy.run_retention(NULL, '2026-10-15 00:00+00');
SELECT id, plan, unsubscribed_at FROM accounts ORDER BY id;
SELECT policy, triggered_by, status, rows_affected, rows_held, batches, error
  FROM privacy.retention_runs ORDER BY run_id;
SELECT name, last_status, last_run_at IS NOT NULL AS ran, next_run_at > now() AS rescheduled
  FROM privacy.retention_policies ORDER BY name;
-- a second run finds nothing new; releasing the hold frees row 6
SELECT * FROM privacy.run_retention('free_30d', '2026-10-15 00:00+00');
SELECT privacy.release_hold(:hold_id);
SELECT table_name, row_filter, reason, active FROM privacy.holds;
SELECT * FROM privacy.run_retention('free_30d', '2026-10-15 00:00+00');
SELECT action, object, details->>'status' AS status, details->>'rows' AS rows
  FROM privacy.audit_log WHERE action = 'run_retention' ORDER BY id;
ROLLBACK;

-- 2. Anonymize: every tagged column with its method; a second run changes nothing.
BEGIN;
SELECT privacy.create_key('default', '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea) IS NOT NULL AS key_created;
SELECT privacy.define_purpose('service', 'the product', 'contract');
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL, name text, login text NOT NULL,
                    born date, note text, last_seen date);
INSERT INTO users VALUES
  (1, 'Ada@Example.com', 'Ada', 'ada', '1815-12-10', 'vip', '2025-01-01'),
  (2, 'alan@example.org', 'Alan', 'alan', '1912-06-23', 'x', '2026-06-01'),
  (3, 'grace@example.net', NULL, 'grace', NULL, NULL, NULL);
SECURITY LABEL FOR privacy ON COLUMN users.id IS 'SUBJECT';
SECURITY LABEL FOR privacy ON COLUMN users.email IS 'PURPOSE service ANONYMIZE EMAIL';
SECURITY LABEL FOR privacy ON COLUMN users.name IS 'PURPOSE service';
SECURITY LABEL FOR privacy ON COLUMN users.login IS 'PURPOSE service';
SECURITY LABEL FOR privacy ON COLUMN users.born IS 'PURPOSE service ANONYMIZE TRUNCATE year';
SECURITY LABEL FOR privacy ON COLUMN users.note IS 'PURPOSE service ANONYMIZE CONSTANT ''(removed)''';
SELECT privacy.add_retention_policy('users', '1 year', 'last_seen', 'anonymize');
SELECT * FROM privacy.run_retention('users_anonymize', '2026-07-01 00:00+00');
SELECT * FROM users ORDER BY id;
SELECT * FROM privacy.run_retention('users_anonymize', '2026-07-01 00:00+00');
SELECT * FROM users ORDER BY id;
ROLLBACK;

-- 3. Every error, with its SQLSTATE.
\set VERBOSITY default
\set ON_ERROR_STOP 0
BEGIN;
CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL, created date, label text, stamp timestamp);
SELECT privacy.add_retention_policy('t', '1 day', 'created', name => 'p1');
SAVEPOINT s;
SELECT privacy.add_retention_policy('nosuch', '1 day', 'created');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.add_retention_policy('t', '1 day', 'nosuch');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.add_retention_policy('t', '1 day', 'label');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.add_retention_policy('t', '1 day', 'created', 'truncate');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.add_retention_policy('t', '-1 day', 'created');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.add_retention_policy('t', '1 day', 'created', 'anonymize', purpose => 'nosuch');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.add_retention_policy('t', '1 day', 'created', 'anonymize');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.add_retention_policy('t', '1 day', 'created', row_filter => 'name');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.add_retention_policy('t', '1 day', 'created', row_filter => 'true) OR (true');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.add_retention_policy('t', '1 day', 'created', row_filter => 'true; DROP TABLE t');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.add_retention_policy('t', '1 day', 'created', row_filter => 'id IN (SELECT 1)');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.add_retention_policy('t', '1 day', 'created', row_filter => 'pg_sleep(1) IS NULL');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.add_retention_policy('t', '1 day', 'created', name => 'p1');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.add_retention_policy('t', NULL, 'created');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.alter_retention_policy('nosuch', enabled => false);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.drop_retention_policy('nosuch');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT * FROM privacy.run_retention('nosuch');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.place_hold('t', 'id = (SELECT 1)', 'x');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.place_hold('t', 'id = 1', ' ');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
SELECT privacy.release_hold(424242);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO s;
-- a role without DELETE on the table cannot create a delete policy
CREATE ROLE retention_regress_reader;
GRANT USAGE ON SCHEMA privacy TO retention_regress_reader;
GRANT SELECT ON t TO retention_regress_reader;
SAVEPOINT r;
SET LOCAL ROLE retention_regress_reader;
SELECT privacy.add_retention_policy('t', '1 day', 'created');
\echo SQLSTATE :LAST_ERROR_SQLSTATE
ROLLBACK TO r;
-- a renamed anchor column: the run fails with a clear error, recorded
ALTER TABLE t RENAME COLUMN created TO created_on;
SELECT * FROM privacy.run_retention('p1');
SELECT policy, status, error FROM privacy.retention_runs WHERE policy = 'p1';
SELECT name, last_status FROM privacy.retention_policies WHERE name = 'p1';
-- a dropped table takes its policies with it
DROP TABLE t;
SELECT count(*) AS policies_left FROM privacy.retention_policies WHERE name = 'p1';
SELECT action, object, details->>'reason' AS reason FROM privacy.audit_log
 WHERE action = 'drop_retention_policy' ORDER BY id;
ROLLBACK;

-- leave the database as we found it for the next scenario
DROP EXTENSION pg_privacy;
