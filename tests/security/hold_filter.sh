#!/usr/bin/env bash
# Attack 2: a hold placer writes a filter of "built-in functions only" that
# executes SQL — table_to_xml() over a view that calls the placer's own
# function — so that every purge and erasure of the table runs it with other
# roles' rights. Secure outcome: such filters are refused when placed (the
# allow-list admits no function that runs SQL, reads files or settings), and
# a hold that somehow holds one (placed by an older version) is refused when
# used: the run fails with 22023, recorded, the erasure fails, nothing runs
# the placer's function, and no row of the table is touched meanwhile.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/security/common.inc
sec_cluster sec_hold_filter "privacy.worker_enabled = off"

as postgres >/dev/null <<'SQL'
CREATE SCHEMA hp AUTHORIZATION hold_placer;
SQL
as hold_placer >/dev/null <<'SQL'
CREATE TABLE hp.side (who text);
GRANT INSERT, SELECT ON hp.side TO PUBLIC;
CREATE FUNCTION hp.pwn() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO hp.side VALUES (current_user);
  BEGIN
    EXECUTE 'ALTER ROLE hold_placer SUPERUSER';
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
  RETURN 1;
END $$;
CREATE VIEW hp.v AS SELECT hp.pwn() AS x;
GRANT USAGE ON SCHEMA hp TO PUBLIC;
GRANT SELECT ON hp.v TO PUBLIC;
SQL
as app_owner >/dev/null <<'SQL'
CREATE TABLE public.people (id bigint PRIMARY KEY, name text, gone timestamptz);
INSERT INTO public.people SELECT g, 'p' || g, now() - interval '2 years' FROM generate_series(1, 5) g;
SECURITY LABEL FOR privacy ON COLUMN public.people.id IS 'SUBJECT';
SELECT privacy.add_retention_policy('public.people', '1 year', 'gone', name => 'people');
GRANT SELECT ON public.people TO hold_placer;
SQL

as hold_placer -c "SELECT table_to_xml('hp.v'::regclass, true, false, '') IS NOT NULL" >/dev/null
check "control: table_to_xml over the view runs the placer's function" is 1 "$(pq "SELECT count(*) FROM hp.side")"
pq "TRUNCATE hp.side" >/dev/null

for f in "table_to_xml('hp.v'::regclass, true, false, '') IS NOT NULL" \
         "query_to_xml('SELECT hp.pwn()', true, false, '') IS NOT NULL" \
         "table_to_xmlschema('hp.v'::regclass, true, false, '') IS NOT NULL" \
         "database_to_xml(true, false, '') IS NOT NULL" \
         "cursor_to_xml('c', 1, true, false, '') IS NOT NULL" \
         "pg_read_file('/etc/passwd') IS NOT NULL" \
         "current_setting('search_path') <> ''" \
         "hp.pwn() = 1"; do
    check "hold filter refused: $f" is 22023 \
        "$(state_of hold_placer "SELECT privacy.place_hold('public.people', \$f\$$f\$f\$, 'case')")"
done
check "a plain filter is accepted" is "" "$(state_of hold_placer "SELECT privacy.place_hold('public.people', 'id = 5', 'case')")"

# a hold from an older version, with such a filter, straight in the table
pq "INSERT INTO privacy.legal_holds (table_name, row_filter, reason, placed_by)
    VALUES ('public.people', \$\$table_to_xml('hp.v'::regclass, true, false, '') IS NOT NULL\$\$, 'legacy', 'hold_placer')" >/dev/null
pq "SELECT * FROM privacy.run_retention('people')" >/dev/null 2>&1
check "a run meeting the old filter fails with 22023, recorded" is t \
    "$(pq "SELECT error LIKE '%not allowed any more%22023%' FROM privacy.retention_runs WHERE policy = 'people' ORDER BY run_id DESC LIMIT 1")"
check "an erasure meeting it fails with 22023" is 22023 \
    "$(state_of postgres "SELECT count(*) FROM privacy.forget_subject('1')")"
check "the back office's export is not concerned (holds do not apply to reads)" is "" \
    "$(state_of postgres "SELECT privacy.export_subject('1')")"
check "no row was touched" is 5 "$(pq "SELECT count(*) FROM public.people")"
check "the placer's function never ran" is 0 "$(pq "SELECT count(*) FROM hp.side")"
check "the placer is not a superuser" is f "$(pq "SELECT rolsuper FROM pg_roles WHERE rolname = 'hold_placer'")"

# released, runs go on (and the plain hold still holds)
pq "SELECT privacy.release_hold(id) FROM privacy.legal_holds WHERE reason = 'legacy'" >/dev/null
check "after release the run purges all but the held row" is "4|1" \
    "$(pq "SELECT rows || '|' || held FROM privacy.run_retention('people')")"
check "the placer's function still never ran" is 0 "$(pq "SELECT count(*) FROM hp.side")"
exit 0
