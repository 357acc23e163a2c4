-- Call recordings (queue or agent option `record = true`).
--
-- One row per recorded conversation: a stereo WAV (the caller or callback
-- customer on the left channel, the agent on the right) under the
-- recordings directory (`[recording] dir`); `path` is relative to it.
-- call_id is the call's id as the queue and the API know it: an inbound
-- call's SIP Call-ID (its `calls` row with leg `inbound`), or a callback
-- attempt's `cb-<callback id>-<suffix>`.
-- state: `recording` (being written), `complete` or `failed` (error
-- says why: the disk was full, the directory unusable, the process died
-- with a header that could not be repaired). Start-up recovery finishes
-- this node's rows left in `recording`; node_id is the node that wrote
-- the file (files are local to it). paused_ms: time the agent paused the
-- recording (silence was written, the timeline kept).
CREATE TABLE IF NOT EXISTS recordings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id     TEXT    NOT NULL,
    agent       TEXT    NOT NULL,
    queue       TEXT,
    path        TEXT    NOT NULL,
    started_at  TEXT    NOT NULL,
    ended_at    TEXT,
    duration_ms INTEGER  NOT NULL DEFAULT 0,
    bytes       INTEGER  NOT NULL DEFAULT 0,
    state       TEXT    NOT NULL DEFAULT 'recording',
    paused_ms   INTEGER  NOT NULL DEFAULT 0,
    error       TEXT,
    node_id     TEXT
);
CREATE INDEX IF NOT EXISTS recordings_call ON recordings(call_id);
CREATE INDEX IF NOT EXISTS recordings_started ON recordings(started_at);
CREATE INDEX IF NOT EXISTS recordings_state ON recordings(state);
