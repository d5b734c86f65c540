//! The account timeline's layout: what Keel concluded about an account,
//! day by day, kept as a compact append-only history.
//!
//! A day's conclusions are [`Facts`]: a flat map from a path
//! (`line/platform/stage`, `health/score`, `moment/usage_cliff`,
//! `metric/active_users_7d`, …) to a value, taken from the engine's
//! [`AccountState`] by [`facts`]. Most facts hold for weeks; a few (usage
//! metrics) move most days. So the history is [`Row`]s: a *checkpoint*
//! (every fact) on the first day and every [`CHECKPOINT_EVERY`] days, and
//! in between a *change* row only on days something changed, holding only
//! what changed (a fact that stopped holding is kept as `None`). The facts
//! on any day are the last checkpoint at or before it with the changes up
//! to that day applied ([`facts_on`]): at most `CHECKPOINT_EVERY - 1` rows to
//! apply, whatever the history's length. Rows are only ever appended while
//! days pass; a restatement (records edited after the fact, another
//! journey) rewrites an account's rows from the first day it touches.
//!
//! Derived values that move every day by definition (days in stage, the
//! as-of date) are not facts: they follow from `entered` and the day. A
//! whole number that moves by exactly one a day (days since a touchpoint,
//! tenure, days to renewal) is stored as the day it counts from or to
//! ([`Fact::Since`], [`Fact::Until`]), so it changes no row while it counts.

use std::collections::BTreeMap;

use keel_core::Date;
use keel_engine::{AccountState, Val};
use serde::{Deserialize, Serialize};

/// Days between checkpoints.
pub const CHECKPOINT_EVERY: i64 = 28;

/// One concluded value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Fact {
    /// A yes/no (a gate condition, a firing moment, a boolean metric).
    Bool(bool),
    /// A whole number (days to first value, a count metric).
    Int(i64),
    /// A real number (a score, a ratio).
    Num(f64),
    /// A name or a date (`YYYY-MM-DD`): a stage, a band, a segment.
    Text(String),
    /// Stored only: a whole number that grows by one a day, kept as the
    /// day it was 0 (days since a touchpoint, tenure). Read back as a number.
    Since {
        /// The day the count was 0.
        since: Date,
    },
    /// Stored only: a whole number that shrinks by one a day, kept as the
    /// day it reaches 0 (days to renewal). Read back as a number.
    Until {
        /// The day the count reaches 0.
        until: Date,
    },
}

impl Fact {
    /// The value on `day` of a fact as stored.
    fn on(&self, day: Date) -> Fact {
        match self {
            Self::Since { since } => Self::Int((day - *since).num_days()),
            Self::Until { until } => Self::Int((*until - day).num_days()),
            other => other.clone(),
        }
    }

    /// How to store `value` on `day`, given how it was stored before and its
    /// value the day before: as before when that still reads back right, as
    /// a count from or to a day when it moved by one, else as it is.
    fn stored(value: &Fact, day: Date, before: Option<&Fact>, yesterday: Option<&Fact>) -> Fact {
        if let Some(b) = before
            && b.on(day) == *value
        {
            return b.clone();
        }
        let (Fact::Int(n), Some(Fact::Int(m))) = (value, yesterday) else { return value.clone() };
        let days = chrono::Duration::days(*n);
        match n - m {
            1 => Fact::Since { since: day - days },
            -1 => Fact::Until { until: day + days },
            _ => value.clone(),
        }
    }
}

impl From<Val> for Fact {
    fn from(v: Val) -> Self {
        match v {
            Val::Int(i) => Self::Int(i),
            Val::Double(d) => Self::Num(d),
            Val::Bool(b) => Self::Bool(b),
        }
    }
}

/// A day's conclusions, by path.
pub type Facts = BTreeMap<String, Fact>;

