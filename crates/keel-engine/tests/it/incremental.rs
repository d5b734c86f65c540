//! Continuing from a checkpoint answers exactly what a full replay answers,
//! whatever happened since: more days, late arrivals, records edited after
//! the fact, another journey; and a checkpoint used when it no longer holds
//! would answer something else.

use crate::common;

use chrono::Duration;
use keel_core::{Date, Money};
use keel_engine::{Plan, Walk, evaluate, evaluate_from, evaluate_from_unchecked};
use proptest::prelude::*;

fn config() -> keel_demo::DemoConfig {
    keel_demo::DemoConfig {
        accounts: 40,
        months: 24,
        seed: 11,
        end: keel_core::parse_date("2026-06-30").expect("a date"),
        plays_from: None,
    }
}

/// The default journey with a shorter renewal window: another version.
fn other_plan(names: &common::Names) -> Plan {
    let text = keel_journey::DEFAULT_JOURNEY.replace("renewal_window_days = 90", "renewal_window_days = 60");
    assert_ne!(text, keel_journey::DEFAULT_JOURNEY);
    Plan::new(keel_journey::check("journey.toml", &text).expect("checks"), &names.list())
}

/// `n` copies of one of the account's events, dated `day` and received
/// `arrives`, spread over the users it already has: usage that arrives late
/// (and nothing else new).
fn late_events(a: &mut keel_demo::SimulatedAccount, day: Date, arrives: Date, n: usize) {
    let Some(template) = a.events.first().cloned() else {
        return;
    };
    let mut users: Vec<keel_core::UserId> = a.events.iter().map(|e| e.user.clone()).collect();
    users.sort_by(|x, y| x.as_str().cmp(y.as_str()));
    users.dedup();
    let taken = a.events.len();
    for i in 0..n {
        let mut e = template.clone();
        e.message_id = keel_core::MessageId::parse(&format!("late-{taken}-{i}")).expect("an id");
        e.user = users[i % users.len()].clone();
        e.timestamp = day.and_hms_opt(12, 0, 0).expect("noon").and_utc();
        e.received_at = arrives.and_hms_opt(9, 0, 0).expect("nine").and_utc();
        a.events.push(e);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, .. ProptestConfig::default() })]

    #[test]
    fn continuing_from_a_checkpoint_equals_full_replay(
        account in 0usize..40,
        first in 0i64..700,
        gap in 0i64..120,
        late in 0i64..3,
        edit in 0usize..4,
        journey_changes in any::<bool>(),
    ) {
        let config = config();
        let mut a = keel_demo::simulate_account(&config, account);
        let a1 = config.start() + Duration::days(first);
        let a2 = a1 + Duration::days(gap);
        let mut names = common::Names::default();
        let before = common::history(&a, &mut names);
        let plan = common::plan(&names);
        let (_, checkpoint) = evaluate_from(&plan, &before, a1, None);

        // What happens between the checkpoint and the next evaluation.
        // A burst over the last weeks (or months) before the checkpoint,
        // received between the two evaluations.
        if late > 0 && gap > 0 {
            for week in 0..late * 4 {
                let day = a1 - Duration::days(week * 7 * late + 1);
                late_events(&mut a, day, a1 + Duration::days(gap.min(week + 1)), 150);
            }
        }
        match (edit, a.contracts.first_mut()) {
            (1, Some(c)) => c.mrr = Money::parse_non_negative("1", "USD").unwrap(),
            (2, Some(c)) => c.end = c.end.map(|e| e - Duration::days(45)),
            (3, Some(c)) => c.seats = c.seats.saturating_mul(3).max(1),
            _ => {}
        }
        let after = common::history(&a, &mut names);
        let plan = if journey_changes { other_plan(&names) } else { common::plan(&names) };
        let (continued, _) = evaluate_from(&plan, &after, a2, Some(&checkpoint));
        prop_assert_eq!(continued, evaluate(&plan, &after, a2));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    /// A walk (day after day mostly, with jumps forward and back) answers
    /// each day exactly what a full evaluation answers, late arrivals
    /// included.
    #[test]
    fn a_walk_answers_each_day_what_a_full_evaluation_answers(
        account in 0usize..40,
        first in 0i64..600,
        steps in proptest::collection::vec(prop_oneof![12 => Just(1i64), 1 => 2i64..40, 1 => -30i64..1], 20..90),
        late in 0i64..3,
    ) {
        let config = config();
        let mut a = keel_demo::simulate_account(&config, account);
        let start = config.start() + Duration::days(first);
        for week in 0..late * 4 {
            let day = start + Duration::days(week * 9);
            late_events(&mut a, day, day + Duration::days(2 + week % 5), 40);
        }
        let mut names = common::Names::default();
        let h = common::history(&a, &mut names);
        let plan = common::plan(&names);
        let mut walk = Walk::new(&plan, &h);
        let mut d = start;
        for step in steps {
            d += Duration::days(step);
            prop_assert_eq!(walk.evaluate(d), evaluate(&plan, &h, d), "as of {}", d);
        }
    }
}

/// Every day of a dozen accounts' whole histories, walked in order: each
/// equal to a full evaluation (first values found mid-week and on the walk's
/// own day, renewals, stage changes).
#[test]
fn a_walk_through_whole_histories_matches_full_evaluation_every_day() {
    let config = config();
    let mut first_values = 0;
    for account in 0..12 {
        let a = keel_demo::simulate_account(&config, account);
        let mut names = common::Names::default();
        let h = common::history(&a, &mut names);
        let plan = common::plan(&names);
        let mut walk = Walk::new(&plan, &h);
        let mut d = config.start();
        let mut reached = false;
        while d <= config.end {
            let full = evaluate(&plan, &h, d);
            reached |= full.lines.iter().any(|l| l.ttv_days.is_some());
            assert_eq!(walk.evaluate(d), full, "account {account} as of {d}");
            d += Duration::days(1);
        }
        first_values += usize::from(reached);
    }
    assert!(first_values >= 6, "only {first_values} of 12 accounts reached first value");
}

