//! Every kind survives export → import unchanged, in both formats.

use keel_core::EntityKind;
use keel_import::{Format, Outcome};
use keel_store::Store;

use crate::{expected_snapshot, export_kind, fixture, world};

async fn round_trip(format_of: impl Fn(EntityKind) -> Format) {
    let world = world(40, 20, 7);
    let f = fixture().await;
    for kind in EntityKind::ALL {
        let path = export_kind(f.dir.path(), &world, kind, format_of(kind));
        let report = f.import(kind, &path).await;
        assert_eq!(report.outcome, Outcome::Committed, "{kind}: {:?}", report.diagnostics);
        assert_eq!(report.rejected, 0, "{kind}: {:?}", report.diagnostics);
        assert!(report.counts.inserted > 0, "{kind}: nothing inserted");
        assert_eq!(report.counts.inserted, report.rows, "{kind}");
    }
    let stored = f.snapshot().await;
    let expected = expected_snapshot(&world);
    assert_eq!(stored.accounts, expected.accounts);
    assert_eq!(stored.contracts, expected.contracts);
    assert_eq!(stored.contacts, expected.contacts);
    assert_eq!(stored.tickets, expected.tickets);
    assert_eq!(stored.surveys, expected.surveys);
    assert_eq!(stored.touchpoints, expected.touchpoints);
    assert_eq!(stored.opportunities, expected.opportunities);
    assert_eq!(stored.events.len(), expected.events.len());
    assert_eq!(stored.events, expected.events);
}

#[tokio::test]
async fn every_kind_round_trips_through_csv_with_events_as_jsonl() {
    round_trip(|kind| if kind == EntityKind::Events { Format::Jsonl } else { Format::Csv }).await;
}

#[tokio::test]
async fn every_kind_round_trips_through_jsonl() {
    round_trip(|_| Format::Jsonl).await;
}

#[tokio::test]
async fn every_kind_round_trips_through_csv() {
    round_trip(|_| Format::Csv).await;
}

#[tokio::test]
async fn usage_rollups_match_a_recount_of_the_raw_events() {
    let world = world(6, 10, 3);
    let f = fixture().await;
    for kind in [EntityKind::Accounts, EntityKind::Events] {
        let format = if kind == EntityKind::Events { Format::Jsonl } else { Format::Csv };
        f.import(kind, &export_kind(f.dir.path(), &world, kind, format)).await;
    }
    for h in &world {
        let usage = f.store.usage(f.ws, &h.account.id).await.unwrap();
        let mut users = std::collections::BTreeMap::new();
        let mut names = std::collections::BTreeMap::new();
        for e in &h.events {
            let day = keel_store::day_number(e.timestamp);
            let known = keel_store::day_number(e.received_at);
            *users.entry((day, e.user.to_string(), known)).or_insert(0i64) += 1;
            *names.entry((day, e.name.to_string(), known)).or_insert(0i64) += 1;
        }
        let got_users: std::collections::BTreeMap<_, _> =
            usage.users.iter().map(|u| ((u.day, u.user.clone(), u.known_day), u.events)).collect();
        let got_names: std::collections::BTreeMap<_, _> =
            usage.events.iter().map(|u| ((u.day, u.name.clone(), u.known_day), u.events)).collect();
        assert_eq!(got_users, users, "{}", h.account.id);
        assert_eq!(got_names, names, "{}", h.account.id);
    }
}

#[tokio::test]
async fn segment_style_jsonl_keys_are_understood() {
    let f = fixture().await;
    let accounts = f.write("accounts.csv", b"id,name,created_date\nacme,Acme,2025-01-01\n");
    f.import(EntityKind::Accounts, &accounts).await;
    let events = f.write(
        "segment.jsonl",
        br#"{"type":"track","messageId":"m-1","userId":"u1","event":"report_viewed","timestamp":"2025-03-01T10:00:00Z","receivedAt":"2025-03-01T10:00:02Z","context":{"groupId":"acme","library":{"name":"analytics-python"}},"properties":{"report":"roi"}}
{"type":"track","messageId":"m-2","anonymousId":"anon-9","event":"login","timestamp":"2025-03-01T11:00:00Z","groupId":"acme","sentAt":"2025-03-01T11:00:01Z"}
"#,
    );
    let report = f.import(EntityKind::Events, &events).await;
    assert_eq!(report.rejected, 0, "{:?}", report.diagnostics);
    let stored = f.snapshot().await.events;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].user.as_str(), "u1");
    assert_eq!(stored[0].properties["report"], "roi");
    assert_eq!(stored[1].user.as_str(), "anon-9");
    // No receivedAt: the import time stands in.
    assert_eq!(stored[1].received_at, crate::now());
}

#[tokio::test]
async fn events_without_message_id_get_a_stable_one() {
    let f = fixture().await;
    f.import(EntityKind::Accounts, &f.write("a.csv", b"id,name,created_date\nacme,Acme,2025-01-01\n")).await;
    let events = f.write(
        "e.csv",
        b"account_id,user_id,event,timestamp\nacme,u1,login,2025-03-01T10:00:00Z\nacme,u1,login,2025-03-01T10:05:00Z\n",
    );
    let first = f.import(EntityKind::Events, &events).await;
    assert_eq!(first.counts.inserted, 2);
    let second = f.import(EntityKind::Events, &events).await;
    assert_eq!((second.counts.inserted, second.counts.unchanged), (0, 2));
}
