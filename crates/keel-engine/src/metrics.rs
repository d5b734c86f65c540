//! The metric catalog, computed from one account's history as known on the
//! evaluation date, at any day up to it.

use std::sync::{Arc, Mutex, PoisonError};

use cel_core::{Activation, MapKey, Value, ValueMap};
use keel_core::{Date, DayUsage, SurveyKind};
use keel_journey::{MetricDef, Window};
use rust_decimal::prelude::ToPrimitive;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use crate::{AccountHistory, Plan};

/// A metric's value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Val {
    /// Whole number.
    Int(i64),
    /// Real number.
    Double(f64),
    /// Boolean.
    Bool(bool),
}

impl Val {
    /// As a number (booleans are 0 and 1).
    pub fn as_f64(self) -> f64 {
        match self {
            Self::Int(i) => i as f64,
            Self::Double(d) => d,
            Self::Bool(b) => f64::from(u8::from(b)),
        }
    }

    /// As a CEL value.
    pub fn to_cel(self) -> Value {
        match self {
            Self::Int(i) => Value::Int(i),
            Self::Double(d) => Value::Double(d),
            Self::Bool(b) => Value::Bool(b),
        }
    }
}

impl std::fmt::Display for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::Double(d) => write!(f, "{}", (d * 100.0).round() / 100.0),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// The `account` variable of expressions: the account's scalar attributes.
pub fn account_value(account: &keel_core::Account) -> Value {
    let entries = account.attributes.iter().filter_map(|(k, v)| {
        let value = match v {
            serde_json::Value::String(s) => Value::from(s.as_str()),
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Double(n.as_f64()?),
            },
            _ => return None,
        };
        Some((MapKey::String(k.as_str().into()), value))
    });
    Value::Map(Arc::new(ValueMap::from_entries(entries)))
}

/// Day number (days since 0001-01-01) of a date.
pub(crate) fn dn(d: Date) -> i32 {
    chrono::Datelike::num_days_from_ce(&d)
}

/// Day number of a timestamp's UTC date.
pub(crate) fn dn_ts(t: keel_core::Timestamp) -> i32 {
    dn(t.date_naive())
}

/// One day of usage, merged over what was known by the evaluation date; its
/// users and event-name counts are ranges of the context's flat arrays.
struct Day {
    day: i32,
    events: u64,
    users: std::ops::Range<u32>,
    names: std::ops::Range<u32>,
}

/// Everything about one account that metrics read, restricted to what was
/// known on `as_of`.
pub(crate) struct Ctx<'a> {
    pub plan: &'a Plan,
    pub h: &'a AccountHistory,
    pub as_of: i32,
    days: Vec<Day>,
    /// Users of each day (sorted, distinct within a day).
    user_ids: Vec<u64>,
    /// (event-name id, events) of each day (sorted by id within a day).
    name_counts: Vec<(u64, u64)>,
    /// `cum_events[i]`: events on days[..i].
    cum_events: Vec<u64>,
    /// Per user count metric: cumulative matching events.
    cum_counts: FxHashMap<String, Vec<u64>>,
    pub account: Value,
    /// First day of the first contract (None: no contract started yet).
    pub first_start: Option<i32>,
    /// The days data dated earlier was received on (sorted, distinct).
    late: Vec<i32>,
    /// Per product line (None = the account): the search for its first value.
    first_value: Mutex<FxHashMap<Option<String>, FirstValue>>,
}

/// Where the weekly search for a line's first value stands: every weekly
/// step before `resume` was judged on a day before `at` (so on data a
/// later context holds the same) and did not hold.
#[derive(Debug, Clone, Copy)]
struct FirstValue {
    /// The line's first contract start.
    start: i32,
    /// The as-of day of the search.
    at: i32,
    /// The step the search stopped at.
    resume: i32,
    /// The day of first value, as of `at`.
    result: Option<i32>,
}

