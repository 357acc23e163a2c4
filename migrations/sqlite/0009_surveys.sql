-- Post-call surveys (the queue option `survey = { prompt, keys }`).
--
-- On the `inbound` call record of a caller who was asked the survey after
-- the agent hung up: the agent rated (survey_agent), the key the caller
-- pressed (survey_score; NULL: no answer, e.g. the caller hung up or the
-- keys were invalid) and the survey's range of score keys (survey_lowest,
-- survey_highest: the highest is the best), so CSAT can be computed for
-- queues whose ranges differ. Calls without a survey keep all four NULL.
ALTER TABLE calls ADD COLUMN survey_agent TEXT;
ALTER TABLE calls ADD COLUMN survey_score INTEGER;
ALTER TABLE calls ADD COLUMN survey_lowest INTEGER;
ALTER TABLE calls ADD COLUMN survey_highest INTEGER;
CREATE INDEX IF NOT EXISTS calls_survey_started ON calls(started_at) WHERE survey_agent IS NOT NULL;
