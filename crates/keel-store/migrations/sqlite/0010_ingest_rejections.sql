-- Segment messages Keel refused, with why: an SDK is told only inside a
-- 200 (or in an error callback), so operators read them here. Each
-- workspace keeps its latest 10 000.
CREATE TABLE ingest_rejections (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    at            INTEGER NOT NULL,   -- unix micros, when the request arrived
    code          TEXT NOT NULL,
    reason        TEXT NOT NULL,
    message_id    TEXT,
    user_id       TEXT
);
CREATE INDEX ingest_rejections_by_workspace ON ingest_rejections (workspace_id, id);
