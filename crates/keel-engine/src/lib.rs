//! The evaluation engine: a pure function of (journey, account history,
//! as-of date) → account state.
//!
//! [`evaluate`] places each product line of an account in a journey stage
//! (replaying the stage rules from the contract start, weekly, so hysteresis
//! and the renewal window are honoured), reports exit-gate progress condition
//! by condition, scores health with its reasons and coverage, and lists the
//! moments that matter that are firing, with the values that made them fire.
//!
//! Nothing after `as_of` can influence the result: events count only when
//! both their day and the day they were received are on or before `as_of`,
//! and every other record is read through its own dates. No I/O, no clock.

mod checkpoint;
mod health;
mod metrics;
mod moments;
mod needs;
mod stages;

use std::collections::BTreeMap;

use cel_core::Value;
use keel_core::{
    Account, Contact, Contract, Date, DayUsage, Opportunity, SurveyResponse, Ticket, Touchpoint,
};
use keel_journey::{Detection, Entry, Expr, Journey, MetricDef, Touch};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

pub use checkpoint::{Checkpoint, Fingerprint, fingerprint};
use health::health;
pub use keel_journey::catalog::History;
use metrics::{Ctx, Metrics, dn};
pub use metrics::{Val, account_value};
use moments::moments;
pub use needs::{Needs, NeedsError};
use stages::replay;

/// One account's records, as the store holds them.
#[derive(Debug, Clone)]
pub struct AccountHistory {
    /// The account.
    pub account: Account,
    /// Its contracts.
    pub contracts: Vec<Contract>,
    /// Its contacts.
    pub contacts: Vec<Contact>,
    /// Its tickets.
    pub tickets: Vec<Ticket>,
    /// Its survey responses.
    pub surveys: Vec<SurveyResponse>,
    /// Its touchpoints.
    pub touchpoints: Vec<Touchpoint>,
    /// Its opportunities.
    pub opportunities: Vec<Opportunity>,
    /// Its usage, sorted by (day, known day).
    pub usage: Vec<DayUsage>,
    /// The ids `usage` gives its users, with their external user ids (a
    /// contact's events carry the contact id as user id when they can).
    pub users: Vec<(u64, String)>,
}

impl AccountHistory {
    /// An account with no records yet.
    pub fn new(account: Account) -> Self {
        Self {
            account,
            contracts: Vec::new(),
            contacts: Vec::new(),
            tickets: Vec::new(),
            surveys: Vec::new(),
            touchpoints: Vec::new(),
            opportunities: Vec::new(),
            usage: Vec::new(),
            users: Vec::new(),
        }
    }
}

/// A journey bound to a workspace's event-name ids, ready to evaluate.
pub struct Plan {
    journey: Journey,
    /// Core feature name ids.
    core: FxHashSet<u64>,
    /// User count metrics → the name ids they count.
    count_metrics: Vec<(String, FxHashSet<u64>)>,
    /// User unique-users metrics → name ids.
    event_ids: FxHashMap<String, FxHashSet<u64>>,
    /// The journey's version and the name ids it is bound to, as a digest:
    /// a checkpoint holds only for the plan that made it.
    identity: u64,
}

impl Plan {
    /// Binds `journey` to the workspace's event names (id, name).
    pub fn new(journey: Journey, names: &[(u64, String)]) -> Self {
        let ids = |wanted: &[String]| -> FxHashSet<u64> {
            names.iter().filter(|(_, n)| wanted.contains(n)).map(|(id, _)| *id).collect()
        };
        let core = ids(&journey.core_features);
        let mut count_metrics = Vec::new();
        let mut event_ids = FxHashMap::default();
        for m in &journey.metrics {
            match &m.def {
                MetricDef::Count { events, .. } => count_metrics.push((m.name.clone(), ids(events))),
                MetricDef::UniqueUsers { events, .. } => {
                    event_ids.insert(m.name.clone(), ids(events));
                }
                MetricDef::Expr(_) => {}
            }
        }
        let identity = {
            use std::hash::Hasher;
            let mut d = rustc_hash::FxHasher::default();
            d.write(journey.version.as_bytes());
            let sorted = |ids: &FxHashSet<u64>| {
                let mut v: Vec<u64> = ids.iter().copied().collect();
                v.sort_unstable();
                v
            };
            let mut bound: Vec<(&str, Vec<u64>)> = vec![("", sorted(&core))];
            bound.extend(count_metrics.iter().map(|(n, ids)| (n.as_str(), sorted(ids))));
            bound.extend(event_ids.iter().map(|(n, ids)| (n.as_str(), sorted(ids))));
            bound.sort();
            for (name, ids) in bound {
                d.write(name.as_bytes());
                d.write_u8(0xff);
                ids.iter().for_each(|id| d.write_u64(*id));
            }
            d.finish()
        };
        Self { journey, core, count_metrics, event_ids, identity }
    }

