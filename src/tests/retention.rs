//! Retention policies, filters, legal holds, anonymization and the batch
//! engine.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::{assert_sqlstate, error_of, fresh, one, run};
    use pgrx::prelude::*;

    const KEY: &str =
        "'\\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea";

    fn accounts() {
        run(
            "CREATE TABLE public.accounts (id bigint PRIMARY KEY, email text NOT NULL, name text,
                 plan text NOT NULL DEFAULT 'free', unsubscribed_at timestamptz)",
        );
        run("CREATE INDEX ON public.accounts (unsubscribed_at)");
        run(
            "INSERT INTO public.accounts (id, email, name, plan, unsubscribed_at) VALUES
               (1, 'a@example.com', 'A', 'free', '2026-01-01 00:00+00'),
               (2, 'b@example.com', 'B', 'free', '2026-01-31 00:00+00'),
               (3, 'c@example.com', 'C', 'free', NULL),
               (4, 'd@example.com', 'D', 'enterprise', '2026-01-01 00:00+00')",
        );
    }

    /// Tests run concurrently; key creation (explicit, or the audit key a
    /// subject hold creates) takes locks on the key table in different
    /// orders. Taking the key administration lock first avoids deadlocks
    /// between concurrently running tests.
    fn serialize_key_changes() {
        run("LOCK TABLE privacy.key_secrets IN SHARE ROW EXCLUSIVE MODE");
    }

    fn runs(policy: &str) -> i64 {
        one::<i64>(&format!(
            "SELECT count(*) FROM privacy.retention_runs WHERE policy = '{policy}'"
        ))
        .unwrap()
    }

    fn rows_of(sql: &str) -> (Option<i64>, Option<i64>) {
        Spi::get_two::<i64, i64>(sql).unwrap()
    }

    #[pg_test]
    fn retention_every_error_code() {
        accounts();
        run("CREATE TABLE public.t (id int PRIMARY KEY, created date, label text, n int NOT NULL DEFAULT 0)");
        run("CREATE VIEW public.v AS SELECT * FROM public.t");
        run("SELECT privacy.define_purpose('service', NULL, 'contract')");
        // unknown table / column, wrong anchor type
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('public.nosuch', '1 day', 'created')",
            "42P01",
        );
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('t', '1 day', 'nosuch')",
            "42703",
        );
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('t', '1 day', 'label')",
            "42804",
        );
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('t', '1 day', 'n')",
            "42804",
        );
        // invalid values
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('t', '1 day', 'created', 'purge')",
            "22023",
        );
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('t', '-1 day', 'created')",
            "22023",
        );
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('t', '1 month -1 day', 'created')",
            "22023",
        );
        assert_sqlstate("SELECT privacy.add_retention_policy('t', '1 day', 'created', schedule_interval => '0')", "22023");
        assert_sqlstate("SELECT privacy.add_retention_policy('t', '1 day', 'created', 'anonymize', purpose => 'nosuch')", "22023");
        assert_sqlstate("SELECT privacy.add_retention_policy('t', '1 day', 'created', 'delete', purpose => 'service')", "22023");
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('t', '1 day', 'created', 'anonymize')",
            "22023",
        );
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('t', '1 day', 'created', row_filter => 'label')",
            "22023",
        );
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('v', '1 day', 'created')",
            "22023",
        );
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('t', '1 day', 'created', name => '')",
            "22023",
        );
        // NOT NULL column without a method and no default method: refused at creation
        run("CREATE TABLE public.money (id int PRIMARY KEY, at date, amount numeric NOT NULL)");
        run("SELECT privacy.tag_column('money', 'amount', ARRAY['service'])");
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('money', '1 day', 'at', 'anonymize')",
            "22023",
        );
        // NULLs
        assert_sqlstate(
            "SELECT privacy.add_retention_policy(NULL, '1 day', 'created')",
            "22004",
        );
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('t', NULL, 'created')",
            "22004",
        );
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('t', '1 day', NULL)",
            "22004",
        );
        assert_sqlstate("SELECT privacy.run_retention(NULL, NULL)", "22004");
        assert_sqlstate("SELECT privacy.place_hold('t', NULL, 'x')", "22004");
        // duplicates and unknown policies
        run("SELECT privacy.add_retention_policy('t', '1 day', 'created', name => 'p')");
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('t', '1 day', 'created', name => 'p')",
            "42710",
        );
        assert_sqlstate(
            "SELECT privacy.alter_retention_policy('nosuch', enabled => false)",
            "42704",
        );
        assert_sqlstate("SELECT privacy.drop_retention_policy('nosuch')", "42704");
        assert_sqlstate("SELECT privacy.run_retention('nosuch')", "42704");
        assert_sqlstate("SELECT privacy.release_hold(987654)", "42704");
        // a purpose named by a policy cannot be dropped
        run("SELECT privacy.tag_column('t', 'label', ARRAY['service'])");
        run("SELECT privacy.add_retention_policy('t', '1 day', 'created', 'anonymize', purpose => 'service', name => 'anon')");
        run("SELECT privacy.untag_column('t', 'label')");
        run("SELECT privacy.untag_column('money', 'amount')");
        assert_sqlstate("SELECT privacy.drop_purpose('service')", "2BP01");
        let (_, msg) = error_of("SELECT privacy.drop_purpose('service')").unwrap();
        assert!(msg.contains("retention policies use it"), "{msg}");
        run("SELECT privacy.drop_retention_policy('anon')");
        run("SELECT privacy.drop_purpose('service')");
        // release twice
        let id = one::<i64>("SELECT privacy.place_hold('t', 'id = 1', 'case 1')").unwrap();
        run(&format!("SELECT privacy.release_hold({id})"));
        assert_sqlstate(&format!("SELECT privacy.release_hold({id})"), "55000");
        assert_sqlstate(
            "SELECT privacy.place_hold('t', 'id = 1', 'x', now() - interval '1 day')",
            "22023",
        );
    }

    #[pg_test]
    fn retention_messages_are_postgres_style() {
        run("CREATE TABLE public.t (id int PRIMARY KEY, created date, label text)");
        let (state, msg) =
            error_of("SELECT privacy.add_retention_policy('t', '1 day', 'label')").unwrap();
        assert_eq!(state, "42804");
        assert_eq!(msg, "anchor column \"label\" of table t has type text");
        let (_, msg) = error_of(
            "SELECT privacy.add_retention_policy('t', '1 day', 'created', row_filter => 'id IN (SELECT 1)')",
        )
        .unwrap();
        assert_eq!(msg, "invalid row_filter: subqueries are not allowed");
    }

    #[pg_test]
    fn retention_row_filter_injection_corpus() {
        run("CREATE TABLE public.t (id int PRIMARY KEY, created date, plan text, n int)");
        run("CREATE TABLE public.other (id int)");
        run(
            "INSERT INTO public.t VALUES (1, '2000-01-01', 'free', 1), (2, '2000-01-01', 'pro', 2)",
        );
        for bad in [
            "true; DROP TABLE t",
            "true); DROP TABLE t; --",
            "true) OR (true",
            "(true",
            "true)",
            "true /* unterminated",
            "id = 1 UNION SELECT 1",
            "id = 1 ORDER BY 1",
            "id = 1 LIMIT 1",
            "1",
            "plan",
            "NULL::int",
            "id IN (SELECT id FROM other)",
            "EXISTS (SELECT 1)",
            "id = (SELECT max(id) FROM t)",
            "id = ANY (ARRAY(SELECT 1))",
            "pg_sleep(10) IS NULL",
            "random() < 0.5",
            "nextval('x') > 0",
            "generate_series(1, 2) = id",
            "unnest(ARRAY[1, 2]) = id",
            "count(*) > 0",
            "row_number() OVER () = 1",
            "other.id = 1",
            "id = $1",
            "true AS x",
            "true, false",
            "DISTINCT true",
            "true FROM other",
            "true WHERE false",
            "",
            "   ",
            "nosuch_column = 1",
            "public.nosuch_fn(id)",
            "* ",
        ] {
            assert_sqlstate(
                &format!(
                    "SELECT privacy.add_retention_policy('t', '1 day', 'created', row_filter => {})",
                    spi::quote_literal(bad)
                ),
                "22023",
            );
            assert_sqlstate(
                &format!(
                    "SELECT privacy.place_hold('t', {}, 'case')",
                    spi::quote_literal(bad)
                ),
                "22023",
            );
        }
        // a filter that would mean one thing with standard_conforming_strings
        // off and another with it on (closing the parenthesis around it) is
        // read with it on, always: refused
        run("SET LOCAL standard_conforming_strings = off");
        assert_sqlstate(
            r"SELECT privacy.add_retention_policy('t', '1 day', 'created', row_filter => E'plan = ''\\'') OR (true --''')",
            "22023",
        );
        run("SET LOCAL standard_conforming_strings = on");
        assert_eq!(one::<i64>("SELECT count(*) FROM public.t"), Some(2));
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.retention_policies"),
            Some(0)
        );
        // good filters, including a comment at the end (spliced between newlines)
        for good in [
            "plan = 'free'",
            "plan = 'free' -- only free accounts",
            "true --",
            "(plan IN ('free', 'pro')) AND n > 0",
            "lower(plan) LIKE 'f%'",
            "coalesce(n, 0) < 10 /* small */",
            "t.n IS NOT NULL",
        ] {
            run(&format!(
                "SELECT privacy.add_retention_policy('t', '1 day', 'created', row_filter => {})",
                spi::quote_literal(good)
            ));
        }
        // the comment did not swallow anything: only free accounts go
        assert_eq!(
            one::<i64>(
                "SELECT rows FROM privacy.run_retention('t_delete_2', '2026-01-01', dry_run => true)"
            ),
            Some(1)
        );
        // user functions are refused in a policy's filter as in a hold's: a
        // filter runs as the table's owner, whoever wrote it
        run("CREATE FUNCTION public.is_free(text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT $1 = 'free' $$");
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('t', '1 day', 'created', row_filter => 'public.is_free(plan)')",
            "22023",
        );
        assert_sqlstate(
            "SELECT privacy.place_hold('t', 'public.is_free(plan)', 'case')",
            "22023",
        );
        // unqualified user functions do not resolve: filters run with search_path = pg_catalog
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('t', '1 day', 'created', row_filter => 'is_free(plan)')",
            "22023",
        );
    }

    #[pg_test]
    fn retention_expiry_edges_and_anchor_types() {
        run("CREATE TABLE public.e (id int PRIMARY KEY, d date, ts timestamp, tz timestamptz)");
        run("INSERT INTO public.e VALUES
               (1, '2026-01-31', '2026-01-31 00:00', '2026-01-31 00:00+00'),
               (2, '2026-02-01', '2026-02-01 00:00', '2026-02-01 00:00+00'),
               (3, NULL, NULL, NULL),
               (4, '2025-12-31', '2025-12-31 23:59:59.999999', '2025-12-31 23:59:59.999999+00')");
        run("SET LOCAL TimeZone = 'UTC'");
        for col in ["d", "ts", "tz"] {
            run(&format!(
                "SELECT privacy.add_retention_policy('e', '1 month', '{col}', name => 'p_{col}')"
            ));
        }
        // Jan 31 + 1 month = Feb 28: expired at Feb 28 00:00 exactly, not a microsecond before
        for col in ["d", "ts", "tz"] {
            let at = |t: &str| {
                one::<i64>(&format!(
                    "SELECT rows FROM privacy.run_retention('p_{col}', '{t}', dry_run => true)"
                ))
                .unwrap()
            };
            assert_eq!(at("2026-02-27 23:59:59.999999+00"), 1, "{col}"); // only row 4
            assert_eq!(at("2026-02-28 00:00:00+00"), 2, "{col}"); // rows 1 and 4
            assert_eq!(at("2026-03-01 00:00:00+00"), 3, "{col}"); // Feb 1 + 1 month
            assert_eq!(at("2030-01-01 00:00:00+00"), 3, "{col}"); // NULL never expires
        }
        // the same with an index on each anchor (sargable bound, index scan)
        run("CREATE INDEX ON public.e (d)");
        run("CREATE INDEX ON public.e (ts)");
        run("CREATE INDEX ON public.e (tz)");
        for col in ["d", "ts", "tz"] {
            let at = |t: &str| {
                one::<i64>(&format!(
                    "SELECT rows FROM privacy.run_retention('p_{col}', '{t}', dry_run => true)"
                ))
                .unwrap()
            };
            assert_eq!(at("2026-02-27 23:59:59.999999+00"), 1, "{col} indexed");
            assert_eq!(at("2026-02-28 00:00:00+00"), 2, "{col} indexed");
            assert_eq!(at("2026-03-01 00:00:00+00"), 3, "{col} indexed");
        }
        run("SELECT privacy.run_retention('p_tz', '2026-02-28 00:00:00+00')");
        assert_eq!(
            one::<String>("SELECT string_agg(id::text, ',' ORDER BY id) FROM public.e").as_deref(),
            Some("2,3")
        );
    }

    /// The cheap bounds (`anchor <= c` without months; with months a
    /// superset `c + 4 days` and a sure region before `c - 31 days` where the
    /// exact test is skipped) select exactly the rows the definition does,
    /// for every anchor type, in both scan modes, in a session TimeZone
    /// other than UTC.
    #[pg_test]
    fn retention_bounds_match_the_definition() {
        run("SET LOCAL TimeZone = 'America/New_York'");
        run("SET LOCAL privacy.batch_size = 40");
        let keeps = [
            "1 month",
            "1 mon 3 days",
            "7 mons 2 days",
            "1 year",
            "25 months",
            "10 days 06:00",
            "2 mons 45 days 23:59:59",
        ];
        let as_ofs = [
            "2026-03-31 00:00+00",
            "2024-03-01 13:30+00",
            "2025-01-31 23:00+00",
        ];
        for (i, keep) in keeps.iter().enumerate() {
            for (j, as_of) in as_ofs.iter().enumerate() {
                for indexed in [false, true] {
                    let t = format!("public.b_{i}_{j}_{indexed}");
                    run(&format!("CREATE TABLE {t} (id serial PRIMARY KEY, tz timestamptz, ts timestamp, d date)"));
                    // anchors every 5h13m from c - 40 days to c + 12 days, plus
                    // rows far in the future (so the indexed run pages by keyset)
                    run(&format!(
                        "INSERT INTO {t} (tz, ts, d)
                         SELECT a, pg_catalog.timezone('UTC', a), pg_catalog.timezone('UTC', a)::date
                           FROM pg_catalog.generate_series(
                                  pg_catalog.timezone('UTC', pg_catalog.timezone('UTC', timestamptz '{as_of}') - interval '{keep}') - interval '40 days',
                                  pg_catalog.timezone('UTC', pg_catalog.timezone('UTC', timestamptz '{as_of}') - interval '{keep}') + interval '12 days',
                                  interval '5 hours 13 minutes') a
                         UNION ALL
                         SELECT a, pg_catalog.timezone('UTC', a), pg_catalog.timezone('UTC', a)::date
                           FROM pg_catalog.generate_series(timestamptz '2090-01-01', timestamptz '2090-01-01' + interval '999 hours', interval '1 hour') a"
                    ));
                    if indexed {
                        run(&format!("CREATE INDEX ON {t} (tz)"));
                        run(&format!("CREATE INDEX ON {t} (ts)"));
                        run(&format!("CREATE INDEX ON {t} (d)"));
                    }
                    run(&format!("ANALYZE {t}"));
                    for (col, utc) in [
                        ("tz", "pg_catalog.timezone('UTC', tz)"),
                        ("ts", "ts"),
                        ("d", "d::timestamp"),
                    ] {
                        let name = format!("b_{i}_{j}_{indexed}_{col}");
                        run(&format!(
                            "SELECT privacy.add_retention_policy('{t}', '{keep}', '{col}', name => '{name}')"
                        ));
                        let expected = one::<i64>(&format!(
                            "SELECT count(*) FROM {t} WHERE {utc} + interval '{keep}' <= pg_catalog.timezone('UTC', timestamptz '{as_of}')"
                        ))
                        .unwrap();
                        assert!(expected > 0, "{name}: the data reaches the boundary");
                        let found = one::<i64>(&format!(
                            "SELECT rows FROM privacy.run_retention('{name}', '{as_of}', dry_run => true)"
                        ))
                        .unwrap();
                        assert_eq!(found, expected, "{name} ({keep}, {as_of})");
                        run(&format!("SELECT privacy.drop_retention_policy('{name}')"));
                    }
                    // a real run deletes exactly those rows
                    run(&format!(
                        "SELECT privacy.add_retention_policy('{t}', '{keep}', 'tz', name => 'b_{i}_{j}_{indexed}')"
                    ));
                    let before = one::<i64>(&format!("SELECT count(*) FROM {t}")).unwrap();
                    let expired = one::<i64>(&format!(
                        "SELECT count(*) FROM {t} WHERE pg_catalog.timezone('UTC', tz) + interval '{keep}' <= pg_catalog.timezone('UTC', timestamptz '{as_of}')"
                    ))
                    .unwrap();
                    let deleted = one::<i64>(&format!(
                        "SELECT rows FROM privacy.run_retention('b_{i}_{j}_{indexed}', '{as_of}')"
                    ))
                    .unwrap();
                    assert_eq!(deleted, expired, "b_{i}_{j}_{indexed}");
                    assert_eq!(
                        one::<i64>(&format!("SELECT count(*) FROM {t}")).unwrap(),
                        before - expired
                    );
                    run(&format!(
                        "SELECT privacy.drop_retention_policy('b_{i}_{j}_{indexed}')"
                    ));
                }
            }
        }
    }

    #[pg_test]
    fn retention_is_timezone_independent_across_dst() {
        // 2026-03-08 02:00 America/New_York: clocks jump forward (a 23-hour day)
        run("CREATE TABLE public.z (id int PRIMARY KEY, tz timestamptz, ts timestamp, d date)");
        run("INSERT INTO public.z VALUES (1, '2026-03-08 06:30+00', '2026-03-08 06:30', '2026-03-08')");
        run("SELECT privacy.add_retention_policy('z', '1 day', 'tz', name => 'z_tz')");
        run("SELECT privacy.add_retention_policy('z', '1 day', 'ts', name => 'z_ts')");
        run("SELECT privacy.add_retention_policy('z', '1 day', 'd', name => 'z_d')");
        for tz in [
            "UTC",
            "America/New_York",
            "Pacific/Auckland",
            "Asia/Kolkata",
        ] {
            run(&format!("SET LOCAL TimeZone = '{tz}'"));
            let at = |p: &str, t: &str| {
                one::<i64>(&format!(
                    "SELECT rows FROM privacy.run_retention('{p}', '{t}', dry_run => true)"
                ))
                .unwrap()
            };
            // 23.5 hours later: a local "1 day" in New York would already have passed
            assert_eq!(at("z_tz", "2026-03-09 06:00+00"), 0, "{tz}");
            assert_eq!(at("z_tz", "2026-03-09 06:30+00"), 1, "{tz}");
            // a timestamp anchor is UTC
            assert_eq!(at("z_ts", "2026-03-09 06:29:59+00"), 0, "{tz}");
            assert_eq!(at("z_ts", "2026-03-09 06:30+00"), 1, "{tz}");
            // a date anchor is midnight UTC
            assert_eq!(at("z_d", "2026-03-08 23:59:59+00"), 0, "{tz}");
            assert_eq!(at("z_d", "2026-03-09 00:00+00"), 1, "{tz}");
        }
    }

    #[pg_test]
    fn retention_delete_with_filters_holds_and_history() {
        accounts();
        run("SELECT privacy.add_retention_policy('accounts', '30 days', 'unsubscribed_at', row_filter => $$plan = 'free'$$, name => 'free')");
        run("SELECT privacy.add_retention_policy('accounts', '60 days', 'unsubscribed_at', row_filter => $$plan = 'enterprise'$$, name => 'ent')");
        // as_of decides: on Feb 15 only account 1 (free, Jan 1) is expired
        let (r, h) = rows_of(
            "SELECT rows, held FROM privacy.run_retention('free', '2026-02-15', dry_run => true)",
        );
        assert_eq!((r, h), (Some(1), Some(0)));
        run("SELECT privacy.place_hold('accounts', 'id = 1', 'case 42')");
        let (r, h) = rows_of("SELECT rows, held FROM privacy.run_retention('free', '2026-06-01')");
        assert_eq!((r, h), (Some(1), Some(1)));
        assert_eq!(
            one::<String>("SELECT string_agg(id::text, ',' ORDER BY id) FROM public.accounts")
                .as_deref(),
            Some("1,3,4")
        );
        let (r, _) = rows_of("SELECT rows, held FROM privacy.run_retention('ent', '2026-06-01')");
        assert_eq!(r, Some(1));
        assert_eq!(runs("free"), 2);
        assert_eq!(
            one::<String>("SELECT string_agg(status, ',' ORDER BY run_id) FROM privacy.retention_runs WHERE policy = 'free'").as_deref(),
            Some("dry_run,succeeded")
        );
        assert_eq!(
            one::<String>("SELECT last_status FROM privacy.retention_policies WHERE name = 'free'")
                .as_deref(),
            Some("succeeded")
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.audit_log WHERE action = 'run_retention' AND object = 'free'"),
            Some(2)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.audit_log WHERE action IN ('add_retention_policy', 'place_hold')"),
            Some(3)
        );
        // alter: disable, change the filter, clear it
        run("SELECT privacy.alter_retention_policy('free', enabled => false)");
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM privacy.run_retention(NULL, '2030-01-01', dry_run => true)"
            ),
            Some(1)
        );
        run("SELECT privacy.alter_retention_policy('free', keep_for => '1 year', row_filter => '', enabled => true)");
        assert_eq!(
            one::<String>("SELECT row_filter FROM privacy.retention_policies WHERE name = 'free'"),
            None
        );
        run("SELECT privacy.alter_retention_policy('free', row_filter => 'id > 1')");
        assert_sqlstate(
            "SELECT privacy.alter_retention_policy('free', row_filter => 'id > (SELECT 1)')",
            "22023",
        );
        assert_sqlstate(
            "SELECT privacy.alter_retention_policy('free', keep_for => '-1 day')",
            "22023",
        );
        run("SELECT privacy.drop_retention_policy('free')");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.retention_policies"),
            Some(1)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.audit_log WHERE action IN ('alter_retention_policy', 'drop_retention_policy')"),
            Some(4)
        );
    }

    #[pg_test]
    fn retention_holds_by_subject_and_expiry() {
        serialize_key_changes();
        accounts();
        run("CREATE TABLE public.visits (id bigserial PRIMARY KEY, account_id bigint, at timestamptz NOT NULL)");
        run("INSERT INTO public.visits (account_id, at) VALUES (1, '2026-01-01+00'), (2, '2026-01-02+00'), (2, '2026-01-03+00'), (NULL, '2026-01-04+00')");
        run("SELECT privacy.mark_subject('visits', 'account_id')");
        run("SELECT privacy.add_retention_policy('visits', '30 days', 'at', name => 'visits')");
        let id =
            one::<i64>("SELECT privacy.place_subject_hold('2', 'subject access request')").unwrap();
        // the audit log never holds the subject in clear
        let details = one::<pgrx::JsonB>(&format!(
            "SELECT details FROM privacy.audit_log WHERE action = 'place_subject_hold' AND object = '{id}'"
        ))
        .unwrap()
        .0;
        assert!(!details.to_string().contains("\"2\""), "{details}");
        assert_eq!(
            details["subject_pseudonym"].as_str().map(|s| s.len()),
            Some(64)
        );
        let (r, h) = rows_of(
            "SELECT rows, held FROM privacy.run_retention('visits', '2026-06-01', dry_run => true)",
        );
        assert_eq!((r, h), (Some(2), Some(2)));
        // a hold with an end protects until then, not after
        run(&format!("SELECT privacy.release_hold({id})"));
        run(
            "SELECT privacy.place_subject_hold('2', 'until the audit', now() + interval '10 days')",
        );
        let until = one::<String>("SELECT (now() + interval '5 days')::text").unwrap();
        let (r, h) = rows_of(&format!(
            "SELECT rows, held FROM privacy.run_retention('visits', '{until}', dry_run => true)"
        ));
        assert_eq!((r, h), (Some(2), Some(2)));
        let later = one::<String>("SELECT (now() + interval '11 days')::text").unwrap();
        let (r, h) = rows_of(&format!(
            "SELECT rows, held FROM privacy.run_retention('visits', '{later}', dry_run => true)"
        ));
        assert_eq!((r, h), (Some(4), Some(0)));
        // filter holds and subject holds together, for real (now: a real
        // run never looks ahead)
        run("SELECT privacy.place_hold('visits', 'account_id IS NULL', 'bot investigation')");
        let (r, h) = rows_of("SELECT rows, held FROM privacy.run_retention('visits')");
        assert_eq!((r, h), (Some(1), Some(3)));
        assert_eq!(
            one::<String>("SELECT string_agg(coalesce(account_id::text, 'null'), ',' ORDER BY id) FROM public.visits").as_deref(),
            Some("2,2,null")
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.holds WHERE active"),
            Some(2)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.holds WHERE NOT active"),
            Some(1)
        );
    }

    #[pg_test]
    fn retention_held_predicate_interface() {
        serialize_key_changes();
        accounts();
        run("SELECT privacy.mark_subject('accounts', 'id')");
        let relid = one::<pg_sys::Oid>("SELECT 'public.accounts'::regclass::oid").unwrap();
        let now = one::<pgrx::datum::TimestampWithTimeZone>("SELECT now()").unwrap();
        let holds = || {
            fresh(|| {
                let active = crate::retention::holds::ActiveHolds::load(now)?;
                let col = crate::labels::tags::table_tags(relid)?
                    .into_iter()
                    .find(|t| t.label.subject);
                active.for_table(relid, col.as_ref())
            })
            .unwrap()
        };
        assert!(holds().is_empty());
        run("SELECT privacy.place_hold('accounts', $$plan = 'enterprise'$$, 'x')");
        run("SELECT privacy.place_subject_hold('3', 'y')");
        run("SELECT privacy.place_subject_hold('not-a-number', 'z')");
        let mut params = crate::sql::Params::default();
        let p = holds().predicate(&mut params).unwrap();
        // the held subjects are parameters, not in the statement's text
        assert!(!p.contains("'3'") && !p.contains("not-a-number"), "{p}");
        assert_eq!(params.args().len(), 1);
        assert_eq!(
            Spi::get_one_with_args::<String>(
                &format!(
                    "SELECT string_agg(id::text, ',' ORDER BY id) FROM public.accounts WHERE {p}"
                ),
                params.args()
            )
            .unwrap()
            .as_deref(),
            Some("3,4")
        );
    }

    #[pg_test]
    fn retention_fk_cascade_and_fk_failure() {
        accounts();
        run("CREATE TABLE public.orders (id int PRIMARY KEY, account_id bigint REFERENCES public.accounts ON DELETE CASCADE)");
        run("INSERT INTO public.orders VALUES (1, 1), (2, 1), (3, 3)");
        run("SELECT privacy.add_retention_policy('accounts', '30 days', 'unsubscribed_at', name => 'acc')");
        let (r, _) = rows_of("SELECT rows, held FROM privacy.run_retention('acc', '2026-02-15')");
        assert_eq!(r, Some(2));
        assert_eq!(
            one::<String>("SELECT string_agg(id::text, ',' ORDER BY id) FROM public.orders")
                .as_deref(),
            Some("3")
        );
        // a RESTRICT foreign key: the run fails, is recorded, rows stay
        run("CREATE TABLE public.invoices (id int PRIMARY KEY, account_id bigint REFERENCES public.accounts ON DELETE RESTRICT)");
        run("INSERT INTO public.invoices VALUES (1, 2)");
        run("UPDATE public.accounts SET unsubscribed_at = '2026-01-31' WHERE id = 2");
        run("CREATE TABLE public.logs (id int PRIMARY KEY, at date)");
        run("INSERT INTO public.logs VALUES (1, '2020-01-01')");
        run("SELECT privacy.add_retention_policy('logs', '1 day', 'at', name => 'logs')");
        // run all: 'acc' fails, 'logs' still runs
        let n = one::<i64>(
            "SELECT count(*) FROM privacy.run_retention(NULL, '2026-06-01') WHERE rows IS NULL",
        );
        assert_eq!(n, Some(1));
        assert_eq!(one::<i64>("SELECT count(*) FROM public.logs"), Some(0));
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.accounts WHERE id = 2"),
            Some(1)
        );
        let err = one::<String>(
            "SELECT error FROM privacy.retention_runs WHERE policy = 'acc' AND status = 'failed'",
        )
        .unwrap();
        assert!(
            err.contains("foreign key") && err.contains("23503"),
            "{err}"
        );
        assert_eq!(
            one::<String>("SELECT last_status FROM privacy.retention_policies WHERE name = 'acc'")
                .as_deref(),
            Some("failed")
        );
        assert_eq!(
            one::<bool>(
                "SELECT next_run_at > now() FROM privacy.retention_policies WHERE name = 'acc'"
            ),
            Some(true)
        );
        assert_eq!(
            one::<String>("SELECT details->>'status' FROM privacy.audit_log WHERE action = 'run_retention' AND object = 'acc' ORDER BY id DESC LIMIT 1").as_deref(),
            Some("failed")
        );
    }

    #[pg_test]
    fn retention_anonymize_methods_and_idempotence() {
        serialize_key_changes();
        run(&format!("SELECT privacy.create_key('default', {KEY})"));
        run("SELECT privacy.define_purpose('service', NULL, 'contract')");
        run("SELECT privacy.define_purpose('marketing')");
        run("CREATE FUNCTION public.mask(text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT left($1, 1) || '***' $$");
        run("CREATE TABLE public.u (id bigint PRIMARY KEY, email text NOT NULL, name text, login varchar(20) NOT NULL,
                 token uuid NOT NULL, ext_id bigint NOT NULL, small int NOT NULL, seen timestamptz, born date,
                 nick text, plan text, last_seen date, account_ref bigint)");
        run("INSERT INTO public.u VALUES
               (1, 'Ada@Example.com', 'Ada', 'ada', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 42, 7, '2026-05-17 13:00+00', '1815-12-10', 'adal', 'pro', '2025-01-01'),
               (2, 'bob@example.org', 'Bob', 'bob', 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 43, 8, NULL, NULL, NULL, 'free', '2026-06-01'),
               (3, 'cy@example.net', NULL, 'cy', 'c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 44, 9, NULL, NULL, NULL, NULL, '2025-02-01')");
        run("UPDATE public.u SET account_ref = id + 100");
        run("SELECT privacy.mark_subject('u', 'account_ref')");
        run("SECURITY LABEL FOR privacy ON COLUMN u.email IS 'PURPOSE service ANONYMIZE EMAIL'");
        run("SECURITY LABEL FOR privacy ON COLUMN u.name IS 'PURPOSE service'");
        run("SECURITY LABEL FOR privacy ON COLUMN u.login IS 'PURPOSE service'");
        run("SECURITY LABEL FOR privacy ON COLUMN u.token IS 'PURPOSE service'");
        run("SECURITY LABEL FOR privacy ON COLUMN u.ext_id IS 'PURPOSE service'");
        run("SECURITY LABEL FOR privacy ON COLUMN u.small IS 'PURPOSE service'");
        run("SECURITY LABEL FOR privacy ON COLUMN u.seen IS 'PURPOSE service ANONYMIZE TRUNCATE month'");
        run("SECURITY LABEL FOR privacy ON COLUMN u.born IS 'PURPOSE service ANONYMIZE TRUNCATE year'");
        run("SECURITY LABEL FOR privacy ON COLUMN u.nick IS 'PURPOSE marketing ANONYMIZE FUNCTION public.mask'");
        run("SECURITY LABEL FOR privacy ON COLUMN u.plan IS 'PURPOSE marketing ANONYMIZE CONSTANT ''n/a'''");
        // only the marketing columns first
        run("SELECT privacy.add_retention_policy('u', '1 year', 'last_seen', 'anonymize', purpose => 'marketing', name => 'mkt')");
        let (r, _) = rows_of("SELECT rows, held FROM privacy.run_retention('mkt', '2026-03-01')");
        assert_eq!(r, Some(2));
        assert_eq!(
            one::<String>("SELECT nick || '|' || plan || '|' || name FROM public.u WHERE id = 1")
                .as_deref(),
            Some("a***|n/a|Ada")
        );
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('mkt', '2026-03-01')"),
            Some(0)
        );
        // everything
        run("SELECT privacy.add_retention_policy('u', '1 year', 'last_seen', 'anonymize', name => 'all')");
        let (r, _) = rows_of("SELECT rows, held FROM privacy.run_retention('all', '2026-03-01')");
        assert_eq!(r, Some(2));
        let expected_email =
            one::<String>("SELECT privacy.pseudonymize_email('Ada@Example.com')").unwrap();
        assert_eq!(
            one::<String>("SELECT email FROM public.u WHERE id = 1").as_deref(),
            Some(expected_email.as_str())
        );
        assert_eq!(
            one::<bool>(
                "SELECT login = left(privacy.pseudonymize('ada'), 20) FROM public.u WHERE id = 1"
            ),
            Some(true)
        );
        assert_eq!(
            one::<bool>("SELECT token = privacy.pseudonymize_uuid('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11') FROM public.u WHERE id = 1"),
            Some(true)
        );
        assert_eq!(
            one::<bool>("SELECT ext_id = -1 - privacy.pseudonymize_bigint(42) AND small < 0 FROM public.u WHERE id = 1"),
            Some(true)
        );
        assert_eq!(
            one::<bool>("SELECT name IS NULL FROM public.u WHERE id = 1"),
            Some(true)
        );
        run("SET LOCAL TimeZone = 'Pacific/Auckland'");
        assert_eq!(
            one::<String>("SELECT (seen AT TIME ZONE 'UTC')::text || ' ' || born::text FROM public.u WHERE id = 1").as_deref(),
            Some("2026-05-01 00:00:00 1815-01-01")
        );
        // the link to the subject is cut (the nullable SUBJECT column is
        // NULLed, by the first policy already); the row not yet expired is
        // untouched
        assert_eq!(
            one::<String>("SELECT string_agg(id || ':' || coalesce(account_ref::text, '-'), ',' ORDER BY id) FROM public.u").as_deref(),
            Some("1:-,2:102,3:-")
        );
        assert_eq!(
            one::<String>("SELECT email FROM public.u WHERE id = 2").as_deref(),
            Some("bob@example.org")
        );
        // idempotent: a second run changes no row, also under another TimeZone
        let before =
            one::<String>("SELECT string_agg(u::text, ';' ORDER BY id) FROM public.u u").unwrap();
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('all', '2026-03-01')"),
            Some(0)
        );
        assert_eq!(
            one::<i64>(
                "SELECT rows FROM privacy.run_retention(NULL, '2026-03-01') WHERE policy = 'all'"
            ),
            Some(0)
        );
        let after =
            one::<String>("SELECT string_agg(u::text, ';' ORDER BY id) FROM public.u u").unwrap();
        assert_eq!(before, after);
        // a hold keeps a row from being anonymized
        run("UPDATE public.u SET last_seen = '2025-01-01' WHERE id = 2");
        run("SELECT privacy.place_hold('u', 'id = 2', 'complaint')");
        let (r, h) = rows_of("SELECT rows, held FROM privacy.run_retention('all', '2026-03-01')");
        assert_eq!((r, h), (Some(0), Some(1)));
        assert_eq!(
            one::<String>("SELECT email FROM public.u WHERE id = 2").as_deref(),
            Some("bob@example.org")
        );
        // the plan interface
        let relid = one::<pg_sys::Oid>("SELECT 'public.u'::regclass::oid").unwrap();
        let rw = fresh(|| crate::retention::anonymize::plan(relid, Some("marketing"))).unwrap();
        assert_eq!(
            rw.iter()
                .map(|r| r.rewrite.column.as_str())
                .collect::<Vec<_>>(),
            vec!["nick", "plan", "account_ref"]
        );
        let all = fresh(|| crate::retention::anonymize::plan(relid, None)).unwrap();
        assert_eq!(all.len(), 11);
        assert!(!all.iter().any(|r| r.rewrite.column == "id"));
    }

    #[pg_test]
    fn retention_anonymize_needs_the_key() {
        serialize_key_changes();
        run("SELECT privacy.define_purpose('service', NULL, 'contract')");
        run("CREATE TABLE public.k (id int PRIMARY KEY, email text NOT NULL, at date)");
        run("SELECT privacy.tag_column('k', 'email', ARRAY['service'])");
        let (state, msg) =
            error_of("SELECT privacy.add_retention_policy('k', '1 day', 'at', 'anonymize')")
                .unwrap();
        assert_eq!(state, "42704");
        assert_eq!(msg, "key \"default\" does not exist");
        run(&format!("SELECT privacy.create_key('default', {KEY})"));
        run("SELECT privacy.add_retention_policy('k', '1 day', 'at', 'anonymize')");
        // the key dropped later: the run fails with the key error, recorded
        run("INSERT INTO public.k VALUES (1, 'x@y.z', '2000-01-01')");
        run("SELECT privacy.drop_key('default')");
        assert_eq!(
            one::<bool>("SELECT rows IS NULL FROM privacy.run_retention('k_anonymize')"),
            Some(true)
        );
        let err =
            one::<String>("SELECT error FROM privacy.retention_runs WHERE policy = 'k_anonymize'")
                .unwrap();
        assert!(err.contains("42704"), "{err}");
    }

    #[pg_test]
    fn retention_privileges_of_non_owners() {
        accounts();
        run("CREATE ROLE ret_alice");
        run("CREATE ROLE ret_bob");
        run("GRANT USAGE ON SCHEMA privacy TO ret_alice, ret_bob");
        run("GRANT SELECT, DELETE ON public.accounts TO ret_alice");
        run("GRANT SELECT ON public.accounts TO ret_bob");
        // bob cannot delete: no delete policy, no anonymize policy
        run("SET LOCAL ROLE ret_bob");
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('accounts', '1 day', 'unsubscribed_at')",
            "42501",
        );
        assert_sqlstate("SELECT privacy.add_retention_policy('accounts', '1 day', 'unsubscribed_at', 'anonymize')", "42501");
        // nor place holds (EXECUTE is the DBA's to grant)
        assert_sqlstate(
            "SELECT privacy.place_hold('accounts', 'id = 1', 'x')",
            "42501",
        );
        run("RESET ROLE");
        run("SET LOCAL ROLE ret_alice");
        run("SELECT privacy.add_retention_policy('accounts', '30 days', 'unsubscribed_at', name => 'alice_p')");
        assert_eq!(
            one::<String>(
                "SELECT owner::text FROM privacy.retention_policies WHERE name = 'alice_p'"
            )
            .as_deref(),
            Some("ret_alice")
        );
        run("RESET ROLE");
        run("SET LOCAL ROLE ret_bob");
        assert_sqlstate(
            "SELECT privacy.run_retention('alice_p', '2026-06-01')",
            "42501",
        );
        assert_sqlstate(
            "SELECT privacy.alter_retention_policy('alice_p', enabled => false)",
            "42501",
        );
        assert_sqlstate("SELECT privacy.drop_retention_policy('alice_p')", "42501");
        // run_retention(NULL) skips the policies bob may not run
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.run_retention(NULL, '2026-06-01')"),
            Some(0)
        );
        run("RESET ROLE");
        run("SET LOCAL ROLE ret_alice");
        assert_eq!(
            one::<i64>("SELECT rows FROM privacy.run_retention('alice_p', '2026-02-15')"),
            Some(2)
        );
        run("RESET ROLE");
        // bob does not see alice's runs, a superuser does
        run("SET LOCAL ROLE ret_bob");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.retention_runs"),
            Some(0)
        );
        run("RESET ROLE");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.retention_runs"),
            Some(1)
        );
        // the policy runs as its owner: once alice loses DELETE, even a
        // superuser's run fails with 42501 (recorded) instead of deleting
        run("REVOKE DELETE ON public.accounts FROM ret_alice");
        assert_eq!(
            one::<bool>("SELECT rows IS NULL FROM privacy.run_retention('alice_p', '2026-06-01')"),
            Some(true)
        );
        let err = one::<String>(
            "SELECT error FROM privacy.retention_runs WHERE policy = 'alice_p' AND status = 'failed'",
        )
        .unwrap();
        assert!(err.contains("42501"), "{err}");
        assert_eq!(one::<i64>("SELECT count(*) FROM public.accounts"), Some(2));
        // members of the owner role may manage it
        run("GRANT ret_alice TO ret_bob");
        run("SET LOCAL ROLE ret_bob");
        run("SELECT privacy.alter_retention_policy('alice_p', enabled => false)");
        run("RESET ROLE");
    }

    #[pg_test]
    fn retention_batches_are_bounded_and_recorded() {
        run("SET LOCAL privacy.batch_size = 3");
        run("CREATE TABLE public.big (id int PRIMARY KEY, at timestamptz, keep boolean NOT NULL DEFAULT false)");
        run("INSERT INTO public.big SELECT g, '2020-01-01+00'::timestamptz + g * interval '1 minute', g % 5 = 0 FROM generate_series(1, 20) g");
        run("ANALYZE public.big");
        // no index: ctid windows
        run("SELECT privacy.add_retention_policy('big', '1 day', 'at', row_filter => 'NOT keep', name => 'big')");
        let (r, _) = rows_of(
            "SELECT rows, held FROM privacy.run_retention('big', '2026-01-01', dry_run => true)",
        );
        assert_eq!(r, Some(16));
        run("SELECT privacy.place_hold('big', 'id <= 2', 'case')");
        let (r, h) = rows_of("SELECT rows, held FROM privacy.run_retention('big', '2026-01-01')");
        assert_eq!((r, h), (Some(14), Some(2)));
        assert_eq!(one::<i64>("SELECT count(*) FROM public.big"), Some(6));
        let batches = one::<i32>("SELECT batches FROM privacy.retention_runs WHERE policy = 'big' AND status = 'succeeded'").unwrap();
        assert!(batches >= 5, "{batches} batches");
        // with an index: keyset on (anchor, ctid), several batches as well
        run("INSERT INTO public.big SELECT g, '2020-01-01+00', false FROM generate_series(100, 120) g");
        run("CREATE INDEX ON public.big (at)");
        run("SELECT privacy.add_retention_policy('big', '1 day', 'at', name => 'big_idx')");
        let (r, h) = rows_of("SELECT rows, held FROM privacy.run_retention('big_idx', '2026-01-01', dry_run => true)");
        assert_eq!((r, h), (Some(25), Some(2)));
        let batches =
            one::<i32>("SELECT batches FROM privacy.retention_runs WHERE policy = 'big_idx'")
                .unwrap();
        assert_eq!(batches, 10); // 27 candidates by 3, then an empty batch
        let (r, _) =
            rows_of("SELECT rows, held FROM privacy.run_retention('big_idx', '2026-01-01')");
        assert_eq!(r, Some(25));
        assert_eq!(one::<i64>("SELECT count(*) FROM public.big"), Some(2));
        // nothing leaked into the transaction
        assert_eq!(one::<String>("SHOW lock_timeout").as_deref(), Some("0"));
        assert_eq!(
            one::<String>("SELECT current_user::text").as_deref(),
            Some("postgres")
        );
    }

    #[pg_test]
    fn retention_worker_interface() {
        use crate::retention::run::{due_policies, record_failure, Run, TriggeredBy};
        run("SET LOCAL privacy.batch_size = 2");
        accounts();
        run("SELECT privacy.add_retention_policy('accounts', '1 day', 'unsubscribed_at', name => 'w')");
        let now = one::<pgrx::datum::TimestampWithTimeZone>("SELECT now()").unwrap();
        assert_eq!(fresh(|| due_policies(now)).unwrap(), vec!["w".to_string()]);
        let as_of =
            one::<pgrx::datum::TimestampWithTimeZone>("SELECT '2026-06-01'::timestamptz").unwrap();
        let mut r = fresh(|| Run::start("w", as_of, false, TriggeredBy::Worker)).unwrap();
        assert_eq!(r.policy(), "w");
        let id = r.id();
        assert_eq!(
            one::<String>(&format!(
                "SELECT status FROM privacy.retention_runs WHERE run_id = {id}"
            ))
            .as_deref(),
            Some("running")
        );
        // (a second session starting it now gets 55P03: tests/integration/retention_locks.sh)
        assert!(fresh(|| r.next_batch()).unwrap());
        assert_eq!((r.rows(), r.batches()), (2, 1));
        // a hold placed between two batches counts from the next batch on
        run("SELECT privacy.place_hold('accounts', 'id = 2', 'late hold')");
        while fresh(|| r.next_batch()).unwrap() {}
        let s = fresh(|| r.finish(None)).unwrap();
        assert_eq!((s.rows, s.held, s.status), (2, 1, "succeeded"));
        assert!(s.batches >= 2);
        assert_eq!(
            one::<String>(&format!("SELECT triggered_by || ' ' || status FROM privacy.retention_runs WHERE run_id = {id}")).as_deref(),
            Some("worker succeeded")
        );
        // not due any more; a failure recorded after an abort backs off
        assert!(fresh(|| due_policies(now)).unwrap().is_empty());
        let r = fresh(|| Run::start("w", as_of, false, TriggeredBy::Worker)).unwrap();
        let id = r.id();
        drop(r);
        fresh(|| {
            record_failure(
                id,
                "w",
                "canceling statement due to lock timeout (SQLSTATE 55P03)",
            )
        })
        .unwrap();
        assert_eq!(
            one::<String>(&format!(
                "SELECT status || ' ' || error FROM privacy.retention_runs WHERE run_id = {id}"
            ))
            .as_deref(),
            Some("failed canceling statement due to lock timeout (SQLSTATE 55P03)")
        );
        assert_eq!(
            one::<i32>("SELECT failures FROM privacy.retention_policy_defs WHERE name = 'w'"),
            Some(1)
        );
        // the lock was released
        let r = fresh(|| Run::start("w", as_of, true, TriggeredBy::Manual)).unwrap();
        let s = fresh(|| r.finish(None)).unwrap();
        assert_eq!(s.status, "dry_run");
        // a worker run left running by a crash is closed at the next start-up
        let r = fresh(|| Run::start("w", as_of, false, TriggeredBy::Worker)).unwrap();
        let id = r.id();
        drop(r);
        assert_eq!(
            fresh(crate::retention::run::close_interrupted_runs).unwrap(),
            vec!["w".to_string()]
        );
        assert_eq!(
            one::<String>(&format!(
                "SELECT status FROM privacy.retention_runs WHERE run_id = {id}"
            ))
            .as_deref(),
            Some("failed")
        );
        assert_eq!(
            one::<i32>("SELECT failures FROM privacy.retention_policy_defs WHERE name = 'w'"),
            Some(2)
        );
    }

    #[pg_test]
    fn retention_dropped_tables_and_anchors() {
        accounts();
        run("SELECT privacy.add_retention_policy('accounts', '1 day', 'unsubscribed_at', name => 'gone')");
        run("SELECT privacy.place_hold('accounts', 'id = 1', 'case')");
        // a dropped anchor column: clear error, recorded
        run("ALTER TABLE public.accounts DROP COLUMN unsubscribed_at");
        assert_eq!(
            one::<bool>("SELECT rows IS NULL FROM privacy.run_retention('gone')"),
            Some(true)
        );
        let err = one::<String>("SELECT error FROM privacy.retention_runs WHERE policy = 'gone'")
            .unwrap();
        assert!(
            err.contains("anchor column \"unsubscribed_at\"") && err.contains("42703"),
            "{err}"
        );
        // a dropped table: its policy and holds are removed, audited
        run("DROP TABLE public.accounts");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.retention_policies"),
            Some(0)
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM privacy.holds"), Some(0));
        assert_eq!(
            one::<String>("SELECT details->>'reason' FROM privacy.audit_log WHERE action = 'drop_retention_policy'").as_deref(),
            Some("table dropped")
        );
        // a dropped schema too
        run("CREATE SCHEMA s2");
        run("CREATE TABLE s2.x (id int PRIMARY KEY, at date)");
        run("SELECT privacy.add_retention_policy('s2.x', '1 day', 'at')");
        run("DROP SCHEMA s2 CASCADE");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.retention_policies"),
            Some(0)
        );
    }

    #[pg_test]
    fn retention_column_rewrite_sql() {
        let r = crate::retention::anonymize::column_rewrite(
            "Full Name",
            &crate::labels::grammar::Method::Null,
            pg_sys::TEXTOID,
            -1,
            "text",
        )
        .unwrap();
        assert_eq!(r.set_expr, "NULL");
        assert_eq!(r.needs_change, "(\"Full Name\" IS NOT NULL)");
        let r = crate::retention::anonymize::column_rewrite(
            "note",
            &crate::labels::grammar::Method::Constant("it's".into()),
            pg_sys::TEXTOID,
            -1,
            "text",
        )
        .unwrap();
        assert_eq!(r.set_expr, "CAST('it''s' AS text)");
        assert_eq!(
            r.needs_change,
            "(note IS DISTINCT FROM CAST('it''s' AS text))"
        );
        let r = crate::retention::anonymize::column_rewrite(
            "born",
            &crate::labels::grammar::Method::Truncate(crate::labels::grammar::TruncateUnit::Year),
            pg_sys::TIMESTAMPTZOID,
            -1,
            "timestamp with time zone",
        )
        .unwrap();
        assert!(r.set_expr.contains("pg_catalog.timezone('UTC'"));
        let r = crate::retention::anonymize::column_rewrite(
            "code",
            &crate::labels::grammar::Method::Pseudonymize,
            pg_sys::VARCHAROID,
            20 + 4,
            "character varying(20)",
        )
        .unwrap();
        assert!(r.set_expr.contains("pg_catalog.left("));
        assert!(r.needs_change.contains("{20}"));
        let r = crate::retention::anonymize::column_rewrite(
            "n",
            &crate::labels::grammar::Method::Pseudonymize,
            pg_sys::INT4OID,
            -1,
            "integer",
        )
        .unwrap();
        assert!(r.set_expr.contains("% 2147483647"));
        assert_eq!(r.needs_change, "(n >= 0)");
        assert!(crate::retention::anonymize::column_rewrite(
            "d",
            &crate::labels::grammar::Method::Email,
            pg_sys::DATEOID,
            -1,
            "date"
        )
        .is_err());
        assert!(crate::retention::anonymize::column_rewrite(
            "d",
            &crate::labels::grammar::Method::Pseudonymize,
            pg_sys::DATEOID,
            -1,
            "date"
        )
        .is_err());
    }

    #[pg_test]
    fn retention_subject_predicates_by_type() {
        use crate::retention::holds::subject_predicate;
        use crate::sql::Params;
        let s = vec!["42".to_string(), "x'y".to_string(), " 7 ".to_string()];
        // values are bound as one array parameter, never spliced
        let mut p = Params::default();
        let sql = subject_predicate("id", pg_sys::INT8OID, &s, &mut p).unwrap();
        assert_eq!(sql, "(id = ANY ($1::pg_catalog.int8[]))");
        assert_eq!(
            Spi::get_one_with_args::<String>("SELECT $1::pg_catalog.int8[]::text", p.args())
                .unwrap()
                .as_deref(),
            Some("{42,7}")
        );
        let mut p = Params::default();
        p.push(1);
        let sql = subject_predicate("Who", pg_sys::TEXTOID, &s, &mut p).unwrap();
        assert_eq!(sql, "(\"Who\" = ANY ($2::pg_catalog.text[]))");
        assert_eq!(
            Spi::get_one_with_args::<String>("SELECT $2::pg_catalog.text[]::text", p.args())
                .unwrap()
                .as_deref(),
            Some("{42,x'y,\" 7 \"}")
        );
        let mut p = Params::default();
        assert!(subject_predicate("id", pg_sys::INT2OID, &["99999".to_string()], &mut p).is_none());
        assert!(p.args().is_empty());
        let mut p = Params::default();
        let sql = subject_predicate(
            "u",
            pg_sys::UUIDOID,
            &[
                "{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11}".to_string(),
                "nope".to_string(),
            ],
            &mut p,
        )
        .unwrap();
        assert_eq!(sql, "(u = ANY (CAST($1 AS pg_catalog.uuid[])))");
        assert_eq!(
            Spi::get_one_with_args::<String>(
                "SELECT CAST($1 AS pg_catalog.uuid[])::text",
                p.args()
            )
            .unwrap()
            .as_deref(),
            Some("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}")
        );
    }

    #[pg_test]
    fn retention_partitions_and_parent_holds() {
        run("CREATE TABLE public.events (id int, at date NOT NULL, kind text) PARTITION BY RANGE (at)");
        run("CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')");
        run("INSERT INTO public.events VALUES (1, '2025-02-01', 'login'), (2, '2025-03-01', 'fraud'), (3, '2025-04-01', 'login')");
        // the parent takes no policy; its partitions do
        assert_sqlstate(
            "SELECT privacy.add_retention_policy('events', '30 days', 'at')",
            "22023",
        );
        run("SELECT privacy.add_retention_policy('events_2025', '30 days', 'at', name => 'ev25')");
        // a hold on the parent holds the partition's rows
        run("SELECT privacy.place_hold('events', $$kind = 'fraud'$$, 'fraud case')");
        let (r, h) = rows_of("SELECT rows, held FROM privacy.run_retention('ev25', '2026-06-01')");
        assert_eq!((r, h), (Some(2), Some(1)));
        assert_eq!(one::<i64>("SELECT id FROM public.events"), Some(2));
    }
}
