//! When a play's trigger occurs: the edge of a condition (a moment starts
//! firing, the renewal comes within N days, a CEL condition starts holding,
//! a product line overstays its stage) or a stage change dated since the
//! previous evaluation.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Days;
use keel_core::Date;
use keel_journey::{Journey, Play, Trigger};
use serde::{Deserialize, Serialize};

use crate::facts::Facts;

/// What the previous evaluation of an account saw, kept between evaluations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memo {
    /// The previous evaluation's day (None: never evaluated for plays).
    pub as_of: Option<Date>,
    /// The trigger keys that held then.
    pub holding: BTreeSet<String>,
}

/// One occurrence of a play's trigger for one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Occurrence {
    /// The play.
    pub play: String,
    /// The day it occurred (a stage change's own day; otherwise the day it was seen).
    pub day: Date,
    /// `moment`, `stage_entry`, `stage_exit`, `gate_slip`, `days_before_renewal` or `when`.
    pub kind: String,
    /// What occurred, in words.
    pub detail: String,
    /// The values behind it.
    pub evidence: BTreeMap<String, serde_json::Value>,
}

impl Occurrence {
    /// The idempotency key of the run it starts: one run per (account, play, occurrence).
    pub fn key(&self, account: &str) -> String {
        format!("{account}/{}/{}/{}", self.play, self.kind, self.day)
    }
}

/// The key under which a level-triggered condition is remembered.
fn level_key(play: &Play, facts: &Facts) -> Option<String> {
    let j = |k: &str, v: &str| Some(format!("{k}:{v}"));
    match &play.trigger {
        Trigger::Moment(m) => facts.state.moments.iter().any(|f| &f.id == m).then(|| format!("moment:{m}")),
        Trigger::DaysBeforeRenewal(n) => match facts.metric("days_to_renewal") {
            Some(keel_engine::Val::Int(d)) if d > 0 && d <= i64::from(*n) => j("renewal", &play.id),
            _ => None,
        },
        Trigger::When(expr) => (facts.holds(expr) == Some(true)).then(|| format!("when:{}", play.id)),
        Trigger::GateSlip(_) | Trigger::StageEntry(_) | Trigger::StageExit(_) => None,
    }
}

/// Product lines past their stage's `target_days` (keys `slip:<stage>:<line>`).
fn slipping(journey: &Journey, stage: &str, facts: &Facts) -> Vec<(String, String, i64)> {
    let Some(target) = journey.stages.iter().find(|s| s.id == stage).and_then(|s| s.target_days) else {
        return Vec::new();
    };
    facts
        .state
        .lines
        .iter()
        .filter(|l| {
            l.stage.as_deref() == Some(stage) && !l.gate_passed && l.days_in_stage > i64::from(target)
        })
        .map(|l| (format!("slip:{stage}:{}", l.product_line), l.product_line.clone(), l.days_in_stage))
        .collect()
}

/// The trigger keys that hold for an account today (to remember in its [`Memo`]).
pub fn holding(journey: &Journey, facts: &Facts) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for play in &journey.plays {
        if let Some(k) = level_key(play, facts) {
            keys.insert(k);
        }
        if let Trigger::GateSlip(stage) = &play.trigger {
            keys.extend(slipping(journey, stage, facts).into_iter().map(|(k, ..)| k));
        }
    }
    keys
}

/// The occurrences of every play's trigger for an account today, given what
/// the previous evaluation saw. On the first evaluation (no memo) every
/// condition that holds counts as starting, and stage changes of that day count.
pub fn occurrences(journey: &Journey, facts: &Facts, memo: &Memo) -> Vec<Occurrence> {
    let today = facts.as_of();
    let since = memo.as_of.unwrap_or_else(|| today.checked_sub_days(Days::new(1)).unwrap_or(today));
    let mut out = Vec::new();
    for play in &journey.plays {
        let mut push =
            |kind: &str, day: Date, detail: String, evidence: BTreeMap<String, serde_json::Value>| {
                out.push(Occurrence { play: play.id.clone(), day, kind: kind.to_owned(), detail, evidence });
            };
        match &play.trigger {
            Trigger::Moment(m) => {
                let key = format!("moment:{m}");
                if let Some(f) = facts.state.moments.iter().find(|f| &f.id == m)
                    && !memo.holding.contains(&key)
                {
                    let evidence = f
                        .evidence
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
                        .collect();
                    push("moment", today, format!("{m}: {}", f.reason), evidence);
                }
            }
            Trigger::DaysBeforeRenewal(n) => {
                if let Some(key) = level_key(play, facts)
                    && !memo.holding.contains(&key)
                {
                    let d = facts.metric("days_to_renewal").map(|v| v.as_f64() as i64).unwrap_or_default();
                    let evidence = BTreeMap::from([("days_to_renewal".to_owned(), serde_json::json!(d))]);
                    push("days_before_renewal", today, format!("renewal in {d} days (≤ {n})"), evidence);
                }
            }
            Trigger::When(expr) => {
                if let Some(key) = level_key(play, facts)
                    && !memo.holding.contains(&key)
                {
                    push("when", today, format!("{} holds", expr.source), facts.inputs(expr));
                }
            }
            Trigger::GateSlip(stage) => {
                for (key, line, days) in slipping(journey, stage, facts) {
                    if !memo.holding.contains(&key) {
                        let evidence = BTreeMap::from([
                            ("product_line".to_owned(), serde_json::json!(line)),
                            ("days_in_stage".to_owned(), serde_json::json!(days)),
                        ]);
                        push("gate_slip", today, format!("{line}: {days} days in {stage}"), evidence);
                    }
                }
            }
            Trigger::StageEntry(stage) | Trigger::StageExit(stage) => {
                let entry = matches!(play.trigger, Trigger::StageEntry(_));
                for line in &facts.state.lines {
                    for t in line.transitions.iter().filter(|t| t.on > since && t.on <= today) {
                        let hit = if entry {
                            t.to.as_deref() == Some(stage)
                        } else {
                            t.from.as_deref() == Some(stage)
                        };
                        if hit {
                            let evidence = t
                                .inputs
                                .iter()
                                .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
                                .chain([("product_line".to_owned(), serde_json::json!(line.product_line))])
                                .collect();
                            let kind = if entry { "stage_entry" } else { "stage_exit" };
                            push(kind, t.on, format!("{}: {}", line.product_line, t.rule), evidence);
                        }
                    }
                }
            }
        }
    }
    out
}
