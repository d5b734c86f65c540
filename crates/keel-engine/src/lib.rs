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

mod metrics;
mod needs;

use std::collections::BTreeMap;

use cel_core::Value;
use keel_core::{
    Account, Contact, Contract, Date, DayUsage, Opportunity, SurveyResponse, Ticket, Touchpoint,
};
use keel_journey::{Detection, Entry, Expr, Journey, MetricDef, Touch};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

pub use keel_journey::catalog::History;
use metrics::{Ctx, Metrics, dn};
pub use metrics::{Val, account_value};
pub use needs::{Needs, NeedsError};

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
        Self { journey, core, count_metrics, event_ids }
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
    let ctx = Ctx::new(plan, history, as_of);
    let j = &plan.journey;
    let t = ctx.as_of;
    let account_metrics = Metrics::new(&ctx, t, None);

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
    let lines: Vec<LineState> = lines.iter().map(|l| replay(&ctx, l)).collect();

    let health = health(plan, &account_metrics, segment.map(|s| s.id.as_str()));
    let moments = moments(&ctx, &account_metrics, segment.map(|s| s.touch), &setting, &health);

    let mut metrics = BTreeMap::new();
    for name in j.metric_types.keys() {
        metrics.insert(name.clone(), account_metrics.get(name));
    }
    AccountState {
        account: history.account.id.to_string(),
        as_of,
        segment: segment.map(|s| s.id.clone()),
        lines,
        health,
        moments,
        metrics,
    }
}

/// Runs the stage rules of one product line forward from its first contract,
/// weekly, to as_of.
fn replay(ctx: &Ctx<'_>, line: &str) -> LineState {
    let j = &ctx.plan.journey;
    let stages = &j.stages;
    let start = ctx.line_start(Some(line)).unwrap_or(ctx.as_of);
    let renewal = stages.iter().position(|s| matches!(s.entry, Entry::RenewalWindow));
    let window = i64::from(j.renewal_window_days);
    let mut idx: Option<usize> = Some(0);
    let mut entered = start;
    let mut before_renewal = 0usize;
    let mut transitions = vec![Transition {
        on: date(start),
        from: None,
        to: stages.first().map(|s| s.id.clone()),
        rule: "contract started".into(),
        inputs: BTreeMap::new(),
    }];
    let mut steps: Vec<i32> = (start..ctx.as_of).step_by(7).skip(1).collect();
    steps.push(ctx.as_of);
    let mut gate_passed = false;
    for &t in &steps {
        let mut m = Metrics::new(ctx, t, Some(line));
        m.days_in_stage = Some(i64::from(t - entered));
        let dwell = t - entered;
        let active = ctx.has_active(t, Some(line));
        let mut go = |to: Option<usize>,
                      rule: String,
                      inputs: BTreeMap<String, Option<Val>>,
                      idx: &mut Option<usize>| {
            transitions.push(Transition {
                on: date(t),
                from: idx.map(|i| stages[i].id.clone()),
                to: to.map(|i| stages[i].id.clone()),
                rule,
                inputs,
            });
            *idx = to;
            entered = t;
        };
        let Some(cur) = idx else {
            if active {
                go(Some(0), "a new contract started".into(), BTreeMap::new(), &mut idx);
                gate_passed = false;
            }
            continue;
        };
        if !active {
            go(None, "no active contract on this product line".into(), BTreeMap::new(), &mut idx);
            continue;
        }
        let to_renewal = ctx.days_to_renewal(t, Some(line));
        if let Some(r) = renewal {
            let evidence = || BTreeMap::from([("days_to_renewal".to_owned(), to_renewal.map(Val::Int))]);
            if cur != r
                && let Some(d) = to_renewal.filter(|d| *d <= window)
            {
                before_renewal = cur;
                let rule = format!("renewal window opened: {window} days before the contract end");
                go(Some(r), rule, evidence(), &mut idx);
                // The window opened on a day between steps: date it exactly.
                let opened = (t - (window - d) as i32).max(entered_before(&transitions, t));
                if let Some(last) = transitions.last_mut() {
                    last.on = date(opened);
                }
                entered = opened;
                gate_passed = false;
                continue;
            }
            if cur == r && to_renewal.is_none_or(|d| d > window) {
                go(
                    Some(before_renewal),
                    "renewed: the contract now ends outside the renewal window".into(),
                    evidence(),
                    &mut idx,
                );
                gate_passed = false;
                continue;
            }
        }
        if dwell < stages[cur].min_dwell_days as i32 {
            continue;
        }
        // A stage entered by its own condition, later in the journey — not
        // from inside the renewal window, which only the renewal ends.
        let jump = stages.iter().enumerate().skip(cur + 1).find_map(|(i, s)| match &s.entry {
            Entry::When(e)
                if Some(cur) != renewal && Some(i) != renewal && truth(&e.eval(&m)) == Some(true) =>
            {
                Some((i, e))
            }
            _ => None,
        });
        if let Some((i, e)) = jump {
            go(
                Some(i),
                format!("entry condition of {} held: {}", stages[i].id, e.source),
                inputs(e, &m),
                &mut idx,
            );
            gate_passed = false;
            continue;
        }
        let exit = &stages[cur].exit;
        if truth(&exit.eval(&m)) == Some(true) {
            gate_passed = true;
            if let Some(next) = stages.get(cur + 1)
                && matches!(next.entry, Entry::PreviousExit)
            {
                go(
                    Some(cur + 1),
                    format!("exit gate of {} held: {}", stages[cur].id, exit.source),
                    inputs(exit, &m),
                    &mut idx,
                );
                gate_passed = false;
            }
        }
    }
    let t = ctx.as_of;
    let mut m = Metrics::new(ctx, t, Some(line));
    m.days_in_stage = Some(i64::from(t - entered));
    let gate = match idx {
        Some(i) => {
            let exit = &stages[i].exit;
            if exit.conjuncts.is_empty() {
                vec![condition(exit, &m)]
            } else {
                exit.conjuncts.iter().map(|c| condition(c, &m)).collect()
            }
        }
        None => Vec::new(),
    };
    let ttv_days = match m.get("ttv_days") {
        Some(Val::Int(d)) => Some(d),
        _ => None,
    };
    LineState {
        product_line: line.to_owned(),
        stage: idx.map(|i| stages[i].id.clone()),
        entered: date(entered),
        days_in_stage: i64::from(t - entered),
        gate,
        gate_passed,
        ttv_days,
        transitions,
    }
}

