-- Compliance reports: what a DPO asks for, built from the catalog above.
-- The lint: what is not covered yet, with the SQL that fixes it.
SELECT finding, severity, object, fix_sql FROM privacy.lint();

-- What only the DBA knows, declared once (GDPR Art. 30(1)(a), (c), (d), (e)).
SELECT privacy.declare_controller('Example SaaS Ltd', '1 Example Street, London', NULL,
                                  'Jane Doe', 'dpo@example.com');
SELECT privacy.describe_subjects('accounts', 'customers (account holders)');
SELECT privacy.declare_recipient('mailer', 'newsletter delivery', ARRAY['marketing'],
                                 country => 'US', third_country => true,
                                 safeguards => 'standard contractual clauses');

-- The record of processing activities, as a document to hand over.
\pset format unaligned
\pset tuples_only on
SELECT privacy.processing_record_markdown();
\pset format aligned
\pset tuples_only off

-- Privacy by default: new personal-looking columns must be tagged.
SET privacy.require_tags = warn;
ALTER TABLE accounts ADD COLUMN phone text;
SECURITY LABEL FOR privacy ON COLUMN accounts.phone IS 'PURPOSE service CATEGORY contact';
RESET privacy.require_tags;

-- An access request answered in full (Art. 15): purposes with legal bases,
-- retention, objections, recipients — and a document for the person.
SELECT privacy.object_to_purpose('3', 'marketing');
SELECT jsonb_pretty(privacy.export_subject('3') -> 'tables' -> 'public.accounts' -> 'columns' -> 'email') AS email_column;
\pset format unaligned
\pset tuples_only on
SELECT privacy.export_subject_markdown('3');
\pset format aligned
\pset tuples_only off
