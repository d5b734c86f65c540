//! One SQLite write transaction: upserts by external id, event appends with
//! exact message-id deduplication, and rollup maintenance.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use rustc_hash::FxHashMap as HashMap;

use async_trait::async_trait;
use keel_core::{
    Account, Contact, Contract, Event, ExternalId, Opportunity, SurveyResponse, Ticket, Timestamp,
    Touchpoint, UserId,
};
use sqlx::{QueryBuilder, Sqlite};

use super::dedup::{ClaimedKeys, MAX_PENDING_KEYS, claim};
use super::intern::{IdCache, Learned};
use super::raw;
use super::rows::{Entity, micros};
use super::writer::WriteConn;
use crate::hash::content_hash;
use crate::rollup::{DayDelta, RollupDelta, decode_counts, encode_counts, merge_counts};
use crate::{AppendOutcome, ImportLog, StoreError, WorkspaceId, WriteCounts, WriteTx};

/// SQLite's limit on bound parameters per statement in the bundled build.
const MAX_PARAMS: usize = 32_766;
/// Rows per multi-row INSERT: large enough to amortise statement overhead.
const MAX_ROWS: usize = 1_000;

pub(crate) struct SqliteTx {
    tx: WriteConn,
    ws: WorkspaceId,
    accounts: Option<HashMap<ExternalId, i64>>,
    /// Whether `accounts` holds every account of the workspace, or only
    /// those looked up so far.
    all_accounts: bool,
    hashes: HashMap<&'static str, HashMap<String, i64>>,
    next_event_id: Option<i64>,
    keys: ClaimedKeys,
    /// Per account touched by this transaction, the greatest (day, known day)
    /// stored in `usage_day` (None: no row). Rollup rows past it are new and
    /// need no lookup — the common case, as event files run forward in time.
    usage_marks: HashMap<i64, Option<(i32, i32)>>,
    learned: Learned,
    ids: Arc<Mutex<IdCache>>,
}

fn rows_per_statement(columns: usize) -> usize {
    (MAX_PARAMS / columns).min(MAX_ROWS)
}

impl SqliteTx {
    pub(crate) fn new(tx: WriteConn, ws: WorkspaceId, ids: Arc<Mutex<IdCache>>) -> Self {
        Self {
            tx,
            ws,
            accounts: None,
            all_accounts: false,
            hashes: HashMap::default(),
            next_event_id: None,
            keys: ClaimedKeys::default(),
            usage_marks: HashMap::default(),
            learned: Learned::default(),
            ids,
        }
    }

    /// The internal id of one of the workspace's accounts.
    async fn account_id(&mut self, account: &ExternalId) -> Result<i64, StoreError> {
        self.resolve_accounts([account]).await?;
        self.accounts
            .as_ref()
            .and_then(|a| a.get(account).copied())
            .ok_or_else(|| StoreError::UnknownAccount(account.to_string()))
    }

    /// Looks up the internal ids of those of `ids` not looked up yet (a
    /// workspace may hold a hundred thousand accounts: a transaction reads
    /// only those it touches).
    async fn resolve_accounts<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a ExternalId>,
    ) -> Result<(), StoreError> {
        if self.all_accounts {
            return Ok(());
        }
        let map = self.accounts.get_or_insert_with(HashMap::default);
        let mut missing: Vec<&str> = {
            let cache = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
            let mut missing = Vec::new();
            for id in ids {
                if map.contains_key(id) {
                    continue;
                }
                match cache.accounts.get(&(self.ws.0, id.clone())) {
                    Some(&known) => {
                        map.insert(id.clone(), known);
                    }
                    None => missing.push(id.as_str()),
                }
            }
            missing
        };
        missing.sort_unstable();
        missing.dedup();
        for chunk in missing.chunks(rows_per_statement(1) - 1) {
            let mut qb: QueryBuilder<'static, Sqlite> =
                QueryBuilder::new("SELECT id, external_id FROM accounts WHERE workspace_id = ");
            qb.push_bind(self.ws.0).push(" AND external_id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind((*id).to_owned());
            }
            qb.push(")");
            let rows: Vec<(i64, String)> = qb.build_query_as().fetch_all(&mut *self.tx).await?;
            for (id, ext) in rows {
                if let Ok(ext) = ExternalId::parse(&ext) {
                    map.insert(ext, id);
                }
            }
        }
        Ok(())
    }

    /// Reads every account of the workspace into the map.
    async fn load_accounts(&mut self) -> Result<(), StoreError> {
        if !self.all_accounts {
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
            // Accounts inserted in this transaction are in the table too.
            self.accounts = Some(map);
            self.all_accounts = true;
        }
        Ok(())
    }

    async fn upsert<T: Entity>(&mut self, rows: &[T]) -> Result<WriteCounts, StoreError> {
        let is_account = T::TABLE == "accounts";
        self.resolve_accounts(rows.iter().filter_map(Entity::account)).await?;
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

    /// Reserves a key for each event, on the transaction's connection.
    /// Returns, per event, `Some(event_id)` for a new message or `None` for
    /// a duplicate.
    fn claim_keys(
        conn: &rusqlite::Connection,
        ws: WorkspaceId,
        keys: &mut ClaimedKeys,
        next_event_id: &mut Option<i64>,
        rows: &[Event],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let mut next = match *next_event_id {
            Some(next) => next,
            None => {
                let max: Option<i64> = conn.query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))?;
                keys.probe_table =
                    conn.query_row("SELECT EXISTS (SELECT 1 FROM event_keys)", [], |r| r.get(0))?;
                max.unwrap_or(0) + 1
            }
        };
        let assigned = claim(conn, ws, keys, &mut next, rows)?;
        *next_event_id = Some(next);
        if keys.pending.len() >= MAX_PENDING_KEYS {
            keys.spill(conn)?;
        }
        Ok(assigned)
    }

    async fn flush_pending_keys(&mut self) -> Result<(), StoreError> {
        if !self.keys.pending.is_empty() || self.keys.held.len() > 0 {
            let mut handle = self.tx.lock_handle().await?;
            raw::with_connection(handle.as_raw_handle(), |conn| self.keys.write(conn))?;
        }
        Ok(())
    }
}

