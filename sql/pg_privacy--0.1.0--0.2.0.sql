-- pg_privacy 0.1.0 -> 0.2.0 (ALTER EXTENSION pg_privacy UPDATE).
--
-- Every change of the extension's SQL objects between the two versions is
-- made here, in the order a fresh 0.2.0 install creates them: new table
-- columns go last (as in the install script), so the updated catalog is
-- exactly a fresh install's (tests/integration/upgrade.sh compares them).
\echo Use "ALTER EXTENSION pg_privacy UPDATE TO '0.2.0'" to load this file. \quit
