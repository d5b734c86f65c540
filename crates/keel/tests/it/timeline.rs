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

/// `keel features`: read from the timeline, the table equals the one
/// evaluated account by account (a journey with the same rules but other
/// bytes is another version, without a timeline); outcomes are left empty
/// where their horizon runs past `--as-of`.
#[test]
fn the_feature_table_read_from_the_timeline_equals_the_evaluated_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("k.db");
    let demo = keel(&db, &["demo", "--accounts", "40", "--months", "18", "--end", "2026-06-01"]);
    assert!(demo.status.success(), "{}", String::from_utf8_lossy(&demo.stderr));
    let journey = std::fs::read_to_string(dir.path().join("journey.toml")).unwrap();
    std::fs::write(dir.path().join("same-rules.toml"), format!("{journey}\n# the same rules\n")).unwrap();
    let table = |journey: &str| {
        let args = [
            "--journey",
            journey,
            "features",
            "--from",
            "2025-06-01",
            "--to",
            "2026-06-01",
            "--as-of",
            "2026-06-01",
            "--out",
            "-",
        ];
        let out = keel(&db, &args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        stdout(&out)
    };
    let read = table("journey.toml");
    assert_eq!(read, table("same-rules.toml"));
    let mut lines = read.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for column in ["account", "date", "health_score", "active_users_28d", "churned_30d", "expanded_180d"] {
        assert!(header.contains(&column), "{column} in {header:?}");
    }
    let col = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.len() > 300, "{} rows", rows.len());
    // 2026-05-31 + 30 days is after --as-of: unknown; 2025-06-30 + 180 days is known.
    for r in &rows {
        let known_30 = r[col("date")] <= "2026-05-02";
        assert_eq!(r[col("churned_30d")].is_empty(), !known_30, "{r:?}");
    }
    let churned = rows.iter().filter(|r| r[col("churned_90d")] == "1").count();
    let scored = rows.iter().filter(|r| !r[col("health_score")].is_empty()).count();
    assert!(churned > 0 && scored > rows.len() / 2, "{churned} churned, {scored} scored of {}", rows.len());
}
