-- Retention: the privacy policy's promises about how long data lives.
--
--   "Free plan data is deleted 30 days after unsubscribing, enterprise
--    data 60 days after."
--   "Web visits are kept 2 months, unless under investigation."
--   "Accounts inactive for a year are anonymized."
--
-- Anonymization pseudonymizes with the key 'default' (created by the keys
-- part of the demo; created here if that part was skipped).
SELECT privacy.create_key() IS NOT NULL AS default_key_created
 WHERE NOT EXISTS (SELECT 1 FROM privacy.keys WHERE name = 'default');

CREATE INDEX ON accounts (unsubscribed_at);
CREATE INDEX ON accounts (last_seen_at);
SELECT privacy.add_retention_policy('accounts', '30 days', 'unsubscribed_at',
           row_filter => $$plan = 'free'$$, name => 'free_plan_30d');
SELECT privacy.add_retention_policy('accounts', '60 days', 'unsubscribed_at',
           row_filter => $$plan = 'enterprise'$$, name => 'enterprise_60d');
-- (no index on web_visits.visited_at: the NOTICE suggests one)
SELECT privacy.add_retention_policy('web_visits', '2 months', 'visited_at',
           name => 'web_visits_2m', schedule_interval => '1 day');
CREATE INDEX ON web_visits (visited_at);
SELECT privacy.add_retention_policy('accounts', '1 year', 'last_seen_at', 'anonymize',
           name => 'inactive_users_1y', schedule_interval => '1 day');

SELECT name, table_name, anchor, keep_for, action, row_filter, schedule_interval, owner
  FROM privacy.retention_policies ORDER BY name;

-- A row filter is one boolean expression over the table, checked by
-- PostgreSQL's own parser: statements, subqueries and volatile functions are refused.
\set ON_ERROR_STOP 0
SELECT privacy.add_retention_policy('accounts', '1 day', 'unsubscribed_at',
           row_filter => $$plan = 'free'); DELETE FROM accounts; --$$);
SELECT privacy.add_retention_policy('accounts', '1 day', 'unsubscribed_at',
           row_filter => $$id IN (SELECT account_id FROM orders)$$);
\set ON_ERROR_STOP 1

-- Security is investigating traffic from 203.0.113.9: a legal hold keeps those visits.
SELECT privacy.place_hold('web_visits', $$ip = '203.0.113.9'$$, 'abuse investigation #88') AS hold_id \gset
SELECT id, table_name, row_filter, reason, placed_by, active FROM privacy.holds;

-- What would a purge on 1 December 2026 do? A dry run changes nothing.
SELECT * FROM privacy.run_retention(NULL, as_of => '2026-12-01', dry_run => true);

-- Now for real (the background worker does this on schedule, in batches).
SELECT * FROM privacy.run_retention(NULL, as_of => '2026-12-01');

-- Alan (free, unsubscribed 1 Sep) and Edsger (enterprise, unsubscribed 1 Aug)
-- are gone with their orders (ON DELETE CASCADE); their invoices stay, for the
-- tax office, unlinked (ON DELETE SET NULL). Grace, inactive since June 2025,
-- is anonymized: e-mail pseudonymized, name and country removed, birth date
-- cut to the year, and the link to her cut: her id is replaced by a pseudonym
-- (her orders follow it, ON UPDATE CASCADE; her invoices lose it, ON UPDATE
-- SET NULL).
SELECT id, email, full_name, plan, country, birth_date, unsubscribed_at, last_seen_at
  FROM accounts ORDER BY id;
SELECT id, account_id, amount FROM orders ORDER BY id;
SELECT id, account_id, billing_name, issued_at FROM invoices ORDER BY id;
SELECT id, account_id, ip, path, visited_at FROM web_visits ORDER BY id;

-- A second run changes nothing: anonymization is idempotent, deleted rows are
-- gone, the held visit is still held.
SELECT * FROM privacy.run_retention(NULL, as_of => '2026-12-01');

-- The investigation is over: releasing the hold lets the next run purge the visit.
SELECT privacy.release_hold(:hold_id);
SELECT * FROM privacy.run_retention('web_visits_2m', as_of => '2026-12-01');

-- Every run is recorded, dry runs and failures included.
SELECT policy, triggered_by, status, rows_affected, rows_held, batches, error
  FROM privacy.retention_runs ORDER BY run_id;
