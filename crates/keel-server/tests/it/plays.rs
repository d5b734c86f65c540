//! The play runner over a real SQLite store on a small demo world: plays
//! fire into tasks and deliveries, a second pass starts nothing, racing
//! evaluations of one account start one run, and runs resume after the
//! store is reopened.

use crate::common;

use std::sync::Arc;

use keel_app::runner;
use keel_core::{Date, Timestamp};
use keel_engine::{AccountHistory, Plan};
use keel_journey::Journey;
use keel_store::{Accounts, RecordKinds, SqliteOptions, SqliteStore, Store, TaskQuery, WorkspaceId};

fn journey() -> Journey {
    keel_journey::check("journey.toml", keel_journey::DEFAULT_JOURNEY).unwrap()
}

fn date(s: &str) -> Date {
    keel_core::parse_date(s).unwrap()
}

fn noon(d: Date) -> Timestamp {
    d.and_hms_opt(12, 0, 0).unwrap().and_utc()
}

async fn demo_store(path: &str, accounts: usize) -> (Arc<dyn Store>, WorkspaceId) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path, SqliteOptions::default()).await.unwrap());
    let ws = store.workspace("default").await.unwrap();
    let config =
        keel_demo::DemoConfig { accounts, months: 18, seed: 7, end: date("2026-06-01"), plays_from: None };
    common::store_demo(store.as_ref(), ws, &config).await;
    (store, ws)
}

async fn histories(store: &dyn Store, ws: WorkspaceId) -> Vec<AccountHistory> {
    let snapshot = store.records(ws, Accounts::All, RecordKinds::ALL).await.unwrap();
    let mut h = keel_app::load::group(snapshot);
    keel_app::load::fill_usage(store, ws, &mut h, None, true).await.unwrap();
    h
}

/// Evaluates every account as of `day` and runs the plays, in one transaction.
async fn pass(store: &dyn Store, ws: WorkspaceId, j: &Journey, day: Date) -> runner::PlayCounts {
    let hs = histories(store, ws).await;
    let plan = Plan::new(j.clone(), &store.event_names(ws).await.unwrap());
    let evaluated = hs.iter().map(|h| (h, keel_engine::evaluate(&plan, h, day))).collect();
    let mut tx = store.begin(ws).await.unwrap();
    let counts = runner::run_accounts(tx.as_mut(), j, evaluated, noon(day)).await.unwrap();
    tx.commit().await.unwrap();
    counts
}

#[tokio::test]
async fn plays_fire_into_tasks_and_deliveries_and_a_second_pass_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ws) = demo_store(dir.path().join("k.db").to_str().unwrap(), 40).await;
    let j = journey();
    let first = pass(store.as_ref(), ws, &j, date("2026-05-01")).await;
    assert!(first.started > 0 && first.tasks > 0, "{first:?}");
    let tasks = store.tasks(ws, &TaskQuery::default()).await.unwrap();
    assert_eq!(tasks.len() as u64, first.tasks);
    for t in &tasks {
        assert_eq!(t.status, "open");
        assert!(!t.owner.is_empty() && !t.title.contains("{{"), "{t:?}");
        let run = t.run_key.as_deref().unwrap();
        let log = store.play_decisions(ws, None, Some(run)).await.unwrap();
        assert_eq!(log[0].decision, "fired", "{log:?}");
        assert!(log.iter().all(|d| d.journey_version == j.version));
    }
    let runs = store.play_runs(ws, None, None).await.unwrap();
    assert_eq!(runs.len() as u64, first.started);

    // The same day again: the memo says nothing new started.
    let again = pass(store.as_ref(), ws, &j, date("2026-05-01")).await;
    assert_eq!((again.started, again.tasks, again.deliveries), (0, 0, 0), "{again:?}");
    assert_eq!(store.play_runs(ws, None, None).await.unwrap().len(), runs.len());

    // The audit log is append-only.
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("k.db").display())).await.unwrap();
    let err = sqlx::query("UPDATE play_decisions SET detail = 'x'").execute(&pool).await.unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("DELETE FROM play_decisions").execute(&pool).await.unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
}

