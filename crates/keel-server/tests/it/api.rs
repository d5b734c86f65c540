//! The REST API over real HTTP against a real SQLite store: the account
//! list, records in the import format, touchpoints, the journey, reports,
//! keys, the OpenAPI document — and tenant isolation on every route the
//! document lists.

use crate::common;

use std::cmp::Ordering;

use crate::common::{Server, get, journey, key, post, start_with};
use keel_app::keys::Scope;
use serde_json::{Value, json};

/// Five accounts, with contracts and contacts, written through the API.
async fn world(s: &Server, admin: &str) {
    let accounts = json!([
        {"id": "acme", "name": "Acme Corp", "owner": "ann", "created_date": "2026-01-20"},
        {"id": "globex", "name": "Globex", "owner": "bob", "created_date": "2024-12-01"},
        {"id": "initech", "name": "Initech", "owner": "ann", "created_date": "2025-05-01"},
        {"id": "umbrella", "name": "Umbrella", "created_date": "2025-05-01"},
        {"id": "hooli", "name": "Hooli", "owner": "bob", "created_date": "2025-03-01"},
    ]);
    let (status, report) = post(s, "/api/v1/records/accounts", Some(admin), &accounts).await;
    assert_eq!((status, report["inserted"].clone()), (200, json!(5)), "{report}");
    let contracts = "id,account_id,product,start_date,end_date,mrr,currency,seats,billing_period\n\
        c-1,acme,platform,2026-02-01,2027-02-01,1000,EUR,20,monthly\n\
        c-2,globex,platform,2025-01-01,2026-05-01,3000,EUR,50,annual\n\
        c-3,initech,analytics,2025-06-01,2026-12-01,500,EUR,5,monthly\n\
        c-4,hooli,platform,2025-03-01,2026-08-01,1500,EUR,30,annual\n\
        c-5,hooli,analytics,2025-09-01,2026-08-01,500,EUR,10,annual\n";
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/records/contracts", s.url))
        .basic_auth(admin, Some(""))
        .header("content-type", "text/csv")
        .body(contracts)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let report: Value = res.json().await.unwrap();
    assert_eq!((status, report["inserted"].clone()), (200, json!(5)), "{report}");
    let contacts = "{\"id\":\"p-1\",\"account_id\":\"acme\",\"email\":\"pat@acme.test\",\"role\":\"champion\",\"active_from\":\"2026-02-01\"}\n";
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/records/contacts", s.url))
        .basic_auth(admin, Some(""))
        .header("content-type", "application/x-ndjson")
        .body(contacts)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

fn evaluating() -> keel_server::Config {
    keel_server::Config {
        journey: Some(journey()),
        debounce: std::time::Duration::from_millis(10),
        ..keel_server::Config::default()
    }
}

/// The whole list once every account has been evaluated.
async fn evaluated(s: &Server, key: &str) -> Vec<Value> {
    s.state.settled().await;
    let (status, page) = get(s, "/api/v1/accounts?limit=1000&sort=id", key).await;
    assert_eq!(status, 200, "{page}");
    let rows = page["accounts"].as_array().unwrap().clone();
    // Evaluated after the contracts arrived: all of their MRR counted.
    let mrr: f64 = rows.iter().filter_map(|r| r["mrr"].as_f64()).sum();
    assert!(rows.len() == 5 && rows.iter().all(|r| !r["evaluated_at"].is_null()) && mrr == 6500.0, "{page}");
    rows
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

/// Every page of a listing, following the cursors.
async fn all_pages(s: &Server, key: &str, query: &str) -> (Vec<Value>, u64) {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/accounts?{query}&cursor={c}"),
            None => format!("/api/v1/accounts?{query}"),
        };
        let (status, page) = get(s, &path, key).await;
        assert_eq!(status, 200, "{path}: {page}");
        rows.extend(page["accounts"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (rows, page["total"].as_u64().unwrap()),
        }
    }
}

/// Rows with a value first, by it; then by id; accounts without one last.
fn expected_order(rows: &[Value], field: &str, descending: bool) -> Vec<String> {
    let mut sorted = rows.to_vec();
    sorted.sort_by(|a, b| {
        let (x, y) = (&a[field], &b[field]);
        let by_value = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            _ => match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => x.partial_cmp(&y).unwrap(),
                _ => x.as_str().unwrap().cmp(y.as_str().unwrap()),
            },
        };
        let ord = by_value.then_with(|| a["id"].as_str().unwrap().cmp(b["id"].as_str().unwrap()));
        if descending { ord.reverse() } else { ord }
    });
    ids(&sorted)
}

