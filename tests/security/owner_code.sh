#!/usr/bin/env bash
# Attacks 1 and 3 (point 3 of the brief): a table owner plants code — a
# trigger, an ANONYMIZE FUNCTION — into every erasure and retention run of
# its table, hoping to run it with the caller's rights (the back office's,
# a policy owner's, a superuser's) and copy a table only those can read.
# Secure outcome: that code runs as the table's owner, in a restricted
# operation (no SET ROLE), so it reads nothing its owner could not; the
# callers' own privileges are checked first; a policy whose owner lost
# DELETE fails (recorded) instead of running with the table owner's rights.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/security/common.inc
sec_cluster sec_owner_code "privacy.worker_enabled = off"

as postgres >/dev/null <<'SQL'
CREATE SCHEMA vault;
CREATE TABLE vault.secret (v text);
INSERT INTO vault.secret VALUES ('the crown jewels');
GRANT USAGE ON SCHEMA vault TO backoffice, policy_owner;
GRANT SELECT ON vault.secret TO backoffice, policy_owner;
SQL

as app_owner >/dev/null <<'SQL'
CREATE SCHEMA app;
CREATE TABLE app.log (who text, what text, outcome text);
CREATE TABLE app.stolen (v text);
-- writable by all: the trigger, whoever it runs as, can record what it got
GRANT INSERT ON app.log, app.stolen TO PUBLIC;
CREATE FUNCTION app.steal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    INSERT INTO app.stolen SELECT v FROM vault.secret;
    INSERT INTO app.log VALUES (current_user, 'read vault.secret', 'read');
  EXCEPTION WHEN OTHERS THEN
    INSERT INTO app.log VALUES (current_user, 'read vault.secret', SQLSTATE);
  END;
  BEGIN
    CREATE TEMP TABLE app_scratch (x int);
    INSERT INTO app.log VALUES (current_user, 'temp table', 'done');
  EXCEPTION WHEN OTHERS THEN
    INSERT INTO app.log VALUES (current_user, 'temp table', SQLSTATE);
  END;
  BEGIN
    SET ROLE backoffice;
    INSERT INTO app.log VALUES (current_user, 'set role', 'done');
  EXCEPTION WHEN OTHERS THEN
    INSERT INTO app.log VALUES (current_user, 'set role', SQLSTATE);
  END;
  RETURN OLD;
