//! Reading account histories — records and usage rollups — from a store,
//! in the shape the engine takes (shared by `keel serve` and the CLI).

use std::collections::BTreeMap;

use keel_core::{Date, ExternalId};
use keel_engine::AccountHistory;
use keel_store::{Accounts, RecordKinds, Snapshot, Store, StoreError, WorkspaceId};

/// Groups a snapshot's records by account, in account order.
pub fn group(snapshot: Snapshot) -> Vec<AccountHistory> {
    let mut by: BTreeMap<ExternalId, AccountHistory> = BTreeMap::new();
    for account in snapshot.accounts {
        by.insert(account.id.clone(), AccountHistory::new(account));
    }
    macro_rules! put {
        ($field:ident) => {
            for r in snapshot.$field {
                if let Some(h) = by.get_mut(&r.account) {
                    h.$field.push(r);
                }
            }
        };
    }
    put!(contracts);
    put!(contacts);
    put!(tickets);
    put!(surveys);
    put!(touchpoints);
    put!(opportunities);
    by.into_values().collect()
}

/// Reads the usage of some accounts (days on or after `since` only, when
/// given) and, when `users`, their user ids.
pub async fn fill_usage(
    store: &dyn Store,
    ws: WorkspaceId,
    histories: &mut [AccountHistory],
    since: Option<Date>,
    users: bool,
) -> Result<(), StoreError> {
    let ids: Vec<ExternalId> = histories.iter().map(|h| h.account.id.clone()).collect();
    let mut usage: BTreeMap<ExternalId, _> = store.usage_days(ws, &ids, since).await?.into_iter().collect();
    let mut user_ids: BTreeMap<ExternalId, _> =
        if users { store.account_users(ws, &ids).await?.into_iter().collect() } else { BTreeMap::new() };
    for h in histories {
        h.usage = usage.remove(&h.account.id).unwrap_or_default();
        h.users = user_ids.remove(&h.account.id).unwrap_or_default();
    }
    Ok(())
}

/// The external ids of the workspace's accounts, sorted.
pub async fn account_ids(store: &dyn Store, ws: WorkspaceId) -> Result<Vec<ExternalId>, StoreError> {
    let accounts = store.records(ws, Accounts::All, RecordKinds::default()).await?.accounts;
    Ok(accounts.into_iter().map(|a| a.id).collect())
}

/// What to read of each account besides its records.
#[derive(Debug, Clone, Copy)]
pub enum Usage {
    /// No usage.
    None,
    /// Usage days on or after this date (all when `None`), and whether to
    /// read the user ids too.
    Since(Option<Date>, bool),
}

/// The histories of a chunk of sorted account ids: the records of `kinds`,
/// and usage as asked.
pub async fn load_chunk(
    store: &dyn Store,
    ws: WorkspaceId,
    ids: &[ExternalId],
    kinds: RecordKinds,
    usage: Usage,
) -> Result<Vec<AccountHistory>, StoreError> {
    let (Some(first), Some(last)) = (ids.first(), ids.last()) else { return Ok(Vec::new()) };
    load(store, ws, Accounts::Between(first, last), kinds, usage).await
}

/// As [`load_chunk`], for exactly the accounts listed (not every account
/// whose id sorts between them): for a sparse selection.
pub async fn load_list(
    store: &dyn Store,
    ws: WorkspaceId,
    ids: &[ExternalId],
    kinds: RecordKinds,
    usage: Usage,
) -> Result<Vec<AccountHistory>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    load(store, ws, Accounts::List(ids), kinds, usage).await
}

async fn load(
    store: &dyn Store,
    ws: WorkspaceId,
    which: Accounts<'_>,
    kinds: RecordKinds,
    usage: Usage,
) -> Result<Vec<AccountHistory>, StoreError> {
    let mut histories = group(store.records(ws, which, kinds).await?);
    if let Usage::Since(since, users) = usage {
        fill_usage(store, ws, &mut histories, since, users).await?;
    }
    Ok(histories)
}

