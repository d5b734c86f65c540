//! `Plan::needs` is what lets `keel metrics` read a few weeks of usage
//! instead of years: a metric computed from a history cut down to what its
//! needs say must equal the metric computed from the whole history.

use crate::common;

use chrono::Days;
use keel_engine::{AccountHistory, History, Needs, NeedsError, metric_values};
use keel_journey::catalog::{BUILTIN_FAMILIES, BUILTIN_METRICS};

/// `h` keeping only what `needs` asks for, as the store would load it for `as_of`.
fn cut(h: &AccountHistory, needs: Needs, as_of: keel_core::Date) -> AccountHistory {
    let mut out = AccountHistory::new(h.account.clone());
    if needs.contracts {
        out.contracts = h.contracts.clone();
    }
    if needs.contacts {
        out.contacts = h.contacts.clone();
    }
    if needs.tickets {
        out.tickets = h.tickets.clone();
    }
    if needs.surveys {
        out.surveys = h.surveys.clone();
    }
    if needs.touchpoints {
        out.touchpoints = h.touchpoints.clone();
    }
    out.usage = match needs.usage {
        History::None => Vec::new(),
        History::All => h.usage.clone(),
        History::Days(n) => {
            let since = as_of - Days::new(u64::from(n) - 1);
            h.usage.iter().filter(|u| u.day >= since).cloned().collect()
        }
    };
    out
}

#[test]
fn every_metric_computed_from_what_it_needs_equals_it_computed_from_everything() {
    let config = keel_demo::DemoConfig {
        accounts: 60,
        months: 18,
        seed: 7,
        end: keel_core::parse_date("2026-05-01").unwrap(),
        plays_from: None,
    };
    let world: Vec<_> = keel_demo::generate(&config).collect();
    let mut names = common::Names::default();
    let mut histories: Vec<_> = world.iter().map(|h| common::history(h, &mut names)).collect();
    // The demo surveys twice a year; an earlier response to each (a point
    // lower) gives `nps_trend` two windows to compare.
    for h in &mut histories {
        let earlier: Vec<_> = h
            .surveys
            .iter()
            .map(|s| keel_core::SurveyResponse {
                responded: s.responded - chrono::Duration::days(100),
                score: s.score.saturating_sub(1),
                ..s.clone()
            })
            .collect();
        h.surveys.extend(earlier);
    }
    let plan = common::plan(&names);

    let mut metrics: Vec<String> = BUILTIN_METRICS.iter().map(|m| m.name.to_owned()).collect();
    metrics.extend(plan.journey().metrics.iter().map(|m| m.name.clone()));
    metrics.extend(BUILTIN_FAMILIES.iter().map(|f| format!("{}kickoff", f.name)));
    metrics.retain(|m| m != "days_in_stage");
    assert_eq!(plan.needs("days_in_stage"), Err(NeedsError::StageOnly("days_in_stage".into())));
    assert_eq!(plan.needs("no_such_metric"), Err(NeedsError::Unknown("no_such_metric".into())));

    let mut windowed = 0;
    let mut without_data = Vec::new();
    for metric in &metrics {
        let mut with_data = 0;
        let needs = plan.needs(metric).unwrap_or_else(|e| panic!("{metric}: {e}"));
        if matches!(needs.usage, History::Days(_)) {
            windowed += 1;
        }
        let one = std::slice::from_ref(metric);
        for as_of in ["2025-06-15", "2026-01-31", "2026-05-01"] {
            let as_of = keel_core::parse_date(as_of).unwrap();
            for h in &histories {
                let full = metric_values(&plan, h, as_of, one);
                let part = metric_values(&plan, &cut(h, needs, as_of), as_of, one);
                assert_eq!(part, full, "{metric} of {} as of {as_of} with {needs:?}", h.account.id);
                with_data += usize::from(full[0].is_some());
            }
        }
        if with_data < histories.len() / 4 {
            without_data.push(format!("{metric}: {with_data}"));
        }
    }
    // The test means something only if windows were cut and every metric
    // had values to compare.
    assert!(windowed >= 8, "{windowed} windowed metrics");
    assert!(without_data.is_empty(), "metrics with too few values: {without_data:?}");
}

/// The feeds the journey-map audit checks come from the same declaration as
/// what loading reads, so the two cannot disagree.
#[test]
fn feeds_are_the_kinds_of_records_a_metric_needs() {
    use keel_core::EntityKind::{Contracts, Events, Tickets, Touchpoints};
    let names = common::Names::default();
    let plan = common::plan(&names);
    let mut metrics: Vec<String> = BUILTIN_METRICS.iter().map(|m| m.name.to_owned()).collect();
    metrics.extend(plan.journey().metrics.iter().map(|m| m.name.clone()));
    metrics.extend(BUILTIN_FAMILIES.iter().map(|f| format!("{}ebr", f.name)));
    for metric in metrics.iter().filter(|m| *m != "days_in_stage") {
        let needs = plan.needs(metric).unwrap_or_else(|e| panic!("{metric}: {e}"));
        assert_eq!(plan.metric_feeds(metric), needs.kinds(), "{metric}");
    }
    // Counted since the first contract started: contracts are read too.
    assert_eq!(plan.metric_feeds("touchpoints_kickoff"), vec![Contracts, Touchpoints]);
    assert_eq!(plan.metric_feeds("workflows_published"), vec![Contracts, Events]);
    // Known only inside stage evaluation, yet its feed is declared.
    assert_eq!(plan.metric_feeds("days_in_stage"), vec![Contracts]);
    assert_eq!(plan.metric_feeds("no_such_metric"), Vec::new());
    // A moment detected by an expression reads what its metrics read.
    let handoff = plan
        .journey()
        .moments
        .iter()
        .find(|m| matches!(&m.detection, keel_journey::Detection::When(e) if e.source.contains("touchpoints_internal_kickoff")))
        .expect("the default journey's handoff moment");
    assert_eq!(plan.moment_feeds(handoff), vec![Contracts, Touchpoints]);
    let escalation = plan
        .journey()
        .moments
        .iter()
        .find(|m| matches!(&m.detection, keel_journey::Detection::Detector { name, .. } if name == "support_escalation_spike"))
        .expect("the default journey's escalation moment");
    assert_eq!(plan.moment_feeds(escalation), vec![Tickets]);
}
