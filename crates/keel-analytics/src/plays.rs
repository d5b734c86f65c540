//! The plays report: per play, what its triggers led to (runs, holdouts,
//! suppressions by rule, approvals, completions) and whether it works — the
//! outcome rate of treated runs against held-out runs, with the difference's
//! 95% interval; per owner, open and overdue tasks.

use std::collections::BTreeMap;

use keel_core::Date;
use serde::Serialize;

use crate::gates::{Split, Verdict};

/// One stored run, as the report needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunObs {
    /// Account.
    pub account: String,
    /// The day it started.
    pub started: Date,
    /// Play id.
    pub play: String,
    /// Status name (`holdout`, `suppressed`, `running`, `completed`, …).
    pub status: String,
    /// Held out.
    pub holdout: bool,
    /// `pending`, `met`, `missed`, or None (no outcome defined, or suppressed).
    pub outcome: Option<String>,
}

/// One audit decision, as the report needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionObs {
    /// Play id.
    pub play: String,
    /// What was decided.
    pub decision: String,
    /// The governance rule.
    pub rule: Option<String>,
}

/// One task, as the report needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskObs {
    /// Who.
    pub owner: String,
    /// `open`, `snoozed`, `done`, `cancelled`.
    pub status: String,
    /// Due day.
    pub due: Date,
}

/// What the outcome comparison says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Treated runs reach the outcome more often: the interval lies above zero.
    Works,
    /// The interval holds zero.
    NoMeasurableEffect,
    /// Treated runs reach it less often: the interval lies below zero.
    Backfires,
    /// Fewer than 20 judged runs on a side.
    NotEnoughData,
}

/// One play.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlayRow {
    /// Play id.
    pub play: String,
    /// Display name.
    pub name: String,
    /// Runs started (treated, held out and suppressed).
    pub triggered: u64,
    /// Runs whose steps ran (or are running).
    pub treated: u64,
    /// Held-out runs.
    pub holdout: u64,
    /// Suppressed runs and steps, by rule.
    pub suppressed: BTreeMap<String, u64>,
    /// Occurrences that started nothing because the play was cooling down.
    pub cooldown: u64,
    /// Steps held for approval.
    pub held_for_approval: u64,
    /// Steps deferred by the contact budget or quiet hours.
    pub deferred: u64,
    /// Runs completed.
    pub completed: u64,
    /// Runs still open.
    pub open: u64,
    /// Runs cancelled or failed.
    pub stopped: u64,
    /// The outcome rate of treated vs held-out runs whose window closed, each
    /// account's first run of the play only (None: the play defines no outcome).
    pub outcome: Option<Split>,
    /// What the comparison says.
    pub effect: Option<Effect>,
}

/// One owner's tasks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OwnerRow {
    /// Who.
    pub owner: String,
    /// Open or snoozed.
    pub open: u64,
    /// Open or snoozed and past due.
    pub overdue: u64,
    /// Done.
    pub done: u64,
}

/// The plays report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlaysReport {
    /// The day overdue is judged on.
    pub as_of: Date,
    /// Per play, in journey order.
    pub plays: Vec<PlayRow>,
    /// Per owner, most overdue first.
    pub owners: Vec<OwnerRow>,
}

