//! The demo world is deterministic, consistent, and carries the planted effects.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly by design")]

use chrono::{NaiveTime, TimeZone, Utc};
use keel_demo::{DemoConfig, Segment, SimulatedAccount, generate};

fn config(accounts: usize, seed: u64) -> DemoConfig {
    DemoConfig { accounts, months: 24, seed, end: "2026-11-01".parse().unwrap(), plays_from: None }
}

fn fingerprint(world: &[SimulatedAccount]) -> Vec<String> {
    world
        .iter()
        .map(|h| {
            format!(
                "{:?}|{}|{}|{:?}|{:?}",
                h.account,
                h.events.len(),
                h.events.last().map(|e| e.message_id.to_string()).unwrap_or_default(),
                h.contracts,
                h.truth
            )
        })
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_world_and_another_seed_another() {
    let a: Vec<_> = generate(&config(40, 1)).collect();
    let b: Vec<_> = generate(&config(40, 1)).collect();
    let c: Vec<_> = generate(&config(40, 2)).collect();
    assert_eq!(fingerprint(&a), fingerprint(&b));
    assert_ne!(fingerprint(&a), fingerprint(&c));
    // An account does not depend on how many others are generated.
    let small: Vec<_> = generate(&config(10, 1)).collect();
    assert_eq!(fingerprint(&small), fingerprint(&a[..10]));
}

#[test]
fn histories_are_consistent_with_their_contracts() {
    let cfg = config(300, 5);
    let end = Utc.from_utc_datetime(&cfg.end.and_time(NaiveTime::MIN));
    for h in generate(&cfg) {
        let first_start = h.contracts.iter().map(|c| c.start).min().unwrap();
        assert!(h.account.created < first_start, "{}", h.account.id);
        assert!(h.events.iter().all(|e| e.received_at < end && e.timestamp <= e.received_at));
        assert!(h.events.iter().all(|e| e.timestamp.date_naive() >= first_start), "{}", h.account.id);
        if let Some(churned) = h.truth.churned_on {
            assert!(
                h.events.iter().all(|e| e.timestamp.date_naive() < churned),
                "{} active after churn",
                h.account.id
            );
            assert!(h.contracts.iter().all(|c| c.end.is_some_and(|e| e <= churned)));
            for c in &h.contacts {
                assert!(c.active_to.is_some_and(|t| t <= churned), "{c:?} churned {churned}");
            }
        }
        // Platform terms follow each other without gaps or overlaps (add-ons aside).
        let mut terms: Vec<_> = h
            .contracts
            .iter()
            .filter(|c| {
                c.product.as_str() == "platform" && c.id.as_str().ends_with(|ch: char| ch.is_ascii_digit())
            })
            .filter(|c| {
                h.contracts.iter().filter(|o| o.start == c.start && o.product == c.product).count() == 1
            })
            .map(|c| (c.start, c.end))
            .collect();
        terms.sort();
        assert!(terms.iter().all(|(s, e)| e.is_some_and(|e| e > *s)));
        let champions = h.contacts.iter().filter(|c| c.role.as_str() == "champion").count();
        assert!(champions >= 1);
        if h.truth.champion_left.is_some()
            && h.truth.churned_on.is_none_or(|c| h.truth.champion_left.unwrap() < c)
        {
            assert!(
                h.contacts
                    .iter()
                    .any(|c| c.role.as_str() == "champion" && c.active_to == h.truth.champion_left)
            );
        }
    }
}

/// Renewal rate among decisions with and without a factor.
fn split(world: &[SimulatedAccount], has: impl Fn(&keel_demo::RenewalDecision) -> bool) -> (f64, f64, usize) {
    let (mut with, mut with_n, mut without, mut without_n) = (0.0, 0usize, 0.0, 0usize);
    for d in world.iter().flat_map(|h| &h.truth.renewals) {
        if has(d) {
            with += f64::from(u8::from(d.renewed));
            with_n += 1;
        } else {
            without += f64::from(u8::from(d.renewed));
            without_n += 1;
        }
    }
    (with / with_n.max(1) as f64, without / without_n.max(1) as f64, with_n)
}

#[test]
fn renewals_depend_on_the_planted_factors_and_not_on_mobile_sessions() {
    let world: Vec<_> = generate(&config(2500, 9)).collect();
    let decisions: usize = world.iter().map(|h| h.truth.renewals.len()).sum();
    assert!(decisions > 800, "{decisions} renewal decisions");
    for (name, with, without, n) in [
        ("no first value by day 60", split(&world, |d| d.no_first_value_by_day_60)),
        ("champion gone", split(&world, |d| d.champion_gone)),
        ("usage declining", split(&world, |d| d.usage_declining)),
        ("unresolved sev-1", split(&world, |d| d.unresolved_sev1)),
    ]
    .map(|(n, (w, wo, c))| (n, w, wo, c))
    {
        assert!(n >= 20, "{name}: only {n} decisions");
        assert!(with + 0.08 < without, "{name}: renewal {with:.2} with vs {without:.2} without");
    }
    let (broad, narrow, _) = split(&world, |d| d.broad_adoption);
    assert!(broad > narrow, "broad adoption {broad:.2} vs {narrow:.2}");

    // The decoy: mobile sessions split at the median say nothing.
    let mut rates: Vec<f64> = world.iter().map(|h| h.truth.mobile_rate).collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let churned = |hs: &mut dyn Iterator<Item = &SimulatedAccount>| {
        let v: Vec<_> = hs.flat_map(|h| &h.truth.renewals).collect();
        v.iter().filter(|d| !d.renewed).count() as f64 / v.len().max(1) as f64
    };
    let high = churned(&mut world.iter().filter(|h| h.truth.mobile_rate >= median));
    let low = churned(&mut world.iter().filter(|h| h.truth.mobile_rate < median));
    assert!((high - low).abs() < 0.06, "mobile sessions should not matter: {high:.3} vs {low:.3}");
}

#[test]
fn segments_differ_in_size_and_touch() {
    let world: Vec<_> = generate(&config(600, 3)).collect();
    let mean_seats = |s: Segment| {
        let v: Vec<u32> =
            world.iter().filter(|h| h.truth.segment == s).map(|h| h.contracts[0].seats).collect();
        f64::from(v.iter().sum::<u32>()) / v.len() as f64
    };
    assert!(mean_seats(Segment::Enterprise) > 3.0 * mean_seats(Segment::MidMarket));
    assert!(mean_seats(Segment::MidMarket) > 3.0 * mean_seats(Segment::Smb));
    let has_kickoff = |s: Segment| {
        world
            .iter()
            .filter(|h| h.truth.segment == s)
            .any(|h| h.touchpoints.iter().any(|t| t.kind.as_str() == "kickoff"))
    };
    assert!(has_kickoff(Segment::Enterprise) && !has_kickoff(Segment::Smb));
}
