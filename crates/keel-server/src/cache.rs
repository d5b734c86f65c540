//! The dashboard's report cache. A portfolio report — trailing retention,
//! the journey-map audit, the health backtest — reads every account's
//! history and takes seconds over a large workspace, while a page must
//! answer in milliseconds. So pages read reports through this cache:
//!
//! - a report is computed once per key (the report, its parameters, the
//!   workspace and the day it is as of) however many requests ask at once;
//!   the others wait for that computation instead of starting their own;
//! - for `ttl` after it was computed it is served as it is; after that it is
//!   still served, and one background task recomputes it (stale while it
//!   revalidates), so no request after the first pays for the computation;
//! - the computation runs in a task of its own, so a client that goes away
//!   does not cancel work other people wait for;
//! - every answer says when its figures were computed, and pages show it.
//!
//! Keys carry the day, so a new day starts new entries; entries not asked
//! for in a day are dropped.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keel_core::Timestamp;

use crate::Clock;
use keel_app::reports::ReportError;

type Value = Arc<dyn Any + Send + Sync>;

/// A computed report, with when it was computed.
#[derive(Clone)]
struct Kept {
    value: Value,
    made: Instant,
    computed_at: Timestamp,
}

#[derive(Default)]
struct Slot {
    kept: Mutex<Option<Kept>>,
    /// Held while the report is being computed.
    making: Arc<tokio::sync::Mutex<()>>,
    /// When the slot was last asked for.
    asked: Mutex<Option<Instant>>,
}

impl Slot {
    fn peek(&self) -> Option<Kept> {
        self.kept.lock().ok().and_then(|k| k.clone())
    }

    fn put(&self, value: Value, computed_at: Timestamp) {
        if let Ok(mut k) = self.kept.lock() {
            *k = Some(Kept { value, made: Instant::now(), computed_at });
        }
    }
}

/// A report as a page reads it.
#[derive(Debug)]
pub struct Cached<T> {
    /// The report.
    pub value: Arc<T>,
    /// When it was computed.
    pub computed_at: Timestamp,
    /// Older than the cache's time to live (a newer one is being computed).
    pub stale: bool,
}

/// Reports by key; see the module docs.
pub struct ReportCache {
    ttl: Duration,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// Where reports are computed; the caller's runtime when `None`.
    on: Option<tokio::runtime::Handle>,
}

/// How long an entry nobody asks for is kept.
const UNUSED: Duration = Duration::from_secs(86_400);

impl ReportCache {
    /// An empty cache whose entries are fresh for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, slots: Mutex::default(), on: None }
    }

    /// The same cache, computing its reports on `threads` (the server's
    /// low-priority heavy-work threads).
    pub fn computing_on(self, threads: tokio::runtime::Handle) -> Self {
        Self { on: Some(threads), ..self }
    }

    fn spawn<F: Future + Send + 'static>(&self, work: F) -> tokio::task::JoinHandle<F::Output>
    where
        F::Output: Send + 'static,
    {
        match &self.on {
            Some(threads) => threads.spawn(work),
            None => tokio::spawn(work),
        }
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !slots.contains_key(key) {
            // Drop what nobody asked for in a day before adding.
            slots.retain(|_, s| {
                s.asked.lock().ok().and_then(|a| *a).is_some_and(|a| a.elapsed() < UNUSED)
                    || Arc::strong_count(s) > 1
            });
        }
        let slot = slots.entry(key.to_owned()).or_default().clone();
        if let Ok(mut asked) = slot.asked.lock() {
            *asked = Some(Instant::now());
        }
        slot
    }

    fn answer<T: Send + Sync + 'static>(&self, kept: Kept) -> Option<Cached<T>> {
        let stale = kept.made.elapsed() >= self.ttl;
        kept.value.downcast::<T>().ok().map(|value| Cached { value, computed_at: kept.computed_at, stale })
    }

    /// The report under `key`, computed by `make` when the cache has none,
    /// recomputed in the background when what it has is older than the ttl.
    /// `key` must name everything the report depends on.
    pub async fn get<T, F, Fut>(&self, key: &str, clock: &Clock, make: F) -> Result<Cached<T>, ReportError>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, ReportError>> + Send + 'static,
    {
        let slot = self.slot(key);
        if let Some(answer) = slot.peek().and_then(|kept| self.answer::<T>(kept)) {
            // Past its ttl: one background recomputation, unless one runs already.
            if answer.stale
                && let Ok(guard) = slot.making.clone().try_lock_owned()
            {
                let (slot, clock, key) = (slot.clone(), clock.clone(), key.to_owned());
                self.spawn(async move {
                    let _making = guard;
                    match make().await {
                        Ok(v) => slot.put(Arc::new(v), clock()),
                        Err(e) => tracing::warn!(error = %e, report = %key, "recomputing a report failed"),
                    }
                });
            }
            return Ok(answer);
        }
        // Nothing yet: wait for whoever computes it, or compute it.
        let guard = slot.making.clone().lock_owned().await;
        if let Some(answer) = slot.peek().and_then(|k| self.answer::<T>(k)) {
            return Ok(answer);
        }
        let (into, clock) = (slot.clone(), clock.clone());
        let task = self.spawn(async move {
            let _making = guard;
            let value = Arc::new(make().await?);
            let computed_at = clock();
            into.put(value.clone(), computed_at);
            Ok::<_, ReportError>(Cached { value, computed_at, stale: false })
        });
        match task.await {
            Ok(answer) => answer,
            Err(e) => Err(ReportError::Failed(format!("computing the report stopped: {e}"))),
        }
    }
}

