-- 5. The background worker: nobody has to remember to run the purges.
-- The demo cluster was started with privacy.worker_enabled = off so that the
-- manual runs above were not raced; a DBA switches it on with a reload.
ALTER SYSTEM SET privacy.worker_enabled = on;
SELECT pg_reload_conf();

-- New web visits keep arriving; some are already older than two months.
CREATE TABLE page_views (id bigserial PRIMARY KEY, account_id bigint, path text NOT NULL, viewed_at timestamptz NOT NULL);
CREATE INDEX ON page_views (viewed_at);
INSERT INTO page_views (account_id, path, viewed_at)
SELECT 1 + g % 5, '/page/' || g % 17, now() - (g || ' days')::interval FROM generate_series(1, 120) g;
SELECT privacy.add_retention_policy('page_views', '2 months', 'viewed_at',
                                    name => 'page_views_2_months', schedule_interval => '1 minute');

-- The worker (naptime 1 s in this demo) picks the policy up by itself:
SELECT pg_sleep(4);
SELECT count(*) AS page_views_left, min(viewed_at)::date AS oldest FROM page_views;
SELECT policy, triggered_by, status, rows_affected, batches
  FROM privacy.retention_runs WHERE policy = 'page_views_2_months';
SELECT backend_type, application_name, datname
  FROM pg_stat_activity WHERE backend_type LIKE 'pg_privacy%' ORDER BY backend_type;

-- On a busy server the DBA can make the worker gentler: it pauses this long
-- between two batches of a run (manual runs never pause). Purges take longer,
-- the application keeps more of the CPU and WAL bandwidth.
ALTER SYSTEM SET privacy.batch_delay = '20ms';
SELECT pg_reload_conf();
SELECT name, setting FROM pg_file_settings WHERE name = 'privacy.batch_delay';