/// First value is searched weekly, then day by day inside the first week
/// it holds; a walk picks the search up where it stopped. With a condition
/// that holds only on days with usage, and usage on two days of the second
/// week, the search as of the second usage day finds the first one (inside
/// the week being searched), and the day after finds none: the walk must
/// not keep the first answer.
#[test]
fn a_walk_searches_first_value_again_when_the_week_it_was_found_in_moves() {
    let text = keel_journey::DEFAULT_JOURNEY
        .replace("when = \"workflows_published >= 1\"", "when = \"days_since_last_event == 0\"");
    assert_ne!(text, keel_journey::DEFAULT_JOURNEY);
    let plan = Plan::new(keel_journey::check("journey.toml", &text).expect("checks"), &[]);
    let config = config();
    let mut h = common::history(&keel_demo::simulate_account(&config, 0), &mut common::Names::default());
    let start = h.contracts.iter().map(|c| c.start).min().expect("a contract");
    let used = |day: Date| keel_core::DayUsage {
        day,
        known: day,
        events: 1,
        users: vec![(1, 1)],
        names: vec![(1, 1)],
    };
    h.usage = vec![used(start + Duration::days(3)), used(start + Duration::days(9))];
    let mut walk = Walk::new(&plan, &h);
    let mut answers = Vec::new();
    for day in 0..30 {
        let d = start + Duration::days(day);
        let full = evaluate(&plan, &h, d);
        answers.push(full.metrics.get("ttv_days").copied().flatten());
        assert_eq!(walk.evaluate(d), full, "as of {d}");
    }
    assert_eq!(answers[9], Some(keel_engine::Val::Int(3)), "as of the second usage day: {answers:?}");
    assert_eq!(answers[10], None, "the day after: {answers:?}");
}

/// The history as known on `d`: usage received later left out.
fn known_by(a: &keel_demo::SimulatedAccount, d: Date) -> keel_demo::SimulatedAccount {
    let mut k = a.clone();
    k.events.retain(|e| e.received_at.date_naive() <= d);
    k
}

#[test]
fn a_checkpoint_carries_on_day_after_day_and_matches_full_replay_each_day() {
    let config = config();
    let mut continued_days = 0;
    for account in [0, 7, 19] {
        let a = keel_demo::simulate_account(&config, account);
        let mut names = common::Names::default();
        let full = common::history(&a, &mut names);
        let plan = common::plan(&names);
        let start = config.start() + Duration::days(30);
        let mut checkpoint = None;
        for day in 0..400 {
            let d = start + Duration::days(day);
            let used =
                checkpoint.as_ref().is_some_and(|c: &keel_engine::Checkpoint| c.holds(&plan, &full, d));
            continued_days += usize::from(used);
            let (state, next) = evaluate_from(&plan, &full, d, checkpoint.as_ref());
            assert_eq!(state, evaluate(&plan, &full, d), "account {account} as of {d}");
            checkpoint = Some(next);
        }
    }
    assert!(continued_days > 1_000, "the checkpoint was used on {continued_days} of 1 200 days");
    // Nothing arrives late: every later day continues.
    let a = keel_demo::simulate_account(&config, 3);
    let d = config.end - Duration::days(200);
    let mut names = common::Names::default();
    let h = common::history(&known_by(&a, d), &mut names);
    let plan = common::plan(&names);
    let (_, c) = evaluate_from(&plan, &h, d, None);
    assert!(c.holds(&plan, &h, d + Duration::days(1)));
    assert!(c.holds(&plan, &h, d + Duration::days(90)));
    assert!(!c.holds(&plan, &h, d - Duration::days(1)), "never backwards");
    assert!(!c.holds(&other_plan(&names), &h, d + Duration::days(1)), "another journey");
}

#[test]
fn a_stale_checkpoint_would_answer_differently_and_is_not_used() {
    // An account still in its first stage; then a late burst of usage over
    // its first weeks arrives. A full replay re-judges those weeks; a
    // checkpoint taken before the burst does not know it.
    let config = config();
    let mut found = 0;
    for account in 0..40 {
        let mut a = keel_demo::simulate_account(&config, account);
        let Some(start) = a.contracts.iter().map(|c| c.start).min() else { continue };
        let a1 = start + Duration::days(63);
        let mut names = common::Names::default();
        let before = common::history(&a, &mut names);
        let plan = common::plan(&names);
        let (then, checkpoint) = evaluate_from(&plan, &before, a1, None);
        if then.lines.iter().all(|l| l.transitions.len() > 1) {
            continue;
        }
        for week in 0..9 {
            late_events(&mut a, start + Duration::days(week * 7 + 1), a1 + Duration::days(1), 400);
        }
        let after = common::history(&a, &mut names);
        let plan = common::plan(&names);
        let a2 = a1 + Duration::days(1);
        let full = evaluate(&plan, &after, a2);
        let (stale, _) = evaluate_from_unchecked(&plan, &after, a2, &checkpoint);
        if stale == full {
            continue;
        }
        assert!(
            !checkpoint.holds(&plan, &after, a2),
            "account {account}: a late arrival voids the checkpoint"
        );
        assert_eq!(evaluate_from(&plan, &after, a2, Some(&checkpoint)).0, full, "account {account}");
        found += 1;
    }
    assert!(found >= 3, "a stale checkpoint changed the answer for {found} accounts");
}
