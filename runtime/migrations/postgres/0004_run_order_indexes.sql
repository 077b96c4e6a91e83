-- Run lists are ordered by (started_at, id): indexes in that exact order let the newest page,
-- overall or per function, be read without sorting the whole history.
DROP INDEX IF EXISTS hub_runs_started;
DROP INDEX IF EXISTS hub_runs_function_started;
CREATE INDEX IF NOT EXISTS hub_runs_started_id ON hub_runs (started_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS hub_runs_function_started_id ON hub_runs (function, started_at DESC, id DESC);