/// One account's whole history (None: no such account).
pub async fn history(
    store: &dyn Store,
    ws: WorkspaceId,
    account: &ExternalId,
) -> Result<Option<AccountHistory>, StoreError> {
    let mut histories = group(store.records(ws, Accounts::One(account), RecordKinds::ALL).await?);
    fill_usage(store, ws, &mut histories, None, true).await?;
    Ok(histories.pop())
}

/// Accounts read and evaluated at a time: bounds memory on large workspaces.
pub const CHUNK: usize = 500;

/// One CPU-heavy computation at a time: each already spreads over every
/// core, so a second one would only make both slower, and a burst of report
/// requests queues here instead of multiplying threads.
static HEAVY: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// `f` over every history, split across the machine's cores, off the async
/// workers: it waits for its turn (`HEAVY`), then runs where blocking is
/// allowed (`block_in_place` on a multi-threaded runtime), so the server's
/// other requests keep being served while a report computes.
pub async fn on_every_core<T: Send>(
    histories: &[AccountHistory],
    f: impl Fn(&AccountHistory) -> T + Sync,
) -> Vec<T> {
    let _turn = HEAVY.acquire().await.unwrap_or_else(|_| unreachable!("HEAVY is never closed"));
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_threaded { tokio::task::block_in_place(|| spread(histories, f)) } else { spread(histories, f) }
}

/// [`on_every_core`] for synchronous callers inside async code (a chunk
/// callback): the same turn and the same move off the async workers.
pub fn on_every_core_in_turn<T: Send>(
    histories: &[AccountHistory],
    f: impl Fn(&AccountHistory) -> T + Sync,
) -> Vec<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| {
                let _turn = h.block_on(HEAVY.acquire());
                spread(histories, f)
            })
        }
        _ => spread(histories, f),
    }
}

/// `f` over every history, split across the machine's cores, on the calling
/// thread (for callers already off the async workers). The threads it starts
/// run at the lowest CPU priority ([`yield_the_cpu`]): they use every core
/// nobody else needs, and give way to ingest and health checks at once.
pub fn spread<T: Send>(histories: &[AccountHistory], f: impl Fn(&AccountHistory) -> T + Sync) -> Vec<T> {
    spread_items(histories, f)
}

/// [`spread`] over any items.
pub fn spread_items<I: Sync, T: Send>(items: &[I], f: impl Fn(&I) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(items.len().max(1));
    let per = items.len().div_ceil(threads).max(1);
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|part| {
                s.spawn(move || {
                    yield_the_cpu();
                    part.iter().map(f).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

/// Puts the calling thread at the lowest CPU priority: on Linux the batch
/// policy at niceness 19, so the scheduler gives it only the CPU time that
/// threads at normal priority leave. Heavy work calls it on threads it
/// started itself and that end with the work (never on a pooled thread).
/// Where the platform refuses, the thread keeps its priority and the
/// refusal is logged once per thread at debug level.
pub fn yield_the_cpu() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    let policy = if cfg!(target_os = "linux") {
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch)
    } else {
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other)
    };
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, policy) {
        tracing::debug!(error = ?e, "heavy work keeps its CPU priority");
    }
}

/// The metrics a metric table shows when none are asked for: usage, seats, revenue.
pub const DEFAULT_METRICS: &[&str] = &[
    "active_users_7d",
    "active_users_28d",
    "active_seat_ratio",
    "core_features_weekly",
    "feature_breadth",
    "usage_change_pct",
    "mrr",
    "days_to_renewal",
];

