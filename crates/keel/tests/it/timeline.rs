//! `keel timeline`: rebuilt from history, each day read back is what an
//! evaluation as of that day concludes.

use serde_json::Value;

use crate::{keel, stdout};

#[test]
fn a_rebuilt_timeline_reads_back_what_an_evaluation_as_of_each_day_concludes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let demo = keel(&db, &["demo", "--accounts", "12", "--end", "2026-06-01"]);
    assert!(demo.status.success());
    assert!(stdout(&demo).contains("timeline: concluded"), "the demo keeps the timeline: {}", stdout(&demo));
    let out = keel(&db, &["timeline", "show", "acct-000003", "--as-of", "2026-03-01", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = keel(&db, &["timeline", "show", "acct-999999", "--as-of", "2026-03-01"]);
    assert_eq!(out.status.code(), Some(1), "no such account");
    assert!(String::from_utf8_lossy(&out.stderr).contains("keel timeline rebuild"));

    let out = keel(&db, &["timeline", "rebuild", "--through", "2026-06-01"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("of 12 accounts through 2026-06-01"), "{}", stdout(&out));

    let mut compared = 0;
    for account in ["acct-000001", "acct-000003", "acct-000008"] {
        for day in ["2025-09-15", "2026-01-31", "2026-06-01"] {
            let shown = keel(&db, &["timeline", "show", account, "--as-of", day, "--json"]);
            let state = keel(&db, &["account", account, "--as-of", day, "--json"]);
            let state: Value = serde_json::from_str(&stdout(&state)).unwrap();
            if !shown.status.success() {
                // Only before the account's first contract and usage.
                assert_eq!(state["lines"], serde_json::json!([]), "{account} {day}");
                assert_eq!(state["metrics"]["active_users_28d"], serde_json::json!(0), "{account} {day}");
                continue;
            }
            compared += 1;
            let facts: Value = serde_json::from_str(&stdout(&shown)).unwrap();
            let at = |path: &str| facts.get(path).cloned().unwrap_or(Value::Null);
            assert_eq!(at("health/score"), state["health"]["score"], "{account} {day}");
            assert_eq!(at("health/band"), state["health"]["band"], "{account} {day}");
            assert_eq!(at("segment"), state["segment"], "{account} {day}");
            for line in state["lines"].as_array().unwrap() {
                let name = line["product_line"].as_str().unwrap();
                assert_eq!(at(&format!("line/{name}/stage")), line["stage"], "{account} {day}");
                assert_eq!(at(&format!("line/{name}/entered")), line["entered"], "{account} {day}");
            }
            for (metric, value) in state["metrics"].as_object().unwrap() {
                assert_eq!(at(&format!("metric/{metric}")), *value, "{account} {day} {metric}");
            }
        }
    }
    assert!(compared >= 7, "{compared} account-days compared");
}