    /// The journey.
    pub fn journey(&self) -> &Journey {
        &self.journey
    }
}

/// A condition and whether it held, with the values it read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    /// The CEL text.
    pub expr: String,
    /// True, false, or None when a value it needs is missing.
    pub holds: Option<bool>,
    /// The metrics it read, with their values (None: no data).
    pub values: BTreeMap<String, Option<Val>>,
}

/// A stage change, with the rule that made it and the inputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// The day.
    pub on: Date,
    /// From stage (None: the product line started).
    pub from: Option<String>,
    /// To stage (None: the product line ended).
    pub to: Option<String>,
    /// Why, in words.
    pub rule: String,
    /// The values the rule read.
    pub inputs: BTreeMap<String, Option<Val>>,
}

/// Where one product line stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineState {
    /// The product line.
    pub product_line: String,
    /// The stage (None: no active contract — the line ended).
    pub stage: Option<String>,
    /// When it entered the stage.
    pub entered: Date,
    /// Days in the stage.
    pub days_in_stage: i64,
    /// The exit gate, condition by condition (empty when the line ended).
    pub gate: Vec<Condition>,
    /// Whether the whole gate holds (and the minimum dwell is met).
    pub gate_passed: bool,
    /// Days from contract start to first value, if reached.
    pub ttv_days: Option<i64>,
    /// Every stage change up to as_of.
    pub transitions: Vec<Transition>,
}

/// One health component's contribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentScore {
    /// Component id.
    pub id: String,
    /// Its metric.
    pub metric: String,
    /// The metric's value (None: no data — the weight went to the others).
    pub value: Option<Val>,
    /// 0–100.
    pub score: Option<f64>,
    /// The weight used (after segment overrides).
    pub weight: f64,
}

pub use keel_core::Band;

/// The health score with its reasons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    /// 0–100 (None when no component had data).
    pub score: Option<f64>,
    /// Band (None when no component had data).
    pub band: Option<Band>,
    /// Share of the weight whose metric had data.
    pub coverage: f64,
    /// Below the journey's min_coverage.
    pub uncertain: bool,
    /// Per component.
    pub components: Vec<ComponentScore>,
}

/// A moment that matters, firing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    /// Moment id.
    pub id: String,
    /// Severity.
    pub severity: String,
    /// Owner role.
    pub owner: String,
    /// Play it triggers.
    pub play: Option<String>,
    /// Why it fires, in words.
    pub reason: String,
    /// The values that made it fire.
    pub evidence: BTreeMap<String, Option<Val>>,
}

impl Firing {
    fn severity_rank(&self) -> u8 {
        match self.severity.as_str() {
            "critical" => 3,
            "high" => 2,
            "medium" => 1,
            _ => 0,
        }
    }
}

/// An account's state as of a date.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccountState {
    /// The account's external id.
    pub account: String,
    /// The evaluation date.
    pub as_of: Date,
    /// Segment id (None when no rule matched).
    pub segment: Option<String>,
    /// Per product line.
    pub lines: Vec<LineState>,
    /// Health.
    pub health: Health,
    /// Firing moments.
    pub moments: Vec<Firing>,
    /// Account-level metrics of the catalog (None: no data).
    pub metrics: BTreeMap<String, Option<Val>>,
}

