-- Start-up recovery looks up the last QUEUESTART marker (written at every
-- start) and closes what the previous process left open after it.
CREATE INDEX IF NOT EXISTS queue_log_event ON queue_log(event);
