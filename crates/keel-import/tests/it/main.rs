//! Integration tests of `keel-import` against a real SQLite store.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly by design")]

mod errors;
mod idempotence;
mod roundtrip;

use std::path::{Path, PathBuf};

use chrono::TimeZone;
use keel_core::{EntityKind, Timestamp};
use keel_demo::{DemoConfig, SimulatedAccount};
use keel_import::{Exporter, Format, ImportOptions, ImportReport};
use keel_store::{Snapshot, SqliteOptions, SqliteStore, Store, WorkspaceId};
use tempfile::TempDir;

/// A fresh store in a temporary directory.
pub(crate) struct Fixture {
    pub(crate) dir: TempDir,
    pub(crate) store: SqliteStore,
    pub(crate) ws: WorkspaceId,
}

pub(crate) async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keel.db");
    let store = SqliteStore::open(
        path.to_str().unwrap(),
        SqliteOptions { cache_mib: 16, max_connections: 2, ..SqliteOptions::default() },
    )
    .await
    .unwrap();
    let ws = store.workspace("test").await.unwrap();
    Fixture { dir, store, ws }
}

/// The fixed import time of these tests.
pub(crate) fn now() -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

impl Fixture {
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    pub(crate) async fn import_with(&self, path: &Path, options: ImportOptions) -> ImportReport {
        keel_import::import(&self.store, self.ws, path, &options, &|_| {}).await.unwrap()
    }

    pub(crate) async fn import(&self, kind: EntityKind, path: &Path) -> ImportReport {
        self.import_with(path, ImportOptions::new(kind, now())).await
    }

    pub(crate) async fn snapshot(&self) -> Snapshot {
        self.store.snapshot(self.ws).await.unwrap()
    }
}

/// A small deterministic demo world.
pub(crate) fn world(accounts: usize, months: u32, seed: u64) -> Vec<SimulatedAccount> {
    let config = DemoConfig { accounts, months, seed, end: "2026-05-01".parse().unwrap(), plays_from: None };
    keel_demo::generate(&config).collect()
}

/// What a store holding `world` must return from `snapshot`.
pub(crate) fn expected_snapshot(world: &[SimulatedAccount]) -> Snapshot {
    let mut s = Snapshot::default();
    for h in world {
        s.accounts.push(h.account.clone());
        s.contracts.extend(h.contracts.iter().cloned());
        s.contacts.extend(h.contacts.iter().cloned());
        s.events.extend(h.events.iter().cloned());
        s.tickets.extend(h.tickets.iter().cloned());
        s.surveys.extend(h.surveys.iter().cloned());
        s.touchpoints.extend(h.touchpoints.iter().cloned());
        s.opportunities.extend(h.opportunities.iter().cloned());
    }
    s.accounts.sort_by(|a, b| a.id.cmp(&b.id));
    s.contracts.sort_by(|a, b| a.id.cmp(&b.id));
    s.contacts.sort_by(|a, b| a.id.cmp(&b.id));
    s.events.sort_by(|a, b| {
        (a.account.as_str(), a.timestamp, a.message_id.as_str()).cmp(&(
            b.account.as_str(),
            b.timestamp,
            b.message_id.as_str(),
        ))
    });
    s.tickets.sort_by(|a, b| a.id.cmp(&b.id));
    s.surveys.sort_by(|a, b| a.id.cmp(&b.id));
    s.touchpoints.sort_by(|a, b| a.id.cmp(&b.id));
    s.opportunities.sort_by(|a, b| a.id.cmp(&b.id));
    s
}

pub(crate) const ATTRIBUTES: [&str; 5] = ["tier", "touch", "region", "timezone", "industry"];

/// Writes one kind of a world as an import file and returns its path.
pub(crate) fn export_kind(
    dir: &Path,
    world: &[SimulatedAccount],
    kind: EntityKind,
    format: Format,
) -> PathBuf {
    let ext = if format == Format::Csv { "csv" } else { "jsonl" };
    let path = dir.join(format!("{kind}.{ext}"));
    let file = std::fs::File::create(&path).unwrap();
    let attrs: Vec<String> = ATTRIBUTES.iter().map(|s| (*s).to_owned()).collect();
    let mut out = match format {
        Format::Csv => Exporter::csv(kind, file, &attrs).unwrap(),
        Format::Jsonl => Exporter::jsonl(kind, file),
    };
    for h in world {
        match kind {
            EntityKind::Accounts => out.account(&h.account, &attrs).unwrap(),
            EntityKind::Contracts => h.contracts.iter().for_each(|r| out.contract(r).unwrap()),
            EntityKind::Contacts => h.contacts.iter().for_each(|r| out.contact(r).unwrap()),
            EntityKind::Events => h.events.iter().for_each(|r| out.event(r).unwrap()),
            EntityKind::Tickets => h.tickets.iter().for_each(|r| out.ticket(r).unwrap()),
            EntityKind::Surveys => h.surveys.iter().for_each(|r| out.survey(r).unwrap()),
            EntityKind::Touchpoints => h.touchpoints.iter().for_each(|r| out.touchpoint(r).unwrap()),
            EntityKind::Opportunities => h.opportunities.iter().for_each(|r| out.opportunity(r).unwrap()),
        }
    }
    out.finish().unwrap();
    path
}
