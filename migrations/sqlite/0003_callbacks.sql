-- Callback requests: the current state of each, plus an append-only history.
CREATE TABLE IF NOT EXISTS callbacks (
    id              TEXT PRIMARY KEY,
    queue           TEXT NOT NULL,
    number          TEXT NOT NULL,
    state           TEXT NOT NULL,
    entered_at      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    preferred_start TEXT,
    preferred_end   TEXT,
    expires_at      TEXT NOT NULL,
    context         TEXT NOT NULL DEFAULT '',
    origin          TEXT NOT NULL,
    last_result     TEXT,
    claimed_by      TEXT,
    lease_until     TEXT
);
-- One live callback per number and queue, enforced by the database too, so
-- two nodes (or a race) can never create duplicates.
CREATE UNIQUE INDEX IF NOT EXISTS callbacks_live_number ON callbacks(number, queue)
    WHERE state NOT IN ('completed', 'failed', 'cancelled', 'expired');
CREATE INDEX IF NOT EXISTS callbacks_state ON callbacks(state);

CREATE TABLE IF NOT EXISTS callback_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    callback_id TEXT NOT NULL,
    at          TEXT NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    attempt     INTEGER NOT NULL DEFAULT 0,
    node        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS callback_events_cb ON callback_events(callback_id, id);
