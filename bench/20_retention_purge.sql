-- title: Purge of 50 % of `:rows` rows (`id bigint` primary key, `created_at timestamptz` with a btree index, a 32-byte payload; every other row is older than the one-year policy) by `privacy.run_retention(policy)` (batches of about `privacy.batch_size` = 10000 rows: the backlog is half the table, so the run walks it in ctid windows, one plain `DELETE` per window, each in a subtransaction of the caller's transaction) against one plain `DELETE … WHERE created_at < now() - interval '1 year'`. Before every timed query the table is rebuilt from a copy (committed, vacuumed, analyzed), so every round deletes the same committed rows. The worker's path (same engine, one committed transaction per batch) is timed end to end by the `concurrency` section.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_privacy;
DROP TABLE IF EXISTS bench_purge, bench_purge_src;
CREATE TABLE bench_purge_src (id bigint NOT NULL, created_at timestamptz NOT NULL, payload text);
INSERT INTO bench_purge_src
SELECT g,
       CASE WHEN g % 2 = 0 THEN timestamptz '2020-01-01 00:00+00' + g * interval '30 seconds'
            ELSE now() - interval '1 day' + g * interval '10 milliseconds' END,
       md5(g::text)
  FROM generate_series(1, :rows) g;
CREATE TABLE bench_purge (LIKE bench_purge_src);
ALTER TABLE bench_purge ADD PRIMARY KEY (id);
CREATE INDEX bench_purge_created_at ON bench_purge (created_at);
INSERT INTO bench_purge SELECT * FROM bench_purge_src;
VACUUM ANALYZE bench_purge_src, bench_purge;
SELECT privacy.add_retention_policy('bench_purge', '1 year', 'created_at', name => 'bench_purge')
 WHERE NOT EXISTS (SELECT FROM privacy.retention_policies WHERE name = 'bench_purge');
-- before: TRUNCATE bench_purge;
-- before: INSERT INTO bench_purge SELECT * FROM bench_purge_src;
-- before: VACUUM ANALYZE bench_purge;
-- show: rows run_retention deletes | SELECT rows FROM privacy.run_retention('bench_purge', dry_run => true)
-- show: rows the DELETE deletes | SELECT count(*) FROM bench_purge WHERE created_at < now() - interval '1 year'
-- case: run_retention | SELECT count(*) FROM privacy.run_retention('bench_purge')
-- case: plain DELETE | DELETE FROM bench_purge WHERE created_at < now() - interval '1 year'
-- ratio: run_retention / plain DELETE <= 1.3
