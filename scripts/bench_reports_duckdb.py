#!/usr/bin/env python3
"""The DuckDB side of `scripts/bench-reports`: the portfolio reports that are
plain SQL over the records, written as an analyst would write them over the
demo export in Parquet, with Keel's definitions (docs/metrics.md).

    bench_reports_duckdb.py parquet EXPORT_DIR PARQUET_DIR   # once, not timed
    bench_reports_duckdb.py run PARQUET_DIR REPORT AS_OF      # timed by the caller; JSON on stdout
    bench_reports_duckdb.py compare REPORT DUCKDB.json KEEL.json  # same figures as `keel report`?

Reports: retention (the twelve months before AS_OF's month, with the months
1-6 / 7+ split), cohorts (24 months), ttv (by segment and start month; the
segment rules and targets of the default journey, spelled out in SQL),
expansion (by source, same period as retention), patterns (seed 000, first
terms ended by AS_OF).

The journey-driven reports (funnel, health, gates, audit) evaluate CEL
gates, stage replays and the health model as of many dates; they have no
SQL equivalent short of re-implementing the engine, and are timed on
Keel's side only.
"""
import json
import sys
from datetime import date

import duckdb

# The export's files and the columns each report reads (all columns are kept).
TABLES = ["accounts", "contracts", "touchpoints", "opportunities", "surveys"]


def to_parquet(export, out):
    import os

    os.makedirs(out, exist_ok=True)
    con = duckdb.connect()
    for t in TABLES:
        if os.path.exists(f"{out}/{t}.parquet"):
            continue
        con.execute(
            f"COPY (SELECT * FROM read_csv('{export}/{t}.csv', header = true, all_varchar = true)) "
            f"TO '{out}/{t}.parquet' (FORMAT parquet)"
        )
    events = os.path.exists(f"{out}/events.parquet")
    con.execute(
        "SELECT 1" if events else f"""
        COPY (
            SELECT account_id, user_id, event, message_id,
                   CAST(timestamp AS TIMESTAMP) AS ts, CAST(received_at AS TIMESTAMP) AS received_at
            FROM read_json('{export}/events.jsonl', format = 'newline_delimited',
                           columns = {{account_id: 'VARCHAR', user_id: 'VARCHAR', event: 'VARCHAR',
                                      message_id: 'VARCHAR', timestamp: 'VARCHAR', received_at: 'VARCHAR'}})
        ) TO '{out}/events.parquet' (FORMAT parquet, ROW_GROUP_SIZE 1000000)
        """
    )
    for t in TABLES + ["events"]:
        n = con.execute(f"SELECT count(*) FROM '{out}/{t}.parquet'").fetchone()[0]
        print(t, n, "rows")


def views(con, d):
    con.execute(
        f"""
        CREATE VIEW lines AS
        SELECT account_id, product, CAST(start_date AS DATE) AS s,
               CAST(NULLIF(end_date, '') AS DATE) AS e, CAST(mrr AS DECIMAL(18, 2)) AS mrr
        FROM '{d}/contracts.parquet'
        """
    )
    con.execute(f"CREATE VIEW accounts AS SELECT id, \"attr.tier\" AS tier FROM '{d}/accounts.parquet'")
    con.execute(
        f"""
        CREATE VIEW touchpoints AS
        SELECT account_id, kind, CAST(CAST(occurred_at AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS DATE) AS day
        FROM '{d}/touchpoints.parquet'
        """
    )
    con.execute(f"CREATE VIEW events AS SELECT * FROM '{d}/events.parquet'")
    con.execute(
        f"""
        CREATE VIEW surveys AS
        SELECT id, account_id, kind, CAST(score AS INTEGER) AS score,
               CAST(CAST(responded_at AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP) AS responded
        FROM '{d}/surveys.parquet'
        """
    )
    con.execute(
        f"""
        CREATE VIEW opportunities AS
        SELECT account_id, kind, source, CAST(mrr_delta AS DECIMAL(18, 2)) AS mrr_delta, status,
               CAST(created_date AS DATE) AS created, CAST(NULLIF(closed_date, '') AS DATE) AS closed
        FROM '{d}/opportunities.parquet'
        """
    )
    # Tenure months as Keel counts them: month m starts on start + (m-1) months.
    con.execute(
        """
        CREATE MACRO tenure_month(s, d) AS
            date_diff('month', s, d) + CASE WHEN (s + to_months(date_diff('month', s, d)))::DATE > d
                                            THEN 0 ELSE 1 END
        """
    )


