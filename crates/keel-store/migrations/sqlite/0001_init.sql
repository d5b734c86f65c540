-- Keel's first SQLite schema: workspaces, the eight record kinds, the
-- event deduplication keys and the per-day usage rollups.

CREATE TABLE workspaces (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE accounts (
    id                  INTEGER PRIMARY KEY,
    workspace_id        INTEGER NOT NULL REFERENCES workspaces(id),
    external_id         TEXT NOT NULL,
    name                TEXT NOT NULL,
    owner               TEXT,
    parent_external_id  TEXT,
    created_on          TEXT NOT NULL,
    attributes          TEXT NOT NULL,
    content_hash        INTEGER NOT NULL,
    UNIQUE (workspace_id, external_id)
);

CREATE TABLE contracts (
    id              INTEGER PRIMARY KEY,
    workspace_id    INTEGER NOT NULL REFERENCES workspaces(id),
    external_id     TEXT NOT NULL,
    account_id      INTEGER NOT NULL REFERENCES accounts(id),
    product         TEXT NOT NULL,
    start_on        TEXT NOT NULL,
    end_on          TEXT,
    mrr             TEXT NOT NULL,
    currency        TEXT NOT NULL,
    seats           INTEGER NOT NULL,
    billing_period  TEXT NOT NULL,
    content_hash    INTEGER NOT NULL,
    UNIQUE (workspace_id, external_id)
);
CREATE INDEX contracts_by_account ON contracts (account_id);

CREATE TABLE contacts (
    id              INTEGER PRIMARY KEY,
    workspace_id    INTEGER NOT NULL REFERENCES workspaces(id),
    external_id     TEXT NOT NULL,
    account_id      INTEGER NOT NULL REFERENCES accounts(id),
    email           TEXT NOT NULL,
    name            TEXT NOT NULL,
    role            TEXT NOT NULL,
    active_from     TEXT NOT NULL,
    active_to       TEXT,
    content_hash    INTEGER NOT NULL,
    UNIQUE (workspace_id, external_id)
);
CREATE INDEX contacts_by_account ON contacts (account_id);

CREATE TABLE tickets (
    id              INTEGER PRIMARY KEY,
    workspace_id    INTEGER NOT NULL REFERENCES workspaces(id),
    external_id     TEXT NOT NULL,
    account_id      INTEGER NOT NULL REFERENCES accounts(id),
    opened_at       INTEGER NOT NULL,
    closed_at       INTEGER,
    severity        INTEGER NOT NULL,
    status          TEXT NOT NULL,
    csat            INTEGER,
    content_hash    INTEGER NOT NULL,
    UNIQUE (workspace_id, external_id)
);
CREATE INDEX tickets_by_account ON tickets (account_id);

CREATE TABLE surveys (
    id                  INTEGER PRIMARY KEY,
    workspace_id        INTEGER NOT NULL REFERENCES workspaces(id),
    external_id         TEXT NOT NULL,
    account_id          INTEGER NOT NULL REFERENCES accounts(id),
    contact_external_id TEXT,
    kind                TEXT NOT NULL,
    score               INTEGER NOT NULL,
    comment             TEXT,
    responded_at        INTEGER NOT NULL,
    content_hash        INTEGER NOT NULL,
    UNIQUE (workspace_id, external_id)
);
CREATE INDEX surveys_by_account ON surveys (account_id);

CREATE TABLE touchpoints (
    id              INTEGER PRIMARY KEY,
    workspace_id    INTEGER NOT NULL REFERENCES workspaces(id),
    external_id     TEXT NOT NULL,
    account_id      INTEGER NOT NULL REFERENCES accounts(id),
    kind            TEXT NOT NULL,
    occurred_at     INTEGER NOT NULL,
    owner           TEXT,
    notes           TEXT,
    outcome         TEXT,
    content_hash    INTEGER NOT NULL,
    UNIQUE (workspace_id, external_id)
);
CREATE INDEX touchpoints_by_account ON touchpoints (account_id);

CREATE TABLE opportunities (
    id              INTEGER PRIMARY KEY,
    workspace_id    INTEGER NOT NULL REFERENCES workspaces(id),
    external_id     TEXT NOT NULL,
    account_id      INTEGER NOT NULL REFERENCES accounts(id),
    kind            TEXT NOT NULL,
    source          TEXT NOT NULL,
    mrr_delta       TEXT NOT NULL,
    currency        TEXT NOT NULL,
    stage           TEXT NOT NULL,
    created_on      TEXT NOT NULL,
    closed_on       TEXT,
    status          TEXT NOT NULL,
    content_hash    INTEGER NOT NULL,
    UNIQUE (workspace_id, external_id)
);
CREATE INDEX opportunities_by_account ON opportunities (account_id);

-- Raw events are append-only and carry no secondary index: the insert is a
-- rowid append. Evaluation reads the rollups below, never this table.
-- Event names and users are stored once and referred to by integer id from
-- events and rollups: an event row is a third smaller than with the strings
-- repeated, and evaluation counts distinct users over integers.
CREATE TABLE event_names (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    UNIQUE (workspace_id, name)
);
CREATE TABLE users (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    external_id  TEXT NOT NULL,
    UNIQUE (account_id, external_id)
);

CREATE TABLE events (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL,
    message_id   TEXT NOT NULL,
    user_id      INTEGER NOT NULL,
    name_id      INTEGER NOT NULL,
    ts           INTEGER NOT NULL,
    received_at  INTEGER NOT NULL,
    properties   TEXT
);

-- Message-id deduplication. `key` is a 64-bit hash of (workspace, message
-- id) and is the rowid itself, so a check-and-insert is one probe into one
-- compact B-tree of 8-byte keys instead of an index over 36-character text.
-- A hash collision between different message ids is resolved by probing
-- key + 1, key + 2, … after comparing the stored event's message id, so
-- deduplication stays exact.
CREATE TABLE event_keys (
    key       INTEGER PRIMARY KEY,
    event_id  INTEGER NOT NULL
);

-- Per account and day: how many events, which users did how many, and how
-- many of each event name. One row per (account, day, known_day): the events
-- are split by the day they became known (received), so that an as-of
-- evaluation can ignore late arrivals. `users` and `names` are (users.id,
-- count) and (event_names.id, count) lists sorted by id, encoded with
-- postcard (see rollup.rs); one row per
-- account-day instead of one per user-day and one per event-day keeps the
-- write path to about one rollup row per five events.
CREATE TABLE usage_day (
    account_id  INTEGER NOT NULL,
    day         INTEGER NOT NULL,
    known_day   INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    users       BLOB NOT NULL,
    names       BLOB NOT NULL,
    PRIMARY KEY (account_id, day, known_day)
) WITHOUT ROWID;

CREATE TABLE imports (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    kind          TEXT NOT NULL,
    source        TEXT NOT NULL,
    finished_at   INTEGER NOT NULL,
    inserted      INTEGER NOT NULL,
    updated       INTEGER NOT NULL,
    unchanged     INTEGER NOT NULL,
    rejected      INTEGER NOT NULL
);