#[tokio::test]
async fn the_account_list_filters_sorts_and_pages() {
    let s = start_with(evaluating()).await;
    let (_, admin) = key(&s, "a", &[Scope::Admin]).await;
    world(&s, &admin).await;
    let all = evaluated(&s, &admin).await;
    assert_eq!(ids(&all), ["acme", "globex", "hooli", "initech", "umbrella"]);
    let acme = &all[0];
    assert_eq!(acme["mrr"], 1000.0);
    assert_eq!(acme["renewal_date"], "2027-02-01");
    assert_eq!(acme["stages"], json!([{"product_line": "platform", "stage": "onboarding"}]), "{acme}");
    let hooli = &all[2];
    assert_eq!(hooli["mrr"], 2000.0, "both lines count: {hooli}");
    assert_eq!(hooli["stages"].as_array().unwrap().len(), 2);
    assert_eq!(
        (all[4]["mrr"].clone(), all[4]["renewal_date"].clone()),
        (json!(0.0), Value::Null),
        "no contract"
    );

    // Every order, both directions: the right order, and the pages of two
    // add up to the single page.
    for (sort, field) in [
        ("id", "id"),
        ("name", "name"),
        ("owner", "owner"),
        ("mrr", "mrr"),
        ("renewal", "renewal_date"),
        ("score", "score"),
    ] {
        for descending in [false, true] {
            let sort = if descending { format!("-{sort}") } else { sort.to_owned() };
            let (one, total) = all_pages(&s, &admin, &format!("sort={sort}&limit=1000")).await;
            assert_eq!(ids(&one), expected_order(&all, field, descending), "sort={sort}");
            let (paged, paged_total) = all_pages(&s, &admin, &format!("sort={sort}&limit=2")).await;
            assert_eq!(ids(&paged), ids(&one), "sort={sort} in pages of 2");
            assert_eq!((total, paged_total), (5, 5));
        }
    }
    let (by_mrr, _) = all_pages(&s, &admin, "sort=-mrr&limit=1000").await;
    assert_eq!(ids(&by_mrr), ["globex", "hooli", "acme", "initech", "umbrella"]);
    let (by_renewal, _) = all_pages(&s, &admin, "sort=-renewal&limit=1000").await;
    assert_eq!(
        ids(&by_renewal),
        ["acme", "initech", "hooli", "globex", "umbrella"],
        "no renewal date comes last"
    );

    // Filters.
    let list = |q: &'static str| {
        let (s, admin) = (&s, &admin);
        async move { ids(&all_pages(s, admin, q).await.0) }
    };
    assert_eq!(list("owner=ann").await, ["acme", "initech"]);
    assert_eq!(list("q=CORP").await, ["acme"], "search ignores case");
    assert_eq!(list("q=glob").await, ["globex"]);
    assert_eq!(list("renewal_from=2026-05-01&renewal_to=2026-08-01&sort=renewal").await, ["globex", "hooli"]);
    assert_eq!(list("renewal_from=2026-05-02&renewal_to=2026-07-31").await, Vec::<String>::new());
    let pairs: std::collections::BTreeSet<(String, String)> = all
        .iter()
        .flat_map(|r| r["stages"].as_array().unwrap().iter())
        .map(|l| (l["product_line"].as_str().unwrap().to_owned(), l["stage"].as_str().unwrap().to_owned()))
        .collect();
    assert!(pairs.len() >= 2, "{pairs:?}");
    let has = |r: &Value, line: Option<&str>, stage: &str| {
        r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["stage"] == stage && line.is_none_or(|x| l["product_line"] == x))
    };
    for (line, stage) in &pairs {
        let expected = ids(&all.iter().filter(|r| has(r, Some(line), stage)).cloned().collect::<Vec<_>>());
        assert_eq!(ids(&all_pages(&s, &admin, &format!("stage={line}:{stage}&sort=id")).await.0), expected);
        let expected = ids(&all.iter().filter(|r| has(r, None, stage)).cloned().collect::<Vec<_>>());
        assert_eq!(ids(&all_pages(&s, &admin, &format!("stage={stage}&sort=id")).await.0), expected);
    }
    assert!(list("stage=platform:onboarding").await.contains(&"acme".to_owned()));
    for band in ["red", "yellow", "green"] {
        let expected: Vec<String> =
            ids(&all.iter().filter(|r| r["band"] == band).cloned().collect::<Vec<_>>());
        let got = ids(&all_pages(&s, &admin, &format!("band={band}&sort=id")).await.0);
        assert_eq!(got, expected, "band={band}");
    }
    let segments: std::collections::BTreeSet<String> =
        all.iter().filter_map(|r| r["segment"].as_str().map(str::to_owned)).collect();
    assert!(!segments.is_empty());
    for segment in &segments {
        let expected: Vec<String> =
            ids(&all.iter().filter(|r| r["segment"] == **segment).cloned().collect::<Vec<_>>());
        let got = ids(&all_pages(&s, &admin, &format!("segment={segment}&sort=id")).await.0);
        assert_eq!(got, expected, "segment={segment}");
    }
    let (_, page) = get(&s, "/api/v1/accounts?owner=bob&limit=1", &admin).await;
    assert_eq!((page["total"].clone(), page["accounts"].as_array().unwrap().len()), (json!(2), 1));

    // Bad parameters are named.
    for (query, names) in [
        ("sort=bogus", "sort"),
        ("band=blue", "band"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
        ("renewal_from=tomorrow", "renewal_from"),
        ("cursor=xyz", "cursor"),
        ("segmnt=smb", "segmnt"),
        ("limit=many", "limit"),
    ] {
        let (status, body) = get(&s, &format!("/api/v1/accounts?{query}"), &admin).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_parameter")), "{query}: {body}");
        assert!(body["message"].as_str().unwrap().contains(names), "{query}: {body}");
    }
    let (_, page) = get(&s, "/api/v1/accounts?sort=mrr&limit=1", &admin).await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (status, body) = get(&s, &format!("/api/v1/accounts?sort=name&cursor={cursor}"), &admin).await;
    assert_eq!(status, 400, "a cursor of another order: {body}");
}

#[tokio::test]
async fn records_are_written_in_the_import_format_and_a_retry_changes_nothing() {
    let s = start_with(keel_server::Config { records_bytes: 4096, ..evaluating() }).await;
    let (_, admin) = key(&s, "a", &[Scope::Admin]).await;
    let (_, read) = key(&s, "a", &[Scope::Read]).await;
    world(&s, &admin).await;

    // The same rows again: unchanged.
    let acme = json!([{"id": "acme", "name": "Acme Corp", "owner": "ann", "created_date": "2026-01-20"}]);
    let (status, report) = post(&s, "/api/v1/records/accounts", Some(&admin), &acme).await;
    assert_eq!(
        (status, report["unchanged"].clone(), report["outcome"].clone()),
        (200, json!(1), json!("committed"))
    );

    // One bad row: nothing stored, each problem named by line and field.
    let tickets = json!([
        {"id": "t-1", "account_id": "acme", "opened_at": "2026-02-20T10:00:00Z", "severity": 2, "status": "open"},
        {"id": "t-2", "account_id": "acme", "opened_at": "2026-02-21T10:00:00Z", "severity": 9, "status": "open"},
        {"id": "t-3", "account_id": "nobody", "opened_at": "2026-02-21T10:00:00Z", "severity": 1, "status": "open"},
    ]);
    let (status, report) = post(&s, "/api/v1/records/tickets", Some(&admin), &tickets).await;
    assert_eq!((status, report["code"].as_str()), (422, Some("invalid_records")), "{report}");
    assert_eq!(report["rejected"], 2);
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(
        (problems[0]["line"].clone(), problems[0]["field"].clone()),
        (json!(2), json!("severity")),
        "{report}"
    );
    assert_eq!(
        (problems[1]["line"].clone(), problems[1]["field"].clone()),
        (json!(3), json!("account_id")),
        "{report}"
    );
    let (_, listed) = get(&s, "/api/v1/accounts/acme/records/tickets", &read).await;
    assert_eq!(listed["records"], json!([]), "nothing was stored");

    // A dry run checks and stores nothing; allow_partial stores the good row.
    let (status, report) =
        post(&s, "/api/v1/records/tickets?dry_run=true&allow_partial=true", Some(&admin), &tickets).await;
    assert_eq!((status, report["outcome"].as_str()), (200, Some("dry_run")));
    let (status, report) =
        post(&s, "/api/v1/records/tickets?allow_partial=true", Some(&admin), &tickets).await;
    assert_eq!((status, report["inserted"].clone(), report["rejected"].clone()), (200, json!(1), json!(2)));
    let (_, listed) = get(&s, "/api/v1/accounts/acme/records/tickets", &read).await;
    assert_eq!(listed["records"][0]["id"], "t-1");
    assert_eq!(listed["records"][0]["severity"], 2);

    // The account with its full state, contracts and contacts.
    // The evaluator may have run between the account and its contract
    // arriving; once it has settled, the state includes the contract line.
    s.state.settled().await;
    let (status, detail) = get(&s, "/api/v1/accounts/acme", &read).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["account"]["name"], "Acme Corp");
    assert_eq!(detail["contracts"][0]["mrr"], "1000.00");
    assert_eq!(detail["contacts"][0]["role"], "champion");
    assert_eq!(detail["state"]["state"]["lines"][0]["stage"], "onboarding", "{detail}");
    let (status, _) = get(&s, "/api/v1/accounts/nobody", &read).await;
    assert_eq!(status, 404);
    let (status, _) = get(&s, "/api/v1/accounts/acme/records/invoices", &read).await;
    assert_eq!(status, 404);

    // Wrong bodies.
    let (status, body) = post(&s, "/api/v1/records/tickets", Some(&admin), &json!({"id": "t-9"})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_body")));
    let (status, _) = post(&s, "/api/v1/records/invoices", Some(&admin), &json!([])).await;
    assert_eq!(status, 404);
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/records/tickets", s.url))
        .basic_auth(&admin, Some(""))
        .header("content-type", "application/xml")
        .body("<tickets/>")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 415);
    let big: Vec<Value> = (0..100)
        .map(|i| json!({"id": format!("a-{i}"), "name": "x".repeat(40), "created_date": "2026-01-01"}))
        .collect();
    let (status, body) = post(&s, "/api/v1/records/accounts", Some(&admin), &json!(big)).await;
    assert_eq!((status, body["code"].as_str()), (413, Some("body_too_large")));
    let (status, _) = post(&s, "/api/v1/records/accounts", Some(&read), &acme).await;
    assert_eq!(status, 403, "writing needs the write scope");
}