impl<'a> Ctx<'a> {
    pub fn new(plan: &'a Plan, h: &'a AccountHistory, as_of: Date) -> Self {
        let as_of = dn(as_of);
        let mut ctx = Self {
            plan,
            h,
            as_of,
            days: Vec::new(),
            user_ids: Vec::new(),
            name_counts: Vec::new(),
            cum_events: vec![0],
            cum_counts: plan.count_metrics.iter().map(|(name, _)| (name.clone(), vec![0])).collect(),
            account: account_value(&h.account),
            first_start: None,
            late: Vec::new(),
            first_value: Mutex::default(),
        };
        ctx.late = h.usage.iter().filter(|u| u.known > u.day).map(|u| dn(u.known)).collect();
        ctx.late.sort_unstable();
        ctx.late.dedup();
        // Rows come sorted by (day, known day); a day known in several rows
        // (late data) is merged.
        let mut rows = h.usage.iter().filter(|u| dn(u.day) <= as_of && dn(u.known) <= as_of).peekable();
        while let Some(first) = rows.peek() {
            let day = dn(first.day);
            let mut same = Vec::new();
            while let Some(u) = rows.next_if(|u| dn(u.day) == day) {
                same.push(u);
            }
            ctx.push_day(day, &same);
        }
        ctx.first_start = ctx.first_start_by(as_of);
        ctx
    }

    /// Moves the context on to the next day when that only adds the day's
    /// own usage (what was known of earlier days is unchanged): the same
    /// context [`Ctx::new`] would build as of that day. Answers false, and
    /// leaves the context as it was, when data received that day is dated
    /// earlier (the caller builds a new context).
    pub fn advance(&mut self) -> bool {
        let next = self.as_of + 1;
        if self.late.binary_search(&next).is_ok() {
            return false;
        }
        let h = self.h;
        let lo = h.usage.partition_point(|u| dn(u.day) < next);
        let hi = h.usage.partition_point(|u| dn(u.day) <= next);
        let same: Vec<&DayUsage> = h.usage[lo..hi].iter().filter(|u| dn(u.known) <= next).collect();
        if !same.is_empty() {
            self.push_day(next, &same);
        }
        self.as_of = next;
        self.first_start = self.first_start_by(next);
        true
    }

    fn first_start_by(&self, as_of: i32) -> Option<i32> {
        self.h.contracts.iter().map(|c| dn(c.start)).filter(|s| *s <= as_of).min()
    }

    /// Appends day `day`'s usage from its rows (the day after every day held).
    fn push_day(&mut self, day: i32, rows: &[&DayUsage]) {
        let (u0, n0) = (self.user_ids.len(), self.name_counts.len());
        let mut events = 0;
        for u in rows {
            events += u.events;
            self.user_ids.extend(u.users.iter().map(|(id, _)| *id));
            self.name_counts.extend_from_slice(&u.names);
        }
        if rows.len() > 1 {
            let mut users = self.user_ids.split_off(u0);
            users.sort_unstable();
            users.dedup();
            self.user_ids.extend(users);
            let mut names = self.name_counts.split_off(n0);
            names.sort_unstable_by_key(|(id, _)| *id);
            for (id, n) in names {
                let fresh = self.name_counts.len() == n0;
                match self.name_counts.last_mut() {
                    Some((last, m)) if !fresh && *last == id => *m += n,
                    _ => self.name_counts.push((id, n)),
                }
            }
        }
        let range = |a: usize, b: usize| (a as u32)..(b as u32);
        let d = Day {
            day,
            events,
            users: range(u0, self.user_ids.len()),
            names: range(n0, self.name_counts.len()),
        };
        self.cum_events.push(self.cum_events.last().copied().unwrap_or(0) + d.events);
        for (name, ids) in &self.plan.count_metrics {
            let names = &self.name_counts[d.names.start as usize..d.names.end as usize];
            let n: u64 = names.iter().filter(|(id, _)| ids.contains(id)).map(|(_, n)| n).sum();
            if let Some(cum) = self.cum_counts.get_mut(name) {
                cum.push(cum.last().copied().unwrap_or(0) + n);
            }
        }
        self.days.push(d);
    }

