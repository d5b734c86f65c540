//! One SQLite write transaction: upserts by external id, event appends with
//! exact message-id deduplication, and rollup maintenance.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use keel_core::{
    Account, Contact, Contract, Event, ExternalId, Opportunity, SurveyResponse, Ticket, Touchpoint,
};
use sqlx::{QueryBuilder, Sqlite, Transaction};

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
}

fn rows_per_statement(columns: usize) -> usize {
    (MAX_PARAMS / columns).min(MAX_ROWS)
}

impl SqliteTx {
    pub(crate) fn new(tx: Transaction<'static, Sqlite>, ws: WorkspaceId) -> Self {
        Self { tx, ws, accounts: None, hashes: HashMap::new(), next_event_id: None }
    }

    async fn load_accounts(&mut self) -> Result<(), StoreError> {
        if self.accounts.is_none() {
            let rows: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, external_id FROM accounts WHERE workspace_id = ?")
                    .bind(self.ws.0)
                    .fetch_all(&mut *self.tx)
                    .await?;
            let mut map = HashMap::with_capacity(rows.len());
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
        if !self.hashes.contains_key(T::TABLE) {
            let sql = format!("SELECT external_id, content_hash FROM {} WHERE workspace_id = ?", T::TABLE);
            let known: Vec<(String, i64)> =
                sqlx::query_as(&sql).bind(self.ws.0).fetch_all(&mut *self.tx).await?;
            self.hashes.insert(T::TABLE, known.into_iter().collect());
        }
        let Self { tx, ws, accounts, hashes, .. } = self;
        let known = hashes.entry(T::TABLE).or_default();
        let accounts = accounts.get_or_insert_with(HashMap::new);

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

    /// Reserves a key for each event, inserting into `event_keys`. Returns,
    /// per event, `Some(event_id)` for a new message or `None` for a duplicate.
    async fn claim_keys(&mut self, rows: &[Event]) -> Result<Vec<Option<i64>>, StoreError> {
        if self.next_event_id.is_none() {
            let max: Option<i64> =
                sqlx::query_scalar("SELECT MAX(id) FROM events").fetch_one(&mut *self.tx).await?;
            self.next_event_id = Some(max.unwrap_or(0) + 1);
        }
        let mut next = self.next_event_id.unwrap_or(1);
        let mut assigned: Vec<Option<i64>> = vec![None; rows.len()];
        // First occurrence of each key in this batch; later ones with the
        // same message id are duplicates, different ones are collisions.
        let mut first: HashMap<i64, usize> = HashMap::with_capacity(rows.len());
        let mut candidates: Vec<(i64, i64, usize)> = Vec::with_capacity(rows.len());
        for (i, event) in rows.iter().enumerate() {
            let mut key = message_key(self.ws, event.message_id.as_str());
            loop {
                match first.get(&key) {
                    None => break,
                    Some(&j) if rows[j].message_id == event.message_id => {
                        key = i64::MIN; // marks an in-batch duplicate
                        break;
                    }
                    Some(_) => key = key.wrapping_add(1),
                }
            }
            if key == i64::MIN {
                continue;
            }
            first.insert(key, i);
            candidates.push((key, next, i));
            assigned[i] = Some(next);
            next += 1;
        }
        self.next_event_id = Some(next);
        // Sorted keys walk the B-tree left to right.
        candidates.sort_unstable();
        let mut conflicts = Vec::new();
        for chunk in candidates.chunks(rows_per_statement(2)) {
            let mut qb: QueryBuilder<'static, Sqlite> =
                QueryBuilder::new("INSERT INTO event_keys (key, event_id) ");
            qb.push_values(chunk, |mut b, (key, id, _)| {
                b.push_bind(*key).push_bind(*id);
            });
            qb.push(" ON CONFLICT (key) DO NOTHING");
            let done = qb.build().execute(&mut *self.tx).await?.rows_affected();
            if done as usize != chunk.len() {
                conflicts.extend(self.find_conflicts(chunk).await?);
            }
        }
        for (key, i, stored) in conflicts {
            assigned[i] = if stored.as_deref() == Some(rows[i].message_id.as_str()) {
                None
            } else {
                // A true 64-bit hash collision: rare enough to take the slow path.
                self.resolve_conflict(key.wrapping_add(1), &rows[i], assigned[i]).await?
            };
        }
        Ok(assigned)
    }

    /// The (key, batch index, stored message id) of each event in a chunk
    /// whose key was already taken. The stored message id is `None` when the
    /// key's owner is not a stored event of this workspace.
    async fn find_conflicts(
        &mut self,
        chunk: &[(i64, i64, usize)],
    ) -> Result<Vec<(i64, usize, Option<String>)>, StoreError> {
        let mut qb: QueryBuilder<'static, Sqlite> = QueryBuilder::new(
            "SELECT k.key, k.event_id, e.message_id, a.workspace_id FROM event_keys k \
             LEFT JOIN events e ON e.id = k.event_id LEFT JOIN accounts a ON a.id = e.account_id WHERE k.key IN (",
        );
        let mut sep = qb.separated(", ");
        for (key, _, _) in chunk {
            sep.push_bind(*key);
        }
        qb.push(")");
        let owners: HashMap<i64, (i64, Option<String>, Option<i64>)> = qb
            .build_query_as::<(i64, i64, Option<String>, Option<i64>)>()
            .fetch_all(&mut *self.tx)
            .await?
            .into_iter()
            .map(|(key, id, message, ws)| (key, (id, message, ws)))
            .collect();
        Ok(chunk
            .iter()
            .filter_map(|(key, id, i)| match owners.get(key) {
                Some((owner, _, _)) if owner == id => None,
                Some((_, message, ws)) => {
                    let stored = message.clone().filter(|_| *ws == Some(self.ws.0));
                    Some((*key, *i, stored))
                }
                None => None,
            })
            .collect())
    }

    /// A key was taken: either by the same message (a duplicate) or, rarely,
    /// by another message with the same hash, in which case the next free
    /// key is claimed.
    async fn resolve_conflict(
        &mut self,
        mut key: i64,
        event: &Event,
        id: Option<i64>,
    ) -> Result<Option<i64>, StoreError> {
        let Some(id) = id else { return Ok(None) };
        loop {
            let owner: Option<(String, i64)> = sqlx::query_as(
                "SELECT e.message_id, a.workspace_id FROM event_keys k JOIN events e ON e.id = k.event_id \
                 JOIN accounts a ON a.id = e.account_id WHERE k.key = ?",
            )
            .bind(key)
            .fetch_optional(&mut *self.tx)
            .await?;
            match owner {
                Some((message_id, ws)) if ws == self.ws.0 && message_id == event.message_id.as_str() => {
                    return Ok(None);
                }
                Some(_) => key = key.wrapping_add(1),
                None => {
                    // Either free, or taken by an event of this same
                    // transaction that is not inserted yet: check the key row.
                    let taken: Option<i64> =
                        sqlx::query_scalar("SELECT event_id FROM event_keys WHERE key = ?")
                            .bind(key)
                            .fetch_optional(&mut *self.tx)
                            .await?;
                    match taken {
                        Some(owner) if owner == id => return Ok(Some(id)),
                        Some(_) => key = key.wrapping_add(1),
                        None => {
                            sqlx::query("INSERT INTO event_keys (key, event_id) VALUES (?, ?)")
                                .bind(key)
                                .bind(id)
                                .execute(&mut *self.tx)
                                .await?;
                            return Ok(Some(id));
                        }
                    }
                }
            }
        }
    }
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

        for chunk in fresh.chunks(rows_per_statement(8)) {
            let mut qb: QueryBuilder<'static, Sqlite> = QueryBuilder::new(
                "INSERT INTO events (id, account_id, message_id, user_id, name, ts, received_at, properties) ",
            );
            qb.push_values(chunk, |mut b, (id, account, e)| {
                b.push_bind(*id)
                    .push_bind(*account)
                    .push_bind(e.message_id.to_string())
                    .push_bind(e.user.to_string())
                    .push_bind(e.name.to_string())
                    .push_bind(micros(e.timestamp))
                    .push_bind(micros(e.received_at))
                    .push_bind(if e.properties.is_empty() {
                        None
                    } else {
                        serde_json::to_string(&e.properties).ok()
                    });
            });
            qb.build().execute(&mut *self.tx).await?;
        }

        let (users, names) = delta.sorted();
        for (table, key_col, rows) in
            [("usage_user_day", "user_id", users), ("usage_event_day", "name", names)]
        {
            for chunk in rows.chunks(rows_per_statement(5)) {
                let mut qb: QueryBuilder<'static, Sqlite> = QueryBuilder::new(format!(
                    "INSERT INTO {table} (account_id, day, {key_col}, known_day, events) "
                ));
                qb.push_values(chunk, |mut b, ((account, day, key, known), n)| {
                    b.push_bind(*account)
                        .push_bind(i64::from(*day))
                        .push_bind(key.to_string())
                        .push_bind(i64::from(*known))
                        .push_bind(*n);
                });
                qb.push(format!(
                    " ON CONFLICT (account_id, day, {key_col}, known_day) DO UPDATE SET events = events + excluded.events"
                ));
                qb.build().execute(&mut *self.tx).await?;
            }
        }
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

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
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
