//! Streaming evaluation: accounts touched by ingest are re-evaluated after a
//! short debounce, and a scheduled tick re-evaluates every account (for
//! time-based conditions: TTV slips, the renewal window, silence). Each
//! evaluation replaces the account's stored state and appends what changed —
//! stage, band, moments starting or ending — to its timeline.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keel_core::{ExternalId, Timestamp};
use keel_engine::{AccountState, Plan};
use keel_journey::Journey;
use keel_store::{StateSummary, Store, StoreError, StoredState, TimelineEntry, WorkspaceId};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::Clock;
use crate::metrics::Metrics;

/// The journey the server evaluates with, and its version (a hash of the file).
#[derive(Clone)]
pub struct JourneyConfig {
    /// The checked journey.
    pub journey: Journey,
    /// Its version, as lineage and stored states carry it.
    pub version: String,
    /// The file it was read from.
    pub file: String,
    /// The file's text.
    pub source: String,
}

/// Accounts waiting for evaluation, each once, with the earliest arrival of
/// the data that made it dirty (for the event → state latency; `None` for
/// the scheduled tick). A set, so a slow evaluator holds at most one entry
/// per account however much data arrives meanwhile.
#[derive(Default)]
struct Pending {
    dirty: Mutex<BTreeMap<(WorkspaceId, ExternalId), Option<Timestamp>>>,
    wake: Notify,
}

impl Pending {
    fn add(&self, ws: WorkspaceId, accounts: impl IntoIterator<Item = ExternalId>, at: Option<Timestamp>) {
        let mut dirty = self.dirty.lock().unwrap_or_else(PoisonError::into_inner);
        for account in accounts {
            let slot = dirty.entry((ws, account)).or_insert(at);
            *slot = match (*slot, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        drop(dirty);
        self.wake.notify_one();
    }

    /// Up to `n` waiting accounts, removed from the set.
    fn take(&self, n: usize) -> Vec<((WorkspaceId, ExternalId), Option<Timestamp>)> {
        let mut dirty = self.dirty.lock().unwrap_or_else(PoisonError::into_inner);
        std::iter::from_fn(|| dirty.pop_first()).take(n).collect()
    }
}

/// Handle to the evaluation task.
#[derive(Clone)]
pub struct Evaluator {
    pending: Arc<Pending>,
}

impl Evaluator {
    /// Starts the evaluation task and the scheduled tick.
    pub fn start(
        store: Arc<dyn Store>,
        journey: Arc<JourneyConfig>,
        clock: Clock,
        metrics: Arc<Metrics>,
        debounce: Duration,
        tick: Duration,
    ) -> Self {
        let evaluator = Self { pending: Arc::default() };
        tokio::spawn(run(store.clone(), journey, clock, metrics, debounce, evaluator.pending.clone()));
        let ticker = evaluator.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.tick().await; // the first tick fires at once: the state of every account on start
            loop {
                if let Err(e) = ticker.everything(store.as_ref()).await {
                    tracing::error!(error = %e, "scheduled evaluation could not list the accounts");
                }
                interval.tick().await;
            }
        });
        evaluator
    }

    /// Marks accounts for re-evaluation.
    pub fn touch(
        &self,
        ws: WorkspaceId,
        accounts: impl IntoIterator<Item = ExternalId>,
        received_at: Timestamp,
    ) {
        self.pending.add(ws, accounts, Some(received_at));
    }

    /// Marks every account of every workspace (the scheduled tick).
    async fn everything(&self, store: &dyn Store) -> Result<(), StoreError> {
        for (ws, _) in store.workspaces().await? {
            self.pending.add(ws, crate::load::account_ids(store, ws).await?, None);
        }
        Ok(())
    }
}

/// Why an evaluation round failed (it stored nothing).
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the evaluation task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Accounts evaluated per transaction.
const ROUND: usize = 500;

async fn run(
    store: Arc<dyn Store>,
    journey: Arc<JourneyConfig>,
    clock: Clock,
    metrics: Arc<Metrics>,
    debounce: Duration,
    pending: Arc<Pending>,
) {
    let mut plans: HashMap<WorkspaceId, (usize, Arc<Plan>)> = HashMap::new();
    loop {
        let dirty = pending.take(ROUND);
        if dirty.is_empty() {
            pending.wake.notified().await;
            // Let more data for the same accounts arrive first.
            tokio::time::sleep(debounce).await;
            continue;
        }
        let mut by_ws: BTreeMap<WorkspaceId, Vec<(ExternalId, Option<Timestamp>)>> = BTreeMap::new();
        for ((ws, account), at) in dirty {
            by_ws.entry(ws).or_default().push((account, at));
        }
        for (ws, accounts) in by_ws {
            let result = round(store.as_ref(), &journey, &clock, &mut plans, ws, &accounts).await;
            match result {
                Ok(done) => {
                    let now = clock();
                    for at in accounts.iter().filter_map(|(_, at)| *at) {
                        let secs = (now - at).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
                        metrics.eval_latency_seconds.observe(secs);
                    }
                    metrics.evaluations.inc_by(done as u64);
                }
                Err(e) => tracing::error!(error = %e, accounts = accounts.len(), "evaluation round failed"),
            }
        }
    }
}