/// The day after the previous transition (a re-dated transition may not
/// move before it).
fn entered_before(transitions: &[Transition], t: i32) -> i32 {
    transitions.iter().rev().nth(1).map_or(t, |p| dn(p.on) + 1)
}

/// Maps a metric value onto a curve of (value, score) points.
fn curve_score(curve: &[(f64, f64)], x: f64) -> f64 {
    let (Some(first), Some(last)) = (curve.first(), curve.last()) else { return 0.0 };
    if x <= first.0 {
        return first.1;
    }
    if x >= last.0 {
        return last.1;
    }
    for w in curve.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if x <= x1 {
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
        }
    }
    last.1
}

fn health(plan: &Plan, m: &Metrics<'_, '_>, segment: Option<&str>) -> Health {
    let h = &plan.journey.health;
    let overrides = segment.and_then(|s| h.segment_weights.get(s));
    let mut components = Vec::new();
    let (mut total, mut covered, mut sum) = (0.0, 0.0, 0.0);
    for c in &h.components {
        let weight = overrides.and_then(|o| o.get(&c.id)).copied().unwrap_or(c.weight);
        let value = m.get(&c.metric);
        let score = value.map(|v| curve_score(&c.curve, v.as_f64()));
        total += weight;
        if let Some(s) = score {
            covered += weight;
            sum += weight * s;
        }
        components.push(ComponentScore { id: c.id.clone(), metric: c.metric.clone(), value, score, weight });
    }
    let coverage = if total > 0.0 { covered / total } else { 0.0 };
    let score = (covered > 0.0).then(|| sum / covered);
    let band = score.map(|s| {
        if s < h.red {
            Band::Red
        } else if s < h.yellow {
            Band::Yellow
        } else {
            Band::Green
        }
    });
    Health { score, band, coverage, uncertain: coverage < h.min_coverage, components }
}

