//! One SQLite write transaction: upserts by external id, event appends with
//! exact message-id deduplication, and rollup maintenance.

use std::collections::HashSet;

use rustc_hash::FxHashMap as HashMap;

use async_trait::async_trait;
use keel_core::{
    Account, Contact, Contract, Event, ExternalId, Opportunity, SurveyResponse, Ticket, Touchpoint,
};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::raw;
use super::rows::{Entity, micros};
use crate::hash::{content_hash, message_key};
use crate::rollup::RollupDelta;
use crate::{AppendOutcome, ImportLog, StoreError, WorkspaceId, WriteCounts, WriteTx};

/// SQLite's limit on bound parameters per statement in the bundled build.
const MAX_PARAMS: usize = 32_766;
/// Rows per multi-row INSERT: large enough to amortise statement overhead.
const MAX_ROWS: usize = 1_000;

pub(crate) struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
    ws: WorkspaceId,
    accounts: Option<HashMap<ExternalId, i64>>,
    hashes: HashMap<&'static str, HashMap<String, i64>>,
    next_event_id: Option<i64>,
    pending_keys: HashMap<i64, i64>,
}

fn rows_per_statement(columns: usize) -> usize {
    (MAX_PARAMS / columns).min(MAX_ROWS)
}

impl SqliteTx {
    pub(crate) fn new(tx: Transaction<'static, Sqlite>, ws: WorkspaceId) -> Self {
        Self {
            tx,
            ws,
            accounts: None,
            hashes: HashMap::default(),
            next_event_id: None,
            pending_keys: HashMap::default(),
        }
    }

    async fn load_accounts(&mut self) -> Result<(), StoreError> {
        if self.accounts.is_none() {
            let rows: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, external_id FROM accounts WHERE workspace_id = ?")
                    .bind(self.ws.0)
                    .fetch_all(&mut *self.tx)
                    .await?;
            let mut map = HashMap::with_capacity_and_hasher(rows.len(), Default::default());
            for (id, ext) in rows {
                let ext = ExternalId::parse(&ext).map_err(|e| StoreError::Corrupt {
                    table: "accounts",
                    id: ext.clone(),
                    reason: e.to_string(),
                })?;
                map.insert(ext, id);
            }
            self.accounts = Some(map);
        }
        Ok(())
    }

