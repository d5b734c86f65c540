//! The Segment-compatible ingest API over real HTTP against a real SQLite
//! store: authentication, limits, malformed input, per-item batch results,
//! exact deduplication, attribution, tenant isolation and group commit.

use std::sync::Arc;

use keel_app::keys::{self, Scope};
use serde_json::{Value, json};

use crate::common;

use crate::common::{events, key, post, start, start_with, track};

#[tokio::test]
async fn keys_are_checked_before_anything_is_stored() {
    // No key cache: the revocation below must take effect at once.
    let s = start_with(keel_server::Config {
        key_cache: chrono::Duration::zero(),
        ..keel_server::Config::default()
    })
    .await;
    let (ws, ingest) = key(&s, "a", &[Scope::Ingest]).await;
    let (_, read_only) = key(&s, "a", &[Scope::Read]).await;
    let body = track("m-1", "u1", Some("acme"));

    let res = reqwest::Client::new().post(format!("{}/v1/track", s.url)).json(&body).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(res.headers().contains_key("www-authenticate"));
    let (status, err) = post(&s, "/v1/track", Some("keel_not_a_real_key_at_all_000000"), &body).await;
    assert_eq!((status, err["code"].as_str()), (401, Some("unauthorized")));
    let (status, err) = post(&s, "/v1/track", Some(&read_only), &body).await;
    assert_eq!((status, err["code"].as_str()), (403, Some("forbidden")));
    assert_eq!(events(&s, ws).await, 0);

    // Basic (key as user name), Bearer, and writeKey in the body all work.
    let (status, ok) = post(&s, "/v1/track", Some(&ingest), &body).await;
    assert_eq!((status, ok["result"]["status"].as_str()), (200, Some("accepted")));
    let res = reqwest::Client::new()
        .post(format!("{}/v1/track", s.url))
        .bearer_auth(&ingest)
        .json(&track("m-2", "u1", Some("acme")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let mut with_key = track("m-3", "u1", Some("acme"));
    with_key["writeKey"] = json!(ingest);
    assert_eq!(post(&s, "/v1/track", None, &with_key).await.0, 200);
    assert_eq!(events(&s, ws).await, 3);

    // A revoked key stops working.
    let prefix = &ingest[..keys::PREFIX_LEN];
    assert!(
        s.store
            .revoke_api_key(ws, prefix, keel_core::parse_timestamp("2026-02-01T00:00:00Z").unwrap())
            .await
            .unwrap()
    );
    assert_eq!(post(&s, "/v1/track", Some(&ingest), &track("m-4", "u1", Some("acme"))).await.0, 401);
}

#[tokio::test]
async fn limits_and_malformed_input_get_clear_errors() {
    // Segment's own limits (the defaults take what RudderStack sends).
    let limits = keel_server::segment::Limits::segment();
    let s = start_with(keel_server::Config { limits, ..keel_server::Config::default() }).await;
    let (ws, k) = key(&s, "a", &[Scope::Ingest]).await;
    let client = reqwest::Client::new();
    let raw = |path: &str, body: String| {
        client.post(format!("{}{path}", s.url)).basic_auth(&k, Some("")).body(body).send()
    };
    let res = raw("/v1/track", "{\"userId\": ".into()).await.unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["code"], "invalid_json");
    assert!(err["message"].as_str().unwrap().contains("line 1"), "{err}");

    let (status, err) = post(&s, "/v1/track", Some(&k), &json!({"userId": "u1"})).await;
    assert_eq!((status, err["code"].as_str()), (400, Some("invalid_message")));
    assert!(err["message"].as_str().unwrap().contains("event is required"));

    let mut big = track("m-big", "u1", Some("acme"));
    big["properties"]["blob"] = json!("x".repeat(33 * 1024));
    let (status, err) = post(&s, "/v1/track", Some(&k), &big).await;
    assert_eq!((status, err["code"].as_str()), (413, Some("message_too_large")));

    let many: Vec<Value> = (0..2501).map(|i| track(&format!("m{i}"), "u1", Some("acme"))).collect();
    let (status, err) = post(&s, "/v1/batch", Some(&k), &json!({"batch": many})).await;
    assert_eq!((status, err["code"].as_str()), (413, Some("too_many_messages")));

    let heavy: Vec<Value> = (0..40)
        .map(|i| {
            let mut m = track(&format!("h{i}"), "u1", Some("acme"));
            m["properties"]["blob"] = json!("y".repeat(15 * 1024));
            m
        })
        .collect();
    let (status, err) = post(&s, "/v1/batch", Some(&k), &json!({"batch": heavy})).await;
    assert_eq!((status, err["code"].as_str()), (413, Some("batch_too_large")));

    let (status, err) = post(&s, "/v1/batch", Some(&k), &json!({"messages": []})).await;
    assert_eq!((status, err["code"].as_str()), (400, Some("invalid_batch")));
    assert_eq!(post(&s, "/v1/jump", Some(&k), &json!({})).await.0, 404);

    let encoded = |encoding: &str, body: Vec<u8>| {
        client
            .post(format!("{}/v1/batch", s.url))
            .basic_auth(&k, Some(""))
            .header("content-encoding", encoding.to_owned())
            .body(body)
            .send()
    };
    let res = encoded("gzip", b"not gzip at all".to_vec()).await.unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "invalid_gzip");
    let res = encoded("br", b"{}".to_vec()).await.unwrap();
    assert_eq!(res.status().as_u16(), 415);
    assert_eq!(events(&s, ws).await, 0, "nothing from refused requests was stored");

    // Segment's libraries may gzip a batch.
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json!({"batch": [track("z-1", "u1", Some("acme"))]}).to_string().as_bytes()).unwrap();
    let res = encoded("gzip", gz.finish().unwrap()).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["accepted"], 1);
    assert_eq!(events(&s, ws).await, 1);
}