def period_of(as_of):
    to = as_of.replace(day=1)
    return to.replace(year=to.year - 1), to


RETENTION = """
WITH first AS (SELECT account_id, min(s) AS s0 FROM lines GROUP BY 1),
m0 AS (SELECT account_id, sum(mrr) AS m0 FROM lines WHERE s <= $from AND (e IS NULL OR e > $from) GROUP BY 1),
m1 AS (SELECT account_id, sum(mrr) AS m1 FROM lines WHERE s <= $to AND (e IS NULL OR e > $to) GROUP BY 1),
acc AS (
    SELECT m0.account_id, m0, coalesce(m1, 0) AS m1, m1.account_id IS NULL AS churned,
           tenure_month(first.s0, $from) <= 6 AS early
    FROM m0 LEFT JOIN m1 USING (account_id) JOIN first USING (account_id)
),
due AS (
    SELECT l.account_id, l.mrr, EXISTS (
        SELECT 1 FROM lines n WHERE n.account_id = l.account_id AND n.s <= l.e AND (n.e IS NULL OR n.e > l.e)
    ) AS renewed, tenure_month(first.s0, $from) <= 6 AS early
    FROM lines l JOIN first USING (account_id) WHERE l.e > $from AND l.e <= $to
),
fresh AS (SELECT m1.account_id, m1 FROM m1 ANTI JOIN m0 USING (account_id)),
groups AS (SELECT 'total' AS g UNION ALL SELECT 'early' UNION ALL SELECT 'late')
SELECT g,
    (SELECT count(*) FROM acc WHERE g = 'total' OR early = (g = 'early')) AS starting_accounts,
    (SELECT sum(m0) FROM acc WHERE g = 'total' OR early = (g = 'early')) AS starting_mrr,
    (SELECT sum(m1) FROM acc WHERE g = 'total' OR early = (g = 'early')) AS ending_mrr,
    (SELECT sum(CASE WHEN NOT churned THEN greatest(m1 - m0, 0) ELSE 0 END) FROM acc
        WHERE g = 'total' OR early = (g = 'early')) AS expansion_mrr,
    (SELECT sum(CASE WHEN NOT churned THEN greatest(m0 - m1, 0) ELSE 0 END) FROM acc
        WHERE g = 'total' OR early = (g = 'early')) AS contraction_mrr,
    (SELECT sum(CASE WHEN churned THEN m0 ELSE 0 END) FROM acc
        WHERE g = 'total' OR early = (g = 'early')) AS churned_mrr,
    (SELECT count(*) FILTER (churned) FROM acc WHERE g = 'total' OR early = (g = 'early')) AS churned_accounts,
    (SELECT sum(least(m0, m1)) FROM acc WHERE g = 'total' OR early = (g = 'early')) AS kept_mrr,
    (SELECT count(*) FROM due WHERE g = 'total' OR early = (g = 'early')) AS renewals_due,
    (SELECT count(*) FILTER (renewed) FROM due WHERE g = 'total' OR early = (g = 'early')) AS renewals_renewed,
    (SELECT sum(mrr) FILTER (renewed) / sum(mrr) FROM due WHERE g = 'total' OR early = (g = 'early'))
        AS renewal_rate_mrr,
    (SELECT count(*) FROM fresh) AS new_accounts,
    (SELECT sum(m1) FROM fresh) AS new_mrr
FROM groups
"""