/// Why a metric table could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum MetricTableError {
    /// A metric is unknown or needs a product line.
    #[error("metric {name:?}: {source}")]
    Metric {
        /// The metric as asked.
        name: String,
        /// Why.
        source: keel_engine::NeedsError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Loads every account of the workspace, chunk by chunk in account order,
/// with only the records and the usage window `needs` says, counting back
/// from `as_of`.
pub(crate) async fn each_chunk(
    store: &dyn Store,
    ws: WorkspaceId,
    needs: keel_engine::Needs,
    as_of: Date,
    mut each: impl FnMut(Vec<AccountHistory>),
) -> Result<(), StoreError> {
    let kinds = RecordKinds {
        contracts: needs.contracts,
        contacts: needs.contacts,
        tickets: needs.tickets,
        surveys: needs.surveys,
        touchpoints: needs.touchpoints,
        opportunities: false,
    };
    let usage = match needs.usage {
        keel_engine::History::None => Usage::None,
        keel_engine::History::Days(n) => {
            Usage::Since(Some(as_of - chrono::Days::new(u64::from(n.saturating_sub(1)))), false)
        }
        keel_engine::History::All => Usage::Since(None, false),
    };
    let ids = account_ids(store, ws).await?;
    for chunk in ids.chunks(CHUNK) {
        each(load_chunk(store, ws, chunk, kinds, usage).await?);
    }
    Ok(())
}

/// Every account's segment as of a date (accounts no rule takes are left
/// out), reading only what the segment rules need.
pub async fn segments(
    store: &dyn Store,
    ws: WorkspaceId,
    plan: &keel_engine::Plan,
    as_of: Date,
) -> Result<std::collections::BTreeMap<ExternalId, String>, MetricTableError> {
    let needs = plan
        .segment_needs()
        .map_err(|source| MetricTableError::Metric { name: "segments.when".to_owned(), source })?;
    let mut out = std::collections::BTreeMap::new();
    each_chunk(store, ws, needs, as_of, |histories| {
        let found = on_every_core_in_turn(&histories, |h| keel_engine::segment(plan, h, as_of));
        for (h, segment) in histories.iter().zip(found) {
            if let Some(segment) = segment {
                out.insert(h.account.id.clone(), segment);
            }
        }
    })
    .await?;
    Ok(out)
}

/// Some metrics of every account as of a date, reading only the records and
/// the usage window they need; `each` gets the rows chunk by chunk, in
/// account order.
pub async fn metric_table(
    store: &dyn Store,
    ws: WorkspaceId,
    plan: &keel_engine::Plan,
    as_of: Date,
    names: &[String],
    mut each: impl FnMut(&[AccountHistory], Vec<Vec<Option<keel_engine::Val>>>),
) -> Result<(), MetricTableError> {
    let mut needs = keel_engine::Needs::default();
    for name in names {
        let more =
            plan.needs(name).map_err(|source| MetricTableError::Metric { name: name.clone(), source })?;
        needs = needs.union(more);
    }
    each_chunk(store, ws, needs, as_of, |histories| {
        let rows = on_every_core_in_turn(&histories, |h| keel_engine::metric_values(plan, h, as_of, names));
        each(&histories, rows);
    })
    .await?;
    Ok(())
}

/// The niceness of the calling thread, read from `/proc` (Linux; `None`
/// where it cannot be read): what [`yield_the_cpu`] changed.
#[cfg(target_os = "linux")]
pub fn niceness() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The fields after the command name (which may hold spaces) start at ") ".
    let (_, rest) = stat.rsplit_once(") ")?;
    rest.split(' ').nth(16)?.parse().ok()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use keel_core::{Account, parse_date};

    fn account(id: &str) -> AccountHistory {
        AccountHistory::new(Account {
            id: ExternalId::parse(id).expect("a valid id"),
            name: id.into(),
            attributes: Default::default(),
            owner: None,
            parent: None,
            created: parse_date("2025-01-01").expect("a date"),
        })
    }

    #[test]
    fn heavy_work_runs_at_the_lowest_priority_and_leaves_the_caller_alone() {
        let before = niceness();
        let histories: Vec<_> = (0..8).map(|i| account(&format!("a{i}"))).collect();
        let seen = spread(&histories, |h| (h.account.id.to_string(), niceness()));
        assert_eq!(seen.len(), 8);
        assert_eq!(seen[3].0, "a3", "results keep the histories' order");
        assert!(seen.iter().all(|(_, n)| *n == Some(19)), "{seen:?}");
        assert_eq!(niceness(), before, "the calling thread keeps its priority");
    }
}
