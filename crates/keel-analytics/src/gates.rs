//! Gate validation (docs/metrics.md; seed 001: "validate every exit
//! criterion against the last two quarters of cohort data"). For every
//! renewal decision in the window whose outcome is known — a line due, and
//! whether the account had a line the day after — the account is evaluated
//! as of `lead` days before the decision. In the stage the line stood in
//! then, did its exit gate (and each of its conditions) hold? Renewal rates
//! of passed and failed are compared: the difference, its 95% Newcombe
//! interval, and a verdict.

use keel_core::{Date, ExternalId};
use serde::Serialize;

use crate::backtest::Rate;
use crate::ratio;

/// One renewal decision, with the line's stage history `lead` days before it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateObservation {
    /// The account.
    pub account: ExternalId,
    /// The product line of the line due.
    pub product_line: String,
    /// The observation day (decision − lead).
    pub observed_on: Date,
    /// The decision day (the line's end).
    pub decided_on: Date,
    /// The line's stage changes up to the observation day.
    pub changes: Vec<crate::funnel::Change>,
    /// Its stage on the observation day.
    pub stage: Option<String>,
    /// That stage's exit-gate conditions then, and whether each held (None: no data).
    pub conditions: Vec<(String, Option<bool>)>,
    /// Whether the account had a line in force on the decision day.
    pub renewed: bool,
    /// Each extra condition asked for, on the observation day (None: no data).
    pub extra: Vec<Option<bool>>,
}

/// What a comparison says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Passing goes with more renewals: the interval lies above zero.
    Predictive,
    /// The interval holds zero.
    NotPredictive,
    /// Passing goes with fewer renewals: the interval lies below zero.
    Inverted,
    /// A group has fewer than [`MIN_GROUP`] decisions.
    NotEnoughData,
}

/// Decisions each side needs before a verdict other than "not enough data".
pub const MIN_GROUP: u64 = 20;

/// Renewal among those that passed vs those that failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Split {
    /// Renewals among decisions that passed.
    pub passed: Rate,
    /// Renewals among decisions that failed.
    pub failed: Rate,
    /// passed − failed renewal rate.
    pub difference: Option<f64>,
    /// 95% interval of the difference (Newcombe's hybrid score method).
    pub low: Option<f64>,
    /// Upper bound.
    pub high: Option<f64>,
    /// passed / failed renewal rate.
    pub lift: Option<f64>,
    /// What it says.
    pub verdict: Verdict,
}

impl Split {
    /// Compares `(renewed, of)` among passed and failed.
    pub fn new(passed: (u64, u64), failed: (u64, u64)) -> Self {
        let (p, f) = (Rate::wilson(passed.0, passed.1), Rate::wilson(failed.0, failed.1));
        let mut s = Split {
            passed: p,
            failed: f,
            difference: None,
            low: None,
            high: None,
            lift: p.rate.zip(f.rate).and_then(|(a, b)| ratio(a, b)),
            verdict: Verdict::NotEnoughData,
        };
        if let (Some(p1), Some(l1), Some(u1), Some(p2), Some(l2), Some(u2)) =
            (p.rate, p.low, p.high, f.rate, f.low, f.high)
        {
            let d = p1 - p2;
            s.difference = Some(d);
            s.low = Some(d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt());
            s.high = Some(d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt());
        }
        if p.n >= MIN_GROUP && f.n >= MIN_GROUP {
            s.verdict = match (s.low, s.high) {
                (Some(l), _) if l > 0.0 => Verdict::Predictive,
                (_, Some(h)) if h < 0.0 => Verdict::Inverted,
                _ => Verdict::NotPredictive,
            };
        }
        s
    }
}

/// One stage's exit gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateRow {
    /// The stage.
    pub stage: String,
    /// Its exit gate.
    pub gate: String,
    /// Lines that reached the stage by the observation day: went on to the
    /// next stage (passed) or not (failed).
    pub whole: Split,
    /// Lines in the stage on the observation day: each gate condition on
    /// its own (where it had data).
    pub conditions: Vec<(String, Split)>,
}

