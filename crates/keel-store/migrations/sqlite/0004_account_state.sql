-- The latest evaluated state of each account (kept by `keel serve` as events
-- arrive and on its scheduled tick), and the account's timeline of changes
-- Keel saw: stage and band changes, moments starting and ending to fire.
CREATE TABLE account_state (
    account_id       INTEGER PRIMARY KEY REFERENCES accounts(id),
    evaluated_at     INTEGER NOT NULL,   -- unix micros
    as_of            TEXT NOT NULL,
    journey_version  TEXT NOT NULL,
    state            TEXT NOT NULL       -- JSON: the engine's AccountState
);

CREATE TABLE timeline (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    at          INTEGER NOT NULL,        -- unix micros, when Keel saw it
    kind        TEXT NOT NULL,           -- stage_changed, band_changed, moment_started, moment_ended
    detail      TEXT NOT NULL            -- JSON
);
CREATE INDEX timeline_by_account ON timeline (account_id, at);
