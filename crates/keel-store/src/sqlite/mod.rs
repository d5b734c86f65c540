//! The embedded SQLite backend: WAL, full synchronous commits, a large page cache.

mod accounts;
mod dedup;
mod intern;
mod plays;
mod privacy;
pub use privacy::restore_file;
mod raw;
mod rows;
mod timeline;
mod tx;
mod users;
mod writer;

use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap as HashMap;
use std::time::Duration;

use async_trait::async_trait;
use keel_core::{EntityKind, Event, EventName, ExternalId, MessageId, UserId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};

use crate::rollup::{EventDay, UserDay, day_from_number, day_number, decode_counts};
use crate::{
    Accounts, ApiKey, ImportLog, RecordKinds, Snapshot, Status, Store, StoreError, UsageRollup, WorkspaceId,
    WriteCounts, WriteTx,
};
use rows::{Entity, R, from_micros, get, sqlx_get};
pub(crate) use tx::SqliteTx;

/// Tuning knobs of the SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Page cache per connection, in MiB. SQLite's default is 2 MiB, which
    /// makes B-tree inserts into anything bigger than that hit the disk;
    /// Keel defaults to 256 MiB.
    pub cache_mib: u32,
    /// Connections in the pool (readers; SQLite allows one writer at a time).
    pub max_connections: u32,
    /// Whether commits checkpoint the WAL into the database file when it
    /// grows past 1 000 pages (SQLite's default). A server turns this off and
    /// calls [`crate::Store::maintain`] from a background task instead, so
    /// that no request waits for a checkpoint inside its commit.
    pub auto_checkpoint: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { cache_mib: 256, max_connections: 4, auto_checkpoint: true }
    }
}

/// A store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    ids: Arc<Mutex<intern::IdCache>>,
    health: Arc<writer::WriteHealth>,
    turn: writer::WriteTurn,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    /// Opens the file (creating it if missing) and applies pending migrations.
    pub async fn open(path: &str, options: SqliteOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before Keel reports it, even across power loss.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30))
            .pragma("cache_size", format!("-{}", u64::from(options.cache_mib) * 1024))
            .pragma("temp_store", "memory")
            // Reads map the file instead of copying pages into the cache.
            .pragma("mmap_size", (2u64 << 30).to_string())
            // Keep the WAL from staying gigabytes large after a bulk import.
            .pragma("journal_size_limit", (64u64 << 20).to_string())
            .pragma("wal_autocheckpoint", if options.auto_checkpoint { "1000" } else { "0" });
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            // An in-process connection does not go stale: no ping before each use.
            .test_before_acquire(false)
            // Connections are kept once open (see below).
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(connect)
            .await?;
        MIGRATOR.run(&pool).await?;
        // Every connection opened here, now, one after another (after the
        // migrations, so none contends for the new file's first locks): each
        // runs on a thread of its own that inherits the CPU priority of the
        // thread that opened it, and one opened later from a low-priority
        // heavy-work thread would make ingest's reads wait behind reports.
        let mut opened = Vec::new();
        for _ in 0..options.max_connections.max(1) {
            opened.push(pool.acquire().await?);
        }
        drop(opened);
        Ok(Self { pool, ids: Arc::default(), health: Arc::default(), turn: writer::WriteTurn::default() })
    }

    /// Copies committed changes from the write-ahead log into the database.
    /// PASSIVE copies what it can without waiting for (or blocking) the
    /// writer; `restart` also waits for readers, so the next writer starts
    /// the log from the top instead of letting it grow. Returns the log's
    /// size in pages before the call.
    pub async fn checkpoint(&self, restart: bool) -> Result<u64, StoreError> {
        let sql = if restart { "PRAGMA wal_checkpoint(RESTART)" } else { "PRAGMA wal_checkpoint(PASSIVE)" };
        let (_busy, log, _copied): (i64, i64, i64) = sqlx::query_as(sql).fetch_one(&self.pool).await?;
        Ok(log.max(0) as u64)
    }

    /// The connection pool, for backend-specific tests and benchmarks.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn all<T: Entity>(&self, ws: WorkspaceId) -> Result<Vec<T>, StoreError> {
        self.all_of(ws, Accounts::All).await
    }

    /// Every record of one kind, of the workspace or of some of its accounts.
    async fn all_of<T: Entity>(&self, ws: WorkspaceId, accounts: Accounts<'_>) -> Result<Vec<T>, StoreError> {
        let only = match accounts {
            Accounts::All => "",
            Accounts::One(_) => " AND a.external_id = ?2",
            Accounts::Between(..) => " AND a.external_id BETWEEN ?2 AND ?3",
            Accounts::List(_) => " AND a.external_id IN (SELECT value FROM json_each(?2))",
        };
        let sql = if T::TABLE == "accounts" {
            format!("SELECT * FROM accounts a WHERE workspace_id = ?1{only} ORDER BY external_id")
        } else if matches!(accounts, Accounts::All) {
            // Every row: scan the table in id order, no sort.
            format!(
                "SELECT t.*, a.external_id AS account_external_id FROM {table} t \
                 JOIN accounts a ON a.id = t.account_id WHERE t.workspace_id = ?1 ORDER BY t.external_id",
                table = T::TABLE
            )
        } else {
            // Some accounts: find them first, then their rows by the account
            // index (CROSS JOIN fixes that order; SQLite would otherwise scan
            // the whole table in id order to skip the sort). The unary `+`
            // keeps SQLite from reading `t` through its (workspace, id) index
            // instead, which visits every row of the workspace for each
            // account: 49 ms instead of 1 ms for one account's touchpoints
            // at 10 000 accounts.
            format!(
                "SELECT t.*, a.external_id AS account_external_id FROM accounts a \
                 CROSS JOIN {table} t ON a.id = t.account_id \
                 WHERE a.workspace_id = ?1 AND +t.workspace_id = ?1{only} ORDER BY t.external_id",
                table = T::TABLE
            )
        };
        // Bulk reads run on the borrowed handle: sqlx hands every row across
        // a channel, which costs more than SQLite's own work.
        let mut conn = self.pool.acquire().await?;
        let mut handle = conn.lock_handle().await?;
        raw::with_connection(handle.as_raw_handle(), |c| {
            let mut stmt = c.prepare(&sql)?;
            let mut rows = match accounts {
                Accounts::All => stmt.query([ws.0])?,
                Accounts::One(a) => stmt.query((ws.0, a.as_str()))?,
                Accounts::Between(first, last) => stmt.query((ws.0, first.as_str(), last.as_str()))?,
                Accounts::List(ids) => {
                    let list: Vec<&str> = ids.iter().map(ExternalId::as_str).collect();
                    stmt.query((ws.0, serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())))?
                }
            };
            let columns: Vec<String> = rows
                .as_ref()
                .map(|s| s.column_names().into_iter().map(str::to_owned).collect())
                .unwrap_or_default();
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(decode_entity::<T>(&R { row, columns: &columns })?);
            }
            Ok::<_, StoreError>(out)
        })
    }
}

