//! Heavy work — reports and as-of evaluations, which read whole histories —
//! takes a turn: at most `concurrent` at once, at most `waiting` queued,
//! none waiting longer than `wait`. Past either bound the request is
//! answered 503 `busy` with `Retry-After`, so a burst of reports cannot
//! queue without end. Health checks, ingest and pages that read stored
//! state take no turn and never wait behind them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::error::{ApiError, Code};

/// The bounds of heavy work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeavyLimits {
    /// Heavy requests computing at once (each already spreads over every core).
    pub concurrent: usize,
    /// Heavy requests waiting for a turn; past it, 503 at once.
    pub waiting: usize,
    /// The longest a heavy request waits for its turn; then 503.
    pub wait: Duration,
}

impl Default for HeavyLimits {
    /// Half the cores at once (at least one), 32 waiting, 30 s.
    fn default() -> Self {
        Self { concurrent: keel_app::heavy_concurrency(), waiting: 32, wait: Duration::from_secs(30) }
    }
}

/// Seconds a client is told to wait after a `busy` answer.
pub const RETRY_BUSY_SECS: u64 = 5;

/// The turns.
pub(crate) struct Heavy {
    limits: HeavyLimits,
    turns: Arc<Semaphore>,
    waiting: watch::Sender<usize>,
}

impl Heavy {
    pub(crate) fn new(limits: HeavyLimits) -> Self {
        let turns = Arc::new(Semaphore::new(limits.concurrent.clamp(1, Semaphore::MAX_PERMITS)));
        Self { limits, turns, waiting: watch::channel(0).0 }
    }

    /// Waits for a turn, within the bounds.
    pub(crate) async fn turn(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(permit) = Arc::clone(&self.turns).try_acquire_owned() {
            return Ok(permit);
        }
        let mut full = false;
        self.waiting.send_modify(|n| {
            full = *n >= self.limits.waiting;
            if !full {
                *n += 1;
            }
        });
        if full {
            return Err(busy(format!(
                "{} reports are already waiting for a turn; retry in {RETRY_BUSY_SECS} s",
                self.limits.waiting
            )));
        }
        let got = tokio::time::timeout(self.limits.wait, Arc::clone(&self.turns).acquire_owned()).await;
        self.waiting.send_modify(|n| *n -= 1);
        match got {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(busy(format!(
                "no turn for heavy work within {} s; retry in {RETRY_BUSY_SECS} s",
                self.limits.wait.as_secs()
            ))),
        }
    }

    /// A turn taken outside a request (tests hold one to see what waits).
    pub(crate) async fn hold(&self) -> OwnedSemaphorePermit {
        loop {
            if let Ok(p) = Arc::clone(&self.turns).acquire_owned().await {
                return p;
            }
        }
    }

    /// How many requests wait for a turn, as it changes.
    pub(crate) fn waiting(&self) -> watch::Receiver<usize> {
        self.waiting.subscribe()
    }
}

fn busy(message: String) -> ApiError {
    let mut e = ApiError::new(Code::Busy, message);
    e.retry_after = Some(RETRY_BUSY_SECS);
    e
}
