-- title: The same erasure and export as the previous section after dropping the indexes on the SUBJECT columns (the case the NOTICE warns about): each call scans the three child tables.
SET client_min_messages = warning;
DROP INDEX IF EXISTS bench_orders_account, bench_order_lines_account, bench_invoices_account;
-- case: forget_subject dry run, no index | SELECT count(*) FROM privacy.forget_subject('4242', dry_run => true)
-- case: export_subject, no index | SELECT length(privacy.export_subject('4242')::text)