def retention(con, as_of):
    frm, to = period_of(as_of)
    out = {}
    for r in con.execute(RETENTION, {"from": frm, "to": to}).fetchall():
        g, n, start, end, exp, con_, churn, churned, kept, due, renewed, rate_mrr, new_n, new_mrr = r
        out[g] = {
            "starting_accounts": n,
            "starting_mrr": str(start),
            "ending_mrr": str(end),
            "expansion_mrr": str(exp),
            "contraction_mrr": str(con_),
            "churned_mrr": str(churn),
            "churned_accounts": churned,
            "nrr": float(end / start) if start else None,
            "grr": float(kept / start) if start else None,
            "logo_churn": churned / n if n else None,
            "renewals_due": due,
            "renewals_renewed": renewed,
            "renewal_rate": renewed / due if due else None,
            "renewal_rate_mrr": float(rate_mrr) if rate_mrr is not None else None,
        }
        if g == "total":
            out[g].update({"new_accounts": new_n, "new_mrr": str(new_mrr)})
    return {"period": {"from": str(frm), "to": str(to)}, **out}


COHORTS = """
WITH first AS (SELECT account_id, min(s) AS s0 FROM lines GROUP BY 1 HAVING min(s) <= $as_of),
obs AS (
    SELECT f.account_id, strftime(f.s0, '%Y-%m') AS cohort, k.range AS k,
           (f.s0 + to_months(k.range::INTEGER))::DATE AS d, f.s0
    FROM first f, range(0, 25) k
    WHERE (f.s0 + to_months(k.range::INTEGER))::DATE <= $as_of
),
atk AS (
    SELECT o.account_id, o.cohort, o.k, count(l.account_id) > 0 AS active, coalesce(sum(l.mrr), 0) AS mrr
    FROM obs o LEFT JOIN lines l ON l.account_id = o.account_id AND l.s <= o.d AND (l.e IS NULL OR l.e > o.d)
    GROUP BY ALL
),
base AS (SELECT account_id, mrr AS start_mrr FROM atk WHERE k = 0)
SELECT cohort, k, count(*) AS accounts, count(*) FILTER (active) AS active, sum(start_mrr) AS start_mrr, sum(mrr) AS mrr
FROM atk JOIN base USING (account_id)
GROUP BY ALL ORDER BY cohort, k
"""


def cohorts(con, as_of):
    out = {}
    for cohort, k, n, active, start_mrr, mrr in con.execute(COHORTS, {"as_of": as_of}).fetchall():
        out.setdefault(cohort, []).append(
            {
                "month": k,
                "accounts": n,
                "active": active,
                "logo_retention": active / n,
                "revenue_retention": float(mrr / start_mrr) if start_mrr else None,
            }
        )
    return {"cohorts": out}


TTV = """
WITH first AS (SELECT account_id, min(s) AS s0 FROM lines GROUP BY 1 HAVING min(s) <= $as_of),
fv AS (
    SELECT e.account_id, min(CAST(e.ts AS DATE)) AS fv
    FROM events e JOIN first f USING (account_id)
    WHERE e.event = 'workflow_published' AND CAST(e.ts AS DATE) >= f.s0
      AND CAST(e.ts AS DATE) <= $as_of AND CAST(e.received_at AS DATE) <= $as_of
    GROUP BY 1
),
now AS (SELECT account_id, sum(mrr) AS mrr FROM lines WHERE s <= $as_of AND (e IS NULL OR e > $as_of) GROUP BY 1),
t AS (
    SELECT f.account_id, strftime(f.s0, '%Y-%m') AS cohort,
           CASE WHEN a.tier = 'enterprise' OR coalesce(now.mrr, 0) >= 5000 THEN 'enterprise'
                WHEN a.tier = 'mid_market' THEN 'mid_market' ELSE 'smb' END AS segment,
           date_diff('day', f.s0, fv.fv) AS ttv, date_diff('day', f.s0, $as_of) AS tenure
    FROM first f JOIN accounts a ON a.id = f.account_id
    LEFT JOIN fv USING (account_id) LEFT JOIN now USING (account_id)
),
tt AS (SELECT *, CASE segment WHEN 'enterprise' THEN 60 WHEN 'mid_market' THEN 45 ELSE 30 END AS target FROM t)
SELECT CASE WHEN grouping(segment) = 0 THEN 'segment' WHEN grouping(cohort) = 0 THEN 'cohort' ELSE 'total' END,
       coalesce(segment, cohort), count(*), count(ttv),
       quantile_cont(ttv, [0.25, 0.5, 0.75, 0.9]),
       count(*) FILTER (ttv IS NOT NULL OR tenure >= target),
       count(*) FILTER (ttv <= target),
       count(*) FILTER (ttv IS NULL AND tenure >= target),
       count(*) FILTER (ttv IS NULL AND tenure < target)
FROM tt GROUP BY GROUPING SETS ((), (segment), (cohort))
"""


