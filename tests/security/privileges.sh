#!/usr/bin/env bash
# What already held, kept under test: non-owners cannot tag, cannot add,
# run, alter or drop others' policies, cannot place holds without the grant
# and SELECT, cannot read keys or create objects in the privacy schema, do
# not see others' run errors; identifiers with quotes, semicolons and
# newlines, filters and CONSTANT/FUNCTION labels cannot inject SQL.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/security/common.inc
sec_cluster sec_privileges "privacy.worker_enabled = off"

as app_owner >/dev/null <<'SQL'
CREATE TABLE public.accounts (id bigint PRIMARY KEY, email text, plan text, gone date);
INSERT INTO public.accounts VALUES (1, 'a@example.com', 'free', '2000-01-01'), (2, 'b@example.com', 'pro', '2000-01-01');
CREATE TABLE public.canary (x int);
INSERT INTO public.canary VALUES (1);
GRANT SELECT, DELETE ON public.accounts TO policy_owner;
GRANT SELECT ON public.canary TO PUBLIC;
SQL

# tagging is the table owner's
check "a non-owner cannot label a column" is 42501 \
    "$(state_of backoffice "SECURITY LABEL FOR privacy ON COLUMN public.accounts.email IS 'PURPOSE service'")"
check "nor through tag_column" is 42501 \
    "$(state_of backoffice "SELECT privacy.tag_column('public.accounts', 'email', ARRAY['service'])")"
check "nor mark_subject" is 42501 "$(state_of temp_only "SELECT privacy.mark_subject('public.accounts', 'id')")"

# policies
check "no policy on a table one may not delete from" is 42501 \
    "$(state_of temp_only "SELECT privacy.add_retention_policy('public.accounts', '1 day', 'gone')")"
as policy_owner -c "SELECT privacy.add_retention_policy('public.accounts', '1 day', 'gone', name => 'p')" >/dev/null
check "another role cannot run the policy" is 42501 "$(state_of backoffice "SELECT * FROM privacy.run_retention('p')")"
check "nor alter it" is 42501 "$(state_of backoffice "SELECT privacy.alter_retention_policy('p', enabled => false)")"
check "nor drop it" is 42501 "$(state_of backoffice "SELECT privacy.drop_retention_policy('p')")"
check "run_retention(NULL) skips it" is 0 "$(as backoffice -c "SELECT count(*) FROM privacy.run_retention(NULL, dry_run => true)")"
pq "SELECT * FROM privacy.run_retention('p', dry_run => true)" >/dev/null
check "its runs are not shown to other roles" is 0 "$(as backoffice -c "SELECT count(*) FROM privacy.retention_runs")"
check "but to its owner" is 1 "$(as policy_owner -c "SELECT count(*) FROM privacy.retention_runs")"

# holds
check "no hold without the grant" is 42501 \
    "$(state_of backoffice "SELECT privacy.place_hold('public.accounts', 'id = 1', 'x')")"
check "no hold on a table one may not read" is 42501 \
    "$(state_of hold_placer "SELECT privacy.place_hold('public.accounts', 'id = 1', 'x')")"
check "the holds' subjects are not readable" is 42501 "$(state_of hold_placer "SELECT * FROM privacy.holds")"

# keys and the schema
pq "SELECT privacy.create_key('k')" >/dev/null
check "secrets are not readable" is 42501 "$(state_of app_owner "SELECT * FROM privacy.key_secrets")"
check "the keys view has no secret" is 42703 "$(state_of app_owner "SELECT secret FROM privacy.keys")"
check "the database owner cannot create objects in the privacy schema" is 42501 \
    "$(state_of app_owner "CREATE FUNCTION privacy.evil() RETURNS int LANGUAGE sql AS 'SELECT 1'")"
check "nor write pg_privacy's tables" is 42501 \
    "$(state_of app_owner "INSERT INTO privacy.retention_policy_defs (name, table_name, anchor, keep_for, action, schedule_interval, owner)
                           VALUES ('x', 'public.accounts', 'gone', '1 day', 'delete', '1 hour', 'app_owner')")"

# identifiers that would break naive SQL
as app_owner >/dev/null <<'SQL'
CREATE TABLE public."we""ird; DROP TABLE public.canary; --" (
    "i""d" bigint PRIMARY KEY,
    "na
me" text,
    "at'x" date);
INSERT INTO public."we""ird; DROP TABLE public.canary; --" VALUES (1, 'n1', '2000-01-01'), (2, 'n2', '2000-01-01');
SELECT privacy.mark_subject('public."we""ird; DROP TABLE public.canary; --"', 'i"d');
SELECT privacy.tag_column('public."we""ird; DROP TABLE public.canary; --"', E'na\nme', ARRAY['service']);
SQL
as app_owner -c "GRANT SELECT, DELETE ON public.\"we\"\"ird; DROP TABLE public.canary; --\" TO backoffice, policy_owner" >/dev/null
check "odd identifiers: export works" contains \
    "$(as backoffice -c "SELECT privacy.export_subject('1')" 2>&1)" '"n1"'
check "odd identifiers: erasure works" no_error "$(as backoffice -c "SELECT count(*) FROM privacy.forget_subject('1')" 2>&1)"
check "odd identifiers: a policy with a filter works" no_error "$(as policy_owner \
    -c "SELECT privacy.add_retention_policy('public.\"we\"\"ird; DROP TABLE public.canary; --\"', '1 day', 'at''x',
            row_filter => \$\$\"na
me\" <> 'x'\$\$, name => 'odd')" -c "SELECT * FROM privacy.run_retention('odd')" 2>&1)"
check "odd identifiers: the subject's and the expired rows are gone" is 0 \
    "$(pq "SELECT count(*) FROM public.\"we\"\"ird; DROP TABLE public.canary; --\"")"

# filters and labels that try to close the statement around them
for f in "true) OR (true" "true; DROP TABLE public.canary" "plan = 'x' --" ; do
    out=$(state_of policy_owner "SELECT privacy.add_retention_policy('public.accounts', '1 day', 'gone', row_filter => \$f\$$f\$f\$)")
    if [ "$f" = "plan = 'x' --" ]; then
        check "filter ending in a comment is one expression: $f" is "" "$out"
    else
        check "filter refused: $f" is 22023 "$out"
    fi
done
check "CONSTANT with quotes is a literal" is "" "$(state_of app_owner \
    "SECURITY LABEL FOR privacy ON COLUMN public.accounts.plan IS 'PURPOSE service ANONYMIZE CONSTANT ''x''''); DROP TABLE public.canary; --'''")"
pq "GRANT UPDATE ON public.accounts TO policy_owner" >/dev/null
as policy_owner -c "SELECT privacy.add_retention_policy('public.accounts', '1 day', 'gone', 'anonymize', name => 'anon')" \
    -c "SELECT * FROM privacy.run_retention('anon')" >/dev/null
check "the constant was written as it is" is "x'); DROP TABLE public.canary; --" \
    "$(pq "SELECT DISTINCT plan FROM public.accounts")"
check "FUNCTION must name an existing function" is 22023 \
    "$(state_of app_owner "SECURITY LABEL FOR privacy ON COLUMN public.accounts.plan IS 'PURPOSE service ANONYMIZE FUNCTION public.nosuch'")"
check "FUNCTION takes a name, not SQL" is 22023 \
    "$(state_of app_owner "SECURITY LABEL FOR privacy ON COLUMN public.accounts.plan IS 'PURPOSE service ANONYMIZE FUNCTION public.f(); DROP TABLE public.canary'")"
check "the canary table survived everything" is 1 "$(pq "SELECT count(*) FROM public.canary")"
exit 0
