//! Failure patterns (docs/metrics.md; the seed-000 table): for each pattern
//! the data can show — no internal kickoff from sales, no first value by
//! day 90, no alignment meeting in months 4–10, insights never shared in the
//! first year, no renewal conversation before the first renewal — the share
//! of accounts showing it and their renewal at the first renewal decision
//! against the rest's (difference with its 95% interval).

use keel_core::{Date, ExternalId};
use serde::Serialize;

use crate::gates::Split;

/// One account through its first term.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FirstTerm {
    /// The account.
    pub account: ExternalId,
    /// Its first contract's start.
    pub start: Date,
    /// The end of its first term (the first line end on or after the start).
    pub decided_on: Date,
    /// Whether it had a line in force on that day.
    pub renewed: bool,
    /// Days from start to first value (None: not reached by the decision).
    pub ttv_days: Option<i64>,
    /// Its touchpoints: (kind, day).
    pub touchpoints: Vec<(String, Date)>,
}

/// A pattern and what went with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatternRow {
    /// Short id.
    pub id: &'static str,
    /// The seed's wording.
    pub pattern: &'static str,
    /// How it is read from the data.
    pub rule: &'static str,
    /// Accounts showing it.
    pub showing: u64,
    /// Share of all accounts.
    pub share: Option<f64>,
    /// Renewal of those *without* the pattern ("passed") vs those with it
    /// ("failed"): the difference is the pattern's cost in renewal points.
    pub renewal: Split,
}

/// `keel report patterns`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatternReport {
    /// Accounts whose first renewal decision is known.
    pub accounts: u64,
    /// Of which renewed.
    pub renewed: u64,
    /// One row per pattern, then "all rows executed" (none of them).
    pub patterns: Vec<PatternRow>,
}

type Rule = fn(&FirstTerm) -> bool;

fn had(t: &FirstTerm, kind: &str, from_day: i64, to_day: i64) -> bool {
    t.touchpoints.iter().any(|(k, d)| {
        let day = (*d - t.start).num_days();
        k == kind && from_day <= day && day < to_day
    })
}

fn months(m: i64) -> i64 {
    m * 30
}

/// The patterns, as the data can show them.
pub const PATTERNS: [(&str, &str, &str, Rule); 5] = [
    (
        "no_internal_kickoff",
        "No IKT from Sales",
        "no `internal_kickoff` touchpoint in the first 30 days",
        |t| !had(t, "internal_kickoff", -60, 30),
    ),
    ("no_first_value", "First Value not reached", "first value not reached by day 90", |t| {
        t.ttv_days.is_none_or(|d| d > 90)
    }),
    (
        "no_alignment_meetings",
        "No Alignment Meetings",
        "no `alignment_meeting` touchpoint in months 4–10",
        |t| !had(t, "alignment_meeting", months(3), months(10)),
    ),
    (
        "insights_never_shared",
        "Insights never shared",
        "no `insights_shared` touchpoint before the first renewal",
        |t| !had(t, "insights_shared", 0, (t.decided_on - t.start).num_days()),
    ),
    (
        "renewal_first_close_attempt",
        "Renewal = first close attempt",
        "no `renewal_conversation` touchpoint in the 120 days before the first renewal",
        |t| {
            let end = (t.decided_on - t.start).num_days();
            !had(t, "renewal_conversation", end - 120, end)
        },
    ),
];

/// The report over accounts whose first renewal decision is known.
pub fn report(terms: &[FirstTerm]) -> PatternReport {
    let split = |shows: &dyn Fn(&FirstTerm) -> bool| {
        let (mut without, mut with) = ((0, 0), (0, 0));
        for t in terms {
            let slot = if shows(t) { &mut with } else { &mut without };
            slot.1 += 1;
            if t.renewed {
                slot.0 += 1;
            }
        }
        (with.1, Split::new(without, with))
    };
    let n = terms.len() as u64;
    let mut patterns: Vec<PatternRow> = PATTERNS
        .iter()
        .map(|(id, pattern, rule, shows)| {
            let (showing, renewal) = split(shows);
            PatternRow { id, pattern, rule, showing, share: crate::ratio(showing as f64, n as f64), renewal }
        })
        .collect();
    // "All 8 rows executed": none of the patterns. Its split reads the other
    // way round: passed = executed everything.
    let none = |t: &FirstTerm| PATTERNS.iter().any(|(_, _, _, shows)| shows(t));
    let (showing, renewal) = split(&none);
    patterns.push(PatternRow {
        id: "all_rows_executed",
        pattern: "All rows executed",
        rule: "none of the patterns above (its split: accounts with none vs accounts with any)",
        showing: n - showing,
        share: crate::ratio((n - showing) as f64, n as f64),
        renewal,
    });
    PatternReport { accounts: n, renewed: terms.iter().filter(|t| t.renewed).count() as u64, patterns }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(account: &str, renewed: bool, ttv: Option<i64>, touch: &[(&str, i64)]) -> FirstTerm {
        let start: Date = "2025-01-01".parse().unwrap();
        FirstTerm {
            account: ExternalId::parse(account).unwrap(),
            start,
            decided_on: start + chrono::Days::new(365),
            renewed,
            ttv_days: ttv,
            touchpoints: touch
                .iter()
                .map(|(k, d)| ((*k).to_owned(), start + chrono::Duration::days(*d)))
                .collect(),
        }
    }

    #[test]
    fn patterns_are_read_from_touchpoints_and_first_value_by_hand() {
        let full: &[(&str, i64)] = &[
            ("internal_kickoff", -5),
            ("alignment_meeting", 150),
            ("insights_shared", 200),
            ("renewal_conversation", 300),
        ];
        let terms = vec![
            term("a", true, Some(20), full),
            term("b", true, Some(120), full), // first value late
            term("c", false, None, &[("alignment_meeting", 60)]), // everything missing
            term("d", false, Some(30), &[("internal_kickoff", 40), ("alignment_meeting", 80)]), // kickoff late, meeting too early
        ];
        let r = report(&terms);
        assert_eq!((r.accounts, r.renewed), (4, 2));
        let showing: Vec<(&str, u64)> = r.patterns.iter().map(|p| (p.id, p.showing)).collect();
        assert_eq!(
            showing,
            [
                ("no_internal_kickoff", 2),
                ("no_first_value", 2),
                ("no_alignment_meetings", 2),
                ("insights_never_shared", 2),
                ("renewal_first_close_attempt", 2),
                ("all_rows_executed", 1)
            ]
        );
        let kickoff = &r.patterns[0].renewal;
        // Without the pattern: a and b, both renewed; with it: c and d, neither.
        assert_eq!((kickoff.passed.k, kickoff.passed.n, kickoff.failed.k, kickoff.failed.n), (2, 2, 0, 2));
        let fv = &r.patterns[1].renewal;
        assert_eq!((fv.passed.k, fv.passed.n, fv.failed.k, fv.failed.n), (1, 2, 1, 2));
    }
}
