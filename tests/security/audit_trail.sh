#!/usr/bin/env bash
# Attack 10 (and the audit log that already holds): an export read in a
# transaction that is then rolled back took its audit entry with it, and
# refused attempts left no trace. Secure outcome: every export, erasure (dry
# run or not) and refused attempt is also written to the server log at once
# — one line "pg_privacy audit: {json}", the subject as its pseudonym only,
# without the statement (which holds the id in clear) — and the audit table
# stays append-only for everyone but a superuser.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/security/common.inc
sec_cluster sec_audit_trail "privacy.worker_enabled = off" "log_min_error_statement = error" "log_statement = none"

ID='zz-secret-77@example.com'
as app_owner >/dev/null <<SQL
CREATE TABLE public.contacts (email text PRIMARY KEY, name text);
INSERT INTO public.contacts VALUES ('$ID', 'Zed'), ('other@example.com', 'Other');
SECURITY LABEL FOR privacy ON COLUMN public.contacts.email IS 'SUBJECT';
SECURITY LABEL FOR privacy ON COLUMN public.contacts.name IS 'PURPOSE service';
GRANT SELECT, DELETE ON public.contacts TO backoffice;
GRANT SELECT ON public.contacts TO policy_owner;
SQL
pq "GRANT EXECUTE ON FUNCTION privacy.forget_subject(text, boolean) TO policy_owner" >/dev/null

audit_lines() { server_log | grep -F 'pg_privacy audit: '; }

# (the first audited call of a database creates the internal audit key, in
# its own transaction: commit one first, as any database in use has)
as backoffice -c "SELECT privacy.export_subject('other@example.com') IS NOT NULL" >/dev/null

# an export read in a transaction rolled back
as backoffice -c "BEGIN" -c "SELECT privacy.export_subject('$ID') IS NOT NULL" -c "ROLLBACK" >/dev/null
check "the rolled-back export left no entry in the audit table" is 1 \
    "$(pq "SELECT count(*) FROM privacy.audit_log WHERE action = 'export_subject'")"
line=$(audit_lines | grep '"action":"export_subject"' | tail -1)
check "it is in the server log" contains "$line" '"outcome":"ok"'
check "with its actor" contains "$line" '"actor":"backoffice"'
check "with the subject's pseudonym" contains "$line" '"subject_pseudonym":"[0-9a-f]{64}"'
pseudonym=$(grep -oE '"subject_pseudonym":"[0-9a-f]{64}"' <<<"$line" | cut -d'"' -f4)

# a committed export: the same pseudonym as the audit table's entry
as backoffice -c "SELECT privacy.export_subject('$ID') IS NOT NULL" >/dev/null
check "the line's pseudonym is the audit table's" is "$pseudonym" \
    "$(pq "SELECT details->>'subject_pseudonym' FROM privacy.audit_log WHERE action = 'export_subject' ORDER BY id DESC LIMIT 1")"

# erasures: a dry run rolled back, a refused one
as backoffice -c "BEGIN" -c "SELECT count(*) FROM privacy.forget_subject('$ID', dry_run => true)" -c "ROLLBACK" >/dev/null
line=$(audit_lines | grep '"action":"forget_subject"' | grep '"dry_run":true' | tail -1)
check "a rolled-back dry-run erasure is in the server log" contains "$line" '"outcome":"ok"'
check "the refused erasure fails" is 42501 "$(state_of policy_owner "SELECT count(*) FROM privacy.forget_subject('$ID')")"
line=$(audit_lines | grep '"action":"forget_subject"' | grep '"outcome":"refused"' | tail -1)
check "the refused erasure is in the server log" contains "$line" '"sqlstate":"42501"'
check "by its actor" contains "$line" '"actor":"policy_owner"'
check "a tag by a role that does not own the table is refused" is 42501 \
    "$(state_of backoffice "SELECT privacy.tag_column('public.contacts', 'name', ARRAY['service'])")"
check "the refused tag is in the server log, as a refusal" contains "$(audit_lines | grep '"action":"tag_column"' | tail -1)" '"outcome":"refused"'

all=$(audit_lines)
check "no audit line holds the subject in clear" lacks "$all" 'zz-secret-77'
check "no audit line is followed by its statement" lacks \
    "$(server_log | grep -A1 -F 'pg_privacy audit: ' | grep -v -F 'pg_privacy audit: ')" 'STATEMENT'

# append-only, even for a role granted UPDATE/DELETE/TRUNCATE by mistake
pq "GRANT SELECT, UPDATE, DELETE, TRUNCATE ON privacy.audit_log TO backoffice" >/dev/null
check "UPDATE of the audit log is refused" is 42501 "$(state_of backoffice "UPDATE privacy.audit_log SET actor = 'x'")"
check "DELETE is refused" is 42501 "$(state_of backoffice "DELETE FROM privacy.audit_log")"
check "TRUNCATE is refused" is 42501 "$(state_of backoffice "TRUNCATE privacy.audit_log")"
check "INSERT is not granted" is 42501 \
    "$(state_of backoffice "INSERT INTO privacy.audit_log (actor, action) VALUES ('x', 'forged')")"
exit 0