/// Evaluates some accounts of one workspace as of today and stores their
/// states and timeline entries in one transaction.
async fn round(
    store: &dyn Store,
    journey: &JourneyConfig,
    clock: &Clock,
    plans: &mut HashMap<WorkspaceId, (usize, Arc<Plan>)>,
    ws: WorkspaceId,
    accounts: &[(ExternalId, Option<Timestamp>)],
) -> Result<usize, RoundError> {
    // The plan binds event names to ids; rebuilt when new names appeared.
    let names = store.event_names(ws).await?;
    let plan = match plans.get(&ws) {
        Some((n, plan)) if *n == names.len() => plan.clone(),
        _ => {
            let plan = Arc::new(Plan::new(journey.journey.clone(), &names));
            plans.insert(ws, (names.len(), plan.clone()));
            plan
        }
    };
    let now = clock();
    let as_of = now.date_naive();
    // One read for the round's records, then the engine on every core, off
    // the async workers.
    let ids: Vec<ExternalId> = accounts.iter().map(|(a, _)| a.clone()).collect();
    let snapshot = store.records(ws, keel_store::Accounts::List(&ids), keel_store::RecordKinds::ALL).await?;
    let mut histories = crate::load::group(snapshot);
    crate::load::fill_usage(store, ws, &mut histories, None, true).await?;
    let histories = Arc::new(histories);
    let evaluated = {
        let (plan, histories) = (plan.clone(), histories.clone());
        tokio::task::spawn_blocking(move || {
            crate::load::on_every_core(&histories, |h| keel_engine::evaluate(&plan, h, as_of))
        })
        .await?
    };
    let mut writes = Vec::new();
    for (history, state) in histories.iter().zip(evaluated) {
        let account = &history.account.id;
        let before = store.account_state(ws, account).await?;
        let before: Option<Value> = before.and_then(|b| serde_json::from_str(&b.state).ok());
        let after = serde_json::to_value(&state).unwrap_or(Value::Null);
        let timeline = changes(before.as_ref(), &after, &state, now);
        let stored = StoredState {
            evaluated_at: now,
            as_of,
            journey_version: journey.version.clone(),
            state: after.to_string(),
            summary: summary(&state),
        };
        writes.push((account.clone(), stored, timeline));
    }
    let mut tx = store.begin(ws).await?;
    for (account, stored, timeline) in &writes {
        tx.put_account_state(account, stored, timeline).await?;
    }
    tx.commit().await?;
    Ok(writes.len())
}

/// What the account list filters and sorts on.
pub fn summary(state: &AccountState) -> StateSummary {
    let metric = |name: &str| state.metrics.get(name).copied().flatten();
    StateSummary {
        segment: state.segment.clone(),
        band: state.health.band.map(|b| b.as_str().to_owned()),
        score: state.health.score,
        stages: state.lines.iter().map(|l| (l.product_line.clone(), l.stage.clone())).collect(),
        mrr: metric("mrr").map(keel_engine::Val::as_f64),
        renewal: metric("days_to_renewal").map(|d| state.as_of + chrono::Duration::days(d.as_f64() as i64)),
    }
}

/// What changed between two evaluations of an account.
fn changes(before: Option<&Value>, after: &Value, state: &AccountState, at: Timestamp) -> Vec<TimelineEntry> {
    let mut out = Vec::new();
    let entry =
        |kind: &str, detail: Value| TimelineEntry { at, kind: kind.to_owned(), detail: detail.to_string() };
    let stages = |v: Option<&Value>| -> BTreeMap<String, Value> {
        v.and_then(|v| v["lines"].as_array())
            .map(|lines| {
                lines
                    .iter()
                    .filter_map(|l| Some((l["product_line"].as_str()?.to_owned(), l["stage"].clone())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old, new) = (stages(before), stages(Some(after)));
    let lines: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for line in lines {
        let (from, to) =
            (old.get(line).cloned().unwrap_or(Value::Null), new.get(line).cloned().unwrap_or(Value::Null));
        if from != to {
            out.push(entry("stage_changed", json!({"product_line": line, "from": from, "to": to})));
        }
    }
    let band = |v: Option<&Value>| v.map_or(Value::Null, |v| v["health"]["band"].clone());
    let (from, to) = (band(before), band(Some(after)));
    if from != to {
        out.push(entry("band_changed", json!({"from": from, "to": to, "score": after["health"]["score"]})));
    }
    let firing = |v: Option<&Value>| -> BTreeSet<String> {
        v.and_then(|v| v["moments"].as_array())
            .map(|m| m.iter().filter_map(|f| f["id"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let (was, now) = (firing(before), firing(Some(after)));
    for m in &state.moments {
        if !was.contains(&m.id) {
            out.push(entry(
                "moment_started",
                json!({"moment": m.id, "severity": m.severity, "owner": m.owner, "reason": m.reason}),
            ));
        }
    }
    for id in was.difference(&now) {
        out.push(entry("moment_ended", json!({"moment": id})));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_accounts_are_kept_once_with_their_earliest_arrival() {
        let p = Pending::default();
        let t = |s: &str| keel_core::parse_timestamp(s).unwrap();
        let id = |s: &str| ExternalId::parse(s).unwrap();
        let ws = WorkspaceId(1);
        for _ in 0..1000 {
            p.add(ws, [id("acme"), id("initech")], Some(t("2026-01-01T10:00:05Z")));
        }
        p.add(ws, [id("acme")], Some(t("2026-01-01T10:00:01Z")));
        p.add(ws, [id("initech")], None);
        p.add(WorkspaceId(2), [id("acme")], None);
        let first = p.take(2);
        assert_eq!(
            first,
            [
                ((ws, id("acme")), Some(t("2026-01-01T10:00:01Z"))),
                ((ws, id("initech")), Some(t("2026-01-01T10:00:05Z"))),
            ]
        );
        assert_eq!(p.take(10), [((WorkspaceId(2), id("acme")), None)]);
        assert!(p.take(10).is_empty());
    }
}