/// `keel report gates`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateReport {
    /// Days before each decision the stage history was read.
    pub lead_days: u64,
    /// Decisions observed.
    pub decisions: u64,
    /// Of which renewed.
    pub renewed: u64,
    /// One row per stage with a gate, in the journey's order (the last stage
    /// has no next one to pass to).
    pub stages: Vec<GateRow>,
    /// Extra conditions asked for (`--condition`), each over every decision
    /// where it had data: a candidate gate tested before it is written.
    pub extra: Vec<(String, Split)>,
    /// Every decision: which stages it had reached by the observation day and
    /// whether it went on from each (`--explain`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub observations: Vec<Observed>,
}

/// One decision in the explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Observed {
    /// The account.
    pub account: ExternalId,
    /// The product line.
    pub product_line: String,
    /// The observation day.
    pub observed_on: Date,
    /// The decision day.
    pub decided_on: Date,
    /// Each stage reached by then, and whether the line went on from it.
    pub reached: Vec<(String, bool)>,
    /// The stage on the observation day.
    pub stage: Option<String>,
    /// Whether the account renewed.
    pub renewed: bool,
    /// Each extra condition on the observation day.
    pub extra: Vec<Option<bool>>,
}

fn split<'a>(pairs: impl Iterator<Item = (bool, &'a GateObservation)>) -> Split {
    let (mut passed, mut failed) = ((0, 0), (0, 0));
    for (p, o) in pairs {
        let slot = if p { &mut passed } else { &mut failed };
        slot.1 += 1;
        if o.renewed {
            slot.0 += 1;
        }
    }
    Split::new(passed, failed)
}

