#!/usr/bin/env bash
# Attack 6: a table owner without EXECUTE on privacy.pseudonymize writes
# chosen values into its legal-obligation table tagged to be pseudonymized;
# the next erasure (or anonymize run) hands it the pseudonyms of those values
# — a keyed-hash oracle. Secure outcome: a table's rows are pseudonymized
# only when the table's owner may execute the hash function: checked when
# the label is set (against the owner, whoever sets it) and again when it is
# applied, by an erasure or a retention policy (42501, nothing hashed).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/security/common.inc
sec_cluster sec_oracle "privacy.worker_enabled = off"

pq "SELECT privacy.create_key()" >/dev/null
pq "GRANT EXECUTE ON FUNCTION privacy.pseudonymize(text, text), privacy.pseudonymize_email(text, text) TO policy_owner" >/dev/null
as app_owner >/dev/null <<'SQL'
CREATE TABLE public.ledger (id int PRIMARY KEY, customer bigint, amount numeric, memo text NOT NULL,
                            contact text, at date);
SECURITY LABEL FOR privacy ON COLUMN public.ledger.customer IS 'SUBJECT';
SECURITY LABEL FOR privacy ON COLUMN public.ledger.amount IS 'PURPOSE billing';
GRANT SELECT, UPDATE ON public.ledger TO backoffice, policy_owner;
SQL

check "control: the owner may not call the hash itself" is 42501 \
    "$(state_of app_owner "SELECT privacy.pseudonymize('guess@example.com')")"
check "label time: PSEUDONYMIZE on the owner's table is refused" is 42501 \
    "$(state_of app_owner "SECURITY LABEL FOR privacy ON COLUMN public.ledger.memo IS 'PURPOSE service ANONYMIZE PSEUDONYMIZE'")"
check "label time: EMAIL is refused" is 42501 \
    "$(state_of app_owner "SECURITY LABEL FOR privacy ON COLUMN public.ledger.contact IS 'PURPOSE service ANONYMIZE EMAIL'")"
check "label time: also when a superuser labels the owner's table" is 42501 \
    "$(state_of postgres "SECURITY LABEL FOR privacy ON COLUMN public.ledger.memo IS 'PURPOSE service ANONYMIZE PSEUDONYMIZE'")"

# the default method of a NOT NULL text column is PSEUDONYMIZE too
as app_owner >/dev/null <<'SQL'
SECURITY LABEL FOR privacy ON COLUMN public.ledger.memo IS 'PURPOSE service';
INSERT INTO public.ledger VALUES (1, 7, 10, 'guess@example.com', NULL, '2000-01-01');
SQL
check "apply time: the erasure that would hash the owner's values is refused" is 42501 \
    "$(state_of backoffice "SELECT count(*) FROM privacy.forget_subject('7')")"
check "apply time: so is a superuser's" is 42501 \
    "$(state_of postgres "SELECT count(*) FROM privacy.forget_subject('7')")"
check "nothing was hashed" is "guess@example.com" "$(pq "SELECT memo FROM public.ledger WHERE id = 1")"
check "an anonymize policy on that table is refused at creation" is 42501 \
    "$(state_of policy_owner "SELECT privacy.add_retention_policy('public.ledger', '1 day', 'at', 'anonymize', name => 'ledger_anon')")"
line=$(server_log | grep -F 'pg_privacy audit: ' | grep '"action":"forget_subject"' | grep '"outcome":"refused"' | tail -1)
check "the refused erasure is in the server log" contains "$line" '"sqlstate":"42501"'

pq "GRANT EXECUTE ON FUNCTION privacy.pseudonymize(text, text) TO app_owner" >/dev/null
check "granted: the erasure pseudonymizes" no_error "$(as backoffice -c "SELECT count(*) FROM privacy.forget_subject('7')" 2>&1)"
check "with the key, as the owner may" is t \
    "$(pq "SELECT memo = privacy.pseudonymize('guess@example.com') AND customer IS NULL FROM public.ledger WHERE id = 1")"
check "granted: the anonymize policy is accepted" is "" \
    "$(state_of policy_owner "SELECT privacy.add_retention_policy('public.ledger', '1 day', 'at', 'anonymize', name => 'ledger_anon')")"
exit 0