def ttv(con, as_of):
    out = {"total": None, "by_segment": {}, "by_cohort": {}}
    for kind, key, n, reached, q, eligible, within, overdue, waiting in con.execute(TTV, {"as_of": as_of}).fetchall():
        q = q or [None] * 4
        row = {
            "accounts": n,
            "reached": reached,
            "p25": q[0],
            "p50": q[1],
            "p75": q[2],
            "p90": q[3],
            "eligible": eligible,
            "within_target": within,
            "share_within_target": within / eligible if eligible else None,
            "overdue": overdue,
            "waiting": waiting,
        }
        if kind == "total":
            out["total"] = row
        else:
            out["by_" + kind][key] = row
    return out


EXPANSION = """
SELECT source,
       count(*) FILTER (created >= $from AND created < $to) AS created,
       coalesce(sum(mrr_delta) FILTER (created >= $from AND created < $to), 0) AS created_mrr,
       count(*) FILTER (status = 'won' AND closed >= $from AND closed < $to) AS won,
       coalesce(sum(mrr_delta) FILTER (status = 'won' AND closed >= $from AND closed < $to), 0) AS won_mrr,
       count(*) FILTER (status = 'lost' AND closed >= $from AND closed < $to) AS lost,
       count(*) FILTER (created < $to AND (closed IS NULL OR closed >= $to)) AS open_on_to
FROM opportunities WHERE kind IN ('expansion', 'cross_sell')
GROUP BY 1 ORDER BY 1
"""


# Advocacy: promoters are accounts active on `to` whose latest NPS response
# before `to` (latest by time, then id) scored at least the journey's
# advocacy_min_nps (9 in the default journey); asks are touchpoints of the
# ask kinds in the period.
ADVOCACY = """
WITH latest AS (
    SELECT account_id, score FROM (
        SELECT account_id, score,
               row_number() OVER (PARTITION BY account_id ORDER BY responded DESC, id DESC) AS r
        FROM surveys WHERE kind = 'nps' AND CAST(responded AS DATE) < $to
    ) WHERE r = 1
),
active AS (SELECT DISTINCT account_id FROM lines WHERE s <= $to AND (e IS NULL OR e > $to)),
asks AS (
    SELECT account_id, count(*) AS n FROM touchpoints
    WHERE kind IN ('reference_request', 'case_study', 'review_request', 'referral_request', 'advocacy_ask')
      AND day >= $from AND day < $to
    GROUP BY 1
)
SELECT (SELECT count(*) FROM latest JOIN active USING (account_id) WHERE score >= 9),
       (SELECT count(*) FROM latest JOIN active USING (account_id) JOIN asks USING (account_id) WHERE score >= 9),
       (SELECT coalesce(sum(n), 0) FROM asks)
"""