#[tokio::test]
async fn a_batch_answers_per_item_and_a_resend_is_all_duplicates() {
    let limits = keel_server::segment::Limits::segment();
    let s = start_with(keel_server::Config { limits, ..keel_server::Config::default() }).await;
    let (ws, k) = key(&s, "a", &[Scope::Ingest]).await;
    let mut oversized = track("m-4", "u1", Some("acme"));
    oversized["properties"]["blob"] = json!("z".repeat(33 * 1024));
    let batch = json!({"batch": [
        {"type": "group", "messageId": "g-1", "userId": "u2", "groupId": "initech", "traits": {"name": "Initech", "plan": "pro"}},
        track("m-1", "u1", Some("acme")),
        track("m-2", "u2", None),
        track("m-1", "u1", Some("acme")),
        {"type": "track", "messageId": "m-3", "userId": "u1"},
        track("m-5", "nobody-knows-me", None),
        oversized,
        {"type": "track", "messageId": "m-6", "userId": "u1", "event": "  ", "context": {"groupId": "acme"}},
        {"type": "jump", "messageId": "m-7", "userId": "u1"},
    ]});
    let (status, body) = post(&s, "/v1/batch", Some(&k), &batch).await;
    assert_eq!(status, 200, "{body}");
    let statuses: Vec<&str> =
        body["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        [
            "accepted",
            "accepted",
            "accepted",
            "duplicate",
            "rejected",
            "held",
            "rejected",
            "rejected",
            "rejected"
        ]
    );
    // Each rejection carries a code to match on, and a reason to read.
    let codes: Vec<&str> =
        body["results"].as_array().unwrap()[4..].iter().filter_map(|r| r["code"].as_str()).collect();
    assert_eq!(
        codes,
        ["invalid_message", "message_too_large", "invalid_event_name", "unknown_type"],
        "{body}"
    );
    assert!(body["results"][4]["reason"].as_str().unwrap().contains("event is required"));
    assert!(body["results"][6]["reason"].as_str().unwrap().contains("the limit is"));
    assert_eq!(
        (
            body["accepted"].as_u64(),
            body["duplicate"].as_u64(),
            body["held"].as_u64(),
            body["rejected"].as_u64()
        ),
        (Some(3), Some(1), Some(1), Some(4))
    );
    assert_eq!(events(&s, ws).await, 2);

    // The group call created the account with its traits; u2's event went to it.
    let records =
        s.store.records(ws, keel_store::Accounts::All, keel_store::RecordKinds::default()).await.unwrap();
    let initech = records.accounts.iter().find(|a| a.id.as_str() == "initech").unwrap();
    assert_eq!((initech.name.as_str(), initech.attributes["plan"].as_str()), ("Initech", Some("pro")));
    let usage = s.store.usage(ws, &keel_core::ExternalId::parse("initech").unwrap()).await.unwrap();
    assert_eq!(usage.users.iter().map(|u| u.user.as_str()).collect::<Vec<_>>(), ["u2"]);

    // Resending the whole batch stores nothing new.
    let (status, again) = post(&s, "/v1/batch", Some(&k), &batch).await;
    assert_eq!(status, 200);
    assert_eq!((again["accepted"].as_u64(), again["duplicate"].as_u64()), (Some(0), Some(5)));
    assert_eq!(events(&s, ws).await, 2);

    // The held event is stored once its user joins an account.
    let join = json!({"type": "group", "messageId": "g-2", "userId": "nobody-knows-me", "groupId": "acme",
                      "timestamp": "2026-03-02T00:00:00Z"});
    assert_eq!(post(&s, "/v1/group", Some(&k), &join).await.0, 200);
    assert_eq!(events(&s, ws).await, 3);
    let usage = s.store.usage(ws, &keel_core::ExternalId::parse("acme").unwrap()).await.unwrap();
    assert!(usage.users.iter().any(|u| u.user.as_str() == "nobody-knows-me"), "{:?}", usage.users);
    assert_eq!(s.store.held_count(ws).await.unwrap(), 0);

    // What happened shows in the Prometheus metrics.
    let text = reqwest::get(format!("{}/metrics", s.url)).await.unwrap().text().await.unwrap();
    for line in [
        "keel_ingest_messages_total{outcome=\"accepted\"} 4",
        "keel_ingest_messages_total{outcome=\"duplicate\"} 6",
        "keel_ingest_messages_total{outcome=\"held\"} 1",
        "keel_ingest_messages_total{outcome=\"rejected\"} 8",
        "keel_ingest_requests_total{kind=\"batch\",status=\"200\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
    }
}

