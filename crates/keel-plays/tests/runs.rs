//! Play runs on hand-built account states: triggers, holdouts, cooldowns,
//! every governance rule type, approvals, waits, branches and outcomes.

#![allow(clippy::unwrap_used)] // fixture helpers outside #[test] functions

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeZone, Utc};
use keel_core::{Account, Contact, Date, ExternalId, Label, SurveyKind, SurveyResponse, Timestamp};
use keel_engine::{AccountHistory, AccountState, Band, Firing, Health, Val};
use keel_journey::Journey;
use keel_plays::*;

const JOURNEY: &str = r#"
[journey]
name = "fixture"
core_features = ["report_viewed"]

[first_value]
when = "active_users_28d >= 1"

[[segments]]
id = "enterprise"
when = 'account.tier == "enterprise"'
touch = "high_touch"

[[segments]]
id = "smb"
when = "true"
touch = "tech_touch"

[[stages]]
id = "onboarding"
entry = "contract_start"
exit = "first_value_reached"
watch = "ttv_days"
owner = "csm"
target_days = 30

[[moments]]
id = "usage_cliff"
detector = "usage_cliff"
owner = "csm"
severity = "high"
play = "recover"

[[moments]]
id = "expansion_intent"
detector = "expansion_intent"
owner = "account_manager"
severity = "low"
play = "upsell"

[health]
bands = { red = 40.0, yellow = 70.0 }
[[health.components]]
id = "usage"
metric = "active_users_28d"
weight = 1.0
curve = [[0.0, 0.0], [10.0, 100.0]]

[owners]
support_lead = "support-queue"

[governance]
contact_budget = { touches = 1, days = 7 }
quiet_hours = { from = "19:00", to = "08:00" }
default_timezone = "UTC"

[[governance.suppress]]
id = "no_upsell_in_pain"
play_types = ["opportunity"]
when = 'health_band == "red" || open_tickets_sev1 > 0 || days_since_detractor < 30'

[[governance.approval]]
id = "big_accounts"
when = "arr >= 100000.0"
approver = "cs_leader"

[[plays]]
id = "recover"
type = "risk"
trigger = { moment = "usage_cliff" }
holdout_pct = 0
cooldown_days = 30
outcome = { when = "usage_change_pct > -10.0", within_days = 14 }

[[plays.steps]]
kind = "task"
title = "Usage fell at {{ account.name }} ({{ metrics.usage_change_pct | round }}%)"
description = "Owner {{ owner.name }}, due {{ due_date }}"
due_days = 3
priority = "high"

[[plays.steps]]
kind = "wait"
days = 7
until = "usage_change_pct > -10.0"

[[plays.steps]]
kind = "branch"
when = "usage_change_pct > -10.0"
goto = "end"

[[plays.steps]]
kind = "email"
to = "champion"
subject = "Can we help, {{ contact.name }}?"
body = "Activity at {{ account.name }} dropped."

[[plays.steps]]
kind = "task"
title = "Escalate {{ account.name }}"
owner = "support_lead"

[[plays]]
id = "upsell"
type = "opportunity"
trigger = { moment = "expansion_intent" }
audience = { segments = ["enterprise"] }
holdout_pct = 0

[[plays.steps]]
kind = "task"
title = "Expansion at {{ account.name }}"

[[plays]]
id = "nudge"
type = "activity"
trigger = { when = "core_features_weekly <= 1" }
holdout_pct = 30
cooldown_days = 10
outcome = { when = "core_features_weekly >= 3", within_days = 14 }

[[plays.steps]]
kind = "email"
to = "admin"
subject = "Tips"
body = "Hi {{ contact.name }}"
"#;