fn truth(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

fn condition(expr: &Expr, m: &Metrics<'_, '_>) -> Condition {
    let values = expr.reads.iter().filter(|r| *r != "account").map(|r| (r.clone(), m.get(r))).collect();
    Condition { expr: expr.source.clone(), holds: truth(&expr.eval(m)), values }
}

fn inputs(expr: &Expr, m: &Metrics<'_, '_>) -> BTreeMap<String, Option<Val>> {
    expr.reads.iter().filter(|r| *r != "account").map(|r| (r.clone(), m.get(r))).collect()
}

fn date(day: i32) -> Date {
    Date::from_num_days_from_ce_opt(day).unwrap_or_default()
}

/// The values of some metrics of one account (not of a product line) as of a
/// date, without evaluating stages, health or moments; `None` where a metric
/// has no data. The history needs to hold only what [`Plan::needs`] says
/// the metrics read.
pub fn metric_values(
    plan: &Plan,
    history: &AccountHistory,
    as_of: Date,
    metrics: &[String],
) -> Vec<Option<Val>> {
    let ctx = Ctx::new(plan, history, as_of);
    let m = Metrics::new(&ctx, ctx.as_of, None);
    metrics.iter().map(|name| m.get(name)).collect()
}

/// The segment of one account as of a date — the first segment whose rule
/// holds — without evaluating stages, health or moments. The history needs
/// to hold only what [`Plan::segment_needs`] says the rules read.
pub fn segment(plan: &Plan, history: &AccountHistory, as_of: Date) -> Option<String> {
    let ctx = Ctx::new(plan, history, as_of);
    let m = Metrics::new(&ctx, ctx.as_of, None);
    plan.journey.segments.iter().find(|s| truth(&s.when.eval(&m)) == Some(true)).map(|s| s.id.clone())
}

/// What time-to-value reports need of one account as of a date.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValueFacts {
    /// The account's segment.
    pub segment: Option<String>,
    /// Its first contract's start (None: no contract started by `as_of`).
    pub start: Option<Date>,
    /// Days from `start` to the first day the first-value milestone held
    /// (None: not reached by `as_of`).
    pub ttv_days: Option<i64>,
    /// Days from `start` to `as_of`.
    pub tenure_days: Option<i64>,
    /// The segment's `ttv_target_days` (or the journey's default).
    pub target_days: Option<f64>,
}

/// The time-to-value facts of one account, without evaluating the rest; the
/// history needs to hold what [`Plan::value_needs`] says.
pub fn value_facts(plan: &Plan, history: &AccountHistory, as_of: Date) -> ValueFacts {
    let ctx = Ctx::new(plan, history, as_of);
    let m = Metrics::new(&ctx, ctx.as_of, None);
    let j = &plan.journey;
    let segment = j.segments.iter().find(|s| truth(&s.when.eval(&m)) == Some(true));
    let target = segment
        .and_then(|s| s.overrides.get("ttv_target_days"))
        .or_else(|| j.settings.get("ttv_target_days"))
        .copied();
    let int = |name: &str| match m.get(name) {
        Some(Val::Int(n)) => Some(n),
        _ => None,
    };
    ValueFacts {
        segment: segment.map(|s| s.id.clone()),
        start: ctx.first_start.map(date),
        ttv_days: int("ttv_days"),
        tenure_days: int("tenure_days"),
        target_days: target,
    }
}

/// Whether a condition over account-level metrics held for one account as
/// of a date (None: a value it needs has no data).
pub fn account_condition(plan: &Plan, history: &AccountHistory, as_of: Date, expr: &Expr) -> Option<bool> {
    let ctx = Ctx::new(plan, history, as_of);
    let m = Metrics::new(&ctx, ctx.as_of, None);
    truth(&expr.eval(&m))
}

/// The moments firing for one account on one day, its segment and health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signals {
    /// The account's segment.
    pub segment: Option<String>,
    /// The moments firing, by id.
    pub fired: Vec<String>,
    /// The health score the moments read.
    pub health: Health,
}

/// The moments firing for one account as of a date — the same moments
/// [`evaluate`] reports — without replaying its stages.
pub fn signals(plan: &Plan, history: &AccountHistory, as_of: Date) -> Signals {
    let ctx = Ctx::new(plan, history, as_of);
    let j = &plan.journey;
    let m = Metrics::new(&ctx, ctx.as_of, None);
    let segment = j.segments.iter().find(|s| truth(&s.when.eval(&m)) == Some(true));
    let setting = |key: &str| -> f64 {
        segment.and_then(|s| s.overrides.get(key)).or_else(|| j.settings.get(key)).copied().unwrap_or(0.0)
    };
    let health = health(plan, &m, segment.map(|s| s.id.as_str()));
    let fired =
        moments(&ctx, &m, segment.map(|s| s.touch), &setting, &health).into_iter().map(|f| f.id).collect();
    Signals { segment: segment.map(|s| s.id.clone()), fired, health }
}

/// The health of one account as of a date, with its segment — the same
/// score [`evaluate`] reports — without replaying stages or running the
/// detectors (the account page's health trend, the portfolio's band
/// movements).
pub fn health_as_of(plan: &Plan, history: &AccountHistory, as_of: Date) -> (Option<String>, Health) {
    let ctx = Ctx::new(plan, history, as_of);
    let m = Metrics::new(&ctx, ctx.as_of, None);
    let segment = plan.journey.segments.iter().find(|s| truth(&s.when.eval(&m)) == Some(true));
    let health = health(plan, &m, segment.map(|s| s.id.as_str()));
    (segment.map(|s| s.id.clone()), health)
}

/// Evaluates one account as of a date.
pub fn evaluate(plan: &Plan, history: &AccountHistory, as_of: Date) -> AccountState {
    evaluate_with(plan, history, as_of, None).0
}

