//! The stage funnel (docs/metrics.md): per product line, how many lines
//! reached each stage, how many of those went on to the next stage in the
//! journey's order, and how long they dwelt — from the stage history the
//! engine rebuilds by as-of evaluation.
//!
//! A line's history is a list of visits: each change to a stage opens a
//! visit (closing the one before as *moved*), and the line's end closes the
//! open visit as *ended*. For a stage `S` with next stage `T`:
//!
//! - reached(S): lines with a visit to `S`;
//! - converted(S): of those, lines with a visit to `T` after their first
//!   visit to `S`; conversion = converted / reached;
//! - in stage now: lines whose last visit is to `S` and still open;
//! - ended in stage: lines with a visit to `S` closed by the line's end;
//! - dwell: the lengths in days of visits to `S` that closed by moving to
//!   another stage (quantiles as in time to value).

use std::collections::BTreeMap;

use keel_core::{Date, ExternalId};
use serde::Serialize;

use crate::ratio;
use crate::ttv::quantile;

/// One stage change of a line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    /// The day.
    pub on: Date,
    /// The stage entered (None: the line ended).
    pub to: Option<String>,
}

/// One product line of one account, with its stage history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineHistory {
    /// The account.
    pub account: ExternalId,
    /// The product line.
    pub product_line: String,
    /// The account's segment.
    pub segment: Option<String>,
    /// The line's first contract start.
    pub start: Date,
    /// Its stage changes, oldest first.
    pub changes: Vec<Change>,
}

/// One stage of one funnel.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StageStats {
    /// The stage.
    pub stage: String,
    /// The next stage in the journey's order (None: the last).
    pub next: Option<String>,
    /// Lines that reached this stage.
    pub reached: u64,
    /// Of which reached the next one after it.
    pub converted: u64,
    /// converted / reached.
    pub conversion: Option<f64>,
    /// Lines in this stage now.
    pub in_stage_now: u64,
    /// Lines that ended while in it.
    pub ended_in_stage: u64,
    /// Visits that moved on, and their length in days: quartiles and p90.
    pub dwell_visits: u64,
    /// 25th percentile of dwell days.
    pub dwell_p25: Option<f64>,
    /// Median dwell days.
    pub dwell_p50: Option<f64>,
    /// 75th percentile.
    pub dwell_p75: Option<f64>,
    /// 90th percentile.
    pub dwell_p90: Option<f64>,
}

/// The funnel of one product line, overall and broken down.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineFunnel {
    /// The product line.
    pub product_line: String,
    /// Lines of it.
    pub lines: u64,
    /// Stage by stage, in the journey's order.
    pub stages: Vec<StageStats>,
    /// The same per segment (`(none)` for accounts no rule takes).
    pub by_segment: BTreeMap<String, Vec<StageStats>>,
    /// The same per start month of the line, `YYYY-MM`.
    pub by_cohort: BTreeMap<String, Vec<StageStats>>,
}

/// `keel report funnel`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FunnelReport {
    /// The date the history was rebuilt as of.
    pub as_of: Date,
    /// One funnel per product line, by name.
    pub product_lines: Vec<LineFunnel>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Closed {
    Open,
    Moved(Date),
    Ended,
}

struct Visit<'a> {
    stage: &'a str,
    entered: Date,
    closed: Closed,
}

fn visits(line: &LineHistory) -> Vec<Visit<'_>> {
    visits_of(&line.changes)
}

/// The visits a list of changes makes.
fn visits_of(changes: &[Change]) -> Vec<Visit<'_>> {
    let mut out: Vec<Visit<'_>> = Vec::new();
    for c in changes {
        if let Some(open) = out.last_mut().filter(|v| v.closed == Closed::Open) {
            open.closed = if c.to.is_some() { Closed::Moved(c.on) } else { Closed::Ended };
        }
        if let Some(stage) = &c.to {
            out.push(Visit { stage, entered: c.on, closed: Closed::Open });
        }
    }
    out
}

fn stats(order: &[String], lines: &[&LineHistory]) -> Vec<StageStats> {
    let all: Vec<Vec<Visit<'_>>> = lines.iter().map(|l| visits(l)).collect();
    order
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let next = order.get(i + 1);
            let mut s = StageStats {
                stage: stage.clone(),
                next: next.cloned(),
                reached: 0,
                converted: 0,
                conversion: None,
                in_stage_now: 0,
                ended_in_stage: 0,
                dwell_visits: 0,
                dwell_p25: None,
                dwell_p50: None,
                dwell_p75: None,
                dwell_p90: None,
            };
            let mut dwell = Vec::new();
            for vs in &all {
                let Some(first) = vs.iter().position(|v| v.stage == stage) else { continue };
                s.reached += 1;
                if next.is_some_and(|n| vs[first + 1..].iter().any(|v| v.stage == n)) {
                    s.converted += 1;
                }
                if vs.last().is_some_and(|v| v.stage == stage && v.closed == Closed::Open) {
                    s.in_stage_now += 1;
                }
                if vs.iter().any(|v| v.stage == stage && v.closed == Closed::Ended) {
                    s.ended_in_stage += 1;
                }
                for v in vs.iter().filter(|v| v.stage == stage) {
                    if let Closed::Moved(left) = v.closed {
                        dwell.push((left - v.entered).num_days() as f64);
                    }
                }
            }
            dwell.sort_by(f64::total_cmp);
            s.conversion = next.and_then(|_| ratio(s.converted as f64, s.reached as f64));
            s.dwell_visits = dwell.len() as u64;
            s.dwell_p25 = quantile(&dwell, 0.25);
            s.dwell_p50 = quantile(&dwell, 0.5);
            s.dwell_p75 = quantile(&dwell, 0.75);
            s.dwell_p90 = quantile(&dwell, 0.9);
            s
        })
        .collect()
}

