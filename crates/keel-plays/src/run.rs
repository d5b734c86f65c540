//! A play run: one per (account, play, trigger occurrence), a state machine
//! advanced on every evaluation of its account, under governance.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, TimeZone, Timelike};
use keel_core::{Date, Timestamp};
use keel_journey::{Journey, Play, Rule, Step};
use serde::{Deserialize, Serialize};

use crate::facts::{Facts, Recipient};
use crate::render;
use crate::trigger::Occurrence;

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Held out: no step runs; the outcome is still judged.
    Holdout,
    /// A suppression rule stopped it before any step ran.
    Suppressed {
        /// The rule.
        rule: String,
    },
    /// Running; the next step is `step`.
    Running,
    /// Waiting at step `step` until `until` (or its condition).
    Waiting {
        /// The last day it waits.
        until: Date,
    },
    /// A customer-facing step waits for the contact budget or quiet hours to allow it.
    Deferred {
        /// Why: `budget` or `quiet_hours`.
        reason: String,
    },
    /// A customer-facing step waits in the outbox for a human.
    AwaitingApproval {
        /// The approval rule.
        rule: String,
        /// The approving role.
        approver: String,
    },
    /// Every step ran.
    Completed,
    /// Stopped: rejected, suppressed at a later step, or cancelled by hand.
    Cancelled {
        /// Why.
        reason: String,
    },
    /// A step could not run.
    Failed {
        /// Why.
        reason: String,
    },
}

impl Status {
    /// Whether the run may still do something.
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            Self::Running | Self::Waiting { .. } | Self::Deferred { .. } | Self::AwaitingApproval { .. }
        )
    }

    /// The status name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Holdout => "holdout",
            Self::Suppressed { .. } => "suppressed",
            Self::Running => "running",
            Self::Waiting { .. } => "waiting",
            Self::Deferred { .. } => "deferred",
            Self::AwaitingApproval { .. } => "awaiting_approval",
            Self::Completed => "completed",
            Self::Cancelled { .. } => "cancelled",
            Self::Failed { .. } => "failed",
        }
    }
}

/// Whether the play's expected outcome happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The window is still open.
    Pending {
        /// The last day of the window.
        due: Date,
    },
    /// It held on this day.
    Met {
        /// The day.
        on: Date,
    },
    /// The window closed without it.
    Missed,
}

/// One run of a play for one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// `account/play/trigger kind/day`: the same occurrence never starts two runs.
    pub key: String,
    /// Account external id.
    pub account: String,
    /// Play id.
    pub play: String,
    /// What started it.
    pub trigger: Occurrence,
    /// The day it started.
    pub started: Date,
    /// Where it stands.
    pub status: Status,
    /// The next step (index into the play's steps).
    pub step: usize,
    /// Steps a human approved.
    pub approved: BTreeSet<usize>,
    /// The expected outcome (None: the play defines none).
    pub outcome: Option<Outcome>,
}

/// Something the runner must do outside the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Create a task.
    Task {
        /// Step index.
        step: usize,
        /// What it is for.
        kind: String,
        /// Title.
        title: String,
        /// Description.
        description: String,
        /// Role.
        role: String,
        /// Who.
        owner: String,
        /// Due day.
        due: Date,
        /// Priority.
        priority: String,
        /// Touchpoint kind logged when done.
        touchpoint: String,
    },
    /// Send an email (governance has passed).
    Email {
        /// Step index.
        step: usize,
        /// Recipients.
        to: Vec<Recipient>,
        /// Sending role and who holds it.
        from: String,
        /// Subject.
        subject: String,
        /// Body.
        body: String,
        /// Whether it reaches the customer (counts against the budget).
        customer_facing: bool,
    },
    /// POST a webhook.
    Webhook {
        /// Step index.
        step: usize,
        /// URL.
        url: String,
        /// JSON body.
        body: String,
        /// Environment variable of the signing secret.
        secret_env: Option<String>,
        /// Whether it reaches the customer.
        customer_facing: bool,
    },
    /// Log a touchpoint.
    Touchpoint {
        /// Step index.
        step: usize,
        /// Kind.
        kind: String,
        /// Note.
        note: String,
    },
    /// Open a CS-sourced opportunity.
    Opportunity {
        /// Step index.
        step: usize,
        /// `expansion` or `cross_sell`.
        kind: String,
        /// The account's currency (the amount is for sales to size).
        currency: String,
    },
    /// Put a rendered customer-facing step in the approval outbox.
    Outbox {
        /// Step index.
        step: usize,
        /// The step as it would be sent (an [`Effect::Email`] or [`Effect::Webhook`]).
        send: Box<Effect>,
        /// The approving role.
        approver: String,
        /// The rule that asked for approval.
        rule: String,
    },
}