/// Evaluates one account as of a date, continuing from a checkpoint an
/// earlier evaluation of it left when that gives exactly what [`evaluate`]
/// gives (see [`Checkpoint`]; otherwise it replays in full), and answers
/// the checkpoint this evaluation leaves. A checkpoint of another plan
/// (another journey version, or event names bound differently) is not used.
pub fn evaluate_from(
    plan: &Plan,
    history: &AccountHistory,
    as_of: Date,
    from: Option<&Checkpoint>,
) -> (AccountState, Checkpoint) {
    let from = from.filter(|c| c.holds(plan, history, as_of));
    let (state, replays) = evaluate_with(plan, history, as_of, from);
    (state, Checkpoint::of(plan, history, dn(as_of), replays))
}

/// [`evaluate_from`] without the check that the checkpoint still holds:
/// for tests that show what a stale checkpoint would do.
#[doc(hidden)]
pub fn evaluate_from_unchecked(
    plan: &Plan,
    history: &AccountHistory,
    as_of: Date,
    from: &Checkpoint,
) -> (AccountState, Checkpoint) {
    let (state, replays) = evaluate_with(plan, history, as_of, Some(from));
    (state, Checkpoint::of(plan, history, dn(as_of), replays))
}

fn evaluate_with(
    plan: &Plan,
    history: &AccountHistory,
    as_of: Date,
    from: Option<&Checkpoint>,
) -> (AccountState, Vec<stages::LineReplay>) {
    let ctx = Ctx::new(plan, history, as_of);
    evaluate_in(&ctx, from.map(|c| c.lines.as_slice()))
}

/// An account evaluated day after day, each evaluation continuing from the
/// one before: what [`evaluate`] answers, at the cost of what changed when
/// the days come one after the other — the day's usage is added to what
/// the day before held, the stage replays take at most one more weekly
/// step, and the search for first value goes on from where it stopped.
/// Data received on a day but dated earlier (a late arrival) rebuilds
/// what it changes. The history must not change during the walk.
pub struct Walk<'a> {
    plan: &'a Plan,
    history: &'a AccountHistory,
    ctx: Option<Ctx<'a>>,
    /// The stage replays after the weekly steps of the last evaluation.
    lines: Vec<stages::LineReplay>,
}

impl<'a> Walk<'a> {
    /// A walk over `history` under `plan`, nothing evaluated yet.
    pub fn new(plan: &'a Plan, history: &'a AccountHistory) -> Self {
        Self { plan, history, ctx: None, lines: Vec::new() }
    }

    /// The account as of `as_of`: exactly `evaluate(plan, history, as_of)`.
    pub fn evaluate(&mut self, as_of: Date) -> AccountState {
        let day = dn(as_of);
        let mut ctx = self.ctx.take();
        let moved = ctx.as_mut().is_some_and(|c| c.as_of + 1 == day && c.advance());
        let ctx = match ctx {
            Some(ctx) if moved => ctx,
            before => {
                let before = before.map(|c| c.as_of);
                let last = self.lines.iter().map(|l| l.step).max();
                // The replays hold on when no usage received since the last
                // evaluation is dated on or before a step they took.
                let hold = match (before, last) {
                    (Some(b), Some(last)) if b <= day => !self.history.usage.iter().any(|u| {
                        let (d, k) = (dn(u.day), dn(u.known));
                        k > b && k <= day && d <= last
                    }),
                    (Some(b), None) => b <= day,
                    _ => false,
                };
                if !hold {
                    self.lines.clear();
                }
                Ctx::new(self.plan, self.history, as_of)
            }
        };
        let (state, lines) = evaluate_in(&ctx, Some(&self.lines));
        self.lines = lines;
        self.ctx = Some(ctx);
        state
    }
}

