-- A key is `done` once the work it stands for succeeded, `pending` from the moment a request
-- is accepted until then (so work answered 202 survives a crash and is resumed at start), and
-- `failed` when the work failed (so a redelivery runs it again). Rows written before this
-- migration were written after acting on them: they are `done`.
ALTER TABLE hub_seen_keys ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE hub_seen_keys ADD COLUMN state TEXT NOT NULL DEFAULT 'done';
CREATE INDEX IF NOT EXISTS hub_seen_keys_state ON hub_seen_keys (scope, state, subject);