/// An entry of the immutable play audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The run's key.
    pub run: String,
    /// Account.
    pub account: String,
    /// Play.
    pub play: String,
    /// When.
    pub at: Timestamp,
    /// `fired`, `holdout`, `cooldown`, `suppressed`, `held_for_approval`, `approved`, `rejected`,
    /// `deferred`, `step`, `queued` (a send handed to delivery), `completed`, `cancelled`, `failed`,
    /// `outcome_met`, `outcome_missed`; delivery adds `sent`, `failed`, `dead_lettered`, `replayed`.
    pub decision: String,
    /// The step it concerns.
    pub step: Option<usize>,
    /// The governance rule it applied.
    pub rule: Option<String>,
    /// Who (approvals, rejections, manual cancels).
    pub by: Option<String>,
    /// In words.
    pub detail: String,
    /// The journey version.
    pub journey_version: String,
    /// The values it decided on.
    pub inputs: BTreeMap<String, serde_json::Value>,
}

/// What governance needs besides the account's facts.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Customer-facing touches already made: play sends and CSM-logged emails.
    pub touches: Vec<Date>,
}

/// What the caller knows of earlier runs of one play for one account.
#[derive(Debug, Clone, Default)]
pub struct Prior {
    /// An open run exists.
    pub open: bool,
    /// The latest day a run of this play started (for the cooldown).
    pub last_started: Option<Date>,
}

/// The result of an occurrence.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    /// The new run (None: nothing started — outside the audience, a run is open, or cooling down).
    pub run: Option<Run>,
    /// What the runner must do.
    pub effects: Vec<Effect>,
    /// Audit log entries.
    pub decisions: Vec<Decision>,
}

pub use keel_core::held_out;

struct Ctx<'a> {
    journey: &'a Journey,
    play: &'a Play,
    facts: &'a Facts,
    now: Timestamp,
    effects: Vec<Effect>,
    decisions: Vec<Decision>,
}

impl Ctx<'_> {
    fn log(&mut self, run: &Run, decision: &str, step: Option<usize>, rule: Option<&Rule>, detail: String) {
        self.decisions.push(Decision {
            run: run.key.clone(),
            account: run.account.clone(),
            play: run.play.clone(),
            at: self.now,
            decision: decision.to_owned(),
            step,
            rule: rule.map(|r| r.id.clone()),
            by: None,
            detail,
            journey_version: self.journey.version.clone(),
            inputs: rule.map(|r| self.facts.inputs(&r.when)).unwrap_or_default(),
        });
    }

    fn rule<'r>(&self, rules: &'r [Rule]) -> Option<&'r Rule> {
        rules.iter().find(|r| r.covers(self.play) && self.facts.holds(&r.when) == Some(true))
    }
}

/// Starts a run for an occurrence, if the play applies, and runs its first steps.
pub fn start(
    journey: &Journey,
    play: &Play,
    occurrence: &Occurrence,
    facts: &Facts,
    prior: &Prior,
    ledger: &mut Ledger,
    now: Timestamp,
) -> Started {
    let none = Started { run: None, effects: Vec::new(), decisions: Vec::new() };
    if !facts.customer {
        return none;
    }
    let segment = facts.state.segment.as_deref().unwrap_or("");
    if !play.segments.is_empty() && !play.segments.iter().any(|s| s == segment) {
        return none;
    }
    if let Some(a) = &play.audience
        && facts.holds(a) != Some(true)
    {
        return none;
    }
    if prior.open {
        return none;
    }
    let account = facts.account.id.to_string();
    let today = facts.as_of();
    let mut run = Run {
        key: occurrence.key(&account),
        account: account.clone(),
        play: play.id.clone(),
        trigger: occurrence.clone(),
        started: today,
        status: Status::Running,
        step: 0,
        approved: BTreeSet::new(),
        outcome: play.outcome.as_ref().map(|o| Outcome::Pending {
            due: today.checked_add_days(Days::new(u64::from(o.within_days))).unwrap_or(today),
        }),
    };
    let mut s = Ctx { journey, play, facts, now, effects: Vec::new(), decisions: Vec::new() };
    if let Some(last) = prior.last_started
        && (today - last).num_days() < i64::from(play.cooldown_days)
    {
        let detail = format!("cooling down: last run started {last}, cooldown {} days", play.cooldown_days);
        s.log(&run, "cooldown", None, None, detail);
        return Started { run: None, effects: Vec::new(), decisions: s.decisions };
    }
    if held_out(&account, &play.id, play.holdout_pct) {
        run.status = Status::Holdout;
        s.log(
            &run,
            "holdout",
            None,
            None,
            format!("held out ({}% of accounts): {}", play.holdout_pct, occurrence.detail),
        );
    } else if let Some(rule) = s.rule(&journey.governance.suppress) {
        run.status = Status::Suppressed { rule: rule.id.clone() };
        run.outcome = None;
        s.log(&run, "suppressed", None, Some(rule), format!("suppressed by {}: {}", rule.id, rule.reason));
    } else {
        s.log(&run, "fired", None, None, occurrence.detail.clone());
        advance_with(&mut s, &mut run, ledger);
    }
    Started { run: Some(run), effects: s.effects, decisions: s.decisions }
}

