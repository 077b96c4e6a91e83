-- One row per scheduled tick that some gateway claimed: with several gateways on one database,
-- the insert that wins runs the tick, the others skip it.
CREATE TABLE IF NOT EXISTS hub_schedule_ticks (
    function   TEXT NOT NULL,
    tick       TEXT NOT NULL,
    node       TEXT NOT NULL,
    claimed_at TEXT NOT NULL,
    PRIMARY KEY (function, tick)
);
CREATE INDEX IF NOT EXISTS hub_runs_trigger_started ON hub_runs (function, trigger, started_at DESC);
