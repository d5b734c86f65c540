//! The test harness: a real server on a loopback port over a real SQLite
//! file, keys, and small HTTP helpers.

use std::sync::Arc;

use keel_app::keys::{self, Scope};
use keel_core::EntityKind;
use keel_store::{SqliteOptions, SqliteStore, Store, WorkspaceId};
use serde_json::{Value, json};

pub struct Server {
    pub url: String,
    pub store: Arc<dyn Store>,
    /// The server's state, to await facts (`settled`) instead of time.
    pub state: keel_server::AppState,
    _dir: tempfile::TempDir,
}

pub fn clock() -> keel_server::Clock {
    Arc::new(|| keel_core::parse_timestamp("2026-03-01T12:00:00Z").unwrap())
}

pub async fn start() -> Server {
    start_with(keel_server::Config::default()).await
}

pub async fn start_with(config: keel_server::Config) -> Server {
    start_in(tempfile::tempdir().unwrap(), config).await
}

/// A server whose database file lives in `dir`.
pub async fn start_in(dir: tempfile::TempDir, config: keel_server::Config) -> Server {
    let path = dir.path().join("k.db");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(path.to_str().unwrap(), SqliteOptions::default()).await.unwrap());
    let state = keel_server::startup(store.clone(), config, clock());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(keel_server::serve_on(listener, state.clone(), std::future::pending()));
    Server { url, store, state, _dir: dir }
}

/// A server whose heavy work — and so its background timeline task — is
/// stalled from the start until the guard is dropped.
pub async fn start_stalled(
    dir: tempfile::TempDir,
    config: keel_server::Config,
) -> (Server, keel_server::heavy::Stalled) {
    let path = dir.path().join("k.db");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(path.to_str().unwrap(), SqliteOptions::default()).await.unwrap());
    let state = keel_server::AppState::new(store.clone(), config, clock());
    let stalled = state.stall_heavy_work();
    state.keep_timeline();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(keel_server::serve_on(listener, state.clone(), std::future::pending()));
    (Server { url, store, state, _dir: dir }, stalled)
}

/// The default journey, as the server runs it.
pub fn journey() -> Arc<keel_app::JourneyConfig> {
    let journey = keel_journey::check("journey.toml", keel_journey::DEFAULT_JOURNEY).unwrap();
    Arc::new(keel_app::JourneyConfig {
        journey,
        version: "v-test".into(),
        file: "journey.toml".into(),
        source: keel_journey::DEFAULT_JOURNEY.into(),
    })
}

pub async fn key(s: &Server, workspace: &str, scopes: &[Scope]) -> (WorkspaceId, String) {
    let ws = s.store.workspace(workspace).await.unwrap();
    let at = keel_core::parse_timestamp("2026-01-01T00:00:00Z").unwrap();
    let k = keys::create(s.store.as_ref(), ws, workspace, "test", scopes, at).await.unwrap();
    (ws, k.secret)
}

pub async fn events(s: &Server, ws: WorkspaceId) -> u64 {
    let status = s.store.status(ws).await.unwrap();
    status.counts.iter().find(|(k, _)| *k == EntityKind::Events).map_or(0, |(_, n)| *n)
}

pub fn track(id: &str, user: &str, account: Option<&str>) -> Value {
    let mut m = json!({"type": "track", "messageId": id, "userId": user, "event": "report_viewed",
                       "timestamp": "2026-03-01T11:00:00Z", "properties": {"report": "usage"}});
    if let Some(a) = account {
        m["context"] = json!({"groupId": a});
    }
    m
}