/// The key of a report: workspace, report name and every parameter.
pub fn key(ws: keel_store::WorkspaceId, report: &str, params: &[&dyn std::fmt::Display]) -> String {
    let mut k = format!("{}/{report}", ws.0);
    for p in params {
        k.push('/');
        k.push_str(&p.to_string());
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn clock() -> Clock {
        Arc::new(|| keel_core::parse_timestamp("2026-03-01T12:00:00Z").unwrap_or_default())
    }

    #[tokio::test]
    async fn concurrent_requests_compute_a_report_once() {
        let cache = Arc::new(ReportCache::new(Duration::from_secs(60)));
        let made = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut waiting = Vec::new();
        for _ in 0..8 {
            let (cache, made, mut rx) = (cache.clone(), made.clone(), rx.clone());
            waiting.push(tokio::spawn(async move {
                cache
                    .get("1/r", &clock(), move || async move {
                        made.fetch_add(1, Ordering::SeqCst);
                        // Held until the test lets go, so every request is waiting by then.
                        let _ = rx.wait_for(|go| *go).await;
                        Ok::<_, ReportError>(42u32)
                    })
                    .await
                    .map(|c| *c.value)
            }));
        }
        tokio::task::yield_now().await;
        tx.send(true).unwrap();
        for w in waiting {
            assert_eq!(w.await.unwrap().unwrap(), 42);
        }
        assert_eq!(made.load(Ordering::SeqCst), 1);
        drop(rx);
    }

    #[tokio::test]
    async fn a_stale_report_is_served_while_one_recomputation_runs() {
        let cache = ReportCache::new(Duration::ZERO);
        let first = cache.get("1/r", &clock(), || async { Ok::<_, ReportError>(1u32) }).await.unwrap();
        assert_eq!((*first.value, first.stale), (1, false));
        // Past the ttl: the old figure now, the new one once the background task ran.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let second = cache
            .get("1/r", &clock(), move || async move {
                let _ = tx.send(());
                Ok::<_, ReportError>(2u32)
            })
            .await
            .unwrap();
        assert_eq!((*second.value, second.stale), (1, true));
        rx.await.unwrap();
        // The recomputation holds the slot until it stored its figure.
        let slot = cache.slot("1/r");
        let _done = slot.making.lock().await;
        assert_eq!(*slot.peek().unwrap().value.downcast::<u32>().unwrap(), 2);
    }

    #[tokio::test]
    async fn a_failed_computation_is_an_error_and_is_not_kept() {
        let cache = ReportCache::new(Duration::from_secs(60));
        let err =
            cache.get("1/r", &clock(), || async { Err::<u32, _>(ReportError::NoJourney) }).await.unwrap_err();
        assert!(matches!(err, ReportError::NoJourney), "{err}");
        let ok = cache.get("1/r", &clock(), || async { Ok::<_, ReportError>(7u32) }).await.unwrap();
        assert_eq!(*ok.value, 7);
    }

    #[test]
    fn keys_name_the_workspace_and_every_parameter() {
        let ws = keel_store::WorkspaceId(3);
        assert_eq!(key(ws, "audit", &[&"2026-03-01", &"smb"]), "3/audit/2026-03-01/smb");
    }
}