    async fn upsert<T: Entity>(&mut self, rows: &[T]) -> Result<WriteCounts, StoreError> {
        let is_account = T::TABLE == "accounts";
        self.load_accounts().await?;
        // Look up the stored hashes of just the ids in this batch (not the
        // whole table: a workspace may hold millions of rows of a kind).
        let known = self.hashes.entry(T::TABLE).or_default();
        let mut missing: Vec<String> = rows
            .iter()
            .map(|r| r.external_id().as_str())
            .filter(|id| !known.contains_key(*id))
            .map(str::to_owned)
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let mut found = Vec::new();
        for chunk in missing.chunks(rows_per_statement(1) - 1) {
            let mut qb: QueryBuilder<'static, Sqlite> = QueryBuilder::new(format!(
                "SELECT external_id, content_hash FROM {} WHERE workspace_id = ",
                T::TABLE
            ));
            qb.push_bind(self.ws.0).push(" AND external_id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(id.clone());
            }
            qb.push(")");
            found.extend(qb.build_query_as::<(String, i64)>().fetch_all(&mut *self.tx).await?);
        }
        let Self { tx, ws, accounts, hashes, .. } = self;
        let known = hashes.entry(T::TABLE).or_default();
        known.extend(found);
        let accounts = accounts.get_or_insert_with(HashMap::default);

        let mut counts = WriteCounts::default();
        let mut todo: Vec<(&T, Option<i64>, i64)> = Vec::new();
        for row in rows {
            let hash = content_hash(row);
            let account_id = match row.account() {
                Some(ext) => {
                    Some(*accounts.get(ext).ok_or_else(|| StoreError::UnknownAccount(ext.to_string()))?)
                }
                None => None,
            };
            match known.insert(row.external_id().to_string(), hash) {
                Some(old) if old == hash => counts.unchanged += 1,
                Some(_) => {
                    counts.updated += 1;
                    todo.push((row, account_id, hash));
                }
                None => {
                    counts.inserted += 1;
                    todo.push((row, account_id, hash));
                }
            }
        }

        let account_col = if is_account { "" } else { "account_id, " };
        let columns = T::COLUMNS.len() + 3 + usize::from(!is_account);
        let updates: Vec<String> = T::COLUMNS
            .iter()
            .chain(if is_account { [].iter() } else { ["account_id"].iter() })
            .chain(["content_hash"].iter())
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        for chunk in todo.chunks(rows_per_statement(columns)) {
            let mut qb: QueryBuilder<'static, Sqlite> = QueryBuilder::new(format!(
                "INSERT INTO {} (workspace_id, external_id, {account_col}{}, content_hash) ",
                T::TABLE,
                T::COLUMNS.join(", ")
            ));
            qb.push_values(chunk, |mut b, (row, account_id, hash)| {
                b.push_bind(ws.0).push_bind(row.external_id().to_string());
                if let Some(id) = account_id {
                    b.push_bind(*id);
                }
                row.bind(&mut b);
                b.push_bind(*hash);
            });
            qb.push(" ON CONFLICT (workspace_id, external_id) DO UPDATE SET ");
            qb.push(updates.join(", "));
            if is_account {
                qb.push(" RETURNING id, external_id");
                let returned: Vec<(i64, String)> = qb.build_query_as().fetch_all(&mut **tx).await?;
                for (id, ext) in returned {
                    if let Ok(ext) = ExternalId::parse(&ext) {
                        accounts.insert(ext, id);
                    }
                }
            } else {
                qb.build().execute(&mut **tx).await?;
            }
        }
        Ok(counts)
    }

    /// Reserves a key for each event. Returns, per event, `Some(event_id)`
    /// for a new message or `None` for a duplicate.
    async fn claim_keys(&mut self, rows: &[Event]) -> Result<Vec<Option<i64>>, StoreError> {
        if self.next_event_id.is_none() {
            let max: Option<i64> =
                sqlx::query_scalar("SELECT MAX(id) FROM events").fetch_one(&mut *self.tx).await?;
            self.next_event_id = Some(max.unwrap_or(0) + 1);
        }
        let Self { tx, ws, pending_keys, next_event_id, .. } = self;
        let mut next = next_event_id.unwrap_or(1);
        let mut handle = tx.lock_handle().await?;
        let assigned = raw::with_connection(handle.as_raw_handle(), |conn| {
            claim(conn, *ws, pending_keys, &mut next, rows)
        })?;
        *next_event_id = Some(next);
        if pending_keys.len() >= MAX_PENDING_KEYS {
            raw::with_connection(handle.as_raw_handle(), |conn| flush_keys(conn, pending_keys))?;
        }
        Ok(assigned)
    }

    async fn flush_pending_keys(&mut self) -> Result<(), StoreError> {
        if !self.pending_keys.is_empty() {
            let mut handle = self.tx.lock_handle().await?;
            raw::with_connection(handle.as_raw_handle(), |conn| flush_keys(conn, &mut self.pending_keys))?;
        }
        Ok(())
    }
}

/// Keys claimed in this transaction and not yet written to `event_keys`.
/// Writing them at the end, sorted, turns one random B-tree insert per event
/// into a merge that touches each page once.
const MAX_PENDING_KEYS: usize = 4_000_000;

/// Who holds a deduplication key.
enum Holder {
    /// An event earlier in the same batch (not inserted yet).
    Batch(usize),
    /// A stored event (or one inserted earlier in this transaction).
    Event(i64),
}

