//! The timeline answers, for any day, exactly the facts of an evaluation as
//! of that day, from a fraction of the rows a day-per-row history would take.

use std::collections::BTreeMap;

use chrono::Duration;
use keel_core::{Date, DayUsage, Event};
use keel_engine::{AccountHistory, Plan, evaluate};
use keel_timeline::{Builder, CHECKPOINT_EVERY, Fact, Facts, extend, facts, facts_at, facts_on, walk};
use proptest::prelude::*;

fn config() -> keel_demo::DemoConfig {
    keel_demo::DemoConfig {
        accounts: 40,
        months: 24,
        seed: 5,
        end: keel_core::parse_date("2026-06-30").expect("a date"),
        plays_from: None,
    }
}

/// Events rolled up per (day, received day), users and names interned as
/// the store does.
fn history(a: &keel_demo::SimulatedAccount, names: &mut BTreeMap<String, u64>) -> AccountHistory {
    let mut users: BTreeMap<String, u64> = BTreeMap::new();
    type Counts = BTreeMap<u64, u64>;
    let mut days: BTreeMap<(Date, Date), (u64, Counts, Counts)> = BTreeMap::new();
    let events: &[Event] = &a.events;
    for e in events {
        let next = users.len() as u64 + 1;
        let uid = *users.entry(e.user.as_str().to_owned()).or_insert(next);
        let next = names.len() as u64 + 1;
        let nid = *names.entry(e.name.as_str().to_owned()).or_insert(next);
        let d = days.entry((e.timestamp.date_naive(), e.received_at.date_naive())).or_default();
        d.0 += 1;
        *d.1.entry(uid).or_default() += 1;
        *d.2.entry(nid).or_default() += 1;
    }
    AccountHistory {
        account: a.account.clone(),
        contracts: a.contracts.clone(),
        contacts: a.contacts.clone(),
        tickets: a.tickets.clone(),
        surveys: a.surveys.clone(),
        touchpoints: a.touchpoints.clone(),
        opportunities: a.opportunities.clone(),
        usage: days
            .into_iter()
            .map(|((day, known), (events, u, n))| DayUsage {
                day,
                known,
                events,
                users: u.into_iter().collect(),
                names: n.into_iter().collect(),
            })
            .collect(),
        users: users.into_iter().map(|(ext, id)| (id, ext)).collect(),
    }
}

fn plan(names: &BTreeMap<String, u64>) -> Plan {
    let journey = keel_journey::check("journey.toml", keel_journey::DEFAULT_JOURNEY).expect("checks");
    Plan::new(journey, &names.iter().map(|(n, id)| (*id, n.clone())).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, .. ProptestConfig::default() })]

    #[test]
    fn the_facts_on_any_day_are_those_of_an_evaluation_as_of_that_day(
        account in 0usize..40,
        first in 0i64..300,
        days in prop::collection::vec(0i64..400, 8),
    ) {
        let config = config();
        let a = keel_demo::simulate_account(&config, account);
        let mut names = BTreeMap::new();
        let h = history(&a, &mut names);
        let plan = plan(&names);
        let from = config.start() + Duration::days(first);
        let to = from + Duration::days(399);
        let rows = walk(&plan, &h, from, to);
        prop_assert!(rows.first().is_some_and(|r| r.checkpoint && r.day == from));
        prop_assert_eq!(facts_on(&rows, from - Duration::days(1)), None);
        for &offset in &days {
            let d = from + Duration::days(offset);
            prop_assert_eq!(facts_on(&rows, d), Some(facts(&evaluate(&plan, &h, d))), "as of {}", d);
        }
        // Many days read in one pass answer the same, a day before the
        // timeline included.
        let mut sorted: Vec<Date> = days.iter().map(|o| from + Duration::days(*o)).collect();
        sorted.push(from - Duration::days(3));
        sorted.sort();
        let each: Vec<Option<Facts>> = sorted.iter().map(|d| facts_on(&rows, *d)).collect();
        prop_assert_eq!(facts_at(&rows, &sorted), each);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, .. ProptestConfig::default() })]

    /// What `keel serve` does as days pass — continue the stored rows from
    /// the day after the last one concluded, reading back only those from
    /// the last checkpoint on — stores exactly the rows one walk would, and
    /// an evaluation handed in for the last day is used as it is.
    #[test]
    fn a_timeline_continued_day_after_day_stores_the_rows_of_one_walk(
        account in 0usize..40,
        cuts in prop::collection::btree_set(1i64..200, 1..6),
    ) {
        let config = config();
        let a = keel_demo::simulate_account(&config, account);
        let mut names = BTreeMap::new();
        let h = history(&a, &mut names);
        let plan = plan(&names);
        let from = config.start() + Duration::days(200);
        let to = from + Duration::days(200);
        let whole = walk(&plan, &h, from, to);
        let mut kept: Vec<keel_timeline::Row> = Vec::new();
        let mut start = from;
        for cut in cuts.into_iter().map(|c| from + Duration::days(c)).chain([to + Duration::days(1)]) {
            let last = cut - Duration::days(1);
            // Only the rows from the last checkpoint on are read back.
            let at = kept.iter().rposition(|r| r.checkpoint).unwrap_or(0);
            let on_last = evaluate(&plan, &h, last);
            kept.extend(extend(&plan, &h, &kept[at..], start, last, Some(&on_last)));
            start = cut;
        }
        prop_assert_eq!(kept, whole);
    }
}