#[tokio::test]
async fn a_touchpoint_is_logged_once_however_often_it_is_retried() {
    let s = start_with(evaluating()).await;
    let (_, admin) = key(&s, "a", &[Scope::Admin]).await;
    let (_, read) = key(&s, "a", &[Scope::Read]).await;
    world(&s, &admin).await;
    let send = |body: Value, idempotency: Option<&'static str>| {
        let (s, admin) = (&s, admin.clone());
        async move {
            let mut req = reqwest::Client::new()
                .post(format!("{}/api/v1/accounts/acme/touchpoints", s.url))
                .basic_auth(admin, Some(""))
                .json(&body);
            if let Some(k) = idempotency {
                req = req.header("Idempotency-Key", k);
            }
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let kickoff = json!({"kind": "kickoff", "owner": "ann", "notes": "goals agreed"});
    let (status, first) = send(kickoff.clone(), Some("k-1")).await;
    assert_eq!((status, first["result"].as_str()), (201, Some("inserted")), "{first}");
    assert_eq!(first["touchpoint"]["kind"], "kickoff");
    assert_eq!(first["touchpoint"]["occurred_at"], "2026-03-01T12:00:00Z", "default: now");
    let (status, again) = send(kickoff.clone(), Some("k-1")).await;
    assert_eq!((status, again["result"].as_str()), (200, Some("unchanged")));
    assert_eq!(again["touchpoint"]["id"], first["touchpoint"]["id"]);

    // Without a key, the same content at the same time is the same touchpoint.
    let ebr = json!({"kind": "ebr", "occurred_at": "2026-02-27T15:00:00Z"});
    assert_eq!(send(ebr.clone(), None).await.0, 201);
    assert_eq!(send(ebr.clone(), None).await.0, 200);
    let (_, listed) = get(&s, "/api/v1/accounts/acme/records/touchpoints", &read).await;
    assert_eq!(listed["records"].as_array().unwrap().len(), 2, "{listed}");

    let (status, body) = send(json!({"kind": "Not A Label!"}), None).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid_record")), "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("kind"), "{body}");
    let (status, body) = send(json!({"kind": "ebr", "when": "now"}), None).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_json")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("when"));
    let (status, _) = post(&s, "/api/v1/accounts/nobody/touchpoints", Some(&admin), &ebr).await;
    assert_eq!(status, 404);
    let (status, _) = post(&s, "/api/v1/accounts/acme/touchpoints", Some(&read), &ebr).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn the_journey_is_served_and_posted_files_are_checked() {
    let s = start_with(evaluating()).await;
    let (_, read) = key(&s, "a", &[Scope::Read]).await;
    let (status, j) = get(&s, "/api/v1/journey", &read).await;
    assert_eq!(status, 200);
    assert_eq!(j["version"], "v-test");
    assert_eq!(j["source"], keel_journey::DEFAULT_JOURNEY);
    let stages: Vec<&str> =
        j["stages"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(stages, ["onboarding", "adoption", "value_realization", "expansion", "renewal", "advocacy"]);

    let check = |body: String| {
        let (s, read) = (&s, read.clone());
        async move {
            let res = reqwest::Client::new()
                .post(format!("{}/api/v1/journey/validate", s.url))
                .basic_auth(read, Some(""))
                .header("content-type", "application/toml")
                .body(body)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let (status, ok) = check(keel_journey::DEFAULT_JOURNEY.to_owned()).await;
    assert_eq!((status, ok["valid"].clone(), ok["counts"]["stages"].clone()), (200, json!(true), json!(6)));
    let broken = keel_journey::DEFAULT_JOURNEY.replacen("exit = \"", "exit = \"no_such_metric > 3 && ", 1);
    let (status, bad) = check(broken.clone()).await;
    assert_eq!((status, bad["valid"].clone()), (200, json!(false)), "{bad}");
    let problem = &bad["problems"][0];
    let line = broken.lines().position(|l| l.contains("no_such_metric")).unwrap() + 1;
    assert_eq!(problem["line"], line, "{bad}");
    assert!(problem["message"].as_str().unwrap().contains("no_such_metric"), "{bad}");
    assert!(problem["column"].as_u64().unwrap() > 1);

    // A server without a journey says so.
    let plain = common::start().await;
    let (_, read) = key(&plain, "a", &[Scope::Read]).await;
    let (status, body) = get(&plain, "/api/v1/journey", &read).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("no_journey")));
}

#[tokio::test]
async fn reports_give_metrics_per_account_and_the_portfolio() {
    // This world runs past the server's clock (answers in April and May,
    // asked about as of later dates): its window reaches a year ahead.
    let window =
        keel_core::TimeWindow { ahead: chrono::Duration::days(366), ..keel_core::TimeWindow::default() };
    let s = start_with(keel_server::Config { window, ..evaluating() }).await;
    let (_, admin) = key(&s, "a", &[Scope::Admin]).await;
    world(&s, &admin).await;
    let all = evaluated(&s, &admin).await;
    let (status, report) =
        get(&s, "/api/v1/reports/metrics?metric=mrr,days_to_renewal&as_of=2026-03-01", &admin).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["metrics"], json!(["mrr", "days_to_renewal"]));
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0]["account"], "acme");
    assert_eq!(rows[0]["values"]["mrr"], 1000.0);
    assert_eq!(rows[0]["values"]["days_to_renewal"], 337, "2026-03-01 to 2027-02-01");
    let (status, body) = get(&s, "/api/v1/reports/metrics?metric=mrr,no_such_thing", &admin).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("no_such_thing"), "{body}");

    let (status, p) = get(&s, "/api/v1/reports/portfolio", &admin).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!((p["accounts"].clone(), p["not_evaluated"].clone()), (json!(5), json!(0)));
    let band_total: u64 =
        p["by_band"].as_object().unwrap().values().map(|t| t["accounts"].as_u64().unwrap()).sum();
    // Bands count the accounts with a line in force, as the dashboard's
    // book does; umbrella has none and is counted apart.
    assert_eq!((band_total, p["former"].clone()), (4, json!(1)));
    let mrr_total: f64 = p["by_band"].as_object().unwrap().values().map(|t| t["mrr"].as_f64().unwrap()).sum();
    assert_eq!(mrr_total, 6500.0);
    // Renewals: globex (2026-05-01) within 90 days; hooli (2026-08-01) within 180.
    assert_eq!(p["renewing_90d"], json!({"accounts": 1, "mrr": 3000.0}));
    assert_eq!(p["renewing_180d"], json!({"accounts": 2, "mrr": 5000.0}));
    let in_force = |r: &&Value| r["mrr"].as_f64().is_some_and(|m| m > 0.0);
    let expected_red = all.iter().filter(in_force).filter(|r| r["band"] == "red").count() as u64;
    assert_eq!(p["by_band"]["red"]["accounts"].as_u64().unwrap_or(0), expected_red);

    // Retention over the first half of 2026, worked out by hand: globex (3000)
    // ends on 05-01 unrenewed; initech (500) and hooli (1500 + 500) stay;
    // acme starts on 02-01, new.
    let (status, r) =
        get(&s, "/api/v1/reports/retention?from=2026-01-01&to=2026-07-01&explain=true", &admin).await;
    assert_eq!(status, 200, "{r}");
    let t = &r["total"];
    let amount = |v: &Value| v.as_str().unwrap().parse::<f64>().unwrap();
    assert_eq!((t["starting_accounts"].clone(), amount(&t["starting_mrr"])), (json!(3), 5500.0), "{t}");
    assert_eq!(
        (amount(&t["ending_mrr"]), amount(&t["churned_mrr"]), amount(&t["new_mrr"])),
        (2500.0, 3000.0, 1000.0)
    );
    assert!((t["nrr"].as_f64().unwrap() - 2500.0 / 5500.0).abs() < 1e-9, "{t}");
    assert_eq!((t["renewals_due"].clone(), t["renewal_rate"].clone()), (json!(1), json!(0.0)));
    assert_eq!(t["accounts"].as_array().unwrap().len(), 3);
    let (status, r) =
        get(&s, "/api/v1/reports/retention?from=2026-01-01&to=2026-07-01&by=product", &admin).await;
    assert_eq!(status, 200, "{r}");
    let by: Vec<(String, f64)> = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["key"].as_str().unwrap().to_owned(), amount(&g["retention"]["starting_mrr"])))
        .collect();
    assert_eq!(by, [("analytics".to_owned(), 1000.0), ("platform".to_owned(), 4500.0)]);
    assert!(r["total"].get("accounts").is_none(), "rows only with explain: {r}");
    let (status, r) =
        get(&s, "/api/v1/reports/retention?from=2026-01-01&to=2026-07-01&by=segment", &admin).await;
    assert_eq!(status, 200, "{r}");
    let starting: u64 = r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["retention"]["starting_accounts"].as_u64().unwrap())
        .sum();
    assert_eq!(starting, 3);
    for (query, names) in [
        ("by=week", "by"),
        ("from=2026-07-01&to=2026-01-01", "must come before"),
        ("from=July", "from"),
        ("segment=nope", "nope"),
    ] {
        let (status, body) = get(&s, &format!("/api/v1/reports/retention?{query}"), &admin).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["message"].as_str().unwrap().contains(names), "{query}: {body}");
    }

    // Time to value on 2026-06-01: four accounts have a started contract
    // (umbrella has none), none has reached first value (no events), and all
    // are past the SMB target of 30 days.
    let (status, t) = get(&s, "/api/v1/reports/ttv?as_of=2026-06-01&explain=true", &admin).await;
    assert_eq!(status, 200, "{t}");
    let total = &t["total"];
    assert_eq!(
        [&total["accounts"], &total["reached"], &total["overdue"], &total["waiting"], &total["p50"]],
        [&json!(4), &json!(0), &json!(4), &json!(0), &Value::Null],
        "{t}"
    );
    let waiting: Vec<&str> =
        t["not_reached"].as_array().unwrap().iter().map(|n| n["account"].as_str().unwrap()).collect();
    assert_eq!(waiting, ["globex", "hooli", "initech", "acme"], "longest tenure first");
    let (status, t) = get(&s, "/api/v1/reports/ttv?as_of=2026-06-01&from=2026-01-01", &admin).await;
    assert_eq!((status, t["total"]["accounts"].clone()), (200, json!(1)), "{t}");
    assert!(t["not_reached"].as_array().unwrap().is_empty(), "the list only with explain: {t}");

    // Cohorts on 2026-06-01: globex (started 2025-01-01) is followed to month
    // 17 (2026-06-01); its line ends on 2026-05-01, so month 16 is lost.
    let (status, c) = get(&s, "/api/v1/reports/cohorts?as_of=2026-06-01&months=24", &admin).await;
    assert_eq!(status, 200, "{c}");
    let cohorts: Vec<&str> =
        c["cohorts"].as_array().unwrap().iter().map(|c| c["cohort"].as_str().unwrap()).collect();
    assert_eq!(cohorts, ["2025-01", "2025-03", "2025-06", "2026-02"]);
    let globex = &c["cohorts"][0]["cells"];
    assert_eq!(globex.as_array().unwrap().len(), 18, "months 0..=17 are observed by 2026-06-01");
    assert_eq!(
        (globex[15]["logo_retention"].clone(), globex[16]["logo_retention"].clone()),
        (json!(1.0), json!(0.0))
    );
    let (status, body) = get(&s, "/api/v1/reports/cohorts?months=1000", &admin).await;
    assert_eq!(status, 400, "{body}");

    // The funnel on 2026-06-01: three platform lines (globex's ended on
    // 2026-05-01) and two analytics lines, each starting in the first stage.
    let (status, f) = get(&s, "/api/v1/reports/funnel?as_of=2026-06-01", &admin).await;
    assert_eq!(status, 200, "{f}");
    let lines: Vec<(&str, u64)> = f["product_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["product_line"].as_str().unwrap(), l["lines"].as_u64().unwrap()))
        .collect();
    assert_eq!(lines, [("analytics", 2), ("platform", 3)]);
    let platform = &f["product_lines"][1]["stages"];
    assert_eq!(platform[0]["reached"], 3, "{platform}");
    let ended: u64 = platform.as_array().unwrap().iter().map(|s| s["ended_in_stage"].as_u64().unwrap()).sum();
    assert_eq!(ended, 1, "globex's line ended: {platform}");

    // The health backtest over 2026: month ends 2026-01-31 .. 2026-03-31 have
    // their 90 days known by 2026-07-01. Active then: globex, initech, hooli,
    // and acme from 02-01; globex has no line from 2026-05-01, within 90 days
    // of each of the three (01-31 + 90 days is 05-01 itself).
    let (status, h) =
        get(&s, "/api/v1/reports/health?from=2026-01-01&to=2026-04-01&as_of=2026-07-01", &admin).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["dates"], json!(["2026-01-31", "2026-02-28", "2026-03-31"]), "{h}");
    assert_eq!((h["snapshots"].clone(), h["churned"].clone()), (json!(3 + 4 + 4), json!(3)), "{h}");
    let (status, body) =
        get(&s, "/api/v1/reports/health?from=2026-05-01&to=2026-06-01&as_of=2026-07-01", &admin).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("90 days"), "{body}");

    // Gate validation over decisions in (2026-03-01, 2026-09-01]: globex's line
    // (05-01) and hooli's two (08-01), none renewed.
    let (status, g) = get(
        &s,
        "/api/v1/reports/gates?from=2026-03-01&to=2026-09-01&as_of=2026-09-01&lead_days=90&explain=true",
        &admin,
    )
    .await;
    assert_eq!(status, 200, "{g}");
    assert_eq!(
        (g["decisions"].clone(), g["renewed"].clone(), g["lead_days"].clone()),
        (json!(3), json!(0), json!(90))
    );
    let decided: Vec<&str> =
        g["observations"].as_array().unwrap().iter().map(|o| o["decided_on"].as_str().unwrap()).collect();
    assert_eq!(decided.len(), 3, "{g}");
    assert!(decided.iter().all(|d| ["2026-05-01", "2026-08-01"].contains(d)), "{decided:?}");
    let (status, body) = get(&s, "/api/v1/reports/gates?lead_days=99999", &admin).await;
    assert_eq!((status, body["message"].as_str().unwrap().contains("lead_days")), (400, true), "{body}");

    // Expansion and advocacy over the first half of 2026: a CS-sourced
    // expansion won, a sales one lost, one open; acme a promoter, asked once.
    let opportunities = json!([
        {"id": "o-1", "account_id": "acme", "kind": "expansion", "source": "cs", "mrr_delta": "300", "currency": "EUR",
         "stage": "won", "created_date": "2026-02-10", "closed_date": "2026-03-01", "status": "won"},
        {"id": "o-2", "account_id": "hooli", "kind": "cross_sell", "source": "sales", "mrr_delta": "200", "currency": "EUR",
         "stage": "lost", "created_date": "2026-02-10", "closed_date": "2026-04-01", "status": "lost"},
        {"id": "o-3", "account_id": "initech", "kind": "expansion", "source": "sales", "mrr_delta": "100", "currency": "EUR",
         "stage": "demo", "created_date": "2026-05-10", "status": "open"},
    ]);
    let (status, written) = post(&s, "/api/v1/records/opportunities", Some(&admin), &opportunities).await;
    assert_eq!(status, 200, "{written}");
    let survey = json!([{"id": "n-1", "account_id": "acme", "kind": "nps", "score": 10, "responded_at": "2026-04-01T10:00:00Z"}]);
    assert_eq!(post(&s, "/api/v1/records/surveys", Some(&admin), &survey).await.0, 200);
    let ask = json!({"id": "t-ask", "kind": "reference_request", "occurred_at": "2026-05-01T10:00:00Z"});
    let (status, body) = post(&s, "/api/v1/accounts/acme/touchpoints", Some(&admin), &ask).await;
    assert!(status == 200 || status == 201, "{status} {body}");
    let (status, e) = get(&s, "/api/v1/reports/expansion?from=2026-01-01&to=2026-07-01", &admin).await;
    assert_eq!(status, 200, "{e}");
    let sources: Vec<(&str, u64, u64, u64)> = e["by_source"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["source"].as_str().unwrap(),
                r["won"].as_u64().unwrap(),
                r["lost"].as_u64().unwrap(),
                r["open_on_to"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sources, [("cs", 1, 0, 0), ("sales", 0, 1, 1)]);
    assert_eq!(e["cs_share_of_won_mrr"], 1.0);
    assert_eq!(
        (e["promoters"].clone(), e["candidates_asked"].clone(), e["asks"].clone()),
        (json!(1), json!(1), json!(1)),
        "{e}"
    );

    // Failure patterns on 2026-06-01: only globex's first term has ended
    // (05-01, not renewed); it shows every pattern (no touchpoints, no events).
    let (status, p) = get(&s, "/api/v1/reports/patterns?as_of=2026-06-01", &admin).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!((p["accounts"].clone(), p["renewed"].clone()), (json!(1), json!(0)), "{p}");
    let showing: Vec<u64> =
        p["patterns"].as_array().unwrap().iter().map(|r| r["showing"].as_u64().unwrap()).collect();
    assert_eq!(showing, [1, 1, 1, 1, 1, 0], "{p}");

    // The journey-map audit on 2026-06-01: globex, initech and hooli have
    // lived through all twelve months, acme (from 2026-02-01) through four;
    // umbrella has no contract. The grid is the map's 8 rows × 12 months.
    let (status, a) = get(&s, "/api/v1/reports/audit?as_of=2026-06-01", &admin).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["accounts"], 4, "{a}");
    let grid = a["grid"].as_array().unwrap();
    assert_eq!(grid.len(), 8);
    assert!(grid.iter().all(|r| r[1].as_array().unwrap().len() == 12), "{a}");
    let counted: u64 = a["counts"].as_array().unwrap().iter().map(|c| c[1].as_u64().unwrap()).sum();
    assert_eq!(counted, 96);
    let cells = a["cells"].as_array().unwrap();
    let in_cells = |first: u64, last: u64| {
        cells
            .iter()
            .filter(|c| c["months"] == json!([first, last]))
            .map(|c| c["accounts"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert!(in_cells(1, 1).iter().all(|n| *n == 4), "every account lived month 1: {a}");
    assert!(in_cells(11, 12).iter().all(|n| *n == 3), "acme has not reached month 11: {a}");
    assert!(!in_cells(1, 1).is_empty() && !in_cells(11, 12).is_empty(), "{a}");
    let (status, a) = get(&s, "/api/v1/reports/audit?as_of=2026-06-01&from=2026-01-01", &admin).await;
    assert_eq!((status, a["accounts"].clone()), (200, json!(1)), "only acme started in 2026: {a}");
    for (query, names) in [("from=2026-07-01&to=2026-01-01", "must come before"), ("segment=nope", "nope")] {
        let (status, body) = get(&s, &format!("/api/v1/reports/audit?{query}"), &admin).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["message"].as_str().unwrap().contains(names), "{query}: {body}");
    }

    // Every report filters by segment: the default journey puts all five
    // accounts in smb (no tier, no MRR of 5000), so smb keeps everything,
    // enterprise nothing, and an unknown segment is refused by name.
    let size = |v: &Value, path: &str| -> u64 {
        match path {
            "cohorts" => v["cohorts"].as_array().unwrap().len() as u64,
            "lines" => {
                v["product_lines"].as_array().unwrap().iter().map(|l| l["lines"].as_u64().unwrap()).sum()
            }
            "created" => {
                v["by_source"].as_array().unwrap().iter().map(|r| r["created"].as_u64().unwrap()).sum()
            }
            field => v.pointer(field).and_then(Value::as_u64).unwrap_or_else(|| panic!("{field} in {v}")),
        }
    };
    for (query, path) in [
        ("ttv?as_of=2026-06-01", "/total/accounts"),
        ("cohorts?as_of=2026-06-01&months=24", "cohorts"),
        ("funnel?as_of=2026-06-01", "lines"),
        ("health?from=2026-01-01&to=2026-04-01&as_of=2026-07-01", "/snapshots"),
        ("gates?from=2026-03-01&to=2026-09-01&as_of=2026-09-01&lead_days=90", "/decisions"),
        ("patterns?as_of=2026-06-01", "/accounts"),
        ("expansion?from=2026-01-01&to=2026-07-01", "created"),
    ] {
        let url = |segment: &str| format!("/api/v1/reports/{query}{segment}");
        let (status, all) = get(&s, &url(""), &admin).await;
        assert_eq!(status, 200, "{query}: {all}");
        let (status, smb) = get(&s, &url("&segment=smb"), &admin).await;
        assert_eq!(status, 200, "{query}: {smb}");
        let (status, none) = get(&s, &url("&segment=enterprise"), &admin).await;
        assert_eq!(status, 200, "{query}: {none}");
        assert!(size(&all, path) > 0, "{query}: something to filter: {all}");
        assert_eq!((size(&smb, path), size(&none, path)), (size(&all, path), 0), "{query}");
        let (status, body) = get(&s, &url("&segment=nope"), &admin).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["message"].as_str().unwrap().contains("nope"), "{query}: {body}");
    }

    let (status, st) = get(&s, "/api/v1/status", &admin).await;
    assert_eq!(
        (status, st["counts"]["accounts"].clone(), st["counts"]["contracts"].clone()),
        (200, json!(5), json!(5))
    );
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked_by_admin_keys_only() {
    let s = start_with(keel_server::Config::default()).await;
    let (_, admin) = key(&s, "a", &[Scope::Admin]).await;
    let (_, read) = key(&s, "a", &[Scope::Read]).await;
    let (status, created) =
        post(&s, "/api/v1/keys", Some(&admin), &json!({"name": "warehouse", "scopes": ["read"]})).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    let prefix = created["key"]["prefix"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(&prefix));
    assert_eq!(get(&s, "/api/v1/accounts", &secret).await.0, 200, "the new key works");
    let (_, listed) = get(&s, "/api/v1/keys", &admin).await;
    let text = listed.to_string();
    assert!(text.contains(&prefix) && !text.contains(&secret), "listed without its secret");
    assert_eq!(listed["keys"].as_array().unwrap().len(), 3);

    assert_eq!(get(&s, "/api/v1/keys", &read).await.0, 403);
    let (status, body) =
        post(&s, "/api/v1/keys", Some(&admin), &json!({"name": "x", "scopes": ["owner"]})).await;
    // 422, as every other invalid field of a well-formed body (it was 400
    // here alone: one code, one status).
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid_field")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("owner"));

    let revoke = |k: String, p: String| {
        let s = &s;
        async move {
            reqwest::Client::new()
                .delete(format!("{}/api/v1/keys/{p}", s.url))
                .basic_auth(k, Some(""))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(revoke(read.clone(), prefix.clone()).await, 403);
    assert_eq!(revoke(admin.clone(), prefix.clone()).await, 204);
    assert_eq!(get(&s, "/api/v1/accounts", &secret).await.0, 401, "revoked at once on this server");
    assert_eq!(revoke(admin.clone(), prefix.clone()).await, 404, "already revoked");

    // Both are in the admin audit log, newest first, by the key that did it; admins only.
    let (status, log) = get(&s, "/api/v1/audit", &admin).await;
    assert_eq!(status, 200, "{log}");
    let actions: Vec<(&str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["subject"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("key.revoked", prefix.as_str()), ("key.created", prefix.as_str())], "{log}");
    let by = log[0]["actor"].as_str().unwrap().strip_prefix("key:").unwrap();
    assert!(
        by.len() >= 8 && admin.starts_with(by) && !prefix.starts_with(by),
        "the admin key's prefix: {log}"
    );
    assert_eq!(get(&s, "/api/v1/audit", &read).await.0, 403);
}

#[tokio::test]
async fn the_openapi_document_covers_every_route_and_renders_as_a_page() {
    let s = start_with(keel_server::Config::default()).await;
    let res = reqwest::get(format!("{}/api/v1/openapi.json", s.url)).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let text = doc.to_string();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for reference in text.split("#/components/schemas/").skip(1) {
        let name: String = reference.chars().take_while(|c| c.is_alphanumeric()).collect();
        assert!(schemas.contains_key(&name), "{name} is referenced and defined");
    }
    // The record schemas follow the import columns.
    assert_eq!(
        doc["components"]["schemas"]["Contract"]["required"],
        json!(["id", "account_id", "product", "start_date", "mrr", "seats", "billing_period"])
    );

    // Every path the document lists answers something other than "no such route".
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{}", paths.len());
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "acme")
            .replace("{kind}", "contracts")
            .replace("{call}", "track")
            .replace("{prefix}", "keel_xxxxxxx");
        for method in item.as_object().unwrap().keys() {
            let res = reqwest::Client::new()
                .request(method.to_uppercase().parse().unwrap(), format!("{}{concrete}", s.url))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            assert!(!(status == 404 && body["message"] == "no such route"), "{method} {path} is routed");
            assert_ne!(status, 405, "{method} {path}");
        }
    }

    let page = reqwest::get(format!("{}/api/docs", s.url)).await.unwrap().text().await.unwrap();
    for path in paths.keys() {
        assert!(page.contains(&format!("<code>{path}</code>")), "the page documents {path}");
    }
    assert!(page.contains("id=\"schema-AccountList\""));
}

/// Every JSON answer the document declares has a typed body: a named
/// schema, or one whose properties or items are spelled out — no bare
/// `object` a client cannot generate code from.
#[test]
fn every_json_answer_has_a_typed_body() {
    let doc = keel_server::openapi();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().into_iter().flatten() {
                let Some(schema) = response.pointer("/content/application~1json/schema") else { continue };
                checked += 1;
                let bare = schema.get("$ref").is_none()
                    && schema["type"] == "object"
                    && schema.get("properties").is_none()
                    && schema.get("additionalProperties").is_none();
                assert!(!bare, "{method} {path} {status}: a bare object body: {schema}");
            }
        }
    }
    assert!(checked > 60, "{checked} JSON answers checked");
    // The reports name their types.
    let report = |path: &str| {
        doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].clone()
    };
    assert_eq!(report("/api/v1/reports/retention"), "#/components/schemas/RetentionReport");
    assert_eq!(report("/api/v1/reports/portfolio"), "#/components/schemas/Portfolio");
    assert_eq!(report("/api/v1/status"), "#/components/schemas/WorkspaceStatus");
}

