//! Keeping the account timeline while the server runs.
//!
//! The evaluator appends each evaluated account's day to its timeline in
//! its own rounds (the day's evaluation is already at hand, so that costs a
//! read and a write). What takes more — an account whose timeline was never
//! kept under the running journey (a new account, an edited journey after a
//! restart), or whose past was restated (a record edited, usage received
//! late) — goes to the keeper: a background task at the lowest CPU
//! priority that re-derives those timelines a few accounts at a time while
//! ingest, pages and reports carry on. On start it takes every account
//! without a timeline under the running journey; once a workspace's are all
//! kept it drops the rows of other journey versions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use keel_core::{Date, ExternalId};
use keel_engine::Plan;
use keel_store::{Store, WorkspaceId};
use serde::Serialize;
use tokio::sync::{Notify, watch};
use utoipa::ToSchema;

use crate::Clock;
use crate::evaluator::JourneyConfig;

/// How a workspace's timeline stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct TimelineStatus {
    /// The journey version the timeline is kept under (the running journey's).
    pub journey_version: String,
    /// Whether every account's timeline is kept under it: false while the
    /// first pass after a start (or a journey change) is under way, or
    /// accounts wait to be re-derived.
    pub current: bool,
    /// Accounts waiting to be (re-)derived in the background.
    pub waiting: usize,
    /// Accounts re-derived in the background since the server started.
    pub rederived: u64,
    /// The last day concluded by the background task (the evaluator
    /// appends later ones as days pass).
    #[schema(value_type = Option<String>, format = Date)]
    pub through: Option<Date>,
}

#[derive(Default)]
struct Queue {
    /// Accounts waiting, per workspace.
    waiting: BTreeMap<WorkspaceId, BTreeSet<ExternalId>>,
    /// Whether the first pass (every account without a timeline) is done.
    started: bool,
    /// Accounts taken and being worked on.
    working: usize,
    rederived: BTreeMap<WorkspaceId, u64>,
    through: BTreeMap<WorkspaceId, Date>,
}

impl Queue {
    fn idle(&self) -> bool {
        self.started && self.working == 0 && self.waiting.values().all(BTreeSet::is_empty)
    }
}

/// Handle to the background timeline task.
#[derive(Clone)]
pub(crate) struct Keeper {
    queue: Arc<Mutex<Queue>>,
    wake: Arc<Notify>,
    /// Bumped on every change of the queue (what `settled` waits on).
    changed: Arc<watch::Sender<u64>>,
    version: String,
}

