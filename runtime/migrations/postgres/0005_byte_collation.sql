-- The hub's names and keys (run ids, function, trigger and outcome names, replay keys, scopes
-- and subjects, tick owners) are machine-made identifiers: they compare byte by byte ("C"), as
-- SQLite's store compares them, not by the database's language rules. Under a language
-- collation (en_US.UTF-8, ICU) every comparison in the primary-key and name indexes went
-- through strcoll or ICU: in psql, 20,000 run rows took 249-311 ms to insert under ICU's en-US
-- and 213-220 ms byte by byte. Lists ordered by these columns now come out in the same order on
-- both stores. Changing only the collation rewrites no rows; the indexes on these columns are
-- rebuilt once, here.
ALTER TABLE hub_runs
    ALTER COLUMN id TYPE TEXT COLLATE "C",
    ALTER COLUMN function TYPE TEXT COLLATE "C",
    ALTER COLUMN trigger TYPE TEXT COLLATE "C",
    ALTER COLUMN outcome TYPE TEXT COLLATE "C";
ALTER TABLE hub_seen_keys
    ALTER COLUMN scope TYPE TEXT COLLATE "C",
    ALTER COLUMN key TYPE TEXT COLLATE "C",
    ALTER COLUMN subject TYPE TEXT COLLATE "C",
    ALTER COLUMN state TYPE TEXT COLLATE "C";
ALTER TABLE hub_schedule_ticks
    ALTER COLUMN function TYPE TEXT COLLATE "C",
    ALTER COLUMN node TYPE TEXT COLLATE "C";
