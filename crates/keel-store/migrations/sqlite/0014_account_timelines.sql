-- How far each account's timeline is kept under a journey version, and the
-- fingerprint of what its last day was concluded from (keel-engine's
-- Fingerprint): the account and its contracts; what was known before that
-- day (usage received, dated records as they stood); what was known on it. A later evaluation compares them to tell whether it only appends the
-- days since, restates the last day, or restates the whole timeline.
CREATE TABLE account_timelines (
    account_id       INTEGER NOT NULL REFERENCES accounts(id),
    journey_version  TEXT NOT NULL,
    through          TEXT NOT NULL,      -- YYYY-MM-DD: the last day concluded
    records          INTEGER NOT NULL,
    known_before     INTEGER NOT NULL,
    known_upto       INTEGER NOT NULL,
    PRIMARY KEY (account_id, journey_version)
) WITHOUT ROWID;