    fn users(&self, d: &Day) -> &[u64] {
        &self.user_ids[d.users.start as usize..d.users.end as usize]
    }

    fn names(&self, d: &Day) -> &[(u64, u64)] {
        &self.name_counts[d.names.start as usize..d.names.end as usize]
    }

    /// Index range of days in `[from, to]`.
    fn range(&self, from: i32, to: i32) -> std::ops::Range<usize> {
        let lo = self.days.partition_point(|d| d.day < from);
        let hi = self.days.partition_point(|d| d.day <= to);
        lo..hi.max(lo)
    }

    fn events_in(&self, from: i32, to: i32) -> u64 {
        let r = self.range(from, to);
        self.cum_events[r.end] - self.cum_events[r.start]
    }

    fn users_in(&self, from: i32, to: i32) -> usize {
        let mut set: FxHashSet<u64> = FxHashSet::default();
        for d in &self.days[self.range(from, to)] {
            set.extend(self.users(d).iter().copied());
        }
        set.len()
    }

    fn users_of_in(&self, names: &FxHashSet<u64>, from: i32, to: i32) -> usize {
        // Users are not split by event name in the rollup; a day with a
        // matching event counts its users (exact when one user did it).
        let mut set: FxHashSet<u64> = FxHashSet::default();
        for d in &self.days[self.range(from, to)] {
            if self.names(d).iter().any(|(id, _)| names.contains(id)) {
                set.extend(self.users(d).iter().copied());
            }
        }
        set.len()
    }

    fn core_in(&self, from: i32, to: i32) -> usize {
        let mut set: FxHashSet<u64> = FxHashSet::default();
        for d in &self.days[self.range(from, to)] {
            set.extend(self.names(d).iter().map(|(id, _)| *id).filter(|id| self.plan.core.contains(id)));
        }
        set.len()
    }

    /// Core feature ids used in `[from, to]`.
    pub fn core_set(&self, from: i32, to: i32) -> FxHashSet<u64> {
        let mut set = FxHashSet::default();
        for d in &self.days[self.range(from, to)] {
            set.extend(self.names(d).iter().map(|(id, _)| *id).filter(|id| self.plan.core.contains(id)));
        }
        set
    }

    /// Whether a user (by id) had any event in `[from, to]`.
    pub fn user_active(&self, user: u64, from: i32, to: i32) -> bool {
        self.days[self.range(from, to)].iter().any(|d| self.users(d).binary_search(&user).is_ok())
    }

    /// Weekly event totals for the `weeks` weeks ending on `t` (oldest first).
    pub fn weekly(&self, t: i32, weeks: i32) -> Vec<f64> {
        (0..weeks).rev().map(|w| self.events_in(t - 7 * w - 6, t - 7 * w) as f64).collect()
    }

    pub fn last_event_day(&self, t: i32) -> Option<i32> {
        let r = self.range(i32::MIN, t);
        self.days[r].last().map(|d| d.day)
    }

    fn contracts(&self, line: Option<&str>) -> impl Iterator<Item = &keel_core::Contract> {
        self.h.contracts.iter().filter(move |c| line.is_none_or(|l| c.product.as_str() == l))
    }

    fn active(&self, t: i32, line: Option<&str>) -> impl Iterator<Item = &keel_core::Contract> {
        let day = Date::from_num_days_from_ce_opt(t);
        self.contracts(line).filter(move |c| day.is_some_and(|d| c.is_in_force(d)))
    }

    pub fn mrr_at(&self, t: i32, line: Option<&str>) -> f64 {
        self.active(t, line).map(|c| c.mrr.amount.to_f64().unwrap_or(0.0)).sum()
    }

