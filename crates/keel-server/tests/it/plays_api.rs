//! Plays through the REST API over real HTTP: the task inbox, done and
//! snooze, the approval outbox, deliveries, an account's runs with their
//! audit log and the plays report — scopes, retries and workspaces kept apart.

use crate::common;

use crate::common::{Server, get, journey, key, post, start_with};
use keel_app::keys::Scope;
use keel_core::{Date, Timestamp};
use keel_store::WorkspaceId;
use serde_json::{Value, json};

fn date(s: &str) -> Date {
    keel_core::parse_date(s).unwrap()
}

fn noon(d: Date) -> Timestamp {
    d.and_hms_opt(12, 0, 0).unwrap().and_utc()
}

/// A small demo world in workspace `ws`, with two weeks of plays run up to
/// the server's day (2026-03-01).
async fn world_with_plays(s: &Server, ws: WorkspaceId) {
    let config = keel_demo::DemoConfig {
        accounts: 60,
        months: 14,
        seed: 11,
        end: date("2026-03-02"),
        plays_from: None,
    };
    common::store_demo(s.store.as_ref(), ws, &config).await;
    common::two_weeks_of_plays(s, ws).await;
}

async fn post_as(s: &Server, path: &str, key: &str, body: Value) -> (u16, Value) {
    post(s, path, Some(key), &body).await
}

