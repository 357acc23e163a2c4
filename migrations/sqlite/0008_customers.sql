-- The customer directory: who calls (issue 15).
--
-- customers: one row per customer. priority 0 is an ordinary customer,
-- above 0 a VIP (higher first). tags is a JSON array of strings.
-- customer_numbers: a customer's numbers, normalised (digits with an
-- optional leading +); a number belongs to one customer (primary key);
-- position keeps their order (0 is the main number).
-- customer_directory: one row whose version grows with every change, in the
-- change's own transaction: servers poll it to know when to reload their
-- in-memory copy (a change made by the CLI or by another node).
CREATE TABLE IF NOT EXISTS customers (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    language   TEXT,
    priority   INTEGER NOT NULL DEFAULT 0,
    account    TEXT,
    notes      TEXT    NOT NULL DEFAULT '',
    tags       TEXT    NOT NULL DEFAULT '[]',
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS customer_numbers (
    number      TEXT    PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS customer_numbers_customer ON customer_numbers(customer_id, position);
CREATE TABLE IF NOT EXISTS customer_directory (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO customer_directory (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