/// Advances an open run on a new evaluation of its account; judges its outcome.
pub fn advance(
    journey: &Journey,
    run: &mut Run,
    facts: &Facts,
    ledger: &mut Ledger,
    now: Timestamp,
) -> (Vec<Effect>, Vec<Decision>) {
    let Some(play) = journey.plays.iter().find(|p| p.id == run.play) else {
        return (Vec::new(), Vec::new());
    };
    let mut s = Ctx { journey, play, facts, now, effects: Vec::new(), decisions: Vec::new() };
    if run.status.is_open() && !matches!(run.status, Status::AwaitingApproval { .. }) {
        advance_with(&mut s, run, ledger);
    }
    judge(&mut s, run);
    (s.effects, s.decisions)
}

/// A human approved the step waiting in the outbox: it runs (still subject to
/// suppression, quiet hours and the budget), and the run goes on.
pub fn approve(
    journey: &Journey,
    run: &mut Run,
    facts: &Facts,
    ledger: &mut Ledger,
    by: &str,
    now: Timestamp,
) -> (Vec<Effect>, Vec<Decision>) {
    let Some(play) = journey.plays.iter().find(|p| p.id == run.play) else {
        return (Vec::new(), Vec::new());
    };
    let mut s = Ctx { journey, play, facts, now, effects: Vec::new(), decisions: Vec::new() };
    if let Status::AwaitingApproval { rule, .. } = &run.status {
        let rule = rule.clone();
        run.approved.insert(run.step);
        run.status = Status::Running;
        s.log(run, "approved", Some(run.step), None, format!("approved by {by} (rule {rule})"));
        if let Some(d) = s.decisions.last_mut() {
            d.by = Some(by.to_owned());
            d.rule = Some(rule);
        }
        advance_with(&mut s, run, ledger);
    }
    (s.effects, s.decisions)
}

/// A human rejected the step waiting in the outbox, or cancelled the run.
pub fn cancel(journey: &Journey, run: &mut Run, by: &str, reason: &str, now: Timestamp) -> Vec<Decision> {
    if !run.status.is_open() {
        return Vec::new();
    }
    let decision =
        if matches!(run.status, Status::AwaitingApproval { .. }) { "rejected" } else { "cancelled" };
    run.status = Status::Cancelled { reason: format!("{decision} by {by}: {reason}") };
    vec![Decision {
        run: run.key.clone(),
        account: run.account.clone(),
        play: run.play.clone(),
        at: now,
        decision: decision.to_owned(),
        step: Some(run.step),
        rule: None,
        by: Some(by.to_owned()),
        detail: reason.to_owned(),
        journey_version: journey.version.clone(),
        inputs: BTreeMap::new(),
    }]
}

fn judge(s: &mut Ctx<'_>, run: &mut Run) {
    let (Some(Outcome::Pending { due }), Some(o)) = (&run.outcome, &s.play.outcome) else { return };
    let today = s.facts.as_of();
    if today < run.started {
        return;
    }
    let due = *due;
    if today <= due && s.facts.holds(&o.when) == Some(true) {
        run.outcome = Some(Outcome::Met { on: today });
        let detail = format!(
            "{} held on {today}, {} days after the trigger",
            o.when.source,
            (today - run.started).num_days()
        );
        s.log(run, "outcome_met", None, None, detail);
    } else if today >= due {
        run.outcome = Some(Outcome::Missed);
        s.log(run, "outcome_missed", None, None, format!("{} did not hold by {due}", o.when.source));
    }
}

/// Minutes after local midnight of `now` in the account's timezone.
fn local_minutes(facts: &Facts, default_tz: &str, now: Timestamp) -> u16 {
    let tz_name = facts.account.attributes.get("timezone").and_then(|v| v.as_str()).unwrap_or(default_tz);
    let tz: chrono_tz::Tz = tz_name.parse().or_else(|_| default_tz.parse()).unwrap_or(chrono_tz::UTC);
    let local = tz.from_utc_datetime(&now.naive_utc());
    (local.hour() * 60 + local.minute()) as u16
}

fn quiet(journey: &Journey, facts: &Facts, now: Timestamp) -> bool {
    let Some((from, to)) = journey.governance.quiet_hours else { return false };
    let m = local_minutes(facts, &journey.governance.default_timezone, now);
    if from < to { m >= from && m < to } else { m >= from || m < to }
}