def expansion(con, as_of):
    frm, to = period_of(as_of)
    rows = con.execute(EXPANSION, {"from": frm, "to": to}).fetchall()
    promoters, asked, asks = con.execute(ADVOCACY, {"from": frm, "to": to}).fetchone()
    by = [
        {"source": s, "created": c, "created_mrr": str(cm), "won": w, "won_mrr": str(wm), "lost": l, "open_on_to": o}
        for s, c, cm, w, wm, l, o in rows
    ]
    total_won = sum(float(r[4]) for r in rows)
    cs = sum(float(r[4]) for r in rows if r[0] == "cs")
    return {
        "by_source": by,
        "cs_share_of_won_mrr": cs / total_won if total_won else None,
        "promoters": promoters,
        "candidates_asked": asked,
        "asks": int(asks),
    }


PATTERNS = """
WITH first AS (SELECT account_id, min(s) AS s0 FROM lines GROUP BY 1),
term AS (
    SELECT f.account_id, f.s0, min(l.e) AS decided
    FROM first f JOIN lines l ON l.account_id = f.account_id AND l.s = f.s0 AND l.e IS NOT NULL
    GROUP BY ALL HAVING min(l.e) <= $as_of
),
t AS (
    SELECT t.*, date_diff('day', t.s0, t.decided) AS end_day, EXISTS (
        SELECT 1 FROM lines n WHERE n.account_id = t.account_id AND n.s <= t.decided
          AND (n.e IS NULL OR n.e > t.decided)) AS renewed,
        (SELECT min(CAST(e.ts AS DATE)) FROM events e WHERE e.account_id = t.account_id
           AND e.event = 'workflow_published' AND CAST(e.ts AS DATE) >= t.s0
           AND CAST(e.ts AS DATE) <= t.decided AND CAST(e.received_at AS DATE) <= t.decided) AS fv
    FROM term t
),
tp AS (SELECT tp.account_id, tp.kind, date_diff('day', t.s0, tp.day) AS day, t.end_day
       FROM touchpoints tp JOIN t USING (account_id)),
shows AS (
    SELECT t.account_id, t.renewed,
        NOT EXISTS (SELECT 1 FROM tp WHERE tp.account_id = t.account_id AND kind = 'internal_kickoff'
                    AND day >= -60 AND day < 30) AS no_internal_kickoff,
        fv IS NULL OR date_diff('day', t.s0, fv) > 90 AS no_first_value,
        NOT EXISTS (SELECT 1 FROM tp WHERE tp.account_id = t.account_id AND kind = 'alignment_meeting'
                    AND day >= 90 AND day < 300) AS no_alignment_meetings,
        NOT EXISTS (SELECT 1 FROM tp WHERE tp.account_id = t.account_id AND kind = 'insights_shared'
                    AND day >= 0 AND day < tp.end_day) AS insights_never_shared,
        NOT EXISTS (SELECT 1 FROM tp WHERE tp.account_id = t.account_id AND kind = 'renewal_conversation'
                    AND day >= tp.end_day - 120 AND day < tp.end_day) AS renewal_first_close_attempt
    FROM t
)
SELECT count(*), count(*) FILTER (renewed),
       count(*) FILTER (no_internal_kickoff), count(*) FILTER (no_internal_kickoff AND renewed),
       count(*) FILTER (no_first_value), count(*) FILTER (no_first_value AND renewed),
       count(*) FILTER (no_alignment_meetings), count(*) FILTER (no_alignment_meetings AND renewed),
       count(*) FILTER (insights_never_shared), count(*) FILTER (insights_never_shared AND renewed),
       count(*) FILTER (renewal_first_close_attempt), count(*) FILTER (renewal_first_close_attempt AND renewed),
       count(*) FILTER (any_pattern), count(*) FILTER (any_pattern AND renewed)
FROM (SELECT *, no_internal_kickoff OR no_first_value OR no_alignment_meetings OR insights_never_shared
                OR renewal_first_close_attempt AS any_pattern FROM shows)
"""

PATTERN_IDS = [
    "no_internal_kickoff",
    "no_first_value",
    "no_alignment_meetings",
    "insights_never_shared",
    "renewal_first_close_attempt",
]


