//! The store's integration tests, one binary: the conformance suite, run
//! for every backend, and failures of the disk under the SQLite backend.
#![allow(clippy::unwrap_used, reason = "tests fail loudly by design")]

mod conformance;
mod disk_full;

/// A fresh SQLite store in a directory of its own (kept as long as the
/// store lives: the directory is leaked on purpose, in the system's temp).
async fn sqlite() -> Box<dyn keel_store::Store> {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("k.db");
    Box::new(
        keel_store::SqliteStore::open(path.to_str().unwrap(), keel_store::SqliteOptions::default())
            .await
            .unwrap(),
    )
}

backend!(sqlite_backend, crate::sqlite());
