//! Issue 13 on a sample schema of the DVD-rental shape: `customer`
//! references `address`, `rental` references `customer`, `payment` (kept
//! for a legal obligation) references both, every foreign key `ON DELETE
//! RESTRICT` / `NO ACTION`. (Partitioned payments come with the partition
//! work.)

#[pgrx::pg_schema]
mod tests {
    use crate::tests::{error_hint_of, one, run};
    use pgrx::prelude::*;
    use serde_json::Value;

    fn schema() {
        run("LOCK TABLE privacy.key_secrets IN SHARE ROW EXCLUSIVE MODE");
        run("SELECT privacy.create_key('default', '\\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'::bytea)");
        run("SELECT privacy.define_purpose('service', 'renting films', 'contract')");
        run("SELECT privacy.define_purpose('billing', 'bookkeeping law', 'legal_obligation')");
        run(
            "CREATE TABLE public.address (address_id int PRIMARY KEY, address text NOT NULL,
                 phone text NOT NULL, postal_code text)",
        );
        run(
            "CREATE TABLE public.customer (customer_id int PRIMARY KEY, first_name text NOT NULL,
                 email text, address_id int NOT NULL REFERENCES public.address ON DELETE RESTRICT,
                 active boolean NOT NULL DEFAULT true)",
        );
        run("CREATE INDEX ON public.customer (address_id)");
        run("CREATE TABLE public.rental (rental_id int PRIMARY KEY, rental_date timestamptz NOT NULL,
                 customer_id int NOT NULL REFERENCES public.customer ON DELETE RESTRICT)");
        run("CREATE INDEX ON public.rental (customer_id)");
        run("CREATE TABLE public.payment (payment_id int PRIMARY KEY,
                 customer_id int NOT NULL REFERENCES public.customer,
                 rental_id int REFERENCES public.rental,
                 amount numeric NOT NULL, payment_date timestamptz NOT NULL)");
        run("CREATE INDEX ON public.payment (customer_id)");
        run("CREATE INDEX ON public.payment (rental_id)");
        run("SECURITY LABEL FOR privacy ON COLUMN public.address.address IS 'PURPOSE service CATEGORY contact'");
        run("SECURITY LABEL FOR privacy ON COLUMN public.address.phone IS 'PURPOSE service CATEGORY contact'");
        run("SECURITY LABEL FOR privacy ON COLUMN public.address.postal_code IS 'PURPOSE service CATEGORY contact'");
        run("SELECT privacy.mark_subject('customer', 'customer_id')");
        run("SELECT privacy.tag_column('customer', 'first_name', ARRAY['service'], 'identity')");
        run("SELECT privacy.tag_column('customer', 'email', ARRAY['service'], 'contact', 'ANONYMIZE EMAIL')");
        run("SELECT privacy.mark_subject('rental', 'customer_id')");
        run("SELECT privacy.tag_column('rental', 'rental_date', ARRAY['service'])");
        run("SELECT privacy.mark_subject('payment', 'customer_id')");
        // kept for the bookkeeping law: NOT NULL numeric, no method needed
        run("SELECT privacy.tag_column('payment', 'amount', ARRAY['billing'], 'financial')");
        run("SELECT privacy.tag_column('payment', 'payment_date', ARRAY['billing'])");
        run("INSERT INTO public.address VALUES
               (1, '47 MySakila Drive', '555-0101', '10001'),
               (2, '28 MySQL Boulevard', '555-0102', NULL)");
        // customers 2 and 3 share an address
        run("INSERT INTO public.customer VALUES
               (1, 'Mary', 'mary@example.org', 1, true),
               (2, 'Patricia', 'pat@example.org', 2, true),
               (3, 'Linda', 'linda@example.org', 2, false)");
        run("INSERT INTO public.rental VALUES
               (1, '2020-05-24 22:53+00', 1), (2, '2020-05-25 11:30+00', 1),
               (3, '2020-05-26 09:00+00', 2), (4, '2026-11-30 10:00+00', 3)");
        run("INSERT INTO public.payment VALUES
               (1, 1, 1, 2.99, '2020-05-25'), (2, 1, 2, 0.99, '2020-05-28'),
               (3, 2, 3, 5.99, '2020-05-27'), (4, 3, 4, 4.99, '2026-11-30')");
    }

    fn export(subject: &str) -> Value {
        one::<pgrx::JsonB>(&format!("SELECT privacy.export_subject('{subject}')"))
            .unwrap()
            .0
    }

    fn forget(subject: &str, dry_run: bool) -> String {
        one::<String>(&format!(
            "SELECT string_agg(table_name::text || ' ' || action || ' ' || rows, ', ' ORDER BY table_name::text, action)
               FROM privacy.forget_subject('{subject}', dry_run => {dry_run})"
        ))
        .unwrap_or_default()
    }

    #[pg_test]
    fn export_includes_the_address_once() {
        schema();
        let doc = export("1");
        let t = &doc["tables"];
        // the address the customer's row references, once (two rentals,
        // one customer row)
        let addr = t["public.address"]["rows"].as_array().unwrap();
        assert_eq!(addr.len(), 1, "{doc}");
        assert_eq!(addr[0]["address"], "47 MySakila Drive");
        assert_eq!(addr[0]["postal_code"], "10001");
        assert_eq!(
            t["public.address"]["columns"]["phone"]["category"],
            "contact"
        );
        assert_eq!(t["public.customer"]["rows"].as_array().unwrap().len(), 1);
        assert_eq!(t["public.rental"]["rows"].as_array().unwrap().len(), 2);
        assert_eq!(t["public.payment"]["rows"].as_array().unwrap().len(), 2);
        // the audit counts every row once: 1 + 1 + 2 + 2
        assert_eq!(
            one::<i64>(
                "SELECT (details->>'rows')::bigint FROM privacy.audit_log
                         WHERE action = 'export_subject' ORDER BY id DESC LIMIT 1"
            ),
            Some(6)
        );
        // a subject whose customer row shares its address: that address
        let doc = export("3");
        let addr = doc["tables"]["public.address"]["rows"].as_array().unwrap();
        assert_eq!(addr.len(), 1);
        assert_eq!(addr[0]["address"], "28 MySQL Boulevard");
        // an unknown subject: no row anywhere
        let doc = export("99");
        assert_eq!(
            doc["tables"]["public.address"]["rows"]
                .as_array()
                .map(|a| a.len()),
            Some(0)
        );
    }

    #[pg_test]
    fn erasure_keeps_payments_unlinked_and_takes_the_address() {
        schema();
        // payments are kept for the law, but their NOT NULL foreign key to
        // the customer cannot be unlinked: refused before anything changes,
        // with a hint that works
        let (state, msg, hint) = error_hint_of("SELECT * FROM privacy.forget_subject('1')");
        assert_eq!(state.as_deref(), Some("55000"), "{msg:?}");
        assert!(msg.unwrap().contains("customer_id"));
        let hint = hint.unwrap();
        assert!(
            hint.contains("DROP NOT NULL") && hint.contains("public.customer"),
            "{hint}"
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM public.customer"), Some(3));
        // the hint: make the link nullable; the payment's rental link is
        // tagged too, so the kept payments reference nothing of the subject
        run("ALTER TABLE public.payment ALTER COLUMN customer_id DROP NOT NULL");
        run("SELECT privacy.tag_column('payment', 'rental_id', ARRAY['service'])");
        let dry = forget("1", true);
        assert_eq!(
            dry,
            "address deleted 1, customer deleted 1, payment anonymized 2, rental deleted 2"
        );
        // the dry run changed nothing
        assert_eq!(one::<i64>("SELECT count(*) FROM public.address"), Some(2));
        assert_eq!(forget("1", false), dry);
        // payments kept, amounts and dates as they were, no link left
        assert_eq!(
            one::<String>("SELECT string_agg(payment_id || ':' || coalesce(customer_id::text, '-') || ':'
                              || coalesce(rental_id::text, '-') || ':' || amount, ',' ORDER BY payment_id)
                             FROM public.payment WHERE payment_id IN (1, 2)").as_deref(),
            Some("1:-:-:2.99,2:-:-:0.99")
        );
        assert_eq!(
            one::<String>(
                "SELECT string_agg(address_id::text, ',' ORDER BY address_id) FROM public.address"
            )
            .as_deref(),
            Some("2")
        );
        // the other subjects' data is untouched; an address another
        // customer still uses stays
        assert_eq!(
            forget("2", false),
            "address deleted 0, customer deleted 1, payment anonymized 1, rental deleted 1"
        );
        assert_eq!(
            one::<String>(
                "SELECT string_agg(address_id::text, ',' ORDER BY address_id) FROM public.address"
            )
            .as_deref(),
            Some("2")
        );
        assert_eq!(
            one::<String>("SELECT first_name FROM public.customer WHERE customer_id = 3")
                .as_deref(),
            Some("Linda")
        );
    }

    #[pg_test]
    fn a_held_address_is_kept_and_reported() {
        schema();
        run("ALTER TABLE public.payment ALTER COLUMN customer_id DROP NOT NULL");
        run("SELECT privacy.tag_column('payment', 'rental_id', ARRAY['service'])");
        run("SELECT privacy.place_hold('address', 'address_id = 1', 'fraud investigation')");
        assert_eq!(
            forget("1", false),
            "address deleted 0, address held 1, customer deleted 1, payment anonymized 2, rental deleted 2"
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM public.address"), Some(2));
    }

    #[pg_test]
    fn a_dry_run_of_a_rental_purge_reports_the_payments_it_would_trip_over() {
        schema();
        run("SELECT privacy.add_retention_policy('rental', '1 year', 'rental_date', name => 'old_rentals')");
        // payments reference the old rentals (NO ACTION): the dry run hits
        // the foreign key as the real run would
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.run_retention('old_rentals', dry_run => true) WHERE rows IS NULL"),
            Some(1)
        );
        assert_eq!(
            one::<String>("SELECT status || ' ' || dry_run || ' ' || (error LIKE '%payment%') FROM privacy.retention_runs WHERE policy = 'old_rentals'").as_deref(),
            Some("failed true true")
        );
        assert_eq!(one::<i64>("SELECT count(*) FROM public.rental"), Some(4));
    }
}
