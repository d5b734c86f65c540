//! The account timeline as the server keeps it: re-derived in the
//! background after a journey edit and a restart, while ingest, the API and
//! the dashboard answer; each day equal to an evaluation as of that day.

use std::sync::Arc;

use keel_app::keys::Scope;
use keel_app::timeline::{Under, Which};
use keel_core::Date;
use keel_engine::Plan;
use keel_store::{SqliteOptions, SqliteStore, Store};

use crate::common::{self, Server};
use crate::web::{page, sign_in};

const ACCOUNTS: usize = 30;

fn world() -> keel_demo::DemoConfig {
    keel_demo::DemoConfig {
        accounts: ACCOUNTS,
        months: 18,
        seed: 7,
        end: keel_core::parse_date("2026-03-02").unwrap(),
        plays_from: None,
    }
}

fn journey(source: &str, version: &str) -> Arc<keel_app::JourneyConfig> {
    Arc::new(keel_app::JourneyConfig {
        journey: keel_journey::check("journey.toml", source).expect("the journey checks"),
        version: version.into(),
        file: "journey.toml".into(),
        source: source.into(),
    })
}

fn today() -> Date {
    common::clock()().date_naive()
}

/// Every account's facts under `version`, read back on days across its
/// timeline, equal an evaluation under `journey` as of each day.
async fn assert_kept_as_evaluated(
    s: &Server,
    ws: keel_store::WorkspaceId,
    j: &keel_journey::Journey,
    version: &str,
) {
    let store = s.store.as_ref();
    let plan = Plan::new(j.clone(), &store.event_names(ws).await.unwrap());
    let ids = keel_app::load::account_ids(store, ws).await.unwrap();
    let heads = store.timeline_heads(ws, version, &ids).await.unwrap();
    assert_eq!(heads.len(), ids.len(), "every account has a timeline under {version}");
    for id in &ids {
        let h = keel_app::load::history(store, ws, id).await.unwrap().unwrap();
        assert_eq!(heads[id].through, today(), "{id}");
        let first = keel_app::timeline::first_day(&h).unwrap();
        let mut day = first;
        while day <= today() {
            let kept = keel_app::timeline::facts_on(store, ws, id, version, day).await.unwrap();
            let evaluated = keel_timeline::facts(&keel_engine::evaluate(&plan, &h, day));
            assert_eq!(kept, Some(evaluated), "{id} on {day}");
            day += chrono::Duration::days(41);
        }
        let kept = keel_app::timeline::facts_on(store, ws, id, version, today()).await.unwrap();
        assert_eq!(
            kept,
            Some(keel_timeline::facts(&keel_engine::evaluate(&plan, &h, today()))),
            "{id} today"
        );
    }
    // The health backtest read from the timeline (every account covered)
    // equals the one evaluated account by account as of each month end.
    let (from, to) = keel_app::reports::health_window(None, None, today());
    let dates = keel_app::reports::snapshot_dates(from, to, today());
    let read = keel_app::timeline::read_days(store, ws, version, &ids, &dates).await.unwrap();
    assert!(read.missing.is_empty(), "{:?}", read.missing);
    let backtest = |version| keel_app::reports::health_backtest(store, ws, &plan, version, &dates, None);
    let (from_timeline, evaluated) = (backtest(Some(version)).await.unwrap(), backtest(None).await.unwrap());
    assert!(evaluated.snapshots > 100, "{evaluated:?}");
    assert_eq!(serde_json::to_value(from_timeline).unwrap(), serde_json::to_value(evaluated).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_journey_edit_and_a_restart_the_timeline_is_rederived_in_the_background_while_ingest_and_the_dashboard_answer()
 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let first = journey(keel_journey::DEFAULT_JOURNEY, "v-first");
    // Before the restart: a world whose timeline was kept under the first journey.
    let acct = {
        let store = SqliteStore::open(path.to_str().unwrap(), SqliteOptions::default()).await.unwrap();
        let ws = store.workspace("default").await.unwrap();
        common::store_demo(&store, ws, &world()).await;
        let plan = Plan::new(first.journey.clone(), &store.event_names(ws).await.unwrap());
        let under = Under { plan: &plan, version: "v-first", through: today() };
        let kept = keel_app::timeline::keep(&store, ws, under, Which::All, false, |_| {}).await.unwrap();
        assert_eq!(kept.accounts, ACCOUNTS);
        keel_app::load::account_ids(&store, ws).await.unwrap().swap_remove(0)
    };
    // The journey is edited (stricter health bands) and checks.
    let source = keel_journey::DEFAULT_JOURNEY
        .replace("bands = { red = 40.0, yellow = 70.0 }", "bands = { red = 60.0, yellow = 85.0 }");
    assert_ne!(source, keel_journey::DEFAULT_JOURNEY, "the edit applies");
    let edited = journey(&source, "v-edited");
    // The restart, with the background task held back to see what answers meanwhile.
    let config = keel_server::Config {
        journey: Some(edited.clone()),
        tick: std::time::Duration::from_secs(3600),
        ..keel_server::Config::default()
    };
    let (s, stalled) = common::start_stalled(dir, config).await;
    let ws = s.store.workspace("default").await.unwrap();
    let (_, key) = common::key(&s, "default", &[Scope::Read, Scope::Ingest]).await;
    let (status, body) = common::get(&s, "/api/v1/timeline", &key).await;
    assert_eq!(
        (status, &body["journey_version"], &body["current"]),
        (200, &"v-edited".into(), &false.into())
    );

    // Ingest answers and its data is evaluated under the edited journey.
    let before = common::events(&s, ws).await;
    let (status, _) =
        common::post(&s, "/v1/track", Some(&key), &common::track("m-1", "u-1", Some(acct.as_str()))).await;
    assert_eq!(status, 200);
    s.state.settled().await;
    assert_eq!(common::events(&s, ws).await, before + 1);
    let (status, state) = common::get(&s, &format!("/api/v1/accounts/{acct}/state"), &key).await;
    assert_eq!((status, &state["journey_version"]), (200, &"v-edited".into()), "{state}");
    // The dashboard answers.
    common::dashboard_user(&s, ws, "lee@vendor.example", "leader").await;
    let session = sign_in(&s, "lee@vendor.example", "s3cret-pass").await.unwrap();
    let (status, html) = page(&s, "/accounts", &session).await;
    assert_eq!(status, 200);
    assert!(html.contains(acct.as_str()), "the account list lists {acct}");
    let (status, _) = page(&s, &format!("/accounts/{acct}"), &session).await;
    assert_eq!(status, 200);
    // All the while nothing was re-derived: no account has a timeline under
    // the edited journey yet, and the first journey's is still there.
    let ids = keel_app::load::account_ids(s.store.as_ref(), ws).await.unwrap();
    assert!(s.store.timeline_heads(ws, "v-edited", &ids).await.unwrap().is_empty());
    assert_eq!(s.store.timeline_heads(ws, "v-first", &ids).await.unwrap().len(), ACCOUNTS);
    let (_, body) = common::get(&s, "/api/v1/timeline", &key).await;
    assert_eq!((&body["current"], &body["rederived"]), (&false.into(), &0.into()), "{body}");

    // Let it run: every account is re-derived under the edited journey,
    // exactly as an evaluation as of each day concludes, and the first
    // journey's rows are dropped.
    drop(stalled);
    s.state.timeline_settled().await;
    let (_, body) = common::get(&s, "/api/v1/timeline", &key).await;
    assert_eq!(
        (&body["current"], &body["waiting"], &body["rederived"], &body["through"]),
        (&true.into(), &0.into(), &ACCOUNTS.into(), &today().to_string().into()),
        "{body}"
    );
    assert_kept_as_evaluated(&s, ws, &edited.journey, "v-edited").await;
    assert!(s.store.timeline_heads(ws, "v-first", &ids).await.unwrap().is_empty());
    assert!(s.store.timeline_rows(ws, &acct, "v-first", None).await.unwrap().is_empty());
    // The edit shows in what was concluded: some account is red on some
    // day under the edited journey and not under the first.
    let plan_first = Plan::new(first.journey.clone(), &s.store.event_names(ws).await.unwrap());
    let plan_edited = Plan::new(edited.journey.clone(), &s.store.event_names(ws).await.unwrap());
    let mut differs = false;
    for id in ids.iter().take(10) {
        let h = keel_app::load::history(s.store.as_ref(), ws, id).await.unwrap().unwrap();
        let band = |p: &Plan| keel_engine::evaluate(p, &h, today()).health.band;
        differs |= band(&plan_first) != band(&plan_edited);
    }
    assert!(differs, "the edited bands change some account's band");
}

/// Data that arrives while the server runs appends to (or restates) the
/// timeline: an event today restates today; a contract edited after the
/// fact restates the account's whole timeline in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_arriving_while_the_server_runs_keeps_the_timeline_as_evaluated() {
    let config = keel_server::Config {
        journey: Some(common::journey()),
        tick: std::time::Duration::from_secs(3600),
        ..keel_server::Config::default()
    };
    let s = common::start_with(config).await;
    let ws = s.store.workspace("default").await.unwrap();
    common::store_demo(s.store.as_ref(), ws, &world()).await;
    let (_, key) = common::key(&s, "default", &[Scope::Read, Scope::Ingest, Scope::Write]).await;
    // Written behind the server's back: the evaluator hands every account
    // to the background task, which derives them all.
    s.state.evaluate_everything().await.unwrap();
    s.state.timeline_settled().await;
    let j = &common::journey().journey;
    assert_kept_as_evaluated(&s, ws, j, "v-test").await;
    let ids = keel_app::load::account_ids(s.store.as_ref(), ws).await.unwrap();
    let (acct, other) = (&ids[0], &ids[1]);
    // Events today: the evaluator restates today in its own round.
    let rederived = |b: &serde_json::Value| b["rederived"].as_u64().unwrap();
    let (_, body) = common::get(&s, "/api/v1/timeline", &key).await;
    let before = rederived(&body);
    for (i, user) in ["u-1", "u-2", "u-3"].iter().enumerate() {
        let m = common::track(&format!("m-{i}"), user, Some(acct.as_str()));
        assert_eq!(common::post(&s, "/v1/track", Some(&key), &m).await.0, 200);
    }
    s.state.settled().await;
    s.state.timeline_settled().await;
    let (_, body) = common::get(&s, "/api/v1/timeline", &key).await;
    assert_eq!(rederived(&body), before, "nothing went to the background: {body}");
    // A contract edited after the fact (its value): the whole timeline is restated.
    let contract = s
        .store
        .records(ws, keel_store::Accounts::One(other), keel_store::RecordKinds::ALL)
        .await
        .unwrap()
        .contracts;
    let mut edited = contract[0].clone();
    edited.mrr = keel_core::Money::parse("1", edited.mrr.currency.as_str()).unwrap();
    let mut tx = s.store.begin(ws).await.unwrap();
    tx.upsert_contracts(&[edited]).await.unwrap();
    tx.commit().await.unwrap();
    s.state.evaluate_everything().await.unwrap();
    s.state.timeline_settled().await;
    let (_, body) = common::get(&s, "/api/v1/timeline", &key).await;
    assert_eq!(rederived(&body), before + 1, "the edited account was re-derived: {body}");
    assert_kept_as_evaluated(&s, ws, j, "v-test").await;
}
