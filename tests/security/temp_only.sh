#!/usr/bin/env bash
# Attack 4: a role with only CONNECT and TEMP labels temporary tables SUBJECT
# (every export and erasure then failed on another session's pg_temp
# schema), or builds a foreign-key cycle of them (every erasure refused).
# Secure outcome: labels on temporary tables are refused (22023); and even a
# label a superuser forces into pg_seclabel behind pg_privacy's back for
# another session's temporary table is ignored by every reader: exports and
# erasures of everyone go on.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/security/common.inc
sec_cluster sec_temp_only "privacy.worker_enabled = off"

as app_owner >/dev/null <<'SQL'
CREATE TABLE public.accounts (id bigint PRIMARY KEY, email text);
INSERT INTO public.accounts VALUES (1, 'ada@example.com'), (2, 'alan@example.com');
SECURITY LABEL FOR privacy ON COLUMN public.accounts.id IS 'SUBJECT';
SECURITY LABEL FOR privacy ON COLUMN public.accounts.email IS 'PURPOSE service';
GRANT SELECT, DELETE ON public.accounts TO backoffice;
SQL

check "a TEMP-only role cannot label a temporary table" is 22023 \
    "$(state_of temp_only "CREATE TEMP TABLE t (id bigint); SECURITY LABEL FOR privacy ON COLUMN t.id IS 'SUBJECT'")"
check "nor through mark_subject" is 22023 \
    "$(state_of temp_only "CREATE TEMP TABLE t (id bigint); SELECT privacy.mark_subject('t', 'id')")"
check "nor a cycle of temporary tables" is 22023 \
    "$(state_of temp_only "CREATE TEMP TABLE ta (id int PRIMARY KEY, b int);
                           CREATE TEMP TABLE tb (id int PRIMARY KEY, who bigint, a int REFERENCES ta);
                           ALTER TABLE ta ADD FOREIGN KEY (b) REFERENCES tb;
                           SELECT privacy.mark_subject('tb', 'who')")"
check "nor a superuser" is 22023 \
    "$(state_of postgres "CREATE TEMP TABLE t (id bigint); SECURITY LABEL FOR privacy ON COLUMN t.id IS 'SUBJECT'")"

# another session's temporary tables, labelled behind pg_privacy's back
as temp_only -c "CREATE TEMP TABLE hidden (who bigint PRIMARY KEY, note text)" \
             -c "CREATE TEMP TABLE hidden_child (id int PRIMARY KEY, who bigint REFERENCES hidden)" \
             -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
holder=$!
wait_for "$SEC" sec "SELECT count(*) = 2 FROM pg_class WHERE relname IN ('hidden', 'hidden_child') AND relpersistence = 't'" 20
pq "SET allow_system_table_mods = on;
    INSERT INTO pg_seclabel
    SELECT c.oid, 'pg_class'::regclass, 1, 'privacy', 'SUBJECT' FROM pg_class c
     WHERE c.relname IN ('hidden', 'hidden_child') AND c.relpersistence = 't'" >/dev/null
check "control: the forged labels are there" is 2 \
    "$(pq "SELECT count(*) FROM pg_seclabel WHERE provider = 'privacy' AND label = 'SUBJECT'
            AND objoid IN (SELECT oid FROM pg_class WHERE relpersistence = 't')")"
out=$(as backoffice -c "SELECT privacy.export_subject('1')" 2>&1)
check "the back office's export works" no_error "$out"
check "the export does not visit another session's temporary table" lacks "$out" hidden
check "the export has the permanent table's row" contains "$out" 'ada@example\.com'
check "the back office's erasure works" no_error "$(as backoffice -c "SELECT count(*) FROM privacy.forget_subject('1')" 2>&1)"
check "a superuser's erasure works" no_error "$(pq "SELECT count(*) FROM privacy.forget_subject('2')" 2>&1)"
check "both subjects are gone" is 0 "$(pq "SELECT count(*) FROM public.accounts")"

pq "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'temp_only'" >/dev/null
wait "$holder" 2>/dev/null
exit 0