#[tokio::test]
async fn racing_evaluations_of_one_account_start_each_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ws) = demo_store(dir.path().join("k.db").to_str().unwrap(), 12).await;
    let j = Arc::new(journey());
    let day = date("2026-05-01");
    let hs = histories(store.as_ref(), ws).await;
    let plan = Plan::new((*j).clone(), &store.event_names(ws).await.unwrap());
    // The account with the most occurrences on the day.
    let (history, expected) = hs
        .iter()
        .map(|h| {
            let state = keel_engine::evaluate(&plan, h, day);
            let facts = keel_plays::Facts::new(&j, h, state, &[]);
            (h.clone(), keel_plays::occurrences(&j, &facts, &keel_plays::Memo::default()).len())
        })
        .max_by_key(|(_, n)| *n)
        .unwrap();
    assert!(expected > 0);
    let state = keel_engine::evaluate(&plan, &history, day);
    let history = Arc::new(history);
    let mut racers = Vec::new();
    for _ in 0..8 {
        let (store, j, history, state) = (store.clone(), j.clone(), history.clone(), state.clone());
        racers.push(tokio::spawn(async move {
            let mut tx = store.begin(ws).await.unwrap();
            let c = runner::run_account(tx.as_mut(), &j, &history, state, noon(day)).await.unwrap();
            tx.commit().await.unwrap();
            c.started
        }));
    }
    let mut started = 0;
    for r in racers {
        started += r.await.unwrap();
    }
    let runs = store.play_runs(ws, None, Some(&history.account.id)).await.unwrap();
    assert_eq!(started, runs.len() as u64);
    let mut keys: Vec<&str> = runs.iter().map(|r| r.key.as_str()).collect();
    keys.dedup();
    assert_eq!(keys.len(), runs.len(), "no run twice");
    let mut open: Vec<&str> = runs.iter().filter(|r| r.open).map(|r| r.play.as_str()).collect();
    let n = open.len();
    open.sort_unstable();
    open.dedup();
    assert_eq!(open.len(), n, "at most one open run per play");

    // A stale evaluation that missed the memo still cannot open a second run of a play.
    let base = runs.iter().find(|r| r.open).unwrap_or(&runs[0]);
    let twin = |n: u32| {
        let mut t = base.clone();
        t.key = format!("{}-stale-{n}", t.key);
        t.open = true;
        t
    };
    let mut tx = store.begin(ws).await.unwrap();
    let first = tx.insert_play_run(&twin(1)).await.unwrap();
    assert_eq!(first, !base.open, "a first open run of the play is accepted");
    assert!(!tx.insert_play_run(&twin(2)).await.unwrap(), "the open-run index refuses a second open run");
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn runs_resume_after_the_store_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.db");
    let j = journey();
    let waiting = {
        let (store, ws) = demo_store(path.to_str().unwrap(), 40).await;
        pass(store.as_ref(), ws, &j, date("2026-04-01")).await;
        store.play_runs(ws, None, None).await.unwrap().into_iter().filter(|r| r.open).count()
    };
    // Reopen (a restart): the open runs are read back and go on; none starts twice.
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(path.to_str().unwrap(), SqliteOptions::default()).await.unwrap());
    let ws = store.workspace("default").await.unwrap();
    let before = store.play_runs(ws, None, None).await.unwrap();
    assert_eq!(before.iter().filter(|r| r.open).count(), waiting);
    for d in ["2026-04-02", "2026-04-20", "2026-05-15"] {
        pass(store.as_ref(), ws, &j, date(d)).await;
    }
    let after = store.play_runs(ws, None, None).await.unwrap();
    for b in &before {
        let a = after.iter().find(|a| a.key == b.key).unwrap();
        assert!(a.updated_at >= b.updated_at);
    }
    let mut keys: Vec<&str> = after.iter().map(|r| r.key.as_str()).collect();
    keys.sort_unstable();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n);
    assert!(after.iter().any(|r| r.status == "completed"), "runs finished after the restart");
}

/// An `opportunity` step hands the account to sales as a CS-sourced
/// expansion opportunity, in the account's currency, once per run.
#[tokio::test]
async fn an_opportunity_step_opens_one_cs_sourced_opportunity_per_run() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ws) = demo_store(dir.path().join("k.db").to_str().unwrap(), 10).await;
    let source = format!(
        "{}\n[[plays]]\nid = \"handoff\"\ntype = \"opportunity\"\ntrigger = {{ when = \"mrr > 0.0\" }}\n\
         holdout_pct = 0\n\n[[plays.steps]]\nkind = \"opportunity\"\nopportunity = \"cross_sell\"\n",
        keel_journey::DEFAULT_JOURNEY
    );
    let j = keel_journey::check("journey.toml", &source).unwrap();
    let ours = |store: Arc<dyn Store>| async move {
        let snapshot = store.records(ws, Accounts::All, RecordKinds::ALL).await.unwrap();
        snapshot.opportunities.into_iter().filter(|o| o.id.as_str().contains("/handoff/")).collect::<Vec<_>>()
    };
    pass(store.as_ref(), ws, &j, date("2026-05-01")).await;
    let opened = ours(store.clone()).await;
    let paying: Vec<_> = histories(store.as_ref(), ws)
        .await
        .into_iter()
        .filter(|h| h.contracts.iter().any(|c| c.start <= date("2026-05-01")))
        .collect();
    // Every paying account starts a run; governance suppresses the hand-off
    // of an account in pain (the default journey's no_upsell_in_pain).
    let runs = store.play_runs(ws, Some("handoff"), None).await.unwrap();
    assert_eq!(runs.len(), paying.len(), "{runs:?}");
    let suppressed: Vec<_> = runs.iter().filter(|r| r.status == "suppressed").collect();
    for r in &suppressed {
        let log = store.play_decisions(ws, None, Some(&r.key)).await.unwrap();
        assert!(log.iter().any(|d| d.rule.as_deref() == Some("no_upsell_in_pain")), "{log:?}");
    }
    assert_eq!(opened.len() + suppressed.len(), paying.len(), "one per run that went ahead: {opened:?}");
    assert!(!opened.is_empty());
    for o in &opened {
        assert_eq!(
            (o.kind, o.source, o.status, o.stage.as_str()),
            (
                keel_core::OpportunityKind::CrossSell,
                keel_core::OpportunitySource::Cs,
                keel_core::OpportunityStatus::Open,
                "cs_handoff"
            ),
            "{o:?}"
        );
        let h = paying.iter().find(|h| h.account.id == o.account).unwrap();
        assert_eq!(o.mrr_delta.currency, h.contracts[0].mrr.currency, "in the account's currency");
        assert_eq!(o.created, date("2026-05-01"));
    }
    // The next days: the condition still holds, the run is done; nothing new.
    pass(store.as_ref(), ws, &j, date("2026-05-02")).await;
    assert_eq!(ours(store.clone()).await.len(), opened.len());
}
