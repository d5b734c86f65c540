//! Evaluating as of D depends only on what was known on D.

use crate::common;

use chrono::Duration;
use keel_core::{Date, TicketStatus};
use proptest::prelude::*;

/// The history as it stood on `d`: nothing that happened or arrived later.
fn known_on(h: &keel_demo::SimulatedAccount, d: Date) -> keel_demo::SimulatedAccount {
    let mut k = h.clone();
    let on = |t: keel_core::Timestamp| t.date_naive() <= d;
    k.events.retain(|e| on(e.timestamp) && on(e.received_at));
    k.tickets.retain(|t| on(t.opened));
    for t in &mut k.tickets {
        if t.closed.is_some_and(|c| !on(c)) {
            t.closed = None;
            t.status = TicketStatus::Open;
        }
    }
    k.surveys.retain(|s| on(s.responded));
    k.touchpoints.retain(|t| on(t.occurred));
    k.contracts.retain(|c| c.start <= d);
    k.contacts.retain(|c| c.active_from <= d);
    for c in &mut k.contacts {
        if c.active_to.is_some_and(|e| e > d) {
            c.active_to = None;
        }
    }
    k.opportunities.retain(|o| o.created <= d);
    k
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn state_as_of_d_ignores_everything_after_d(account in 0usize..40, offset in 0i64..700) {
        let config = keel_demo::DemoConfig {
            accounts: 40,
            months: 24,
            seed: 7,
            end: keel_core::parse_date("2026-06-30").unwrap(),
        plays_from: None,
        };
        let full = keel_demo::simulate_account(&config, account);
        let d = config.start() + Duration::days(offset);
        let mut names = common::Names::default();
        let with_future = common::history(&full, &mut names);
        let without = common::history(&known_on(&full, d), &mut names);
        let plan = common::plan(&names);
        let a = keel_engine::evaluate(&plan, &with_future, d);
        let b = keel_engine::evaluate(&plan, &without, d);
        prop_assert_eq!(a, b);
    }
}

#[test]
fn late_arriving_events_are_ignored_until_received() {
    let config = keel_demo::DemoConfig {
        accounts: 3,
        months: 12,
        seed: 3,
        end: keel_core::parse_date("2026-06-30").unwrap(),
        plays_from: None,
    };
    let mut h = keel_demo::simulate_account(&config, 1);
    let d = config.end - Duration::days(30);
    let mut names = common::Names::default();
    let before = common::history(&h, &mut names);
    // A burst of usage on D that only arrives the day after.
    let template = h.events.iter().find(|e| e.timestamp.date_naive() <= d).unwrap().clone();
    for i in 0..500 {
        let mut e = template.clone();
        e.message_id = keel_core::MessageId::parse(&format!("late-{i}")).unwrap();
        e.timestamp = d.and_hms_opt(12, 0, 0).unwrap().and_utc();
        e.received_at = e.timestamp + Duration::days(1);
        h.events.push(e);
    }
    let after = common::history(&h, &mut names);
    let plan = common::plan(&names);
    let (a, b) = (keel_engine::evaluate(&plan, &before, d), keel_engine::evaluate(&plan, &after, d));
    assert_eq!(a, b, "not known on D");
    let next = d + Duration::days(1);
    let (a, b) = (keel_engine::evaluate(&plan, &before, next), keel_engine::evaluate(&plan, &after, next));
    assert_ne!(a.metrics["active_users_7d"], None);
    assert_ne!(a, b, "known the day after");
}
