-- 5. Keys: pseudonyms are HMAC-SHA256 under secrets the database guards.
-- Without a secret, create_key draws 32 bytes from a cryptographically strong
-- source; it returns only a fingerprint. 'default' is the key the ANONYMIZE
-- PSEUDONYMIZE / EMAIL methods use; 'analytics' is for the analysts' export.
SELECT privacy.create_key() AS default_fingerprint;
SELECT privacy.create_key('analytics') AS analytics_fingerprint;
SELECT name, version, active, fingerprint FROM privacy.keys WHERE name NOT LIKE '\_%' ORDER BY name;

-- The same value always gives the same pseudonym under one key; e-mail
-- addresses keep their (lowercased) domain; case does not matter.
SELECT email,
       privacy.pseudonymize_email(email, 'analytics')  AS email_pseudonym,
       privacy.pseudonymize_bigint(id, 'analytics')    AS account_pseudonym
  FROM accounts ORDER BY id;

-- 6. A pseudonymized analytics schema, joinable across tables by the
-- pseudonym. Materialized views, refreshed by a trusted role: analysts get
-- the results, never the function (whoever may call pseudonymize() with the
-- key could confirm a guess such as "is pseudonym X account 42?").
CREATE SCHEMA analytics;
CREATE MATERIALIZED VIEW analytics.accounts AS
SELECT privacy.pseudonymize_bigint(id, 'analytics')        AS account,
       privacy.pseudonymize_email(email, 'analytics')      AS email,
       plan, country,
       date_trunc('month', signed_up_at)::date             AS signup_month
  FROM public.accounts;
CREATE MATERIALIZED VIEW analytics.orders AS
SELECT privacy.pseudonymize_bigint(account_id, 'analytics') AS account,
       amount, date_trunc('month', ordered_at)::date         AS month
  FROM public.orders;
CREATE MATERIALIZED VIEW analytics.web_visits AS
SELECT privacy.pseudonymize_bigint(account_id, 'analytics') AS account,  -- NULL stays NULL
       privacy.pseudonymize(ip, 'analytics')                AS ip,
       user_agent, path, visited_at::date                   AS day
  FROM public.web_visits;

CREATE ROLE analyst;
GRANT USAGE ON SCHEMA analytics TO analyst;
GRANT USAGE ON SCHEMA privacy TO analyst;   -- may see privacy.keys, still not a secret
GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO analyst;

SET ROLE analyst;
-- revenue and traffic per plan, joined by pseudonym only
SELECT a.plan, count(DISTINCT o.account) AS buyers, sum(o.amount) AS revenue
  FROM analytics.accounts a JOIN analytics.orders o USING (account)
 GROUP BY a.plan ORDER BY a.plan;
SELECT a.country, count(*) AS visits, count(DISTINCT v.ip) AS distinct_ips
  FROM analytics.web_visits v JOIN analytics.accounts a USING (account)
 GROUP BY a.country ORDER BY a.country;
-- ... but neither the identities nor the secrets, nor the function:
\set ON_ERROR_STOP 0
SELECT email FROM public.accounts LIMIT 1;
SELECT * FROM privacy.key_secrets;
SELECT privacy.pseudonymize_bigint(1, 'analytics');
\set ON_ERROR_STOP 1
RESET ROLE;

-- 7. Rotation: a new secret; the next refresh gives new, unlinkable pseudonyms
-- (the old secret is destroyed, so old exports cannot be joined to new ones).
SELECT account AS pseudonym_before FROM analytics.accounts ORDER BY signup_month LIMIT 1;
SELECT privacy.rotate_key('analytics') AS new_fingerprint;
REFRESH MATERIALIZED VIEW analytics.accounts;
REFRESH MATERIALIZED VIEW analytics.orders;
REFRESH MATERIALIZED VIEW analytics.web_visits;
SELECT account AS pseudonym_after FROM analytics.accounts ORDER BY signup_month LIMIT 1;
SELECT name, version, active, fingerprint FROM privacy.keys WHERE name = 'analytics' ORDER BY version;
