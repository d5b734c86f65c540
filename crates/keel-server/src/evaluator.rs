//! Streaming evaluation: accounts touched by ingest are re-evaluated after a
//! short debounce, and a scheduled tick re-evaluates every account (for
//! time-based conditions: TTV slips, the renewal window, silence). Each
//! evaluation replaces the account's stored state and appends what changed —
//! stage, band, moments starting or ending — to its timeline.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use keel_core::{ExternalId, Timestamp};
use keel_engine::{AccountState, Plan};
use keel_store::{StateSummary, Store, StoreError, StoredState, TimelineEntry, WorkspaceId};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use crate::Clock;
use crate::metrics::Metrics;
use crate::timeline::Keeper;

pub use keel_app::JourneyConfig;

/// Accounts waiting for evaluation, each once, with the earliest arrival of
/// the data that made it dirty (for the event → state latency; `None` for
/// the scheduled tick). A set, so a slow evaluator holds at most one entry
/// per account however much data arrives meanwhile; and a queue in the order
/// accounts became dirty, so each waits out the debounce from its *first*
/// change — under a steady stream an account is evaluated at most once per
/// debounce, and never later than one debounce plus one round after its data.
struct Pending {
    debounce: Duration,
    queue: Mutex<Dirty>,
    wake: Notify,
    /// The highest mark every account of which has been evaluated (or
    /// failed to be) and committed: what [`Evaluator::settled`] waits for.
    settled: watch::Sender<u64>,
}

type Key = (WorkspaceId, ExternalId);

#[derive(Default)]
struct Dirty {
    /// Per waiting account: the earliest arrival of its data, and the first
    /// mark (see `marked`) that made it wait.
    arrived: HashMap<Key, (Option<Timestamp>, u64)>,
    order: std::collections::VecDeque<(Instant, Key)>,
    /// Marks so far: each [`Pending::add`] is one, numbered under the lock.
    marked: u64,
    /// How many waiting accounts each first mark has (so the oldest mark
    /// still waiting is found without a scan).
    first_marks: std::collections::BTreeMap<u64, usize>,
}

impl Dirty {
    /// Every mark below the first one still waiting is done (the caller
    /// knows no round is in flight).
    fn done_up_to(&self) -> u64 {
        self.first_marks.keys().next().map_or(self.marked, |mark| mark - 1)
    }
}

/// What [`Pending::take`] found.
#[derive(Debug, PartialEq)]
enum Take {
    /// Accounts whose debounce has passed, oldest first.
    Ready(Vec<(Key, Option<Timestamp>)>),
    /// None yet; the first becomes ready then.
    WaitUntil(Instant),
    /// None at all.
    Idle,
}

impl Pending {
    fn new(debounce: Duration) -> Self {
        Self { debounce, queue: Mutex::default(), wake: Notify::new(), settled: watch::Sender::new(0) }
    }

    fn add(&self, ws: WorkspaceId, accounts: impl IntoIterator<Item = ExternalId>, at: Option<Timestamp>) {
        let now = Instant::now();
        let mut dirty = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        dirty.marked += 1;
        let Dirty { arrived, order, marked, first_marks } = &mut *dirty;
        for account in accounts {
            match arrived.entry((ws, account)) {
                std::collections::hash_map::Entry::Occupied(mut slot) => {
                    let (first, mark) = *slot.get();
                    let merged = match (first, at) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    // Still waiting for its first mark: that one stays the oldest.
                    slot.insert((merged, mark));
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    order.push_back((now, slot.key().clone()));
                    slot.insert((at, *marked));
                    *first_marks.entry(*marked).or_default() += 1;
                }
            }
        }
        drop(dirty);
        self.wake.notify_one();
    }

    /// Tells [`Evaluator::settled`] how far the marks are done; called only
    /// while no round is in flight.
    fn publish_settled(&self) {
        let done = self.queue.lock().unwrap_or_else(PoisonError::into_inner).done_up_to();
        self.settled.send_if_modified(|settled| {
            let advanced = done > *settled;
            *settled = (*settled).max(done);
            advanced
        });
    }

