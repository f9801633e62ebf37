//! Security: the scope guard, the filter allow-list, settings that must not
//! change what a filter means. Cluster-level attacks (several roles and
//! sessions, the worker) are in `tests/security/*.sh`.

#[pgrx::pg_schema]
mod tests {
    use crate::security::Scope;
    use crate::tests::{assert_sqlstate, error_of, one, run};
    use pgrx::prelude::*;

    /// A table with columns of every kind the allow-list decides on.
    fn setup() {
        run("CREATE TYPE public.mood AS ENUM ('happy', 'sad')");
        run("CREATE DOMAIN public.code_t AS text");
        run("CREATE DOMAIN public.checked_t AS text CHECK (VALUE <> '')");
        run("CREATE TYPE public.pair AS (a int, b text)");
        run("CREATE TYPE public.myrange AS RANGE (subtype = int8)");
        run("CREATE FUNCTION public.is_free(text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT $1 = 'free' $$");
        run("CREATE FUNCTION public.same(text, text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT $1 = $2 $$");
        run("CREATE OPERATOR public.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = public.same)");
        run("CREATE SEQUENCE public.s");
        run(
            "CREATE TABLE public.t (id int PRIMARY KEY, plan text, n int, at timestamptz, d date,
                 tags text[], payload jsonb, mood public.mood, code public.code_t,
                 comp public.pair, ur public.myrange, ir int4range)",
        );
        run("CREATE VIEW public.v AS SELECT * FROM public.t");
    }

    fn policy_filter(f: &str) -> Option<(String, String)> {
        error_of(&format!(
            "SELECT privacy.add_retention_policy('public.t', '1 day', 'd', row_filter => {})",
            spi::quote_literal(f)
        ))
    }

    fn hold_filter(f: &str) -> Option<(String, String)> {
        error_of(&format!(
            "SELECT privacy.place_hold('public.t', {}, 'case')",
            spi::quote_literal(f)
        ))
    }

    #[pg_test]
    fn security_filters_accept_immutable_builtins_and_time_functions() {
        setup();
        for good in [
            "plan = 'free'",
            "n > 0 AND plan IN ('a', 'b')",
            "d < now() - interval '1 year'",
            "at < now() - interval '1 year'",
            "d < CURRENT_DATE",
            "at < CURRENT_TIMESTAMP AND at > LOCALTIMESTAMP - interval '10 years'",
            "date_trunc('month', at) < now()",
            "date_part('year', at) < 2020",
            "extract(year FROM at) < 2020",
            "age(at) > interval '1 year'",
            "to_char(at, 'YYYY') = '2020'",
            "at::date < '2020-01-01'",
            "at AT TIME ZONE 'UTC' < '2020-01-01'",
            "lower(plan) LIKE 'f%'",
            "plan ~ '^f'",
            "coalesce(n, 0) < 10",
            "NULLIF(n, 0) IS NULL",
            "greatest(n, 1) > 0",
            "CASE WHEN n > 0 THEN true ELSE false END",
            "n = ANY (ARRAY[1, 2])",
            "(n, plan) < (1, 'b')",
            "tags && ARRAY['x']",
            "tags[1] = 'x'",
            "payload->>'k' = 'v'",
            "n::text = '1'",
            "mood = 'happy'",
            "code = 'x'",
            "ir @> 3",
            "plan IS NOT NULL AND n IS DISTINCT FROM 3",
        ] {
            assert_eq!(policy_filter(good), None, "policy filter {good}");
            assert_eq!(hold_filter(good), None, "hold filter {good}");
        }
    }

    #[pg_test]
    fn security_filters_refuse_what_runs_sql_reads_state_or_user_code() {
        setup();
        for bad in [
            // functions that execute SQL
            "table_to_xml('public.v'::regclass, true, false, '') IS NOT NULL",
            "query_to_xml('SELECT 1', true, false, '') IS NOT NULL",
            "cursor_to_xml('c', 1, true, false, '') IS NOT NULL",
            "database_to_xml(true, false, '') IS NOT NULL",
            "schema_to_xml('public', true, false, '') IS NOT NULL",
            "table_to_xmlschema('public.v'::regclass, true, false, '') IS NOT NULL",
            "query_to_xmlschema('SELECT 1', true, false, '') IS NOT NULL",
            "table_to_xml_and_xmlschema('public.v'::regclass, true, false, '') IS NOT NULL",
            // files, settings, catalogs, the session
            "pg_read_file('/etc/passwd') IS NOT NULL",
            "current_setting('search_path') = ''",
            "plan::regclass IS NOT NULL",
            "has_table_privilege('public.t', 'SELECT')",
            "pg_get_viewdef('public.v'::regclass) IS NOT NULL",
            "current_database() = 'x'",
            "pg_backend_pid() > 0",
            "current_user = 'x'",
            "session_user = 'x'",
            "current_schema = 'x'",
            // other types' output functions
            "format('%s', plan) = 'x'",
            "concat(plan, n) = 'x'",
            "to_json(plan)::text = 'x'",
            "to_jsonb(n) IS NOT NULL",
            // volatile
            "nextval('public.s') > 0",
            "random() < 0.5",
            // user code
            "public.is_free(plan)",
            "plan OPERATOR(public.===) 'x'",
            "plan::public.checked_t IS NOT NULL",
            // types whose operations could run user code, whole rows
            "comp IS NOT NULL",
            "(comp).a = 1",
            "ur IS NOT NULL",
            "t IS NOT NULL",
            "ctid = '(0,1)'",
            // node kinds outside the list
            "xmlelement(name x, plan) IS NOT NULL",
            "id = (SELECT 1)",
        ] {
            let p = policy_filter(bad);
            let h = hold_filter(bad);
            for (what, got) in [("policy", p), ("hold", h)] {
                match got {
                    Some((state, msg)) => {
                        assert_eq!(state, "22023", "{what} filter {bad}: {msg}");
                        assert!(msg.starts_with("invalid "), "{bad}: {msg}");
                    }
                    None => panic!("{what} filter accepted: {bad}"),
                }
            }
        }
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.retention_policies"),
            Some(0)
        );
        let (_, msg) =
            policy_filter("table_to_xml('public.v'::regclass, true, false, '') IS NOT NULL")
                .unwrap();
        assert!(msg.contains("table_to_xml"), "{msg}");
        let (_, msg) = policy_filter("public.is_free(plan)").unwrap();
        assert!(msg.contains("not built in"), "{msg}");
        let (_, msg) = policy_filter("comp IS NOT NULL").unwrap();
        assert!(msg.contains("public.pair"), "{msg}");
    }

    #[pg_test]
    fn security_allow_list_functions_one_by_one() {
        use crate::retention::filters::{function_refusal, is_time_comparison, type_allowed};
        let oid =
            |sig: &str| one::<pg_sys::Oid>(&format!("SELECT '{sig}'::regprocedure::oid")).unwrap();
        for ok in [
            "texteq(text, text)",
            "now()",
            "timestamptz_mi_interval(timestamptz, interval)",
            "date_lt_timestamptz(date, timestamptz)",
            "timestamptz_in(cstring, oid, integer)",
            "to_char(timestamptz, text)",
        ] {
            assert_eq!(function_refusal(oid(ok)), None, "{ok}");
        }
        for bad in [
            "table_to_xml(regclass, boolean, boolean, text)",
            "query_to_xml(text, boolean, boolean, text)",
            "cursor_to_xml(refcursor, integer, boolean, boolean, text)",
            "database_to_xml(boolean, boolean, text)",
            "current_setting(text)",
            "pg_read_file(text)",
            "regclassin(cstring)",
            "format(text, \"any\")",
            "to_json(anyelement)",
            "to_char(numeric, text)",
            "set_config(text, text, boolean)",
        ] {
            assert!(function_refusal(oid(bad)).is_some(), "{bad}");
        }
        assert!(is_time_comparison("timestamptz_ge_date"));
        assert!(!is_time_comparison("timestamptz_ge_timestamptz"));
        assert!(type_allowed(pg_sys::TEXTOID));
        run("CREATE TYPE public.pair2 AS (a int)");
        let t = one::<pg_sys::Oid>("SELECT 'public.pair2'::regtype::oid").unwrap();
        assert!(!type_allowed(t));
        let ta = one::<pg_sys::Oid>("SELECT 'public.pair2[]'::regtype::oid").unwrap();
        assert!(!type_allowed(ta));
    }

    #[pg_test]
    fn security_hold_filter_means_the_same_with_standard_conforming_strings_off() {
        run("CREATE SCHEMA s");
        run("CREATE TABLE s.pwned (at timestamptz DEFAULT now())");
        run("CREATE FUNCTION s.pwn() RETURNS int LANGUAGE sql AS $$ INSERT INTO s.pwned DEFAULT VALUES RETURNING 1 $$");
        run("CREATE TABLE public.people (id int PRIMARY KEY, name text, gone date)");
        run(r"INSERT INTO public.people VALUES (1, 'a\', '2000-01-01'), (2, 'b', '2000-01-01')");
        run("SELECT privacy.mark_subject('public.people', 'id')");
        run("SET LOCAL standard_conforming_strings = off");
        // as written with it on: name = 'a\' AND name <> ' OR s.pwn() IS NULL --'
        run(
            r"SELECT privacy.place_hold('public.people', E'name = ''a\\'' AND name <> '' OR s.pwn() IS NULL --''', 'case')",
        );
        run("SELECT privacy.add_retention_policy('public.people', '1 day', 'gone', name => 'people')");
        assert_eq!(
            one::<i64>(
                "SELECT held FROM privacy.run_retention('people', '2026-01-01', dry_run => true)"
            ),
            Some(1)
        );
        run("SELECT count(*) FROM privacy.forget_subject('1', dry_run => true)");
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('people', '2026-01-01')"),
            Some(1)
        );
        // the function was never called, the held row is there
        assert_eq!(one::<i64>("SELECT count(*) FROM s.pwned"), Some(0));
        assert_eq!(
            one::<String>("SELECT string_agg(name, ',') FROM public.people").as_deref(),
            Some(r"a\")
        );
        // and the setting is the caller's again
        assert_eq!(
            one::<String>("SHOW standard_conforming_strings").as_deref(),
            Some("off")
        );
        run("SET LOCAL standard_conforming_strings = on");
    }

    #[pg_test]
    fn security_scope_rolls_back_every_setting_and_the_identity() {
        run("CREATE ROLE sec_scope_owner");
        let owner = one::<pg_sys::Oid>("SELECT 'sec_scope_owner'::regrole::oid").unwrap();
        run("SET LOCAL search_path = public");
        run("SET LOCAL lock_timeout = '7s'");
        let inside = Scope::as_role(owner)
            .restricted()
            .setting(c"lock_timeout", "123ms")
            .run(|| {
                // what a trigger could try: a session-level setting, SET ROLE
                Spi::run("SELECT set_config('search_path', 'evil, pg_catalog', false)").unwrap();
                Spi::run("SELECT set_config('work_mem', '77MB', false)").unwrap();
                let who = Spi::get_one::<String>("SELECT current_user::text").unwrap();
                let timeout =
                    Spi::get_one::<String>("SELECT current_setting('lock_timeout')").unwrap();
                (who, timeout)
            });
        assert_eq!(inside.0.as_deref(), Some("sec_scope_owner"));
        assert_eq!(inside.1.as_deref(), Some("123ms"));
        assert_eq!(one::<String>("SHOW search_path").as_deref(), Some("public"));
        assert_eq!(one::<String>("SHOW lock_timeout").as_deref(), Some("7s"));
        assert_ne!(one::<String>("SHOW work_mem").as_deref(), Some("77MB"));
        assert_eq!(
            one::<String>("SELECT current_user::text").as_deref(),
            Some("postgres")
        );
        // pinned settings inside
        let pinned = Scope::pinned().run(|| {
            Spi::get_one::<String>(
                "SELECT current_setting('search_path') || '|' || current_setting('standard_conforming_strings')",
            )
            .unwrap()
        });
        assert_eq!(pinned.as_deref(), Some("pg_catalog, pg_temp|on"));
        // a restricted scope refuses SET ROLE
        let refused = crate::sql::subxact::run(|| {
            Scope::as_role(owner)
                .restricted()
                .run(|| Ok(Spi::run("SET ROLE postgres")?))
        });
        assert!(refused.is_err());
        // an ERROR inside is rolled back with everything it set
        let failed = crate::sql::subxact::run(|| {
            Scope::pinned().run(|| {
                Spi::run("SELECT set_config('work_mem', '55MB', false)")?;
                Spi::run("SELECT 1/0")?;
                Ok(())
            })
        });
        assert!(failed.is_err());
        assert_ne!(one::<String>("SHOW work_mem").as_deref(), Some("55MB"));
        assert_eq!(one::<String>("SHOW search_path").as_deref(), Some("public"));
    }

    #[pg_test]
    fn security_temporary_tables_take_no_label() {
        run("SELECT privacy.define_purpose('service', NULL, 'contract')");
        run("CREATE TEMP TABLE tmp_people (id int, email text)");
        assert_sqlstate(
            "SECURITY LABEL FOR privacy ON COLUMN tmp_people.id IS 'SUBJECT'",
            "22023",
        );
        assert_sqlstate("SELECT privacy.mark_subject('tmp_people', 'id')", "22023");
        let (_, msg) =
            error_of("SELECT privacy.tag_column('tmp_people', 'email', ARRAY['service'])").unwrap();
        assert!(msg.contains("temporary"), "{msg}");
        // removing a label (none) is harmless
        run("SECURITY LABEL FOR privacy ON COLUMN tmp_people.id IS NULL");
    }

    #[pg_test]
    fn security_keyed_hash_needs_the_table_owners_grant() {
        run("SELECT privacy.define_purpose('billing', NULL, 'legal_obligation')");
        run("SELECT privacy.define_purpose('service', NULL, 'contract')");
        run("LOCK TABLE privacy.key_secrets IN SHARE ROW EXCLUSIVE MODE");
        run("SELECT privacy.create_key()");
        run("CREATE ROLE sec_oracle_owner");
        run("GRANT USAGE ON SCHEMA privacy TO sec_oracle_owner");
        run("CREATE TABLE public.ledger (id int PRIMARY KEY, who bigint, amount numeric, memo text NOT NULL)");
        run("ALTER TABLE public.ledger OWNER TO sec_oracle_owner");
        run("INSERT INTO public.ledger VALUES (1, 1, 10, 'chosen value')");
        // at label time: the table's owner may not execute the hash
        run("SET LOCAL ROLE sec_oracle_owner");
        let (state, msg) = error_of(
            "SECURITY LABEL FOR privacy ON COLUMN public.ledger.memo IS 'PURPOSE service ANONYMIZE PSEUDONYMIZE'",
        )
        .unwrap();
        assert_eq!(state, "42501", "{msg}");
        assert!(msg.contains("owner of table"), "{msg}");
        run("RESET ROLE");
        // a superuser labelling the owner's table is refused the same way
        assert_sqlstate(
            "SECURITY LABEL FOR privacy ON COLUMN public.ledger.memo IS 'PURPOSE service ANONYMIZE PSEUDONYMIZE'",
            "42501",
        );
        // the default PSEUDONYMIZE of a NOT NULL column: checked when applied
        run("SELECT privacy.mark_subject('public.ledger', 'who')");
        run("SELECT privacy.tag_column('public.ledger', 'amount', ARRAY['billing'])");
        run("SELECT privacy.tag_column('public.ledger', 'memo', ARRAY['service'])");
        let (state, msg) = error_of("SELECT * FROM privacy.forget_subject('1')").unwrap();
        assert_eq!(state, "42501", "{msg}");
        assert!(msg.contains("sec_oracle_owner"), "{msg}");
        assert_eq!(
            one::<String>("SELECT memo FROM public.ledger").as_deref(),
            Some("chosen value")
        );
        // a subject without rows there is not held up by that table
        run("INSERT INTO public.ledger VALUES (2, 2, 20, 'other')");
        run("SELECT * FROM privacy.forget_subject('3')");
        assert_eq!(one::<i64>("SELECT count(*) FROM public.ledger"), Some(2));
        // granted: the erasure pseudonymizes
        run("GRANT EXECUTE ON FUNCTION privacy.pseudonymize(text, text) TO sec_oracle_owner");
        run("SELECT * FROM privacy.forget_subject('1')");
        assert_eq!(
            one::<bool>(
                "SELECT memo = privacy.pseudonymize('chosen value') FROM public.ledger WHERE id = 1"
            ),
            Some(true)
        );
    }

    #[pg_test]
    fn security_retention_refuses_a_policy_owner_filtered_by_row_security() {
        run("CREATE ROLE sec_rls_owner");
        run("CREATE ROLE sec_rls_tenant");
        run("GRANT USAGE ON SCHEMA privacy TO sec_rls_tenant, sec_rls_owner");
        run("CREATE TABLE public.notes (id int PRIMARY KEY, tenant text, at date)");
        run("INSERT INTO public.notes VALUES (1, 'a', '2000-01-01'), (2, 'b', '2000-01-01'), (3, 'b', '2000-01-01')");
        run("ALTER TABLE public.notes OWNER TO sec_rls_owner");
        run("GRANT SELECT, DELETE ON public.notes TO sec_rls_tenant");
        // the tenant creates its policy before row-level security is on
        run("SET LOCAL ROLE sec_rls_tenant");
        run("SELECT privacy.add_retention_policy('public.notes', '1 day', 'at', name => 'tenant_p')");
        run("RESET ROLE");
        run("ALTER TABLE public.notes ENABLE ROW LEVEL SECURITY");
        run("CREATE POLICY own ON public.notes TO sec_rls_tenant USING (tenant = 'a')");
        // control: by hand the tenant deletes only what it sees
        run("SET LOCAL ROLE sec_rls_tenant");
        let deleted = one::<i64>(
            "WITH d AS (DELETE FROM public.notes WHERE id >= 2 RETURNING 1) SELECT count(*) FROM d",
        );
        assert_eq!(deleted, Some(0));
        // the run (as the table's owner, who bypasses the policy) is
        // refused: failed, recorded, nothing deleted
        assert_eq!(
            one::<bool>("SELECT rows IS NULL FROM privacy.run_retention('tenant_p', '2026-01-01')"),
            Some(true)
        );
        // and so is a new policy
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('public.notes', '2 days', 'at', name => 'tenant_q')",
            "42501",
        );
        run("RESET ROLE");
        assert_eq!(one::<i64>("SELECT count(*) FROM public.notes"), Some(3));
        let recorded = one::<String>(
            "SELECT status || ': ' || error FROM privacy.retention_runs WHERE policy = 'tenant_p' ORDER BY run_id DESC LIMIT 1",
        )
        .unwrap_or_default();
        assert!(
            recorded.starts_with("failed: ")
                && recorded.contains("row-level security")
                && recorded.contains("42501"),
            "{recorded}"
        );
        // the table's owner is not filtered: its policy runs
        run("SET LOCAL ROLE sec_rls_owner");
        run(
            "SELECT privacy.add_retention_policy('public.notes', '1 day', 'at', name => 'owner_p')",
        );
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('owner_p', '2026-01-01')"),
            Some(3)
        );
        run("RESET ROLE");
    }
}