#[tokio::test]
async fn a_key_writes_only_into_its_own_workspace() {
    let s = start().await;
    let (a, key_a) = key(&s, "a", &[Scope::Ingest]).await;
    let (b, key_b) = key(&s, "b", &[Scope::Admin]).await;
    assert_eq!(post(&s, "/v1/track", Some(&key_a), &track("same-id", "u1", Some("acme"))).await.0, 200);
    assert_eq!((events(&s, a).await, events(&s, b).await), (1, 0));
    // The same message id in another workspace is a different message.
    let (status, body) = post(&s, "/v1/track", Some(&key_b), &track("same-id", "u1", Some("acme"))).await;
    assert_eq!((status, body["result"]["status"].as_str()), (200, Some("accepted")));
    assert_eq!((events(&s, a).await, events(&s, b).await), (1, 1));
    let b_accounts =
        s.store.records(b, keel_store::Accounts::All, keel_store::RecordKinds::default()).await.unwrap();
    assert_eq!(b_accounts.accounts.len(), 1);
}

#[tokio::test]
async fn concurrent_single_calls_share_commits_and_each_is_stored_once() {
    let s = start().await;
    let (ws, k) = key(&s, "a", &[Scope::Ingest]).await;
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (client, url, k) = (client.clone(), s.url.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            // Every message twice, concurrently: exactly one of each is stored.
            let body = track(&format!("c-{}", i % 100), &format!("u{}", i % 7), Some("acme"));
            let res = client
                .post(format!("{url}/v1/track"))
                .basic_auth(&k, Some(""))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 200);
            let v: Value = res.json().await.unwrap();
            v["result"]["status"].as_str().unwrap().to_owned()
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        if t.await.unwrap() == "accepted" {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 100);
    assert_eq!(events(&s, ws).await, 100);
}

