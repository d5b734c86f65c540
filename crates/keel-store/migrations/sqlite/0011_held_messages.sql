-- Events and identifies of users who belong to no account yet: SDKs send a
-- user's first events before the `group` call that names the account, so
-- they wait here and are attributed when the user joins one. `payload` is
-- the message as the ingest layer will read it back; one message id is
-- held once per workspace.
CREATE TABLE held_messages (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    message_id    TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    received_at   INTEGER NOT NULL,   -- unix micros
    payload       TEXT NOT NULL,
    UNIQUE (workspace_id, message_id)
);
CREATE INDEX held_messages_by_user ON held_messages (workspace_id, user_id, id);
