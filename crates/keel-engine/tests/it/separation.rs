//! The default health model on the demo world: accounts that churn should
//! mostly be red or yellow 90 days before their renewal date, retained ones
//! mostly green. "Likely churners" are those the generator gave renewal odds
//! below 70% (a planted risk factor); the rest of the churn is the model's
//! base rate, which no signal can predict.

use crate::common;

use chrono::Duration;
use keel_engine::Band;

#[test]
fn accounts_about_to_churn_are_mostly_red_or_yellow() {
    let config = keel_demo::DemoConfig {
        accounts: 1000,
        months: 24,
        seed: 42,
        end: keel_core::parse_date("2026-11-01").unwrap(),
        plays_from: None,
    };
    let world: Vec<_> = keel_demo::generate(&config).collect();
    let mut names = common::Names::default();
    let histories: Vec<_> = world.iter().map(|h| common::history(h, &mut names)).collect();
    let plan = common::plan(&names);

    // Each renewal decision of the generator, evaluated 90 days before it:
    // (churned?, generator's renewal odds, band).
    let mut seen: Vec<(bool, f64, Option<Band>)> = Vec::new();
    for (demo, h) in world.iter().zip(&histories) {
        for decision in &demo.truth.renewals {
            let d = decision.date - Duration::days(90);
            let st = keel_engine::evaluate(&plan, h, d);
            let churned = !decision.renewed;
            seen.push((churned, decision.p_renew, st.health.band));
        }
    }
    let likely: Vec<_> = seen.iter().filter(|(c, p, _)| *c && *p < 0.7).collect();
    let likely_ry = likely.iter().filter(|(_, _, b)| matches!(b, Some(Band::Red | Band::Yellow))).count()
        as f64
        / likely.len().max(1) as f64;
    println!(
        "likely churners (churned, p_renew < 0.7): {} decisions, red or yellow {:.1}%",
        likely.len(),
        likely_ry * 100.0
    );
    let seen: Vec<(bool, Option<Band>)> = seen.iter().map(|(c, _, b)| (*c, *b)).collect();
    let share = |churned: bool, bands: &[Band]| {
        let group: Vec<_> = seen.iter().filter(|(c, _)| *c == churned).collect();
        let hit = group.iter().filter(|(_, b)| b.is_some_and(|b| bands.contains(&b))).count();
        (hit as f64 / group.len().max(1) as f64, group.len())
    };
    let (churn_ry, n_churn) = share(true, &[Band::Red, Band::Yellow]);
    let (kept_ry, n_kept) = share(false, &[Band::Red, Band::Yellow]);
    let (churn_red, _) = share(true, &[Band::Red]);
    let (kept_red, _) = share(false, &[Band::Red]);
    println!(
        "churned at the renewal:   {n_churn} decisions, red {:.1}%, red or yellow {:.1}%\n\
         renewed:                 {n_kept} decisions, red {:.1}%, red or yellow {:.1}%",
        churn_red * 100.0,
        churn_ry * 100.0,
        kept_red * 100.0,
        kept_ry * 100.0
    );
    assert!(n_churn >= 50 && likely.len() >= 30, "enough churn to judge: {n_churn}, {}", likely.len());
    assert!(likely_ry >= 0.6, "most likely churners are red or yellow 90 days out: {likely_ry:.2}");
    assert!(churn_ry > 0.5, "most churners are red or yellow 90 days out: {churn_ry:.2}");
    assert!(churn_ry >= kept_ry + 0.2, "a clear separation: {churn_ry:.2} vs {kept_ry:.2}");
    assert!(churn_red >= 2.0 * kept_red, "red concentrates on churners: {churn_red:.2} vs {kept_red:.2}");
}
