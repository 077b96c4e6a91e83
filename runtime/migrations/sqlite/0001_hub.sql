-- Run history: one row per invocation of a function (HTTP, schedule, CLI, Lambda).
CREATE TABLE IF NOT EXISTS hub_runs (
    id          TEXT PRIMARY KEY,
    function    TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    summary     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hub_runs_function_started ON hub_runs (function, started_at DESC);
CREATE INDEX IF NOT EXISTS hub_runs_started ON hub_runs (started_at DESC);

-- Keys a function has already acted on (webhook deliveries, ...), so replays are recognised
-- across restarts.
CREATE TABLE IF NOT EXISTS hub_seen_keys (
    scope   TEXT NOT NULL,
    key     TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