/// Builds the report; `plays` are the journey's (id, name), in order.
pub fn report(
    plays: &[(String, String)],
    runs: &[RunObs],
    decisions: &[DecisionObs],
    tasks: &[TaskObs],
    has_outcome: &dyn Fn(&str) -> bool,
    as_of: Date,
) -> PlaysReport {
    let rows = plays
        .iter()
        .map(|(id, name)| {
            let mine: Vec<&RunObs> = runs.iter().filter(|r| &r.play == id).collect();
            let count = |f: &dyn Fn(&RunObs) -> bool| mine.iter().filter(|r| f(r)).count() as u64;
            let said =
                |what: &str| decisions.iter().filter(|d| &d.play == id && d.decision == what).count() as u64;
            let mut suppressed = BTreeMap::new();
            for d in decisions.iter().filter(|d| &d.play == id && d.decision == "suppressed") {
                *suppressed.entry(d.rule.clone().unwrap_or_default()).or_insert(0) += 1;
            }
            // Each account's first run only: later runs depend on the first
            // (an open treated run keeps the trigger from starting another,
            // a held-out run never stays open), so only first runs are
            // assigned to treatment and holdout alike.
            let mut first: BTreeMap<&str, &RunObs> = BTreeMap::new();
            for r in &mine {
                let e = first.entry(r.account.as_str()).or_insert(r);
                if r.started < e.started {
                    *e = r;
                }
            }
            let judged = |holdout: bool| {
                let firsts = || first.values().filter(|r| r.holdout == holdout && r.status != "suppressed");
                let met = firsts().filter(|r| r.outcome.as_deref() == Some("met")).count() as u64;
                let missed = firsts().filter(|r| r.outcome.as_deref() == Some("missed")).count() as u64;
                (met, met + missed)
            };
            let outcome = has_outcome(id).then(|| Split::new(judged(false), judged(true)));
            let effect = outcome.as_ref().map(|s| match s.verdict {
                Verdict::Predictive => Effect::Works,
                Verdict::NotPredictive => Effect::NoMeasurableEffect,
                Verdict::Inverted => Effect::Backfires,
                Verdict::NotEnoughData => Effect::NotEnoughData,
            });
            PlayRow {
                play: id.clone(),
                name: name.clone(),
                triggered: mine.len() as u64,
                treated: count(&|r| !r.holdout && r.status != "suppressed"),
                holdout: count(&|r| r.holdout),
                suppressed,
                cooldown: said("cooldown"),
                held_for_approval: said("held_for_approval"),
                deferred: said("deferred"),
                completed: count(&|r| r.status == "completed"),
                open: count(&|r| {
                    matches!(r.status.as_str(), "running" | "waiting" | "deferred" | "awaiting_approval")
                }),
                stopped: count(&|r| matches!(r.status.as_str(), "cancelled" | "failed")),
                outcome,
                effect,
            }
        })
        .collect();
    let mut owners: BTreeMap<&str, OwnerRow> = BTreeMap::new();
    for t in tasks {
        let row = owners.entry(&t.owner).or_insert_with(|| OwnerRow {
            owner: t.owner.clone(),
            open: 0,
            overdue: 0,
            done: 0,
        });
        match t.status.as_str() {
            "open" | "snoozed" => {
                row.open += 1;
                row.overdue += u64::from(keel_core::task_is_overdue(&t.status, t.due, as_of));
            }
            "done" => row.done += 1,
            _ => {}
        }
    }
    let mut owners: Vec<OwnerRow> = owners.into_values().collect();
    owners.sort_by(|a, b| b.overdue.cmp(&a.overdue).then(b.open.cmp(&a.open)).then(a.owner.cmp(&b.owner)));
    PlaysReport { as_of, plays: rows, owners }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(account: usize, play: &str, status: &str, holdout: bool, outcome: Option<&str>) -> RunObs {
        RunObs {
            account: format!("a{account}"),
            started: "2026-03-01".parse().unwrap(),
            play: play.into(),
            status: status.into(),
            holdout,
            outcome: outcome.map(str::to_owned),
        }
    }

    /// By hand: 40 treated runs, 30 met; 25 held out, 10 met. Treated 0.75,
    /// holdout 0.40, difference 0.35; Newcombe's interval from the Wilson
    /// intervals (0.5981–0.8581 and 0.2340–0.5926) is 0.35 − √(0.1519² + 0.1926²) = 0.1047 to
    /// 0.35 + √(0.1081² + 0.1660²) = 0.5481.
    #[test]
    fn uplift_is_treated_minus_holdout_with_newcombes_interval() {
        let mut runs = Vec::new();
        for i in 0..40 {
            runs.push(run(i, "p", "completed", false, Some(if i < 30 { "met" } else { "missed" })));
        }
        for i in 0..25 {
            runs.push(run(100 + i, "p", "holdout", true, Some(if i < 10 { "met" } else { "missed" })));
        }
        runs.push(run(200, "p", "running", false, Some("pending")));
        runs.push(run(201, "p", "suppressed", false, None));
        // A second, later run of an account counts as triggered but not in the comparison.
        let mut later = run(100, "p", "holdout", true, Some("met"));
        later.started = "2026-04-01".parse().unwrap();
        runs.push(later);
        let decisions = vec![
            DecisionObs {
                play: "p".into(),
                decision: "suppressed".into(),
                rule: Some("no_upsell_in_pain".into()),
            },
            DecisionObs { play: "p".into(), decision: "cooldown".into(), rule: None },
        ];
        let as_of: Date = "2026-05-01".parse().unwrap();
        let r = report(&[("p".into(), "P".into())], &runs, &decisions, &[], &|_| true, as_of);
        let p = &r.plays[0];
        assert_eq!((p.triggered, p.treated, p.holdout, p.completed, p.open), (68, 41, 26, 40, 1));
        assert_eq!(p.suppressed.get("no_upsell_in_pain"), Some(&1));
        assert_eq!(p.cooldown, 1);
        let o = p.outcome.as_ref().unwrap();
        assert_eq!((o.passed.k, o.passed.n, o.failed.k, o.failed.n), (30, 40, 10, 25));
        assert!((o.difference.unwrap() - 0.35).abs() < 1e-12);
        assert!((o.low.unwrap() - 0.1047).abs() < 5e-4, "{o:?}");
        assert!((o.high.unwrap() - 0.5481).abs() < 5e-4, "{o:?}");
        assert_eq!(p.effect, Some(Effect::Works));
    }

    #[test]
    fn owners_are_listed_most_overdue_first() {
        let as_of: Date = "2026-05-10".parse().unwrap();
        let t = |owner: &str, status: &str, due: &str| TaskObs {
            owner: owner.into(),
            status: status.into(),
            due: due.parse().unwrap(),
        };
        let tasks = [
            t("a", "open", "2026-05-20"),
            t("b", "open", "2026-05-01"),
            t("b", "snoozed", "2026-05-02"),
            t("a", "done", "2026-05-01"),
            t("a", "open", "2026-05-09"),
        ];
        let r = report(&[], &[], &[], &tasks, &|_| false, as_of);
        let rows: Vec<(&str, u64, u64, u64)> =
            r.owners.iter().map(|o| (o.owner.as_str(), o.open, o.overdue, o.done)).collect();
        assert_eq!(rows, [("b", 2, 2, 0), ("a", 2, 1, 1)]);
    }
}
