-- pg_privacy: catalog views over pg_seclabel (needs privacy._label_parts).

CREATE VIEW privacy.column_tags AS
SELECT l.objoid::pg_catalog.regclass AS table_name,
       a.attname                      AS column_name,
       p.purposes,
       p.category,
       p.is_subject,
       p.anonymize
  FROM pg_catalog.pg_seclabel l
  JOIN pg_catalog.pg_class c     ON c.oid = l.objoid
  JOIN pg_catalog.pg_attribute a ON a.attrelid = l.objoid AND a.attnum = l.objsubid
 CROSS JOIN LATERAL privacy._label_parts(l.label) p
 WHERE l.provider = 'privacy'
   AND l.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass
   AND l.objsubid > 0
   AND NOT a.attisdropped;
COMMENT ON VIEW privacy.column_tags IS 'Every column tagged with SECURITY LABEL FOR privacy, parsed';
GRANT SELECT ON privacy.column_tags TO PUBLIC;
