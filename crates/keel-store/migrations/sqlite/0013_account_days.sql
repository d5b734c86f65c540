-- The account timeline (keel-timeline): what Keel concluded about each
-- account, day by day, under one journey version. A checkpoint row holds
-- every fact; a change row only what changed since the day before (a
-- fact that stopped holding is null). The facts on a day are the last
-- checkpoint at or before it with the changes up to that day applied.
CREATE TABLE account_days (
    account_id       INTEGER NOT NULL REFERENCES accounts(id),
    journey_version  TEXT NOT NULL,
    day              TEXT NOT NULL,      -- YYYY-MM-DD
    checkpoint       INTEGER NOT NULL,   -- 1: every fact; 0: what changed
    facts            TEXT NOT NULL,      -- JSON object: path -> value
    PRIMARY KEY (account_id, journey_version, day)
) WITHOUT ROWID;