END $$;
CREATE FUNCTION app.mask(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO app.log VALUES (current_user, 'mask', 'ran');
  RETURN 'masked';
END $$;
CREATE TABLE app.accounts (id bigint PRIMARY KEY, email text, gone timestamptz);
INSERT INTO app.accounts SELECT g, 'u' || g || '@example.com', now() - interval '2 years'
  FROM generate_series(1, 10) g;
CREATE TRIGGER steal BEFORE DELETE ON app.accounts FOR EACH ROW EXECUTE FUNCTION app.steal();
SECURITY LABEL FOR privacy ON COLUMN app.accounts.id IS 'SUBJECT';
CREATE TABLE app.invoices (id int PRIMARY KEY, account_id bigint, amount numeric, note text);
INSERT INTO app.invoices VALUES (1, 1, 10, 'paid late'), (2, 2, 20, 'ok');
SECURITY LABEL FOR privacy ON COLUMN app.invoices.account_id IS 'SUBJECT';
SECURITY LABEL FOR privacy ON COLUMN app.invoices.amount IS 'PURPOSE billing';
SECURITY LABEL FOR privacy ON COLUMN app.invoices.note IS 'PURPOSE service ANONYMIZE FUNCTION app.mask';
GRANT USAGE ON SCHEMA app TO backoffice, policy_owner;
GRANT SELECT, DELETE ON app.accounts TO backoffice, policy_owner;
GRANT SELECT, UPDATE ON app.invoices TO backoffice;
SQL

check "control: the back office can read the vault" is "the crown jewels" "$(as backoffice -c "SELECT v FROM vault.secret")"
check "control: the table owner cannot" is 42501 "$(state_of app_owner "SELECT v FROM vault.secret")"

# the back office erases subject 1
out=$(as backoffice -c "SELECT action || ':' || rows FROM privacy.forget_subject('1') ORDER BY 1" 2>&1)
check "the back office's erasure works" no_error "$out"
check "the erasure deleted the account and anonymized the invoice" \
    is "1|masked|" "$(pq "SELECT (SELECT count(*) FROM app.accounts WHERE id = 1) + 1 || '|' || note || '|' || coalesce(account_id::text, '')
                          FROM app.invoices WHERE id = 1")"
check "the trigger ran as the table's owner" is app_owner "$(pq "SELECT string_agg(DISTINCT who, ',') FROM app.log")"
check "the trigger could not read the vault" is 42501 \
    "$(pq "SELECT string_agg(DISTINCT outcome, ',') FROM app.log WHERE what = 'read vault.secret'")"
check "the trigger could not SET ROLE" is 42501 \
    "$(pq "SELECT string_agg(DISTINCT outcome, ',') FROM app.log WHERE what = 'set role'")"
check "the trigger ran restricted (no temporary table, which its owner may create)" is 42501 \
    "$(pq "SELECT string_agg(DISTINCT outcome, ',') FROM app.log WHERE what = 'temp table'")"
check "control: the owner may create temporary tables" is "" "$(state_of app_owner "CREATE TEMP TABLE x (i int)")"
check "ANONYMIZE FUNCTION ran as the table's owner" is "app_owner" \
    "$(pq "SELECT string_agg(DISTINCT who, ',') FROM app.log WHERE what = 'mask'")"
check "nothing was stolen" is 0 "$(pq "SELECT count(*) FROM app.stolen")"

# a superuser's erasure: the same
pq "SELECT count(*) FROM privacy.forget_subject('2')" >/dev/null
check "a superuser's erasure runs the trigger as the owner too" is app_owner \
    "$(pq "SELECT string_agg(DISTINCT who, ',') FROM app.log")"
check "still nothing stolen" is 0 "$(pq "SELECT count(*) FROM app.stolen")"

# a retention policy of another role on the owner's table, run by a superuser
as policy_owner -c "SELECT privacy.add_retention_policy('app.accounts', '1 year', 'gone', name => 'p')" >/dev/null
out=$(pq "SELECT rows FROM privacy.run_retention('p')" 2>&1)
check "the policy purges the expired accounts" is 8 "$out"
check "the trigger ran as the table's owner in the run" is app_owner \
    "$(pq "SELECT string_agg(DISTINCT who, ',') FROM app.log")"
check "the run stole nothing either" is 0 "$(pq "SELECT count(*) FROM app.stolen")"

# the policy owner loses DELETE: the run fails, recorded, nothing deleted
pq "INSERT INTO app.accounts VALUES (50, 'x', now() - interval '3 years')" >/dev/null
pq "REVOKE DELETE ON app.accounts FROM policy_owner" >/dev/null
pq "SELECT * FROM privacy.run_retention('p')" >/dev/null 2>&1
check "a policy whose owner lost DELETE fails with 42501" is t \
    "$(pq "SELECT error LIKE '%42501%' FROM privacy.retention_runs WHERE policy = 'p' ORDER BY run_id DESC LIMIT 1")"
check "and deletes nothing" is 1 "$(pq "SELECT count(*) FROM app.accounts WHERE id = 50")"

# ANONYMIZE FUNCTION naming a function the owner may not run
check "FUNCTION pg_catalog.pg_read_file is refused to the table owner" is 42501 \
    "$(state_of app_owner "SECURITY LABEL FOR privacy ON COLUMN app.invoices.note IS 'PURPOSE service ANONYMIZE FUNCTION pg_catalog.pg_read_file'")"
check "and to a superuser labelling the owner's table" is 42501 \
    "$(state_of postgres "SECURITY LABEL FOR privacy ON COLUMN app.invoices.note IS 'PURPOSE service ANONYMIZE FUNCTION pg_catalog.pg_read_file'")"

# row-level security the owner forces on itself would hide rows from the
# statements that run as the owner: refused
as app_owner >/dev/null <<'SQL'
ALTER TABLE app.accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY nothing ON app.accounts USING (false);
SQL
check "an erasure refuses a table whose owner is subject to its own RLS" is 42501 \
    "$(state_of postgres "SELECT count(*) FROM privacy.forget_subject('50')")"
check "as does an export" is 42501 "$(state_of postgres "SELECT privacy.export_subject('50')")"
check "RLS for the caller is refused as before" is 42501 \
    "$(state_of backoffice "SELECT privacy.export_subject('50')")"
exit 0
