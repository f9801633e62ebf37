//! Data subject rights: export, erasure, objections.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::{assert_sqlstate, error_of, one, run};
    use pgrx::prelude::*;
    use pgrx::JsonB;
    use serde_json::Value;

    /// accounts <- orders (RESTRICT) <- order_lines (CASCADE); invoices (SET
    /// NULL, kept for a legal obligation); page_views (untagged, CASCADE).
    fn setup() {
        run("SELECT privacy.define_purpose('service', NULL, 'contract')");
        run("SELECT privacy.define_purpose('billing', 'tax law', 'legal_obligation')");
        run("SELECT privacy.define_purpose('marketing')");
        run(
            "CREATE TABLE public.accounts (id bigint PRIMARY KEY, email text NOT NULL, name text,
                                          vip boolean, signed_up timestamptz, plan text)",
        );
        run("CREATE TABLE public.orders (id int PRIMARY KEY,
                 account_id bigint NOT NULL REFERENCES public.accounts ON DELETE RESTRICT, ship_to text)");
        run("CREATE INDEX ON public.orders (account_id)");
        run("CREATE TABLE public.order_lines (id int PRIMARY KEY,
                 order_id int NOT NULL REFERENCES public.orders ON DELETE CASCADE,
                 account_id bigint NOT NULL, item text)");
        run("CREATE INDEX ON public.order_lines (account_id)");
        run("CREATE TABLE public.invoices (id int PRIMARY KEY,
                 account_id bigint REFERENCES public.accounts ON DELETE SET NULL,
                 billing_name text NOT NULL, note text)");
        run("CREATE INDEX ON public.invoices (account_id)");
        run("CREATE TABLE public.page_views (id int PRIMARY KEY,
                 account_id bigint REFERENCES public.accounts ON DELETE CASCADE, path text)");
        run("SECURITY LABEL FOR privacy ON COLUMN public.accounts.id IS 'SUBJECT'");
        run("SECURITY LABEL FOR privacy ON COLUMN public.accounts.email IS 'PURPOSE service, marketing CATEGORY contact ANONYMIZE EMAIL'");
        run("SELECT privacy.tag_column('public.accounts', 'name', ARRAY['service'], 'identity')");
        run("SELECT privacy.tag_column('public.accounts', 'vip', ARRAY['service'])");
        run("SELECT privacy.tag_column('public.accounts', 'signed_up', ARRAY['service'])");
        run("SELECT privacy.mark_subject('public.orders', 'account_id')");
        run("SELECT privacy.tag_column('public.orders', 'ship_to', ARRAY['service'], 'location')");
        run("SELECT privacy.mark_subject('public.order_lines', 'account_id')");
        run("SELECT privacy.tag_column('public.order_lines', 'item', ARRAY['service'])");
        run("SELECT privacy.mark_subject('public.invoices', 'account_id')");
        run("SELECT privacy.tag_column('public.invoices', 'billing_name', ARRAY['billing'], 'identity')");
        run("SELECT privacy.tag_column('public.invoices', 'note', ARRAY['service'])");
        run("INSERT INTO public.accounts VALUES
               (1, 'ada@example.com', 'Ada', true, '2024-01-02 03:04:05+00', 'pro'),
               (2, 'alan@example.org', 'Alan', false, '2024-02-03 00:00:00+00', 'free')");
        run("INSERT INTO public.orders VALUES (10, 1, 'London'), (11, 1, 'Paris'), (20, 2, 'Bletchley')");
        run("INSERT INTO public.order_lines VALUES (100, 10, 1, 'book'), (101, 11, 1, 'pen'), (200, 20, 2, 'chalk')");
        run("INSERT INTO public.invoices VALUES (1000, 1, 'Ada Lovelace', 'paid late'), (2000, 2, 'Alan Turing', 'ok')");
        run("INSERT INTO public.page_views VALUES (1, 1, '/a'), (2, 1, '/b'), (3, 2, '/c'), (4, NULL, '/d')");
    }

    fn forget(sql: &str) -> Vec<(String, String, i64)> {
        Spi::connect(|c| {
            c.select(
                &format!("SELECT table_name::text, action, rows FROM ({sql}) f"),
                None,
                &[],
            )
            .unwrap()
            .map(|r| {
                (
                    r.get::<String>(1).unwrap().unwrap(),
                    r.get::<String>(2).unwrap().unwrap(),
                    r.get::<i64>(3).unwrap().unwrap(),
                )
            })
            .collect()
        })
    }

    fn row(t: &str, a: &str, n: i64) -> (String, String, i64) {
        (t.to_string(), a.to_string(), n)
    }

    fn snapshot() -> String {
        one::<String>(
            "SELECT concat_ws('|',
                (SELECT string_agg(format('%s,%s,%s', id, email, name), ';' ORDER BY id) FROM public.accounts),
                (SELECT string_agg(format('%s,%s,%s', id, account_id, ship_to), ';' ORDER BY id) FROM public.orders),
                (SELECT string_agg(format('%s,%s', id, account_id), ';' ORDER BY id) FROM public.order_lines),
                (SELECT string_agg(format('%s,%s,%s,%s', id, account_id, billing_name, note), ';' ORDER BY id) FROM public.invoices),
                (SELECT string_agg(format('%s,%s', id, account_id), ';' ORDER BY id) FROM public.page_views),
                (SELECT string_agg(format('%s,%s', subject, purpose), ';' ORDER BY 1) FROM privacy.objections))",
        )
        .unwrap()
    }

    fn export(subject: &str) -> Value {
        Spi::get_one_with_args::<JsonB>("SELECT privacy.export_subject($1)", &[subject.into()])
            .unwrap()
            .unwrap()
            .0
    }

    #[pg_test]
    fn forget_deletes_children_first_and_keeps_legal_rows() {
        setup();
        run("SELECT privacy.object_to_purpose('1', 'marketing')");
        let got = forget("SELECT * FROM privacy.forget_subject('1')");
        assert_eq!(
            got,
            vec![
                row("invoices", "anonymized", 1),
                row("order_lines", "deleted", 2),
                row("orders", "deleted", 2),
                row("accounts", "deleted", 1),
                row("privacy.objections", "deleted", 1),
            ]
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.accounts WHERE id = 1"),
            Some(0)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.orders WHERE account_id = 1"),
            Some(0)
        );
        // the untagged table followed its ON DELETE CASCADE
        assert_eq!(
            one::<String>("SELECT string_agg(id::text, ',' ORDER BY id) FROM public.page_views")
                .as_deref(),
            Some("3,4")
        );
        // the invoice is kept, unlinked from the person, with the legally
        // required column intact and the other tagged column anonymized
        assert_eq!(
            one::<String>(
                "SELECT format('%s|%s|%s', account_id, billing_name, note) FROM public.invoices WHERE id = 1000"
            )
            .as_deref(),
            Some("|Ada Lovelace|")
        );
        // the other subject is untouched
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.order_lines WHERE account_id = 2"),
            Some(1)
        );
        assert_eq!(
            one::<String>("SELECT note FROM public.invoices WHERE id = 2000").as_deref(),
            Some("ok")
        );
        // a second erasure finds nothing left
        let again = forget("SELECT * FROM privacy.forget_subject('1')");
        assert!(again.iter().all(|(_, _, n)| *n == 0), "{again:?}");
    }

    #[pg_test]
    fn dry_run_changes_nothing_and_predicts_the_run() {
        setup();
        run("SELECT privacy.object_to_purpose('1', 'marketing')");
        let before = snapshot();
        let predicted = forget("SELECT * FROM privacy.forget_subject('1', dry_run => true)");
        assert_eq!(snapshot(), before);
        assert_eq!(
            one::<bool>(
                "SELECT details->>'dry_run' = 'true' FROM privacy.audit_log
                  WHERE action = 'forget_subject' ORDER BY id DESC LIMIT 1"
            ),
            Some(true)
        );
        let real = forget("SELECT * FROM privacy.forget_subject('1')");
        assert_eq!(predicted, real);
        assert_ne!(snapshot(), before);
    }

    #[pg_test]
    fn unknown_subject_exports_nothing_and_erases_nothing() {
        setup();
        let before = snapshot();
        for s in ["999", "ada", ""] {
            let doc = export(s);
            let tables = doc["tables"].as_object().unwrap();
            assert_eq!(tables.len(), 4);
            assert!(tables
                .values()
                .all(|t| t["rows"].as_array().unwrap().is_empty()));
            let got = forget(&format!(
                "SELECT * FROM privacy.forget_subject({})",
                spi::quote_literal(s)
            ));
            assert_eq!(got.len(), 4);
            assert!(got.iter().all(|(_, _, n)| *n == 0), "{got:?}");
        }
        assert_eq!(snapshot(), before);
    }

    #[pg_test]
    fn export_has_the_spec_shape_and_json_types() {
        setup();
        let doc = export("1");
        assert_eq!(doc["subject"], "1");
        assert!(doc["exported_at"].as_str().unwrap().contains('T'));
        let acc = &doc["tables"]["public.accounts"];
        assert_eq!(
            acc["columns"]["email"]["purposes"],
            serde_json::json!(["service", "marketing"])
        );
        assert_eq!(acc["columns"]["email"]["category"], "contact");
        assert_eq!(acc["columns"]["vip"]["category"], Value::Null);
        let rows = acc["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["id"], 1);
        assert_eq!(rows[0]["vip"], true);
        assert_eq!(rows[0]["email"], "ada@example.com");
        assert_eq!(rows[0]["signed_up"], "2024-01-02T03:04:05+00:00");
        // untagged column not exported
        assert!(rows[0].get("plan").is_none());
        let orders = doc["tables"]["public.orders"]["rows"].as_array().unwrap();
        assert_eq!(orders.len(), 2);
        assert_eq!(orders[0]["ship_to"], "London");
        assert_eq!(orders[1]["ship_to"], "Paris");
        // untagged tables are not part of the export
        assert!(doc["tables"].get("public.page_views").is_none());
        assert_eq!(
            one::<i64>("SELECT (details->>'rows')::bigint FROM privacy.audit_log WHERE action = 'export_subject'"),
            Some(6)
        );
    }

    #[pg_test]
    fn every_subject_type_works() {
        run("SELECT privacy.define_purpose('service', NULL, 'contract')");
        let uuid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        for (name, typ, value, other) in [
            ("t_text", "text", "ada@example.com", "alan@example.com"),
            ("t_varchar", "varchar(40)", "ada", "alan"),
            ("t_int", "integer", "42", "43"),
            ("t_bigint", "bigint", "4200000000", "43"),
            (
                "t_uuid",
                "uuid",
                uuid,
                "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            ),
        ] {
            run(&format!(
                "CREATE TABLE public.{name} (s {typ}, v text);
                 CREATE INDEX ON public.{name} (s);
                 INSERT INTO public.{name} VALUES ('{value}', 'mine'), ('{other}', 'theirs');
                 SELECT privacy.mark_subject('public.{name}', 's');
                 SELECT privacy.tag_column('public.{name}', 'v', ARRAY['service'])"
            ));
        }
        for (name, value) in [
            ("t_text", "ada@example.com"),
            ("t_varchar", "ada"),
            ("t_int", "42"),
            ("t_bigint", "4200000000"),
            ("t_uuid", uuid),
        ] {
            let doc = export(value);
            let rows = doc["tables"][format!("public.{name}")]["rows"]
                .as_array()
                .unwrap()
                .clone();
            assert_eq!(rows.len(), 1, "{name}: {doc}");
            assert_eq!(rows[0]["v"], "mine");
            let got = forget(&format!("SELECT * FROM privacy.forget_subject('{value}')"));
            assert!(got.contains(&row(name, "deleted", 1)), "{name}: {got:?}");
            assert_eq!(
                one::<i64>(&format!("SELECT count(*) FROM public.{name}")),
                Some(1)
            );
        }
        // the uuid is matched in any of its input spellings, integers with blanks
        run(&format!(
            "INSERT INTO public.t_uuid VALUES ('{uuid}', 'again'); INSERT INTO public.t_int VALUES (7, 'x')"
        ));
        let got =
            forget("SELECT * FROM privacy.forget_subject('{A0EEBC999C0B4EF8BB6D6BB9BD380A11}')");
        assert!(got.contains(&row("t_uuid", "deleted", 1)), "{got:?}");
        let got = forget("SELECT * FROM privacy.forget_subject(' 7 ')");
        assert!(got.contains(&row("t_int", "deleted", 1)), "{got:?}");
    }

    #[pg_test]
    fn subject_lookup_uses_the_index() {
        setup();
        run("INSERT INTO public.orders SELECT g, 2, 'x' FROM generate_series(1000, 20999) g");
        run("ANALYZE public.orders");
        let plan = Spi::explain_with_args(
            "SELECT count(*) FROM public.orders WHERE account_id = $1::pg_catalog.int8",
            &["1".into()],
        )
        .unwrap();
        assert!(
            plan.0.to_string().contains("Index"),
            "the subject predicate must be indexable: {}",
            plan.0
        );
    }

    #[pg_test]
    fn restrict_from_an_untagged_table_is_a_clear_error() {
        setup();
        run("CREATE TABLE public.tickets (id int PRIMARY KEY,
                 account_id bigint REFERENCES public.accounts ON DELETE RESTRICT)");
        run("INSERT INTO public.tickets VALUES (1, 1)");
        let before = snapshot();
        let (state, msg) = error_of("SELECT * FROM privacy.forget_subject('1')").unwrap();
        assert_eq!(state, "23503", "{msg}");
        assert!(
            msg.contains("public.tickets") || msg.contains("tickets"),
            "{msg}"
        );
        assert!(msg.contains("tickets_account_id_fkey"), "{msg}");
        assert_sqlstate(
            "SELECT * FROM privacy.forget_subject('1', dry_run => true)",
            "23503",
        );
        assert_eq!(snapshot(), before);
        // subject 2 has no ticket: erasable
        let got = forget("SELECT * FROM privacy.forget_subject('2')");
        assert!(got.contains(&row("accounts", "deleted", 1)), "{got:?}");
    }

    #[pg_test]
    fn no_action_from_a_subject_table_is_satisfied_by_the_order() {
        setup();
        // a NO ACTION key whose child is itself a subject table: erasing the
        // child first makes the parent's deletion legal
        run("CREATE TABLE public.reviews (id int PRIMARY KEY,
                 author bigint NOT NULL REFERENCES public.accounts)");
        run("INSERT INTO public.reviews VALUES (1, 1), (2, 2)");
        run("SELECT privacy.mark_subject('public.reviews', 'author')");
        let got = forget("SELECT * FROM privacy.forget_subject('1')");
        let pos = |t: &str| got.iter().position(|r| r.0 == t).unwrap();
        assert!(pos("reviews") < pos("accounts"), "{got:?}");
        assert!(got.contains(&row("reviews", "deleted", 1)), "{got:?}");
    }

    /// public.a <-> public.b, NO ACTION both ways, both subject tables.
    fn cycle() {
        run("CREATE TABLE public.a (id int PRIMARY KEY, who bigint, b_id int)");
        run("CREATE TABLE public.b (id int PRIMARY KEY, who bigint, a_id int REFERENCES public.a)");
        run("ALTER TABLE public.a ADD FOREIGN KEY (b_id) REFERENCES public.b");
        run("SELECT privacy.mark_subject('public.a', 'who')");
        run("SELECT privacy.mark_subject('public.b', 'who')");
        run("INSERT INTO public.a VALUES (1, 1, NULL), (2, 2, NULL)");
        run("INSERT INTO public.b VALUES (1, 1, 1), (2, 2, 2)");
        run("UPDATE public.a SET b_id = id");
    }

    fn cycle_rows() -> String {
        one::<String>(
            "SELECT concat_ws('|',
                (SELECT string_agg(format('%s,%s,%s', id, who, b_id), ';' ORDER BY id) FROM public.a),
                (SELECT string_agg(format('%s,%s,%s', id, who, a_id), ';' ORDER BY id) FROM public.b))",
        )
        .unwrap()
    }

    #[pg_test]
    fn foreign_key_cycle_without_the_subject_blocks_nothing() {
        setup();
        cycle();
        // subject 99 has no row in the cycle: everything else is erased
        run("INSERT INTO public.accounts VALUES (99, 'z@example.com', 'Zed', false, NULL, NULL)");
        let before = cycle_rows();
        let got = forget("SELECT * FROM privacy.forget_subject('99')");
        assert!(got.contains(&row("accounts", "deleted", 1)), "{got:?}");
        assert!(got.contains(&row("a", "deleted", 0)), "{got:?}");
        assert!(got.contains(&row("b", "deleted", 0)), "{got:?}");
        assert_eq!(cycle_rows(), before);
    }

    #[pg_test]
    fn foreign_key_cycle_is_erased_in_one_statement() {
        setup();
        cycle();
        let got = forget("SELECT * FROM privacy.forget_subject('1', dry_run => true)");
        assert!(got.contains(&row("a", "deleted", 1)), "{got:?}");
        assert!(got.contains(&row("b", "deleted", 1)), "{got:?}");
        let real = forget("SELECT * FROM privacy.forget_subject('1')");
        assert_eq!(got, real);
        assert_eq!(cycle_rows(), "2,2,2|2,2,2");
    }

    #[pg_test]
    fn foreign_key_cycle_keeps_held_rows_and_what_they_reference() {
        setup();
        cycle();
        run("SELECT privacy.place_hold('public.b', 'id = 1', 'dispute')");
        let got = forget("SELECT * FROM privacy.forget_subject('1')");
        // b's row is held; a's row, which it references, is kept with it
        assert!(got.contains(&row("b", "held", 1)), "{got:?}");
        assert!(got.contains(&row("a", "held", 1)), "{got:?}");
        assert!(got.contains(&row("a", "deleted", 0)), "{got:?}");
        assert_eq!(cycle_rows(), "1,1,1;2,2,2|1,1,1;2,2,2");
    }

    #[pg_test]
    fn foreign_key_cycle_of_several_owners_names_its_tables() {
        setup();
        cycle();
        run("CREATE ROLE subj_cycle_owner");
        run("ALTER TABLE public.b OWNER TO subj_cycle_owner");
        let before = snapshot();
        let cycle_before = cycle_rows();
        let (state, msg) = error_of("SELECT * FROM privacy.forget_subject('1')").unwrap();
        assert_eq!(state, "55000", "{msg}");
        assert!(
            msg.contains("cycle") && msg.contains("public.a") && msg.contains("public.b"),
            "{msg}"
        );
        assert!(!msg.contains("accounts"), "only the cycle's tables: {msg}");
        assert_eq!(snapshot(), before);
        assert_eq!(cycle_rows(), cycle_before);
        // a subject without rows in the cycle is erased as usual
        run("UPDATE public.a SET b_id = NULL WHERE who = 2");
        run("DELETE FROM public.b WHERE who = 2");
        run("DELETE FROM public.a WHERE who = 2");
        let got = forget("SELECT * FROM privacy.forget_subject('2')");
        assert!(got.contains(&row("accounts", "deleted", 1)), "{got:?}");
    }

    #[pg_test]
    fn held_rows_are_kept_and_reported() {
        setup();
        run("SELECT privacy.place_hold('public.orders', 'id = 10', 'chargeback dispute')");
        let got = forget("SELECT * FROM privacy.forget_subject('1')");
        // order 10 is held; its line 100 would cascade... it is the subject's
        // own line and is deleted (only held rows and what they need are kept);
        // the account stays because the held order references it
        assert!(got.contains(&row("orders", "held", 1)), "{got:?}");
        assert!(got.contains(&row("orders", "deleted", 1)), "{got:?}");
        assert!(got.contains(&row("accounts", "held", 1)), "{got:?}");
        assert!(got.contains(&row("accounts", "deleted", 0)), "{got:?}");
        assert_eq!(
            one::<String>("SELECT string_agg(id::text, ',' ORDER BY id) FROM public.orders")
                .as_deref(),
            Some("10,20")
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.accounts WHERE id = 1"),
            Some(1)
        );
    }

    #[pg_test]
    fn subject_hold_keeps_everything_of_the_subject() {
        setup();
        run("SELECT privacy.place_subject_hold('1', 'tax audit')");
        let before = snapshot();
        let got = forget("SELECT * FROM privacy.forget_subject('1')");
        assert!(got.contains(&row("accounts", "held", 1)), "{got:?}");
        assert!(got.contains(&row("orders", "held", 2)), "{got:?}");
        assert!(got.contains(&row("invoices", "held", 1)), "{got:?}");
        assert!(
            got.iter().filter(|r| r.1 != "held").all(|r| r.2 == 0),
            "{got:?}"
        );
        assert_eq!(snapshot(), before);
    }

    #[pg_test]
    fn caller_needs_privileges() {
        setup();
        run("CREATE ROLE subj_clerk");
        run("GRANT USAGE ON SCHEMA privacy TO subj_clerk");
        run("SET LOCAL ROLE subj_clerk");
        assert_sqlstate("SELECT privacy.export_subject('1')", "42501");
        assert_sqlstate("SELECT * FROM privacy.forget_subject('1')", "42501");
        assert_sqlstate(
            "SELECT privacy.object_to_purpose('1', 'marketing')",
            "42501",
        );
        assert_sqlstate(
            "SELECT privacy.withdraw_objection('1', 'marketing')",
            "42501",
        );
        assert_sqlstate("SELECT count(*) FROM privacy.objections", "42501");
        run("RESET ROLE");
        run("GRANT EXECUTE ON FUNCTION privacy.forget_subject(text, boolean) TO subj_clerk");
        run("GRANT SELECT ON ALL TABLES IN SCHEMA public TO subj_clerk");
        run("SET LOCAL ROLE subj_clerk");
        let before = snapshot_as_superuser();
        let (state, msg) = error_of("SELECT * FROM privacy.forget_subject('1')").unwrap();
        assert_eq!(state, "42501");
        assert!(
            msg.starts_with("permission denied to erase the subject from table public."),
            "{msg}"
        );
        run("RESET ROLE");
        assert_eq!(snapshot(), before);
    }

    fn snapshot_as_superuser() -> String {
        run("RESET ROLE");
        let s = snapshot();
        run("SET LOCAL ROLE subj_clerk");
        s
    }

    #[pg_test]
    fn row_level_security_that_hides_rows_is_refused() {
        setup();
        run("CREATE ROLE subj_reader");
        run("GRANT USAGE ON SCHEMA privacy TO subj_reader");
        run("GRANT EXECUTE ON FUNCTION privacy.export_subject(text) TO subj_reader");
        run("GRANT SELECT ON ALL TABLES IN SCHEMA public TO subj_reader");
        run("ALTER TABLE public.orders ENABLE ROW LEVEL SECURITY");
        run("CREATE POLICY only_paris ON public.orders USING (ship_to = 'Paris')");
        run("SET LOCAL ROLE subj_reader");
        let (state, msg) = error_of("SELECT privacy.export_subject('1')").unwrap();
        assert_eq!(state, "42501", "{msg}");
        assert!(
            msg.contains("row-level security") && msg.contains("public.orders"),
            "{msg}"
        );
        run("RESET ROLE");
        run("ALTER TABLE public.orders DISABLE ROW LEVEL SECURITY");
        run("SET LOCAL ROLE subj_reader");
        let doc = export("1");
        assert_eq!(
            doc["tables"]["public.orders"]["rows"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        run("RESET ROLE");
    }

    #[pg_test]
    fn objections_and_may_process() {
        setup();
        assert_eq!(
            one::<bool>("SELECT privacy.may_process('1', 'marketing')"),
            Some(true)
        );
        run("SELECT privacy.object_to_purpose('1', 'marketing')");
        run("SELECT privacy.object_to_purpose('1', 'Marketing')");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.objections"),
            Some(1)
        );
        assert_eq!(
            one::<bool>("SELECT privacy.may_process('1', 'marketing')"),
            Some(false)
        );
        assert_eq!(
            one::<bool>("SELECT privacy.may_process('1', 'MARKETING')"),
            Some(false)
        );
        assert_eq!(
            one::<bool>("SELECT privacy.may_process('1', 'service')"),
            Some(true)
        );
        assert_eq!(
            one::<bool>("SELECT privacy.may_process('2', 'marketing')"),
            Some(true)
        );
        assert_eq!(
            one::<bool>("SELECT privacy.may_process(NULL, 'marketing')"),
            Some(true)
        );
        assert_sqlstate("SELECT privacy.may_process('1', 'nosuch')", "42704");
        assert_sqlstate("SELECT privacy.may_process('1', NULL)", "22004");
        assert_sqlstate("SELECT privacy.object_to_purpose('1', 'nosuch')", "42704");
        assert_sqlstate(
            "SELECT privacy.object_to_purpose(NULL, 'marketing')",
            "22004",
        );
        assert_sqlstate("SELECT privacy.object_to_purpose('1', NULL)", "22004");
        assert_sqlstate("SELECT privacy.withdraw_objection('1', 'nosuch')", "42704");
        // seen by the same statement's snapshot rules as SQL
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.accounts WHERE privacy.may_process(id::text, 'marketing')"),
            Some(1)
        );
        run("SELECT privacy.withdraw_objection('1', 'marketing')");
        run("SELECT privacy.withdraw_objection('1', 'marketing')");
        assert_eq!(
            one::<bool>("SELECT privacy.may_process('1', 'marketing')"),
            Some(true)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.audit_log WHERE action IN ('object_to_purpose', 'withdraw_objection')"),
            Some(4)
        );
        // an objection outlives its purpose being dropped and defined again
        run("SELECT privacy.define_purpose('newsletter')");
        run("SELECT privacy.object_to_purpose('2', 'newsletter')");
        run("SELECT privacy.drop_purpose('newsletter')");
        assert_sqlstate("SELECT privacy.may_process('2', 'newsletter')", "42704");
        run("SELECT privacy.define_purpose('newsletter')");
        assert_eq!(
            one::<bool>("SELECT privacy.may_process('2', 'newsletter')"),
            Some(false)
        );
    }

    #[pg_test]
    fn may_process_in_a_row_level_security_policy() {
        setup();
        run("CREATE TABLE public.newsletter (account_id bigint PRIMARY KEY, email text)");
        run("INSERT INTO public.newsletter SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 1000) g");
        run("ALTER TABLE public.newsletter ENABLE ROW LEVEL SECURITY");
        run("CREATE POLICY consent ON public.newsletter
               USING (privacy.may_process(account_id::text, 'marketing'))");
        run("CREATE ROLE subj_mailer");
        run("GRANT SELECT ON public.newsletter TO subj_mailer");
        run("SELECT privacy.object_to_purpose('7', 'marketing')");
        run("SELECT privacy.object_to_purpose('700', 'marketing')");
        // no privilege on the privacy schema is needed to be filtered by the policy
        run("SET LOCAL ROLE subj_mailer");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.newsletter"),
            Some(998)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.newsletter WHERE account_id IN (7, 700)"),
            Some(0)
        );
        run("RESET ROLE");
        run("GRANT USAGE ON SCHEMA privacy TO subj_mailer");
        // answers follow the statement's snapshot: an objection made in the
        // same transaction is seen by the next statement (the bulk-loaded
        // answers of the previous one are not reused)
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.newsletter WHERE privacy.may_process(account_id::text, 'marketing')"),
            Some(998)
        );
        run("SELECT privacy.object_to_purpose('8', 'marketing')");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.newsletter WHERE privacy.may_process(account_id::text, 'marketing')"),
            Some(997)
        );
        run("SELECT privacy.withdraw_objection('7', 'marketing')");
        run("SELECT privacy.withdraw_objection('8', 'marketing')");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM public.newsletter WHERE privacy.may_process(account_id::text, 'marketing')"),
            Some(999)
        );
        run("SELECT privacy.object_to_purpose('7', 'marketing')");
        run("SET LOCAL ROLE subj_mailer");
        // the mailer can ask but cannot read who objected
        assert_eq!(
            one::<bool>("SELECT privacy.may_process('7', 'marketing')"),
            Some(false)
        );
        assert_sqlstate("SELECT * FROM privacy.objections", "42501");
        run("RESET ROLE");
        // the function is declared STABLE and PARALLEL SAFE
        assert_eq!(
            one::<String>(
                "SELECT provolatile::text || proparallel::text FROM pg_proc
                  WHERE oid = 'privacy.may_process(text, text)'::regprocedure"
            )
            .as_deref(),
            Some("ss")
        );
    }

    #[pg_test]
    fn audit_log_never_holds_the_subject_id() {
        setup();
        run("CREATE TABLE public.contacts (email text PRIMARY KEY, name text)");
        run("INSERT INTO public.contacts VALUES ('zq-secret-7f3a9@example.com', 'Zed')");
        run("SELECT privacy.mark_subject('public.contacts', 'email')");
        run("SELECT privacy.tag_column('public.contacts', 'name', ARRAY['service'])");
        let id = "zq-secret-7f3a9@example.com";
        for sql in [
            "SELECT privacy.export_subject($1)",
            "SELECT privacy.object_to_purpose($1, 'marketing')",
            "SELECT privacy.withdraw_objection($1, 'marketing')",
            "SELECT count(*) FROM privacy.forget_subject($1, true)",
            "SELECT count(*) FROM privacy.forget_subject($1)",
        ] {
            Spi::run_with_args(sql, &[id.into()]).unwrap();
        }
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.audit_log
                         WHERE action IN ('export_subject', 'object_to_purpose', 'withdraw_objection', 'forget_subject')"),
            Some(5)
        );
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.audit_log a WHERE a::text LIKE '%7f3a9%'"),
            Some(0)
        );
        // the same pseudonym on every entry, so the entries of one subject can be linked
        assert_eq!(
            one::<i64>("SELECT count(DISTINCT details->>'subject_pseudonym') FROM privacy.audit_log
                         WHERE action IN ('export_subject', 'object_to_purpose', 'withdraw_objection', 'forget_subject')"),
            Some(1)
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM public.contacts"), Some(0));
    }

    #[pg_test]
    fn null_arguments_are_refused() {
        assert_sqlstate("SELECT privacy.export_subject(NULL)", "22004");
        assert_sqlstate("SELECT * FROM privacy.forget_subject(NULL)", "22004");
        assert_sqlstate("SELECT * FROM privacy.forget_subject('1', NULL)", "22004");
    }

    #[pg_test]
    fn legal_table_with_not_null_subject_needs_a_method() {
        setup();
        run("SELECT privacy.create_key()");
        // the ledger must be kept; its NOT NULL subject column is not an FK
        run("CREATE TABLE public.ledger (id int PRIMARY KEY, customer bigint NOT NULL, amount numeric, memo text)");
        run("INSERT INTO public.ledger VALUES (1, 1, 10, 'ada paid'), (2, 2, 20, 'alan paid')");
        run("SELECT privacy.mark_subject('public.ledger', 'customer')");
        run("SELECT privacy.tag_column('public.ledger', 'amount', ARRAY['billing'])");
        run("SELECT privacy.tag_column('public.ledger', 'memo', ARRAY['service'])");
        // kept rows would still point at the person: refused, nothing changed
        let before = snapshot();
        let (state, msg) = error_of("SELECT * FROM privacy.forget_subject('1')").unwrap();
        assert_eq!(state, "55000", "{msg}");
        assert!(msg.contains("\"customer\""), "{msg}");
        assert_eq!(snapshot(), before);
        run("SECURITY LABEL FOR privacy ON COLUMN public.ledger.customer IS 'SUBJECT ANONYMIZE PSEUDONYMIZE'");
        let got = forget("SELECT * FROM privacy.forget_subject('1')");
        assert!(got.contains(&row("ledger", "anonymized", 1)), "{got:?}");
        assert_eq!(
            one::<String>("SELECT format('%s|%s|%s', customer < 0, amount, memo) FROM public.ledger WHERE id = 1")
                .as_deref(),
            Some("t|10|")
        );
        assert_eq!(
            one::<String>("SELECT format('%s|%s', customer, memo) FROM public.ledger WHERE id = 2")
                .as_deref(),
            Some("2|alan paid")
        );
        // nothing of subject 1 is left to find
        let again = forget("SELECT * FROM privacy.forget_subject('1')");
        assert!(again.iter().all(|(_, _, n)| *n == 0), "{again:?}");
    }
}
