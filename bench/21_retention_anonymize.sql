-- title: Anonymization of 50 % of `:rows` rows by an `anonymize` retention policy: `email` (tagged `ANONYMIZE EMAIL`) and `name` (NOT NULL text, default `PSEUDONYMIZE`), against one plain `UPDATE` computing the same two columns with pgcrypto's `hmac()` (`encode(hmac(convert_to(v, 'UTF8'), secret, 'sha256'), 'hex')`; the e-mail as the first 16 hex digits of the hash of the lowercased address, `@`, and the lowercased domain), on the same rows. Before every timed query the table is rebuilt from a copy (committed, vacuumed, analyzed). The pgcrypto expressions compute the very same values (checked before timing).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_privacy;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
SELECT privacy.define_purpose('service', NULL, 'contract')
 WHERE NOT EXISTS (SELECT FROM privacy.purposes WHERE name = 'service');
SELECT privacy.create_key('default', '\x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08')
 WHERE NOT EXISTS (SELECT FROM privacy.keys WHERE name = 'default');
DROP TABLE IF EXISTS bench_anon, bench_anon_src;
CREATE TABLE bench_anon_src (id bigint NOT NULL, created_at timestamptz NOT NULL, email text NOT NULL, name text NOT NULL);
INSERT INTO bench_anon_src
SELECT g,
       CASE WHEN g % 2 = 0 THEN timestamptz '2020-01-01 00:00+00' + g * interval '30 seconds'
            ELSE now() - interval '1 day' + g * interval '10 milliseconds' END,
       'User' || g || '@Example.com', 'User number ' || g
  FROM generate_series(1, :rows) g;
CREATE TABLE bench_anon (LIKE bench_anon_src);
ALTER TABLE bench_anon ADD PRIMARY KEY (id);
CREATE INDEX bench_anon_created_at ON bench_anon (created_at);
INSERT INTO bench_anon SELECT * FROM bench_anon_src;
VACUUM ANALYZE bench_anon_src, bench_anon;
SELECT privacy.tag_column('bench_anon', 'email', ARRAY['service'], 'contact', 'EMAIL');
SELECT privacy.tag_column('bench_anon', 'name', ARRAY['service']);
SELECT privacy.add_retention_policy('bench_anon', '1 year', 'created_at', action => 'anonymize', name => 'bench_anon')
 WHERE NOT EXISTS (SELECT FROM privacy.retention_policies WHERE name = 'bench_anon');
-- the plain UPDATE computes what the policy writes
DO $$
BEGIN
    IF EXISTS (SELECT FROM bench_anon_src
                WHERE privacy.pseudonymize(name) <> encode(hmac(convert_to(name, 'UTF8'),
                          '\x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'::bytea, 'sha256'), 'hex')
                   OR privacy.pseudonymize_email(email)
                      <> left(encode(hmac(convert_to(lower(email), 'UTF8'),
                          '\x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'::bytea, 'sha256'), 'hex'), 16)
                         || '@' || lower(split_part(email, '@', 2))
                LIMIT 1000) THEN
        RAISE EXCEPTION 'the policy and the pgcrypto UPDATE disagree';
    END IF;
END $$;
-- before: TRUNCATE bench_anon;
-- before: INSERT INTO bench_anon SELECT * FROM bench_anon_src;
-- before: VACUUM ANALYZE bench_anon;
-- show: rows the policy anonymizes | SELECT rows FROM privacy.run_retention('bench_anon', dry_run => true)
-- show: rows the UPDATE rewrites | SELECT count(*) FROM bench_anon WHERE created_at < now() - interval '1 year'
-- case: run_retention (anonymize) | SELECT count(*) FROM privacy.run_retention('bench_anon')
-- case: plain UPDATE with pgcrypto hmac() | UPDATE bench_anon SET email = left(encode(hmac(convert_to(lower(email), 'UTF8'), '\x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'::bytea, 'sha256'), 'hex'), 16) || '@' || lower(split_part(email, '@', 2)), name = encode(hmac(convert_to(name, 'UTF8'), '\x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'::bytea, 'sha256'), 'hex') WHERE created_at < now() - interval '1 year'
-- ratio: run_retention (anonymize) / plain UPDATE with pgcrypto hmac() <= 1.0