/// The report over `observations`; `gates` are the journey's stages in
/// order, each with its exit gate's text.
pub fn report(
    observations: &[GateObservation],
    gates: &[(String, String)],
    extra: &[String],
    lead_days: u64,
) -> GateReport {
    let order: Vec<String> = gates.iter().map(|(s, _)| s.clone()).collect();
    let observations_len = observations.len() as u64;
    let renewed = observations.iter().filter(|o| o.renewed).count() as u64;
    let reached: Vec<Vec<(String, bool)>> =
        observations.iter().map(|o| crate::funnel::went_on(&o.changes, &order)).collect();
    let stages = gates
        .iter()
        .take(gates.len().saturating_sub(1))
        .map(|(stage, gate)| {
            let whole = split(
                observations
                    .iter()
                    .zip(&reached)
                    .filter_map(|(o, r)| r.iter().find(|(s, _)| s == stage).map(|(_, on)| (*on, o))),
            );
            let here: Vec<&GateObservation> =
                observations.iter().filter(|o| o.stage.as_deref() == Some(stage.as_str())).collect();
            let mut names: Vec<&String> = Vec::new();
            for o in &here {
                for (c, _) in &o.conditions {
                    if !names.contains(&c) {
                        names.push(c);
                    }
                }
            }
            let conditions = names
                .into_iter()
                .map(|c| {
                    let pairs = here.iter().filter_map(|o| {
                        let held = o.conditions.iter().find(|(x, _)| x == c).and_then(|(_, h)| *h)?;
                        Some((held, *o))
                    });
                    (c.clone(), split(pairs))
                })
                .collect();
            GateRow { stage: stage.clone(), gate: gate.clone(), whole, conditions }
        })
        .collect();
    let extra = extra
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let pairs = observations.iter().filter_map(|o| Some((o.extra.get(i).copied().flatten()?, o)));
            (name.clone(), split(pairs))
        })
        .collect();
    let observations = observations
        .iter()
        .zip(reached)
        .map(|(o, reached)| Observed {
            account: o.account.clone(),
            product_line: o.product_line.clone(),
            observed_on: o.observed_on,
            decided_on: o.decided_on,
            reached,
            stage: o.stage.clone(),
            renewed: o.renewed,
            extra: o.extra.clone(),
        })
        .collect();
    GateReport { lead_days, decisions: observations_len, renewed, stages, extra, observations }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Newcombe (1998), example (a): 56/70 vs 48/80, a difference of 0.2000,
    /// with the hybrid score interval (method 10) 0.0524 .. 0.3339.
    #[test]
    fn the_difference_interval_matches_newcombes_worked_example() {
        let s = Split::new((56, 70), (48, 80));
        assert!((s.difference.unwrap() - 0.2).abs() < 1e-12, "{s:?}");
        assert!((s.low.unwrap() - 0.0524).abs() < 1e-4, "{s:?}");
        assert!((s.high.unwrap() - 0.3339).abs() < 1e-4, "{s:?}");
        assert_eq!(s.verdict, Verdict::Predictive);
        assert!((s.lift.unwrap() - (0.8 / 0.6)).abs() < 1e-12);
    }

    #[test]
    fn verdicts_follow_the_interval_and_the_group_sizes() {
        assert_eq!(Split::new((18, 20), (18, 20)).verdict, Verdict::NotPredictive);
        assert_eq!(Split::new((10, 40), (36, 40)).verdict, Verdict::Inverted);
        assert_eq!(Split::new((19, 19), (0, 19)).verdict, Verdict::NotEnoughData, "19 a side is too few");
        assert_eq!(Split::new((5, 5), (0, 0)).difference, None);
    }

    fn obs(path: &[&str], conditions: &[(&str, Option<bool>)], renewed: bool) -> GateObservation {
        let changes = path
            .iter()
            .enumerate()
            .map(|(i, s)| crate::funnel::Change {
                on: "2025-01-01".parse::<Date>().unwrap() + chrono::Days::new(30 * i as u64),
                to: Some((*s).to_owned()),
            })
            .collect();
        GateObservation {
            account: ExternalId::parse("a").unwrap(),
            product_line: "platform".into(),
            observed_on: "2025-09-01".parse().unwrap(),
            decided_on: "2026-01-01".parse().unwrap(),
            changes,
            stage: path.last().map(|s| (*s).to_owned()),
            conditions: conditions.iter().map(|(c, h)| ((*c).to_owned(), *h)).collect(),
            renewed,
            extra: vec![Some(renewed), None],
        }
    }

    /// 60 lines by hand: 30 went on from onboarding to adoption (27 renewed),
    /// 30 stayed in onboarding (15 renewed); of those, the first-value
    /// condition is missing on 10 and false on 20 (5 of those renewed).
    #[test]
    fn the_whole_gate_is_judged_on_who_went_on_and_conditions_on_who_is_there() {
        let mut os = Vec::new();
        for i in 0..30 {
            os.push(obs(
                &["onboarding", "adoption"],
                &[("core_features_weekly >= 3", Some(i % 2 == 0))],
                i < 27,
            ));
            let fv = if i < 10 { None } else { Some(false) };
            os.push(obs(&["onboarding"], &[("first_value_reached", fv)], i < 15));
        }
        let gates: Vec<(String, String)> = [
            ("onboarding", "first_value_reached"),
            ("adoption", "core_features_weekly >= 3"),
            ("renewal", "false"),
        ]
        .map(|(s, g)| (s.to_owned(), g.to_owned()))
        .to_vec();
        let r = report(&os, &gates, &["renewed".to_owned(), "no data".to_owned()], 180);
        assert_eq!((r.decisions, r.renewed), (60, 42));
        assert_eq!(r.stages.len(), 2, "the last stage has no next one");
        let onb = &r.stages[0];
        assert_eq!(
            (onb.whole.passed.k, onb.whole.passed.n, onb.whole.failed.k, onb.whole.failed.n),
            (27, 30, 15, 30)
        );
        assert_eq!(onb.whole.verdict, Verdict::Predictive);
        let (name, fv) = &onb.conditions[0];
        assert_eq!(name, "first_value_reached");
        // Only the lines in onboarding then, where the condition had data: 5 of 20 renewed, none passed.
        assert_eq!((fv.failed.k, fv.failed.n, fv.passed.n), (5, 20, 0));
        let adoption = &r.stages[1];
        assert_eq!(adoption.whole.passed.n + adoption.whole.failed.n, 30, "reached adoption");
        assert_eq!(adoption.conditions[0].1.passed.n, 15);
        // An extra condition is judged over every decision where it had data.
        let (name, perfect) = &r.extra[0];
        assert_eq!(
            (name.as_str(), perfect.passed.n, perfect.failed.n, perfect.passed.k),
            ("renewed", 42, 18, 42)
        );
        assert_eq!(r.extra[1].1.passed.n + r.extra[1].1.failed.n, 0);
    }
}