/// Whether a failure is the database's condition (a full disk, an I/O
/// error, a lock held too long, no connection) rather than the request's.
pub(crate) fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0) & 0xff;
            unavailable_code(code)
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => false,
    }
}

/// SQLite's primary result codes that say the database cannot write now.
pub(crate) fn unavailable_code(primary: i32) -> bool {
    use libsqlite3_sys as ffi;
    [
        ffi::SQLITE_FULL,
        ffi::SQLITE_IOERR,
        ffi::SQLITE_BUSY,
        ffi::SQLITE_LOCKED,
        ffi::SQLITE_CANTOPEN,
        ffi::SQLITE_NOMEM,
        ffi::SQLITE_READONLY,
    ]
    .contains(&primary)
}

fn decode_entity<T: Entity>(row: &R<'_, '_>) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        table: T::TABLE,
        id: get::<String>(row, "external_id").unwrap_or_default(),
        reason,
    };
    let account = if T::TABLE == "accounts" {
        None
    } else {
        let raw: String = get(row, "account_external_id").map_err(corrupt)?;
        Some(ExternalId::parse(&raw).map_err(|e| corrupt(e.to_string()))?)
    };
    T::decode(row, account).map_err(corrupt)
}

fn decode_api_key(row: &SqliteRow) -> Result<ApiKey, StoreError> {
    let prefix: String = sqlx::Row::try_get(row, "prefix")?;
    let corrupt = |reason: String| StoreError::Corrupt { table: "api_keys", id: prefix.clone(), reason };
    let scopes: String = sqlx_get(row, "scopes").map_err(corrupt)?;
    let revoked: Option<i64> = sqlx_get(row, "revoked_at").map_err(corrupt)?;
    Ok(ApiKey {
        workspace: WorkspaceId(sqlx_get(row, "workspace_id").map_err(corrupt)?),
        workspace_name: sqlx_get(row, "workspace_name").map_err(corrupt)?,
        name: sqlx_get(row, "name").map_err(corrupt)?,
        secret_hash: sqlx_get(row, "secret_hash").map_err(corrupt)?,
        scopes: scopes.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        created_at: from_micros(sqlx_get(row, "created_at").map_err(corrupt)?).map_err(corrupt)?,
        revoked_at: revoked.map(from_micros).transpose().map_err(corrupt)?,
        prefix,
    })
}