fn evaluate_in(
    ctx: &Ctx<'_>,
    from: Option<&[stages::LineReplay]>,
) -> (AccountState, Vec<stages::LineReplay>) {
    let (plan, history) = (ctx.plan, ctx.h);
    let as_of = date(ctx.as_of);
    let j = &plan.journey;
    let t = ctx.as_of;
    let account_metrics = Metrics::new(ctx, t, None);

    let segment = j.segments.iter().find(|s| truth(&s.when.eval(&account_metrics)) == Some(true));
    let setting = |key: &str| -> f64 {
        segment.and_then(|s| s.overrides.get(key)).or_else(|| j.settings.get(key)).copied().unwrap_or(0.0)
    };

    let mut lines: Vec<String> = history
        .contracts
        .iter()
        .filter(|c| dn(c.start) <= t)
        .map(|c| c.product.as_str().to_owned())
        .collect();
    lines.sort();
    lines.dedup();
    let (lines, replays): (Vec<LineState>, Vec<_>) =
        lines.iter().map(|l| replay(ctx, l, from.and_then(|c| c.iter().find(|r| r.line == *l)))).unzip();

    let health = health(plan, &account_metrics, segment.map(|s| s.id.as_str()));
    let moments = moments(ctx, &account_metrics, segment.map(|s| s.touch), &setting, &health);

    let mut metrics = BTreeMap::new();
    for name in j.metric_types.keys() {
        metrics.insert(name.clone(), account_metrics.get(name));
    }
    let state = AccountState {
        account: history.account.id.to_string(),
        as_of,
        segment: segment.map(|s| s.id.clone()),
        lines,
        health,
        moments,
        metrics,
    };
    (state, replays)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::curve_score;
    use keel_core::{BillingPeriod, ExternalId, Label, Money, parse_date};

    #[test]
    fn curves_interpolate_linearly_and_stay_flat_outside() {
        let curve = [(0.1, 0.0), (0.4, 50.0), (0.7, 100.0)];
        assert_eq!(curve_score(&curve, 0.0), 0.0);
        assert!((curve_score(&curve, 0.25) - 25.0).abs() < 1e-9);
        assert!((curve_score(&curve, 0.55) - 75.0).abs() < 1e-9);
        assert_eq!(curve_score(&curve, 2.0), 100.0);
    }

    fn quiet_account() -> AccountHistory {
        let id = ExternalId::parse("acme").unwrap();
        let mut h = AccountHistory::new(Account {
            id: id.clone(),
            name: "Acme".into(),
            attributes: Default::default(),
            owner: None,
            parent: None,
            created: parse_date("2025-01-01").unwrap(),
        });
        h.contracts.push(Contract {
            id: ExternalId::parse("c1").unwrap(),
            account: id,
            product: Label::parse("platform").unwrap(),
            start: parse_date("2025-01-01").unwrap(),
            end: Some(parse_date("2026-01-01").unwrap()),
            mrr: Money::parse_non_negative("100", "USD").unwrap(),
            seats: 10,
            billing_period: BillingPeriod::Annual,
        });
        h
    }

    #[test]
    fn the_renewal_window_opens_on_its_day_and_the_line_ends_with_its_contract() {
        let journey = keel_journey::check("journey.toml", keel_journey::DEFAULT_JOURNEY).unwrap();
        let plan = Plan::new(journey, &[]);
        let h = quiet_account();
        let at = |d: &str| evaluate(&plan, &h, parse_date(d).unwrap());

        let early = at("2025-03-01");
        assert_eq!(early.lines[0].stage.as_deref(), Some("onboarding"));
        assert_eq!(early.lines[0].days_in_stage, 59);
        assert!(early.moments.iter().any(|m| m.id == "first_value_slip"), "{:?}", early.moments);

        let window = at("2025-11-15");
        let line = &window.lines[0];
        assert_eq!(line.stage.as_deref(), Some("renewal"));
        assert_eq!(line.entered, parse_date("2025-10-03").unwrap(), "90 days before 2026-01-01");
        assert_eq!(line.gate[0].values["days_to_renewal"], Some(Val::Int(47)));

        // A promoter inside the renewal window stays in renewal (no flapping
        // between renewal and advocacy).
        let mut promoter = h.clone();
        promoter.contacts.push(Contact {
            id: ExternalId::parse("p1").unwrap(),
            account: h.account.id.clone(),
            email: "p@acme.test".into(),
            name: "Pat".into(),
            role: Label::parse("champion").unwrap(),
            active_from: parse_date("2025-01-01").unwrap(),
            active_to: None,
        });
        promoter.surveys.push(SurveyResponse {
            id: ExternalId::parse("s1").unwrap(),
            account: h.account.id.clone(),
            contact: None,
            kind: keel_core::SurveyKind::Nps,
            score: 10,
            comment: None,
            responded: keel_core::parse_timestamp("2025-10-20T10:00:00Z").unwrap(),
        });
        for day in ["2025-10-25", "2025-11-01", "2025-11-08", "2025-12-20"] {
            let state = evaluate(&plan, &promoter, parse_date(day).unwrap());
            assert_eq!(state.lines[0].stage.as_deref(), Some("renewal"), "on {day}");
        }

        let after = at("2026-02-01");
        assert_eq!(after.lines[0].stage, None, "no active contract: the line ended");
        assert_eq!(
            after.lines[0].transitions.last().unwrap().rule,
            "no active contract on this product line"
        );
    }
}
