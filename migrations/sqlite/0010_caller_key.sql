-- Repeat callers by customer, not by number.
--
-- caller_key is who the caller is for repeat-call counting: the customer
-- directory's `customer:<id>` when the number belonged to a customer at the
-- time of the call, else the number itself. A customer calling from any of
-- their numbers is one repeat caller; earlier rows keep their number.
ALTER TABLE calls ADD COLUMN caller_key TEXT;
UPDATE calls SET caller_key = caller;
CREATE INDEX IF NOT EXISTS calls_caller_key_started ON calls(caller_key, started_at);
