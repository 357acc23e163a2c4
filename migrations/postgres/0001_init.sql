-- One row per call leg: written when the call is answered, completed at hang-up.
CREATE TABLE IF NOT EXISTS calls (
    id               BIGSERIAL PRIMARY KEY,
    call_id          TEXT    NOT NULL,
    leg              TEXT    NOT NULL DEFAULT 'inbound',
    caller           TEXT    NOT NULL,
    dialed           TEXT    NOT NULL,
    dialplan         TEXT,
    dialplan_version TEXT,
    started_at       TEXT    NOT NULL,
    answered_at      TEXT,
    ended_at         TEXT,
    path             TEXT    NOT NULL DEFAULT '',
    digits           TEXT    NOT NULL DEFAULT '',
    vars             TEXT    NOT NULL DEFAULT '{}',
    disposition      TEXT    NOT NULL DEFAULT 'in_progress',
    hangup_by        TEXT,
    queue            TEXT,
    sip_code         INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS calls_call_id ON calls(call_id, leg);
CREATE INDEX IF NOT EXISTS calls_caller_started ON calls(caller, started_at);
CREATE INDEX IF NOT EXISTS calls_disposition ON calls(disposition);

CREATE TABLE IF NOT EXISTS dialplan_versions (
    id        BIGSERIAL PRIMARY KEY,
    name      TEXT NOT NULL,
    file      TEXT NOT NULL,
    version   TEXT NOT NULL,
    loaded_at TEXT NOT NULL,
    UNIQUE(file, version)
);
