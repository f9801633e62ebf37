-- pg_privacy: data subject rights (objections to purposes).
-- Loaded after "schema" (extension_sql_file! name = "subject").

-- One row per (subject, purpose) the subject objected to: privacy.may_process
-- answers FALSE for it. The subject id is kept in clear here (it is what an
-- objection is about, and a keyed hash would break with every key rotation),
-- so the table is closed to every role but the extension owner; pg_privacy's
-- functions read and write it. Rows are not tied to privacy.purposes by a
-- foreign key on purpose: an objection outlives the purpose being dropped
-- and redefined (an opt-out must not silently lapse).
CREATE TABLE privacy.objections (
    subject     text NOT NULL,
    purpose     text NOT NULL,
    objected_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT objections_pkey PRIMARY KEY (subject, purpose)
);
COMMENT ON TABLE privacy.objections IS 'Purposes a data subject objected to (opt-outs); written by privacy.object_to_purpose()';
REVOKE ALL ON privacy.objections FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('privacy.objections', '');
