-- Lineage: every stage change evaluation found, with the rule that made it,
-- the values it read, and the journey version it ran under ("why is this
-- account in renewal?"). Re-running an evaluation records nothing twice.
CREATE TABLE stage_transitions (
    id               INTEGER PRIMARY KEY,
    account_id       INTEGER NOT NULL REFERENCES accounts(id),
    product_line     TEXT NOT NULL,
    on_day           TEXT NOT NULL,
    from_stage       TEXT NOT NULL,   -- '' when the line started
    to_stage         TEXT NOT NULL,   -- '' when the line ended
    rule             TEXT NOT NULL,
    inputs           TEXT NOT NULL,   -- JSON object: metric → value
    journey_version  TEXT NOT NULL,
    recorded_at      INTEGER NOT NULL,
    UNIQUE (account_id, product_line, on_day, to_stage, journey_version)
);
