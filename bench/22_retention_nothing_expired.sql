-- title: A retention run with nothing expired: `:rows` rows all younger than the one-year policy, `created_at` indexed. `privacy.run_retention(policy)` must answer in milliseconds by reading the empty expired range of the anchor index, never the table: the `show` lines count the sequential and index scans one run makes on the table (`pg_stat_xact_user_tables`). Compared with the same question asked by hand through the index, and with a sequential count of the table (what a run that scanned would at least cost).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_privacy;
DROP TABLE IF EXISTS bench_idle;
CREATE TABLE bench_idle (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, payload text);
INSERT INTO bench_idle
SELECT g, now() - interval '300 days' + g * (interval '200 days' / :rows), md5(g::text)
  FROM generate_series(1, :rows) g;
CREATE INDEX bench_idle_created_at ON bench_idle (created_at);
VACUUM ANALYZE bench_idle;
SELECT privacy.add_retention_policy('bench_idle', '1 year', 'created_at', name => 'bench_idle')
 WHERE NOT EXISTS (SELECT FROM privacy.retention_policies WHERE name = 'bench_idle');
CREATE OR REPLACE FUNCTION bench_idle_scans() RETURNS text LANGUAGE plpgsql AS $$
DECLARE s0 bigint; i0 bigint; s1 bigint; i1 bigint;
BEGIN
    SELECT coalesce(seq_scan, 0), coalesce(idx_scan, 0) INTO s0, i0
      FROM pg_stat_xact_user_tables WHERE relid = 'bench_idle'::regclass;
    PERFORM count(*) FROM privacy.run_retention('bench_idle');
    SELECT coalesce(seq_scan, 0), coalesce(idx_scan, 0) INTO s1, i1
      FROM pg_stat_xact_user_tables WHERE relid = 'bench_idle'::regclass;
    RETURN format('%s sequential, %s index', s1 - coalesce(s0, 0), i1 - coalesce(i0, 0));
END $$;
-- show: rows deleted by one run | SELECT rows FROM privacy.run_retention('bench_idle')
-- show: scans of the table by one run (sequential, index) | SELECT bench_idle_scans()
-- case: run_retention, nothing expired | SELECT count(*) FROM privacy.run_retention('bench_idle')
-- case: the same question by hand (index) | SELECT count(*) FROM bench_idle WHERE created_at < now() - interval '1 year'
-- case: sequential count of the table | SELECT count(payload) FROM bench_idle
