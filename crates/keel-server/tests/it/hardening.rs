//! Issue 19's findings, each reproduced the way it was observed on a release
//! build (every test here failed on the main before its fix): keys in every
//! spelling of their scheme and checked before a body is read, 404 for an
//! account that is not there, precise type errors, timestamps inside a
//! window, sign-in and key guessing throttled per address and costing the
//! same for unknown emails, and connections that cannot be held open.

use std::time::Duration;

use base64::Engine as _;
use keel_app::keys::Scope;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::{self, events, get, key, post, start, start_with};
use crate::web::sign_in;

async fn metric(s: &common::Server, line_start: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", s.url)).await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn auth_schemes_are_case_insensitive() {
    let s = start().await;
    let (_, read) = key(&s, "a", &[Scope::Read]).await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{read}:"));
    for header in [format!("bearer {read}"), format!("BEARER {read}"), format!("basic {basic}")] {
        let res = reqwest::Client::new()
            .get(format!("{}/api/v1/accounts", s.url))
            .header("authorization", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{}", header.split(' ').next().unwrap());
    }
}

#[tokio::test]
async fn a_key_in_a_header_is_checked_before_the_body_is_read() {
    let s = start().await;
    let (_, read) = key(&s, "a", &[Scope::Read]).await;
    for path in ["/v1/batch", "/v1/track", "/v1/import"] {
        for (key, status) in [("not-a-key", 401), (read.as_str(), 403)] {
            let res = reqwest::Client::new()
                .post(format!("{}{path}", s.url))
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body("{ this is not json")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), status, "{path} with {key}");
        }
    }
}

#[tokio::test]
async fn the_timeline_of_an_account_that_is_not_there_is_404() {
    let s = start().await;
    let (_, admin) = key(&s, "a", &[Scope::Admin]).await;
    let (status, body) = get(&s, "/api/v1/accounts/nobody/timeline", &admin).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{body}");
    // An account with no changes yet has an empty timeline.
    let rows = json!([{"id": "acme", "name": "Acme", "created_date": "2026-01-20"}]);
    assert_eq!(post(&s, "/api/v1/records/accounts", Some(&admin), &rows).await.0, 200);
    let (status, body) = get(&s, "/api/v1/accounts/acme/timeline", &admin).await;
    assert_eq!((status, body["entries"].as_array().map(Vec::len)), (200, Some(0)), "{body}");
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_named_not_reported_missing() {
    let s = start().await;
    let (_, ingest) = key(&s, "a", &[Scope::Ingest]).await;
    let cases = [
        (json!({"userId": "u1", "event": {"name": "Login"}}), "event must be a string, not an object"),
        (json!({"userId": ["u1"], "event": "Login"}), "userId must be a string or a number, not an array"),
        (
            json!({"userId": "u1", "event": "Login", "messageId": true}),
            "messageId must be a string or a number",
        ),
    ];
    for (message, want) in cases {
        let (status, body) = post(&s, "/v1/track", Some(&ingest), &message).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["message"].as_str().unwrap().contains(want), "{message}: {body}");
        assert_eq!(body["details"]["rejection"], "invalid_message", "{body}");
    }
}

