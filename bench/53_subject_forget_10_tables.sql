-- title: `forget_subject` (a real erasure, not a dry run) of one subject across 10 tables of `:rows` rows each (`:rows` × 10 rows), each table with an indexed SUBJECT column `customer_id` (two rows per subject per table) and a tagged column; no foreign keys, no holds, no legal obligation, so all 20 rows are deleted. Before every timed query the subject's 20 rows are put back (committed). Compared with deleting the same rows by hand with one `DELETE` per table.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_privacy;
SELECT privacy.define_purpose('service', NULL, 'contract')
 WHERE NOT EXISTS (SELECT FROM privacy.purposes WHERE name = 'service');
SELECT privacy.create_key('default', '\x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08')
 WHERE NOT EXISTS (SELECT FROM privacy.keys WHERE name = 'default');
-- forget_subject visits every table with a SUBJECT column: only this section's
DROP TABLE IF EXISTS bench_order_lines, bench_orders, bench_invoices, bench_accounts CASCADE;
SELECT set_config('bench.rows', :'rows', false);
DO $$
DECLARE n bigint := current_setting('bench.rows')::bigint;
BEGIN
    FOR i IN 1..10 LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I, %I', 'bench_f' || i, 'bench_f' || i || '_keep');
        EXECUTE format('CREATE TABLE %I (id bigint PRIMARY KEY, customer_id bigint NOT NULL, note text)', 'bench_f' || i);
        EXECUTE format('INSERT INTO %I SELECT g, (g %% %s) + 1, %L || g FROM generate_series(1, %s) g',
                       'bench_f' || i, greatest(n / 2, 1), 'note ' || i || ' ', n);
        EXECUTE format('CREATE INDEX ON %I (customer_id)', 'bench_f' || i);
        EXECUTE format('CREATE TABLE %I AS SELECT * FROM %I WHERE customer_id = 4242', 'bench_f' || i || '_keep', 'bench_f' || i);
        PERFORM privacy.mark_subject(('bench_f' || i)::regclass, 'customer_id');
        PERFORM privacy.tag_column(('bench_f' || i)::regclass, 'note', ARRAY['service']);
    END LOOP;
END $$;
CREATE OR REPLACE FUNCTION bench_f_restore() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..10 LOOP
        EXECUTE format('INSERT INTO %I SELECT * FROM %I ON CONFLICT DO NOTHING', 'bench_f' || i, 'bench_f' || i || '_keep');
    END LOOP;
END $$;
CREATE OR REPLACE FUNCTION bench_f_delete_by_hand(subject bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE total bigint := 0; n bigint;
BEGIN
    FOR i IN 1..10 LOOP
        EXECUTE format('DELETE FROM %I WHERE customer_id = $1', 'bench_f' || i) USING subject;
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
    END LOOP;
    RETURN total;
END $$;
VACUUM ANALYZE;
-- before: SELECT bench_f_restore();
-- show: rows forget_subject deletes | SELECT sum(rows) FROM privacy.forget_subject('4242', dry_run => true)
-- case: forget_subject | SELECT count(*) FROM privacy.forget_subject('4242')
-- case: the same DELETEs by hand | SELECT bench_f_delete_by_hand(4242)