#[tokio::test]
async fn tasks_outbox_and_deliveries_are_worked_through_the_api() {
    let config = keel_server::Config { journey: Some(journey()), ..keel_server::Config::default() };
    let s = start_with(config).await;
    let (ws, admin) = key(&s, "a", &[Scope::Admin]).await;
    let (_, read) = key(&s, "a", &[Scope::Read]).await;
    let (_, ingest) = key(&s, "a", &[Scope::Ingest]).await;
    let (_, other) = key(&s, "b", &[Scope::Admin]).await;
    world_with_plays(&s, ws).await;

    // The inbox: overdue first, each task with its play and owner.
    let (status, inbox) = get(&s, "/api/v1/tasks?limit=10000", &read).await;
    assert_eq!(status, 200, "{inbox}");
    let tasks = inbox["tasks"].as_array().unwrap().clone();
    assert!(tasks.len() >= 3, "plays created tasks: {inbox}");
    assert_eq!(inbox["total"].as_u64().unwrap() as usize, tasks.len());
    let overdue = tasks.iter().take_while(|t| t["overdue"] == true).count();
    assert_eq!(overdue as u64, inbox["overdue"].as_u64().unwrap(), "overdue ones come first");
    assert!(tasks.iter().all(|t| t["play"].is_string() && !t["owner"].as_str().unwrap().is_empty()));
    let owner = tasks[0]["owner"].as_str().unwrap();
    let (_, mine) = get(&s, &format!("/api/v1/tasks?owner={owner}"), &read).await;
    let mine = mine["tasks"].as_array().unwrap();
    assert!(!mine.is_empty() && mine.iter().all(|t| t["owner"] == owner));
    let (status, body) = get(&s, "/api/v1/tasks?status=later", &read).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_parameter")));
    assert!(body["message"].as_str().unwrap().starts_with("status:"), "{body}");
    let (_, elsewhere) = get(&s, "/api/v1/tasks", &other).await;
    assert_eq!(elsewhere["total"], 0, "another workspace sees none of them");

    // Done: the admin scope (issue 19: an ingest key, which browsers may
    // carry, once could); a retry answers the same; another outcome is refused.
    let (id, account) = (tasks[0]["id"].as_i64().unwrap(), tasks[0]["account"].as_str().unwrap().to_owned());
    let done = format!("/api/v1/tasks/{id}/done");
    assert_eq!(post_as(&s, &done, &read, json!({"outcome": "x"})).await.0, 403);
    assert_eq!(post_as(&s, &done, &ingest, json!({"outcome": "x"})).await.0, 403);
    assert_eq!(post_as(&s, &done, &other, json!({"outcome": "x"})).await.0, 404);
    let (status, task) = post_as(&s, &done, &admin, json!({"outcome": "Called; back on track"})).await;
    assert_eq!((status, task["status"].as_str()), (200, Some("done")), "{task}");
    let (status, again) = post_as(&s, &done, &admin, json!({"outcome": "Called; back on track"})).await;
    assert_eq!((status, again["updated_at"].clone()), (200, task["updated_at"].clone()), "{again}");
    let (status, body) = post_as(&s, &done, &admin, json!({"outcome": "something else"})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("conflict")), "{body}");
    let (status, body) = post_as(&s, &done, &admin, json!({"outcome": " "})).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid_field")), "a blank outcome: {body}");
    let (_, tps) = get(&s, &format!("/api/v1/accounts/{account}/records/touchpoints"), &read).await;
    let logged: Vec<&Value> =
        tps["records"].as_array().unwrap().iter().filter(|t| t["id"] == format!("keel:task:{id}")).collect();
    assert_eq!(logged.len(), 1, "the task logged one touchpoint: {tps}");
    assert_eq!(logged[0]["outcome"], "Called; back on track");

    // Snooze: within the journey's limit, with a reason.
    let snooze = format!("/api/v1/tasks/{}/snooze", tasks[1]["id"]);
    assert_eq!(post_as(&s, &snooze, &ingest, json!({"until": "2026-03-08", "reason": "x"})).await.0, 403);
    let (status, body) = post_as(&s, &snooze, &admin, json!({"until": "2099-01-01", "reason": "x"})).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid_field")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("snooze_max_days"), "{body}");
    let (status, body) = post_as(&s, &snooze, &admin, json!({"until": "2026-03-08"})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_json")), "no reason: {body}");
    let (status, task) =
        post_as(&s, &snooze, &admin, json!({"until": "2026-03-08", "reason": "travel"})).await;
    assert_eq!(
        (status, task["status"].as_str(), task["snoozed_until"].as_str()),
        (200, Some("snoozed"), Some("2026-03-08"))
    );
    let (status, _) = post_as(&s, "/api/v1/tasks/999999/done", &admin, json!({"outcome": "x"})).await;
    assert_eq!(status, 404);

    // The outbox: the rendered send; approving needs the admin scope; the
    // same approver again is a no-op, anyone else is refused.
    let (status, outbox) = get(&s, "/api/v1/outbox", &read).await;
    assert_eq!(status, 200, "{outbox}");
    let pending = outbox["entries"].as_array().unwrap().clone();
    assert!(pending.len() >= 2, "sensitive sends were held: {outbox}");
    assert!(pending.iter().all(|o| o["status"] == "pending" && o["send"]["effect"].is_string()));
    let approve = format!("/api/v1/outbox/{}/approve", pending[0]["id"]);
    assert_eq!(post_as(&s, &approve, &ingest, json!({"by": "lee"})).await.0, 403);
    assert_eq!(post_as(&s, &approve, &other, json!({"by": "lee"})).await.0, 404);
    let (status, entry) = post_as(&s, &approve, &admin, json!({"by": "lee@vendor.example"})).await;
    assert_eq!((status, entry["status"].as_str()), (200, Some("approved")), "{entry}");
    let (status, again) = post_as(&s, &approve, &admin, json!({"by": "lee@vendor.example"})).await;
    assert_eq!((status, again["decided_at"].clone()), (200, entry["decided_at"].clone()));
    let (status, body) = post_as(&s, &approve, &admin, json!({"by": "sam@vendor.example"})).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["message"].as_str().unwrap().contains("lee@vendor.example"), "{body}");
    let reject = format!("/api/v1/outbox/{}/reject", pending[1]["id"]);
    let (status, body) = post_as(&s, &reject, &admin, json!({"by": "lee"})).await;
    assert_eq!((status, body["message"].as_str()), (422, Some("reason: say why")), "{body}");
    let (status, entry) =
        post_as(&s, &reject, &admin, json!({"by": "lee", "reason": "in renewal talks"})).await;
    assert_eq!(
        (status, entry["status"].as_str(), entry["note"].as_str()),
        (200, Some("rejected"), Some("in renewal talks"))
    );
    let (_, all) = get(&s, "/api/v1/outbox?status=all", &read).await;
    assert!(all["entries"].as_array().unwrap().len() >= pending.len());

    // The rejected run is cancelled, and its audit log says who and why.
    let rejected_account = entry["account"].as_str().unwrap();
    let (status, plays) = get(&s, &format!("/api/v1/accounts/{rejected_account}/plays"), &read).await;
    assert_eq!(status, 200, "{plays}");
    let run = plays["runs"].as_array().unwrap().iter().find(|r| r["key"] == entry["run_key"]).unwrap();
    assert_eq!(run["status"], "cancelled", "{run}");
    let log: Vec<&Value> =
        plays["decisions"].as_array().unwrap().iter().filter(|d| d["run_key"] == entry["run_key"]).collect();
    assert_eq!(log.first().unwrap()["decision"], "fired", "{log:?}");
    assert!(
        log.iter().any(|d| d["by"] == "lee" && d["detail"].as_str().unwrap().contains("in renewal talks")),
        "{log:?}"
    );
    assert_eq!(get(&s, &format!("/api/v1/accounts/{rejected_account}/plays"), &other).await.0, 404);

    // Deliveries, and a replay that puts one back in the queue.
    let (status, list) = get(&s, "/api/v1/deliveries?status=pending", &read).await;
    assert_eq!(status, 200, "{list}");
    let queued = list["deliveries"].as_array().unwrap();
    assert!(!queued.is_empty(), "tech-touch sends were queued: {list}");
    let replay = format!("/api/v1/deliveries/{}/replay", queued[0]["id"]);
    assert_eq!(post_as(&s, &replay, &read, json!({"by": "lee"})).await.0, 403);
    let (status, d) = post_as(&s, &replay, &admin, json!({"by": "lee"})).await;
    assert_eq!(
        (status, d["status"].as_str(), d["attempts"].as_i64()),
        (200, Some("pending"), Some(0)),
        "{d}"
    );
    assert_eq!(post_as(&s, "/api/v1/deliveries/999999/replay", &admin, json!({"by": "lee"})).await.0, 404);
    let (status, _) = get(&s, "/api/v1/deliveries?status=lost", &read).await;
    assert_eq!(status, 400);

    // The plays report counts what happened here.
    let (status, report) = get(&s, "/api/v1/reports/plays?as_of=2026-03-01", &read).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["plays"].as_array().unwrap().len(), 19);
    let owners = report["owners"].as_array().unwrap();
    let done: u64 = owners.iter().map(|o| o["done"].as_u64().unwrap()).sum();
    assert_eq!(done, 1, "{report}");
}