    pub fn days_to_renewal(&self, t: i32, line: Option<&str>) -> Option<i64> {
        self.active(t, line).filter_map(|c| c.end).map(|e| i64::from(dn(e) - t)).min()
    }

    pub fn has_active(&self, t: i32, line: Option<&str>) -> bool {
        self.active(t, line).next().is_some()
    }

    pub fn line_start(&self, line: Option<&str>) -> Option<i32> {
        self.contracts(line).map(|c| dn(c.start)).filter(|s| *s <= self.as_of).min()
    }

    fn role_present(&self, t: i32, role: &str) -> bool {
        self.h.contacts.iter().any(|c| {
            c.role.as_str() == role && dn(c.active_from) <= t && c.active_to.is_none_or(|e| t < dn(e))
        })
    }

    fn touchpoints(&self, t: i32, kind: Option<&str>) -> impl Iterator<Item = i32> + '_ {
        let kind = kind.map(str::to_owned);
        self.h
            .touchpoints
            .iter()
            .filter(move |p| kind.as_deref().is_none_or(|k| p.kind.as_str() == k))
            .map(|p| dn_ts(p.occurred))
            .filter(move |d| *d <= t)
    }

    fn nps_in(&self, from: i32, to: i32) -> Vec<f64> {
        self.h
            .surveys
            .iter()
            .filter(|s| s.kind == SurveyKind::Nps)
            .filter(|s| (from..=to).contains(&dn_ts(s.responded)))
            .map(|s| f64::from(s.score))
            .collect()
    }

    fn tickets_opened(&self, from: i32, to: i32, max_level: u8) -> usize {
        self.h
            .tickets
            .iter()
            .filter(|k| k.severity.level() <= max_level && (from..=to).contains(&dn_ts(k.opened)))
            .count()
    }

    pub fn open_tickets(&self, t: i32, level: Option<u8>) -> i64 {
        self.h
            .tickets
            .iter()
            .filter(|k| level.is_none_or(|l| k.severity.level() == l))
            .filter(|k| dn_ts(k.opened) <= t && k.closed.is_none_or(|c| dn_ts(c) > t))
            .count() as i64
    }

    /// Sev-1/2 tickets in the 30 days to `t`, and the monthly rate of the 180 days before.
    pub fn escalations(&self, t: i32) -> (f64, f64) {
        let recent = self.tickets_opened(t - 29, t, 2) as f64;
        let base = self.tickets_opened(t - 209, t - 30, 2) as f64 / 6.0;
        (recent, base)
    }

    /// The first day `line`'s first-value milestone held (None: not by as_of).
    pub fn first_value_day(&self, line: Option<&str>) -> Option<i32> {
        let start = self.line_start(line)?;
        let key = line.map(str::to_owned);
        let known = self.first_value.lock().unwrap_or_else(PoisonError::into_inner).get(&key).copied();
        let resume = match known {
            Some(s) if s.start == start && s.at == self.as_of => return s.result,
            // Found on a step before the day it was searched on: a context
            // moved on (see [`Ctx::advance`]) finds it there again.
            Some(s) if s.start == start && s.result.is_some() && s.resume <= s.at => return s.result,
            Some(s) if s.start == start => s.resume,
            _ => start,
        };
        let (result, resume) = self.search_first_value(line, start, resume);
        let search = FirstValue { start, at: self.as_of, resume, result };
        self.first_value.lock().unwrap_or_else(PoisonError::into_inner).insert(key, search);
        result
    }

    /// The weekly search from step `from` (every step before it did not
    /// hold): the first value's day and the step the search stopped at.
    fn search_first_value(&self, line: Option<&str>, start: i32, from: i32) -> (Option<i32>, i32) {
        let holds = |t: i32| {
            let m = Metrics::new(self, t, line);
            matches!(self.plan.journey.first_value.eval(&m), Value::Bool(true))
        };
        // Weekly, then the exact day inside the first week it holds.
        let mut t = from;
        loop {
            let end = t.min(self.as_of);
            if holds(end) {
                return ((end.saturating_sub(6).max(start)..=end).find(|d| holds(*d)), t);
            }
            if end == self.as_of {
                return (None, t);
            }
            t += 7;
        }
    }
}