fn decode_event(row: &SqliteRow) -> Result<Event, String> {
    let props: Option<String> = sqlx_get(row, "properties")?;
    let properties = match props {
        Some(raw) => serde_json::from_str(&raw).map_err(|e| e.to_string())?,
        None => serde_json::Map::new(),
    };
    let text = |col: &str| sqlx_get::<String>(row, col);
    Ok(Event {
        message_id: MessageId::parse(&text("message_id")?).map_err(|e| e.to_string())?,
        account: ExternalId::parse(&text("account_external_id")?).map_err(|e| e.to_string())?,
        user: UserId::parse(&text("user_external_id")?).map_err(|e| e.to_string())?,
        name: EventName::parse(&text("name")?).map_err(|e| e.to_string())?,
        timestamp: from_micros(sqlx_get(row, "ts")?)?,
        received_at: from_micros(sqlx_get(row, "received_at")?)?,
        properties,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn workspace(&self, name: &str) -> Result<WorkspaceId, StoreError> {
        sqlx::query(
            "INSERT INTO workspaces (name, created_at) VALUES (?, CAST(strftime('%s','now') AS INTEGER)) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .execute(&self.pool)
        .await?;
        let id: i64 = sqlx::query_scalar("SELECT id FROM workspaces WHERE name = ?")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(WorkspaceId(id))
    }

    async fn begin(&self, ws: WorkspaceId) -> Result<Box<dyn WriteTx>, StoreError> {
        let tx = writer::WriteConn::begin(&self.pool, &self.turn, self.health.clone()).await?;
        Ok(Box::new(SqliteTx::new(tx, ws, self.ids.clone())))
    }

    async fn writable(&self, now: keel_core::Timestamp) -> Result<(), StoreError> {
        if !self.health.is_failing() {
            return Ok(());
        }
        let mut tx = writer::WriteConn::begin(&self.pool, &self.turn, self.health.clone()).await?;
        sqlx::query(
            "INSERT INTO write_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
        )
        .bind(rows::micros(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn status(&self, ws: WorkspaceId) -> Result<Status, StoreError> {
        let mut counts = Vec::new();
        for kind in EntityKind::ALL {
            let sql = match kind {
                EntityKind::Events => "SELECT COUNT(*) FROM events e JOIN accounts a ON a.id = e.account_id \
                     WHERE a.workspace_id = ?"
                    .to_owned(),
                other => format!("SELECT COUNT(*) FROM {} WHERE workspace_id = ?", table_of(other)),
            };
            let n: i64 = sqlx::query_scalar(&sql).bind(ws.0).fetch_one(&self.pool).await?;
            counts.push((kind, n as u64));
        }
        let span: (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT MIN(e.ts), MAX(e.ts) FROM events e JOIN accounts a ON a.id = e.account_id WHERE a.workspace_id = ?",
        )
        .bind(ws.0)
        .fetch_one(&self.pool)
        .await?;
        let events_span = match span {
            (Some(lo), Some(hi)) => {
                Some((from_micros(lo).map_err(corrupt_events)?, from_micros(hi).map_err(corrupt_events)?))
            }
            _ => None,
        };
        let contracts_span: (Option<String>, Option<String>) = sqlx::query_as(
            "SELECT MIN(start_on), MAX(COALESCE(end_on, start_on)) FROM contracts WHERE workspace_id = ?",
        )
        .bind(ws.0)
        .fetch_one(&self.pool)
        .await?;
        let last = sqlx::query(
            "SELECT kind, source, finished_at, inserted, updated, unchanged, rejected FROM imports \
             WHERE workspace_id = ? ORDER BY id DESC LIMIT 1",
        )
        .bind(ws.0)
        .fetch_optional(&self.pool)
        .await?;
        let last_import = last
            .map(|row| -> Result<ImportLog, String> {
                let kind: String = sqlx_get(&row, "kind")?;
                let kind = EntityKind::ALL
                    .into_iter()
                    .find(|k| k.as_str() == kind)
                    .ok_or_else(|| format!("unknown kind {kind}"))?;
                let n = |col: &str| sqlx_get::<i64>(&row, col).map(|v| v as u64);
                Ok(ImportLog {
                    kind,
                    source: sqlx_get(&row, "source")?,
                    finished_at: from_micros(sqlx_get(&row, "finished_at")?)?,
                    counts: WriteCounts {
                        inserted: n("inserted")?,
                        updated: n("updated")?,
                        unchanged: n("unchanged")?,
                    },
                    rejected: n("rejected")?,
                })
            })
            .transpose()
            .map_err(|reason| StoreError::Corrupt { table: "imports", id: "last".into(), reason })?;
        Ok(Status {
            counts,
            events_span,
            contracts_span: match contracts_span {
                (Some(a), Some(b)) => Some((a, b)),
                _ => None,
            },
            last_import,
        })
    }

    async fn records(
        &self,
        ws: WorkspaceId,
        accounts: Accounts<'_>,
        kinds: RecordKinds,
    ) -> Result<Snapshot, StoreError> {
        let mut out = Snapshot { accounts: self.all_of(ws, accounts).await?, ..Snapshot::default() };
        if kinds.contracts {
            out.contracts = self.all_of(ws, accounts).await?;
        }
        if kinds.contacts {
            out.contacts = self.all_of(ws, accounts).await?;
        }
        if kinds.tickets {
            out.tickets = self.all_of(ws, accounts).await?;
        }
        if kinds.surveys {
            out.surveys = self.all_of(ws, accounts).await?;
        }
        if kinds.touchpoints {
            out.touchpoints = self.all_of(ws, accounts).await?;
        }
        if kinds.opportunities {
            out.opportunities = self.all_of(ws, accounts).await?;
        }
        Ok(out)
    }

    async fn usage_days(
        &self,
        ws: WorkspaceId,
        accounts: &[ExternalId],
        since: Option<keel_core::Date>,
    ) -> Result<Vec<(ExternalId, Vec<keel_core::DayUsage>)>, StoreError> {
        let since =
            since.map_or(i64::MIN, |d| i64::from(day_number(d.and_time(chrono::NaiveTime::MIN).and_utc())));
        // Millions of rows: read them on the borrowed handle with rusqlite;
        // sqlx hands every row across a channel, which costs more than SQLite.
        let mut conn = self.pool.acquire().await?;
        let mut handle = conn.lock_handle().await?;
        raw::with_connection(handle.as_raw_handle(), |c| {
            let mut out = Vec::with_capacity(accounts.len());
            let mut stmt = c.prepare_cached(
                "SELECT u.day, u.known_day, u.events, u.users, u.names FROM accounts a \
                 JOIN usage_day u ON u.account_id = a.id \
                 WHERE a.workspace_id = ?1 AND a.external_id = ?2 AND u.day >= ?3 ORDER BY u.day, u.known_day",
            )?;
            for account in accounts {
                let mut days = Vec::new();
                let mut rows = stmt.query((ws.0, account.as_str(), since))?;
                while let Some(row) = rows.next()? {
                    let (day, known): (i64, i64) = (row.get(0)?, row.get(1)?);
                    let corrupt = |reason: String| StoreError::Corrupt {
                        table: "usage_day",
                        id: format!("{account}/{day}/{known}"),
                        reason,
                    };
                    let users = row.get_ref(3)?.as_blob().map_err(|e| corrupt(e.to_string()))?;
                    let names = row.get_ref(4)?.as_blob().map_err(|e| corrupt(e.to_string()))?;
                    days.push(keel_core::DayUsage {
                        day: day_from_number(day as i32),
                        known: day_from_number(known as i32),
                        events: row.get::<_, i64>(2)? as u64,
                        users: decode_counts(users).map_err(corrupt)?,
                        names: decode_counts(names).map_err(corrupt)?,
                    });
                }
                if !days.is_empty() {
                    out.push((account.clone(), days));
                }
            }
            Ok::<_, StoreError>(out)
        })
    }

    async fn account_users(
        &self,
        ws: WorkspaceId,
        accounts: &[ExternalId],
    ) -> Result<Vec<(ExternalId, Vec<(u64, String)>)>, StoreError> {
        let mut out: Vec<(ExternalId, Vec<(u64, String)>)> = Vec::with_capacity(accounts.len());
        for chunk in accounts.chunks(500) {
            let mut qb: sqlx::QueryBuilder<'_, sqlx::Sqlite> = sqlx::QueryBuilder::new(
                "SELECT a.external_id, u.id, u.external_id FROM accounts a JOIN users u ON u.account_id = a.id \
                 WHERE a.workspace_id = ",
            );
            qb.push_bind(ws.0).push(" AND a.external_id IN (");
            let mut sep = qb.separated(", ");
            for a in chunk {
                sep.push_bind(a.as_str());
            }
            qb.push(") ORDER BY a.external_id, u.id");
            let rows: Vec<(String, i64, String)> = qb.build_query_as().fetch_all(&self.pool).await?;
            for (account, id, user) in rows {
                match out.last_mut() {
                    Some((a, users)) if a.as_str() == account => users.push((id as u64, user)),
                    _ => {
                        let a = ExternalId::parse(&account).map_err(|e| StoreError::Corrupt {
                            table: "accounts",
                            id: account.clone(),
                            reason: e.to_string(),
                        })?;
                        out.push((a, vec![(id as u64, user)]));
                    }
                }
            }
        }
        Ok(out)
    }

    async fn transitions(
        &self,
        ws: WorkspaceId,
        account: &ExternalId,
    ) -> Result<Vec<crate::TransitionRecord>, StoreError> {
        let rows: Vec<(String, String, String, String, String, String, String, i64)> = sqlx::query_as(
            "SELECT t.product_line, t.on_day, t.from_stage, t.to_stage, t.rule, t.inputs, t.journey_version, \
             t.recorded_at FROM stage_transitions t JOIN accounts a ON a.id = t.account_id \
             WHERE a.workspace_id = ? AND a.external_id = ? ORDER BY t.on_day, t.id",
        )
        .bind(ws.0)
        .bind(account.as_str())
        .fetch_all(&self.pool)
        .await?;
        let some = |s: String| (!s.is_empty()).then_some(s);
        rows.into_iter()
            .map(|(line, on, from, to, rule, inputs, version, at)| {
                let corrupt = |reason: String| StoreError::Corrupt {
                    table: "stage_transitions",
                    id: on.clone(),
                    reason,
                };
                Ok(crate::TransitionRecord {
                    account: account.clone(),
                    product_line: line,
                    on: keel_core::parse_date(&on).map_err(|e| corrupt(e.to_string()))?,
                    from: some(from),
                    to: some(to),
                    rule,
                    inputs,
                    journey_version: version,
                    recorded_at: from_micros(at).map_err(corrupt)?,
                })
            })
            .collect()
    }

    async fn event_names(&self, ws: WorkspaceId) -> Result<Vec<(u64, String)>, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM event_names WHERE workspace_id = ?")
                .bind(ws.0)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(id, name)| (id as u64, name)).collect())
    }

    async fn workspaces(&self) -> Result<Vec<(WorkspaceId, String)>, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM workspaces ORDER BY id").fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(|(id, name)| (WorkspaceId(id), name)).collect())
    }

    async fn account_state(
        &self,
        ws: WorkspaceId,
        account: &ExternalId,
    ) -> Result<Option<crate::StoredState>, StoreError> {
        let row = sqlx::query(
            "SELECT s.evaluated_at, s.as_of, s.journey_version, s.state, s.segment, s.band, s.score, \
             s.stages, s.mrr, s.renewal_date FROM account_state s \
             JOIN accounts a ON a.id = s.account_id WHERE a.workspace_id = ? AND a.external_id = ?",
        )
        .bind(ws.0)
        .bind(account.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let corrupt =
            |reason: String| StoreError::Corrupt { table: "account_state", id: account.to_string(), reason };
        let (at, as_of): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
        Ok(Some(crate::StoredState {
            evaluated_at: from_micros(at).map_err(corrupt)?,
            as_of: keel_core::parse_date(&as_of).map_err(|e| corrupt(e.to_string()))?,
            journey_version: row.try_get(2)?,
            state: row.try_get(3)?,
            summary: accounts::summary(&row, 4).map_err(corrupt)?,
        }))
    }

    async fn book(
        &self,
        ws: WorkspaceId,
        owner: Option<&str>,
        today: keel_core::Date,
    ) -> Result<crate::BookSummary, StoreError> {
        accounts::book(&self.pool, ws, owner, today).await
    }

    async fn list_accounts(
        &self,
        ws: WorkspaceId,
        query: &crate::AccountQuery,
    ) -> Result<crate::AccountPage, StoreError> {
        let (mut page, total) = accounts::list(&self.pool, ws, query).await?;
        let more = page.len() > query.limit as usize;
        page.truncate(query.limit as usize);
        let ids: Vec<ExternalId> = page.iter().map(|r| r.id.clone()).collect();
        let mut found: HashMap<ExternalId, keel_core::Account> = self
            .all_of::<keel_core::Account>(ws, Accounts::List(&ids))
            .await?
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        let next = if more { page.last().map(|r| r.cursor.clone()) } else { None };
        let rows = page
            .into_iter()
            .filter_map(|r| Some(crate::AccountRow { account: found.remove(&r.id)?, evaluated: r.evaluated }))
            .collect();
        Ok(crate::AccountPage { rows, total, next })
    }

    async fn timeline(
        &self,
        ws: WorkspaceId,
        account: &ExternalId,
        limit: u32,
    ) -> Result<Vec<crate::TimelineEntry>, StoreError> {
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT t.at, t.kind, t.detail FROM timeline t JOIN accounts a ON a.id = t.account_id \
             WHERE a.workspace_id = ? AND a.external_id = ? ORDER BY t.at DESC, t.id DESC LIMIT ?",
        )
        .bind(ws.0)
        .bind(account.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(at, kind, detail)| {
                let at = from_micros(at).map_err(|reason| StoreError::Corrupt {
                    table: "timeline",
                    id: account.to_string(),
                    reason,
                })?;
                Ok(crate::TimelineEntry { at, kind, detail })
            })
            .collect()
    }

    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (workspace_id, name, prefix, secret_hash, scopes, created_at, revoked_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(key.workspace.0)
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&key.secret_hash)
        .bind(key.scopes.join(","))
        .bind(rows::micros(key.created_at))
        .bind(key.revoked_at.map(rows::micros))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn held_count(&self, ws: WorkspaceId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM held_messages WHERE workspace_id = ?")
            .bind(ws.0)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn backup(&self, to: &std::path::Path) -> Result<(), StoreError> {
        let to = to.to_str().ok_or_else(|| StoreError::BadUrl {
            url: to.display().to_string(),
            reason: "a backup path must be UTF-8".into(),
        })?;
        // A consistent copy from one read snapshot; writers keep going.
        sqlx::query("VACUUM INTO ?").bind(to).execute(&self.pool).await?;
        Ok(())
    }

    async fn person(&self, ws: WorkspaceId, who: &str) -> Result<Option<crate::PersonData>, StoreError> {
        self.person_data(ws, who).await
    }

    async fn forget_person(
        &self,
        ws: WorkspaceId,
        who: &str,
    ) -> Result<Option<crate::ForgetReport>, StoreError> {
        self.forget(ws, who).await
    }

    async fn put_timelines(
        &self,
        ws: WorkspaceId,
        journey_version: &str,
        writes: &[crate::TimelineWrite],
    ) -> Result<(), StoreError> {
        self.put_timeline_writes(ws, journey_version, writes).await
    }

    async fn timeline_heads(
        &self,
        ws: WorkspaceId,
        journey_version: &str,
        accounts: &[ExternalId],
    ) -> Result<std::collections::HashMap<ExternalId, crate::TimelineHead>, StoreError> {
        self.timeline_heads_of(ws, journey_version, accounts).await
    }

    async fn drop_other_timelines(&self, ws: WorkspaceId, keep: &str) -> Result<u64, StoreError> {
        self.drop_timelines_but(ws, keep).await
    }

    async fn timeline_rows(
        &self,
        ws: WorkspaceId,
        account: &ExternalId,
        journey_version: &str,
        day: Option<keel_core::Date>,
    ) -> Result<Vec<crate::TimelineRow>, StoreError> {
        self.timeline_rows_of(ws, account, journey_version, day).await
    }

    async fn timelines_upto(
        &self,
        ws: WorkspaceId,
        journey_version: &str,
        accounts: &[ExternalId],
        upto: keel_core::Date,
    ) -> Result<std::collections::HashMap<ExternalId, Vec<crate::TimelineRow>>, StoreError> {
        self.timelines_upto_of(ws, journey_version, accounts, upto).await
    }

    async fn withdraw_timelines(
        &self,
        ws: WorkspaceId,
        journey_version: &str,
        accounts: &[ExternalId],
    ) -> Result<(), StoreError> {
        self.withdraw_timelines_of(ws, journey_version, accounts).await
    }

    async fn append_audit(&self, ws: WorkspaceId, e: &crate::AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO admin_audit (workspace_id, at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(ws.0)
        .bind(rows::micros(e.at))
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.subject)
        .bind(&e.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn audit_log(&self, ws: WorkspaceId, limit: u32) -> Result<Vec<crate::AuditEntry>, StoreError> {
        let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
            "SELECT at, actor, action, subject, detail FROM admin_audit WHERE workspace_id = ? \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(ws.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(at, actor, action, subject, detail)| {
                let at = from_micros(at).map_err(|reason| StoreError::Corrupt {
                    table: "admin_audit",
                    id: format!("{action} {subject}"),
                    reason,
                })?;
                Ok(crate::AuditEntry { at, actor, action, subject, detail })
            })
            .collect()
    }

    async fn rejections(
        &self,
        ws: WorkspaceId,
        limit: u32,
    ) -> Result<(Vec<crate::RejectionRow>, Vec<(String, u64)>), StoreError> {
        let rows = sqlx::query(
            "SELECT at, code, reason, message_id, user_id FROM ingest_rejections WHERE workspace_id = ? \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(ws.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let list = rows
            .iter()
            .map(|r| {
                Ok(crate::RejectionRow {
                    at: rows::from_micros(r.try_get("at")?).map_err(|reason| StoreError::Corrupt {
                        table: "ingest_rejections",
                        id: "at".into(),
                        reason,
                    })?,
                    code: r.try_get("code")?,
                    reason: r.try_get("reason")?,
                    message_id: r.try_get("message_id")?,
                    user_id: r.try_get("user_id")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let counts = sqlx::query_as::<_, (String, i64)>(
            "SELECT code, COUNT(*) FROM ingest_rejections WHERE workspace_id = ? GROUP BY code ORDER BY code",
        )
        .bind(ws.0)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|(c, n)| (c, u64::try_from(n).unwrap_or(0)))
        .collect();
        Ok((list, counts))
    }

    async fn api_keys(&self, ws: WorkspaceId) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT k.*, w.name AS workspace_name FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id \
             WHERE k.workspace_id = ? ORDER BY k.id",
        )
        .bind(ws.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_api_key).collect()
    }

    async fn api_key(&self, prefix: &str) -> Result<Option<ApiKey>, StoreError> {
        let row = sqlx::query(
            "SELECT k.*, w.name AS workspace_name FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id \
             WHERE k.prefix = ?",
        )
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(decode_api_key).transpose()
    }

    async fn maintain(&self) -> Result<u64, StoreError> {
        // Past 64 MiB of log, a restarting checkpoint between two write
        // transactions: most of the log is copied by then, so writers wait
        // briefly, and the next one starts the log from the top.
        const RESTART_PAGES: u64 = 16_384;
        let pages = self.checkpoint(false).await?;
        if pages > RESTART_PAGES {
            let _turn = self.turn.lock().await;
            self.checkpoint(true).await?;
        }
        Ok(pages)
    }

    async fn forget_message_ids(
        &self,
        now: keel_core::Timestamp,
        window_days: u32,
        part: u32,
        parts: u32,
    ) -> Result<u64, StoreError> {
        // A slice's deletes hold the write turn, as a transaction would.
        let _turn = self.turn.lock().await;
        let today = i64::from(day_number(now));
        sqlx::query(
            "INSERT OR IGNORE INTO ingest_marks (day, first_event_id) \
             SELECT ?, COALESCE(MAX(id), 0) + 1 FROM events",
        )
        .bind(today)
        .execute(&self.pool)
        .await?;
        let horizon: Option<(i64, i64)> = sqlx::query_as(
            "SELECT day, first_event_id FROM ingest_marks WHERE day <= ? ORDER BY day DESC LIMIT 1",
        )
        .bind(today - i64::from(window_days))
        .fetch_optional(&self.pool)
        .await?;
        let Some((horizon_day, horizon)) = horizon else { return Ok(0) };
        // The key space (all i64 rowids) in `parts` equal slices.
        let parts = u128::from(parts.max(1));
        let span = (1u128 << 64) / parts;
        let lo = (u128::from(part) * span) as i128 + i128::from(i64::MIN);
        let hi = if u128::from(part) + 1 == parts { i128::from(i64::MAX) } else { lo + span as i128 - 1 };
        // A key followed by the next key is (almost surely) the head of a
        // hash-collision chain that later keys are found through: keep it.
        let forgotten = sqlx::query(
            "DELETE FROM event_keys WHERE key BETWEEN ? AND ? AND event_id < ? \
             AND NOT EXISTS (SELECT 1 FROM event_keys n WHERE n.key = event_keys.key + 1)",
        )
        .bind(lo as i64)
        .bind(hi as i64)
        .bind(horizon)
        .execute(&self.pool)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM ingest_marks WHERE day < ?").bind(horizon_day).execute(&self.pool).await?;
        Ok(forgotten)
    }

    async fn tasks(
        &self,
        ws: WorkspaceId,
        query: &crate::TaskQuery,
    ) -> Result<Vec<crate::TaskRow>, StoreError> {
        plays::tasks(&self.pool, ws, query).await
    }

    async fn count_tasks(
        &self,
        ws: WorkspaceId,
        query: &crate::TaskQuery,
        as_of: keel_core::Date,
    ) -> Result<(u64, u64), StoreError> {
        plays::count_tasks(&self.pool, ws, query, as_of).await
    }

    async fn outbox(
        &self,
        ws: WorkspaceId,
        status: Option<&str>,
    ) -> Result<Vec<crate::OutboxRow>, StoreError> {
        plays::outbox(&self.pool, ws, status).await
    }

    async fn deliveries(
        &self,
        ws: WorkspaceId,
        status: Option<&str>,
    ) -> Result<Vec<crate::DeliveryRow>, StoreError> {
        Ok(plays::deliveries(&self.pool, Some(ws), status, None).await?.into_iter().map(|(_, d)| d).collect())
    }

    async fn due_deliveries(
        &self,
        now: keel_core::Timestamp,
        limit: u32,
    ) -> Result<Vec<(WorkspaceId, crate::DeliveryRow)>, StoreError> {
        plays::deliveries(&self.pool, None, Some("pending"), Some((now, limit))).await
    }

    async fn play_runs(
        &self,
        ws: WorkspaceId,
        play: Option<&str>,
        account: Option<&ExternalId>,
    ) -> Result<Vec<crate::PlayRunRow>, StoreError> {
        plays::runs(&self.pool, ws, play, account).await
    }

    async fn play_decisions(
        &self,
        ws: WorkspaceId,
        account: Option<&ExternalId>,
        run_key: Option<&str>,
    ) -> Result<Vec<crate::DecisionRow>, StoreError> {
        plays::decisions(&self.pool, ws, account, run_key).await
    }

    async fn revoke_api_key(
        &self,
        ws: WorkspaceId,
        prefix: &str,
        at: keel_core::Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = ? WHERE workspace_id = ? AND prefix = ? AND revoked_at IS NULL",
        )
        .bind(rows::micros(at))
        .bind(ws.0)
        .bind(prefix)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn upsert_user(&self, user: &crate::UserRow) -> Result<crate::UserRow, StoreError> {
        users::upsert_user(&self.pool, user).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<crate::UserRow>, StoreError> {
        users::user_by_email(&self.pool, email).await
    }

    async fn users(&self, ws: WorkspaceId) -> Result<Vec<crate::UserRow>, StoreError> {
        users::users(&self.pool, ws).await
    }

    async fn create_session(&self, session: &crate::SessionRow) -> Result<(), StoreError> {
        users::create_session(&self.pool, session).await
    }

    async fn session(
        &self,
        token_hash: &[u8],
        now: keel_core::Timestamp,
    ) -> Result<Option<(crate::SessionRow, crate::UserRow)>, StoreError> {
        users::session(&self.pool, token_hash, now).await
    }

    async fn delete_session(&self, token_hash: &[u8], now: keel_core::Timestamp) -> Result<(), StoreError> {
        users::delete_session(&self.pool, token_hash, now).await
    }

    async fn snapshot(&self, ws: WorkspaceId) -> Result<Snapshot, StoreError> {
        let event_rows = sqlx::query(
            "SELECT e.*, a.external_id AS account_external_id, u.external_id AS user_external_id, \
             n.name AS name FROM events e JOIN accounts a ON a.id = e.account_id \
             JOIN users u ON u.id = e.user_id JOIN event_names n ON n.id = e.name_id WHERE a.workspace_id = ? \
             ORDER BY a.external_id, e.ts, e.message_id",
        )
        .bind(ws.0)
        .fetch_all(&self.pool)
        .await?;
        let events = event_rows
            .iter()
            .map(|row| {
                decode_event(row).map_err(|reason| StoreError::Corrupt {
                    table: "events",
                    id: row.try_get::<i64, _>("id").map(|i| i.to_string()).unwrap_or_default(),
                    reason,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Snapshot {
            accounts: self.all(ws).await?,
            contracts: self.all(ws).await?,
            contacts: self.all(ws).await?,
            events,
            tickets: self.all(ws).await?,
            surveys: self.all(ws).await?,
            touchpoints: self.all(ws).await?,
            opportunities: self.all(ws).await?,
        })
    }

    async fn usage(&self, ws: WorkspaceId, account: &ExternalId) -> Result<UsageRollup, StoreError> {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM accounts WHERE workspace_id = ? AND external_id = ?")
                .bind(ws.0)
                .bind(account.as_str())
                .fetch_optional(&self.pool)
                .await?;
        let id = id.ok_or_else(|| StoreError::UnknownAccount(account.to_string()))?;
        let rows: Vec<(i64, i64, Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT day, known_day, users, names FROM usage_day WHERE account_id = ? ORDER BY day, known_day",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let users: HashMap<i64, String> =
            sqlx::query_as("SELECT id, external_id FROM users WHERE account_id = ?")
                .bind(id)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .collect();
        let names: HashMap<i64, String> =
            sqlx::query_as("SELECT id, name FROM event_names WHERE workspace_id = ?")
                .bind(ws.0)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .collect();
        let lookup = |map: &HashMap<i64, String>, key: u64, what: &str| {
            map.get(&(key as i64)).cloned().ok_or_else(|| format!("unknown {what} id {key}"))
        };
        let mut rollup = UsageRollup::default();
        for (day, known_day, user_counts, name_counts) in &rows {
            let corrupt = |reason| StoreError::Corrupt {
                table: "usage_day",
                id: format!("{id}/{day}/{known_day}"),
                reason,
            };
            let (day, known_day) = (*day as i32, *known_day as i32);
            for (user, events) in decode_counts(user_counts).map_err(corrupt)? {
                let user = lookup(&users, user, "user").map_err(corrupt)?;
                rollup.users.push(UserDay { day, user, known_day, events: events as i64 });
            }
            for (name, events) in decode_counts(name_counts).map_err(corrupt)? {
                let name = lookup(&names, name, "event name").map_err(corrupt)?;
                rollup.events.push(EventDay { day, name, known_day, events: events as i64 });
            }
        }
        rollup.users.sort();
        rollup.events.sort();
        Ok(rollup)
    }
}

fn corrupt_events(reason: String) -> StoreError {
    StoreError::Corrupt { table: "events", id: "span".into(), reason }
}

pub(crate) fn table_of(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Accounts => "accounts",
        EntityKind::Contracts => "contracts",
        EntityKind::Contacts => "contacts",
        EntityKind::Events => "events",
        EntityKind::Tickets => "tickets",
        EntityKind::Surveys => "surveys",
        EntityKind::Touchpoints => "touchpoints",
        EntityKind::Opportunities => "opportunities",
    }
}
