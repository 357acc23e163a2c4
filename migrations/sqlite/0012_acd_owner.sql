-- One queue across nodes (`[cluster] shared_queues = true`): the lease on
-- the queues' ACD. One row (name `acd`): the node that runs every queue's
-- line and agent states until expires_at, and the SIP address other nodes
-- send their waiting callers to (the hop, ARCHITECTURE.md "Several
-- nodes"). The holder renews it every second; when it stops (killed, cut
-- off), another node takes it once expires_at has passed. Times are
-- RFC 3339 text in UTC, as everywhere in this schema.
CREATE TABLE IF NOT EXISTS acd_owner (
    name       TEXT PRIMARY KEY,
    node_id    TEXT NOT NULL,
    sip_addr   TEXT NOT NULL,
    api_url    TEXT,
    since      TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
