-- catalog::foreign_keys_to / foreign_keys_from: foreign keys (partition
-- clones left out) with their columns quoted and their equality operators
-- schema-qualified; each caller appends its condition on $1 (oid[]) and its
-- order (src/catalog/mod.rs).
SELECT c.conname::text AS name, c.conrelid AS child, c.confrelid AS parent,
       c.confdeltype::text AS on_delete,
       ARRAY(SELECT pg_catalog.quote_ident(a.attname)
               FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY k(n, i)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n
              ORDER BY k.i) AS child_cols,
       ARRAY(SELECT pg_catalog.quote_ident(a.attname)
               FROM pg_catalog.unnest(c.confkey) WITH ORDINALITY k(n, i)
               JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n
              ORDER BY k.i) AS parent_cols,
       ARRAY(SELECT 'OPERATOR(' || pg_catalog.quote_ident(o.nspname) || '.' || o.oprname || ')'
               FROM pg_catalog.unnest(c.conpfeqop) WITH ORDINALITY e(op, i)
               JOIN (SELECT p.oid, p.oprname::text, n.nspname
                       FROM pg_catalog.pg_operator p
                       JOIN pg_catalog.pg_namespace n ON n.oid = p.oprnamespace) o ON o.oid = e.op
              ORDER BY e.i) AS ops,
       pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(cc.relname) AS child_qname,
       cc.relowner AS child_owner
  FROM pg_catalog.pg_constraint c
  JOIN pg_catalog.pg_class cc ON cc.oid = c.conrelid
  JOIN pg_catalog.pg_namespace cn ON cn.oid = cc.relnamespace
  JOIN pg_catalog.pg_class pc ON pc.oid = c.confrelid
 WHERE c.contype = 'f' AND c.conparentid = 0
