-- 1. The SaaS schema: accounts, orders, invoices, web visits.
CREATE EXTENSION pg_privacy;

CREATE TABLE accounts (
    id              bigint PRIMARY KEY,
    email           text NOT NULL,
    full_name       text,
    plan            text NOT NULL CHECK (plan IN ('free', 'pro', 'enterprise')),
    country         text,
    birth_date      date,
    signed_up_at    timestamptz NOT NULL DEFAULT now(),
    unsubscribed_at timestamptz,
    last_seen_at    timestamptz
);
CREATE TABLE orders (
    id          bigserial PRIMARY KEY,
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE ON UPDATE CASCADE,
    amount      numeric(10, 2) NOT NULL,
    ship_to     text,
    ordered_at  timestamptz NOT NULL
);
CREATE TABLE invoices (
    id          bigserial PRIMARY KEY,
    account_id  bigint REFERENCES accounts (id) ON DELETE SET NULL ON UPDATE SET NULL,
    billing_name text NOT NULL,
    vat_number  text,
    total       numeric(10, 2) NOT NULL,
    issued_at   date NOT NULL
);
CREATE TABLE web_visits (
    id          bigserial PRIMARY KEY,
    account_id  bigint,
    ip          text,
    user_agent  text,
    path        text NOT NULL,
    visited_at  timestamptz NOT NULL
);

INSERT INTO accounts (id, email, full_name, plan, country, birth_date, signed_up_at, unsubscribed_at, last_seen_at) VALUES
  (1, 'Ada@Example.com',   'Ada Lovelace',   'enterprise', 'GB', '1815-12-10', '2024-01-05', NULL,         '2026-11-01'),
  (2, 'alan@example.org',  'Alan Turing',    'free',       'GB', '1912-06-23', '2024-03-01', '2026-09-01', '2026-08-30'),
  (3, 'grace@example.net', 'Grace Hopper',   'pro',        'US', '1906-12-09', '2023-02-11', NULL,         '2025-06-01'),
  (4, 'linus@example.com', 'Linus Torvalds', 'free',       'FI', '1969-12-28', '2025-07-07', '2026-11-10', '2026-11-09'),
  (5, 'edsger@example.nl', 'Edsger Dijkstra','enterprise', 'NL', '1930-05-11', '2022-05-01', '2026-08-01', '2026-07-15');
INSERT INTO orders (account_id, amount, ship_to, ordered_at) VALUES
  (1, 120.00, '12 St James Sq, London', '2026-10-01'), (2, 9.99, '1 Bletchley Park', '2026-05-01'),
  (3, 45.50, 'Arlington, VA', '2025-01-20'), (5, 300.00, 'Nuenen', '2026-02-02');
INSERT INTO invoices (account_id, billing_name, vat_number, total, issued_at) VALUES
  (1, 'Ada Lovelace', 'GB123', 120.00, '2026-10-01'), (2, 'Alan Turing', NULL, 9.99, '2026-05-01'),
  (5, 'E. W. Dijkstra', 'NL999', 300.00, '2026-02-02');
INSERT INTO web_visits (account_id, ip, user_agent, path, visited_at) VALUES
  (1, '203.0.113.7', 'Firefox', '/pricing', '2026-11-15'), (2, '198.51.100.2', 'Safari', '/cancel', '2026-08-30'),
  (NULL, '192.0.2.44', 'curl', '/', '2026-07-01'), (3, '203.0.113.9', 'Chrome', '/docs', '2026-06-01');

-- 2. Why each column is kept: purposes, with their GDPR legal basis.
SELECT privacy.define_purpose('service',    'run the product the customer pays for', 'contract');
SELECT privacy.define_purpose('billing',    'invoices we must keep for tax law',    'legal_obligation');
SELECT privacy.define_purpose('marketing',  'newsletters and product news',          'consent');
SELECT privacy.define_purpose('analytics',  'understand how the site is used',       'legitimate_interests');
SELECT privacy.define_purpose('security',   'fraud and abuse investigations',        'legitimate_interests');

-- 3. Tag columns: with SECURITY LABEL directly ...
SECURITY LABEL FOR privacy ON COLUMN accounts.id     IS 'SUBJECT';
SECURITY LABEL FOR privacy ON COLUMN accounts.email  IS 'PURPOSE service, marketing CATEGORY contact ANONYMIZE EMAIL';
SECURITY LABEL FOR privacy ON COLUMN accounts.full_name IS 'PURPOSE service CATEGORY identity';
SECURITY LABEL FOR privacy ON COLUMN accounts.birth_date IS 'PURPOSE service CATEGORY demographic ANONYMIZE TRUNCATE year';
-- ... or with the wrappers.
SELECT privacy.tag_column('accounts', 'country', ARRAY['service', 'analytics'], 'location');
SELECT privacy.mark_subject('orders', 'account_id');
SELECT privacy.tag_column('orders', 'ship_to', ARRAY['service'], 'location');
SELECT privacy.mark_subject('invoices', 'account_id');
SELECT privacy.tag_column('invoices', 'billing_name', ARRAY['billing'], 'identity');
SELECT privacy.tag_column('invoices', 'vat_number', ARRAY['billing'], 'financial');
SELECT privacy.mark_subject('web_visits', 'account_id');
SELECT privacy.tag_column('web_visits', 'ip', ARRAY['analytics', 'security'], 'network', 'PSEUDONYMIZE');
SELECT privacy.tag_column('web_visits', 'user_agent', ARRAY['analytics'], 'device');

-- A label that does not follow the grammar is refused, naming the bad token:
\set ON_ERROR_STOP 0
SECURITY LABEL FOR privacy ON COLUMN accounts.plan IS 'PURPOSE service RETAIN forever';
SECURITY LABEL FOR privacy ON COLUMN accounts.plan IS 'PURPOSE sales';
\set ON_ERROR_STOP 1

-- 4. The catalog of what is kept, and why.
SELECT table_name, column_name, purposes, category, is_subject, anonymize
  FROM privacy.column_tags ORDER BY table_name::text, column_name;
