-- title: `privacy.lint()` and `privacy.processing_record()` on a schema of 1 000 tables × 20 columns (5 tagged per table, half the tables with a retention policy, one untagged personal-looking column each), against a hand-written catalog query listing the untagged columns (what a DBA writes without pg_privacy). Issue 15 asks for both under a second. The row count does not apply here: ignore the `ns per row` column.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_privacy;
SELECT privacy.define_purpose('service', 'run the product', 'contract');
SELECT privacy.define_purpose('marketing', 'newsletters', 'consent');
SELECT privacy.create_key() WHERE NOT EXISTS (SELECT 1 FROM privacy.keys WHERE name = 'default');
DROP SCHEMA IF EXISTS bench_reports CASCADE;
CREATE SCHEMA bench_reports;
DO $$
BEGIN
    FOR i IN 1..1000 LOOP
        EXECUTE format('CREATE TABLE bench_reports.t%s (id bigint PRIMARY KEY, email text, full_name text, phone text,
            country text, plan text, closed_at timestamptz, c8 int, c9 int, c10 int, c11 int, c12 int, c13 int,
            c14 int, c15 int, c16 int, c17 int, c18 int, c19 int, c20 text)', i);
        EXECUTE format('CREATE INDEX ON bench_reports.t%s (closed_at)', i);
        EXECUTE format('SECURITY LABEL FOR privacy ON COLUMN bench_reports.t%s.id IS ''SUBJECT''', i);
        EXECUTE format('SECURITY LABEL FOR privacy ON COLUMN bench_reports.t%s.email IS ''PURPOSE service, marketing CATEGORY contact''', i);
        EXECUTE format('SECURITY LABEL FOR privacy ON COLUMN bench_reports.t%s.full_name IS ''PURPOSE service CATEGORY identity''', i);
        EXECUTE format('SECURITY LABEL FOR privacy ON COLUMN bench_reports.t%s.country IS ''PURPOSE service CATEGORY location''', i);
        EXECUTE format('SECURITY LABEL FOR privacy ON COLUMN bench_reports.t%s.plan IS ''NOT PERSONAL''', i);
        IF i % 2 = 0 THEN
            PERFORM privacy.add_retention_policy(format('bench_reports.t%s', i), '1 year', 'closed_at');
        END IF;
    END LOOP;
END $$;
ANALYZE;
-- show: lint findings | SELECT finding || ' ' || count(*) FROM privacy.lint() GROUP BY finding ORDER BY 1
-- show: record purposes, policies | SELECT jsonb_array_length(r->'purposes') || ' purposes, ' || jsonb_array_length(r->'retention_policies') || ' policies' FROM privacy.processing_record() r
-- baseline: hand-written catalog query
-- case: hand-written catalog query | SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_seclabel l ON l.objoid = a.attrelid AND l.objsubid = a.attnum AND l.provider = 'privacy' WHERE n.nspname = 'bench_reports' AND c.relkind = 'r' AND a.attnum > 0 AND l.label IS NULL AND a.attname ~ '(mail|phone|name|birth|addr)'
-- case: privacy.lint() | SELECT count(*) FROM privacy.lint()
-- case: privacy.processing_record() | SELECT length(privacy.processing_record()::text)
-- case: privacy.processing_record_markdown() | SELECT length(privacy.processing_record_markdown())
-- ratio: privacy.lint() / hand-written catalog query <= 50
-- ratio: privacy.processing_record() / hand-written catalog query <= 50
