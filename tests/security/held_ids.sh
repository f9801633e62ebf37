#!/usr/bin/env bash
# Attack 5: held subject ids reached the generated SQL as literals, so code
# running inside a purge could read them from the statement text
# (GET DIAGNOSTICS … PG_CONTEXT, current_query()) although privacy.holds is
# closed to its role. Secure outcome: held ids are bound array parameters:
# the table owner's trigger, which does fire in the run and the erasure,
# finds none of them in anything it can read.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/security/common.inc
sec_cluster sec_held_ids "privacy.worker_enabled = off"

as app_owner >/dev/null <<'SQL'
CREATE TABLE public.visits (id serial PRIMARY KEY, who text NOT NULL, at timestamptz NOT NULL);
INSERT INTO public.visits (who, at)
SELECT w, now() - interval '2 years'
  FROM unnest(ARRAY['alice@example.com', 'carol-42', 'bob', 'bob', 'dave']) w;
SECURITY LABEL FOR privacy ON COLUMN public.visits.who IS 'SUBJECT';
CREATE TABLE public.seen (context text, query text);
CREATE FUNCTION public.peek() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE ctx text;
BEGIN
  GET DIAGNOSTICS ctx = PG_CONTEXT;
  INSERT INTO public.seen VALUES (ctx, current_query());
  RETURN OLD;
END $$;
CREATE TRIGGER peek BEFORE DELETE ON public.visits FOR EACH ROW EXECUTE FUNCTION public.peek();
SELECT privacy.add_retention_policy('public.visits', '1 year', 'at', name => 'visits');
GRANT SELECT, DELETE ON public.visits TO backoffice;
SQL
as hold_placer -c "SELECT privacy.place_subject_hold('alice@example.com', 'litigation')" \
               -c "SELECT privacy.place_subject_hold('carol-42', 'tax audit')" >/dev/null

check "control: the table owner may not read the held ids" is 42501 "$(state_of app_owner "SELECT * FROM privacy.holds")"

pq "SELECT * FROM privacy.run_retention('visits', dry_run => true)" >/dev/null
out=$(pq "SELECT rows || '|' || held FROM privacy.run_retention('visits')")
check "the run deletes the unheld rows and keeps the held ones" is "3|2" "$out"
pq "INSERT INTO public.visits (who, at) VALUES ('bob', now()), ('carol-42', now())" >/dev/null
check "the back office's erasure works" no_error "$(as backoffice -c "SELECT count(*) FROM privacy.forget_subject('bob')" 2>&1)"
check "a held subject's erasure keeps its rows" is "held:2" \
    "$(pq "SELECT action || ':' || rows FROM privacy.forget_subject('carol-42') WHERE action = 'held'")"

check "the owner's trigger did fire" is t "$(pq "SELECT count(*) >= 4 FROM public.seen")"
check "the trigger saw the statements (control: it reads their text)" is t \
    "$(pq "SELECT bool_or(context LIKE '%DELETE%') FROM public.seen")"
check "no held id in anything the trigger could read" is 0 \
    "$(pq "SELECT count(*) FROM public.seen WHERE context || query ~ '(alice@example\.com|carol-42)'")"
exit 0
