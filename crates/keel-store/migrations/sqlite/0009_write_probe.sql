-- One row that readiness checks rewrite to find out whether the store can
-- write again after a write failed for want of the disk.
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at INTEGER NOT NULL
);