fn claim(
    conn: &rusqlite::Connection,
    ws: WorkspaceId,
    pending: &mut HashMap<i64, i64>,
    next: &mut i64,
    rows: &[Event],
) -> rusqlite::Result<Vec<Option<i64>>> {
    use rusqlite::OptionalExtension;
    let mut probe = conn.prepare_cached("SELECT event_id FROM event_keys WHERE key = ?1")?;
    let mut owner = conn.prepare_cached(
        "SELECT e.message_id, a.workspace_id FROM events e JOIN accounts a ON a.id = e.account_id WHERE e.id = ?1",
    )?;
    let mut in_batch: HashMap<i64, usize> = HashMap::with_capacity_and_hasher(rows.len(), Default::default());
    let mut assigned = vec![None; rows.len()];
    for (i, event) in rows.iter().enumerate() {
        let message = event.message_id.as_str();
        let mut key = message_key(ws, message);
        loop {
            let holder = match (in_batch.get(&key), pending.get(&key)) {
                (Some(&j), _) => Some(Holder::Batch(j)),
                (None, Some(&id)) => Some(Holder::Event(id)),
                (None, None) => probe.query_row([key], |r| r.get(0)).optional()?.map(Holder::Event),
            };
            let same = match holder {
                None => {
                    pending.insert(key, *next);
                    in_batch.insert(key, i);
                    assigned[i] = Some(*next);
                    *next += 1;
                    break;
                }
                Some(Holder::Batch(j)) => rows[j].message_id == event.message_id,
                Some(Holder::Event(id)) => owner
                    .query_row([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                    .optional()?
                    .is_some_and(|(m, w)| w == ws.0 && m == message),
            };
            if same {
                break; // a duplicate: assigned[i] stays None
            }
            // A 64-bit hash collision with another message: probe the next key.
            key = key.wrapping_add(1);
        }
    }
    Ok(assigned)
}

fn flush_keys(conn: &rusqlite::Connection, pending: &mut HashMap<i64, i64>) -> rusqlite::Result<()> {
    let mut keys: Vec<(i64, i64)> = pending.drain().collect();
    keys.sort_unstable();
    let mut insert = conn.prepare_cached("INSERT INTO event_keys (key, event_id) VALUES (?1, ?2)")?;
    for (key, id) in keys {
        insert.execute((key, id))?;
    }
    pending.shrink_to(0);
    Ok(())
}

#[async_trait]
impl WriteTx for SqliteTx {
    async fn account_ids(&mut self) -> Result<HashSet<ExternalId>, StoreError> {
        self.load_accounts().await?;
        Ok(self.accounts.as_ref().map(|m| m.keys().cloned().collect()).unwrap_or_default())
    }

    async fn upsert_accounts(&mut self, rows: &[Account]) -> Result<WriteCounts, StoreError> {
        self.upsert(rows).await
    }
    async fn upsert_contracts(&mut self, rows: &[Contract]) -> Result<WriteCounts, StoreError> {
        self.upsert(rows).await
    }
    async fn upsert_contacts(&mut self, rows: &[Contact]) -> Result<WriteCounts, StoreError> {
        self.upsert(rows).await
    }
    async fn upsert_tickets(&mut self, rows: &[Ticket]) -> Result<WriteCounts, StoreError> {
        self.upsert(rows).await
    }
    async fn upsert_surveys(&mut self, rows: &[SurveyResponse]) -> Result<WriteCounts, StoreError> {
        self.upsert(rows).await
    }
    async fn upsert_touchpoints(&mut self, rows: &[Touchpoint]) -> Result<WriteCounts, StoreError> {
        self.upsert(rows).await
    }
    async fn upsert_opportunities(&mut self, rows: &[Opportunity]) -> Result<WriteCounts, StoreError> {
        self.upsert(rows).await
    }

    async fn append_events(&mut self, rows: &[Event]) -> Result<AppendOutcome, StoreError> {
        self.load_accounts().await?;
        let mut account_ids = Vec::with_capacity(rows.len());
        {
            let accounts = self.accounts.as_ref().ok_or_else(|| StoreError::UnknownAccount(String::new()))?;
            for event in rows {
                let id = accounts
                    .get(&event.account)
                    .ok_or_else(|| StoreError::UnknownAccount(event.account.to_string()))?;
                account_ids.push(*id);
            }
        }
        let assigned = self.claim_keys(rows).await?;
        let mut outcome = AppendOutcome::default();
        let mut fresh: Vec<(i64, i64, &Event)> = Vec::with_capacity(rows.len());
        let mut delta = RollupDelta::default();
        for (i, (event, id)) in rows.iter().zip(&assigned).enumerate() {
            match id {
                Some(id) => {
                    fresh.push((*id, account_ids[i], event));
                    delta.add(account_ids[i], event);
                }
                None => outcome.duplicates.push(i),
            }
        }
        outcome.counts.inserted = fresh.len() as u64;
        outcome.counts.unchanged = outcome.duplicates.len() as u64;

        let (users, names) = delta.sorted();
        let mut handle = self.tx.lock_handle().await?;
        raw::with_connection(handle.as_raw_handle(), |conn| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO events (id, account_id, message_id, user_id, name, ts, received_at, properties) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for (id, account, e) in &fresh {
                let properties =
                    if e.properties.is_empty() { None } else { serde_json::to_string(&e.properties).ok() };
                insert.execute((
                    id,
                    account,
                    e.message_id.as_str(),
                    e.user.as_str(),
                    e.name.as_str(),
                    micros(e.timestamp),
                    micros(e.received_at),
                    properties,
                ))?;
            }
            for (table, key_col, rows) in
                [("usage_user_day", "user_id", &users), ("usage_event_day", "name", &names)]
            {
                let mut upsert = conn.prepare_cached(&format!(
                    "INSERT INTO {table} (account_id, day, {key_col}, known_day, events) VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (account_id, day, {key_col}, known_day) DO UPDATE SET events = events + excluded.events"
                ))?;
                for ((account, day, key, known), n) in rows.iter() {
                    upsert.execute((account, day, key, known, n))?;
                }
            }
            Ok(())
        })?;
        Ok(outcome)
    }

    async fn record_import(&mut self, log: &ImportLog) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO imports (workspace_id, kind, source, finished_at, inserted, updated, unchanged, rejected) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(self.ws.0)
        .bind(log.kind.as_str())
        .bind(&log.source)
        .bind(micros(log.finished_at))
        .bind(log.counts.inserted as i64)
        .bind(log.counts.updated as i64)
        .bind(log.counts.unchanged as i64)
        .bind(log.rejected as i64)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        self.flush_pending_keys().await?;
        self.tx.commit().await?;
        Ok(())
    }

    async fn rollback(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.rollback().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use keel_core::{Account, Event, EventName, ExternalId, MessageId, UserId};

    use crate::hash::message_key;
    use crate::{SqliteOptions, SqliteStore, Store, WorkspaceId};

    fn event(account: &str, message: &str, minute: i64) -> Event {
        let t =
            keel_core::parse_timestamp("2025-03-01T10:00:00Z").unwrap() + chrono::Duration::minutes(minute);
        Event {
            message_id: MessageId::parse(message).unwrap(),
            account: ExternalId::parse(account).unwrap(),
            user: UserId::parse("u1").unwrap(),
            name: EventName::parse("login").unwrap(),
            timestamp: t,
            received_at: t,
            properties: serde_json::Map::new(),
        }
    }

    async fn store_with_account(dir: &tempfile::TempDir, ws_name: &str) -> (SqliteStore, WorkspaceId) {
        let store = SqliteStore::open(dir.path().join("k.db").to_str().unwrap(), SqliteOptions::default())
            .await
            .unwrap();
        let ws = store.workspace(ws_name).await.unwrap();
        let mut tx = store.begin(ws).await.unwrap();
        let account = Account {
            id: ExternalId::parse("acme").unwrap(),
            name: "Acme".into(),
            attributes: Default::default(),
            owner: None,
            parent: None,
            created: "2025-01-01".parse().unwrap(),
        };
        tx.upsert_accounts(&[account]).await.unwrap();
        tx.commit().await.unwrap();
        (store, ws)
    }

    #[tokio::test]
    async fn a_hash_collision_does_not_swallow_a_new_message() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ws) = store_with_account(&dir, "w").await;
        let mut tx = store.begin(ws).await.unwrap();
        let first = tx.append_events(&[event("acme", "m-1", 0)]).await.unwrap();
        assert_eq!(first.counts.inserted, 1);
        tx.commit().await.unwrap();
        // Forge a collision: make m-2's key point at m-1's stored event.
        let m1_event: i64 =
            sqlx::query_scalar("SELECT id FROM events").fetch_one(store.pool()).await.unwrap();
        sqlx::query("INSERT INTO event_keys (key, event_id) VALUES (?, ?)")
            .bind(message_key(ws, "m-2"))
            .bind(m1_event)
            .execute(store.pool())
            .await
            .unwrap();

        let mut tx = store.begin(ws).await.unwrap();
        let second = tx.append_events(&[event("acme", "m-2", 1), event("acme", "m-1", 0)]).await.unwrap();
        assert_eq!((second.counts.inserted, second.duplicates.clone()), (1, vec![1]));
        let third = tx.append_events(&[event("acme", "m-2", 1)]).await.unwrap();
        assert_eq!((third.counts.inserted, third.duplicates), (0, vec![0]), "the probed key is found again");
        tx.commit().await.unwrap();
        assert_eq!(store.snapshot(ws).await.unwrap().events.len(), 2);
    }

    #[tokio::test]
    async fn duplicates_inside_one_batch_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ws) = store_with_account(&dir, "w").await;
        let mut tx = store.begin(ws).await.unwrap();
        let out = tx
            .append_events(&[event("acme", "a", 0), event("acme", "b", 1), event("acme", "a", 0)])
            .await
            .unwrap();
        assert_eq!((out.counts.inserted, out.duplicates), (2, vec![2]));
        tx.commit().await.unwrap();
        let usage = store.usage(ws, &ExternalId::parse("acme").unwrap()).await.unwrap();
        assert_eq!(usage.users.iter().map(|u| u.events).sum::<i64>(), 2);
    }

    #[tokio::test]
    async fn the_same_message_id_in_two_workspaces_is_two_events() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ws_a) = store_with_account(&dir, "a").await;
        let ws_b = store.workspace("b").await.unwrap();
        let mut tx = store.begin(ws_b).await.unwrap();
        tx.upsert_accounts(&store.snapshot(ws_a).await.unwrap().accounts).await.unwrap();
        tx.commit().await.unwrap();
        for ws in [ws_a, ws_b] {
            let mut tx = store.begin(ws).await.unwrap();
            assert_eq!(tx.append_events(&[event("acme", "same", 0)]).await.unwrap().counts.inserted, 1);
            tx.commit().await.unwrap();
        }
        assert_eq!(store.snapshot(ws_a).await.unwrap().events.len(), 1);
        assert_eq!(store.snapshot(ws_b).await.unwrap().events.len(), 1);
    }

    #[tokio::test]
    async fn an_event_for_an_unknown_account_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ws) = store_with_account(&dir, "w").await;
        let mut tx = store.begin(ws).await.unwrap();
        let err = tx.append_events(&[event("initech", "x", 0)]).await.unwrap_err();
        assert!(matches!(err, crate::StoreError::UnknownAccount(ref a) if a == "initech"), "{err}");
    }

    #[tokio::test]
    async fn a_rolled_back_transaction_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ws) = store_with_account(&dir, "w").await;
        let mut tx = store.begin(ws).await.unwrap();
        tx.append_events(&[event("acme", "x", 0)]).await.unwrap();
        tx.rollback().await.unwrap();
        let mut tx = store.begin(ws).await.unwrap();
        // The key was released with the rollback, so the event is new again.
        assert_eq!(tx.append_events(&[event("acme", "x", 0)]).await.unwrap().counts.inserted, 1);
    }
}