fn moments(
    ctx: &Ctx<'_>,
    m: &Metrics<'_, '_>,
    touch: Option<Touch>,
    setting: &dyn Fn(&str) -> f64,
    health: &Health,
) -> Vec<Firing> {
    let t = ctx.as_of;
    let ev = |names: &[&str]| -> BTreeMap<String, Option<Val>> {
        names.iter().map(|n| ((*n).to_owned(), m.get(n))).collect()
    };
    let int = |name: &str| match m.get(name) {
        Some(Val::Int(i)) => Some(i),
        _ => None,
    };
    let mut out = Vec::new();
    for moment in &ctx.plan.journey.moments {
        let param = |key: &str| match &moment.detection {
            Detection::Detector { params, .. } => params.get(key).copied().unwrap_or_else(|| setting(key)),
            Detection::When(_) => setting(key),
        };
        let fired: Option<(String, BTreeMap<String, Option<Val>>)> = match &moment.detection {
            Detection::When(e) => {
                (truth(&e.eval(m)) == Some(true)).then(|| (format!("{} holds", e.source), inputs(e, m)))
            }
            Detection::Detector { name, .. } => match name.as_str() {
                "first_value_reached" => ctx
                    .first_value_day(None)
                    .filter(|d| t - d < 7)
                    .map(|d| (format!("first value reached on {}", date(d)), ev(&["ttv_days"]))),
                "first_value_slip" => {
                    let target = param("ttv_target_days");
                    let tenure = ctx.line_start(None).map(|s| f64::from(t - s));
                    (ctx.first_value_day(None).is_none() && tenure.is_some_and(|d| d > target)).then(|| {
                        (
                            format!("no first value after {} days (target {target})", tenure.unwrap_or(0.0)),
                            ev(&["tenure_days", "first_value_reached"]),
                        )
                    })
                }
                "first_ebr_due" | "first_ebr_overdue" => {
                    let due = param("first_ebr_due_days");
                    let tenure = int("tenure_days").map(|d| d as f64);
                    let no_ebr = int("touchpoints_ebr") == Some(0);
                    let hit = if name == "first_ebr_due" {
                        tenure.is_some_and(|d| d >= due - 30.0 && d < due)
                    } else {
                        tenure.is_some_and(|d| d >= due)
                    };
                    (no_ebr && hit).then(|| {
                        (
                            format!("no EBR yet; first EBR due at {due} days of tenure"),
                            ev(&["tenure_days", "touchpoints_ebr"]),
                        )
                    })
                }
                "champion_change" => champion_change(ctx, m, param("champion_inactive_days") as i32),
                "usage_cliff" => {
                    let weeks = ctx.weekly(t, 10);
                    let baseline = weeks[..8].iter().sum::<f64>() / 8.0;
                    let drop = param("usage_cliff_drop_pct") / 100.0;
                    let low = |w: f64| w <= baseline * (1.0 - drop);
                    (baseline >= 5.0 && low(weeks[8]) && low(weeks[9])).then(|| {
                        let mut e = ev(&["usage_change_pct"]);
                        e.insert("baseline_weekly_events".into(), Some(Val::Double(baseline)));
                        e.insert("last_week_events".into(), Some(Val::Double(weeks[9])));
                        (format!("two weeks at least {:.0}% below the 8-week baseline", drop * 100.0), e)
                    })
                }
                "support_escalation_spike" => {
                    let (recent, base) = ctx.escalations(t);
                    let ratio = param("escalation_ratio");
                    (recent >= 2.0 && recent >= ratio * base.max(0.5)).then(|| {
                        let mut e = ev(&["open_tickets_sev1", "open_tickets_sev2"]);
                        e.insert("sev12_tickets_30d".into(), Some(Val::Double(recent)));
                        e.insert("sev12_monthly_baseline".into(), Some(Val::Double(base)));
                        (
                            format!(
                                "{recent} sev-1/2 tickets in 30 days against a baseline of {base:.1} a month"
                            ),
                            e,
                        )
                    })
                }
                "silence" => {
                    let days = param("silence_days");
                    let since = int("days_since_touchpoint").or(int("tenure_days"));
                    (touch == Some(Touch::HighTouch) && since.is_some_and(|d| d as f64 >= days)).then(|| {
                        (
                            format!("no touchpoint for {} days on a high-touch account", since.unwrap_or(0)),
                            ev(&["days_since_touchpoint"]),
                        )
                    })
                }
                "renewal_window_opened" => {
                    let window = i64::from(ctx.plan.journey.renewal_window_days);
                    int("days_to_renewal").filter(|d| *d <= window && *d > window - 7).map(|d| {
                        (
                            format!("renewal window opened: {d} days to the contract end"),
                            ev(&["days_to_renewal", "mrr"]),
                        )
                    })
                }
                "expansion_intent" => {
                    let ratio = m.get("active_seat_ratio").map(Val::as_f64);
                    let threshold = param("expansion_seat_utilisation");
                    let new = ctx.core_set(t - 6, t);
                    let before = ctx.core_set(t - 97, t - 7);
                    let adopted = ctx.first_start.is_some_and(|s| t - s > 97)
                        && new.iter().any(|f| !before.contains(f));
                    if ratio.is_some_and(|r| r >= threshold) {
                        Some((
                            format!("seat utilisation at {:.0}% of licence", ratio.unwrap_or(0.0) * 100.0),
                            ev(&["active_seat_ratio", "licensed_seats"]),
                        ))
                    } else {
                        adopted.then(|| {
                            (
                                "a core feature was adopted this week".to_owned(),
                                ev(&["core_features_weekly", "feature_breadth"]),
                            )
                        })
                    }
                }
                "advocacy_candidate" => {
                    let promoter = int("nps_latest").is_some_and(|n| n as f64 >= param("advocacy_min_nps"));
                    let calm = int("open_tickets_sev1") == Some(0) && int("open_tickets_sev2") == Some(0);
                    (promoter && calm && health.band == Some(Band::Green)).then(|| {
                        (
                            "a promoter with green health and no open sev-1/2".to_owned(),
                            ev(&["nps_latest", "open_tickets_sev1", "open_tickets_sev2"]),
                        )
                    })
                }
                _ => None,
            },
        };
        if let Some((reason, evidence)) = fired {
            out.push(Firing {
                id: moment.id.clone(),
                severity: moment.severity.as_str().to_owned(),
                owner: moment.owner.clone(),
                play: moment.play.clone(),
                reason,
                evidence,
            });
        }
    }
    out.sort_by(|a, b| b.severity_rank().cmp(&a.severity_rank()).then(a.id.cmp(&b.id)));
    out
}