/// The facts of an evaluated state.
pub fn facts(state: &AccountState) -> Facts {
    let mut f = Facts::new();
    let text = |s: &str| Fact::Text(s.to_owned());
    if let Some(segment) = &state.segment {
        f.insert("segment".into(), text(segment));
    }
    for line in &state.lines {
        let at = |what: &str| format!("line/{}/{what}", line.product_line);
        if let Some(stage) = &line.stage {
            f.insert(at("stage"), text(stage));
        }
        f.insert(at("entered"), Fact::Text(line.entered.to_string()));
        f.insert(at("gate_passed"), Fact::Bool(line.gate_passed));
        for (i, c) in line.gate.iter().enumerate() {
            if let Some(holds) = c.holds {
                f.insert(at(&format!("gate/{i}")), Fact::Bool(holds));
            }
        }
        if let Some(ttv) = line.ttv_days {
            f.insert(at("ttv_days"), Fact::Int(ttv));
        }
    }
    let h = &state.health;
    if let Some(score) = h.score {
        f.insert("health/score".into(), Fact::Num(score));
    }
    if let Some(band) = h.band {
        f.insert("health/band".into(), text(band.as_str()));
    }
    f.insert("health/coverage".into(), Fact::Num(h.coverage));
    for c in &h.components {
        if let Some(score) = c.score {
            f.insert(format!("health/component/{}", c.id), Fact::Num(score));
        }
    }
    for m in &state.moments {
        f.insert(format!("moment/{}", m.id), Fact::Bool(true));
    }
    for (name, v) in &state.metrics {
        if let Some(v) = v {
            f.insert(format!("metric/{name}"), Fact::from(*v));
        }
    }
    f
}

/// One row of an account's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The day the facts hold from.
    pub day: Date,
    /// Every fact (a checkpoint) or only what changed since the day before.
    pub checkpoint: bool,
    /// The facts; in a change row, `None` is a fact that stopped holding.
    pub facts: BTreeMap<String, Option<Fact>>,
}

/// Appends days to an account's timeline, in order.
#[derive(Debug, Default)]
pub struct Builder {
    /// The last day appended, and its facts by path (in path order) with
    /// how each is stored.
    last: Option<(Date, Vec<(String, Stored)>)>,
    checkpoint: Option<Date>,
}

/// A fact's value on the last day appended, and how it is stored.
#[derive(Debug)]
struct Stored {
    value: Fact,
    stored: Fact,
}

/// Why a day could not be appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// Days are appended in order, once each.
    #[error("day {day} comes after {last}: days are appended in order")]
    OutOfOrder {
        /// The day offered.
        day: Date,
        /// The last day appended.
        last: Date,
    },
}

impl Builder {
    /// A builder continuing after `rows` (an account's timeline so far).
    pub fn after(rows: &[Row]) -> Self {
        match rows.last() {
            Some(last) => Self::continuing(rows, last.day),
            None => Self::default(),
        }
    }

    /// A builder continuing after `day`, the last day concluded, given the
    /// rows up to it (from a checkpoint on): the days after it then come
    /// out exactly as if they had been appended right after it.
    pub fn continuing(rows: &[Row], day: Date) -> Self {
        let Some(stored) = stored_on(rows, day) else { return Self::default() };
        let facts = stored.into_iter().map(|(k, v)| (k, Stored { value: v.on(day), stored: v })).collect();
        let checkpoint = rows.iter().rev().find(|r| r.checkpoint && r.day <= day).map(|r| r.day);
        Self { last: Some((day, facts)), checkpoint }
    }

    /// Appends a day's facts; answers the row to store (`None`: nothing changed).
    pub fn push(&mut self, day: Date, facts: Facts) -> Result<Option<Row>, AppendError> {
        if let Some((last, _)) = &self.last
            && day <= *last
        {
            return Err(AppendError::OutOfOrder { day, last: *last });
        }
        let (before, yesterday) = match self.last.take() {
            // Anchored counts carry over only from the day before.
            Some((last, before)) => (Some(before), (day - last).num_days() == 1),
            None => (None, false),
        };
        let due =
            self.checkpoint.is_none_or(|c| (day - c).num_days() >= CHECKPOINT_EVERY) || before.is_none();
        // Both sides are in path order: walk them together.
        let mut previous = before.iter().flatten().peekable();
        let mut changed: Vec<(String, Option<Fact>)> = Vec::new();
        let mut now = Vec::with_capacity(facts.len());
        for (path, value) in facts {
            while let Some((gone, _)) = previous.next_if(|(p, _)| p.as_str() < path.as_str()) {
                changed.push((gone.clone(), None));
            }
            let old = previous.next_if(|(p, _)| *p == path).map(|(_, s)| s);
            let stored = Fact::stored(
                &value,
                day,
                old.map(|s| &s.stored),
                old.filter(|_| yesterday).map(|s| &s.value),
            );
            if !due && old.map(|s| &s.stored) != Some(&stored) {
                changed.push((path.clone(), Some(stored.clone())));
            }
            now.push((path, Stored { value, stored }));
        }
        changed.extend(previous.map(|(gone, _)| (gone.clone(), None)));
        let row = if due {
            self.checkpoint = Some(day);
            let all = now.iter().map(|(k, s)| (k.clone(), Some(s.stored.clone()))).collect();
            Some(Row { day, checkpoint: true, facts: all })
        } else {
            (!changed.is_empty()).then(|| Row {
                day,
                checkpoint: false,
                facts: changed.into_iter().collect(),
            })
        };
        self.last = Some((day, now));
        Ok(row)
    }
}

