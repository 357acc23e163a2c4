-- Node-scoped recovery of the queue log and the agent history.
--
-- node_id: the node (`[callbacks] node_id`, default hostname-pid) whose
-- process wrote the row, as on `calls` (0006). Each node runs its own ACD,
-- so an agent's state and a caller's queue entry are one node's: start-up
-- recovery on PostgreSQL closes only its own node's open queue entries,
-- agent sessions and agent states (and finds its own last QUEUESTART
-- marker). A SQLite file belongs to one process at a time, so there every
-- open row is the previous process's. Rows written before this migration
-- have NULL, and PostgreSQL recovery leaves them alone.
ALTER TABLE queue_log ADD COLUMN node_id TEXT;
ALTER TABLE agent_events ADD COLUMN node_id TEXT;
