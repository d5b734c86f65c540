//! One hand-built account and, for every built-in metric, the value worked
//! out by hand from it (the arithmetic is spelled out next to each row). The
//! fixture puts records just inside and just outside every window, a late
//! arrival that is not yet known on the evaluation date, and a survey of the
//! wrong kind, so an off-by-one or a leak changes a row.

use crate::common;

use keel_core::{
    Account, BillingPeriod, Contact, Contract, DayUsage, ExternalId, Label, Money, Severity, SurveyKind,
    SurveyResponse, Ticket, TicketStatus, Touchpoint, parse_date, parse_timestamp,
};
use keel_engine::{AccountHistory, Val, evaluate, metric_values};
use keel_journey::catalog::{BUILTIN_FAMILIES, BUILTIN_METRICS};

/// The evaluation date.
const AS_OF: &str = "2025-06-30";

fn id(s: &str) -> ExternalId {
    ExternalId::parse(s).expect("an id")
}

fn ts(s: &str) -> keel_core::Timestamp {
    parse_timestamp(&format!("{s}T12:00:00Z")).expect("a timestamp")
}

fn day(s: &str) -> keel_core::Date {
    parse_date(s).expect("a date")
}

fn contract(name: &str, start: &str, end: &str, mrr: &str, seats: u32) -> Contract {
    Contract {
        id: id(name),
        account: id("acme"),
        product: Label::parse("platform").expect("a label"),
        start: day(start),
        end: Some(day(end)),
        mrr: Money::parse_non_negative(mrr, "USD").expect("money"),
        seats,
        billing_period: BillingPeriod::Annual,
    }
}

fn ticket(n: usize, opened: &str, closed: Option<&str>, severity: u8) -> Ticket {
    Ticket {
        id: id(&format!("t{n}")),
        account: id("acme"),
        opened: ts(opened),
        closed: closed.map(ts),
        severity: Severity::try_from(severity).expect("a severity"),
        status: if closed.is_some() { TicketStatus::Closed } else { TicketStatus::Open },
        csat: None,
    }
}

fn survey(n: usize, kind: SurveyKind, score: u8, responded: &str) -> SurveyResponse {
    SurveyResponse {
        id: id(&format!("s{n}")),
        account: id("acme"),
        contact: None,
        kind,
        score,
        comment: None,
        responded: ts(responded),
    }
}

fn touchpoint(n: usize, kind: &str, occurred: &str) -> Touchpoint {
    Touchpoint {
        id: id(&format!("p{n}")),
        account: id("acme"),
        kind: Label::parse(kind).expect("a kind"),
        occurred: ts(occurred),
        owner: None,
        notes: None,
        outcome: None,
    }
}

fn champion(n: usize, from: &str, to: Option<&str>) -> Contact {
    Contact {
        id: id(&format!("k{n}")),
        account: id("acme"),
        email: format!("k{n}@acme.test"),
        name: format!("Champion {n}"),
        role: Label::parse("champion").expect("a role"),
        active_from: day(from),
        active_to: to.map(day),
    }
}

