-- Node-scoped recovery and linked call records.
--
-- node_id: the node (`[callbacks] node_id`, default hostname-pid) whose
-- process wrote the row. Start-up recovery closes only its own node's open
-- rows on PostgreSQL; a SQLite file belongs to one process at a time, so
-- there every open row is the previous process's. Rows written before this
-- migration have NULL.
--
-- parent_call_id: for an agent leg the caller's SIP Call-ID; for a
-- callback leg its attempt (`cb-<callback id>-<suffix>`, the attempt's
-- call id in the queue log); NULL for an inbound call.
ALTER TABLE calls ADD COLUMN node_id TEXT;
ALTER TABLE calls ADD COLUMN parent_call_id TEXT;
CREATE INDEX IF NOT EXISTS calls_parent ON calls(parent_call_id);
