//! `signals` (and `health_as_of`) answers "which moments fire today, in which segment" without
//! replaying the stages: the journey-map audit samples it weekly, so it must
//! agree with the full evaluation on every account and day.

use crate::common;

use keel_engine::{evaluate, health_as_of, signals};

#[test]
fn signals_name_the_moments_and_segment_the_full_evaluation_reports() {
    let config = keel_demo::DemoConfig {
        accounts: 60,
        months: 18,
        seed: 11,
        end: keel_core::parse_date("2026-05-01").unwrap(),
        plays_from: None,
    };
    let world: Vec<_> = keel_demo::generate(&config).collect();
    let mut names = common::Names::default();
    let histories: Vec<_> = world.iter().map(|h| common::history(h, &mut names)).collect();
    let plan = common::plan(&names);

    let (mut fired, mut segmented) = (0, 0);
    for as_of in ["2025-03-10", "2025-09-30", "2026-01-31", "2026-05-01"] {
        let as_of = keel_core::parse_date(as_of).unwrap();
        for h in &histories {
            let full = evaluate(&plan, h, as_of);
            let quick = signals(&plan, h, as_of);
            let ids: Vec<String> = full.moments.iter().map(|m| m.id.clone()).collect();
            assert_eq!(quick.fired, ids, "{} as of {as_of}", h.account.id);
            assert_eq!(quick.segment, full.segment, "{} as of {as_of}", h.account.id);
            assert_eq!(quick.health, full.health, "{} as of {as_of}", h.account.id);
            let (segment, health) = health_as_of(&plan, h, as_of);
            assert_eq!((segment, health), (full.segment.clone(), full.health.clone()), "{}", h.account.id);
            fired += ids.len();
            segmented += usize::from(full.segment.is_some());
        }
    }
    assert!(fired > 100, "moments fired: {fired}");
    assert!(segmented > 100, "accounts in a segment: {segmented}");
}
