//! Walks every error code of `keel_server::error::Code`: for each, a request
//! the router answers with it, called in-process (`oneshot`), checking the
//! status is the code's and the body is in the one error format. The store
//! lives on a small tmpfs, so the codes of a full disk are walked too.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt as _;
use keel_app::keys::{self, Scope};
use keel_server::error::Code;
use keel_store::{SqliteOptions, SqliteStore, Store};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::common;

/// What one request answered: status, `code`, `Retry-After`.
async fn answer(router: &axum::Router, request: Request<Body>) -> (u16, Option<String>, Option<String>) {
    let res = router.clone().oneshot(request).await.unwrap();
    let status = res.status().as_u16();
    let retry = res.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap().to_owned());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert!(status < 400 || body["message"].is_string(), "every error has a message: {body}");
    (status, body["code"].as_str().map(str::to_owned), retry)
}

fn call(
    method: &str,
    uri: &str,
    key: Option<&str>,
    content_type: &str,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, content_type);
    if let Some(k) = key {
        r = r.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    r.body(body.into()).unwrap()
}

fn json_call(uri: &str, key: &str, body: &Value) -> Request<Body> {
    call("POST", uri, Some(key), "application/json", body.to_string())
}

#[tokio::test]
async fn every_error_code_is_answered_with_its_status_in_the_one_format() {
    let disk = common::SmallDisk::mount();
    let dir = &disk.dir;
    let sqlite =
        SqliteStore::open(dir.path().join("k.db").to_str().unwrap(), SqliteOptions::default()).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());
    let config = keel_server::Config {
        journey: Some(common::journey()),
        rate_limit: None,
        limits: keel_server::segment::Limits::segment(),
        ..keel_server::Config::default()
    };
    let router = keel_server::router(keel_server::AppState::new(store.clone(), config, common::clock()));
    let ws = store.workspace("a").await.unwrap();
    let at = common::clock()();
    let key = |scopes: &'static [Scope]| {
        let store = store.clone();
        async move { keys::create(store.as_ref(), ws, "a", "t", scopes, at).await.unwrap().secret }
    };
    let (ingest, read, admin) =
        (key(&[Scope::Ingest]).await, key(&[Scope::Read]).await, key(&[Scope::Admin]).await);

    // A task, done once, so that another outcome conflicts.
    let account = json!({"batch": [{"type": "group", "messageId": "g1", "userId": "u1", "groupId": "acme",
                                    "timestamp": "2026-03-01T10:00:00Z", "traits": {"name": "Acme"}}]});
    assert_eq!(answer(&router, json_call("/v1/batch", &ingest, &account)).await.0, 200);
    let mut tx = store.begin(ws).await.unwrap();
    let task = keel_store::TaskRow {
        id: 0,
        account: keel_core::ExternalId::parse("acme").unwrap(),
        run_key: None,
        step: None,
        kind: "risk".into(),
        title: "Call".into(),
        description: String::new(),
        role: "csm".into(),
        owner: "csm@vendor.example".into(),
        due: keel_core::parse_date("2026-03-02").unwrap(),
        priority: "normal".into(),
        status: "open".into(),
        snoozed_until: None,
        snooze_reason: None,
        outcome: None,
        touchpoint_kind: "call".into(),
        evidence: "{}".into(),
        created_at: at,
        updated_at: at,
    };
    let task = tx.insert_task(&task).await.unwrap().unwrap();
    tx.commit().await.unwrap();
    let done = format!("/api/v1/tasks/{task}/done");
    assert_eq!(answer(&router, json_call(&done, &admin, &json!({"outcome": "called"}))).await.0, 200);

    let plain = keel_server::router(keel_server::AppState::new(
        store.clone(),
        keel_server::Config::default(),
        common::clock(),
    ));
    let limited = keel_server::router(keel_server::AppState::new(
        store.clone(),
        keel_server::Config {
            rate_limit: Some(keel_server::ratelimit::RateLimit { per_second: 0.001, burst: 1.0 }),
            ..keel_server::Config::default()
        },
        common::clock(),
    ));
    let gzip = |body: &str| {
        let mut r = call("POST", "/v1/track", Some(&ingest), "application/json", body.to_owned());
        r.headers_mut().insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        r
    };
    let brotli = {
        let mut r = call("POST", "/v1/track", Some(&ingest), "application/json", "{}");
        r.headers_mut().insert(header::CONTENT_ENCODING, "br".parse().unwrap());
        r
    };
    let track = |user: &str, account: Option<&str>| {
        let mut m = json!({"type": "track", "messageId": format!("t-{user}"), "userId": user,
                           "event": "report_viewed", "timestamp": "2026-03-01T11:00:00Z"});
        if let Some(a) = account {
            m["context"] = json!({"groupId": a});
        }
        m
    };
    let deep = format!("{}true{}", "(".repeat(100), ")".repeat(100));
    let mut walked = Vec::new();
    let mut expect = |code: Code, got: (u16, Option<String>, Option<String>)| {
        assert_eq!((got.0, got.1.as_deref()), (code.status().as_u16(), Some(code.as_str())), "{code}");
        walked.push((code, got.2));
    };
    expect(
        Code::InvalidJson,
        answer(&router, call("POST", "/v1/track", Some(&ingest), "application/json", "{")).await,
    );
    expect(
        Code::InvalidMessage,
        answer(&router, json_call("/v1/track", &ingest, &json!({"type": "track"}))).await,
    );
    let unlinked =
        json!({"type": "alias", "messageId": "al-1", "userId": "nobody", "previousId": "nobody-either"});
    expect(Code::Rejected, answer(&router, json_call("/v1/alias", &ingest, &unlinked)).await);
    expect(Code::InvalidBatch, answer(&router, json_call("/v1/batch", &ingest, &json!({}))).await);
    expect(Code::InvalidGzip, answer(&router, gzip("not gzip")).await);
    expect(
        Code::InvalidBody,
        answer(
            &router,
            call("POST", "/api/v1/journey/validate", Some(&read), "application/toml", vec![0xff, 0xfe]),
        )
        .await,
    );
    expect(
        Code::InvalidParameter,
        answer(
            &router,
            call("GET", &format!("/api/v1/reports/gates?condition={deep}"), Some(&read), "text/plain", ""),
        )
        .await,
    );
    expect(
        Code::InvalidField,
        answer(&router, json_call("/api/v1/keys", &admin, &json!({"name": "", "scopes": ["read"]}))).await,
    );
    expect(
        Code::InvalidRecord,
        answer(
            &router,
            json_call("/api/v1/accounts/acme/touchpoints", &admin, &json!({"kind": "Not A Label!"})),
        )
        .await,
    );
    expect(
        Code::InvalidRecords,
        answer(
            &router,
            call("POST", "/api/v1/records/accounts", Some(&admin), "text/csv", "id,name,created\n,,\n"),
        )
        .await,
    );
    expect(
        Code::Unauthorized,
        answer(&router, call("GET", "/api/v1/accounts", None, "text/plain", "")).await,
    );
    expect(Code::Forbidden, answer(&router, json_call("/v1/track", &read, &track("u1", Some("acme")))).await);
    expect(
        Code::NotFound,
        answer(&router, call("GET", "/api/v1/no-such-route", Some(&read), "text/plain", "")).await,
    );
    expect(
        Code::NoJourney,
        answer(&plain, call("GET", "/api/v1/journey", Some(&read), "text/plain", "")).await,
    );
    expect(
        Code::Conflict,
        answer(&router, json_call(&done, &admin, &json!({"outcome": "something else"}))).await,
    );
    expect(
        Code::MethodNotAllowed,
        answer(&router, call("DELETE", "/api/v1/accounts", Some(&admin), "text/plain", "")).await,
    );
    // The framework's own refusals answer in the same format: a body over
    // the global limit, a query parameter the operation does not declare.
    let over =
        answer(&router, call("POST", "/api/v1/keys", Some(&admin), "application/json", "x".repeat(3 << 20)))
            .await;
    assert_eq!((over.0, over.1.as_deref()), (413, Some("body_too_large")), "{over:?}");
    let unknown =
        answer(&router, call("GET", "/api/v1/journey?verbose=1", Some(&read), "text/plain", "")).await;
    assert_eq!((unknown.0, unknown.1.as_deref()), (400, Some("invalid_parameter")), "{unknown:?}");
    let big = json!({"type": "track", "userId": "u1", "event": "x", "properties": {"p": "x".repeat(40_000)}});
    expect(Code::MessageTooLarge, answer(&router, json_call("/v1/track", &ingest, &big)).await);
    let huge = json!({"batch": [{"p": "x".repeat(600_000)}]});
    expect(Code::BatchTooLarge, answer(&router, json_call("/v1/batch", &ingest, &huge)).await);
    let many = json!({"batch": vec![json!({}); 2_501]});
    expect(Code::TooManyMessages, answer(&router, json_call("/v1/batch", &ingest, &many)).await);
    expect(
        Code::BodyTooLarge,
        answer(
            &router,
            call("POST", "/api/v1/journey/validate", Some(&read), "application/toml", "#".repeat(2 << 20)),
        )
        .await,
    );
    expect(Code::UnsupportedEncoding, answer(&router, brotli).await);
    // Heavy work with no room to wait: a held turn makes the next report busy.
    let crowded_state = keel_server::AppState::new(
        store.clone(),
        keel_server::Config {
            journey: Some(common::journey()),
            heavy: keel_server::heavy::HeavyLimits {
                concurrent: 1,
                waiting: 0,
                ..keel_server::heavy::HeavyLimits::default()
            },
            ..keel_server::Config::default()
        },
        common::clock(),
    );
    let crowded = keel_server::router(crowded_state.clone());
    let held = crowded_state.hold_heavy_turn().await;
    expect(
        Code::Busy,
        answer(&crowded, call("GET", "/api/v1/reports/funnel", Some(&read), "text/plain", "")).await,
    );
    drop(held);
    // Heavy work that cannot finish within its deadline.
    let slow_state = keel_server::AppState::new(
        store.clone(),
        keel_server::Config {
            journey: Some(common::journey()),
            heavy: keel_server::heavy::HeavyLimits {
                deadline: std::time::Duration::from_millis(50),
                ..keel_server::heavy::HeavyLimits::default()
            },
            ..keel_server::Config::default()
        },
        common::clock(),
    );
    let stalled = slow_state.stall_heavy_work();
    expect(
        Code::DeadlineExceeded,
        answer(
            &keel_server::router(slow_state),
            call("GET", "/api/v1/reports/funnel", Some(&read), "text/plain", ""),
        )
        .await,
    );
    drop(stalled);
    // A body that never arrives, on a server with a short body timeout.
    let impatient = keel_server::router(keel_server::AppState::new(
        store.clone(),
        keel_server::Config {
            connections: keel_server::listen::ConnectionLimits {
                body_read: std::time::Duration::from_millis(50),
                ..keel_server::listen::ConnectionLimits::default()
            },
            ..keel_server::Config::default()
        },
        common::clock(),
    ));
    let never =
        Body::from_stream(futures_util::stream::pending::<Result<axum::body::Bytes, std::io::Error>>());
    expect(
        Code::RequestTimeout,
        answer(&impatient, call("POST", "/v1/batch", Some(&ingest), "application/json", never)).await,
    );
    expect(
        Code::UnsupportedMediaType,
        answer(&router, call("POST", "/api/v1/records/accounts", Some(&admin), "image/png", "x")).await,
    );
    assert_eq!(answer(&limited, call("GET", "/api/v1/accounts", Some(&read), "text/plain", "")).await.0, 200);
    expect(
        Code::RateLimited,
        answer(&limited, call("GET", "/api/v1/accounts", Some(&read), "text/plain", "")).await,
    );

    // A full disk: the write is refused, and readiness says so.
    let filler = disk.fill();
    let mut refused = None;
    for round in 0..20 {
        let batch: Vec<Value> = (0..300)
            .map(|i| {
                let mut m = track(&format!("r{round}-{i}"), Some("acme"));
                m["properties"] = json!({"padding": "x".repeat(1_500)});
                m
            })
            .collect();
        let got = answer(&router, json_call("/v1/batch", &ingest, &json!({ "batch": batch }))).await;
        if got.0 != 200 {
            refused = Some(got);
            break;
        }
    }
    expect(Code::StoreUnavailable, refused.expect("a full disk refuses a batch"));
    expect(Code::NotReady, answer(&router, call("GET", "/readyz", None, "text/plain", "")).await);
    std::fs::remove_file(&filler).unwrap();

    // A database that lost a table: Keel fails, and says only that.
    sqlx::query("DROP TABLE tasks").execute(sqlite.pool()).await.unwrap();
    expect(
        Code::Internal,
        answer(&router, call("GET", "/api/v1/tasks", Some(&read), "text/plain", "")).await,
    );

    let mut codes: Vec<&str> = walked.iter().map(|(c, _)| c.as_str()).collect();
    let mut all: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    codes.sort_unstable();
    all.sort_unstable();
    assert_eq!(codes, all, "every code is walked once");
    for (code, retry) in walked {
        let waits = matches!(code, Code::RateLimited | Code::StoreUnavailable | Code::NotReady | Code::Busy);
        assert_eq!(retry.is_some(), waits, "{code}: Retry-After {retry:?}");
    }
}