def patterns(con, as_of):
    r = con.execute(PATTERNS, {"as_of": as_of}).fetchone()
    n, renewed = r[0], r[1]
    rows = []
    for i, pid in enumerate(PATTERN_IDS):
        showing, renewed_with = r[2 + 2 * i], r[3 + 2 * i]
        rows.append({"id": pid, "showing": showing, "renewed_with": renewed_with, "share": showing / n if n else None})
    # "All rows executed": none of the patterns; its split is none vs any, Keel's "with" side being "any".
    some, some_renewed = r[12], r[13]
    rows.append(
        {"id": "all_rows_executed", "showing": n - some, "renewed_with": some_renewed,
         "share": (n - some) / n if n else None}
    )
    return {"accounts": n, "renewed": renewed, "patterns": rows}


REPORTS = {"retention": retention, "cohorts": cohorts, "ttv": ttv, "expansion": expansion, "patterns": patterns}


def run(d, report, as_of):
    con = duckdb.connect()
    views(con, d)
    print(json.dumps(REPORTS[report](con, date.fromisoformat(as_of))))


def close(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    if isinstance(a, str) and isinstance(b, str):
        try:
            return abs(float(a) - float(b)) < 0.005
        except ValueError:
            return a == b
    return a == b


# Collections whose members must be the same on both sides (not only
# DuckDB's figures found on Keel's side).
COLLECTIONS = {"cohorts", "by_segment", "by_cohort", "by_source", "patterns"}


def diff(path, duck, keel, out, seen):
    """Every figure DuckDB gives must equal Keel's at the same place."""
    if isinstance(duck, dict):
        last = path.rsplit(".", 1)[-1]
        parent = path.rsplit(".", 2)[-2] if path.count(".") >= 1 else ""
        if (last in COLLECTIONS or parent == "cohorts") and isinstance(keel, dict) and set(duck) != set(keel):
            out.append(f"{path}: DuckDB has {sorted(set(duck) - set(keel))[:5]} only, "
                       f"Keel {sorted(set(keel) - set(duck))[:5]} only")
        for k, v in duck.items():
            if not isinstance(keel, dict) or k not in keel:
                out.append(f"{path}.{k}: missing on Keel's side")
            else:
                diff(f"{path}.{k}", v, keel[k], out, seen)
    else:
        seen[0] += 1
        if not close(duck, keel):
            out.append(f"{path}: DuckDB {duck!r}, Keel {keel!r}")


def compare(report, duck_file, keel_file):
    duck = json.load(open(duck_file))
    keel = json.load(open(keel_file))
    if report == "retention":
        keel = {"period": keel["total"]["period"], "total": keel["total"], **(keel.get("tenure_split") or {})}
    elif report == "cohorts":
        keel = {"cohorts": {c["cohort"]: c["cells"] for c in keel["cohorts"]}}
        duck = {"cohorts": {c: {str(i): x for i, x in enumerate(v)} for c, v in duck["cohorts"].items()}}
        keel = {"cohorts": {c: {str(i): x for i, x in enumerate(v)} for c, v in keel["cohorts"].items()}}
    elif report == "expansion":
        keel["by_source"] = {r["source"]: r for r in keel["by_source"]}
        duck["by_source"] = {r["source"]: r for r in duck["by_source"]}
    elif report == "patterns":
        keel["patterns"] = {
            p["id"]: {
                "id": p["id"],
                "showing": p["showing"],
                "renewed_with": p["renewal"]["failed"]["k"],
                "share": p["share"],
            }
            for p in keel["patterns"]
        }
        duck["patterns"] = {p["id"]: p for p in duck["patterns"]}
    out, seen = [], [0]
    diff(report, duck, keel, out, seen)
    for line in out[:20]:
        print(line)
    if out or seen[0] == 0:
        print(f"{report}: {len(out)} of {seen[0]} figures differ")
        sys.exit(1)
    print(f"{report}: all {seen[0]} figures DuckDB computes equal Keel's")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "parquet":
        to_parquet(sys.argv[2], sys.argv[3])
    elif cmd == "run":
        run(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "compare":
        compare(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
