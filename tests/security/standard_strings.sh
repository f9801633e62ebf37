#!/usr/bin/env bash
# Attack 7: a hold filter validated as one expression with
# standard_conforming_strings on — name = 'a\' AND name <> ' OR s.pwn() IS
# NULL --' — turns into code when spliced into a statement parsed with it
# off, in the eraser's session or the worker's (ALTER DATABASE … SET).
# Secure outcome: every statement pg_privacy builds is parsed with
# standard_conforming_strings = on, whatever the session says: the filter
# holds the one row it names and the function never runs.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/security/common.inc
sec_cluster sec_standard_strings "privacy.naptime = 1" "privacy.worker_enabled = off"

as postgres >/dev/null <<'SQL'
CREATE SCHEMA s;
CREATE TABLE s.pwned (who text);
GRANT USAGE ON SCHEMA s TO PUBLIC;
GRANT INSERT, SELECT ON s.pwned TO PUBLIC;
CREATE FUNCTION s.pwn() RETURNS int LANGUAGE sql AS $$ INSERT INTO s.pwned VALUES (current_user) RETURNING 1 $$;
SQL
as app_owner >/dev/null <<'SQL'
CREATE TABLE public.people (id bigint PRIMARY KEY, name text, gone timestamptz);
INSERT INTO public.people VALUES (1, 'a\', now() - interval '2 years'), (2, 'b', now() - interval '2 years'),
                                 (3, 'c', now() - interval '2 years');
SECURITY LABEL FOR privacy ON COLUMN public.people.id IS 'SUBJECT';
SELECT privacy.add_retention_policy('public.people', '1 year', 'gone', name => 'people');
GRANT SELECT, DELETE ON public.people TO backoffice, hold_placer;
SQL

filter="name = 'a\\' AND name <> ' OR s.pwn() IS NULL --'"
# control: parsed with standard_conforming_strings off, the text is code
as hold_placer -c "SET standard_conforming_strings = off" -c "SET escape_string_warning = off" \
    -c "SELECT count(*) FROM public.people WHERE $filter" >/dev/null 2>&1
check "control: with the setting off the filter's text calls the function" is t \
    "$(pq "SELECT count(*) > 0 FROM s.pwned")"
pq "TRUNCATE s.pwned" >/dev/null

check "the filter is one harmless expression, accepted as a hold" is "" \
    "$(state_of hold_placer "SET standard_conforming_strings = off; SELECT privacy.place_hold('public.people', \$f\$$filter\$f\$, 'case')")"
out=$(as backoffice -c "SET standard_conforming_strings = off" -c "SELECT count(*) FROM privacy.forget_subject('1')" \
        -c "SELECT count(*) FROM privacy.forget_subject('2')" 2>&1)
check "erasures in a session with the setting off work" no_error "$out"
check "the erasures kept the held row and deleted the other" is 'a\,c' \
    "$(pq "SELECT string_agg(name, ',' ORDER BY id) FROM public.people")"
check "the function never ran in the erasures" is 0 "$(pq "SELECT count(*) FROM s.pwned")"
out=$(as postgres -c "SET standard_conforming_strings = off" -c "SELECT rows || '|' || held FROM privacy.run_retention('people')" 2>&1)
check "a run in such a session deletes the unheld row, keeps the held one" is "1|1" "$out"
check "the held row is the one the filter names" is 'a\' "$(pq "SELECT string_agg(name, ',') FROM public.people")"
check "the function never ran" is 0 "$(pq "SELECT count(*) FROM s.pwned")"

# the worker, with the database's setting off
as app_owner -c "ALTER DATABASE sec SET standard_conforming_strings = off" >/dev/null
pq "INSERT INTO public.people VALUES (4, 'd', now() - interval '2 years'), (5, 'e', now() - interval '2 years')" >/dev/null
as app_owner -c "SELECT privacy.alter_retention_policy('people', schedule_interval => '1 second')" >/dev/null
pq "ALTER SYSTEM SET privacy.worker_enabled = on" >/dev/null
cluster_stop "$SEC"
cluster_start "$SEC" || exit 1
check "the worker purges with the database's setting off" wait_for "$SEC" sec \
    "SELECT count(*) = 1 FROM public.people" 40
check "the held row is still there" is 'a\' "$(pq "SELECT string_agg(name, ',') FROM public.people")"
check "the function never ran in the worker either" is 0 "$(pq "SELECT count(*) FROM s.pwned")"
exit 0
