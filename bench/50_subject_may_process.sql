-- title: `privacy.may_process` as a row filter over `:rows` customers, 1 % of whom objected to `marketing`: in a WHERE clause, in a row-level security policy (counted by a role the policy applies to), against the hand-written anti-join on `privacy.objections` that computes the same rows, and a bare scan.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_privacy;
SELECT privacy.define_purpose('marketing');
DROP TABLE IF EXISTS bench_customers CASCADE;
CREATE TABLE bench_customers (id bigint PRIMARY KEY, email text NOT NULL, name text);
INSERT INTO bench_customers SELECT g, 'user' || g || '@example.com', 'User ' || g FROM generate_series(1, :rows) g;
SELECT count(privacy.object_to_purpose(g::text, 'marketing')) FROM generate_series(1, :rows, 100) g;
VACUUM ANALYZE bench_customers;
VACUUM ANALYZE privacy.objections;
DROP ROLE IF EXISTS bench_mailer;
CREATE ROLE bench_mailer;
GRANT SELECT ON bench_customers TO bench_mailer;
ALTER TABLE bench_customers ENABLE ROW LEVEL SECURITY;
CREATE POLICY consent ON bench_customers FOR SELECT TO bench_mailer
  USING (privacy.may_process(id::text, 'marketing'));
-- count(*) as the mailer: the policy applies (a superuser bypasses it)
CREATE FUNCTION public.bench_count_as_mailer() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    EXECUTE 'SET LOCAL ROLE bench_mailer';
    SELECT count(*) INTO n FROM public.bench_customers;
    EXECUTE 'RESET ROLE';
    RETURN n;
END $$;
-- the compared queries return the same count (checked before timing)
DO $$
DECLARE a bigint; b bigint; c bigint;
BEGIN
    SELECT count(*) INTO a FROM bench_customers WHERE privacy.may_process(id::text, 'marketing');
    SELECT count(*) INTO b FROM bench_customers c
     WHERE NOT EXISTS (SELECT 1 FROM privacy.objections o WHERE o.subject = c.id::text AND o.purpose = 'marketing');
    c := public.bench_count_as_mailer();
    IF a <> b OR a <> c THEN
        RAISE EXCEPTION 'may_process (%), anti-join (%) and the policy (%) disagree', a, b, c;
    END IF;
END $$;
-- baseline: bare scan
-- case: bare scan | SELECT count(*) FROM bench_customers
-- case: id::text only | SELECT count(id::text) FROM bench_customers
-- case: anti-join on privacy.objections | SELECT count(*) FROM bench_customers c WHERE NOT EXISTS (SELECT 1 FROM privacy.objections o WHERE o.subject = c.id::text AND o.purpose = 'marketing')
-- case: WHERE may_process | SELECT count(*) FROM bench_customers WHERE privacy.may_process(id::text, 'marketing')
-- case: RLS policy with may_process | SELECT public.bench_count_as_mailer()
-- case: may_process, one subject | SELECT privacy.may_process('4201', 'marketing')
-- ratio: WHERE may_process / anti-join on privacy.objections <= 2
-- ratio: RLS policy with may_process / anti-join on privacy.objections <= 2
