-- pg_privacy: privileges on functions, applied after every object exists.
-- Administrative functions act on extension-wide state: a DBA grants them
-- (e.g. GRANT EXECUTE ON FUNCTION privacy.define_purpose(text, text, text) TO privacy_admin).
REVOKE EXECUTE ON FUNCTION privacy.define_purpose(text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.drop_purpose(text) FROM PUBLIC;
-- Keys: administration is for a key administrator, e.g.
-- GRANT EXECUTE ON FUNCTION privacy.create_key(text, bytea), privacy.rotate_key(text),
--       privacy.drop_key(text) TO privacy_admin;
REVOKE EXECUTE ON FUNCTION privacy.create_key(text, bytea) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.rotate_key(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.drop_key(text) FROM PUBLIC;
-- Legal holds: only roles a DBA trusts may place or release them.
REVOKE EXECUTE ON FUNCTION privacy.place_hold(regclass, text, text, timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.place_subject_hold(text, text, timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.release_hold(bigint) FROM PUBLIC;
