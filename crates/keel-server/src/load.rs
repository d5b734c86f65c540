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
    let snapshot = store.records(ws, Accounts::Between(first, last), kinds).await?;
    let mut histories = group(snapshot);
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
