-- What admins did: keys created and revoked, dashboard users added and
-- disabled, journey versions served, outbox approvals, people forgotten.
-- Append-only: the triggers refuse any change or removal.
CREATE TABLE admin_audit (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    at            INTEGER NOT NULL,   -- unix micros
    actor         TEXT NOT NULL,      -- who: a user's email, `key:PREFIX`, `cli:USER`
    action        TEXT NOT NULL,      -- key.created, key.revoked, user.added, ...
    subject       TEXT NOT NULL,
    detail        TEXT NOT NULL
);
CREATE INDEX admin_audit_by_workspace ON admin_audit (workspace_id, id);
CREATE TRIGGER admin_audit_is_append_only_update BEFORE UPDATE ON admin_audit
BEGIN SELECT RAISE(ABORT, 'the admin audit log is append-only'); END;
CREATE TRIGGER admin_audit_is_append_only_delete BEFORE DELETE ON admin_audit
BEGIN SELECT RAISE(ABORT, 'the admin audit log is append-only'); END;