impl Keeper {
    pub(crate) fn new(version: String) -> Self {
        Self {
            queue: Arc::default(),
            wake: Arc::new(Notify::new()),
            changed: Arc::new(watch::channel(0).0),
            version,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Queue) -> T) -> T {
        let out = f(&mut self.queue.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.send_modify(|n| *n += 1);
        out
    }

    /// Asks for these accounts' timelines to be re-derived.
    pub(crate) fn queue(&self, ws: WorkspaceId, accounts: impl IntoIterator<Item = ExternalId>) {
        let mut any = false;
        self.with(|q| {
            let set = q.waiting.entry(ws).or_default();
            for a in accounts {
                any |= set.insert(a);
            }
        });
        if any {
            self.wake.notify_one();
        }
    }

    /// How a workspace's timeline stands.
    pub(crate) fn status(&self, ws: WorkspaceId) -> TimelineStatus {
        let q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let waiting = q.waiting.get(&ws).map_or(0, BTreeSet::len);
        TimelineStatus {
            journey_version: self.version.clone(),
            current: q.idle(),
            waiting,
            rederived: q.rederived.get(&ws).copied().unwrap_or(0),
            through: q.through.get(&ws).copied(),
        }
    }

    /// Returns once the first pass is done and no account waits or is
    /// being re-derived.
    pub(crate) async fn settled(&self) {
        let mut changed = self.changed.subscribe();
        loop {
            if self.queue.lock().unwrap_or_else(PoisonError::into_inner).idle() {
                return;
            }
            // The sender lives as long as `self`.
            if changed.changed().await.is_err() {
                return;
            }
        }
    }

    /// The background task: the first pass, then whatever is queued, until
    /// the server stops. Waits while `stalled` says so (before each batch).
    pub(crate) async fn run(
        self,
        store: Arc<dyn Store>,
        journey: Arc<JourneyConfig>,
        clock: Clock,
        mut stalled: watch::Receiver<bool>,
    ) {
        loop {
            let _ = stalled.wait_for(|s| !s).await;
            match self.first_pass(store.as_ref()).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, "the timeline's first pass failed; retrying in 30 s");
                    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                }
            }
        }
        self.with(|q| q.started = true);
        let mut dropped: BTreeSet<WorkspaceId> = BTreeSet::new();
        loop {
            let _ = stalled.wait_for(|s| !s).await;
            let batch = self.with(|q| {
                let ws = q.waiting.iter().find(|(_, s)| !s.is_empty()).map(|(ws, _)| *ws)?;
                let set = q.waiting.get_mut(&ws)?;
                let ids: Vec<ExternalId> = std::iter::from_fn(|| set.pop_first()).take(BATCH).collect();
                q.working = ids.len();
                Some((ws, ids))
            });
            let Some((ws, ids)) = batch else {
                self.wake.notified().await;
                continue;
            };
            let through = keel_app::timeline::today(clock(), &journey.journey.governance.default_timezone);
            let kept = self.keep(store.as_ref(), &journey, ws, &ids, through).await;
            let emptied = self.with(|q| {
                q.working = 0;
                if let Ok(n) = kept {
                    *q.rederived.entry(ws).or_default() += n as u64;
                    q.through.insert(ws, through);
                }
                q.waiting.get(&ws).is_none_or(BTreeSet::is_empty)
            });
            if let Err(e) = kept {
                tracing::error!(error = %e, accounts = ids.len(), "re-deriving timelines failed; queued again");
                self.queue(ws, ids);
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                continue;
            }
            // A workspace whose every account is kept under this version no
            // longer needs the others' rows.
            if emptied && dropped.insert(ws) {
                match store.drop_other_timelines(ws, &self.version).await {
                    Ok(rows) if rows > 0 => tracing::info!(rows, "dropped the timeline of earlier journeys"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not drop the timeline of earlier journeys"),
                }
            }
        }
    }

    /// Queues every account without a timeline under the running journey.
    async fn first_pass(&self, store: &dyn Store) -> Result<(), keel_store::StoreError> {
        for (ws, _) in store.workspaces().await? {
            let ids = keel_app::load::account_ids(store, ws).await?;
            let mut missing = Vec::new();
            for chunk in ids.chunks(10_000) {
                let heads = store.timeline_heads(ws, &self.version, chunk).await?;
                missing.extend(chunk.iter().filter(|a| !heads.contains_key(*a)).cloned());
            }
            if !missing.is_empty() {
                tracing::info!(accounts = missing.len(), "deriving the timeline under the running journey");
            }
            self.queue(ws, missing);
        }
        Ok(())
    }

    async fn keep(
        &self,
        store: &dyn Store,
        journey: &JourneyConfig,
        ws: WorkspaceId,
        ids: &[ExternalId],
        through: Date,
    ) -> Result<usize, keel_app::timeline::TimelineError> {
        let names = store.event_names(ws).await?;
        let plan = Plan::new(journey.journey.clone(), &names);
        let under = keel_app::timeline::Under { plan: &plan, version: &self.version, through };
        let which = keel_app::timeline::Which::Some(ids);
        let kept = keel_app::timeline::keep(store, ws, under, which, false, |_| {}).await?;
        Ok(kept.accounts)
    }
}

/// Accounts re-derived per batch: the status moves, and a stall is noticed,
/// between batches.
const BATCH: usize = 100;
