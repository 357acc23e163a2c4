-- Start-up recovery looks up each dangling caller's last ENTERQUEUE by
-- call id and event. With only queue_log(call_id) and queue_log(event) the
-- planner may pick the event index and scan every ENTERQUEUE row for every
-- caller (10,000 waiting callbacks: 10^8 rows, a 30-40 s start). This index
-- answers (call_id, event, id) directly and replaces queue_log(call_id),
-- which is its prefix.
CREATE INDEX IF NOT EXISTS queue_log_call_event ON queue_log(call_id, event);
DROP INDEX IF EXISTS queue_log_call;