#[tokio::test]
async fn timestamps_outside_the_window_are_refused_on_ingest_and_record_writes() {
    // The server's clock says 2026-03-01T12:00:00Z.
    let s = start().await;
    let (ws, ingest) = key(&s, "a", &[Scope::Ingest]).await;
    let (_, admin) = key(&s, "a", &[Scope::Admin]).await;
    let group = json!({"userId": "u1", "groupId": "acme", "messageId": "g1", "traits": {"name": "Acme"}});
    assert_eq!(post(&s, "/v1/group", Some(&ingest), &group).await.0, 200);
    let track = |id: &str, extra: Value| {
        let mut m =
            json!({"userId": "u1", "event": "Login", "messageId": id, "context": {"groupId": "acme"}});
        m.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        m
    };
    let cases = [
        (json!({"timestamp": "0000-01-01T00:00:00Z"}), "before 2000-01-01"),
        // The clock correction of a 9999 sentAt lands in year -7973.
        (json!({"timestamp": "2026-03-01T11:00:00Z", "sentAt": "9999-12-31T00:00:00Z"}), "before 2000-01-01"),
        (json!({"timestamp": "2026-03-03T00:00:00Z"}), "after 2026-03-02T12:00:00Z"),
    ];
    for (i, (extra, want)) in cases.into_iter().enumerate() {
        let (status, body) = post(&s, "/v1/track", Some(&ingest), &track(&format!("t{i}"), extra)).await;
        assert_eq!(
            (status, body["details"]["rejection"].as_str()),
            (400, Some("invalid_timestamp")),
            "{body}"
        );
        assert!(body["message"].as_str().unwrap().contains(want), "{body}");
    }
    // In a batch each is rejected on its own, the good one stored.
    let batch = json!({"batch": [
        {"type": "track", "userId": "u1", "event": "Login", "messageId": "b1", "timestamp": "0001-01-01T00:00:00Z",
         "context": {"groupId": "acme"}},
        {"type": "track", "userId": "u1", "event": "Login", "messageId": "b2", "timestamp": "2026-03-01T11:00:00Z",
         "context": {"groupId": "acme"}},
        {"type": "track", "userId": "u9", "event": "Login", "messageId": "b3", "timestamp": "2026-03-01T11:00:00Z"},
    ]});
    let (status, body) = post(&s, "/v1/batch", Some(&ingest), &batch).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["code"], "invalid_timestamp", "{body}");
    assert_eq!(body["results"][1]["status"], "accepted", "{body}");
    assert_eq!(events(&s, ws).await, 1);
    // Each rejection is counted under its code, and those a batch answered
    // inside its 200 are kept for operators to read.
    assert_eq!(metric(&s, "keel_ingest_rejections_total{code=\"invalid_timestamp\"}").await, 4.0);
    assert_eq!(body["results"][2]["status"], "held", "{body}");
    let (status, kept) = get(&s, "/api/v1/ingest/rejections", &admin).await;
    assert_eq!(status, 200, "{kept}");
    let kept_ids: Vec<(&str, &str)> = kept["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["code"].as_str().unwrap(), r["message_id"].as_str().unwrap()))
        .collect();
    assert_eq!(kept_ids, [("invalid_timestamp", "b1")], "{kept}");
    assert_eq!(kept["counts"], json!({"invalid_timestamp": 1}));
    assert_eq!(kept["held"], 1, "{kept}");

    let contract = json!([{"id": "c-1", "account_id": "acme", "product": "platform", "start_date": "0000-01-01",
                           "mrr": "1000", "seats": 20, "billing_period": "monthly"}]);
    let (status, body) = post(&s, "/api/v1/records/contracts", Some(&admin), &contract).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid_records")), "{body}");
    assert!(body.to_string().contains("before 2000-01-01"), "{body}");
}

#[tokio::test]
async fn an_unknown_email_costs_the_password_check_a_known_one_costs() {
    let s = start().await;
    let ws = s.store.workspace("default").await.unwrap();
    common::dashboard_user(&s, ws, "lee@vendor.example", "leader").await;
    assert_eq!(sign_in(&s, "nobody@vendor.example", "guess").await.unwrap_err().0, 401);
    assert_eq!(metric(&s, "keel_password_checks_total").await, 1.0, "the unknown email was checked too");
    assert_eq!(sign_in(&s, "lee@vendor.example", "guess").await.unwrap_err().0, 401);
    assert_eq!(metric(&s, "keel_password_checks_total").await, 2.0);
}

#[tokio::test]
async fn failed_sign_ins_from_one_address_are_throttled_whatever_the_email() {
    let s = start().await;
    let ws = s.store.workspace("default").await.unwrap();
    common::dashboard_user(&s, ws, "lee@vendor.example", "leader").await;
    for i in 0..keel_server::web::auth::THROTTLE_FAILURES_PER_PEER {
        let email = format!("guess-{i}@vendor.example");
        assert_eq!(sign_in(&s, &email, "guess").await.unwrap_err().0, 401, "{email}");
    }
    let (status, body) = sign_in(&s, "lee@vendor.example", "s3cret-pass").await.unwrap_err();
    assert_eq!(status, 429);
    assert!(body.contains("Too many failed sign-ins from your address."), "{body}");
    assert_eq!(metric(&s, "keel_sign_ins_total{outcome=\"throttled\"}").await, 1.0);
}