fn journey() -> Journey {
    keel_journey::check("fixture.toml", JOURNEY)
        .unwrap_or_else(|d| panic!("{}", d.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")))
}

fn day(d: u32) -> Date {
    NaiveDate::from_ymd_opt(2026, 3, 1).unwrap() + chrono::Days::new(u64::from(d))
}

/// Noon UTC on day `d` (outside the quiet hours in UTC).
fn noon(d: u32) -> Timestamp {
    Utc.from_utc_datetime(&day(d).and_hms_opt(12, 0, 0).unwrap())
}

struct World {
    history: AccountHistory,
}

fn world(id: &str, tier: &str) -> World {
    let mut attributes = BTreeMap::new();
    attributes.insert("tier".to_owned(), serde_json::json!(tier));
    let account = Account {
        id: ExternalId::parse(id).unwrap(),
        name: format!("Account {id}"),
        attributes,
        owner: Some("casey@vendor.example".to_owned()),
        parent: None,
        created: day(0),
    };
    let mut history = AccountHistory::new(account);
    history.contracts.push(keel_core::Contract {
        id: ExternalId::parse(&format!("{id}-line")).unwrap(),
        account: ExternalId::parse(id).unwrap(),
        product: Label::parse("platform").unwrap(),
        start: day(0),
        end: None,
        mrr: keel_core::Money::parse("1000", "USD").unwrap(),
        seats: 10,
        billing_period: keel_core::BillingPeriod::Monthly,
    });
    for (role, name) in [("champion", "Chris"), ("admin", "Ada")] {
        history.contacts.push(Contact {
            id: ExternalId::parse(&format!("{id}-{role}")).unwrap(),
            account: ExternalId::parse(id).unwrap(),
            email: format!("{}@{id}.example", name.to_lowercase()),
            name: name.to_owned(),
            role: Label::parse(role).unwrap(),
            active_from: day(0),
            active_to: None,
        });
    }
    World { history }
}

/// The facts of a day: `metrics` as given, `moments` firing, a band and segment.
fn facts(
    w: &World,
    j: &Journey,
    d: u32,
    segment: &str,
    band: Band,
    metrics: &[(&str, Val)],
    moments: &[&str],
) -> Facts {
    let state = AccountState {
        account: w.history.account.id.to_string(),
        as_of: day(d),
        segment: Some(segment.to_owned()),
        lines: Vec::new(),
        health: Health {
            score: Some(match band {
                Band::Red => 20.0,
                Band::Yellow => 50.0,
                Band::Green => 90.0,
            }),
            band: Some(band),
            coverage: 1.0,
            uncertain: false,
            components: Vec::new(),
        },
        moments: moments
            .iter()
            .map(|m| Firing {
                id: (*m).to_owned(),
                severity: "high".into(),
                owner: "csm".into(),
                play: None,
                reason: format!("{m} detected"),
                evidence: BTreeMap::from([("usage_change_pct".to_owned(), Some(Val::Double(-45.0)))]),
            })
            .collect(),
        metrics: metrics.iter().map(|(k, v)| ((*k).to_owned(), Some(*v))).collect(),
    };
    Facts::new(j, &w.history, state, &[])
}

fn decisions(list: &[Decision]) -> Vec<&str> {
    list.iter().map(|d| d.decision.as_str()).collect()
}

const SMALL: [(&str, Val); 3] = [
    ("mrr", Val::Double(1000.0)),
    ("usage_change_pct", Val::Double(-45.0)),
    ("open_tickets_sev1", Val::Int(0)),
];

#[test]
fn a_moment_triggers_once_while_it_keeps_firing() {
    let j = journey();
    let w = world("a1", "smb");
    let f = facts(&w, &j, 1, "smb", Band::Yellow, &SMALL, &["usage_cliff"]);
    let first = occurrences(&j, &f, &Memo::default());
    let recover: Vec<&Occurrence> = first.iter().filter(|o| o.play == "recover").collect();
    assert_eq!(recover.len(), 1);
    assert_eq!(recover[0].key("a1"), format!("a1/recover/moment/{}", day(1)));
    assert_eq!(recover[0].evidence["usage_change_pct"], serde_json::json!(-45.0));

    let memo = Memo { as_of: Some(day(1)), holding: holding(&j, &f) };
    assert!(memo.holding.contains("moment:usage_cliff"));
    let f2 = facts(&w, &j, 2, "smb", Band::Yellow, &SMALL, &["usage_cliff"]);
    assert!(
        occurrences(&j, &f2, &memo).iter().all(|o| o.play != "recover"),
        "still firing: no new occurrence"
    );

    // It stops, then fires again: a new occurrence.
    let f3 = facts(&w, &j, 3, "smb", Band::Yellow, &SMALL, &[]);
    let memo = Memo { as_of: Some(day(3)), holding: holding(&j, &f3) };
    let f4 = facts(&w, &j, 4, "smb", Band::Yellow, &SMALL, &["usage_cliff"]);
    assert_eq!(occurrences(&j, &f4, &memo).iter().filter(|o| o.play == "recover").count(), 1);
}

#[test]
fn no_play_starts_for_an_account_without_a_line_in_force() {
    let j = journey();
    let mut w = world("gone", "smb");
    w.history.contracts[0].end = Some(day(1));
    let f = facts(&w, &j, 2, "smb", Band::Red, &SMALL, &["usage_cliff"]);
    assert!(!f.customer);
    let occurrence = occurrences(&j, &f, &Memo::default()).into_iter().find(|o| o.play == "recover").unwrap();
    let play = j.plays.iter().find(|p| p.id == "recover").unwrap();
    let started = start(&j, play, &occurrence, &f, &Prior::default(), &mut Ledger::default(), noon(2));
    assert!(started.run.is_none() && started.decisions.is_empty(), "a churned account gets no run");

    // The same account on a day its line was in force does get one.
    let f = facts(&w, &j, 0, "smb", Band::Red, &SMALL, &["usage_cliff"]);
    let occurrence = occurrences(&j, &f, &Memo::default()).into_iter().find(|o| o.play == "recover").unwrap();
    let started = start(&j, play, &occurrence, &f, &Prior::default(), &mut Ledger::default(), noon(0));
    assert!(started.run.is_some());
}

#[test]
fn a_run_creates_its_task_then_waits_and_ends_early_when_usage_recovers() {
    let j = journey();
    let play = &j.plays[0];
    let w = world("a2", "smb");
    let f = facts(&w, &j, 1, "smb", Band::Yellow, &SMALL, &["usage_cliff"]);
    let occ = occurrences(&j, &f, &Memo::default()).into_iter().find(|o| o.play == "recover").unwrap();
    let mut ledger = Ledger::default();
    let started = start(&j, play, &occ, &f, &Prior::default(), &mut ledger, noon(1));
    let mut run = started.run.expect("a run starts");
    assert_eq!(decisions(&started.decisions), ["fired", "step", "step"]);
    assert_eq!(run.status, Status::Waiting { until: day(8) });
    let Effect::Task { title, description, owner, due, priority, .. } = &started.effects[0] else { panic!() };
    assert_eq!(title, "Usage fell at Account a2 (-45.0%)");
    assert_eq!(owner, "casey@vendor.example", "csm resolves to the account owner");
    assert_eq!(description, &format!("Owner casey@vendor.example, due {}", day(4)));
    assert_eq!((*due, priority.as_str()), (day(4), "high"));
    assert!(started.decisions.iter().all(|d| d.journey_version == j.version));

    // Day 3: still down — keeps waiting, nothing new.
    let f3 = facts(&w, &j, 3, "smb", Band::Yellow, &SMALL, &[]);
    let (effects, log) = advance(&j, &mut run, &f3, &mut ledger, noon(3));
    assert!(effects.is_empty() && log.is_empty(), "{log:?}");
    // Day 5: usage back — the wait ends, the branch skips to the end, the outcome is met.
    let recovered = [("mrr", Val::Double(1000.0)), ("usage_change_pct", Val::Double(5.0))];
    let f5 = facts(&w, &j, 5, "smb", Band::Green, &recovered, &[]);
    let (effects, log) = advance(&j, &mut run, &f5, &mut ledger, noon(5));
    assert!(effects.is_empty());
    assert_eq!(decisions(&log), ["completed", "outcome_met"]);
    assert_eq!(run.status, Status::Completed);
    assert_eq!(run.outcome, Some(Outcome::Met { on: day(5) }));
}

#[test]
fn when_the_wait_runs_out_the_email_goes_then_the_escalation_task_to_the_owners_queue() {
    let j = journey();
    let w = world("a3", "smb");
    let f = facts(&w, &j, 1, "smb", Band::Yellow, &SMALL, &["usage_cliff"]);
    let occ = occurrences(&j, &f, &Memo::default()).into_iter().find(|o| o.play == "recover").unwrap();
    let mut ledger = Ledger::default();
    let mut run = start(&j, &j.plays[0], &occ, &f, &Prior::default(), &mut ledger, noon(1)).run.unwrap();
    let f8 = facts(&w, &j, 8, "smb", Band::Yellow, &SMALL, &[]);
    let (effects, log) = advance(&j, &mut run, &f8, &mut ledger, noon(8));
    assert_eq!(decisions(&log), ["queued", "step", "completed"]);
    let Effect::Email { to, subject, customer_facing, .. } = &effects[0] else { panic!("{effects:?}") };
    assert_eq!(to.iter().map(|r| r.email.as_str()).collect::<Vec<_>>(), ["chris@a3.example"]);
    assert_eq!(subject, "Can we help, Chris?");
    assert!(customer_facing);
    let Effect::Task { owner, .. } = &effects[1] else { panic!() };
    assert_eq!(owner, "support-queue", "support_lead comes from [owners]");
    assert_eq!(ledger.touches, [day(8)], "the send counts against the contact budget");
    // The outcome window (14 days) closes without recovery.
    let f15 = facts(&w, &j, 15, "smb", Band::Yellow, &SMALL, &[]);
    let (_, log) = advance(&j, &mut run, &f15, &mut ledger, noon(15));
    assert_eq!(decisions(&log), ["outcome_missed"]);
    assert_eq!(run.outcome, Some(Outcome::Missed));
}

#[test]
fn the_contact_budget_defers_a_send_once_and_releases_it_when_the_window_passes() {
    let j = journey();
    // A CSM emailed on day 2: the nudge on day 4 must wait until day 9.
    let mut ledger = Ledger { touches: vec![day(2)] };
    let account = (0..200).map(|i| format!("acct-{i}")).find(|a| !held_out(a, "nudge", 30.0)).unwrap();
    let w = world(&account, "smb");
    let f = facts(&w, &j, 4, "smb", Band::Green, &[("core_features_weekly", Val::Int(0))], &[]);
    let occ = occurrences(&j, &f, &Memo::default()).into_iter().find(|o| o.play == "nudge").unwrap();
    let started = start(&j, &j.plays[2], &occ, &f, &Prior::default(), &mut ledger, noon(4));
    let mut run = started.run.unwrap();
    assert_eq!(run.status, Status::Deferred { reason: "budget".into() });
    assert_eq!(decisions(&started.decisions), ["fired", "deferred"]);
    assert!(started.decisions[1].detail.contains("1 customer-facing touch(es) in the last 7 days"));
    for d in 5..=8 {
        let f = facts(&w, &j, d, "smb", Band::Green, &[], &[]);
        let (effects, log) = advance(&j, &mut run, &f, &mut ledger, noon(d));
        assert!(effects.is_empty() && log.is_empty(), "day {d}: deferred once, logged once: {log:?}");
    }
    let f9 = facts(&w, &j, 9, "smb", Band::Green, &[], &[]);
    let (effects, log) = advance(&j, &mut run, &f9, &mut ledger, noon(9));
    assert_eq!(decisions(&log), ["queued", "completed"]);
    assert!(matches!(&effects[0], Effect::Email { to, .. } if to[0].name == "Ada"));
}

#[test]
fn quiet_hours_follow_the_accounts_timezone() {
    let j = journey();
    let account = (0..200).map(|i| format!("tz-{i}")).find(|a| !held_out(a, "nudge", 30.0)).unwrap();
    let mut w = world(&account, "smb");
    w.history.account.attributes.insert("timezone".into(), serde_json::json!("America/Los_Angeles"));
    let f = facts(&w, &j, 4, "smb", Band::Green, &[("core_features_weekly", Val::Int(0))], &[]);
    let occ = occurrences(&j, &f, &Memo::default()).into_iter().find(|o| o.play == "nudge").unwrap();
    let mut ledger = Ledger::default();
    // 12:00 UTC is 04:00 in Los Angeles (PST): quiet.
    let started = start(&j, &j.plays[2], &occ, &f, &Prior::default(), &mut ledger, noon(4));
    let mut run = started.run.unwrap();
    assert_eq!(run.status, Status::Deferred { reason: "quiet_hours".into() });
    // 18:00 UTC is 10:00 there: sent.
    let evening = Utc.from_utc_datetime(&day(4).and_hms_opt(18, 0, 0).unwrap());
    let (effects, log) = advance(&j, &mut run, &f, &mut ledger, evening);
    assert_eq!(decisions(&log), ["queued", "completed"]);
    assert_eq!(effects.len(), 1);
}

#[test]
fn suppression_rules_stop_an_upsell_to_an_account_in_pain() {
    let j = journey();
    let upsell = &j.plays[1];
    let w = world("a5", "enterprise");
    let calm = [("mrr", Val::Double(1000.0)), ("open_tickets_sev1", Val::Int(0))];
    let sev1 = [("mrr", Val::Double(1000.0)), ("open_tickets_sev1", Val::Int(1))];
    type Case<'a> = (&'a str, Band, &'a [(&'a str, Val)], Option<&'a str>);
    let cases: [Case<'_>; 3] = [
        ("red band", Band::Red, &calm, Some("no_upsell_in_pain")),
        ("open sev-1", Band::Green, &sev1, Some("no_upsell_in_pain")),
        ("healthy", Band::Green, &calm, None),
    ];
    for (what, band, metrics, rule) in cases {
        let f = facts(&w, &j, 1, "enterprise", band, metrics, &["expansion_intent"]);
        let occ = occurrences(&j, &f, &Memo::default()).into_iter().find(|o| o.play == "upsell").unwrap();
        let started = start(&j, upsell, &occ, &f, &Prior::default(), &mut Ledger::default(), noon(1));
        let run = started.run.unwrap();
        match rule {
            Some(rule) => {
                assert_eq!(run.status, Status::Suppressed { rule: rule.into() }, "{what}");
                assert!(started.effects.is_empty(), "{what}: no task");
                let d = &started.decisions[0];
                assert_eq!((d.decision.as_str(), d.rule.as_deref()), ("suppressed", Some(rule)), "{what}");
                assert!(d.inputs.contains_key("health_band") && d.inputs.contains_key("open_tickets_sev1"));
            }
            None => assert_eq!(run.status, Status::Completed, "{what}"),
        }
    }

    // A detractor NPS 10 days ago suppresses it too.
    let mut w = world("a6", "enterprise");
    w.history.surveys.push(SurveyResponse {
        id: ExternalId::parse("s1").unwrap(),
        account: ExternalId::parse("a6").unwrap(),
        contact: None,
        kind: SurveyKind::Nps,
        score: 4,
        comment: None,
        responded: noon(20),
    });
    let f = facts(&w, &j, 30, "enterprise", Band::Green, &calm, &["expansion_intent"]);
    assert_eq!(f.days_since_detractor, 10);
    let occ = occurrences(&j, &f, &Memo::default()).into_iter().find(|o| o.play == "upsell").unwrap();
    let run = start(&j, upsell, &occ, &f, &Prior::default(), &mut Ledger::default(), noon(30)).run.unwrap();
    assert_eq!(run.status, Status::Suppressed { rule: "no_upsell_in_pain".into() });

    // Outside the audience (an smb account): nothing starts, nothing is logged.
    let w = world("a7", "smb");
    let f = facts(&w, &j, 1, "smb", Band::Green, &calm, &["expansion_intent"]);
    let occ = occurrences(&j, &f, &Memo::default()).into_iter().find(|o| o.play == "upsell").unwrap();
    let started = start(&j, upsell, &occ, &f, &Prior::default(), &mut Ledger::default(), noon(1));
    assert!(started.run.is_none() && started.decisions.is_empty());
}

