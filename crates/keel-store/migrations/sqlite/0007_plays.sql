-- Plays: each account's trigger memo, play runs (one per account, play and
-- trigger occurrence; at most one open per account and play), the
-- append-only audit log of every play decision, tasks, the approval outbox
-- and outgoing deliveries (emails and webhooks) with their retries.

CREATE TABLE play_memos (
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    account       TEXT NOT NULL,
    as_of         TEXT NOT NULL,
    holding       TEXT NOT NULL,          -- JSON array of trigger keys
    PRIMARY KEY (workspace_id, account)
);

CREATE TABLE play_runs (
    id            INTEGER PRIMARY KEY,
    workspace_id  INTEGER NOT NULL REFERENCES workspaces(id),
    run_key       TEXT NOT NULL,
    account       TEXT NOT NULL,
    play          TEXT NOT NULL,
    status        TEXT NOT NULL,
    open          INTEGER NOT NULL,
    holdout       INTEGER NOT NULL,
    started       TEXT NOT NULL,
    outcome       TEXT,                   -- pending, met, missed; NULL: no outcome judged
    run           TEXT NOT NULL,          -- JSON: keel_plays::Run
    updated_at    INTEGER NOT NULL,
    UNIQUE (workspace_id, run_key)
);
-- No double firing: one open run per account and play, whatever races.
CREATE UNIQUE INDEX play_runs_one_open ON play_runs (workspace_id, account, play) WHERE open = 1;
CREATE INDEX play_runs_by_account ON play_runs (workspace_id, account, play, started);
CREATE INDEX play_runs_by_play ON play_runs (workspace_id, play);

CREATE TABLE play_decisions (
    id               INTEGER PRIMARY KEY,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id),
    run_key          TEXT NOT NULL,
    account          TEXT NOT NULL,
    play             TEXT NOT NULL,
    at               INTEGER NOT NULL,    -- unix micros
    decision         TEXT NOT NULL,
    step             INTEGER,
    rule             TEXT,
    by_whom          TEXT,
    detail           TEXT NOT NULL,
    journey_version  TEXT NOT NULL,
    inputs           TEXT NOT NULL         -- JSON object
);
CREATE INDEX play_decisions_by_run ON play_decisions (workspace_id, run_key);
CREATE INDEX play_decisions_by_account ON play_decisions (workspace_id, account, at);
CREATE TRIGGER play_decisions_no_update BEFORE UPDATE ON play_decisions
BEGIN SELECT RAISE(ABORT, 'the play audit log is append-only'); END;
CREATE TRIGGER play_decisions_no_delete BEFORE DELETE ON play_decisions
BEGIN SELECT RAISE(ABORT, 'the play audit log is append-only'); END;

CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id),
    account          TEXT NOT NULL,
    run_key          TEXT,
    step             INTEGER,
    kind             TEXT NOT NULL,       -- risk, opportunity, lifecycle, activity
    title            TEXT NOT NULL,
    description      TEXT NOT NULL,
    role             TEXT NOT NULL,
    owner            TEXT NOT NULL,
    due              TEXT NOT NULL,
    priority         TEXT NOT NULL,
    status           TEXT NOT NULL,       -- open, snoozed, done, cancelled
    snoozed_until    TEXT,
    snooze_reason    TEXT,
    outcome          TEXT,
    touchpoint_kind  TEXT NOT NULL,
    evidence         TEXT NOT NULL,       -- JSON: the trigger that created it
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (workspace_id, run_key, step)
);
CREATE INDEX tasks_by_owner ON tasks (workspace_id, owner, status, due);
CREATE INDEX tasks_by_account ON tasks (workspace_id, account);

CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
    account      TEXT NOT NULL,
    run_key      TEXT NOT NULL,
    step         INTEGER NOT NULL,
    approver     TEXT NOT NULL,
    rule         TEXT NOT NULL,
    payload      TEXT NOT NULL,           -- JSON: the rendered send
    status       TEXT NOT NULL,           -- pending, approved, rejected
    decided_by   TEXT,
    decided_at   INTEGER,
    note         TEXT,
    created_at   INTEGER NOT NULL,
    UNIQUE (workspace_id, run_key, step)
);

CREATE TABLE deliveries (
    id               INTEGER PRIMARY KEY,
    workspace_id     INTEGER NOT NULL REFERENCES workspaces(id),
    account          TEXT NOT NULL,
    run_key          TEXT NOT NULL,
    step             INTEGER NOT NULL,
    channel          TEXT NOT NULL,       -- email, webhook
    customer_facing  INTEGER NOT NULL,
    payload          TEXT NOT NULL,       -- JSON: the rendered send
    status           TEXT NOT NULL,       -- pending, sent, dead
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,    -- unix micros
    last_error       TEXT,
    created_on       TEXT NOT NULL,       -- the evaluation day it was queued (the contact budget's day)
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    UNIQUE (workspace_id, run_key, step)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_by_account ON deliveries (workspace_id, account, created_on);
