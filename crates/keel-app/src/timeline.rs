//! The account timeline in the store: rebuilt from history, read as of a day.

use keel_core::{Date, ExternalId};
use keel_engine::{AccountHistory, Plan};
use keel_store::{RecordKinds, Store, StoreError, TimelineRow, WorkspaceId};
use keel_timeline::{Facts, Row};

use crate::load::{CHUNK, Usage, account_ids, load_chunk, on_every_core};

/// Why the timeline could not be kept or read.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored row does not decode (or a row does not encode).
    #[error("timeline row of {account} on {day}: {source}")]
    Row {
        /// The account.
        account: String,
        /// The row's day.
        day: Date,
        /// Why.
        source: serde_json::Error,
    },
}

fn to_store(account: &ExternalId, row: &Row) -> Result<TimelineRow, TimelineError> {
    let facts = serde_json::to_string(&row.facts).map_err(|source| TimelineError::Row {
        account: account.to_string(),
        day: row.day,
        source,
    })?;
    Ok(TimelineRow { day: row.day, checkpoint: row.checkpoint, facts })
}

fn from_store(account: &ExternalId, row: &TimelineRow) -> Result<Row, TimelineError> {
    let facts = serde_json::from_str(&row.facts).map_err(|source| TimelineError::Row {
        account: account.to_string(),
        day: row.day,
        source,
    })?;
    Ok(Row { day: row.day, checkpoint: row.checkpoint, facts })
}

/// The first day an account has anything to conclude about: its first
/// contract's start or its first day of usage, whichever is earlier.
pub fn first_day(h: &AccountHistory) -> Option<Date> {
    let contract = h.contracts.iter().map(|c| c.start).min();
    let usage = h.usage.iter().map(|u| u.day).min();
    contract.into_iter().chain(usage).min()
}

/// What a rebuild did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// Accounts whose timeline was written.
    pub accounts: usize,
    /// Days concluded (one evaluation each).
    pub days: u64,
    /// Rows stored.
    pub rows: u64,
}

/// Rebuilds every account's timeline under `version` from its first day to
/// `through`, replacing what was stored under that version; `progress` is
/// told how many accounts each chunk held.
pub async fn rebuild(
    store: &dyn Store,
    ws: WorkspaceId,
    plan: &Plan,
    version: &str,
    through: Date,
    mut progress: impl FnMut(usize),
) -> Result<Rebuilt, TimelineError> {
    let mut done = Rebuilt::default();
    for chunk in account_ids(store, ws).await?.chunks(CHUNK) {
        let histories = load_chunk(store, ws, chunk, RecordKinds::ALL, Usage::Since(None, true)).await?;
        let walked = on_every_core(&histories, |h| match first_day(h) {
            Some(from) if from <= through => {
                let days = (through - from).num_days() + 1;
                (keel_timeline::walk(plan, h, from, through), days as u64)
            }
            _ => (Vec::new(), 0),
        })
        .await;
        for (h, (rows, days)) in histories.iter().zip(walked) {
            let id = &h.account.id;
            let stored = rows.iter().map(|r| to_store(id, r)).collect::<Result<Vec<_>, _>>()?;
            store.put_timeline(ws, id, version, None, &stored).await?;
            done.accounts += usize::from(!stored.is_empty());
            done.days += days;
            done.rows += stored.len() as u64;
        }
        progress(chunk.len());
    }
    Ok(done)
}

/// The facts Keel concluded about an account on `day` under `version`
/// (None: its timeline starts later, or was not built).
pub async fn facts_on(
    store: &dyn Store,
    ws: WorkspaceId,
    account: &ExternalId,
    version: &str,
    day: Date,
) -> Result<Option<Facts>, TimelineError> {
    let stored = store.timeline_rows(ws, account, version, Some(day)).await?;
    let rows = stored.iter().map(|r| from_store(account, r)).collect::<Result<Vec<_>, _>>()?;
    Ok(keel_timeline::facts_on(&rows, day))
}