#[tokio::test]
async fn unknown_keys_from_one_address_are_answered_429_without_a_lookup() {
    let s = start().await;
    for i in 0..keel_server::auth::BAD_KEYS_PER_PEER {
        let (status, _) = get(&s, "/api/v1/accounts", &format!("guess-{i}")).await;
        assert_eq!(status, 401);
    }
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/accounts", s.url))
        .bearer_auth("guess-again")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    assert!(res.headers().get("retry-after").is_some());
    assert_eq!(metric(&s, "keel_unknown_keys_total{answer=\"throttled\"}").await, 1.0);
    assert_eq!(
        metric(&s, "keel_unknown_keys_total{answer=\"unauthorized\"}").await,
        keel_server::auth::BAD_KEYS_PER_PEER as f64,
        "the throttled one cost no lookup"
    );
}

/// Reads until the server closes the connection; the guard only turns a
/// hang into a failure.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut out))
        .await
        .expect("the server never closed the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn slow_silent_and_idle_connections_are_closed_and_the_cap_holds() {
    let limits = keel_server::listen::ConnectionLimits {
        header_read: Duration::from_millis(300),
        body_read: Duration::from_millis(300),
        idle: Duration::from_millis(300),
        max_connections: 3,
    };
    let s = start_with(keel_server::Config { connections: limits, ..keel_server::Config::default() }).await;
    let (_, ingest) = key(&s, "a", &[Scope::Ingest]).await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    let connect = || tokio::net::TcpStream::connect(addr.clone());

    // Headers that never end.
    let mut slow = connect().await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: keel\r\nX-Slow: ").await.unwrap();
    let answer = read_until_closed(&mut slow).await;
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A body that stops half-way: 408 in the one error format.
    let mut stalled = connect().await.unwrap();
    let head = format!(
        "POST /v1/batch HTTP/1.1\r\nHost: keel\r\nAuthorization: Bearer {ingest}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"batch\": ["
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"request_timeout\""), "{answer}");

    // A kept-alive connection with nothing more to do.
    let mut idle = connect().await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: keel\r\n\r\n").await.unwrap();
    let answer = read_until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok\n"), "{answer}");

    // The cap: three silent connections fill it; a fourth client is answered
    // only once the server has closed them.
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(connect().await.unwrap());
    }
    let res = reqwest::get(format!("{}/healthz", s.url)).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    for mut c in silent {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(30), c.read(&mut buf))
            .await
            .expect("closed")
            .unwrap_or(0);
        assert_eq!(n, 0, "a silent connection was closed before the fourth was served");
    }
}

#[tokio::test]
async fn the_ingest_key_sends_tracking_calls_only_and_exports_are_spreadsheet_safe() {
    let s = start().await;
    let (ws, ingest) = key(&s, "default", &[Scope::Ingest]).await;
    let (_, write) = key(&s, "default", &[Scope::Write]).await;
    let (_, admin) = key(&s, "default", &[Scope::Admin]).await;
    let rows = json!([{"id": "acme", "name": "Acme Corp", "created_date": "2026-01-20"}]);

    // Record writes, touchpoints, tasks: not with the ingest key.
    assert_eq!(post(&s, "/api/v1/records/accounts", Some(&ingest), &rows).await.0, 403);
    let tp = json!({"kind": "call", "notes": "from a browser"});
    assert_eq!(post(&s, "/api/v1/accounts/acme/touchpoints", Some(&ingest), &tp).await.0, 403);
    for action in ["done", "snooze"] {
        let body = json!({"outcome": "x", "until": "2026-03-05", "reason": "x"});
        for k in [&ingest, &write] {
            let (status, _) = post(&s, &format!("/api/v1/tasks/1/{action}"), Some(k), &body).await;
            assert_eq!(status, 403, "{action}");
        }
    }
    // The write scope writes records and logs touchpoints.
    assert_eq!(post(&s, "/api/v1/records/accounts", Some(&write), &rows).await.0, 200);
    assert_eq!(post(&s, "/api/v1/accounts/acme/touchpoints", Some(&write), &tp).await.0, 201);

    // A group call cannot rename an imported account; it may name a new one.
    let formula = "=HYPERLINK(\"http://evil.example\",\"Renew now\")";
    for (id, m) in [("g1", "acme"), ("g2", "newco")] {
        let group = json!({"userId": "u1", "groupId": m, "messageId": id, "traits": {"name": formula}});
        assert_eq!(post(&s, "/v1/group", Some(&ingest), &group).await.0, 200);
    }
    let (_, acme) = get(&s, "/api/v1/accounts/acme", &admin).await;
    assert_eq!(acme["account"]["name"], "Acme Corp");
    // Control characters: one policy for every stored text.
    let nul =
        json!({"userId": "u1", "groupId": "nulco", "messageId": "g3", "traits": {"name": "Nul\u{0}Co"}});
    let (status, body) = post(&s, "/v1/group", Some(&ingest), &nul).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("traits.name: the value contains the control character U+0000")
    );
    let nul_row = json!([{"id": "nul", "name": "Nul\u{0}Co", "created_date": "2026-01-20"}]);
    let (status, body) = post(&s, "/api/v1/records/accounts", Some(&write), &nul_row).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("control character U+0000"), "{body}");

    // The dashboard's CSV export: the formula is text, not a formula.
    common::dashboard_user(&s, ws, "lee@vendor.example", "leader").await;
    let session = sign_in(&s, "lee@vendor.example", "s3cret-pass").await.unwrap();
    let (status, csv) = crate::web::page(&s, "/accounts.csv", &session).await;
    assert_eq!(status, 200);
    let newco = csv.lines().find(|l| l.starts_with("newco,")).unwrap_or_else(|| panic!("{csv}"));
    assert!(newco.starts_with("newco,\"'=HYPERLINK("), "{newco}");
}