#[tokio::test]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after() {
    let limit = keel_server::ratelimit::RateLimit { per_second: 1.0, burst: 2.0 };
    let s =
        start_with(keel_server::Config { rate_limit: Some(limit), ..keel_server::Config::default() }).await;
    let (ws, k) = key(&s, "a", &[Scope::Ingest]).await;
    let (_, other) = key(&s, "a", &[Scope::Ingest]).await;
    for i in 0..2 {
        assert_eq!(
            post(&s, "/v1/track", Some(&k), &track(&format!("r-{i}"), "u1", Some("acme"))).await.0,
            200
        );
    }
    // The server's clock stands still in this test: the bucket stays empty.
    let res = reqwest::Client::new()
        .post(format!("{}/v1/track", s.url))
        .basic_auth(&k, Some(""))
        .json(&track("r-3", "u1", Some("acme")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 429);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "rate_limited");
    assert_eq!(
        post(&s, "/v1/track", Some(&other), &track("r-4", "u1", Some("acme"))).await.0,
        200,
        "per key"
    );
    assert_eq!(events(&s, ws).await, 3);
}

#[tokio::test]
async fn identify_keeps_contacts_and_their_role_periods() {
    let s = start().await;
    let (ws, k) = key(&s, "a", &[Scope::Ingest]).await;
    let msg = |id: &str, kind: &str, ts: &str, extra: Value| {
        let mut m = json!({"type": kind, "messageId": id, "userId": "ann", "timestamp": ts});
        for (key, v) in extra.as_object().unwrap() {
            m[key] = v.clone();
        }
        m
    };
    let first = json!({"batch": [
        msg("g", "group", "2026-01-10T09:00:00Z", json!({"groupId": "acme"})),
        msg("i1", "identify", "2026-01-10T09:01:00Z",
            json!({"traits": {"email": "ann@acme.test", "firstName": "Ann", "lastName": "Lee", "role": "admin"}})),
        {"type": "identify", "messageId": "i0", "userId": "stranger", "traits": {"email": "x@y.z"}},
        {"type": "alias", "messageId": "a1", "userId": "ann", "previousId": "anon-7"},
    ]});
    let (status, body) = post(&s, "/v1/batch", Some(&k), &first).await;
    assert_eq!(status, 200, "{body}");
    let statuses: Vec<&str> =
        body["results"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["accepted", "accepted", "held", "accepted"], "{body}");
    // The same identify again changes nothing; a later one naming her champion opens a new period.
    let (_, again) = post(&s, "/v1/batch", Some(&k), &json!({"batch": [first["batch"][1].clone()]})).await;
    assert_eq!(again["duplicate"], 1);
    let promoted = msg("i2", "identify", "2026-02-01T10:00:00Z", json!({"traits": {"champion": true}}));
    assert_eq!(post(&s, "/v1/identify", Some(&k), &promoted).await.0, 200);

    let contacts =
        s.store.records(ws, keel_store::Accounts::All, keel_store::RecordKinds::ALL).await.unwrap().contacts;
    let rows: Vec<(String, String, String, String, Option<String>)> = contacts
        .iter()
        .map(|c| {
            (
                c.id.to_string(),
                c.name.clone(),
                c.role.to_string(),
                c.active_from.to_string(),
                c.active_to.map(|d| d.to_string()),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("ann".into(), "Ann Lee".into(), "champion".into(), "2026-02-01".into(), None),
            (
                "ann~2026-01-10".into(),
                "Ann Lee".into(),
                "admin".into(),
                "2026-01-10".into(),
                Some("2026-02-01".into())
            ),
        ]
    );
    assert!(contacts.iter().all(|c| c.email == "ann@acme.test" && c.account.as_str() == "acme"));
}

#[tokio::test]
async fn accounts_are_evaluated_as_events_arrive_and_changes_reach_the_timeline() {
    let journey = keel_journey::check("journey.toml", keel_journey::DEFAULT_JOURNEY).unwrap();
    let config = keel_server::Config {
        journey: Some(Arc::new(keel_app::JourneyConfig {
            journey,
            version: "v-test".into(),
            file: "journey.toml".into(),
            source: String::new(),
        })),
        debounce: std::time::Duration::from_millis(10),
        ..keel_server::Config::default()
    };
    let s = start_with(config).await;
    let (ws, ingest) = key(&s, "a", &[Scope::Ingest]).await;
    let (_, read) = key(&s, "a", &[Scope::Read]).await;
    let (_, other_read) = key(&s, "b", &[Scope::Read]).await;

    // A contract started a month before the server's today (2026-03-01).
    let mut tx = s.store.begin(ws).await.unwrap();
    tx.upsert_accounts(&[keel_core::Account {
        id: keel_core::ExternalId::parse("acme").unwrap(),
        name: "Acme".into(),
        attributes: Default::default(),
        owner: None,
        parent: None,
        created: "2026-01-20".parse().unwrap(),
    }])
    .await
    .unwrap();
    tx.upsert_contracts(&[keel_core::Contract {
        id: keel_core::ExternalId::parse("c-1").unwrap(),
        account: keel_core::ExternalId::parse("acme").unwrap(),
        product: keel_core::Label::parse("platform").unwrap(),
        start: "2026-02-01".parse().unwrap(),
        end: Some("2027-02-01".parse().unwrap()),
        mrr: keel_core::Money::parse("1000", "EUR").unwrap(),
        seats: 20,
        billing_period: keel_core::BillingPeriod::Monthly,
    }])
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let batch: Vec<Value> =
        (0..30).map(|i| track(&format!("e-{i}"), &format!("u{}", i % 6), Some("acme"))).collect();
    assert_eq!(post(&s, "/v1/batch", Some(&ingest), &json!({ "batch": batch })).await.0, 200);

    let get = |path: String, key: String| async move {
        let res = reqwest::Client::new().get(path).basic_auth(key, Some("")).send().await.unwrap();
        (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null))
    };
    let url = format!("{}/api/v1/accounts/acme/state", s.url);
    s.state.settled().await;
    let (status, state) = get(url.clone(), read.clone()).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["journey_version"], "v-test", "{state}");
    assert_eq!(state["as_of"], "2026-03-01");
    assert_eq!(state["state"]["lines"][0]["stage"], "onboarding", "{state}");
    assert!(
        state["state"]["metrics"]["active_users_7d"].as_i64().unwrap() > 0,
        "the events were counted: {state}"
    );

    let (status, timeline) = get(format!("{}/api/v1/accounts/acme/timeline", s.url), read.clone()).await;
    assert_eq!(status, 200);
    let kinds: Vec<&str> =
        timeline["entries"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"stage_changed"), "{timeline}");
    let stage =
        timeline["entries"].as_array().unwrap().iter().find(|e| e["kind"] == "stage_changed").unwrap();
    assert_eq!(
        (stage["detail"]["from"].clone(), stage["detail"]["to"].clone()),
        (Value::Null, json!("onboarding"))
    );

    // As of an earlier date, evaluated on demand.
    let (status, then) = get(format!("{url}?as_of=2026-02-10"), read.clone()).await;
    assert_eq!(status, 200, "{then}");
    assert_eq!(then["state"]["as_of"], "2026-02-10");
    assert_eq!(then["state"]["metrics"]["active_users_7d"], 0, "the events came later: {then}");

    // Scopes and tenancy.
    assert_eq!(get(url.clone(), ingest.clone()).await.0, 403);
    assert_eq!(get(url.clone(), other_read.clone()).await.0, 404, "another workspace sees nothing");
    // Another workspace has no such account (issue 19: this answered 200 with an empty list).
    let (status, _) = get(format!("{}/api/v1/accounts/acme/timeline", s.url), other_read).await;
    assert_eq!(status, 404);
    assert_eq!(get(format!("{url}?as_of=someday"), read).await.0, 400);
}