/// The document states what the server enforces, and the server refuses
/// what the document rules out, in the one error format.
#[tokio::test]
async fn the_document_states_what_the_server_enforces() {
    let s = start_with(evaluating()).await;
    let (_, read) = key(&s, "default", &[Scope::Read, Scope::Write]).await;
    let doc: Value =
        reqwest::get(format!("{}/api/v1/openapi.json", s.url)).await.unwrap().json().await.unwrap();
    let param = |path: &str, name: &str| {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} declares {name}"))["schema"]
            .clone()
    };
    // The journey's segments, dates, ranges and enumerations.
    assert_eq!(param("/api/v1/accounts", "segment")["enum"], json!(["enterprise", "mid_market", "smb"]));
    assert_eq!(param("/api/v1/reports/retention", "as_of")["format"], "date");
    assert_eq!(param("/api/v1/accounts", "limit")["minimum"], 1);
    assert_eq!(param("/api/v1/outbox", "status")["enum"], json!(["pending", "approved", "rejected", "all"]));
    let ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "operation ids are unique");
    let unauthorized = &doc["paths"]["/api/v1/accounts"]["get"]["responses"]["401"];
    assert!(unauthorized["headers"]["WWW-Authenticate"].is_object(), "{unauthorized}");
    // Every operation declares the 500 it may answer, and a body's 408.
    assert!(doc["paths"]["/api/v1/accounts"]["get"]["responses"]["500"].is_object());
    assert!(doc["paths"]["/v1/batch"]["post"]["responses"]["408"].is_object());

    // What it rules out is refused, each with its code.
    for (path, code) in [
        ("/api/v1/accounts?segment=nobody", "invalid_parameter"),
        ("/api/v1/accounts?owner=", "invalid_parameter"),
        ("/api/v1/accounts?colour=red", "invalid_parameter"),
        ("/api/v1/journey?verbose=true", "invalid_parameter"),
        ("/api/v1/accounts/acme/timeline?limit=0", "invalid_parameter"),
        ("/api/v1/reports/cohorts?currency=usd", "invalid_parameter"),
    ] {
        let (status, body) = get(&s, path, &read).await;
        assert_eq!((status, body["code"].as_str()), (400, Some(code)), "{path}: {body}");
    }
    let empty = reqwest::Client::new()
        .post(format!("{}/api/v1/records/accounts", s.url))
        .bearer_auth(&read)
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(empty.status().as_u16(), 400);
    let body: Value = empty.json().await.unwrap();
    assert_eq!(body["code"], "invalid_body");
    assert!(body["message"].as_str().unwrap().contains("at least one record"), "{body}");
    let (status, body) = post(&s, "/api/v1/records/accounts", Some(&read), &json!([[null]])).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_body")), "{body}");
}