/// The account, and the plan with its event names interned.
fn fixture() -> (keel_engine::Plan, AccountHistory) {
    let mut names = common::Names::default();
    // Core features (the default journey's): report_viewed, task_completed,
    // dashboard_shared. `login` is not core.
    let (report, task, dashboard, login, workflow) = (
        names.id("report_viewed"),
        names.id("task_completed"),
        names.id("dashboard_shared"),
        names.id("login"),
        names.id("workflow_published"),
    );
    let usage = |d: &str, known: &str, users: &[u64], counts: &[(u64, u64)]| {
        let mut counts = counts.to_vec();
        counts.sort_unstable();
        DayUsage {
            day: day(d),
            known: day(known),
            events: counts.iter().map(|(_, n)| n).sum(),
            users: users.iter().map(|u| (*u, 1)).collect(),
            names: counts,
        }
    };
    let mut h = AccountHistory::new(Account {
        id: id("acme"),
        name: "Acme".into(),
        attributes: Default::default(),
        owner: None,
        parent: None,
        created: day("2024-12-01"),
    });
    h.contracts = vec![
        contract("c1", "2025-01-01", "2026-01-01", "100", 10),
        // An expansion 60 days ago: inside mrr_change_90d's window.
        contract("c2", "2025-05-01", "2026-05-01", "50", 5),
    ];
    h.usage = vec![
        // First value: 45 days after the first contract started.
        usage("2025-02-15", "2025-02-15", &[7], &[(workflow, 1)]),
        // 40 days ago: in the 28 days before the last 28, and in week 6 of 12.
        usage("2025-05-21", "2025-05-21", &[5], &[(login, 10)]),
        // 10 days ago: in the last 28 days, not the last 7.
        usage("2025-06-20", "2025-06-20", &[1, 4], &[(dashboard, 4)]),
        // 3 and 2 days ago: in the last 7 days.
        usage("2025-06-27", "2025-06-27", &[3], &[(task, 2)]),
        usage("2025-06-28", "2025-06-28", &[1, 2], &[(report, 3), (login, 2)]),
        // Yesterday's events, received tomorrow: unknown as of today.
        usage("2025-06-29", "2025-07-01", &[6], &[(report, 100)]),
    ];
    h.tickets = vec![
        ticket(1, "2025-06-20", None, 1),
        ticket(2, "2025-06-10", Some("2025-06-15"), 3),
        // Opened 31 days ago: outside tickets_30d, inside the baseline.
        ticket(3, "2025-05-30", Some("2025-06-02"), 2),
        ticket(4, "2025-06-29", None, 4),
    ];
    // Twelve more in the 180-day baseline (2024-12-03 ..= 2025-05-31).
    h.tickets.extend((0..12).map(|n| ticket(10 + n, "2025-01-10", Some("2025-01-11"), 4)));
    h.surveys = vec![
        survey(1, SurveyKind::Nps, 9, "2025-06-01"),
        survey(2, SurveyKind::Nps, 6, "2025-04-15"),
        survey(3, SurveyKind::Nps, 4, "2025-02-01"),
        // Not NPS: no NPS metric reads it.
        survey(4, SurveyKind::Csat, 2, "2025-06-25"),
    ];
    h.touchpoints = vec![
        // Before the first contract: not counted by touchpoints_<kind>.
        touchpoint(1, "internal_kickoff", "2024-12-20"),
        touchpoint(2, "kickoff", "2025-01-10"),
        touchpoint(3, "ebr", "2025-06-10"),
    ];
    h.contacts = vec![champion(1, "2025-01-01", Some("2025-05-01")), champion(2, "2025-05-15", None)];
    let plan = common::plan(&names);
    (plan, h)
}