/// What the webhook receiver got: the headers that matter and the body.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String, String)>>>;

/// A webhook receiver on a loopback port that refuses each delivery's
/// first attempt (500) and accepts the next.
async fn receiver() -> (String, Received) {
    use axum::http::HeaderMap;
    let got: Received = Received::default();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::<String>::new()));
    let (g, s) = (got.clone(), seen.clone());
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (got, seen) = (g.clone(), s.clone());
            async move {
                let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                if seen.lock().unwrap().insert(h("webhook-id")) {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                got.lock().unwrap().push((
                    h("webhook-id"),
                    h("webhook-timestamp"),
                    h("webhook-signature"),
                    body,
                ));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// `keel serve`'s delivery worker sends what plays queue without anyone
/// running `keel deliver`: webhooks, retried after a refusal; and
/// emails, with no SMTP server configured, wait with the reason.
#[tokio::test]
async fn the_server_delivers_queued_webhooks_on_its_own_with_retries() {
    let (url, got) = receiver().await;
    // The default journey plus an internal play that posts every account to a CRM.
    let source = format!(
        "{}\n[[plays]]\nid = \"crm_sync\"\ntype = \"activity\"\ntrigger = {{ when = \"true\" }}\nholdout_pct = 0\n\n\
         [[plays.steps]]\nkind = \"webhook\"\nurl = \"{url}\"\n",
        keel_journey::DEFAULT_JOURNEY
    );
    let checked = keel_journey::check("journey.toml", &source).unwrap();
    let journey = std::sync::Arc::new(keel_app::JourneyConfig {
        journey: checked.clone(),
        version: checked.version.clone(),
        file: "journey.toml".into(),
        source,
    });
    let delivery = keel_delivery::DeliveryConfig {
        backoff: std::time::Duration::ZERO,
        journey_version: journey.version.clone(),
        ..keel_delivery::DeliveryConfig::default()
    };
    let config = keel_server::Config { journey: Some(journey), ..keel_server::Config::default() };
    let s = start_with(config).await;
    let (ws, read) = key(&s, "a", &[Scope::Read]).await;
    let config =
        keel_demo::DemoConfig { accounts: 8, months: 14, seed: 5, end: date("2026-03-02"), plays_from: None };
    common::store_demo(s.store.as_ref(), ws, &config).await;
    keel_app::runner::run_day(s.store.as_ref(), ws, &checked, date("2026-03-01"), noon(date("2026-03-01")))
        .await
        .unwrap();

    // Two rounds of what the worker `keel serve` runs beside the HTTP
    // server does every `deliver_every`: the receiver refuses each first
    // attempt, and with no backoff the retry is due at once.
    let now = common::clock()();
    let first = keel_delivery::deliver_due(s.store.as_ref(), &delivery, now, now).await.unwrap();
    assert!(first.sent == 0 && first.retrying >= 8, "every webhook refused once: {first:?}");
    let second = keel_delivery::deliver_due(s.store.as_ref(), &delivery, now, now).await.unwrap();
    assert_eq!(second.sent, 8, "each webhook on its second attempt: {second:?}");
    let (_, list) = get(&s, "/api/v1/deliveries", &read).await;
    let deliveries = list["deliveries"].as_array().unwrap().clone();
    let hooks: Vec<&Value> = deliveries.iter().filter(|d| d["channel"] == "webhook").collect();
    assert_eq!(hooks.len(), 8, "one per account: {deliveries:?}");
    for d in &hooks {
        assert_eq!((d["status"].as_str(), d["attempts"].as_i64()), (Some("sent"), Some(2)), "{d}");
    }
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 8, "each accepted once");
    for (id, timestamp, signature, body) in &got {
        // Signatures are checked against the reference library in the CLI
        // tests; this play names no secret, so it sends none.
        assert!(!id.is_empty(), "a webhook-id");
        assert!(timestamp.parse::<i64>().is_ok() && signature.is_empty(), "{timestamp} {signature}");
        let payload: Value = serde_json::from_str(body).unwrap();
        assert_eq!(payload["play"]["id"], "crm_sync", "{payload}");
    }
    let ids: std::collections::HashSet<&String> = got.iter().map(|g| &g.0).collect();
    assert_eq!(ids.len(), 8, "one webhook-id per delivery, the same on its retry");
    for d in deliveries.iter().filter(|d| d["channel"] == "email") {
        assert_ne!(d["status"], "sent", "{d}");
        assert!(d["last_error"].as_str().unwrap_or_default().contains("no SMTP server"), "{d}");
    }
}