/// Marks every record of workspace A: no answer to workspace B may hold it.
const MARK: &str = "SECRET-OF-A";

#[tokio::test]
async fn no_key_of_one_workspace_reads_or_writes_another_on_any_route() {
    let s = start_with(evaluating()).await;
    let (a, a_admin) = key(&s, "a", &[Scope::Admin]).await;
    let (_, b_admin) = key(&s, "b", &[Scope::Admin]).await;
    let (_, b_read) = key(&s, "b", &[Scope::Read]).await;
    let rows =
        json!([{"id": "acme", "name": format!("Acme {MARK}"), "owner": MARK, "created_date": "2026-01-20"}]);
    assert_eq!(post(&s, "/api/v1/records/accounts", Some(&a_admin), &rows).await.0, 200);
    let contract = json!([{"id": "c-1", "account_id": "acme", "product": "platform", "start_date": "2026-02-01",
                           "mrr": "1000", "seats": 20, "billing_period": "monthly"}]);
    assert_eq!(post(&s, "/api/v1/records/contracts", Some(&a_admin), &contract).await.0, 200);
    let tp = json!({"kind": "kickoff", "notes": MARK});
    assert_eq!(post(&s, "/api/v1/accounts/acme/touchpoints", Some(&a_admin), &tp).await.0, 201);
    evaluated_one(&s, &a_admin).await;
    let a_prefix = s.store.api_keys(a).await.unwrap()[0].prefix.clone();
    let before = s.store.snapshot(a).await.unwrap();

    let doc: Value =
        reqwest::get(format!("{}/api/v1/openapi.json", s.url)).await.unwrap().json().await.unwrap();
    let mut tried = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op.get("security").is_none() {
                continue;
            }
            let kinds: Vec<String> = if path.contains("{kind}") {
                let name = op["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "kind").unwrap()
                    ["schema"]["$ref"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned();
                doc["components"]["schemas"][&name]["enum"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k.as_str().unwrap().to_owned())
                    .collect()
            } else {
                vec![String::new()]
            };
            for kind in kinds {
                let concrete = path
                    .replace("{id}", "acme")
                    .replace("{kind}", &kind)
                    .replace("{call}", "track")
                    .replace("{prefix}", &a_prefix);
                let body = body_for(path, &kind);
                let url = format!("{}{concrete}", s.url);
                let send = |key: Option<String>| {
                    let mut req =
                        reqwest::Client::new().request(method.to_uppercase().parse().unwrap(), &url);
                    if let Some(body) = &body {
                        req = req.json(body);
                    }
                    if let Some(k) = key {
                        req = req.basic_auth(k, Some(""));
                    }
                    async move {
                        let res = req.send().await.unwrap();
                        (res.status().as_u16(), res.text().await.unwrap())
                    }
                };
                let (status, text) = send(Some(b_admin.clone())).await;
                assert!(
                    !text.contains(MARK),
                    "{method} {concrete} with B's key answered {status} with A's data: {text}"
                );
                if method == "get" && path.starts_with("/api/v1/accounts/{id}") {
                    // A's account does not exist for B, on every route alike.
                    assert_eq!(status, 404, "{method} {concrete} with B's key: {text}");
                }
                assert_eq!(send(None).await.0, 401, "{method} {concrete} without a key");
                if path.starts_with("/api/v1/keys")
                    || path.starts_with("/v1")
                    || path.starts_with("/api/v1/records")
                    || path.ends_with("/touchpoints")
                    || (method == "post" && path.ends_with("}/done"))
                    || (method == "post" && path.ends_with("}/snooze"))
                    || (method == "post" && path.starts_with("/api/v1/outbox/"))
                    || (method == "post" && path.starts_with("/api/v1/deliveries/"))
                {
                    assert_eq!(
                        send(Some(b_read.clone())).await.0,
                        403,
                        "{method} {concrete} with a read-only key"
                    );
                }
                tried += 1;
            }
        }
    }
    assert!(tried >= 25, "{tried} operations tried");
    // Let B's writes be evaluated, then A holds exactly what it held.
    s.state.settled().await;
    assert_eq!(s.store.snapshot(a).await.unwrap(), before, "nothing of A changed");
    assert_eq!(get(&s, "/api/v1/accounts", &a_admin).await.0, 200, "A's key still works");
}