#[tokio::test]
async fn reports_and_as_of_evaluations_refuse_dates_far_ahead() {
    let s = start_with(keel_server::Config {
        journey: Some(common::journey()),
        ..keel_server::Config::default()
    })
    .await;
    let (_, read) = key(&s, "a", &[Scope::Read]).await;
    for path in [
        "/api/v1/reports/funnel?as_of=9999-12-31",
        "/api/v1/reports/metrics?as_of=9999-12-31",
        "/api/v1/reports/cohorts?as_of=0001-01-01",
        "/api/v1/accounts/acme/state?as_of=9999-12-31",
    ] {
        let (status, body) = get(&s, path, &read).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_parameter")), "{path}: {body}");
        assert!(body["message"].as_str().unwrap().starts_with("as_of:"), "{body}");
    }
    // Five years ahead is the latest (the clock says 2026-03-01).
    assert_eq!(get(&s, "/api/v1/reports/funnel?as_of=2031-03-01", &read).await.0, 200);
    assert_eq!(get(&s, "/api/v1/reports/funnel?as_of=2031-03-02", &read).await.0, 400);
}

#[tokio::test]
async fn heavy_work_waits_its_turn_and_health_and_ingest_never_wait_behind_it() {
    let heavy = keel_server::heavy::HeavyLimits {
        concurrent: 1,
        waiting: 2,
        wait: Duration::from_secs(600),
        ..keel_server::heavy::HeavyLimits::default()
    };
    let s = start_with(keel_server::Config {
        journey: Some(common::journey()),
        heavy,
        ..keel_server::Config::default()
    })
    .await;
    let (ws, ingest) = key(&s, "a", &[Scope::Ingest]).await;
    let (_, read) = key(&s, "a", &[Scope::Read]).await;
    let group = json!({"userId": "u1", "groupId": "acme", "messageId": "g1", "traits": {"name": "Acme"}});
    assert_eq!(post(&s, "/v1/group", Some(&ingest), &group).await.0, 200);

    // A report holds the only turn; two more wait for it.
    let held = s.state.hold_heavy_turn().await;
    let mut waiting = s.state.heavy_waiting();
    let reports: Vec<_> = (0..2)
        .map(|_| {
            let (url, read) = (s.url.clone(), read.clone());
            tokio::spawn(async move {
                let res = reqwest::Client::new()
                    .get(format!("{url}/api/v1/reports/funnel"))
                    .bearer_auth(read)
                    .send()
                    .await
                    .unwrap();
                res.status().as_u16()
            })
        })
        .collect();
    waiting.wait_for(|n| *n == 2).await.unwrap();

    // A third has no room to wait: 503 busy, with Retry-After.
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/reports/cohorts", s.url))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    assert!(res.headers().get("retry-after").is_some());
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "busy", "{body}");

    // Meanwhile health, readiness, ingest and stored reads answer at once.
    assert_eq!(reqwest::get(format!("{}/healthz", s.url)).await.unwrap().status().as_u16(), 200);
    assert_eq!(reqwest::get(format!("{}/readyz", s.url)).await.unwrap().status().as_u16(), 200);
    for i in 0..20 {
        let m = json!({"userId": "u1", "event": "Login", "messageId": format!("h{i}"), "context": {"groupId": "acme"}});
        assert_eq!(post(&s, "/v1/track", Some(&ingest), &m).await.0, 200);
    }
    assert_eq!(events(&s, ws).await, 20);
    assert_eq!(get(&s, "/api/v1/accounts", &read).await.0, 200);
    assert_eq!(*waiting.borrow(), 2, "the two reports still wait");

    // The turn comes back: both reports run.
    drop(held);
    for r in reports {
        assert_eq!(r.await.unwrap(), 200);
    }
}

