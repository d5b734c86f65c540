#!/usr/bin/env python3
"""The DuckDB side of `scripts/bench-evaluate`: the core usage metrics of
every account as of one date, computed from the raw events.

    bench_duckdb.py load EVENTS.jsonl DB.duckdb     # once, not timed
    bench_duckdb.py query DB.duckdb AS_OF CORE,...  # timed by the caller
    bench_duckdb.py query-json EVENTS.jsonl AS_OF CORE,...  # straight from the export
    bench_duckdb.py compare DB.duckdb AS_OF CORE,... KEEL.csv  # same values as `keel metrics`?

Metrics (as Keel computes them; an event counts only if it happened and was
received on or before AS_OF): active users 7 and 28 days, core features used
in the last 7 days, and the change of events in the last 28 days against the
28 before, in percent.
"""
import sys

import duckdb


def load(events, db):
    con = duckdb.connect(db)
    con.execute("DROP TABLE IF EXISTS events")
    con.execute(
        """
        CREATE TABLE events AS
        SELECT account_id, user_id, event,
               CAST(timestamp AS TIMESTAMP) AS ts,
               CAST(received_at AS TIMESTAMP) AS received_at
        FROM read_json(?, format = 'newline_delimited',
                       columns = {account_id: 'VARCHAR', user_id: 'VARCHAR', event: 'VARCHAR',
                                  timestamp: 'VARCHAR', received_at: 'VARCHAR'})
        """,
        [events],
    )
    print(con.execute("SELECT count(*) FROM events").fetchone()[0], "events loaded")


JSON_EVENTS = """(
    SELECT account_id, user_id, event, CAST(timestamp AS TIMESTAMP) AS ts,
           CAST(received_at AS TIMESTAMP) AS received_at
    FROM read_json('{}', format = 'newline_delimited',
                   columns = {{account_id: 'VARCHAR', user_id: 'VARCHAR', event: 'VARCHAR',
                              timestamp: 'VARCHAR', received_at: 'VARCHAR'}}))"""


def query(db, as_of, core, source="events", keep=False):
    con = duckdb.connect(db, read_only=True) if db != ":memory:" else duckdb.connect()
    rows = con.execute(
        """
        WITH known AS (
            SELECT account_id, user_id, event, CAST(ts AS DATE) AS day
            FROM """ + source + """
            WHERE CAST(ts AS DATE) <= CAST(? AS DATE) AND CAST(received_at AS DATE) <= CAST(? AS DATE)
              AND CAST(ts AS DATE) > CAST(? AS DATE) - 56
        )
        SELECT account_id,
               count(DISTINCT user_id) FILTER (WHERE day > CAST(? AS DATE) - 7)  AS active_users_7d,
               count(DISTINCT user_id) FILTER (WHERE day > CAST(? AS DATE) - 28) AS active_users_28d,
               count(DISTINCT event) FILTER (WHERE day > CAST(? AS DATE) - 7 AND list_contains(?, event))
                   AS core_features_weekly,
               count(*) FILTER (WHERE day > CAST(? AS DATE) - 28) AS events_28d,
               count(*) FILTER (WHERE day <= CAST(? AS DATE) - 28) AS events_prev_28d
        FROM known GROUP BY account_id
        """,
        [as_of, as_of, as_of, as_of, as_of, as_of, core, as_of, as_of],
    ).fetchall()
    change = [
        (r[4] - r[5]) * 100.0 / r[5] if r[5] else (100.0 if r[4] else None) for r in rows
    ]
    print(len(rows), "accounts;", sum(1 for c in change if c is not None), "with a usage change")
    if keep:
        return {r[0]: (r[1], r[2], r[3], c) for r, c in zip(rows, change)}


def compare(db, as_of, core, keel_csv):
    """Every account's four metrics from DuckDB against `keel metrics` CSV
    output (columns active_users_7d, active_users_28d, core_features_weekly,
    usage_change_pct); Keel prints doubles to 2 decimals."""
    import csv

    duck = query(db, as_of, core, keep=True)
    compared = differ = 0
    for row in csv.DictReader(open(keel_csv)):
        got = (int(row["active_users_7d"]), int(row["active_users_28d"]), int(row["core_features_weekly"]))
        change = float(row["usage_change_pct"]) if row["usage_change_pct"] else None
        want = duck.get(row["account"], (0, 0, 0, None))
        compared += 1
        same = got == want[:3] and (
            (change is None and want[3] is None)
            or (change is not None and want[3] is not None and abs(change - want[3]) <= 0.005 + 1e-9)
        )
        if not same:
            differ += 1
            if differ <= 5:
                print("differs:", row["account"], "keel", got, change, "duckdb", want)
    print(f"{compared} accounts compared, {differ} differ")
    sys.exit(1 if differ or not compared else 0)


if __name__ == "__main__":
    if sys.argv[1] == "load":
        load(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3], sys.argv[4].split(","), sys.argv[5])
    elif sys.argv[1] == "query-json":
        query(":memory:", sys.argv[3], sys.argv[4].split(","), JSON_EVENTS.format(sys.argv[2]))
    else:
        query(sys.argv[2], sys.argv[3], sys.argv[4].split(","))