#[tokio::test]
async fn alias_puts_both_ids_on_one_account() {
    let s = start().await;
    let (ws, k) = key(&s, "a", &[Scope::Ingest]).await;
    let call = |kind: &str, id: &str, extra: Value| {
        let mut m = json!({"type": kind, "messageId": id, "timestamp": "2026-03-01T10:00:00Z"});
        for (key, v) in extra.as_object().unwrap() {
            m[key] = v.clone();
        }
        m
    };
    let link = call("alias", "a1", json!({"userId": "ann", "previousId": "anon-7"}));
    let (status, body) = post(&s, "/v1/alias", Some(&k), &link).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("rejected")), "{body}");
    assert_eq!(body["details"]["rejection"], "unknown_account", "{body}");
    assert!(body["message"].as_str().unwrap().contains("neither \"anon-7\" nor \"ann\""), "{body}");

    let joined = call("group", "g1", json!({"userId": "ann", "groupId": "acme"}));
    assert_eq!(post(&s, "/v1/group", Some(&k), &joined).await.0, 200);
    let (status, body) = post(&s, "/v1/alias", Some(&k), &link).await;
    assert_eq!((status, body["result"]["status"].as_str()), (200, Some("accepted")), "{body}");
    let (_, body) = post(&s, "/v1/alias", Some(&k), &link).await;
    assert_eq!(body["result"]["status"], "duplicate", "{body}");

    // With context.groupId, both ids join that account.
    let named = call(
        "alias",
        "a2",
        json!({"userId": "bob", "previousId": "anon-9", "context": {"groupId": "initech"}}),
    );
    assert_eq!(post(&s, "/v1/alias", Some(&k), &named).await.0, 200);

    // Later events of the previous ids, without a groupId, land on the accounts.
    for (id, user) in [("t1", "anon-7"), ("t2", "anon-9"), ("t3", "bob")] {
        let t = call("track", id, json!({"userId": user, "event": "page_viewed"}));
        let (status, body) = post(&s, "/v1/track", Some(&k), &t).await;
        assert_eq!(status, 200, "{user}: {body}");
    }
    let events = s.store.snapshot(ws).await.unwrap().events;
    let placed: Vec<(&str, &str)> = events.iter().map(|e| (e.user.as_str(), e.account.as_str())).collect();
    assert_eq!(placed.len(), 3);
    for pair in [("anon-7", "acme"), ("anon-9", "initech"), ("bob", "initech")] {
        assert!(placed.contains(&pair), "{pair:?} in {placed:?}");
    }
}