#[test]
fn a_sensitive_send_waits_in_the_outbox_until_a_human_approves_or_rejects_it() {
    let j = journey();
    let big = [("mrr", Val::Double(10_000.0)), ("usage_change_pct", Val::Double(-45.0))];
    for approve_it in [true, false] {
        let w = world(if approve_it { "b1" } else { "b2" }, "smb");
        let f = facts(&w, &j, 1, "smb", Band::Yellow, &big, &["usage_cliff"]);
        let occ = occurrences(&j, &f, &Memo::default()).into_iter().find(|o| o.play == "recover").unwrap();
        let mut ledger = Ledger::default();
        let mut run = start(&j, &j.plays[0], &occ, &f, &Prior::default(), &mut ledger, noon(1)).run.unwrap();
        let f8 = facts(&w, &j, 8, "smb", Band::Yellow, &big, &[]);
        let (effects, log) = advance(&j, &mut run, &f8, &mut ledger, noon(8));
        assert_eq!(decisions(&log), ["held_for_approval"]);
        assert_eq!(log[0].rule.as_deref(), Some("big_accounts"));
        let Effect::Outbox { send, approver, .. } = &effects[0] else { panic!("{effects:?}") };
        assert_eq!(approver, "cs_leader");
        assert!(matches!(send.as_ref(), Effect::Email { subject, .. } if subject == "Can we help, Chris?"));
        assert!(ledger.touches.is_empty(), "nothing sent yet");
        // Evaluating again while it waits changes nothing.
        let (effects, log) = advance(&j, &mut run, &f8, &mut ledger, noon(8));
        assert!(effects.is_empty() && log.iter().all(|d| d.decision.starts_with("outcome")));
        if approve_it {
            let (effects, log) = approve(&j, &mut run, &f8, &mut ledger, "lee@vendor.example", noon(8));
            assert_eq!(decisions(&log), ["approved", "queued", "step", "completed"]);
            assert_eq!(log[0].by.as_deref(), Some("lee@vendor.example"));
            assert!(matches!(effects[0], Effect::Email { .. }));
        } else {
            let log = cancel(&j, &mut run, "lee@vendor.example", "not during the escalation", noon(8));
            assert_eq!(decisions(&log), ["rejected"]);
            assert!(matches!(run.status, Status::Cancelled { .. }));
        }
    }
}