fn over_budget(journey: &Journey, facts: &Facts, ledger: &Ledger) -> Option<String> {
    let (touches, days) = journey.governance.contact_budget?;
    let today = facts.as_of();
    let since = today.checked_sub_days(Days::new(u64::from(days) - 1)).unwrap_or(today);
    let used = ledger.touches.iter().filter(|d| **d >= since && **d <= today).count();
    (used >= touches as usize)
        .then(|| format!("{used} customer-facing touch(es) in the last {days} days (budget {touches})"))
}

fn advance_with(s: &mut Ctx<'_>, run: &mut Run, ledger: &mut Ledger) {
    let today = s.facts.as_of();
    let steps = &s.play.steps;
    for _ in 0..=steps.len() * 2 {
        if let Status::Waiting { until } = run.status {
            let cond = match steps.get(run.step) {
                Some(Step::Wait { until: Some(c), .. }) => s.facts.holds(c) == Some(true),
                _ => false,
            };
            if today < until && !cond {
                return;
            }
            run.status = Status::Running;
            run.step += 1;
        }
        let Some(step) = steps.get(run.step) else {
            if run.status == Status::Running || matches!(run.status, Status::Deferred { .. }) {
                run.status = Status::Completed;
                s.log(run, "completed", None, None, format!("all {} steps ran", steps.len()));
            }
            return;
        };
        let k = run.step;
        match step {
            Step::Wait { days, .. } => {
                let until = today.checked_add_days(Days::new(u64::from(*days))).unwrap_or(today);
                run.status = Status::Waiting { until };
                s.log(run, "step", Some(k), None, format!("waiting until {until}"));
                // A wait whose condition already holds ends at once.
                continue;
            }
            Step::Branch { when, goto } => {
                if s.facts.holds(when) == Some(true) {
                    run.step = *goto;
                } else {
                    run.step += 1;
                }
                continue;
            }
            Step::Task { .. } | Step::LogTouchpoint { .. } | Step::Opportunity { .. } => {
                if let Some(effect) = render::effect(s.journey, s.play, run, k, step, s.facts) {
                    s.log(run, "step", Some(k), None, render::summary(&effect));
                    s.effects.push(effect);
                }
                run.step += 1;
                run.status = Status::Running;
                continue;
            }
            Step::Email { .. } | Step::Webhook { .. } => {
                let customer_facing = s.play.customer_facing;
                if customer_facing {
                    if let Some(rule) = s.rule(&s.journey.governance.suppress) {
                        run.status = Status::Cancelled { reason: format!("suppressed by {}", rule.id) };
                        run.outcome = None;
                        s.log(
                            run,
                            "suppressed",
                            Some(k),
                            Some(rule),
                            format!("suppressed by {}: {}", rule.id, rule.reason),
                        );
                        return;
                    }
                    if !run.approved.contains(&k)
                        && let Some(rule) = s.rule(&s.journey.governance.approval)
                    {
                        let approver = rule.approver.clone().unwrap_or_else(|| "cs_leader".into());
                        let Some(send) = render::effect(s.journey, s.play, run, k, step, s.facts) else {
                            return;
                        };
                        run.status =
                            Status::AwaitingApproval { rule: rule.id.clone(), approver: approver.clone() };
                        s.log(
                            run,
                            "held_for_approval",
                            Some(k),
                            Some(rule),
                            format!("waits for {approver}: {}", rule.reason),
                        );
                        s.effects.push(Effect::Outbox {
                            step: k,
                            send: Box::new(send),
                            approver,
                            rule: rule.id.clone(),
                        });
                        return;
                    }
                    let deferred = if quiet(s.journey, s.facts, s.now) {
                        Some(("quiet_hours", "quiet hours in the account's timezone".to_owned()))
                    } else {
                        over_budget(s.journey, s.facts, ledger).map(|why| ("budget", why))
                    };
                    if let Some((reason, detail)) = deferred {
                        let again = matches!(&run.status, Status::Deferred { reason: r } if r == reason);
                        run.status = Status::Deferred { reason: reason.to_owned() };
                        if !again {
                            s.log(run, "deferred", Some(k), None, detail);
                        }
                        return;
                    }
                }
                let Some(effect) = render::effect(s.journey, s.play, run, k, step, s.facts) else { return };
                if let Effect::Email { to, .. } = &effect
                    && to.is_empty()
                {
                    let Step::Email { to: role, .. } = step else { return };
                    let reason = format!("no active contact holds the role {role}");
                    run.status = Status::Failed { reason: reason.clone() };
                    s.log(run, "failed", Some(k), None, reason);
                    return;
                }
                if customer_facing {
                    ledger.touches.push(today);
                }
                s.log(run, "queued", Some(k), None, render::summary(&effect));
                s.effects.push(effect);
                run.step += 1;
                run.status = Status::Running;
            }
        }
    }
}
