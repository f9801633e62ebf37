-- catalog::subject_table_facts($1 oid[], $2 int2[]): for each permanent
-- table $1[i] whose subject column is $2[i], its names, owner, whether an
-- index leads with the subject column, and the caller's row security and
-- privileges.
SELECT c.oid,
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) AS qname,
       n.nspname::text || '.' || c.relname::text AS key,
       c.relowner AS owner,
       EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                WHERE i.indrelid = c.oid AND i.indkey[0] = s.attnum
                  AND i.indisvalid AND i.indpred IS NULL) AS indexed,
       pg_catalog.row_security_active(c.oid) AS rls_active,
       pg_catalog.has_table_privilege(c.oid, 'SELECT') AS can_select,
       pg_catalog.has_table_privilege(c.oid, 'DELETE') AS can_delete,
       pg_catalog.has_table_privilege(c.oid, 'UPDATE') AS can_update
  FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.oid[]), pg_catalog.unnest($2::pg_catalog.int2[])) AS s(relid, attnum)
  JOIN pg_catalog.pg_class c ON c.oid = s.relid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relpersistence <> 't'