fn champion_change(
    ctx: &Ctx<'_>,
    m: &Metrics<'_, '_>,
    inactive_days: i32,
) -> Option<(String, BTreeMap<String, Option<Val>>)> {
    let t = ctx.as_of;
    let champions = ctx.h.contacts.iter().filter(|c| c.role.as_str() == "champion");
    for c in champions {
        if let Some(end) = c.active_to.map(dn)
            && end <= t
            && t - end < 30
        {
            let present = m.get("champion_present");
            return Some((
                format!("champion {} left on {}", c.name, date(end)),
                BTreeMap::from([("champion_present".to_owned(), present)]),
            ));
        }
    }
    // The champion went quiet while colleagues stayed active.
    let colleagues_active = matches!(m.get("active_users_7d"), Some(Val::Int(n)) if n > 0);
    for c in ctx
        .h
        .contacts
        .iter()
        .filter(|c| c.role.as_str() == "champion" && c.active_to.is_none_or(|e| dn(e) > t))
    {
        let Some(uid) = ctx.h.users.iter().find(|(_, ext)| ext == c.id.as_str()).map(|(id, _)| *id) else {
            continue;
        };
        let was_active = ctx.user_active(uid, t - 90, t - inactive_days);
        if colleagues_active && was_active && !ctx.user_active(uid, t - inactive_days + 1, t) {
            return Some((
                format!(
                    "champion {} has had no activity for {inactive_days} days while colleagues stayed active",
                    c.name
                ),
                BTreeMap::from([("active_users_7d".to_owned(), m.get("active_users_7d"))]),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
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
