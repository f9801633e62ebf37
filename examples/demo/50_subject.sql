-- 5. Data subject rights: access, opt-out, erasure.

-- Ada (account 1) asks for a copy of her data (GDPR Art. 15): one document,
-- every table with a SUBJECT column, tagged columns only, with why each is kept.
-- The NOTICEs tell the DBA which subject columns have no index.
SELECT jsonb_pretty(privacy.export_subject('1') - 'exported_at') AS ada;
-- Follow the hint: every subject-rights call now uses an index.
CREATE INDEX ON orders (account_id);
CREATE INDEX ON invoices (account_id);
CREATE INDEX ON web_visits (account_id);

-- Ada opts out of marketing (GDPR Art. 21). The newsletter list asks the
-- database whether it may use each address.
CREATE VIEW newsletter_recipients AS
  SELECT id, email FROM accounts
   WHERE unsubscribed_at IS NULL AND privacy.may_process(id::text, 'marketing');
SELECT * FROM newsletter_recipients ORDER BY id;
SELECT privacy.object_to_purpose('1', 'marketing');
SELECT * FROM newsletter_recipients ORDER BY id;
-- The same rule as row-level security: the mailing tool's role simply never
-- sees an address whose owner objected (it needs no privilege on pg_privacy).
CREATE ROLE mailer;
GRANT SELECT ON accounts TO mailer;
ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
CREATE POLICY marketing_consent ON accounts FOR SELECT TO mailer
  USING (privacy.may_process(id::text, 'marketing'));
SET ROLE mailer;
SELECT id, email FROM accounts ORDER BY id;
RESET ROLE;
DROP POLICY marketing_consent ON accounts;
ALTER TABLE accounts DISABLE ROW LEVEL SECURITY;
REVOKE SELECT ON accounts FROM mailer;
DROP ROLE mailer;

-- Grace (account 3) asks to be forgotten, but her account is under a legal
-- hold for a chargeback dispute: nothing under the hold is erased, and the
-- report says so.
SELECT privacy.place_subject_hold('3', 'chargeback dispute') AS hold_id \gset
SELECT * FROM privacy.forget_subject('3', dry_run => true);
SELECT privacy.release_hold(:hold_id);

-- Ada (account 1) asks to be forgotten (GDPR Art. 17). What would happen:
SELECT * FROM privacy.forget_subject('1', dry_run => true);
-- ... and the erasure itself, in one transaction, children before parents.
-- Her invoice stays (billing has the legal basis legal_obligation), unlinked
-- from her; her objection goes with her.
SELECT * FROM privacy.forget_subject('1');
SELECT id, account_id, billing_name, vat_number, total FROM invoices ORDER BY id;
SELECT jsonb_pretty(privacy.export_subject('1') -> 'tables' -> 'public.accounts' -> 'rows') AS ada_left;

-- The audit log records each request under the subject's pseudonym only.
SELECT action, left(details->>'subject_pseudonym', 16) || '…' AS subject_pseudonym, details - 'subject_pseudonym' AS details
  FROM privacy.audit_log
 WHERE action IN ('export_subject', 'object_to_purpose', 'forget_subject')
 ORDER BY id;