    /// Up to `n` accounts whose debounce has passed, removed from the set.
    fn take(&self, n: usize) -> Take {
        let now = Instant::now();
        let mut dirty = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let Dirty { arrived, order, first_marks, .. } = &mut *dirty;
        let mut ready = Vec::new();
        while ready.len() < n {
            match order.front() {
                Some((since, _)) if *since + self.debounce <= now => {
                    let (_, key) = order.pop_front().expect("a front");
                    let Some((at, mark)) = arrived.remove(&key) else { continue };
                    if let std::collections::btree_map::Entry::Occupied(mut n) = first_marks.entry(mark) {
                        *n.get_mut() -= 1;
                        if *n.get() == 0 {
                            n.remove();
                        }
                    }
                    ready.push((key, at));
                }
                Some((since, _)) if ready.is_empty() => return Take::WaitUntil(*since + self.debounce),
                None if ready.is_empty() => return Take::Idle,
                _ => break,
            }
        }
        Take::Ready(ready)
    }
}

/// Handle to the evaluation task.
#[derive(Clone)]
pub struct Evaluator {
    pending: Arc<Pending>,
}

/// When the evaluator runs.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a touched account waits for more data.
    pub debounce: Duration,
    /// How often every account is re-evaluated.
    pub tick: Duration,
}