#[test]
fn an_open_run_or_the_cooldown_keeps_a_second_occurrence_from_starting_anything() {
    let j = journey();
    let w = world("c1", "smb");
    let f = facts(&w, &j, 20, "smb", Band::Yellow, &SMALL, &["usage_cliff"]);
    let occ = occurrences(&j, &f, &Memo::default()).into_iter().find(|o| o.play == "recover").unwrap();
    let open = Prior { open: true, last_started: Some(day(15)) };
    let s = start(&j, &j.plays[0], &occ, &f, &open, &mut Ledger::default(), noon(20));
    assert!(s.run.is_none() && s.decisions.is_empty() && s.effects.is_empty());
    let cooling = Prior { open: false, last_started: Some(day(1)) };
    let s = start(&j, &j.plays[0], &occ, &f, &cooling, &mut Ledger::default(), noon(20));
    assert!(s.run.is_none() && s.effects.is_empty());
    assert_eq!(decisions(&s.decisions), ["cooldown"]);
    let cooled = Prior { open: false, last_started: Some(day(20) - chrono::Days::new(30)) };
    assert!(start(&j, &j.plays[0], &occ, &f, &cooled, &mut Ledger::default(), noon(20)).run.is_some());
}

#[test]
fn an_email_to_a_role_nobody_holds_fails_the_run() {
    let j = journey();
    let account = (0..200).map(|i| format!("n-{i}")).find(|a| !held_out(a, "nudge", 30.0)).unwrap();
    let mut w = world(&account, "smb");
    w.history.contacts.retain(|c| c.role.as_str() != "admin");
    let f = facts(&w, &j, 4, "smb", Band::Green, &[("core_features_weekly", Val::Int(0))], &[]);
    let occ = occurrences(&j, &f, &Memo::default()).into_iter().find(|o| o.play == "nudge").unwrap();
    let s = start(&j, &j.plays[2], &occ, &f, &Prior::default(), &mut Ledger::default(), noon(4));
    assert_eq!(
        s.run.unwrap().status,
        Status::Failed { reason: "no active contact holds the role admin".into() }
    );
}

