-- People who sign in to the dashboard: one workspace each, a role, and an
-- Argon2id hash of the password (a PHC string). An email signs in to one
-- workspace.
CREATE TABLE dashboard_users (
    id             INTEGER PRIMARY KEY,
    workspace_id   INTEGER NOT NULL REFERENCES workspaces(id),
    email          TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,      -- admin, leader, csm
    password_hash  TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    disabled_at    INTEGER
);
CREATE INDEX dashboard_users_by_workspace ON dashboard_users (workspace_id);

-- Signed-in browser sessions: only a hash of the cookie's token is kept,
-- with the session's CSRF token and when it expires.
CREATE TABLE web_sessions (
    token_hash  BLOB PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES dashboard_users(id),
    csrf        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX web_sessions_by_user ON web_sessions (user_id);
