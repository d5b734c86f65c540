//! The store's integration tests, one binary: failures of the disk under
//! the SQLite backend.
#![allow(clippy::unwrap_used, reason = "tests fail loudly by design")]

mod disk_full;