/// The facts on `day` (None: the timeline starts later): the last
/// checkpoint at or before it, with the changes after it up to `day`.
/// `rows` are one account's, in day order.
pub fn facts_on(rows: &[Row], day: Date) -> Option<Facts> {
    let stored = stored_on(rows, day)?;
    Some(stored.into_iter().map(|(k, v)| (k, v.on(day))).collect())
}

/// The facts on each of `days` (in ascending order), in one pass over
/// `rows` (one account's, in day order): what [`facts_on`] answers for
/// each day.
pub fn facts_at(rows: &[Row], days: &[Date]) -> Vec<Option<Facts>> {
    let mut stored: Option<Facts> = None;
    let mut next = rows.iter().peekable();
    days.iter()
        .map(|&day| {
            while let Some(row) = next.next_if(|r| r.day <= day) {
                if row.checkpoint {
                    stored = Some(Facts::new());
                }
                if let Some(facts) = stored.as_mut() {
                    for (k, v) in &row.facts {
                        match v {
                            Some(v) => facts.insert(k.clone(), v.clone()),
                            None => facts.remove(k),
                        };
                    }
                }
            }
            stored.as_ref().map(|s| s.iter().map(|(k, v)| (k.clone(), v.on(day))).collect())
        })
        .collect()
}

/// The facts on `day` as stored (counts still anchored to their days).
fn stored_on(rows: &[Row], day: Date) -> Option<Facts> {
    let upto = rows.partition_point(|r| r.day <= day);
    let start = rows[..upto].iter().rposition(|r| r.checkpoint)?;
    let mut facts = Facts::new();
    for row in &rows[start..upto] {
        if row.checkpoint {
            facts.clear();
        }
        for (k, v) in &row.facts {
            match v {
                Some(v) => facts.insert(k.clone(), v.clone()),
                None => facts.remove(k),
            };
        }
    }
    Some(facts)
}

/// An account's timeline from `from` to `to`, day by day: each day
/// evaluated as of itself (what Keel knew that day), continuing from the
/// day before's checkpoint.
pub fn walk(
    plan: &keel_engine::Plan,
    history: &keel_engine::AccountHistory,
    from: Date,
    to: Date,
) -> Vec<Row> {
    extend(plan, history, &[], from, to, None)
}

/// The rows that continue `before` (an account's rows before `from`, from
/// a checkpoint on; empty: none) with the days `from` to `to`, each
/// evaluated as of itself; `on_to` is the evaluation as of `to` when the
/// caller has it already (it is then not evaluated again).
pub fn extend(
    plan: &keel_engine::Plan,
    history: &keel_engine::AccountHistory,
    before: &[Row],
    from: Date,
    to: Date,
    on_to: Option<&AccountState>,
) -> Vec<Row> {
    let mut builder = from.pred_opt().map_or_else(Builder::default, |d| Builder::continuing(before, d));
    let mut rows = Vec::new();
    let mut walk = keel_engine::Walk::new(plan, history);
    let mut day = from;
    while day <= to {
        let facts = match on_to {
            Some(state) if day == to => facts(state),
            _ => facts(&walk.evaluate(day)),
        };
        // `before` ends before `from` and days come in order: appending cannot fail.
        if let Ok(Some(row)) = builder.push(day, facts) {
            rows.push(row);
        }
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    rows
}