/// The metrics of one account (or one product line) on day `t`, computed on
/// demand; CEL reads them through [`Activation`].
pub(crate) struct Metrics<'c, 'a> {
    pub ctx: &'c Ctx<'a>,
    pub t: i32,
    pub line: Option<&'c str>,
    /// Days in the current stage, when the caller knows it.
    pub days_in_stage: Option<i64>,
    cache: Mutex<FxHashMap<String, Option<Val>>>,
}

impl<'c, 'a> Metrics<'c, 'a> {
    pub fn new(ctx: &'c Ctx<'a>, t: i32, line: Option<&'c str>) -> Self {
        Self { ctx, t, line, days_in_stage: None, cache: Mutex::default() }
    }

    /// The value of a metric (None: no data).
    pub fn get(&self, name: &str) -> Option<Val> {
        if let Some(v) = self.cache.lock().unwrap_or_else(PoisonError::into_inner).get(name) {
            return *v;
        }
        let v = self.compute(name);
        self.cache.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_owned(), v);
        v
    }

    fn compute(&self, name: &str) -> Option<Val> {
        use Val::{Bool, Double, Int};
        let (c, t, line) = (self.ctx, self.t, self.line);
        let int = |n: usize| Some(Int(n as i64));
        Some(match name {
            "licensed_seats" => Int(c.active(t, line).map(|k| i64::from(k.seats)).sum()),
            "active_users_7d" => return int(c.users_in(t - 6, t)),
            "active_users_28d" => return int(c.users_in(t - 27, t)),
            "active_seat_ratio" => {
                let seats: i64 = c.active(t, line).map(|k| i64::from(k.seats)).sum();
                if seats == 0 {
                    return None;
                }
                Double(c.users_in(t - 27, t) as f64 / seats as f64)
            }
            "core_features_weekly" => return int(c.core_in(t - 6, t)),
            "feature_breadth" => return int(c.core_in(t - 27, t)),
            "events_per_active_user" => {
                let users = c.users_in(t - 27, t);
                if users == 0 {
                    return None;
                }
                Double(c.events_in(t - 27, t) as f64 / users as f64)
            }
            "usage_change_pct" => {
                let (now, before) = (c.events_in(t - 27, t) as f64, c.events_in(t - 55, t - 28) as f64);
                if before == 0.0 {
                    return if now == 0.0 { None } else { Some(Double(100.0)) };
                }
                Double((now - before) / before * 100.0)
            }
            "usage_trend" => {
                let w = c.weekly(t, 12);
                let mean = w.iter().sum::<f64>() / w.len() as f64;
                if mean == 0.0 {
                    return None;
                }
                let n = w.len() as f64;
                let xm = (n - 1.0) / 2.0;
                let (mut num, mut den) = (0.0, 0.0);
                for (i, y) in w.iter().enumerate() {
                    num += (i as f64 - xm) * (y - mean);
                    den += (i as f64 - xm).powi(2);
                }
                Double(num / den / mean * 100.0)
            }
            "days_since_last_event" => Int(i64::from(t - c.last_event_day(t)?)),
            "ttv_days" => {
                let fv = c.first_value_day(line)?;
                (fv <= t).then_some(())?;
                Int(i64::from(fv - c.line_start(line)?))
            }
            "first_value_reached" => Bool(c.first_value_day(line).is_some_and(|d| d <= t)),
            "days_in_stage" => Int(self.days_in_stage?),
            "tenure_days" => Int(i64::from(t - c.first_start?)),
            "days_to_renewal" => Int(c.days_to_renewal(t, line)?),
            "mrr" => Double(c.mrr_at(t, line)),
            "mrr_change_90d" => Double(c.mrr_at(t, line) - c.mrr_at(t - 90, line)),
            "open_tickets" => Int(c.open_tickets(t, None)),
            "open_tickets_sev1" => Int(c.open_tickets(t, Some(1))),
            "open_tickets_sev2" => Int(c.open_tickets(t, Some(2))),
            "open_tickets_sev3" => Int(c.open_tickets(t, Some(3))),
            "open_tickets_sev4" => Int(c.open_tickets(t, Some(4))),
            "tickets_30d" => return int(c.tickets_opened(t - 29, t, 4)),
            "tickets_30d_ratio" => {
                let recent = c.tickets_opened(t - 29, t, 4) as f64;
                let base = c.tickets_opened(t - 209, t - 30, 4) as f64 / 6.0;
                Double(recent / base.max(1.0))
            }
            "nps_latest" => {
                let latest =
                    c.h.surveys
                        .iter()
                        .filter(|s| s.kind == SurveyKind::Nps && dn_ts(s.responded) <= t)
                        .max_by_key(|s| s.responded)?;
                Int(i64::from(latest.score))
            }
            "nps_trend" => {
                let (now, before) = (c.nps_in(t - 89, t), c.nps_in(t - 179, t - 90));
                if now.is_empty() || before.is_empty() {
                    return None;
                }
                let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
                Double(mean(&now) - mean(&before))
            }
            "days_since_touchpoint" => Int(i64::from(t - c.touchpoints(t, None).max()?)),
            "champion_present" => Bool(c.role_present(t, "champion")),
            "executive_sponsor_present" => Bool(c.role_present(t, "executive_sponsor")),
            "days_since_champion_change" => {
                let last =
                    c.h.contacts
                        .iter()
                        .filter(|k| k.role.as_str() == "champion")
                        .filter_map(|k| k.active_to)
                        .map(dn)
                        .filter(|d| *d <= t)
                        .max()?;
                Int(i64::from(t - last))
            }
            other => {
                if let Some(kind) = other.strip_prefix("days_since_touchpoint_") {
                    return Some(Int(i64::from(t - c.touchpoints(t, Some(kind)).max()?)));
                }
                if let Some(kind) = other.strip_prefix("touchpoints_") {
                    let from = c.first_start.unwrap_or(i32::MIN);
                    return Some(Int(c.touchpoints(t, Some(kind)).filter(|d| *d >= from).count() as i64));
                }
                return self.user_metric(other);
            }
        })
    }

    fn window(&self, window: &Window) -> Option<i32> {
        match window {
            Window::Days(d) => Some(self.t - *d as i32 + 1),
            Window::Contract => self.ctx.line_start(self.line),
        }
    }

    fn user_metric(&self, name: &str) -> Option<Val> {
        let m = self.ctx.plan.journey.metrics.iter().find(|m| m.name == name)?;
        match &m.def {
            MetricDef::Count { window, .. } => {
                let from = self.window(window)?;
                let cum = self.ctx.cum_counts.get(name)?;
                let r = self.ctx.range(from, self.t);
                Some(Val::Int((cum[r.end] - cum[r.start]) as i64))
            }
            MetricDef::UniqueUsers { window, .. } => {
                let from = self.window(window)?;
                let ids = self.ctx.plan.event_ids.get(name)?;
                Some(Val::Int(self.ctx.users_of_in(ids, from, self.t) as i64))
            }
            MetricDef::Expr(expr) => match expr.eval(self) {
                Value::Int(i) => Some(Val::Int(i)),
                Value::UInt(u) => Some(Val::Int(u as i64)),
                Value::Double(d) if d.is_finite() => Some(Val::Double(d)),
                Value::Bool(b) => Some(Val::Bool(b)),
                _ => None,
            },
        }
    }
}

impl Activation for Metrics<'_, '_> {
    fn resolve(&self, name: &str) -> Option<Value> {
        if name == "account" {
            return Some(self.ctx.account.clone());
        }
        self.get(name).map(Val::to_cel)
    }

    fn has(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }
}
