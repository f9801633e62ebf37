-- title: Keyed-hash pseudonymization over e-mail-like text values (about 25 bytes each): `privacy.pseudonymize` against pgcrypto's HMAC, the builtin `md5()` and a bare scan of the same column, same data, same run. The pgcrypto expression computes the very same value (checked before timing).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_privacy;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
DROP TABLE IF EXISTS bench_values;
CREATE TABLE bench_values AS
SELECT i AS id, 'user' || i || '@example.com' AS v, i::bigint AS n, gen_random_uuid() AS u
  FROM generate_series(1, :rows) i;
VACUUM ANALYZE bench_values;
SELECT privacy.create_key('bench', '\x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08')
 WHERE NOT EXISTS (SELECT FROM privacy.keys WHERE name = 'bench');
-- the compared expressions compute the same pseudonyms
DO $$
BEGIN
    IF EXISTS (SELECT FROM bench_values
                WHERE privacy.pseudonymize(v, 'bench')
                      <> encode(hmac(convert_to(v, 'UTF8'),
                                     '\x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'::bytea,
                                     'sha256'), 'hex')) THEN
        RAISE EXCEPTION 'pseudonymize() and pgcrypto hmac() disagree';
    END IF;
END $$;
-- baseline: bare scan
-- case: bare scan | SELECT count(v) FROM bench_values
-- case: md5() | SELECT count(md5(v)) FROM bench_values
-- case: pgcrypto hmac() | SELECT count(encode(hmac(convert_to(v, 'UTF8'), '\x9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'::bytea, 'sha256'), 'hex')) FROM bench_values
-- case: pseudonymize(text) | SELECT count(privacy.pseudonymize(v, 'bench')) FROM bench_values
-- case: pseudonymize_email | SELECT count(privacy.pseudonymize_email(v, 'bench')) FROM bench_values
-- case: pseudonymize_bigint | SELECT count(privacy.pseudonymize_bigint(n, 'bench')) FROM bench_values
-- case: pseudonymize_uuid | SELECT count(privacy.pseudonymize_uuid(u, 'bench')) FROM bench_values
-- ratio: pseudonymize(text) / pgcrypto hmac() <= 0.25
-- ratio: pseudonymize(text) / md5() <= 0.6