/// The funnels of `lines`, stages in `order` (the journey's).
pub fn report(lines: &[LineHistory], order: &[String], as_of: Date) -> FunnelReport {
    let mut by_line: BTreeMap<&str, Vec<&LineHistory>> = BTreeMap::new();
    for l in lines {
        by_line.entry(&l.product_line).or_default().push(l);
    }
    let none = "(none)".to_owned();
    let product_lines = by_line
        .into_iter()
        .map(|(name, ls)| {
            let mut by_segment: BTreeMap<String, Vec<&LineHistory>> = BTreeMap::new();
            let mut by_cohort: BTreeMap<String, Vec<&LineHistory>> = BTreeMap::new();
            for l in &ls {
                by_segment.entry(l.segment.clone().unwrap_or_else(|| none.clone())).or_default().push(l);
                by_cohort.entry(l.start.format("%Y-%m").to_string()).or_default().push(l);
            }
            LineFunnel {
                product_line: name.to_owned(),
                lines: ls.len() as u64,
                stages: stats(order, &ls),
                by_segment: by_segment.into_iter().map(|(k, v)| (k, stats(order, &v))).collect(),
                by_cohort: by_cohort.into_iter().map(|(k, v)| (k, stats(order, &v))).collect(),
            }
        })
        .collect();
    FunnelReport { as_of, product_lines }
}

/// For each stage `changes` visited, in order of first visit: whether the
/// line went on to the stage after it in `order` later.
pub fn went_on(changes: &[Change], order: &[String]) -> Vec<(String, bool)> {
    let vs = visits_of(changes);
    let mut out: Vec<(String, bool)> = Vec::new();
    for (i, v) in vs.iter().enumerate() {
        if out.iter().any(|(s, _)| s == v.stage) {
            continue;
        }
        let next = order.iter().position(|s| s == v.stage).and_then(|k| order.get(k + 1));
        let on = next.is_some_and(|n| vs[i + 1..].iter().any(|w| w.stage == n));
        out.push((v.stage.to_owned(), on));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(account: &str, segment: &str, changes: &[(&str, Option<&str>)]) -> LineHistory {
        LineHistory {
            account: ExternalId::parse(account).unwrap(),
            product_line: "platform".into(),
            segment: Some(segment.into()),
            start: changes[0].0.parse().unwrap(),
            changes: changes
                .iter()
                .map(|(on, to)| Change { on: on.parse().unwrap(), to: to.map(str::to_owned) })
                .collect(),
        }
    }

    /// Four lines through onboarding → adoption → value, by hand.
    #[test]
    fn conversion_and_dwell_by_hand() {
        let order: Vec<String> = ["onboarding", "adoption", "value"].map(String::from).to_vec();
        let lines = vec![
            line(
                "l1",
                "smb",
                &[
                    ("2025-01-01", Some("onboarding")),
                    ("2025-02-01", Some("adoption")),
                    ("2025-04-01", Some("value")),
                ],
            ),
            line(
                "l2",
                "smb",
                &[("2025-01-15", Some("onboarding")), ("2025-03-01", Some("adoption")), ("2025-05-01", None)],
            ),
            line("l3", "enterprise", &[("2025-02-01", Some("onboarding"))]),
            line("l4", "enterprise", &[("2025-02-10", Some("onboarding")), ("2025-03-10", None)]),
        ];
        let r = report(&lines, &order, "2025-06-01".parse().unwrap());
        let f = &r.product_lines[0];
        assert_eq!((f.product_line.as_str(), f.lines), ("platform", 4));
        let [onb, adop, value] = [&f.stages[0], &f.stages[1], &f.stages[2]];
        assert_eq!((onb.reached, onb.converted, onb.in_stage_now, onb.ended_in_stage), (4, 2, 1, 1));
        assert_eq!(onb.conversion, Some(0.5));
        // Dwell of the visits that moved on: l1 31 days, l2 45 days.
        assert_eq!((onb.dwell_visits, onb.dwell_p50), (2, Some(38.0)));
        assert_eq!((adop.reached, adop.converted, adop.ended_in_stage, adop.dwell_visits), (2, 1, 1, 1));
        assert_eq!(adop.dwell_p50, Some(59.0), "2025-02-01 → 2025-04-01");
        assert_eq!(
            (value.reached, value.in_stage_now, value.conversion, value.next.as_deref()),
            (1, 1, None, None)
        );
        assert_eq!(f.by_segment["enterprise"][0].conversion, Some(0.0));
        assert_eq!(f.by_segment["smb"][0].conversion, Some(1.0));
        assert_eq!(f.by_cohort["2025-02"][0].reached, 2);
    }

    /// A line that falls back and comes again converts once, and each visit
    /// that moved on is a dwell.
    #[test]
    fn a_line_that_falls_back_counts_once() {
        let order: Vec<String> = ["onboarding", "adoption"].map(String::from).to_vec();
        let lines = vec![line(
            "l1",
            "smb",
            &[
                ("2025-01-01", Some("onboarding")),
                ("2025-01-11", Some("adoption")),
                ("2025-01-21", Some("onboarding")),
                ("2025-02-20", Some("adoption")),
            ],
        )];
        let r = report(&lines, &order, "2025-06-01".parse().unwrap());
        let onb = &r.product_lines[0].stages[0];
        assert_eq!((onb.reached, onb.converted, onb.dwell_visits), (1, 1, 2));
        assert_eq!(onb.dwell_p50, Some(20.0), "10 and 30 days");
    }
}