#[test]
fn a_year_takes_a_fraction_of_the_facts_a_row_per_day_would_and_checkpoints_come_every_four_weeks() {
    let config = config();
    let (mut stored, mut daily, mut bytes) = (0usize, 0usize, 0usize);
    for account in 0..10 {
        let a = keel_demo::simulate_account(&config, account);
        let mut names = BTreeMap::new();
        let h = history(&a, &mut names);
        let plan = plan(&names);
        let from = config.end - Duration::days(364);
        let rows = walk(&plan, &h, from, config.end);
        let checkpoints: Vec<Date> = rows.iter().filter(|r| r.checkpoint).map(|r| r.day).collect();
        assert!(
            checkpoints.windows(2).all(|w| (w[1] - w[0]).num_days() >= CHECKPOINT_EVERY),
            "{checkpoints:?}"
        );
        assert!(checkpoints.len() >= 365 / CHECKPOINT_EVERY as usize, "{checkpoints:?}");
        stored += rows.iter().map(|r| r.facts.len()).sum::<usize>();
        daily +=
            (0..365).map(|d| facts_on(&rows, from + Duration::days(d)).map_or(0, |f| f.len())).sum::<usize>();
        bytes += serde_json::to_vec(&rows).expect("encodes").len();
    }
    assert!(stored * 6 < daily, "{stored} facts stored for {daily} daily facts");
    eprintln!("10 accounts, one year: {stored} facts stored for {daily} daily facts, {bytes} bytes as JSON");
}

#[test]
fn a_builder_continues_an_existing_timeline_and_refuses_days_out_of_order() {
    let day = |d: &str| keel_core::parse_date(d).expect("a date");
    let f = |pairs: &[(&str, Fact)]| -> Facts {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    };
    let mut b = Builder::default();
    let first =
        b.push(day("2026-01-01"), f(&[("a", Fact::Int(1)), ("b", Fact::Bool(true))])).unwrap().unwrap();
    assert!(first.checkpoint);
    assert_eq!(b.push(day("2026-01-02"), f(&[("a", Fact::Int(1)), ("b", Fact::Bool(true))])), Ok(None));
    let change = b.push(day("2026-01-03"), f(&[("a", Fact::Int(5))])).unwrap().unwrap();
    assert!(!change.checkpoint);
    assert_eq!(change.facts, BTreeMap::from([("a".into(), Some(Fact::Int(5))), ("b".into(), None)]));
    let rows = vec![first, change];
    assert_eq!(facts_on(&rows, day("2026-01-02")), Some(f(&[("a", Fact::Int(1)), ("b", Fact::Bool(true))])));
    assert_eq!(facts_on(&rows, day("2026-01-09")), Some(f(&[("a", Fact::Int(5))])));
    let mut again = Builder::after(&rows);
    assert!(again.push(day("2026-01-03"), Facts::new()).is_err(), "a day already appended");
    let next =
        again.push(day("2026-01-04"), f(&[("a", Fact::Int(5)), ("c", Fact::Text("x".into()))])).unwrap();
    assert_eq!(next.as_ref().map(|r| r.facts.len()), Some(1), "only the new fact: {next:?}");
    let late = again.push(day("2026-01-30"), f(&[("a", Fact::Int(5))])).unwrap().unwrap();
    assert!(late.checkpoint, "four weeks after the last checkpoint");
    let json = serde_json::to_string(&late).unwrap();
    assert_eq!(serde_json::from_str::<keel_timeline::Row>(&json).unwrap(), late, "rows round-trip");
}

#[test]
fn counts_that_move_by_one_a_day_are_kept_as_the_day_they_count_from_or_to() {
    let day = |n: i64| keel_core::parse_date("2026-03-01").expect("a date") + Duration::days(n);
    let mut b = Builder::default();
    let mut rows = Vec::new();
    // Days since a touchpoint count up, days to renewal count down, until a
    // new touchpoint resets the first and a renewal moves the second.
    for n in 0..40 {
        let since = if n < 25 { 10 + n } else { n - 25 };
        let until = if n < 30 { 60 - n } else { 425 - n };
        let facts: Facts =
            [("since".to_owned(), Fact::Int(since)), ("until".to_owned(), Fact::Int(until))].into();
        rows.extend(b.push(day(n), facts).expect("in order"));
    }
    let changes: Vec<i64> = rows.iter().map(|r| (r.day - day(0)).num_days()).collect();
    assert_eq!(
        changes,
        [0, 1, 25, 26, 28, 30, 31],
        "a checkpoint, anchoring, the reset, re-anchoring, a checkpoint, the renewal, re-anchoring"
    );
    for n in 0..40 {
        let f = facts_on(&rows, day(n)).expect("after the start");
        assert_eq!(f["since"], Fact::Int(if n < 25 { 10 + n } else { n - 25 }), "day {n}");
        assert_eq!(f["until"], Fact::Int(if n < 30 { 60 - n } else { 425 - n }), "day {n}");
    }
}