#[tokio::test]
async fn the_default_limits_take_what_the_official_sdks_send() {
    // RudderStack's SDK allows a 40 KB event and closes a batch only once
    // it reaches 4 MiB; both were refused with Segment's limits (413
    // batch_too_large, which the SDK treats as fatal: every event lost).
    let s = start().await;
    let (ws, ingest) = key(&s, "a", &[Scope::Ingest]).await;
    let batch: Vec<Value> = (0..100)
        .map(|i| {
            json!({"type": "track", "userId": "u1", "event": "Report Exported", "messageId": format!("big-{i}"),
                   "timestamp": "2026-03-01T11:00:00Z", "context": {"groupId": "acme"},
                   "properties": {"blob": "x".repeat(41 * 1024)}})
        })
        .collect();
    let body = json!({"batch": batch, "sentAt": "2026-03-01T11:00:00Z"});
    assert!(body.to_string().len() > 4 << 20, "the batch is over 4 MiB");
    let (status, answer) = post(&s, "/v1/batch", Some(&ingest), &body).await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(100)), "{}", &answer.to_string()[..200]);
    assert_eq!(events(&s, ws).await, 100);
}

/// Finding 5: SDKs send a user's first events before the `group` call that
/// names the account; those were refused (`unknown_account`, inside a 200
/// the SDK never reads). Now they are held and attributed when it arrives,
/// once each however often they are retried.
#[tokio::test]
async fn events_of_users_grouped_later_are_held_then_attributed_once() {
    let s = start().await;
    let (ws, k) = key(&s, "a", &[Scope::Ingest]).await;
    let early = json!({"batch": [
        common::track("e1", "late", None),
        common::track("e2", "late", None),
        {"type": "identify", "messageId": "i1", "userId": "late", "timestamp": "2026-03-01T09:00:00Z",
         "traits": {"email": "late@acme.test", "firstName": "Lee", "lastName": "Late"}},
    ]});
    let (status, body) = post(&s, "/v1/batch", Some(&k), &early).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["held"].as_u64(), body["rejected"].as_u64()), (Some(3), Some(0)), "{body}");
    assert_eq!(events(&s, ws).await, 0);
    assert_eq!(s.store.held_count(ws).await.unwrap(), 3);
    // A retry of a held message is a duplicate, not a second copy.
    let (_, again) = post(&s, "/v1/batch", Some(&k), &early).await;
    assert_eq!(again["duplicate"], 3, "{again}");

    let join = json!({"type": "group", "messageId": "g1", "userId": "late", "groupId": "acme",
                      "timestamp": "2026-03-01T11:30:00Z", "traits": {"name": "Acme"}});
    assert_eq!(post(&s, "/v1/group", Some(&k), &join).await.0, 200);
    assert_eq!(events(&s, ws).await, 2);
    assert_eq!(s.store.held_count(ws).await.unwrap(), 0);
    let contact =
        s.store.records(ws, keel_store::Accounts::All, keel_store::RecordKinds::ALL).await.unwrap().contacts;
    let late = contact.iter().find(|c| c.id.as_str() == "late").expect("the held identify made a contact");
    assert_eq!(
        (late.account.as_str(), late.email.as_str(), late.name.as_str()),
        ("acme", "late@acme.test", "Lee Late")
    );
    // Retried after the release, they are duplicates of what was stored.
    let (_, after) = post(&s, "/v1/batch", Some(&k), &early).await;
    assert_eq!((after["duplicate"].as_u64(), after["held"].as_u64()), (Some(3), Some(0)), "{after}");
    assert_eq!(events(&s, ws).await, 2);
    let (_, read) = key(&s, "a", &[Scope::Read]).await;
    let (_, kept) = get(&s, "/api/v1/ingest/rejections", &read).await;
    assert_eq!((&kept["rejections"], &kept["held"]), (&json!([]), &json!(0)), "nothing was refused: {kept}");
}