impl Evaluator {
    /// Starts the evaluation task and the scheduled tick.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        journey: Arc<JourneyConfig>,
        clock: Clock,
        metrics: Arc<Metrics>,
        timing: Timing,
        keeper: Keeper,
    ) -> Self {
        let evaluator = Self { pending: Arc::new(Pending::new(timing.debounce)) };
        let timezone = journey.journey.governance.default_timezone.clone();
        let task = Task { store: store.clone(), journey, clock: clock.clone(), metrics, keeper };
        // A thread of its own, as the ingest writer has: its reads would
        // otherwise queue behind request tasks, and states fall behind.
        crate::on_own_thread("keel-evaluator", run(task, evaluator.pending.clone()));
        // The day rolls at midnight in the journey's timezone: every account
        // then gets its new day (and time-based conditions move on).
        let roller = evaluator.clone();
        let roll_store = store.clone();
        tokio::spawn(async move {
            loop {
                let now = clock();
                let next = keel_app::timeline::next_midnight(now, &timezone);
                let wait = (next - now).to_std().unwrap_or_default() + Duration::from_millis(10);
                tokio::time::sleep(wait).await;
                if let Err(e) = roller.everything(roll_store.as_ref()).await {
                    tracing::error!(error = %e, "the day roll could not list the accounts");
                }
            }
        });
        let ticker = evaluator.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(timing.tick);
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

    /// Returns once every account marked before the call — by data that
    /// arrived, or by [`Evaluator::everything`] — has been evaluated and its
    /// state committed (or its round failed and was logged). Tests await it
    /// instead of polling; it waits out the debounce like the data does.
    pub async fn settled(&self) {
        let target = self.pending.queue.lock().unwrap_or_else(PoisonError::into_inner).marked;
        let mut done = self.pending.settled.subscribe();
        // The sender lives as long as the pending set, which this handle holds.
        let _ = done.wait_for(|settled| *settled >= target).await;
    }

    /// Marks every account of every workspace (the scheduled tick; also
    /// what a caller that wrote behind the server's back asks for).
    pub async fn everything(&self, store: &dyn Store) -> Result<(), StoreError> {
        for (ws, _) in store.workspaces().await? {
            self.pending.add(ws, keel_app::load::account_ids(store, ws).await?, None);
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

/// What the evaluation task works with.
struct Task {
    store: Arc<dyn Store>,
    journey: Arc<JourneyConfig>,
    clock: Clock,
    metrics: Arc<Metrics>,
    keeper: Keeper,
}

/// What the timeline compares between two evaluations of an account.
#[derive(Debug, Clone, PartialEq, Default)]
struct Digest {
    /// Stage per product line (null: the line ended).
    stages: BTreeMap<String, Value>,
    band: Value,
    /// Firing moments.
    moments: BTreeSet<String>,
}

impl Digest {
    fn of_state(state: &AccountState) -> Self {
        Digest {
            stages: state
                .lines
                .iter()
                .map(|l| (l.product_line.clone(), l.stage.clone().map_or(Value::Null, Value::String)))
                .collect(),
            band: state.health.band.map_or(Value::Null, |b| Value::String(b.as_str().to_owned())),
            moments: state.moments.iter().map(|m| m.id.clone()).collect(),
        }
    }

    /// From a stored state's JSON.
    fn of_json(v: &Value) -> Self {
        Digest {
            stages: v["lines"]
                .as_array()
                .map(|lines| {
                    lines
                        .iter()
                        .filter_map(|l| Some((l["product_line"].as_str()?.to_owned(), l["stage"].clone())))
                        .collect()
                })
                .unwrap_or_default(),
            band: v["health"]["band"].clone(),
            moments: v["moments"]
                .as_array()
                .map(|m| m.iter().filter_map(|f| f["id"].as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
        }
    }
}

/// The digest of each account's stored state, kept in memory: this task is
/// the only writer of stored states, so after the first read of an account
/// it never needs to read (and parse) its stored state again.
type Digests = HashMap<(WorkspaceId, ExternalId), Digest>;

async fn run(task: Task, pending: Arc<Pending>) {
    let mut plans: HashMap<WorkspaceId, (usize, Arc<Plan>)> = HashMap::new();
    let mut digests = Digests::new();
    loop {
        // No round is in flight here: every mark older than what still waits is done.
        pending.publish_settled();
        let dirty = match pending.take(ROUND) {
            Take::Ready(dirty) => dirty,
            // Accounts dirtied later become ready later: nothing to wake for.
            Take::WaitUntil(when) => {
                tokio::time::sleep_until(when.into()).await;
                continue;
            }
            Take::Idle => {
                pending.wake.notified().await;
                continue;
            }
        };
        let mut by_ws: BTreeMap<WorkspaceId, Vec<(ExternalId, Option<Timestamp>)>> = BTreeMap::new();
        for ((ws, account), at) in dirty {
            by_ws.entry(ws).or_default().push((account, at));
        }
        for (ws, accounts) in by_ws {
            let result = round(&task, &mut plans, &mut digests, ws, &accounts).await;
            match result {
                Ok(done) => {
                    let now = (task.clock)();
                    for at in accounts.iter().filter_map(|(_, at)| *at) {
                        let secs = (now - at).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
                        task.metrics.eval_latency_seconds.observe(secs);
                    }
                    task.metrics.evaluations.inc_by(done as u64);
                }
                Err(e) => {
                    // What is in memory may now differ from what is stored: read it again.
                    digests.retain(|(w, _), _| *w != ws);
                    tracing::error!(error = %e, accounts = accounts.len(), "evaluation round failed");
                }
            }
        }
    }
}

/// Evaluates some accounts of one workspace as of today and stores their
/// states and timeline entries in one transaction.
async fn round(
    task: &Task,
    plans: &mut HashMap<WorkspaceId, (usize, Arc<Plan>)>,
    digests: &mut Digests,
    ws: WorkspaceId,
    accounts: &[(ExternalId, Option<Timestamp>)],
) -> Result<usize, RoundError> {
    let store = task.store.as_ref();
    // The plan binds event names to ids; rebuilt when new names appeared.
    let names = store.event_names(ws).await?;
    let plan = match plans.get(&ws) {
        Some((n, plan)) if *n == names.len() => plan.clone(),
        _ => {
            let plan = Arc::new(Plan::new(task.journey.journey.clone(), &names));
            plans.insert(ws, (names.len(), plan.clone()));
            plan
        }
    };
    let now = (task.clock)();
    let as_of = keel_app::timeline::today(now, &task.journey.journey.governance.default_timezone);
    // One read for the round's records, then the engine on every core, off
    // the async workers.
    let ids: Vec<ExternalId> = accounts.iter().map(|(a, _)| a.clone()).collect();
    let started = std::time::Instant::now();
    let snapshot = store.records(ws, keel_store::Accounts::List(&ids), keel_store::RecordKinds::ALL).await?;
    let mut histories = keel_app::load::group(snapshot);
    keel_app::load::fill_usage(store, ws, &mut histories, None, true).await?;
    let heads = Arc::new(store.timeline_heads(ws, &task.journey.version, &ids).await?);
    let read = started.elapsed();
    let histories = Arc::new(histories);
    let evaluated = {
        let (plan, histories, heads) = (plan.clone(), histories.clone(), heads.clone());
        tokio::task::spawn_blocking(move || {
            keel_app::load::spread(&histories, |h| {
                let state = keel_engine::evaluate(&plan, h, as_of);
                let json = serde_json::to_string(&state);
                let need = keel_app::timeline::need(heads.get(&h.account.id), h, as_of);
                (state, json, need)
            })
        })
        .await?
    };
    let evaluated_in = started.elapsed() - read;
    keep_timelines(task, &plan, ws, as_of, &histories, &evaluated).await;
    let mut writes = Vec::new();
    let mut digested = Vec::new();
    let mut for_plays = Vec::new();
    for (history, (state, json, _)) in histories.iter().zip(evaluated) {
        let account = &history.account.id;
        // A state that does not encode is not stored (an empty one would
        // read back as corrupt): the account keeps its previous state.
        let json = match json {
            Ok(json) => json,
            Err(e) => {
                tracing::error!(account = %account, error = %e, "the state does not encode; not stored");
                continue;
            }
        };
        let key = (ws, account.clone());
        if !digests.contains_key(&key) {
            let stored = store.account_state(ws, account).await?;
            let before = stored.and_then(|b| serde_json::from_str::<Value>(&b.state).ok());
            digests.insert(key.clone(), before.as_ref().map(Digest::of_json).unwrap_or_default());
        }
        let after = Digest::of_state(&state);
        let timeline = changes(digests.get(&key), &after, &state, now);
        let stored = StoredState {
            evaluated_at: now,
            as_of,
            journey_version: task.journey.version.clone(),
            state: json,
            summary: summary(&state),
        };
        writes.push((account.clone(), stored, timeline));
        digested.push((key, after));
        for_plays.push((history, state));
    }
    let waited = {
        let asked = std::time::Instant::now();
        let waited = asked.elapsed();
        let mut tx = store.begin(ws).await?;
        tx.put_account_states(&writes).await?;
        // Plays run in the same transaction: a state and the runs it started
        // are committed together, or neither is.
        let played =
            keel_app::runner::run_accounts(tx.as_mut(), &task.journey.journey, for_plays, now).await?;
        tx.commit().await?;
        if played.started > 0 {
            tracing::info!(
                runs = played.started,
                tasks = played.tasks,
                deliveries = played.deliveries,
                "plays started"
            );
        }
        waited
    };
    digests.extend(digested);
    tracing::debug!(
        accounts = writes.len(),
        ?read,
        evaluated = ?evaluated_in,
        waited_for_writer = ?waited,
        total = ?started.elapsed(),
        "evaluation round"
    );
    Ok(writes.len())
}

/// Days a timeline may lag behind today and still be caught up in a round
/// (a server down over a weekend); further back, the keeper catches it up.
const CATCH_UP_DAYS: i64 = 7;

/// Appends the round's day to the timelines of its accounts (restating
/// the day, or catching up a few days, where their heads say so); what
/// needs more goes to the keeper. Never fails the round: a timeline not
/// written is queued for the keeper.
async fn keep_timelines(
    task: &Task,
    plan: &Plan,
    ws: WorkspaceId,
    as_of: keel_core::Date,
    histories: &[keel_engine::AccountHistory],
    evaluated: &[(AccountState, serde_json::Result<String>, keel_app::timeline::Need)],
) {
    use keel_app::timeline::{self as timeline, Need};
    let store = task.store.as_ref();
    let version = &task.journey.version;
    let mut writes = Vec::new();
    let mut later = Vec::new();
    // Restated from the start: their rows no longer hold; readers evaluate
    // them until the keeper has written them again.
    let restated: Vec<_> = histories
        .iter()
        .zip(evaluated)
        .filter(|(_, (_, _, need))| *need == Need::Whole)
        .map(|(h, _)| h.account.id.clone())
        .collect();
    if !restated.is_empty()
        && let Err(e) = store.withdraw_timelines(ws, version, &restated).await
    {
        tracing::warn!(error = %e, accounts = restated.len(), "restated timelines could not be withdrawn");
    }
    for (h, (state, _, need)) in histories.iter().zip(evaluated) {
        let id = &h.account.id;
        let before = match need {
            Need::Nothing => continue,
            Need::From(day) if (as_of - *day).num_days() <= CATCH_UP_DAYS => {
                match timeline::rows_before(store, ws, id, version, *day).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        tracing::warn!(account = %id, error = %e, "the timeline could not be read; re-deriving it");
                        later.push(id.clone());
                        continue;
                    }
                }
            }
            Need::From(_) | Need::Whole => {
                later.push(id.clone());
                continue;
            }
        };
        let Some((from, rows)) = timeline::kept(plan, h, *need, &before, as_of, Some(state)) else {
            continue;
        };
        match timeline::write(h, from, &rows, as_of) {
            Ok(w) => writes.push(w),
            Err(e) => {
                tracing::error!(account = %id, error = %e, "a timeline row does not encode; not stored");
            }
        }
    }
    if !writes.is_empty()
        && let Err(e) = store.put_timelines(ws, version, &writes).await
    {
        tracing::warn!(error = %e, accounts = writes.len(), "the timeline could not be written; re-deriving it");
        later.extend(writes.into_iter().map(|w| w.account));
    }
    task.keeper.queue(ws, later);
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
fn changes(
    before: Option<&Digest>,
    after: &Digest,
    state: &AccountState,
    at: Timestamp,
) -> Vec<TimelineEntry> {
    let mut out = Vec::new();
    let entry =
        |kind: &str, detail: Value| TimelineEntry { at, kind: kind.to_owned(), detail: detail.to_string() };
    let empty = Digest::default();
    let before = before.unwrap_or(&empty);
    let lines: BTreeSet<&String> = before.stages.keys().chain(after.stages.keys()).collect();
    for line in lines {
        let from = before.stages.get(line).cloned().unwrap_or(Value::Null);
        let to = after.stages.get(line).cloned().unwrap_or(Value::Null);
        if from != to {
            out.push(entry("stage_changed", json!({"product_line": line, "from": from, "to": to})));
        }
    }
    if before.band != after.band {
        out.push(entry(
            "band_changed",
            json!({"from": before.band, "to": after.band, "score": state.health.score}),
        ));
    }
    for m in &state.moments {
        if !before.moments.contains(&m.id) {
            out.push(entry(
                "moment_started",
                json!({"moment": m.id, "severity": m.severity, "owner": m.owner, "reason": m.reason}),
            ));
        }
    }
    for id in before.moments.difference(&after.moments) {
        out.push(entry("moment_ended", json!({"moment": id})));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the evaluator keeps in memory equals what it would read back from
    /// the stored JSON after a restart, so a restart adds no false changes.
    #[test]
    fn the_digest_of_a_state_equals_the_digest_of_its_stored_json() {
        let journey = keel_journey::check("journey.toml", keel_journey::DEFAULT_JOURNEY).unwrap();
        let plan = Plan::new(journey, &[]);
        let id = |s: &str| ExternalId::parse(s).unwrap();
        let mut history = keel_engine::AccountHistory::new(keel_core::Account {
            id: id("acme"),
            name: "Acme".into(),
            attributes: Default::default(),
            owner: None,
            parent: None,
            created: "2025-01-01".parse().unwrap(),
        });
        for (line, (start, end)) in
            [("platform", ("2025-01-01", None)), ("analytics", ("2025-02-01", Some("2025-08-01")))]
        {
            history.contracts.push(keel_core::Contract {
                id: id(&format!("c-{line}")),
                account: id("acme"),
                product: keel_core::Label::parse(line).unwrap(),
                start: start.parse().unwrap(),
                end: end.map(|e: &str| e.parse().unwrap()),
                mrr: keel_core::Money::parse("100", "EUR").unwrap(),
                seats: 10,
                billing_period: keel_core::BillingPeriod::Monthly,
            });
        }
        let state = keel_engine::evaluate(&plan, &history, "2025-10-01".parse().unwrap());
        let digest = Digest::of_state(&state);
        assert_eq!(digest.stages.len(), 2, "{digest:?}");
        assert!(digest.stages.values().any(Value::is_null), "the ended line: {digest:?}");
        assert!(!digest.moments.is_empty() || digest.band != Value::Null, "{digest:?}");
        let json: Value = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        assert_eq!(Digest::of_json(&json), digest);
        assert!(changes(Some(&digest), &digest, &state, Timestamp::default()).is_empty());
        let first = changes(None, &digest, &state, Timestamp::default());
        assert!(first.iter().any(|e| e.kind == "stage_changed"), "{first:?}");
    }

    #[test]
    fn pending_accounts_are_kept_once_with_their_earliest_arrival() {
        let p = Pending::new(Duration::ZERO);
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
            Take::Ready(vec![
                ((ws, id("acme")), Some(t("2026-01-01T10:00:01Z"))),
                ((ws, id("initech")), Some(t("2026-01-01T10:00:05Z"))),
            ])
        );
        assert_eq!(p.take(10), Take::Ready(vec![((WorkspaceId(2), id("acme")), None)]));
        assert_eq!(p.take(10), Take::Idle);
    }

    /// `settled` moves past a mark only once every account it marked has
    /// been taken (and, since the loop publishes between rounds, evaluated),
    /// however often later marks touch the same accounts.
    #[test]
    fn settled_advances_past_a_mark_only_when_all_its_accounts_are_done() {
        let p = Pending::new(Duration::ZERO);
        let id = |s: &str| ExternalId::parse(s).unwrap();
        let ws = WorkspaceId(1);
        p.add(ws, [id("acme")], None);
        p.add(ws, [id("initech")], None);
        p.add(ws, [id("acme")], None);
        p.publish_settled();
        assert_eq!(*p.settled.borrow(), 0, "nothing taken yet");
        assert!(matches!(p.take(1), Take::Ready(r) if r.len() == 1));
        p.publish_settled();
        assert_eq!(*p.settled.borrow(), 1, "mark 2 still waits for initech");
        assert!(matches!(p.take(10), Take::Ready(r) if r.len() == 1));
        p.publish_settled();
        assert_eq!(*p.settled.borrow(), 3, "all done");
    }

    /// Each account waits out the debounce from its first change, however
    /// often it changes meanwhile; one dirtied later waits from then.
    #[test]
    fn an_account_is_ready_one_debounce_after_its_first_change() {
        let p = Pending::new(Duration::from_millis(200));
        let id = |s: &str| ExternalId::parse(s).unwrap();
        let ws = WorkspaceId(1);
        let start = Instant::now();
        p.add(ws, [id("acme")], None);
        let Take::WaitUntil(first) = p.take(10) else { panic!("nothing is ready before the debounce") };
        assert!(
            first >= start + Duration::from_millis(200)
                && first <= Instant::now() + Duration::from_millis(200)
        );
        std::thread::sleep(Duration::from_millis(20));
        p.add(ws, [id("acme"), id("initech")], None);
        assert_eq!(p.take(10), Take::WaitUntil(first), "a second change does not push the first back");
        std::thread::sleep(first.saturating_duration_since(Instant::now()));
        assert_eq!(p.take(10), Take::Ready(vec![((ws, id("acme")), None)]), "initech is not ready yet");
        let Take::WaitUntil(second) = p.take(10) else { panic!("initech is waiting") };
        assert!(second >= first + Duration::from_millis(20), "{:?}", second - first);
    }
}
