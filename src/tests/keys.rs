//! Keys and keyed-hash pseudonymization (issue 3): equality with pgcrypto,
//! key administration, privileges, the cache, the audit trail.

#[pgrx::pg_schema]
mod tests {
    use crate::tests::{assert_sqlstate, error_of, one, run};
    use pgrx::prelude::*;

    /// Test-only: the clear active secret of a key, unwrapped by the same
    /// code that keys the HMAC state.
    #[pg_extern]
    fn key_secret(name: &str) -> Option<Vec<u8>> {
        crate::keys::active_secret_for_tests(name).unwrap_or_else(|e| e.raise())
    }

    const SECRET: &str = "\\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn setup() {
        run("CREATE EXTENSION IF NOT EXISTS pgcrypto");
        run(&format!(
            "SELECT privacy.create_key('t', '{SECRET}'::bytea)"
        ));
    }

    fn secret_of(key: &str) -> String {
        one::<String>(&format!("SELECT encode(tests.key_secret('{key}'), 'hex')"))
            .expect("active secret")
    }

    #[pg_test]
    fn keys_text_equals_pgcrypto() {
        setup();
        run("CREATE TEMP TABLE v (x text)");
        run("INSERT INTO v VALUES (''), ('a'), ('Ada Lovelace'), ('żółć ☃ 𝄞 日本'),
                                  (repeat('toast me ', 12000)), (repeat('x', 64)), (repeat('y', 55))");
        // the 100 kB value really is toasted (compressed or out of line)
        assert_eq!(
            one::<bool>("SELECT pg_column_size(x) < octet_length(x) FROM v WHERE x LIKE 'toast%'"),
            Some(true)
        );
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM v
                  WHERE privacy.pseudonymize(x, 't')
                        = encode(hmac(convert_to(x, 'UTF8'),
                                      tests.key_secret('t'),
                                      'sha256'), 'hex')"
            ),
            Some(7)
        );
        assert_eq!(
            one::<i32>("SELECT length(privacy.pseudonymize('x', 't'))"),
            Some(64)
        );
        assert_eq!(
            one::<bool>("SELECT privacy.pseudonymize('x', 't') ~ '^[0-9a-f]{64}$'"),
            Some(true)
        );
        // an out-of-line value stored in a real table (external toast pointer)
        run("CREATE TEMP TABLE big (x text)");
        run("ALTER TABLE big ALTER COLUMN x SET STORAGE EXTERNAL");
        run("INSERT INTO big SELECT string_agg(md5(i::text), '') FROM generate_series(1, 3200) i");
        assert_eq!(
            one::<bool>(
                "SELECT privacy.pseudonymize(x, 't') = encode(hmac(convert_to(x, 'UTF8'),
                        tests.key_secret('t'), 'sha256'), 'hex')
                   FROM big"
            ),
            Some(true)
        );
    }

    #[pg_test]
    fn keys_bytea_bigint_uuid_equal_pgcrypto() {
        setup();
        let s = "tests.key_secret('t')";
        assert_eq!(
            one::<bool>(&format!(
                "SELECT bool_and(privacy.pseudonymize(b, 't') = hmac(b, {s}, 'sha256'))
                   FROM (VALUES (''::bytea), ('\\x00ff'::bytea), (decode(repeat('ab', 5000), 'hex'))) v(b)"
            )),
            Some(true)
        );
        assert_eq!(
            one::<i32>("SELECT octet_length(privacy.pseudonymize('\\x01'::bytea, 't'))"),
            Some(32)
        );
        assert_eq!(
            one::<bool>(&format!(
                "SELECT bool_and(privacy.pseudonymize_bigint(v, 't') =
                        (('x' || encode(substr(hmac(int8send(v), {s}, 'sha256'), 1, 8), 'hex'))::bit(64)::bigint
                         & 9223372036854775807))
                   FROM (VALUES (0::bigint), (1), (-1), (42), (9223372036854775807), (-9223372036854775808)) t(v)"
            )),
            Some(true)
        );
        assert_eq!(
            one::<bool>(
                "SELECT bool_and(privacy.pseudonymize_bigint(v, 't') >= 0)
                   FROM generate_series(1, 1000) v"
            ),
            Some(true)
        );
        assert_eq!(
            one::<bool>(&format!(
                "WITH h AS (SELECT u, hmac(uuid_send(u), {s}, 'sha256') AS h
                              FROM (VALUES ('00000000-0000-0000-0000-000000000000'::uuid),
                                           ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
                                           (gen_random_uuid())) v(u))
                 SELECT bool_and(privacy.pseudonymize_uuid(u, 't') =
                        encode(set_byte(set_byte(substr(h, 1, 16), 6, (get_byte(h, 6) & 15) | 128),
                                        8, (get_byte(h, 8) & 63) | 128), 'hex')::uuid)
                   FROM h"
            )),
            Some(true)
        );
        // version 8 and the RFC variant
        assert_eq!(
            one::<String>(
                "SELECT substr(privacy.pseudonymize_uuid(gen_random_uuid(), 't')::text, 15, 1)"
            )
            .as_deref(),
            Some("8")
        );
        assert_eq!(
            one::<bool>(
                "SELECT substr(privacy.pseudonymize_uuid(gen_random_uuid(), 't')::text, 20, 1) IN ('8','9','a','b')"
            ),
            Some(true)
        );
    }

    #[pg_test]
    fn keys_email_rules() {
        setup();
        let hash16 = |x: &str| {
            format!(
                "left(encode(hmac(convert_to({x}, 'UTF8'), tests.key_secret('t'), 'sha256'), 'hex'), 16)"
            )
        };
        let cases = [
            // (input, hashed text, domain kept)
            ("Ada@Example.COM", "ada@example.com", "example.com"),
            ("ada@example.com", "ada@example.com", "example.com"),
            (
                "\"a@b\"@Mail.Example.org",
                "\"a@b\"@mail.example.org",
                "mail.example.org",
            ),
            ("@Example.com", "@example.com", "example.com"),
            ("user@", "user@", ""),
            ("No-At-Sign", "no-at-sign", "invalid"),
            ("", "", "invalid"),
        ];
        for (input, hashed, domain) in cases {
            let got = one::<String>(&format!(
                "SELECT privacy.pseudonymize_email({}, 't')",
                pgrx::spi::quote_literal(input)
            ))
            .unwrap();
            let want = one::<String>(&format!(
                "SELECT {} || '@' || {}",
                hash16(&pgrx::spi::quote_literal(hashed)),
                pgrx::spi::quote_literal(domain)
            ))
            .unwrap();
            assert_eq!(got, want, "pseudonymize_email({input:?})");
        }
        // mixed case gives the same pseudonym: joinable across tables
        assert_eq!(
            one::<bool>(
                "SELECT privacy.pseudonymize_email('Grace@Example.NET', 't')
                      = privacy.pseudonymize_email('grace@example.net', 't')"
            ),
            Some(true)
        );
    }

    #[pg_test]
    fn keys_null_in_null_out_and_default_key() {
        setup();
        for f in [
            "privacy.pseudonymize(NULL::text, 't')",
            "privacy.pseudonymize(NULL::bytea, 't')",
            "privacy.pseudonymize_email(NULL, 't')",
            "privacy.pseudonymize_uuid(NULL, 't')",
            "privacy.pseudonymize_bigint(NULL, 't')",
            "privacy.pseudonymize('x'::text, NULL)",
        ] {
            assert_eq!(
                one::<bool>(&format!("SELECT {f} IS NULL")),
                Some(true),
                "{f}"
            );
        }
        // the default key is 'default'
        assert_sqlstate("SELECT privacy.pseudonymize('x')", "42704");
        let fp = one::<String>("SELECT privacy.create_key()").unwrap();
        assert_eq!(fp.len(), 16);
        assert_eq!(
            one::<bool>("SELECT privacy.pseudonymize('x') = privacy.pseudonymize('x', 'default')"),
            Some(true)
        );
        // generated secrets: 32 bytes, fingerprint = first 16 hex of sha256
        assert_eq!(
            one::<i32>("SELECT octet_length(tests.key_secret('default'))"),
            Some(32)
        );
        assert_eq!(
            one::<String>("SELECT left(encode(sha256(tests.key_secret('default')), 'hex'), 16)"),
            Some(fp)
        );
    }

    #[pg_test]
    fn keys_missing_key_is_42704_with_hint() {
        run("CREATE TEMP TABLE hint_of (h text)");
        run(
            r#"CREATE FUNCTION pg_temp.hint_of(stmt text) RETURNS text LANGUAGE plpgsql AS $f$
               DECLARE h text;
               BEGIN EXECUTE stmt; RETURN NULL;
               EXCEPTION WHEN OTHERS THEN GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT; RETURN SQLSTATE || ' ' || SQLERRM || ' / ' || h;
               END $f$"#,
        );
        for f in [
            "privacy.pseudonymize('x'::text, 'nokey')",
            "privacy.pseudonymize('x'::bytea, 'nokey')",
            "privacy.pseudonymize_email('a@b', 'nokey')",
            "privacy.pseudonymize_uuid(gen_random_uuid(), 'nokey')",
            "privacy.pseudonymize_bigint(1, 'nokey')",
        ] {
            let got = one::<String>(&format!(
                "SELECT pg_temp.hint_of({})",
                pgrx::spi::quote_literal(format!("SELECT {f}"))
            ));
            assert_eq!(
                got.as_deref(),
                Some("42704 key \"nokey\" does not exist / Create it with SELECT privacy.create_key('nokey');"),
                "{f}"
            );
        }
        assert_sqlstate("SELECT privacy.rotate_key('nokey')", "42704");
        assert_sqlstate("SELECT privacy.drop_key('nokey')", "42704");
    }

    #[pg_test]
    fn keys_admin_errors() {
        setup();
        assert_sqlstate("SELECT privacy.create_key('t')", "42710");
        assert_sqlstate(
            "SELECT privacy.create_key('short', '\\x00010203'::bytea)",
            "22023",
        );
        assert_sqlstate("SELECT privacy.create_key('bad name')", "22023");
        assert_sqlstate("SELECT privacy.create_key('_audit')", "22023");
        assert_sqlstate("SELECT privacy.rotate_key('_audit')", "22023");
        assert_sqlstate("SELECT privacy.drop_key('_audit')", "22023");
        assert_sqlstate("SELECT privacy.pseudonymize('x', '_audit')", "22023");
        assert_sqlstate("SELECT privacy.create_key(NULL)", "22004");
        assert_sqlstate("SELECT privacy.rotate_key(NULL)", "22004");
        assert_sqlstate("SELECT privacy.drop_key(NULL)", "22004");
        // the too-short secret is not echoed back
        let (_, msg) =
            error_of("SELECT privacy.create_key('short', '\\xdeadbeefcafe'::bytea)").unwrap();
        assert_eq!(msg, "a key secret must be at least 16 bytes long");
        // exactly 16 bytes is enough
        run("SELECT privacy.create_key('sixteen', '\\x00112233445566778899aabbccddeeff'::bytea)");
    }

    #[pg_test]
    fn keys_rotate_and_drop() {
        setup();
        let before = one::<String>("SELECT privacy.pseudonymize('ada', 't')").unwrap();
        let old_fp =
            one::<String>("SELECT fingerprint FROM privacy.keys WHERE name = 't'").unwrap();
        let fp = one::<String>("SELECT privacy.rotate_key('t')").unwrap();
        assert_ne!(fp, old_fp);
        // the same session sees the new secret at once
        let after = one::<String>("SELECT privacy.pseudonymize('ada', 't')").unwrap();
        assert_ne!(before, after);
        assert_eq!(
            one::<bool>(&format!(
                "SELECT privacy.pseudonymize('ada', 't') = encode(hmac('ada', '\\x{}'::bytea, 'sha256'), 'hex')",
                secret_of("t")
            )),
            Some(true)
        );
        // the view: two versions, one active, no secret
        assert_eq!(
            one::<String>(
                "SELECT string_agg(version || ':' || active || ':' || fingerprint, ',' ORDER BY version)
                   FROM privacy.keys WHERE name = 't'"
            ),
            Some(format!("1:false:{old_fp},2:true:{fp}"))
        );
        assert_eq!(
            one::<String>(
                "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
                  WHERE attrelid = 'privacy.keys'::regclass AND attnum > 0"
            )
            .as_deref(),
            Some("name,version,created_at,active,fingerprint")
        );
        // the retired secret is destroyed
        assert_eq!(
            one::<bool>(
                "SELECT wrapped_secret IS NULL AND root_key_fingerprint IS NULL FROM privacy.key_secrets WHERE name = 't' AND version = 1"
            ),
            Some(true)
        );
        // drop: every version goes, the key is unknown again
        run("SELECT privacy.drop_key('t')");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.key_secrets WHERE name = 't'"),
            Some(0)
        );
        assert_sqlstate("SELECT privacy.pseudonymize('ada', 't')", "42704");
        // and can be created again, from version 1
        run("SELECT privacy.create_key('t')");
        assert_eq!(
            one::<i32>("SELECT version FROM privacy.keys WHERE name = 't'"),
            Some(1)
        );
    }

    #[pg_test]
    fn keys_changes_are_audited_by_fingerprint_only() {
        setup();
        let fp1 = one::<String>("SELECT fingerprint FROM privacy.keys WHERE name = 't'").unwrap();
        let fp2 = one::<String>("SELECT privacy.rotate_key('t')").unwrap();
        let secret2 = secret_of("t");
        run("SELECT privacy.drop_key('t')");
        assert_eq!(
            one::<String>(
                "SELECT string_agg(action || ':' || (details->>'fingerprint'), ',' ORDER BY id)
                   FROM privacy.audit_log WHERE object = 't' AND action IN ('create_key', 'rotate_key')"
            ),
            Some(format!("create_key:{fp1},rotate_key:{fp2}"))
        );
        assert_eq!(
            one::<String>("SELECT details->>'secret' FROM privacy.audit_log WHERE action = 'create_key' AND object = 't'")
                .as_deref(),
            Some("given")
        );
        assert_eq!(
            one::<String>("SELECT details::text FROM privacy.audit_log WHERE action = 'drop_key'"),
            Some(format!(
                "{{\"versions\": 2, \"fingerprints\": [\"{fp1}\", \"{fp2}\"]}}"
            ))
        );
        // no secret anywhere in the audit log
        let needle1 = &SECRET[2..];
        for needle in [needle1, secret2.as_str()] {
            assert_eq!(
                one::<i64>(&format!(
                    "SELECT count(*) FROM privacy.audit_log WHERE details::text LIKE '%{needle}%'"
                )),
                Some(0)
            );
        }
    }

    #[pg_test]
    fn keys_subject_pseudonym_uses_internal_key() {
        // tests run concurrently in one cluster and several create the
        // internal key on first use: take the key administration lock
        // first, before anything this test could make another one wait on
        // (pgcrypto first: the other tests create it before they take the
        // key lock, and two orders of the same two locks can deadlock)
        run("CREATE EXTENSION IF NOT EXISTS pgcrypto");
        run("LOCK TABLE privacy.key_secrets IN SHARE ROW EXCLUSIVE MODE");
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.key_secrets WHERE name = '_audit'"),
            Some(0)
        );
        let a = crate::keys::subject_pseudonym("42").unwrap();
        let b = crate::keys::subject_pseudonym("42").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(a, crate::keys::subject_pseudonym("43").unwrap());
        // created lazily, once, with a generated 32-byte secret, audited
        assert_eq!(
            one::<i32>("SELECT octet_length(tests.key_secret('_audit'))"),
            Some(32)
        );
        assert_eq!(
            one::<i64>(
                "SELECT count(*) FROM privacy.audit_log WHERE action = 'create_key' AND object = '_audit'"
            ),
            Some(1)
        );
        assert_eq!(
            one::<String>("SELECT encode(hmac('42', tests.key_secret('_audit'), 'sha256'), 'hex')"),
            Some(a.clone())
        );
        // users' keys do not change it, and it cannot be touched through the API
        run("SELECT privacy.create_key()");
        run("SELECT privacy.rotate_key()");
        assert_eq!(crate::keys::subject_pseudonym("42").unwrap(), a);
        assert_sqlstate("SELECT privacy.drop_key('_audit')", "22023");
        // the Rust interface for other modules
        let raw = crate::keys::hmac_sha256("_audit", b"42").unwrap();
        let mut hex = String::new();
        crate::keys::hex_into(&raw, &mut hex);
        assert_eq!(hex, a);
        let err = crate::keys::hmac_sha256("nokey", b"x").unwrap_err();
        assert_eq!(err.code, pgrx::PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT);
        assert!(err.hint.unwrap().contains("privacy.create_key('nokey')"));
    }

    #[pg_test]
    fn keys_ordinary_role_reads_no_secret_and_needs_grants() {
        setup();
        run("SELECT privacy.create_key()");
        run("CREATE ROLE keys_reader LOGIN");
        run("CREATE TEMP TABLE secrets AS SELECT encode(tests.key_secret(name), 'hex') AS s FROM privacy.key_secrets WHERE active");
        assert_eq!(
            one::<bool>("SELECT count(*) >= 2 AND bool_and(length(s) = 64) FROM secrets"),
            Some(true)
        );
        run("GRANT SELECT ON secrets TO keys_reader");
        run("GRANT USAGE ON SCHEMA privacy TO keys_reader");
        // scan every relation of the extension for a secret, as the role
        run(
            r#"CREATE FUNCTION pg_temp.leaks() RETURNS text LANGUAGE plpgsql AS $f$
               DECLARE r record; n bigint; out text := '';
               BEGIN
                 FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c
                           WHERE c.relnamespace = 'privacy'::regnamespace AND c.relkind IN ('r','v','m','p','f')
                 LOOP
                   BEGIN
                     EXECUTE format('SELECT count(*) FROM %s t WHERE EXISTS (SELECT 1 FROM secrets
                                      WHERE t::text LIKE ''%%'' || s || ''%%'')', r.rel) INTO n;
                     out := out || r.rel || '=' || n || ' ';
                   EXCEPTION WHEN insufficient_privilege THEN
                     out := out || r.rel || '=denied ';
                   END;
                 END LOOP;
                 RETURN out;
               END $f$"#,
        );
        run("GRANT EXECUTE ON FUNCTION pg_temp.leaks() TO keys_reader");
        run("SET LOCAL ROLE keys_reader");
        let report = one::<String>("SELECT pg_temp.leaks()").unwrap();
        assert!(report.contains("privacy.key_secrets=denied"), "{report}");
        assert!(report.contains("privacy.keys=0"), "{report}");
        for part in report.split_whitespace() {
            assert!(
                part.ends_with("=0") || part.ends_with("=denied"),
                "{report}"
            );
        }
        assert_sqlstate("SELECT * FROM privacy.key_secrets", "42501");
        // the view is readable, and has no secret
        assert_eq!(
            one::<i64>("SELECT count(*) FROM privacy.keys WHERE name = 't'"),
            Some(1)
        );
        // no function without a grant
        for f in [
            "privacy.pseudonymize('x'::text, 't')",
            "privacy.pseudonymize('x'::bytea, 't')",
            "privacy.pseudonymize_email('a@b', 't')",
            "privacy.pseudonymize_uuid(gen_random_uuid(), 't')",
            "privacy.pseudonymize_bigint(1, 't')",
            "privacy.create_key('mine')",
            "privacy.rotate_key('t')",
            "privacy.drop_key('t')",
        ] {
            assert_sqlstate(&format!("SELECT {f}"), "42501");
        }
        run("RESET ROLE");
        run("GRANT EXECUTE ON FUNCTION privacy.pseudonymize(text, text) TO keys_reader");
        let as_owner = one::<String>("SELECT privacy.pseudonymize('x', 't')").unwrap();
        run("SET LOCAL ROLE keys_reader");
        // granted: works without any access to the secrets
        assert_eq!(
            one::<String>("SELECT privacy.pseudonymize('x', 't')"),
            Some(as_owner)
        );
        assert_sqlstate("SELECT * FROM privacy.key_secrets", "42501");
        run("RESET ROLE");
        // the search_path cannot redirect the key lookup
        run("CREATE TEMP TABLE key_secrets (name text, secret bytea, active boolean)");
        run("INSERT INTO key_secrets VALUES ('t', '\\x00000000000000000000000000000000', true)");
        run("SELECT privacy.rotate_key('t')");
        let rotated = one::<String>("SELECT privacy.pseudonymize('x', 't')").unwrap();
        run("SET LOCAL search_path = pg_temp, public");
        run("SET LOCAL ROLE keys_reader");
        assert_eq!(
            one::<String>("SELECT privacy.pseudonymize('x', 't')"),
            Some(rotated)
        );
        run("RESET ROLE");
    }

    #[pg_test]
    fn keys_parallel_workers_compute_the_same() {
        setup();
        run("CREATE TABLE par (id int, v text)");
        run("INSERT INTO par SELECT i, 'user' || i || '@example.com' FROM generate_series(1, 20000) i");
        run("ANALYZE par");
        let serial = one::<String>(
            "SELECT md5(string_agg(privacy.pseudonymize(v, 't'), ',' ORDER BY id)) FROM par",
        );
        run("SET LOCAL force_parallel_mode = on");
        run("SET LOCAL parallel_setup_cost = 0");
        run("SET LOCAL parallel_tuple_cost = 0");
        run("SET LOCAL min_parallel_table_scan_size = 0");
        run("SET LOCAL max_parallel_workers_per_gather = 2");
        let plan = Spi::connect(|c| {
            let rows = c
                .select(
                    "EXPLAIN (COSTS OFF) SELECT privacy.pseudonymize(v, 't') FROM par WHERE id % 2 = 0",
                    None,
                    &[],
                )
                .unwrap();
            rows.into_iter()
                .map(|r| r.get::<String>(1).unwrap().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        });
        assert!(plan.contains("Gather"), "{plan}");
        let parallel = one::<String>(
            "SELECT md5(string_agg(p, ',' ORDER BY id)) FROM
               (SELECT id, privacy.pseudonymize(v, 't') AS p FROM par) s",
        );
        assert_eq!(serial, parallel);
    }

    #[pg_test]
    fn keys_functions_are_marked_right() {
        assert_eq!(
            one::<String>(
                "SELECT string_agg(p.oid::regprocedure::text || ':' || provolatile::text
                                   || CASE WHEN proisstrict THEN 't' ELSE 'f' END || proparallel::text,
                                   ' ' ORDER BY p.oid::regprocedure::text)
                   FROM pg_proc p WHERE pronamespace = 'privacy'::regnamespace AND proname LIKE 'pseudonymize%'"
            )
            .as_deref(),
            Some(
                "privacy.pseudonymize(bytea,text):sts privacy.pseudonymize(text,text):sts \
                 privacy.pseudonymize_bigint(bigint,text):sts privacy.pseudonymize_email(text,text):sts \
                 privacy.pseudonymize_uuid(uuid,text):sts"
            )
        );
        assert_eq!(
            one::<bool>(
                "SELECT bool_and(NOT has_function_privilege('public', p.oid, 'EXECUTE'))
                   FROM pg_proc p WHERE pronamespace = 'privacy'::regnamespace
                    AND proname IN ('pseudonymize', 'pseudonymize_email', 'pseudonymize_uuid',
                                    'pseudonymize_bigint', 'create_key', 'rotate_key', 'drop_key',
                                    'rotate_root_key')"
            ),
            Some(true)
        );
    }

    /// The root key of the test cluster (`pg_test::postgresql_conf_options`).
    const ROOT: &str = "5f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    const PREVIOUS_ROOT: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn root_fp(hex: &str) -> String {
        crate::keys::rootkey::RootKey::parse(hex.as_bytes())
            .unwrap()
            .fingerprint()
            .to_owned()
    }

    #[pg_test]
    fn keys_secrets_are_stored_wrapped() {
        setup();
        // no clear column: the secret is wrapped, bound to the root key
        assert_eq!(
            one::<String>(
                "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
                  WHERE attrelid = 'privacy.key_secrets'::regclass AND attnum > 0 AND NOT attisdropped"
            )
            .as_deref(),
            Some("name,version,wrapped_secret,fingerprint,active,created_at,retired_at,root_key_fingerprint")
        );
        let fp = root_fp(ROOT);
        assert_eq!(
            one::<String>("SELECT privacy.root_key_fingerprint()"),
            Some(fp.clone())
        );
        assert_eq!(
            one::<String>(&format!(
                "SELECT octet_length(wrapped_secret) || ' ' || root_key_fingerprint
                        || ' ' || (position('{SECRET}'::bytea IN wrapped_secret) = 0)
                        || ' ' || (position(substr('{SECRET}'::bytea, 1, 8) IN wrapped_secret) = 0)
                   FROM privacy.key_secrets WHERE name = 't'"
            )),
            Some(format!("61 {fp} true true"))
        );
        // the unwrapped secret is the given one, and hashes like pgcrypto
        assert_eq!(
            one::<bool>(&format!("SELECT tests.key_secret('t') = '{SECRET}'::bytea")),
            Some(true)
        );
        assert_eq!(
            one::<bool>(&format!(
                "SELECT privacy.pseudonymize('ada', 't') = encode(hmac('ada', '{SECRET}'::bytea, 'sha256'), 'hex')"
            )),
            Some(true)
        );
        // the listing: which root key wraps each version; PUBLIC may read it
        run("SELECT privacy.rotate_key('t')");
        assert_eq!(
            one::<String>(
                "SELECT string_agg(format('%s/%s/%s/%s', version, active, length(fingerprint), root_key_fingerprint), ',' ORDER BY version)
                   FROM privacy.key_wrapping WHERE name = 't'"
            ),
            Some(format!("1/f/16/,2/t/16/{fp}"))
        );
        assert_eq!(
            one::<bool>("SELECT has_table_privilege('public', 'privacy.key_wrapping', 'SELECT')"),
            Some(true)
        );
    }

    #[pg_test]
    fn keys_a_swapped_or_altered_wrapped_secret_is_refused() {
        setup();
        run("SELECT privacy.create_key('u', '\\x101112131415161718191a1b1c1d1e1f')");
        run("SELECT privacy.create_key('w', '\\x202122232425262728292a2b2c2d2e2f')");
        // t's wrapped secret copied onto u (same root key): does not authenticate
        run("UPDATE privacy.key_secrets SET wrapped_secret = (SELECT wrapped_secret FROM privacy.key_secrets WHERE name = 't') WHERE name = 'u'");
        let (state, msg) = error_of("SELECT privacy.pseudonymize('x', 'u')").unwrap();
        assert_eq!(state, "XX001");
        assert_eq!(
            msg,
            "the wrapped secret of key \"u\" version 1 does not authenticate"
        );
        // one altered byte
        run("UPDATE privacy.key_secrets SET wrapped_secret = set_byte(wrapped_secret, 20, get_byte(wrapped_secret, 20) # 1) WHERE name = 'w'");
        assert_sqlstate("SELECT privacy.pseudonymize('x', 'w')", "XX001");
        // t itself still works
        assert_eq!(
            one::<bool>(&format!(
                "SELECT privacy.pseudonymize('x', 't') = encode(hmac('x', '{SECRET}'::bytea, 'sha256'), 'hex')"
            )),
            Some(true)
        );
    }

    #[pg_test]
    fn keys_unknown_root_key_is_a_clear_error() {
        setup();
        run("SELECT privacy.create_key('v')");
        run("UPDATE privacy.key_secrets SET root_key_fingerprint = 'ffffffffffffffff' WHERE name = 'v'");
        run(
            r#"CREATE FUNCTION pg_temp.full_error(stmt text) RETURNS text LANGUAGE plpgsql AS $f$
               DECLARE d text; h text;
               BEGIN EXECUTE stmt; RETURN NULL;
               EXCEPTION WHEN OTHERS THEN
                 GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
                 RETURN SQLSTATE || ' ' || SQLERRM || ' / ' || d || ' / ' || h;
               END $f$"#,
        );
        let got =
            one::<String>("SELECT pg_temp.full_error('SELECT privacy.pseudonymize(''x'', ''v'')')")
                .unwrap();
        let fp = root_fp(ROOT);
        assert_eq!(
            got,
            format!(
                "55000 key \"v\" version 1 is wrapped under root key ffffffffffffffff, which this server does not have \
                 / This server's root key is {fp}. \
                 / Start the server with root key ffffffffffffffff in privacy.root_key_command, \
                 or in privacy.previous_root_key_command and then run privacy.rotate_root_key()."
            )
        );
        // nothing of the secret or of the root key in the message
        assert!(!got.contains(ROOT) && !got.contains(PREVIOUS_ROOT));
        // rotation cannot rewrap it either, and changes nothing
        assert_sqlstate("SELECT privacy.rotate_root_key()", "55000");
        // the key can still be rotated (a new secret) or dropped
        run("SELECT privacy.rotate_key('v')");
        run("SELECT privacy.pseudonymize('x', 'v')");
        run("SELECT privacy.drop_key('v')");
    }

    #[pg_test]
    fn keys_rotate_root_key_rewraps_under_the_current_one() {
        setup();
        // a secret wrapped under the previous root key (as after a restart
        // with a new privacy.root_key_command)
        let previous =
            crate::keys::rootkey::previous().expect("the test cluster has a previous root key");
        assert_eq!(previous.fingerprint(), root_fp(PREVIOUS_ROOT));
        let secret = [0x42u8; 32];
        let wrapped = previous.wrap("r", 1, &secret).unwrap();
        let mut wrapped_hex = String::new();
        crate::keys::hex_into(&wrapped, &mut wrapped_hex);
        run(&format!(
            "INSERT INTO privacy.key_secrets (name, version, wrapped_secret, fingerprint, active, root_key_fingerprint)
             VALUES ('r', 1, '\\x{wrapped_hex}', 'r1', true, '{}')",
            previous.fingerprint()
        ));
        let expected =
            "SELECT encode(hmac('ada', decode(repeat('42', 32), 'hex'), 'sha256'), 'hex')";
        let want = one::<String>(expected).unwrap();
        // readable through the previous root key
        assert_eq!(
            one::<String>("SELECT privacy.pseudonymize('ada', 'r')"),
            Some(want.clone())
        );
        // only a superuser or the extension owner may rotate
        run("CREATE ROLE root_rotator");
        run("GRANT EXECUTE ON FUNCTION privacy.rotate_root_key() TO root_rotator");
        run("SET LOCAL ROLE root_rotator");
        assert_sqlstate("SELECT privacy.rotate_root_key()", "42501");
        run("RESET ROLE");
        assert_eq!(one::<i64>("SELECT privacy.rotate_root_key()"), Some(1));
        let fp = root_fp(ROOT);
        assert_eq!(
            one::<String>("SELECT string_agg(DISTINCT root_key_fingerprint, ',') FROM privacy.key_wrapping WHERE active"),
            Some(fp.clone())
        );
        assert_eq!(
            one::<String>("SELECT privacy.pseudonymize('ada', 'r')"),
            Some(want.clone())
        );
        // the stored form changed, and unwraps with the current root key only
        let now = one::<Vec<u8>>("SELECT wrapped_secret FROM privacy.key_secrets WHERE name = 'r'")
            .unwrap();
        assert_ne!(now, wrapped);
        assert_eq!(
            &crate::keys::rootkey::current()
                .unwrap()
                .unwrap("r", 1, &now)
                .unwrap()[..],
            &secret[..]
        );
        assert!(previous.unwrap("r", 1, &now).is_err());
        // audited, without any secret
        assert_eq!(
            one::<String>(
                "SELECT details::text FROM privacy.audit_log WHERE action = 'rotate_root_key' ORDER BY id DESC LIMIT 1"
            ),
            Some(format!(
                "{{\"rewrapped\": 1, \"root_key_fingerprint\": \"{fp}\", \"previous_root_key_fingerprints\": [\"{}\"]}}",
                previous.fingerprint()
            ))
        );
        // a second rotation has nothing left to do
        assert_eq!(one::<i64>("SELECT privacy.rotate_root_key()"), Some(0));
    }
}
