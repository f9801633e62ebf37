-- pg_privacy demo: a small SaaS company makes its privacy policy enforceable.
-- Played by `make demo` on a throwaway cluster; each part is in examples/demo/.
\pset footer off
\set ECHO queries

\ir demo/10_schema_and_tags.sql

\ir demo/20_keys.sql

\ir demo/30_retention.sql

\ir demo/40_worker.sql

\ir demo/50_subject.sql

\ir demo/60_reports.sql

\ir demo/90_audit.sql
