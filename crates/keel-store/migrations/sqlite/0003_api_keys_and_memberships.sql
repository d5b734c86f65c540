-- API keys: one workspace each, with scopes. Only a hash of the secret is
-- kept; the prefix (the key's first characters, not secret on its own) finds
-- the row.
CREATE TABLE api_keys (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL UNIQUE,
    secret_hash   BLOB NOT NULL,
    scopes        TEXT NOT NULL,   -- comma-separated: ingest, read, admin
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX api_keys_by_workspace ON api_keys (workspace_id);

-- Which account a product user belongs to, from Segment `group` calls (and
-- Keel's `ungroup` extension): time-bounded, so as-of evaluation and event
-- attribution see the membership that held at the time.
CREATE TABLE memberships (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    user_id       TEXT NOT NULL,
    account_id    INTEGER NOT NULL REFERENCES accounts(id),
    since         INTEGER NOT NULL,   -- unix micros
    until         INTEGER             -- unix micros; NULL while it holds
);
CREATE INDEX memberships_by_user ON memberships (workspace_id, user_id, since);
