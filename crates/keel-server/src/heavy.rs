//! Heavy work — reports and as-of evaluations, which read whole histories —
//! takes a turn: at most `concurrent` at once, at most `waiting` queued,
//! none waiting longer than `wait`. Past either bound the request is
//! answered 503 `busy` with `Retry-After`, so a burst of reports cannot
//! queue without end. Health checks, ingest and pages that read stored
//! state take no turn and never wait behind them.
//!
//! Heavy work also runs on threads of its own (`Heavy::run`): a runtime
//! whose threads sit at the lowest CPU priority
//! ([`keel_app::load::yield_the_cpu`]), so a report uses the cores nobody
//! else needs and ingest, which runs at normal priority, goes first.

use std::future::Future;
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
    /// The longest a heavy request computes once it has its turn; then it
    /// is stopped and answered 504 `deadline_exceeded`.
    pub deadline: Duration,
}

impl Default for HeavyLimits {
    /// Half the cores at once (at least one), 32 waiting, 30 s to wait, 300 s to compute.
    fn default() -> Self {
        Self {
            concurrent: keel_app::heavy_concurrency(),
            waiting: 32,
            wait: Duration::from_secs(30),
            deadline: Duration::from_secs(300),
        }
    }
}

/// Seconds a client is told to wait after a `busy` answer.
pub const RETRY_BUSY_SECS: u64 = 5;

/// The turns.
pub(crate) struct Heavy {
    limits: HeavyLimits,
    turns: Arc<Semaphore>,
    waiting: watch::Sender<usize>,
    /// While true, heavy work waits before it starts (tests stall it to
    /// see what its deadline does).
    stalled: watch::Sender<bool>,
    /// The low-priority threads; `None` where they could not be started
    /// (heavy work then runs where it is asked).
    threads: Option<tokio::runtime::Runtime>,
}

impl Drop for Heavy {
    fn drop(&mut self) {
        // Dropped from async code (a test's state going away): no blocking wait.
        if let Some(threads) = self.threads.take() {
            threads.shutdown_background();
        }
    }
}

impl Heavy {
    pub(crate) fn new(limits: HeavyLimits) -> Self {
        let turns = Arc::new(Semaphore::new(limits.concurrent.clamp(1, Semaphore::MAX_PERMITS)));
        let threads = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(1, |n| n.get()))
            .thread_name("keel-heavy")
            .on_thread_start(keel_app::load::yield_the_cpu)
            .enable_all()
            .build()
            .inspect_err(|e| tracing::warn!(error = %e, "heavy work runs at normal priority"))
            .ok();
        Self { limits, turns, waiting: watch::channel(0).0, stalled: watch::channel(false).0, threads }
    }

    /// Where heavy work is spawned: the low-priority threads, or the
    /// caller's runtime where they could not be started.
    pub(crate) fn handle(&self) -> tokio::runtime::Handle {
        self.threads.as_ref().map_or_else(tokio::runtime::Handle::current, |t| t.handle().clone())
    }

    /// Runs `work` on the low-priority threads and answers what it answers;
    /// past the deadline it is stopped (at its next await: between chunks of
    /// accounts) and answered 504. It is stopped too when the caller goes
    /// away (the client disconnected). A panic in it carries on into the
    /// caller (answered 500 there).
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, ApiError>> + Send + 'static,
    ) -> Result<T, ApiError> {
        let mut stalled = self.stalled.subscribe();
        let mut task = StopOnDrop(self.handle().spawn(async move {
            // Never closed while `self` lives; a closed channel stalls nothing.
            let _ = stalled.wait_for(|stalled| !stalled).await;
            work.await
        }));
        match tokio::time::timeout(self.limits.deadline, &mut task.0).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Ok(Err(_)) => Err(busy("the server is shutting down".to_owned())),
            Err(_) => Err(ApiError::new(
                Code::DeadlineExceeded,
                format!(
                    "the computation took longer than its deadline of {} s (serve.report_deadline) and was stopped; \
                     ask for less (fewer accounts or dates) or raise the deadline",
                    self.limits.deadline.as_secs_f64()
                ),
            )),
        }
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

    /// Stalls heavy work before it starts until the guard is dropped.
    pub(crate) fn stall(&self) -> Stalled {
        self.stalled.send_replace(true);
        Stalled(self.stalled.clone())
    }

    /// Whether heavy work is stalled, as it changes (background work waits
    /// on it between steps).
    pub(crate) fn stalled(&self) -> watch::Receiver<bool> {
        self.stalled.subscribe()
    }

    /// How many requests wait for a turn, as it changes.
    pub(crate) fn waiting(&self) -> watch::Receiver<usize> {
        self.waiting.subscribe()
    }
}

/// Heavy work is stalled while this lives (`AppState::stall_heavy_work`).
pub struct Stalled(watch::Sender<bool>);

impl Drop for Stalled {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

/// A spawned computation stopped when whoever waits for it goes away.
struct StopOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for StopOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn busy(message: String) -> ApiError {
    let mut e = ApiError::new(Code::Busy, message);
    e.retry_after = Some(RETRY_BUSY_SECS);
    e
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn heavy_work_runs_on_low_priority_threads_and_answers_the_caller() {
        let heavy = Heavy::new(HeavyLimits::default());
        let caller = (std::thread::current().id(), keel_app::load::niceness());
        let seen = heavy
            .run(async { Ok((std::thread::current().id(), keel_app::load::niceness())) })
            .await
            .expect("the work answers");
        assert_ne!(seen.0, caller.0, "the work ran on a thread of its own");
        assert_eq!(seen.1, Some(19));
        assert_eq!(keel_app::load::niceness(), caller.1, "the caller keeps its priority");
        let refused: Result<(), ApiError> = heavy.run(async { Err(ApiError::new(Code::Busy, "no")) }).await;
        assert!(refused.is_err(), "an error comes back as it was");
    }

    #[tokio::test]
    async fn work_past_its_deadline_is_stopped_and_answered_504() {
        let limits = HeavyLimits { deadline: Duration::from_millis(20), ..HeavyLimits::default() };
        let heavy = Heavy::new(limits);
        let (dropped_tx, dropped) = tokio::sync::oneshot::channel::<()>();
        let answer: Result<(), ApiError> = heavy
            .run(async move {
                let _signal_when_dropped = dropped_tx;
                std::future::pending::<()>().await;
                Ok(())
            })
            .await;
        let e = answer.expect_err("never finishes");
        assert_eq!(e.code, Code::DeadlineExceeded);
        assert!(e.message.contains("deadline of 0.02 s"), "{}", e.message);
        // The work was stopped: its future (and the sender it holds) is dropped.
        assert!(dropped.await.is_err(), "the stopped work dropped its sender");
    }
}