async fn evaluated_one(s: &Server, key: &str) {
    s.state.settled().await;
    let (status, body) = get(s, "/api/v1/accounts/acme/state", key).await;
    assert_eq!(status, 200, "acme was evaluated: {body}");
}

/// A body that aims at workspace A's account.
fn body_for(path: &str, kind: &str) -> Option<Value> {
    let track = json!({"type": "track", "userId": "u1", "event": "x", "messageId": "m-b-1",
                       "timestamp": "2026-03-01T10:00:00Z", "context": {"groupId": "acme"}});
    Some(match path {
        "/v1/{call}" => track,
        "/v1/batch" | "/v1/import" => json!({"batch": [track]}),
        "/api/v1/accounts/{id}/touchpoints" => json!({"kind": "ebr", "notes": "from b"}),
        "/api/v1/journey/validate" => json!("not toml"),
        "/api/v1/keys" => json!({"name": "b2", "scopes": ["read"]}),
        "/api/v1/tasks/{id}/done" => json!({"outcome": "from b"}),
        "/api/v1/tasks/{id}/snooze" => json!({"until": "2026-03-05", "reason": "from b"}),
        "/api/v1/outbox/{id}/approve" | "/api/v1/deliveries/{id}/replay" => json!({"by": "b"}),
        "/api/v1/outbox/{id}/reject" => json!({"by": "b", "reason": "from b"}),
        "/api/v1/records/{kind}" => {
            let row = match kind {
                "accounts" => json!({"id": "acme", "name": "Acme of B", "created_date": "2026-01-01"}),
                "contracts" => {
                    json!({"id": "c-1", "account_id": "acme", "product": "platform", "start_date": "2026-02-01", "mrr": "1", "seats": 1, "billing_period": "monthly"})
                }
                "contacts" => {
                    json!({"id": "p-1", "account_id": "acme", "email": "b@b.test", "role": "champion", "active_from": "2026-01-01"})
                }
                "events" => {
                    json!({"message_id": "e-b", "account_id": "acme", "user_id": "u", "event": "x", "timestamp": "2026-02-01T00:00:00Z"})
                }
                "tickets" => {
                    json!({"id": "t-1", "account_id": "acme", "opened_at": "2026-02-01T00:00:00Z", "severity": 1, "status": "open"})
                }
                "surveys" => {
                    json!({"id": "s-1", "account_id": "acme", "kind": "nps", "score": 0, "responded_at": "2026-02-01T00:00:00Z"})
                }
                "touchpoints" => {
                    json!({"id": "tp-1", "account_id": "acme", "kind": "ebr", "occurred_at": "2026-02-01T00:00:00Z"})
                }
                _ => {
                    json!({"id": "o-1", "account_id": "acme", "kind": "expansion", "source": "cs", "mrr_delta": "1", "stage": "x", "created_date": "2026-02-01", "status": "open"})
                }
            };
            json!([row])
        }
        _ => return None,
    })
}