/// Adds a batch's rollup increments to `usage_day`, one row per account-day.
fn write_usage(
    conn: &rusqlite::Connection,
    marks: &mut HashMap<i64, Option<(i32, i32)>>,
    days: &[DayDelta],
) -> Result<(), StoreError> {
    use rusqlite::OptionalExtension;
    let mut last = conn.prepare_cached(
        "SELECT day, known_day FROM usage_day WHERE account_id = ?1 ORDER BY day DESC, known_day DESC LIMIT 1",
    )?;
    let mut stored = conn.prepare_cached(
        "SELECT events, users, names FROM usage_day WHERE account_id = ?1 AND day = ?2 AND known_day = ?3",
    )?;
    let mut upsert = conn.prepare_cached(
        "INSERT INTO usage_day (account_id, day, known_day, events, users, names) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (account_id, day, known_day) DO UPDATE SET \
         events = excluded.events, users = excluded.users, names = excluded.names",
    )?;
    let (mut users_buf, mut names_buf) = (Vec::new(), Vec::new());
    for d in days {
        let mark = match marks.get(&d.account) {
            Some(mark) => *mark,
            None => {
                let mark = last.query_row([d.account], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
                marks.insert(d.account, mark);
                mark
            }
        };
        let key = (d.day, d.known_day);
        let existing: Option<(i64, Vec<u8>, Vec<u8>)> = if mark.is_some_and(|m| key <= m) {
            stored
                .query_row((d.account, d.day, d.known_day), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?
        } else {
            None
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            table: "usage_day",
            id: format!("{}/{}/{}", d.account, d.day, d.known_day),
            reason,
        };
        let events = match &existing {
            Some((events, users, names)) => {
                encode_counts(
                    &merge_counts(&decode_counts(users).map_err(corrupt)?, &d.users),
                    &mut users_buf,
                );
                encode_counts(
                    &merge_counts(&decode_counts(names).map_err(corrupt)?, &d.names),
                    &mut names_buf,
                );
                *events as u64 + d.events
            }
            None => {
                encode_counts(&d.users, &mut users_buf);
                encode_counts(&d.names, &mut names_buf);
                d.events
            }
        };
        upsert.execute((d.account, d.day, d.known_day, events as i64, &users_buf, &names_buf))?;
        if mark.is_none_or(|m| key > m) {
            marks.insert(d.account, Some(key));
        }
    }
    Ok(())
}

#[async_trait]
impl WriteTx for SqliteTx {
    async fn account_ids(&mut self) -> Result<HashSet<ExternalId>, StoreError> {
        self.load_accounts().await?;
        Ok(self.accounts.as_ref().map(|m| m.keys().cloned().collect()).unwrap_or_default())
    }

    async fn missing_accounts(&mut self, ids: &[ExternalId]) -> Result<Vec<ExternalId>, StoreError> {
        self.resolve_accounts(ids).await?;
        let known = self.accounts.as_ref();
        let mut missing: Vec<ExternalId> =
            ids.iter().filter(|id| !known.is_some_and(|k| k.contains_key(*id))).cloned().collect();
        missing.sort();
        missing.dedup();
        Ok(missing)
    }

    async fn contact(&mut self, id: &ExternalId) -> Result<Option<Contact>, StoreError> {
        let row = sqlx::query(
            "SELECT c.email, c.name, c.role, c.active_from, c.active_to, a.external_id AS account \
             FROM contacts c JOIN accounts a ON a.id = c.account_id WHERE c.workspace_id = ? AND c.external_id = ?",
        )
        .bind(self.ws.0)
        .bind(id.as_str())
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let corrupt = |reason: String| StoreError::Corrupt { table: "contacts", id: id.to_string(), reason };
        let text = |col: &str| super::rows::sqlx_get::<String>(&row, col).map_err(corrupt);
        let date = |raw: String| keel_core::parse_date(&raw).map_err(|e| corrupt(e.to_string()));
        let active_to: Option<String> = super::rows::sqlx_get(&row, "active_to").map_err(corrupt)?;
        Ok(Some(Contact {
            id: id.clone(),
            account: ExternalId::parse(&text("account")?).map_err(|e| corrupt(e.to_string()))?,
            email: text("email")?,
            name: text("name")?,
            role: keel_core::Label::parse(&text("role")?).map_err(|e| corrupt(e.to_string()))?,
            active_from: date(text("active_from")?)?,
            active_to: active_to.map(date).transpose()?,
        }))
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
        self.resolve_accounts(rows.iter().map(|e| &e.account)).await?;
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
        // One borrow of the connection for claiming and writing: through
        // sqlx, each statement would cross to its worker thread and back.
        let Self { tx, ws, usage_marks, learned, ids, keys, next_event_id, .. } = self;
        let mut handle = tx.lock_handle().await?;
        let cache = ids.lock().unwrap_or_else(PoisonError::into_inner);
        let mut outcome = AppendOutcome::default();
        raw::with_connection(handle.as_raw_handle(), |conn| {
            let assigned = Self::claim_keys(conn, *ws, keys, next_event_id, rows)?;
            let mut fresh: Vec<(i64, i64, &Event)> = Vec::with_capacity(rows.len());
            for (i, (event, id)) in rows.iter().zip(&assigned).enumerate() {
                match id {
                    Some(id) => fresh.push((*id, account_ids[i], event)),
                    None => outcome.duplicates.push(i),
                }
            }
            outcome.counts.inserted = fresh.len() as u64;
            outcome.counts.unchanged = outcome.duplicates.len() as u64;
            let mut delta = RollupDelta::default();
            let mut insert = conn.prepare_cached(
                "INSERT INTO events (id, account_id, message_id, user_id, name_id, ts, received_at, properties) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for &(id, account, e) in &fresh {
                let user = learned.intern(conn, &cache, "users", (account, e.user.as_str()))?;
                let name = learned.intern(conn, &cache, "event_names", (ws.0, e.name.as_str()))?;
                delta.add(account, e, user as u64, name as u64);
                let properties =
                    if e.properties.is_empty() { None } else { serde_json::to_string(&e.properties).ok() };
                insert.execute((
                    id,
                    account,
                    e.message_id.as_str(),
                    user,
                    name,
                    micros(e.timestamp),
                    micros(e.received_at),
                    properties,
                ))?;
            }
            write_usage(conn, usage_marks, &delta.into_days())
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

    async fn record_rejections(&mut self, rows: &[crate::RejectionRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        for r in rows {
            sqlx::query(
                "INSERT INTO ingest_rejections (workspace_id, at, code, reason, message_id, user_id) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(self.ws.0)
            .bind(micros(r.at))
            .bind(&r.code)
            .bind(&r.reason)
            .bind(r.message_id.as_deref())
            .bind(r.user_id.as_deref())
            .execute(&mut *self.tx)
            .await?;
        }
        // Keep the latest rows only.
        sqlx::query(
            "DELETE FROM ingest_rejections WHERE workspace_id = ?1 AND id <= \
             (SELECT id FROM ingest_rejections WHERE workspace_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
        )
        .bind(self.ws.0)
        .bind(crate::KEPT_REJECTIONS)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn hold_messages(&mut self, rows: &[crate::HeldMessage]) -> Result<Vec<bool>, StoreError> {
        let mut held = Vec::with_capacity(rows.len());
        for r in rows {
            let done = sqlx::query(
                "INSERT INTO held_messages (workspace_id, message_id, user_id, received_at, payload) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (workspace_id, message_id) DO NOTHING",
            )
            .bind(self.ws.0)
            .bind(&r.message_id)
            .bind(r.user.as_str())
            .bind(micros(r.received_at))
            .bind(&r.payload)
            .execute(&mut *self.tx)
            .await?;
            held.push(done.rows_affected() == 1);
        }
        Ok(held)
    }

    async fn held_messages(&mut self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM held_messages WHERE workspace_id = ?")
            .bind(self.ws.0)
            .fetch_one(&mut *self.tx)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn take_held(&mut self, users: &[UserId]) -> Result<Vec<crate::HeldMessage>, StoreError> {
        let mut out = Vec::new();
        for user in users {
            let rows: Vec<(i64, String, i64, String)> = sqlx::query_as(
                "SELECT id, message_id, received_at, payload FROM held_messages \
                 WHERE workspace_id = ? AND user_id = ? ORDER BY id",
            )
            .bind(self.ws.0)
            .bind(user.as_str())
            .fetch_all(&mut *self.tx)
            .await?;
            for (id, message_id, received_at, payload) in rows {
                let received_at = super::rows::from_micros(received_at).map_err(|reason| {
                    StoreError::Corrupt { table: "held_messages", id: message_id.clone(), reason }
                })?;
                sqlx::query("DELETE FROM held_messages WHERE id = ?").bind(id).execute(&mut *self.tx).await?;
                out.push(crate::HeldMessage { message_id, user: user.clone(), received_at, payload });
            }
        }
        Ok(out)
    }

    async fn record_transitions(&mut self, rows: &[crate::TransitionRecord]) -> Result<u64, StoreError> {
        self.resolve_accounts(rows.iter().map(|r| &r.account)).await?;
        let mut inserted = 0;
        for r in rows {
            let account = *self
                .accounts
                .as_ref()
                .and_then(|a| a.get(&r.account))
                .ok_or_else(|| StoreError::UnknownAccount(r.account.to_string()))?;
            let done = sqlx::query(
                "INSERT INTO stage_transitions (account_id, product_line, on_day, from_stage, to_stage, rule, inputs, \
                 journey_version, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (account_id, product_line, on_day, to_stage, journey_version) DO NOTHING",
            )
            .bind(account)
            .bind(&r.product_line)
            .bind(r.on.to_string())
            .bind(r.from.as_deref().unwrap_or(""))
            .bind(r.to.as_deref().unwrap_or(""))
            .bind(&r.rule)
            .bind(&r.inputs)
            .bind(&r.journey_version)
            .bind(micros(r.recorded_at))
            .execute(&mut *self.tx)
            .await?;
            inserted += done.rows_affected();
        }
        Ok(inserted)
    }

    async fn join_account(
        &mut self,
        user: &UserId,
        account: &ExternalId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let account = self.account_id(account).await?;
        let open: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM memberships WHERE workspace_id = ? AND user_id = ? AND account_id = ? AND until IS NULL",
        )
        .bind(self.ws.0)
        .bind(user.as_str())
        .bind(account)
        .fetch_optional(&mut *self.tx)
        .await?;
        if open.is_some() {
            return Ok(false);
        }
        sqlx::query("INSERT INTO memberships (workspace_id, user_id, account_id, since) VALUES (?, ?, ?, ?)")
            .bind(self.ws.0)
            .bind(user.as_str())
            .bind(account)
            .bind(micros(at))
            .execute(&mut *self.tx)
            .await?;
        Ok(true)
    }

    async fn leave_account(
        &mut self,
        user: &UserId,
        account: &ExternalId,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let account = self.account_id(account).await?;
        let done = sqlx::query(
            "UPDATE memberships SET until = max(since, ?) \
             WHERE workspace_id = ? AND user_id = ? AND account_id = ? AND until IS NULL",
        )
        .bind(micros(at))
        .bind(self.ws.0)
        .bind(user.as_str())
        .bind(account)
        .execute(&mut *self.tx)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn account_of_users(
        &mut self,
        asks: &[(UserId, Timestamp)],
    ) -> Result<Vec<Option<ExternalId>>, StoreError> {
        let mut out = Vec::with_capacity(asks.len());
        for (user, at) in asks {
            let at = micros(*at);
            let found: Option<String> = sqlx::query_scalar(
                "SELECT a.external_id FROM memberships m JOIN accounts a ON a.id = m.account_id \
                 WHERE m.workspace_id = ?1 AND m.user_id = ?2 \
                 ORDER BY (m.since <= ?3 AND (m.until IS NULL OR m.until > ?3)) DESC, m.since DESC, m.id DESC \
                 LIMIT 1",
            )
            .bind(self.ws.0)
            .bind(user.as_str())
            .bind(at)
            .fetch_optional(&mut *self.tx)
            .await?;
            out.push(
                found
                    .map(|a| {
                        ExternalId::parse(&a).map_err(|e| StoreError::Corrupt {
                            table: "accounts",
                            id: a.clone(),
                            reason: e.to_string(),
                        })
                    })
                    .transpose()?,
            );
        }
        Ok(out)
    }

    async fn put_account_states(
        &mut self,
        states: &[(ExternalId, crate::StoredState, Vec<crate::TimelineEntry>)],
    ) -> Result<(), StoreError> {
        self.resolve_accounts(states.iter().map(|(a, _, _)| a)).await?;
        let mut ids = Vec::with_capacity(states.len());
        for (account, _, _) in states {
            ids.push(self.account_id(account).await?);
        }
        // One borrow of the connection for the whole batch: through sqlx,
        // every statement would cross to its worker thread and back.
        let mut handle = self.tx.lock_handle().await?;
        raw::with_connection(handle.as_raw_handle(), |conn| {
            let mut upsert = conn.prepare_cached(
                "INSERT INTO account_state (account_id, evaluated_at, as_of, journey_version, state, \
                 segment, band, score, stages, mrr, renewal_date) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
                 ON CONFLICT (account_id) DO UPDATE SET evaluated_at = excluded.evaluated_at, \
                 as_of = excluded.as_of, journey_version = excluded.journey_version, state = excluded.state, \
                 segment = excluded.segment, band = excluded.band, score = excluded.score, \
                 stages = excluded.stages, mrr = excluded.mrr, renewal_date = excluded.renewal_date",
            )?;
            let mut append = conn.prepare_cached(
                "INSERT INTO timeline (account_id, at, kind, detail) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (id, (_, state, timeline)) in ids.iter().zip(states) {
                let summary = &state.summary;
                upsert.execute(rusqlite::params![
                    id,
                    micros(state.evaluated_at),
                    state.as_of.to_string(),
                    state.journey_version,
                    state.state,
                    summary.segment,
                    summary.band,
                    summary.score,
                    super::accounts::stages_column(&summary.stages),
                    summary.mrr,
                    summary.renewal.map(|d| d.to_string()),
                ])?;
                for t in timeline {
                    append.execute(rusqlite::params![id, micros(t.at), t.kind, t.detail])?;
                }
            }
            Ok::<_, StoreError>(())
        })
    }

    async fn play_state(
        &mut self,
        account: &ExternalId,
        since: keel_core::Date,
    ) -> Result<crate::PlayState, StoreError> {
        super::plays::play_state(&mut self.tx, self.ws, account, since).await
    }

    async fn put_play_memo(
        &mut self,
        account: &ExternalId,
        as_of: keel_core::Date,
        holding: &str,
    ) -> Result<(), StoreError> {
        super::plays::put_memo(&mut self.tx, self.ws, account, as_of, holding).await
    }

    async fn insert_play_run(&mut self, run: &crate::PlayRunRow) -> Result<bool, StoreError> {
        super::plays::insert_run(&mut self.tx, self.ws, run).await
    }

    async fn update_play_run(&mut self, run: &crate::PlayRunRow) -> Result<(), StoreError> {
        super::plays::update_run(&mut self.tx, self.ws, run).await
    }

    async fn play_run(&mut self, key: &str) -> Result<Option<crate::PlayRunRow>, StoreError> {
        super::plays::run(&mut self.tx, self.ws, key).await
    }

    async fn append_play_decisions(&mut self, rows: &[crate::DecisionRow]) -> Result<(), StoreError> {
        super::plays::append_decisions(&mut self.tx, self.ws, rows).await
    }

    async fn insert_task(&mut self, task: &crate::TaskRow) -> Result<Option<i64>, StoreError> {
        super::plays::insert_task(&mut self.tx, self.ws, task).await
    }

    async fn task(&mut self, id: i64) -> Result<Option<crate::TaskRow>, StoreError> {
        super::plays::task(&mut *self.tx, self.ws, id).await
    }

    async fn update_task(&mut self, task: &crate::TaskRow) -> Result<(), StoreError> {
        super::plays::update_task(&mut self.tx, self.ws, task).await
    }

    async fn insert_outbox(&mut self, row: &crate::OutboxRow) -> Result<Option<i64>, StoreError> {
        super::plays::insert_outbox(&mut self.tx, self.ws, row).await
    }

    async fn outbox_entry(&mut self, id: i64) -> Result<Option<crate::OutboxRow>, StoreError> {
        super::plays::outbox_entry(&mut *self.tx, self.ws, id).await
    }

    async fn decide_outbox(&mut self, row: &crate::OutboxRow) -> Result<bool, StoreError> {
        super::plays::decide_outbox(&mut self.tx, self.ws, row).await
    }

    async fn queue_delivery(&mut self, row: &crate::DeliveryRow) -> Result<Option<i64>, StoreError> {
        super::plays::queue_delivery(&mut self.tx, self.ws, row).await
    }

    async fn update_delivery(&mut self, row: &crate::DeliveryRow) -> Result<(), StoreError> {
        super::plays::update_delivery(&mut self.tx, self.ws, row).await
    }

    async fn commit(mut self: Box<Self>) -> Result<(), StoreError> {
        self.flush_pending_keys().await?;
        let Self { tx, ws, accounts, learned, ids, .. } = *self;
        tx.commit().await?;
        ids.lock().unwrap_or_else(PoisonError::into_inner).publish(ws, &learned, accounts.as_ref());
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
        store_with_account_opened(dir, ws_name, SqliteOptions::default()).await
    }

    async fn store_with_account_opened(
        dir: &tempfile::TempDir,
        ws_name: &str,
        options: SqliteOptions,
    ) -> (SqliteStore, WorkspaceId) {
        let store = SqliteStore::open(dir.path().join("k.db").to_str().unwrap(), options).await.unwrap();
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

    /// The ids cached across transactions are those of committed rows only:
    /// a rolled-back user id, reused by SQLite for another user, never
    /// attributes events to the wrong person — and ids another process
    /// assigned meanwhile are found, not duplicated.
    #[tokio::test]
    async fn cached_ids_survive_neither_a_rollback_nor_miss_another_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ws) = store_with_account(&dir, "w").await;
        let by = |user: &str, message: &str, minute| Event {
            user: UserId::parse(user).unwrap(),
            ..event("acme", message, minute)
        };
        let mut tx = store.begin(ws).await.unwrap();
        tx.append_events(&[by("ghost", "m-0", 0)]).await.unwrap();
        tx.rollback().await.unwrap();
        let mut tx = store.begin(ws).await.unwrap();
        tx.append_events(&[by("ann", "m-1", 1)]).await.unwrap();
        tx.commit().await.unwrap();
        // A second store on the same file, as another process would be.
        let other = SqliteStore::open(dir.path().join("k.db").to_str().unwrap(), SqliteOptions::default())
            .await
            .unwrap();
        let mut tx = other.begin(ws).await.unwrap();
        tx.append_events(&[by("bob", "m-2", 2), by("ann", "m-3", 3)]).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin(ws).await.unwrap();
        tx.append_events(&[by("ghost", "m-4", 4), by("bob", "m-5", 5), by("ann", "m-6", 6)]).await.unwrap();
        tx.commit().await.unwrap();

        let users: Vec<(String, i64)> = sqlx::query_as(
            "SELECT external_id, COUNT(*) FROM users GROUP BY external_id ORDER BY external_id",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(users, [("ann".to_owned(), 1), ("bob".to_owned(), 1), ("ghost".to_owned(), 1)]);
        let events = store.snapshot(ws).await.unwrap().events;
        let seen: Vec<(&str, &str)> =
            events.iter().map(|e| (e.message_id.as_str(), e.user.as_str())).collect();
        assert_eq!(
            seen,
            [
                ("m-1", "ann"),
                ("m-2", "bob"),
                ("m-3", "ann"),
                ("m-4", "ghost"),
                ("m-5", "bob"),
                ("m-6", "ann")
            ]
        );
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
    async fn message_ids_are_forgotten_after_the_window_and_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ws) = store_with_account(&dir, "w").await;
        let day = |d: &str| keel_core::parse_timestamp(&format!("{d}T09:00:00Z")).unwrap();
        let append = |messages: &'static [&'static str]| {
            let store = &store;
            async move {
                let mut tx = store.begin(ws).await.unwrap();
                let rows: Vec<Event> = messages.iter().map(|m| event("acme", m, 0)).collect();
                let out = tx.append_events(&rows).await.unwrap();
                tx.commit().await.unwrap();
                (out.counts.inserted, out.counts.unchanged)
            }
        };
        let forget = |now: &str, window: u32| {
            let (store, now) = (&store, day(now));
            async move {
                let mut n = 0;
                for part in 0..16 {
                    n += store.forget_message_ids(now, window, part, 16).await.unwrap();
                }
                n
            }
        };
        // m-1 arrives before any mark, m-2 after the mark of 2026-01-20.
        assert_eq!(append(&["m-1"]).await, (1, 0));
        assert_eq!(forget("2026-01-20", 30).await, 0, "no mark is 30 days old yet");
        assert_eq!(append(&["m-2"]).await, (1, 0));
        assert_eq!(forget("2026-02-18", 30).await, 0, "29 days after the mark: nothing forgotten");
        assert_eq!(append(&["m-1", "m-2"]).await, (0, 2), "both still duplicates");
        assert_eq!(forget("2026-02-19", 30).await, 1, "30 days after the mark: what came before it");
        assert_eq!(append(&["m-1", "m-2"]).await, (1, 1), "m-1 is accepted again, m-2 is still a duplicate");
        assert_eq!(forget("2026-02-19", 30).await, 0, "forgetting again forgets nothing more");
        let all = store.snapshot(ws).await.unwrap().events.len();
        assert_eq!(all, 3, "forgetting an id removes no event");
    }

    #[tokio::test]
    async fn a_restarting_checkpoint_keeps_the_log_small_without_auto_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions { auto_checkpoint: false, ..SqliteOptions::default() };
        let (store, ws) = store_with_account_opened(&dir, "w", options).await;
        let ids: Vec<String> = (0..30_000).map(|i| format!("m-{i}")).collect();
        for chunk in ids.chunks(1_000) {
            let mut tx = store.begin(ws).await.unwrap();
            let rows: Vec<Event> =
                chunk.iter().enumerate().map(|(i, m)| event("acme", m, i as i64)).collect();
            tx.append_events(&rows).await.unwrap();
            tx.commit().await.unwrap();
        }
        let grown = store.checkpoint(false).await.unwrap();
        assert!(grown > 1_000, "no commit checkpointed: the log holds {grown} pages");
        store.checkpoint(true).await.unwrap();
        let mut tx = store.begin(ws).await.unwrap();
        tx.append_events(&[event("acme", "last", 0)]).await.unwrap();
        tx.commit().await.unwrap();
        let after = store.checkpoint(false).await.unwrap();
        assert!(after < 100, "the next writer started the log from the top: {after} pages");
        assert_eq!(store.snapshot(ws).await.unwrap().events.len(), 30_001);
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

    #[tokio::test]
    async fn usage_rows_merge_across_batches_transactions_and_late_days() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ws) = store_with_account(&dir, "w").await;
        let with_user = |mut e: Event, user: &str| {
            e.user = UserId::parse(user).unwrap();
            e
        };
        let mut tx = store.begin(ws).await.unwrap();
        // Day 1 (minute 0) and day 2 (minute 1440).
        tx.append_events(&[event("acme", "a", 0), event("acme", "b", 1440)]).await.unwrap();
        // The same day 1 again in a later batch: merged into the stored row, not overwritten.
        tx.append_events(&[with_user(event("acme", "c", 5), "u2"), event("acme", "d", 6)]).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = store.begin(ws).await.unwrap();
        // Day 1 once more, behind the account's newest row, in a new transaction.
        tx.append_events(&[with_user(event("acme", "e", 7), "u2")]).await.unwrap();
        tx.commit().await.unwrap();

        let usage = store.usage(ws, &ExternalId::parse("acme").unwrap()).await.unwrap();
        let users: Vec<(i32, &str, i64)> =
            usage.users.iter().map(|u| (u.day - usage.users[0].day, u.user.as_str(), u.events)).collect();
        assert_eq!(users, vec![(0, "u1", 2), (0, "u2", 2), (1, "u1", 1)]);
        let names: Vec<(i32, i64)> =
            usage.events.iter().map(|n| (n.day - usage.events[0].day, n.events)).collect();
        assert_eq!(names, vec![(0, 4), (1, 1)]);

        // The same rows as evaluation reads them, whole or from a day on.
        let acme = [ExternalId::parse("acme").unwrap()];
        let days = |since: Option<&'static str>| {
            let store = &store;
            let acme = &acme;
            async move {
                let since = since.map(|d| d.parse().unwrap());
                let got = store.usage_days(ws, acme, since).await.unwrap();
                got.into_iter()
                    .flat_map(|(_, days)| days)
                    .map(|d| (d.day.to_string(), d.events, d.users.len()))
                    .collect::<Vec<_>>()
            }
        };
        let both = vec![("2025-03-01".to_owned(), 4, 2), ("2025-03-02".to_owned(), 1, 1)];
        assert_eq!(days(None).await, both);
        assert_eq!(days(Some("2025-03-01")).await, both);
        assert_eq!(days(Some("2025-03-02")).await, both[1..]);
        assert_eq!(days(Some("2025-03-03")).await, []);
    }

    #[tokio::test]
    async fn records_of_one_account_hold_only_that_account() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ws) = store_with_account(&dir, "w").await;
        let mut all = store.records(ws, crate::Accounts::All, crate::RecordKinds::ALL).await.unwrap();
        let mut other = all.accounts[0].clone();
        other.id = ExternalId::parse("initech").unwrap();
        let mut tx = store.begin(ws).await.unwrap();
        tx.upsert_accounts(&[other]).await.unwrap();
        tx.upsert_contracts(&[keel_core::Contract {
            id: ExternalId::parse("c-1").unwrap(),
            account: ExternalId::parse("acme").unwrap(),
            product: keel_core::Label::parse("platform").unwrap(),
            start: "2025-01-01".parse().unwrap(),
            end: None,
            mrr: keel_core::Money::parse("100", "EUR").unwrap(),
            seats: 10,
            billing_period: keel_core::BillingPeriod::Monthly,
        }])
        .await
        .unwrap();
        tx.record_transitions(&[crate::TransitionRecord {
            account: ExternalId::parse("initech").unwrap(),
            product_line: "platform".into(),
            on: "2025-02-01".parse().unwrap(),
            from: None,
            to: Some("onboarding".into()),
            rule: "contract started".into(),
            inputs: "{}".into(),
            journey_version: "v1".into(),
            recorded_at: keel_core::parse_timestamp("2025-02-02T00:00:00Z").unwrap(),
        }])
        .await
        .unwrap();
        tx.commit().await.unwrap();
        all = store.records(ws, crate::Accounts::All, crate::RecordKinds::ALL).await.unwrap();
        assert_eq!(all.accounts.len(), 2);
        let (acme, initech) = (ExternalId::parse("acme").unwrap(), ExternalId::parse("initech").unwrap());
        let ids =
            |s: &crate::Snapshot| s.accounts.iter().map(|a| a.id.as_str().to_owned()).collect::<Vec<_>>();
        let one = store.records(ws, crate::Accounts::One(&initech), crate::RecordKinds::ALL).await.unwrap();
        assert_eq!(ids(&one), ["initech"]);
        let b = ExternalId::parse("b").unwrap();
        let chunk =
            store.records(ws, crate::Accounts::Between(&b, &initech), crate::RecordKinds::ALL).await.unwrap();
        assert_eq!(ids(&chunk), ["initech"]);
        let chunk =
            store.records(ws, crate::Accounts::Between(&acme, &acme), crate::RecordKinds::ALL).await.unwrap();
        assert_eq!((ids(&chunk), chunk.contracts.len()), (vec!["acme".to_owned()], 1));
        assert_eq!(all.contracts.len(), 1);
        let both = [initech.clone(), acme.clone(), ExternalId::parse("nobody").unwrap()];
        let listed = store.records(ws, crate::Accounts::List(&both), crate::RecordKinds::ALL).await.unwrap();
        assert_eq!(
            (ids(&listed), listed.contracts.len()),
            (vec!["acme".to_owned(), "initech".to_owned()], 1)
        );
        let bare = store.records(ws, crate::Accounts::All, crate::RecordKinds::default()).await.unwrap();
        assert_eq!((ids(&bare).len(), bare.contracts.len()), (2, 0), "accounts only");
        let lineage = store.transitions(ws, &ExternalId::parse("initech").unwrap()).await.unwrap();
        assert_eq!(
            (lineage.len(), lineage[0].to.as_deref(), lineage[0].from.as_deref()),
            (1, Some("onboarding"), None)
        );
        assert!(store.transitions(ws, &ExternalId::parse("acme").unwrap()).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn memberships_attribute_users_by_time_and_retries_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ws) = store_with_account(&dir, "w").await;
        let mut other = store.records(ws, crate::Accounts::All, crate::RecordKinds::default()).await.unwrap();
        let mut initech = other.accounts.remove(0);
        initech.id = ExternalId::parse("initech").unwrap();
        let t = |s: &str| keel_core::parse_timestamp(s).unwrap();
        let (ann, bob) = (UserId::parse("ann").unwrap(), UserId::parse("bob").unwrap());
        let (acme, ini) = (ExternalId::parse("acme").unwrap(), ExternalId::parse("initech").unwrap());
        let mut tx = store.begin(ws).await.unwrap();
        tx.upsert_accounts(&[initech]).await.unwrap();
        assert!(tx.join_account(&ann, &acme, t("2025-01-01T00:00:00Z")).await.unwrap());
        assert!(!tx.join_account(&ann, &acme, t("2025-01-05T00:00:00Z")).await.unwrap(), "a retry");
        assert!(tx.leave_account(&ann, &acme, t("2025-03-01T00:00:00Z")).await.unwrap());
        assert!(!tx.leave_account(&ann, &acme, t("2025-03-02T00:00:00Z")).await.unwrap());
        assert!(tx.join_account(&ann, &ini, t("2025-03-01T00:00:00Z")).await.unwrap());
        let got = tx
            .account_of_users(&[
                (ann.clone(), t("2025-02-01T00:00:00Z")),
                (ann.clone(), t("2025-04-01T00:00:00Z")),
                (ann.clone(), t("2024-06-01T00:00:00Z")),
                (bob.clone(), t("2025-02-01T00:00:00Z")),
            ])
            .await
            .unwrap();
        let got: Vec<Option<&str>> = got.iter().map(|a| a.as_ref().map(ExternalId::as_str)).collect();
        assert_eq!(got, [Some("acme"), Some("initech"), Some("initech"), None]);
        let err =
            tx.join_account(&bob, &ExternalId::parse("nobody").unwrap(), t("2025-01-01T00:00:00Z")).await;
        assert!(matches!(err, Err(crate::StoreError::UnknownAccount(a)) if a == "nobody"));
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn api_keys_are_found_by_prefix_listed_per_workspace_and_revoked_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, ws) = store_with_account(&dir, "w").await;
        let other = store.workspace("other").await.unwrap();
        let at = keel_core::parse_timestamp("2026-01-01T00:00:00Z").unwrap();
        let key = |ws: WorkspaceId, prefix: &str| crate::ApiKey {
            workspace: ws,
            workspace_name: String::new(),
            name: format!("key {prefix}"),
            prefix: prefix.into(),
            secret_hash: vec![1, 2, 3],
            scopes: vec!["ingest".into(), "read".into()],
            created_at: at,
            revoked_at: None,
        };
        store.create_api_key(&key(ws, "keel_aaaa")).await.unwrap();
        store.create_api_key(&key(other, "keel_bbbb")).await.unwrap();
        assert!(store.create_api_key(&key(ws, "keel_aaaa")).await.is_err(), "prefixes are unique");
        let found = store.api_key("keel_bbbb").await.unwrap().unwrap();
        assert_eq!((found.workspace, found.workspace_name.as_str()), (other, "other"));
        assert_eq!(found.scopes, ["ingest", "read"]);
        assert_eq!(found.secret_hash, [1, 2, 3]);
        assert_eq!(store.api_keys(ws).await.unwrap().len(), 1);
        assert!(!store.revoke_api_key(ws, "keel_bbbb", at).await.unwrap(), "not this workspace's key");
        assert!(store.revoke_api_key(other, "keel_bbbb", at).await.unwrap());
        assert!(!store.revoke_api_key(other, "keel_bbbb", at).await.unwrap());
        assert_eq!(store.api_key("keel_bbbb").await.unwrap().unwrap().revoked_at, Some(at));
        assert!(store.api_key("keel_cccc").await.unwrap().is_none());
    }
}
