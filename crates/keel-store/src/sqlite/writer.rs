//! The connection of one write transaction, and what happens to it when a
//! commit fails.
//!
//! sqlx's own `Transaction` counts its depth per connection and, when a
//! COMMIT fails, rolls back on drop. But SQLite ends the transaction itself
//! on some failures (a full disk, an I/O error): the ROLLBACK then fails
//! ("no transaction is active"), the depth stays at one, and the pooled
//! connection refuses every later BEGIN with "attempted to call begin_with
//! at non-zero transaction depth" until the process restarts. So a write
//! transaction is a plain pooled connection on which Keel says BEGIN,
//! COMMIT and ROLLBACK itself, and any connection whose transaction did not
//! end cleanly is closed instead of going back to the pool (closing
//! rolls back whatever SQLite still holds open).
//!
//! A write transaction also holds the store's write turn from BEGIN to its
//! end. SQLite has one writer at a time, and its busy handler polls with
//! growing sleeps, which let a busy ingest writer starve the evaluator for
//! seconds; the turn queues writers in arrival order instead. Callers never
//! see it: taking a transaction is taking the turn.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The store's write turn: held by one write transaction (or maintenance
/// step) at a time, granted in arrival order.
pub(crate) type WriteTurn = Arc<Mutex<()>>;

/// Whether the last write of the store failed for want of the disk (full,
/// I/O error, locked too long) and has not succeeded since.
#[derive(Debug, Default)]
pub(crate) struct WriteHealth(AtomicBool);

impl WriteHealth {
    pub(crate) fn failed(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub(crate) fn succeeded(&self) {
        self.0.store(false, Ordering::Release);
    }

    pub(crate) fn is_failing(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A pooled connection inside `BEGIN IMMEDIATE`.
pub(crate) struct WriteConn {
    conn: PoolConnection<Sqlite>,
    /// Still inside the transaction (neither committed nor rolled back).
    open: bool,
    health: Arc<WriteHealth>,
    /// Declared after `conn`, so it is released after the connection is.
    _turn: OwnedMutexGuard<()>,
}

impl WriteConn {
    /// Takes a connection and the write lock (IMMEDIATE: a second writer
    /// waits for it instead of failing half-way through with SQLITE_BUSY).
    pub(crate) async fn begin(
        pool: &SqlitePool,
        turn: &WriteTurn,
        health: Arc<WriteHealth>,
    ) -> Result<Self, sqlx::Error> {
        let turn = turn.clone().lock_owned().await;
        let mut conn = pool.acquire().await?;
        if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
            if super::is_unavailable(&e) {
                health.failed();
            }
            conn.close_on_drop();
            return Err(e);
        }
        Ok(Self { conn, open: true, health, _turn: turn })
    }

    /// Commits. On failure the transaction is rolled back (or was already,
    /// by SQLite) and the connection is closed rather than reused.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        match sqlx::query("COMMIT").execute(&mut *self.conn).await {
            Ok(_) => {
                self.open = false;
                self.health.succeeded();
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed; rolled back, and the connection is discarded");
                self.health.failed();
                self.discard().await;
                Err(e)
            }
        }
    }

    /// Rolls back. A connection whose ROLLBACK fails is closed.
    pub(crate) async fn rollback(mut self) -> Result<(), sqlx::Error> {
        match sqlx::query("ROLLBACK").execute(&mut *self.conn).await {
            Ok(_) => {
                self.open = false;
                Ok(())
            }
            Err(e) => {
                self.discard().await;
                Err(e)
            }
        }
    }

    /// Ends whatever is left of the transaction and closes the connection.
    async fn discard(&mut self) {
        let _ = sqlx::query("ROLLBACK").execute(&mut *self.conn).await;
        self.open = false;
        self.conn.close_on_drop();
    }
}

impl Drop for WriteConn {
    fn drop(&mut self) {
        if self.open {
            // Dropped mid-transaction (an error inside it): no await is
            // possible here, so the connection is closed, which rolls back.
            // The failure may have been the disk's: the next readiness
            // check tries a write to find out.
            self.health.failed();
            self.conn.close_on_drop();
        }
    }
}

impl Deref for WriteConn {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for WriteConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}