/// Every built-in metric (and a member of each family) with its value as of
/// [`AS_OF`]; `None` where the metric has no data.
fn expected() -> Vec<(&'static str, Option<Val>)> {
    use Val::{Bool, Double, Int};
    // Weekly events over the last 12 weeks, oldest first: 10 in week 6
    // (2025-05-21), 4 in week 10 (06-20), 2 + 5 in week 11 (06-27, 06-28).
    let weekly = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 4.0, 7.0];
    let mean = weekly.iter().sum::<f64>() / 12.0;
    let slope = weekly.iter().enumerate().map(|(i, y)| (i as f64 - 5.5) * (y - mean)).sum::<f64>()
        / (0..12).map(|i| (f64::from(i) - 5.5).powi(2)).sum::<f64>();
    vec![
        ("licensed_seats", Some(Int(10 + 5))),
        // Users 3 (06-27) and 1, 2 (06-28); user 6 arrives late.
        ("active_users_7d", Some(Int(3))),
        // ... and 1, 4 (06-20).
        ("active_users_28d", Some(Int(4))),
        ("active_seat_ratio", Some(Double(4.0 / 15.0))),
        // task_completed, report_viewed.
        ("core_features_weekly", Some(Int(2))),
        // ... and dashboard_shared.
        ("feature_breadth", Some(Int(3))),
        // 4 + 2 + 5 events by 4 users.
        ("events_per_active_user", Some(Double(11.0 / 4.0))),
        // 11 against the 10 of 2025-05-21.
        ("usage_change_pct", Some(Double((11.0 - 10.0) / 10.0 * 100.0))),
        ("usage_trend", Some(Double(slope / mean * 100.0))),
        ("days_since_last_event", Some(Int(2))),
        // 2025-01-01 to 2025-02-15.
        ("ttv_days", Some(Int(45))),
        ("first_value_reached", Some(Bool(true))),
        // Known only while evaluating stages.
        ("days_in_stage", None),
        ("tenure_days", Some(Int(180))),
        // The earliest end of a contract in force: 2026-01-01.
        ("days_to_renewal", Some(Int(185))),
        ("mrr", Some(Double(150.0))),
        // On 2025-04-01 only c1 was in force.
        ("mrr_change_90d", Some(Double(50.0))),
        ("open_tickets", Some(Int(2))),
        ("open_tickets_sev1", Some(Int(1))),
        ("open_tickets_sev2", Some(Int(0))),
        ("open_tickets_sev3", Some(Int(0))),
        ("open_tickets_sev4", Some(Int(1))),
        // t1, t2, t4.
        ("tickets_30d", Some(Int(3))),
        // Baseline: t3 and the twelve, over six months.
        ("tickets_30d_ratio", Some(Double(3.0 / (13.0 / 6.0)))),
        ("nps_latest", Some(Int(9))),
        // (9 + 6) / 2 in the last 90 days against 4 in the 90 before.
        ("nps_trend", Some(Double(7.5 - 4.0))),
        // The EBR of 2025-06-10.
        ("days_since_touchpoint", Some(Int(20))),
        ("champion_present", Some(Bool(true))),
        // The first champion left on 2025-05-01.
        ("days_since_champion_change", Some(Int(60))),
        ("executive_sponsor_present", Some(Bool(false))),
        ("touchpoints_kickoff", Some(Int(1))),
        ("touchpoints_internal_kickoff", Some(Int(0))),
        ("touchpoints_qbr", Some(Int(0))),
        ("days_since_touchpoint_ebr", Some(Int(20))),
        ("days_since_touchpoint_internal_kickoff", Some(Int(192))),
        ("days_since_touchpoint_qbr", None),
    ]
}

#[test]
fn every_builtin_metric_has_its_hand_computed_value() {
    let (plan, h) = fixture();
    let table = expected();
    // The table covers the whole catalog.
    for m in BUILTIN_METRICS {
        assert!(table.iter().any(|(name, _)| *name == m.name), "{} has no row", m.name);
    }
    for f in BUILTIN_FAMILIES {
        assert!(table.iter().any(|(name, _)| name.starts_with(f.name)), "{}<kind> has no row", f.name);
    }
    let names: Vec<String> = table.iter().map(|(n, _)| (*n).to_owned()).collect();
    let got = metric_values(&plan, &h, day(AS_OF), &names);
    let mut wrong = Vec::new();
    for ((name, want), got) in table.iter().zip(&got) {
        let same = match (want, got) {
            (Some(Val::Double(a)), Some(Val::Double(b))) => (a - b).abs() < 1e-12,
            _ => want == got,
        };
        if !same {
            wrong.push(format!("{name}: expected {want:?}, computed {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn days_in_stage_counts_from_the_day_the_line_entered_its_stage() {
    let (plan, h) = fixture();
    let state = evaluate(&plan, &h, day(AS_OF));
    let line = &state.lines[0];
    // Onboarding until the promoter of 2025-06-01 (NPS 9, a champion, no
    // open sev-1/2) opens advocacy; stages are checked weekly from the first
    // contract's start, so the line moves on the first check after it.
    assert_eq!(line.stage.as_deref(), Some("advocacy"), "{:?}", line.transitions);
    assert_eq!(line.entered, day("2025-06-04"));
    assert_eq!(line.days_in_stage, 26);
}