pub async fn post(s: &Server, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(format!("{}{path}", s.url)).json(body);
    if let Some(k) = key {
        req = req.basic_auth(k, Some(""));
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

pub async fn get(s: &Server, path: &str, key: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .get(format!("{}{path}", s.url))
        .basic_auth(key, Some(""))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Stores a demo world in workspace `ws`, in one transaction.
pub async fn store_demo(store: &dyn Store, ws: WorkspaceId, config: &keel_demo::DemoConfig) {
    let mut tx = store.begin(ws).await.unwrap();
    for h in keel_demo::generate(config) {
        tx.upsert_accounts(&[h.account]).await.unwrap();
        tx.upsert_contracts(&h.contracts).await.unwrap();
        tx.upsert_contacts(&h.contacts).await.unwrap();
        tx.upsert_tickets(&h.tickets).await.unwrap();
        tx.upsert_surveys(&h.surveys).await.unwrap();
        tx.upsert_touchpoints(&h.touchpoints).await.unwrap();
        tx.upsert_opportunities(&h.opportunities).await.unwrap();
        tx.append_events(&h.events).await.unwrap();
    }
    tx.commit().await.unwrap();
}

/// A dashboard user with the password `s3cret-pass`.
pub async fn dashboard_user(s: &Server, ws: WorkspaceId, email: &str, role: &str) {
    let user = keel_store::UserRow {
        id: 0,
        workspace: ws,
        email: email.to_owned(),
        name: email.split('@').next().unwrap().to_owned(),
        role: role.to_owned(),
        password_hash: keel_app::users::hash_password("s3cret-pass").unwrap(),
        created_at: clock()(),
        disabled_at: None,
    };
    s.store.upsert_user(&user).await.unwrap();
}

/// A server running the default journey (with a short tick, so it
/// evaluates what is stored behind its back) over a demo world of
/// `accounts` (seed 42, 24 months to 2026-03-02) in workspace "default",
/// with a leader (lee@vendor.example) and the first demo CSM as dashboard
/// users; returns once every account is evaluated (the tick stays short
/// for the tests that change the clock's view of the world).
pub async fn evaluated_demo(accounts: usize) -> (Server, WorkspaceId) {
    let config = keel_server::Config {
        journey: Some(journey()),
        tick: std::time::Duration::from_millis(300),
        ..keel_server::Config::default()
    };
    let s = start_with(config).await;
    let ws = s.store.workspace("default").await.unwrap();
    let world = keel_demo::DemoConfig {
        accounts,
        months: 24,
        seed: 42,
        end: keel_core::parse_date("2026-03-02").unwrap(),
        plays_from: None,
    };
    store_demo(s.store.as_ref(), ws, &world).await;
    dashboard_user(&s, ws, "lee@vendor.example", "leader").await;
    dashboard_user(&s, ws, keel_demo::CSMS[0], "csm").await;
    let (_, key) = key(&s, "default", &[Scope::Read]).await;
    s.state.evaluate_everything().await.unwrap();
    let (_, page) = get(&s, "/api/v1/reports/portfolio", &key).await;
    assert_eq!(
        (page["accounts"].as_u64(), page["not_evaluated"].as_u64()),
        (Some(accounts as u64), Some(0)),
        "{page}"
    );
    (s, ws)
}

/// Runs the default journey's plays day by day over the two weeks up to the
/// harness's day (2026-02-15 to 2026-03-01), at noon, so the inbox has
/// tasks and held sends.
pub async fn two_weeks_of_plays(s: &Server, ws: WorkspaceId) {
    let j = journey();
    let mut day = keel_core::parse_date("2026-02-15").unwrap();
    while day <= keel_core::parse_date("2026-03-01").unwrap() {
        let noon = day.and_hms_opt(12, 0, 0).unwrap().and_utc();
        keel_app::runner::run_day(s.store.as_ref(), ws, &j.journey, day, noon).await.unwrap();
        day = day.succ_opt().unwrap();
    }
}

/// A tmpfs of 16 MiB mounted on a fresh directory (unmounted on drop), to
/// fill up: mounting needs root, which CI and the developers' machines have.
pub struct SmallDisk {
    pub dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(mounted.success(), "this test mounts a small tmpfs to fill it up, which needs root");
        Self { dir }
    }

    /// Fills the disk with a file, to the last byte; returns the file.
    pub fn fill(&self) -> std::path::PathBuf {
        use std::io::Write as _;
        let filler = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0u8; 16 << 10]).is_ok() {}
        while f.write_all(&[0]).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}
