-- When message ids arrived, coarsely: the first event id stored on or after
-- each day (UTC) the server marked. Deduplication forgets the message ids of
-- events older than its window by deleting their `event_keys` rows below the
-- mark of the window's first day; the events themselves stay.
CREATE TABLE ingest_marks (
    day             INTEGER PRIMARY KEY,   -- days since 1970-01-01
    first_event_id  INTEGER NOT NULL
);