/// Issue 19, finding 1: a CEL expression nested ~512 deep in a report's
/// `?condition=` (or in a posted journey) overflowed the parser's stack and
/// aborted the server. Each is now a located 400 (or a located problem),
/// and the server keeps serving.
#[tokio::test]
async fn deeply_nested_expressions_are_refused_and_the_server_keeps_serving() {
    let s = start_with(evaluating()).await;
    let (_, read) = key(&s, "a", &[Scope::Read]).await;
    let client = reqwest::Client::new();
    for (condition, expect) in [
        (
            format!("{}true{}", "(".repeat(512), ")".repeat(512)),
            "column 33: the expression nests deeper than 32 levels",
        ),
        (
            format!("{}1{} == []", "[".repeat(512), "]".repeat(512)),
            "column 33: the expression nests deeper than 32 levels",
        ),
        (
            format!("{}true", "!".repeat(5000)),
            "column 4097: the expression is 5004 bytes long; the limit is 4096",
        ),
        (format!("{}true", "!".repeat(1000)), "column 33: the expression nests deeper than 32 levels"),
    ] {
        let res = client
            .get(format!("{}/api/v1/reports/gates", s.url))
            .query(&[("condition", &condition)])
            .basic_auth(&read, Some(""))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert_eq!((status, body["code"].as_str()), (400, Some("invalid_parameter")), "{body}");
        assert!(body["message"].as_str().unwrap().ends_with(expect), "{body}");
    }
    let deep = keel_journey::DEFAULT_JOURNEY.replacen(
        "exit = \"",
        &format!("exit = \"{}true{} && ", "(".repeat(512), ")".repeat(512)),
        1,
    );
    let res = client
        .post(format!("{}/api/v1/journey/validate", s.url))
        .basic_auth(&read, Some(""))
        .header("content-type", "application/toml")
        .body(deep.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["valid"], json!(false), "{body}");
    let line = deep.lines().position(|l| l.contains("((((")).unwrap() + 1;
    assert_eq!(body["problems"][0]["line"], line, "{body}");
    assert!(
        body["problems"][0]["message"].as_str().unwrap().contains("nests deeper than 32 levels"),
        "{body}"
    );
    let res = client.get(format!("{}/healthz", s.url)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200, "the server still answers");
}