/// Issue 19, finding 2: with the disk full, ingest answered 500 (correctly
/// storing nothing), but once space was freed every write still failed
/// until a restart, while `/readyz` kept answering ready. Now ingest
/// answers 503 with Retry-After, `/readyz` is not ready while the store
/// cannot write, and both recover by themselves once space is freed.
#[tokio::test]
async fn a_full_disk_answers_503_and_not_ready_and_ingest_recovers_once_space_is_freed() {
    let disk = common::SmallDisk::mount();
    let s =
        common::start_in(tempfile::TempDir::new_in(disk.dir.path()).unwrap(), keel_server::Config::default())
            .await;
    let (ws, ingest) = key(&s, "a", &[Scope::Ingest]).await;
    let batch = |from: usize, n: usize| {
        let messages: Vec<Value> = (from..from + n)
            .map(|i| {
                let mut m = track(&format!("m-{i}"), &format!("u{}", i % 40), Some("acme"));
                m["properties"]["padding"] = json!("x".repeat(2_000));
                m
            })
            .collect();
        json!({ "batch": messages })
    };
    let (status, _) = post(&s, "/v1/batch", Some(&ingest), &batch(0, 10)).await;
    assert_eq!(status, 200);
    let ready = || async {
        let res = reqwest::get(format!("{}/readyz", s.url)).await.unwrap();
        (res.status().as_u16(), res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()))
    };
    assert_eq!(ready().await, (200, None));

    // Fill the disk, then send until a batch is refused.
    let filler = disk.fill();
    let mut refused = None;
    for round in 0..20 {
        let res = reqwest::Client::new()
            .post(format!("{}/v1/batch", s.url))
            .basic_auth(&ingest, Some(""))
            .json(&batch(1_000 + round * 200, 200))
            .send()
            .await
            .unwrap();
        if res.status().as_u16() != 200 {
            let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            let body: Value = res.json().await.unwrap();
            refused = Some((res_status(&body), retry, body));
            break;
        }
    }
    let (code, retry, body) = refused.expect("a full disk refuses a batch");
    assert_eq!((code.as_str(), retry.as_deref()), ("store_unavailable", Some("5")), "{body}");
    assert_eq!(ready().await, (503, Some("5".to_owned())), "not ready while the store cannot write");
    let stored = events(&s, ws).await;

    std::fs::remove_file(&filler).unwrap();
    assert_eq!(ready().await, (200, None), "ready again once space is freed, without a restart");
    let (status, ok) = post(&s, "/v1/batch", Some(&ingest), &batch(100_000, 10)).await;
    assert_eq!((status, ok["accepted"].as_u64()), (200, Some(10)), "{ok}");
    assert_eq!(events(&s, ws).await, stored + 10, "what was acknowledged is stored once");
}

fn res_status(body: &Value) -> String {
    body["code"].as_str().unwrap_or_default().to_owned()
}
