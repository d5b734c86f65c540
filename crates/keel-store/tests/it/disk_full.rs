//! A disk that fills up under the SQLite backend, and is freed again: a
//! failed write loses nothing already committed, and once space is back the
//! next write succeeds without a restart (issue 19, finding 2: the writer
//! used to stay wedged with "attempted to call begin_with at non-zero
//! transaction depth").

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use keel_core::{Account, EntityKind, Event, EventName, ExternalId, MessageId, UserId};
use keel_store::{SqliteOptions, SqliteStore, Store, WorkspaceId};

/// A tmpfs of `mib` MiB mounted on a fresh directory, unmounted on drop.
/// Mounting needs root, which CI and the developers' machines have.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(mib: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill it up, which needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a filler file until the disk is full; returns its path.
    pub fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 16 << 10];
        while file.write_all(&chunk).is_ok() {}
        // Whatever partial chunk fits, and then not one byte more.
        while file.write_all(&[0]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn account(id: &str) -> Account {
    Account {
        id: ExternalId::parse(id).unwrap(),
        name: id.to_owned(),
        attributes: Default::default(),
        owner: None,
        parent: None,
        created: "2025-01-01".parse().unwrap(),
    }
}

fn events(from: usize, n: usize) -> Vec<Event> {
    let t = keel_core::parse_timestamp("2025-03-01T10:00:00Z").unwrap();
    (from..from + n)
        .map(|i| Event {
            message_id: MessageId::parse(&format!("m-{i}")).unwrap(),
            account: ExternalId::parse("acme").unwrap(),
            user: UserId::parse(&format!("u{}", i % 50)).unwrap(),
            name: EventName::parse("report_viewed").unwrap(),
            timestamp: t + chrono::Duration::seconds(i as i64),
            received_at: t + chrono::Duration::seconds(i as i64),
            properties: serde_json::Map::from_iter([("padding".to_owned(), "x".repeat(200).into())]),
        })
        .collect()
}

async fn count(store: &SqliteStore, ws: WorkspaceId, kind: EntityKind) -> u64 {
    let status = store.status(ws).await.unwrap();
    status.counts.iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| *n)
}

/// Appends `rows` in one transaction; the error of whichever step failed.
async fn append(store: &SqliteStore, ws: WorkspaceId, rows: &[Event]) -> Result<(), keel_store::StoreError> {
    let mut tx = store.begin(ws).await?;
    tx.append_events(rows).await?;
    tx.commit().await
}

#[tokio::test]
async fn a_write_that_fails_on_a_full_disk_loses_nothing_and_the_next_one_succeeds_once_space_is_freed() {
    let disk = SmallDisk::mount(16);
    let options = SqliteOptions { cache_mib: 8, ..SqliteOptions::default() };
    let store = SqliteStore::open(disk.path().join("k.db").to_str().unwrap(), options).await.unwrap();
    let ws = store.workspace("w").await.unwrap();
    let mut tx = store.begin(ws).await.unwrap();
    tx.upsert_accounts(&[account("acme")]).await.unwrap();
    tx.append_events(&events(0, 100)).await.unwrap();
    tx.commit().await.unwrap();

    let filler = disk.fill();
    // Small writes and large ones, so that some fail inside a statement and
    // some at the commit itself.
    let mut failures = 0;
    for (i, n) in [(1_000, 10), (2_000, 5_000), (10_000, 1), (20_000, 20_000)] {
        if append(&store, ws, &events(i, n)).await.is_err() {
            failures += 1;
        }
    }
    assert!(failures >= 2, "the full disk refused only {failures} of 4 writes");
    let now = keel_core::parse_timestamp("2025-03-02T00:00:00Z").unwrap();
    let refused = store.writable(now).await.expect_err("the store knows it cannot write");
    assert!(refused.is_unavailable(), "{refused}: the failure is the disk's, not the request's");

    std::fs::remove_file(&filler).unwrap();
    store.writable(now).await.expect("writable again once space is freed, without a restart");
    append(&store, ws, &events(100, 50)).await.expect("the store writes again once space is freed");
    let stored = count(&store, ws, EntityKind::Events).await;
    assert!((150..=150 + 10 + 5_000 + 1 + 20_000).contains(&stored), "{stored} events");
    // What the failed writes did not commit is not half there: writing the
    // same messages again stores each exactly once.
    for (i, n) in [(1_000, 10), (2_000, 5_000), (10_000, 1), (20_000, 20_000)] {
        append(&store, ws, &events(i, n)).await.unwrap();
    }
    assert_eq!(count(&store, ws, EntityKind::Events).await, 150 + 10 + 5_000 + 1 + 20_000);
    let ok: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(store.pool()).await.unwrap();
    assert_eq!(ok, "ok");
}
