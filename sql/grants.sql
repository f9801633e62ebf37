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
-- Root key rotation: superusers and the extension owner only (checked inside too).
REVOKE EXECUTE ON FUNCTION privacy.rotate_root_key() FROM PUBLIC;
-- Legal holds: only roles a DBA trusts may place or release them.
REVOKE EXECUTE ON FUNCTION privacy.place_hold(regclass, text, text, timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.place_subject_hold(text, text, timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.release_hold(bigint) FROM PUBLIC;
-- Data subject rights: exporting and erasing a subject, and recording or
-- withdrawing an objection on someone's behalf, are for the roles a DBA
-- grants them to (e.g. the application's privacy back office).
-- privacy.may_process stays executable by PUBLIC: it sits in RLS policies.
REVOKE EXECUTE ON FUNCTION privacy.export_subject(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.forget_subject(text, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.object_to_purpose(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.withdraw_objection(text, text) FROM PUBLIC;
-- Every role may use the schema: the views show no secret, the table-level
-- functions check the caller's own privileges on the table, and everything
-- else is protected object by object above and in the other sql/ files.
GRANT USAGE ON SCHEMA privacy TO PUBLIC;
-- Compliance reports (src/reports/): declaring the controller, recipients
-- and subject categories is administrative; the record and the lint show
-- the whole policy, the Markdown export someone's data (like export_subject).
REVOKE EXECUTE ON FUNCTION privacy.declare_controller(text, text, text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.declare_recipient(text, text, text[], text, boolean, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.drop_recipient(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.describe_subjects(regclass, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.lint(interval) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.processing_record() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.processing_record_markdown() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION privacy.export_subject_markdown(text) FROM PUBLIC;
