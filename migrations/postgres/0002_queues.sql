-- Asterisk-like queue log: ENTERQUEUE, RINGNOANSWER, CONNECT, COMPLETECALLER, …
CREATE TABLE IF NOT EXISTS queue_log (
    id      BIGSERIAL PRIMARY KEY,
    at      TEXT NOT NULL,
    queue   TEXT,
    call_id TEXT,
    agent   TEXT,
    event   TEXT NOT NULL,
    data    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS queue_log_at ON queue_log(at);
CREATE INDEX IF NOT EXISTS queue_log_call ON queue_log(call_id);

-- Every agent state change, with its reason.
CREATE TABLE IF NOT EXISTS agent_events (
    id         BIGSERIAL PRIMARY KEY,
    agent      TEXT NOT NULL,
    at         TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS agent_events_agent ON agent_events(agent, at);