#[test]
fn holdouts_are_deterministic_and_near_the_plays_share() {
    let j = journey();
    let accounts: Vec<String> = (0..20_000).map(|i| format!("acct-{i:05}")).collect();
    let held = accounts.iter().filter(|a| held_out(a, "nudge", 30.0)).count();
    let share = held as f64 / accounts.len() as f64;
    assert!((share - 0.30).abs() < 0.015, "{share}");
    assert!(accounts.iter().all(|a| held_out(a, "nudge", 30.0) == held_out(a, "nudge", 30.0)));
    // Assignment is per (account, play): other plays hold out other accounts.
    let both = accounts.iter().filter(|a| held_out(a, "nudge", 30.0) && held_out(a, "other", 30.0)).count();
    assert!((both as f64 / accounts.len() as f64 - 0.09).abs() < 0.015);
    assert!(accounts.iter().all(|a| !held_out(a, "x", 0.0)));

    // A held-out run runs no step, and its outcome is still judged.
    let account = accounts.iter().find(|a| held_out(a, "nudge", 30.0)).unwrap();
    let w = world(account, "smb");
    let f = facts(&w, &j, 4, "smb", Band::Green, &[("core_features_weekly", Val::Int(0))], &[]);
    let occ = occurrences(&j, &f, &Memo::default()).into_iter().find(|o| o.play == "nudge").unwrap();
    let s = start(&j, &j.plays[2], &occ, &f, &Prior::default(), &mut Ledger::default(), noon(4));
    let mut run = s.run.unwrap();
    assert_eq!(run.status, Status::Holdout);
    assert!(s.effects.is_empty());
    assert_eq!(decisions(&s.decisions), ["holdout"]);
    let later = facts(&w, &j, 10, "smb", Band::Green, &[("core_features_weekly", Val::Int(3))], &[]);
    let (effects, log) = advance(&j, &mut run, &later, &mut Ledger::default(), noon(10));
    assert!(effects.is_empty());
    assert_eq!(decisions(&log), ["outcome_met"]);
    assert_eq!(run.status, Status::Holdout);
}
