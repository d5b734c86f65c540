//! Where Keel keeps what it knows: the [`Store`] trait and its backends.
//!
//! A store holds workspaces, and in each workspace the eight record kinds of
//! `keel-core`. All writes go through a [`WriteTx`], one database
//! transaction: an import either commits whole or leaves the store as it was.
//! Upserts are keyed by external id and compare a content hash first, so
//! writing a record that is already stored changes nothing (and costs no
//! write). Events are appended, deduplicated by message id, and folded into
//! per-day usage rollups in the same transaction, so evaluation never rescans
//! raw events.
//!
//! ```no_run
//! # async fn demo() -> Result<(), keel_store::StoreError> {
//! use keel_store::{open, DbUrl};
//!
//! let store = open(&DbUrl::parse("keel.db")?).await?;
//! let ws = store.workspace("default").await?;
//! let mut tx = store.begin(ws).await?;
//! // tx.upsert_accounts(...), tx.append_events(...)
//! tx.commit().await?;
//! println!("{:?}", store.status(ws).await?);
//! # Ok(()) }
//! ```
//!
//! The SQLite backend is the embedded default. Its schema lives in
//! `migrations/sqlite`, applied on open.

mod hash;
mod held;
mod plays;
mod privacy;
mod rejections;
mod rollup;
mod sqlite;
mod users;

use std::collections::HashSet;
use std::fmt;

use async_trait::async_trait;
use keel_core::{
    Account, Contact, Contract, EntityKind, Event, ExternalId, Opportunity, SurveyResponse, Ticket,
    Timestamp, Touchpoint, UserId,
};
use serde::Serialize;

pub use hash::content_hash;
pub use held::{HeldMessage, MAX_HELD};
pub use plays::{DecisionRow, DeliveryRow, OutboxRow, PlayRunRow, PlayState, TaskQuery, TaskRow};
pub use privacy::{AuditEntry, FORGOTTEN, ForgetReport, PersonData};
pub use rejections::{KEPT_REJECTIONS, RejectionRow};
pub use rollup::{EventDay, UsageRollup, UserDay, day_from_number, day_number};
pub use sqlite::{SqliteOptions, SqliteStore, restore_file};
pub use users::{SessionRow, UserRow};

/// A workspace's internal id. Every query is scoped to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct WorkspaceId(pub i64);

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL could not be understood.
    #[error("database url {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// A record refers to an account the workspace does not hold.
    #[error("unknown account {0:?}")]
    UnknownAccount(String),
    /// The write conflicts with what another workspace holds.
    #[error("{0}")]
    Conflict(String),
    /// Stored data could not be read back into a record.
    #[error("corrupt {table} row {id}: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's id.
        id: String,
        /// What did not parse.
        reason: String,
    },
    /// A record could not be encoded for storage (nothing was written).
    #[error("cannot encode {table} row {id}: {reason}")]
    Unencodable {
        /// The table.
        table: &'static str,
        /// The row's id.
        id: String,
        /// What did not encode.
        reason: String,
    },
    /// The database backend failed (an I/O error, a full disk, a refused
    /// statement, a schema that would not apply). Opaque: callers ask
    /// [`StoreError::is_unavailable`] rather than look at the backend's error.
    #[error("database: {0}")]
    Backend(BackendError),
}

/// A failure of the database backend, whatever the backend is. Its text is
/// the backend's message; whether it is the database's condition (rather
/// than the request's) is decided when it is made.
#[derive(Debug)]
pub struct BackendError {
    source: Box<dyn std::error::Error + Send + Sync>,
    unavailable: bool,
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let unavailable = sqlite::is_unavailable(&e);
        Self::Backend(BackendError { source: Box::new(e), unavailable })
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        let unavailable = match &e {
            sqlx::migrate::MigrateError::Execute(inner) => sqlite::is_unavailable(inner),
            _ => false,
        };
        Self::Backend(BackendError { source: Box::new(e), unavailable })
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let unavailable = match &e {
            rusqlite::Error::SqliteFailure(code, _) => sqlite::unavailable_code(code.extended_code & 0xff),
            _ => false,
        };
        Self::Backend(BackendError { source: Box::new(e), unavailable })
    }
}

impl StoreError {
    /// Whether the failure is the database's condition (a full disk, an I/O
    /// error, a lock held too long, no connection) rather than the
    /// request's: the same request may succeed later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Backend(BackendError { unavailable: true, .. }))
    }
}

/// Which database to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// An SQLite file (created if missing).
    Sqlite(String),
}

impl DbUrl {
    /// Reads `sqlite://path`, `sqlite:path` or a bare file path.
    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        let bad = |reason: &str| StoreError::BadUrl { url: raw.to_owned(), reason: reason.to_owned() };
        if let Some(path) = raw.strip_prefix("sqlite://").or_else(|| raw.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(bad("no file path after sqlite:"));
            }
            return Ok(Self::Sqlite(path.to_owned()));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Err(bad("PostgreSQL is not supported by this build yet; use an SQLite file"));
        }
        if raw.contains("://") {
            return Err(bad("unknown scheme; use sqlite://FILE or a file path"));
        }
        if raw.is_empty() {
            return Err(bad("empty"));
        }
        Ok(Self::Sqlite(raw.to_owned()))
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbUrl::Sqlite(path) => write!(f, "sqlite://{path}"),
        }
    }
}

/// Opens (and migrates) the store a URL names.
pub async fn open(url: &DbUrl) -> Result<Box<dyn Store>, StoreError> {
    open_with(url, true).await
}

/// Opens (and migrates) the store a URL names; `auto_checkpoint: false` for
/// a server that calls [`Store::maintain`] from a background task.
pub async fn open_with(url: &DbUrl, auto_checkpoint: bool) -> Result<Box<dyn Store>, StoreError> {
    match url {
        DbUrl::Sqlite(path) => {
            let options = SqliteOptions { auto_checkpoint, ..SqliteOptions::default() };
            Ok(Box::new(SqliteStore::open(path, options).await?))
        }
    }
}

/// How a batch of upserts or appends went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WriteCounts {
    /// Records that were new.
    pub inserted: u64,
    /// Records that existed with other content and were replaced.
    pub updated: u64,
    /// Records already stored exactly so (for events: duplicate message ids).
    pub unchanged: u64,
}

impl WriteCounts {
    /// Adds another batch's counts.
    pub fn add(&mut self, other: WriteCounts) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
    }
}

/// The outcome of appending events: counts, and which positions of the
/// batch were duplicates (of stored events or of earlier ones in the batch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Inserted and duplicate counts (`updated` is always 0).
    pub counts: WriteCounts,
    /// Indexes into the batch of the events that were duplicates.
    pub duplicates: Vec<usize>,
}

/// One finished import, as `keel status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportLog {
    /// What was imported.
    pub kind: EntityKind,
    /// The file (or other source) it came from.
    pub source: String,
    /// When it finished.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub finished_at: Timestamp,
    /// Counts of the written rows.
    pub counts: WriteCounts,
    /// Rows rejected as invalid.
    pub rejected: u64,
}

/// What a workspace holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Records per kind, in [`EntityKind::ALL`] order.
    pub counts: Vec<(EntityKind, u64)>,
    /// The earliest and latest event timestamps.
    pub events_span: Option<(Timestamp, Timestamp)>,
    /// The earliest contract start and the latest contract end.
    pub contracts_span: Option<(String, String)>,
    /// The most recent import.
    pub last_import: Option<ImportLog>,
}

/// Everything a workspace holds, each kind sorted by id (events by account,
/// timestamp and message id). Two stores with equal snapshots hold the same
/// data, whatever order it arrived in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Accounts.
    pub accounts: Vec<Account>,
    /// Contracts.
    pub contracts: Vec<Contract>,
    /// Contacts.
    pub contacts: Vec<Contact>,
    /// Events.
    pub events: Vec<Event>,
    /// Tickets.
    pub tickets: Vec<Ticket>,
    /// Survey responses.
    pub surveys: Vec<SurveyResponse>,
    /// Touchpoints.
    pub touchpoints: Vec<Touchpoint>,
    /// Opportunities.
    pub opportunities: Vec<Opportunity>,
}

/// A stored API key: everything but its secret, of which only a hash is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// The workspace it belongs to.
    pub workspace: WorkspaceId,
    /// That workspace's name.
    pub workspace_name: String,
    /// A name to recognise it by.
    pub name: String,
    /// The key's first characters: shown in listings, finds the key.
    pub prefix: String,
    /// Hash of the whole key.
    #[serde(skip)]
    pub secret_hash: Vec<u8>,
    /// What it may do (`ingest`, `read`, `admin`).
    pub scopes: Vec<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// What the account list filters and sorts on, taken from an evaluated
/// state when it is stored.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct StateSummary {
    /// The segment the account fell in.
    pub segment: Option<String>,
    /// The health band.
    pub band: Option<String>,
    /// The health score.
    pub score: Option<f64>,
    /// Per product line, its stage (None: the line ended).
    pub stages: Vec<(String, Option<String>)>,
    /// MRR of the active contract lines.
    pub mrr: Option<f64>,
    /// When the active contract ends.
    pub renewal: Option<keel_core::Date>,
}

/// An account's latest evaluated state, as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredState {
    /// When Keel evaluated it.
    pub evaluated_at: Timestamp,
    /// The date it was evaluated as of.
    pub as_of: keel_core::Date,
    /// The journey version it ran under.
    pub journey_version: String,
    /// The engine's state, as JSON.
    pub state: String,
    /// The columns the account list reads.
    pub summary: StateSummary,
}

/// What the account list is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountSort {
    /// External id.
    #[default]
    Id,
    /// Display name.
    Name,
    /// Owner.
    Owner,
    /// MRR of the active lines.
    Mrr,
    /// Renewal date.
    Renewal,
    /// Health score.
    Score,
}

impl AccountSort {
    /// Every order, by name.
    pub const ALL: [(&'static str, AccountSort); 6] = [
        ("id", AccountSort::Id),
        ("name", AccountSort::Name),
        ("owner", AccountSort::Owner),
        ("mrr", AccountSort::Mrr),
        ("renewal", AccountSort::Renewal),
        ("score", AccountSort::Score),
    ];
}

/// Where a page of the account list ends: the last row's sort key. Accounts
/// without a value sort last in either direction.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct AccountCursor {
    /// Whether the last row had a value (ascending: 0 had one; descending: 1 had one).
    pub flag: i64,
    /// Its value (text or number; 0 or "" when it had none).
    pub value: serde_json::Value,
    /// Its external id.
    pub id: String,
}

/// A filtered, sorted page of a workspace's accounts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountQuery {
    /// Segment id.
    pub segment: Option<String>,
    /// A stage of any product line, or `line:stage`.
    pub stage: Option<String>,
    /// Health band.
    pub band: Option<String>,
    /// Owner, exactly.
    pub owner: Option<String>,
    /// Renewal on or after this date.
    pub renewal_from: Option<keel_core::Date>,
    /// Renewal on or before this date.
    pub renewal_to: Option<keel_core::Date>,
    /// Text that the name or id contains (case-insensitive).
    pub search: Option<String>,
    /// The order.
    pub sort: AccountSort,
    /// Largest first.
    pub descending: bool,
    /// Rows per page.
    pub limit: u32,
    /// Continue after this row.
    pub after: Option<AccountCursor>,
}

/// One row of the account list.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRow {
    /// The account.
    pub account: Account,
    /// When it was last evaluated, and what the list reads of that state.
    pub evaluated: Option<(Timestamp, StateSummary)>,
}

/// A book of accounts by health band, as the portfolio page shows it
/// ([`Store::book`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BookSummary {
    /// Accounts with no stored state yet.
    pub not_evaluated: u64,
    /// Evaluated accounts without MRR in force (churned, or not started).
    pub former: u64,
    /// The accounts with MRR in force, per band.
    pub bands: Vec<BookBand>,
}

/// The accounts of one health band with MRR in force.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BookBand {
    /// The band (None: no band).
    pub band: Option<String>,
    /// Accounts.
    pub accounts: u64,
    /// Their MRR.
    pub mrr: f64,
    /// Of those, the ones renewing on or after the day and at most 90 days
    /// after it, and their MRR.
    pub renewing_90: (u64, f64),
    /// The same within 180 days.
    pub renewing_180: (u64, f64),
}

/// A page of the account list.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountPage {
    /// The rows.
    pub rows: Vec<AccountRow>,
    /// Rows matching the filter, on all pages.
    pub total: u64,
    /// Where the next page starts (None: this is the last page).
    pub next: Option<AccountCursor>,
}

/// One entry of an account's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// When Keel saw the change.
    pub at: Timestamp,
    /// `stage_changed`, `band_changed`, `moment_started` or `moment_ended`.
    pub kind: String,
    /// What changed, as JSON.
    pub detail: String,
}

/// Which accounts [`Store::records`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accounts<'a> {
    /// All of the workspace's.
    All,
    /// This one.
    One(&'a ExternalId),
    /// Those whose external id sorts (byte-wise, as `ExternalId` does) from
    /// the first to the second, both included: a chunk of the sorted list.
    Between(&'a ExternalId, &'a ExternalId),
    /// These.
    List(&'a [ExternalId]),
}

/// Which kinds of records [`Store::records`] reads besides the accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecordKinds {
    /// Contracts.
    pub contracts: bool,
    /// Contacts.
    pub contacts: bool,
    /// Tickets.
    pub tickets: bool,
    /// Survey responses.
    pub surveys: bool,
    /// Touchpoints.
    pub touchpoints: bool,
    /// Opportunities.
    pub opportunities: bool,
}

impl RecordKinds {
    /// Every kind.
    pub const ALL: Self = Self {
        contracts: true,
        contacts: true,
        tickets: true,
        surveys: true,
        touchpoints: true,
        opportunities: true,
    };
}

/// A stage change as evaluation found it, for the lineage table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRecord {
    /// The account.
    pub account: ExternalId,
    /// The product line.
    pub product_line: String,
    /// The day of the change.
    pub on: keel_core::Date,
    /// The stage left (None: the line started).
    pub from: Option<String>,
    /// The stage entered (None: the line ended).
    pub to: Option<String>,
    /// The rule that moved it, in words.
    pub rule: String,
    /// The values the rule read, as a JSON object.
    pub inputs: String,
    /// The journey version (a hash of the journey file).
    pub journey_version: String,
    /// When it was recorded.
    pub recorded_at: keel_core::Timestamp,
}

/// A store of workspaces. Backends implement it; callers hold a `dyn Store`.
#[async_trait]
pub trait Store: Send + Sync {
    /// The id of the workspace with this name, created if missing.
    async fn workspace(&self, name: &str) -> Result<WorkspaceId, StoreError>;

    /// Starts a write transaction in a workspace. Dropping it without
    /// [`WriteTx::commit`] rolls it back.
    async fn begin(&self, ws: WorkspaceId) -> Result<Box<dyn WriteTx>, StoreError>;

    /// Whether the store can write now. Answers at once while its writes
    /// succeed; after one failed for want of the disk (full, I/O error,
    /// locked too long), tries a small write of its own (stamped `now`), so
    /// that readiness comes back by itself once the cause is gone.
    async fn writable(&self, now: Timestamp) -> Result<(), StoreError>;

    /// Counts, date ranges and the last import.
    async fn status(&self, ws: WorkspaceId) -> Result<Status, StoreError>;

    /// Every record of the workspace.
    async fn snapshot(&self, ws: WorkspaceId) -> Result<Snapshot, StoreError>;

    /// The usage rollups of one account, sorted by key.
    async fn usage(&self, ws: WorkspaceId, account: &ExternalId) -> Result<UsageRollup, StoreError>;

    /// The accounts of the workspace — or one of them — with the records of
    /// the kinds asked for; never raw events (what evaluation reads besides
    /// usage).
    async fn records(
        &self,
        ws: WorkspaceId,
        accounts: Accounts<'_>,
        kinds: RecordKinds,
    ) -> Result<Snapshot, StoreError>;

    /// The usage days of these accounts, sorted by (day, known day) per
    /// account; only days on or after `since` when given.
    async fn usage_days(
        &self,
        ws: WorkspaceId,
        accounts: &[ExternalId],
        since: Option<keel_core::Date>,
    ) -> Result<Vec<(ExternalId, Vec<keel_core::DayUsage>)>, StoreError>;

    /// Per account: user ids (as `DayUsage::users` uses them) and external user ids.
    async fn account_users(
        &self,
        ws: WorkspaceId,
        accounts: &[ExternalId],
    ) -> Result<Vec<(ExternalId, Vec<(u64, String)>)>, StoreError>;

    /// The recorded stage changes of one account, oldest first.
    async fn transitions(
        &self,
        ws: WorkspaceId,
        account: &ExternalId,
    ) -> Result<Vec<TransitionRecord>, StoreError>;

    /// Event name ids (as `DayUsage::names` uses them) and names.
    async fn event_names(&self, ws: WorkspaceId) -> Result<Vec<(u64, String)>, StoreError>;

    /// The workspaces, by id.
    async fn workspaces(&self) -> Result<Vec<(WorkspaceId, String)>, StoreError>;

    /// An account's latest evaluated state, if it was evaluated.
    async fn account_state(
        &self,
        ws: WorkspaceId,
        account: &ExternalId,
    ) -> Result<Option<StoredState>, StoreError>;

    /// A filtered, sorted page of the workspace's accounts.
    async fn list_accounts(&self, ws: WorkspaceId, query: &AccountQuery) -> Result<AccountPage, StoreError>;

    /// The accounts of one owner (all when `None`) by stored health band,
    /// with renewals ahead of `today`, counted by the database.
    async fn book(
        &self,
        ws: WorkspaceId,
        owner: Option<&str>,
        today: keel_core::Date,
    ) -> Result<BookSummary, StoreError>;

    /// An account's timeline, newest first, at most `limit` entries.
    async fn timeline(
        &self,
        ws: WorkspaceId,
        account: &ExternalId,
        limit: u32,
    ) -> Result<Vec<TimelineEntry>, StoreError>;

    /// The backend's housekeeping, which a server calls every few hundred
    /// milliseconds so that no request pays for it inside a commit: for
    /// SQLite, copying the write-ahead log into the database (and, once the
    /// log is large, between two write transactions, starting it over);
    /// a no-op where the backend has nothing to do. Returns the size of the
    /// backend's log in pages before the call (0 without one).
    async fn maintain(&self) -> Result<u64, StoreError>;

    /// Deduplication's window: marks the day `now` falls on (the events
    /// stored from then on arrived on or after it), then forgets the message
    /// ids of events stored before the mark of the day `window_days` before
    /// `now` — in part `part` of `parts` slices of the key space, so that
    /// each call holds the write lock briefly. Returns how many ids it forgot.
    /// A forgotten message id is accepted again if resent; the events stay.
    async fn forget_message_ids(
        &self,
        now: Timestamp,
        window_days: u32,
        part: u32,
        parts: u32,
    ) -> Result<u64, StoreError>;

    /// Tasks, overdue first then by due day.
    async fn tasks(&self, ws: WorkspaceId, query: &TaskQuery) -> Result<Vec<TaskRow>, StoreError>;

    /// How many tasks match (the query's limit aside), and how many of
    /// those are open or snoozed and due before `as_of`.
    async fn count_tasks(
        &self,
        ws: WorkspaceId,
        query: &TaskQuery,
        as_of: keel_core::Date,
    ) -> Result<(u64, u64), StoreError>;

    /// Outbox entries with this status (None: all), oldest first.
    async fn outbox(&self, ws: WorkspaceId, status: Option<&str>) -> Result<Vec<OutboxRow>, StoreError>;

    /// Deliveries with this status (None: all), oldest first.
    async fn deliveries(&self, ws: WorkspaceId, status: Option<&str>)
    -> Result<Vec<DeliveryRow>, StoreError>;

    /// Pending deliveries of any workspace due at `now`, oldest first.
    async fn due_deliveries(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(WorkspaceId, DeliveryRow)>, StoreError>;

    /// Play runs, of one play and/or one account.
    async fn play_runs(
        &self,
        ws: WorkspaceId,
        play: Option<&str>,
        account: Option<&ExternalId>,
    ) -> Result<Vec<PlayRunRow>, StoreError>;

    /// The play audit log, of one account and/or one run, oldest first.
    async fn play_decisions(
        &self,
        ws: WorkspaceId,
        account: Option<&ExternalId>,
        run_key: Option<&str>,
    ) -> Result<Vec<DecisionRow>, StoreError>;

    /// The workspace's refused ingest messages, newest first, at most `limit`,
    /// with how many of each code it keeps.
    async fn rejections(
        &self,
        ws: WorkspaceId,
        limit: u32,
    ) -> Result<(Vec<RejectionRow>, Vec<(String, u64)>), StoreError>;

    /// How many messages the workspace holds for users not in an account yet.
    async fn held_count(&self, ws: WorkspaceId) -> Result<u64, StoreError>;

    /// Writes a consistent copy of the whole database to `to` (a file that
    /// must not exist) while other connections keep reading and writing.
    async fn backup(&self, to: &std::path::Path) -> Result<(), StoreError>;

    /// Everything the workspace holds about one person, by contact id,
    /// product user id or email (`None`: nobody by that name).
    async fn person(&self, ws: WorkspaceId, who: &str) -> Result<Option<PersonData>, StoreError>;

    /// Removes a person's personal data (by contact id, product user id or
    /// email) from everywhere the workspace stored it, keeping anonymous
    /// aggregates: contacts deleted; their events kept under a random
    /// pseudonym without properties; survey comments, held messages and
    /// sessions removed; their email and name replaced by [`FORGOTTEN`] in
    /// tasks, sends, deliveries, play records, notes and states. The file is
    /// rebuilt so no deleted bytes remain. `None`: nobody by that name.
    async fn forget_person(&self, ws: WorkspaceId, who: &str) -> Result<Option<ForgetReport>, StoreError>;

    /// Replaces accounts' timelines under a journey version, each from its
    /// `from` on (all of it when `None`) with its rows (in day order, all
    /// on or after `from`), and sets how far each is kept (its head), in
    /// one transaction. Unknown accounts are refused and nothing is written.
    async fn put_timelines(
        &self,
        ws: WorkspaceId,
        journey_version: &str,
        writes: &[TimelineWrite],
    ) -> Result<(), StoreError>;

    /// The heads of accounts' timelines under a journey version (accounts
    /// without one are left out).
    async fn timeline_heads(
        &self,
        ws: WorkspaceId,
        journey_version: &str,
        accounts: &[ExternalId],
    ) -> Result<std::collections::HashMap<ExternalId, TimelineHead>, StoreError>;

    /// Deletes every timeline row and head of the workspace kept under
    /// another journey version than `keep`; answers how many rows went.
    async fn drop_other_timelines(&self, ws: WorkspaceId, keep: &str) -> Result<u64, StoreError>;

    /// An account's timeline rows under a journey version needed to read
    /// the facts on `day` (from the last checkpoint at or before it up to
    /// it), or every row when `day` is `None`; in day order.
    async fn timeline_rows(
        &self,
        ws: WorkspaceId,
        account: &ExternalId,
        journey_version: &str,
        day: Option<keel_core::Date>,
    ) -> Result<Vec<TimelineRow>, StoreError>;

    /// Accounts' timeline rows under a journey version up to `upto` (every
    /// row on or before it), each account's in day order; accounts without
    /// rows are left out.
    async fn timelines_upto(
        &self,
        ws: WorkspaceId,
        journey_version: &str,
        accounts: &[ExternalId],
        upto: keel_core::Date,
    ) -> Result<std::collections::HashMap<ExternalId, Vec<TimelineRow>>, StoreError>;

    /// Withdraws accounts' heads under a journey version: their rows no
    /// longer count as concluded (a restatement is being re-derived), and
    /// readers evaluate them instead until they are written again.
    async fn withdraw_timelines(
        &self,
        ws: WorkspaceId,
        journey_version: &str,
        accounts: &[ExternalId],
    ) -> Result<(), StoreError>;

    /// Appends an admin action to the workspace's audit log (which nothing
    /// can change or shorten).
    async fn append_audit(&self, ws: WorkspaceId, entry: &AuditEntry) -> Result<(), StoreError>;

    /// The workspace's admin audit log, newest first, at most `limit`.
    async fn audit_log(&self, ws: WorkspaceId, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;

    /// Stores a new API key of a workspace (its prefix must be unique).
    async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;

    /// The workspace's API keys, revoked ones included, oldest first.
    async fn api_keys(&self, ws: WorkspaceId) -> Result<Vec<ApiKey>, StoreError>;

    /// The API key with this prefix, in any workspace.
    async fn api_key(&self, prefix: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Revokes a key of the workspace; false when it has no such key or the
    /// key was revoked already.
    async fn revoke_api_key(&self, ws: WorkspaceId, prefix: &str, at: Timestamp) -> Result<bool, StoreError>;

    /// Adds a dashboard user, or updates the name, role and password of the
    /// one with this email (in the same workspace; another workspace's
    /// email is refused). Returns the stored user.
    async fn upsert_user(&self, user: &UserRow) -> Result<UserRow, StoreError>;

    /// The user with this email, in any workspace.
    async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError>;

    /// The workspace's users, by email.
    async fn users(&self, ws: WorkspaceId) -> Result<Vec<UserRow>, StoreError>;

    /// Stores a new session.
    async fn create_session(&self, session: &SessionRow) -> Result<(), StoreError>;

    /// The session with this token hash and its user, if it has not expired
    /// at `now` and the user is not disabled.
    async fn session(
        &self,
        token_hash: &[u8],
        now: Timestamp,
    ) -> Result<Option<(SessionRow, UserRow)>, StoreError>;

    /// Ends a session (signing out); expired ones of any user go too.
    async fn delete_session(&self, token_hash: &[u8], now: Timestamp) -> Result<(), StoreError>;
}

/// One write transaction in one workspace.
#[async_trait]
pub trait WriteTx: Send {
    /// The external ids of the workspace's accounts, including those
    /// upserted earlier in this transaction.
    async fn account_ids(&mut self) -> Result<HashSet<ExternalId>, StoreError>;

    /// Those of `ids` the workspace does not hold (counting accounts
    /// upserted earlier in this transaction).
    async fn missing_accounts(&mut self, ids: &[ExternalId]) -> Result<Vec<ExternalId>, StoreError>;

    /// The contact with this external id, as stored (or upserted earlier in
    /// this transaction).
    async fn contact(&mut self, id: &ExternalId) -> Result<Option<Contact>, StoreError>;

    /// Inserts or replaces accounts by external id.
    async fn upsert_accounts(&mut self, rows: &[Account]) -> Result<WriteCounts, StoreError>;
    /// Inserts or replaces contracts by external id.
    async fn upsert_contracts(&mut self, rows: &[Contract]) -> Result<WriteCounts, StoreError>;
    /// Inserts or replaces contacts by external id.
    async fn upsert_contacts(&mut self, rows: &[Contact]) -> Result<WriteCounts, StoreError>;
    /// Inserts or replaces tickets by external id.
    async fn upsert_tickets(&mut self, rows: &[Ticket]) -> Result<WriteCounts, StoreError>;
    /// Inserts or replaces survey responses by external id.
    async fn upsert_surveys(&mut self, rows: &[SurveyResponse]) -> Result<WriteCounts, StoreError>;
    /// Inserts or replaces touchpoints by external id.
    async fn upsert_touchpoints(&mut self, rows: &[Touchpoint]) -> Result<WriteCounts, StoreError>;
    /// Inserts or replaces opportunities by external id.
    async fn upsert_opportunities(&mut self, rows: &[Opportunity]) -> Result<WriteCounts, StoreError>;

    /// Appends events whose message id is new to the workspace and folds
    /// them into the usage rollups; reports the rest as duplicates.
    async fn append_events(&mut self, rows: &[Event]) -> Result<AppendOutcome, StoreError>;

    /// Records a finished import for `keel status`.
    async fn record_import(&mut self, log: &ImportLog) -> Result<(), StoreError>;

    /// Makes a user a member of an account from `at` on (a Segment `group`
    /// call). False when the membership already held (a retry).
    async fn join_account(
        &mut self,
        user: &UserId,
        account: &ExternalId,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Ends a user's membership of an account at `at` (Keel's `ungroup`
    /// extension). False when there was no open membership.
    async fn leave_account(
        &mut self,
        user: &UserId,
        account: &ExternalId,
        at: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Per (user, time): the account the user belonged to then — the latest
    /// membership that held at that time, else the user's latest one.
    async fn account_of_users(
        &mut self,
        asks: &[(UserId, Timestamp)],
    ) -> Result<Vec<Option<ExternalId>>, StoreError>;

    /// Replaces accounts' evaluated states and appends their timeline entries.
    async fn put_account_states(
        &mut self,
        states: &[(ExternalId, StoredState, Vec<TimelineEntry>)],
    ) -> Result<(), StoreError>;

    /// Keeps refused ingest messages (the workspace keeps its latest
    /// [`KEPT_REJECTIONS`]).
    async fn record_rejections(&mut self, rows: &[RejectionRow]) -> Result<(), StoreError>;

    /// Holds messages of users who belong to no account yet; `true` for each
    /// newly held, `false` for one whose message id is held already.
    async fn hold_messages(&mut self, rows: &[HeldMessage]) -> Result<Vec<bool>, StoreError>;

    /// How many messages the workspace holds.
    async fn held_messages(&mut self) -> Result<u64, StoreError>;

    /// Takes (returns and forgets) the held messages of `users`, in the
    /// order they were held.
    async fn take_held(&mut self, users: &[UserId]) -> Result<Vec<HeldMessage>, StoreError>;

    /// Records stage changes; ones already recorded (same account, line, day,
    /// stage and journey version) are skipped. Returns how many were new.
    async fn record_transitions(&mut self, rows: &[TransitionRecord]) -> Result<u64, StoreError>;

    /// What play evaluation needs of an account: its trigger memo, open
    /// runs, the latest start of each play, and its customer-facing touches
    /// on or after `since`.
    async fn play_state(
        &mut self,
        account: &ExternalId,
        since: keel_core::Date,
    ) -> Result<PlayState, StoreError>;

    /// Replaces an account's trigger memo.
    async fn put_play_memo(
        &mut self,
        account: &ExternalId,
        as_of: keel_core::Date,
        holding: &str,
    ) -> Result<(), StoreError>;

    /// Inserts a run. False when a run with its key exists, or (for an open
    /// run) when the account already has an open run of the play: the
    /// occurrence started nothing, and the caller drops its effects.
    async fn insert_play_run(&mut self, run: &PlayRunRow) -> Result<bool, StoreError>;

    /// Updates a stored run (by key).
    async fn update_play_run(&mut self, run: &PlayRunRow) -> Result<(), StoreError>;

    /// One run by key.
    async fn play_run(&mut self, key: &str) -> Result<Option<PlayRunRow>, StoreError>;

    /// Appends to the play audit log.
    async fn append_play_decisions(&mut self, rows: &[DecisionRow]) -> Result<(), StoreError>;

    /// Creates a task; None when the run's step already created one (a retry).
    async fn insert_task(&mut self, task: &TaskRow) -> Result<Option<i64>, StoreError>;

    /// One task by id.
    async fn task(&mut self, id: i64) -> Result<Option<TaskRow>, StoreError>;

    /// Writes a task's status, snooze and outcome (by id).
    async fn update_task(&mut self, task: &TaskRow) -> Result<(), StoreError>;

    /// Puts a send in the approval outbox; None when the step is there already.
    async fn insert_outbox(&mut self, row: &OutboxRow) -> Result<Option<i64>, StoreError>;

    /// One outbox entry by id.
    async fn outbox_entry(&mut self, id: i64) -> Result<Option<OutboxRow>, StoreError>;

    /// Records a decision on a pending outbox entry; false when it was not pending.
    async fn decide_outbox(&mut self, row: &OutboxRow) -> Result<bool, StoreError>;

    /// Queues a delivery; None when the step queued one already.
    async fn queue_delivery(&mut self, row: &DeliveryRow) -> Result<Option<i64>, StoreError>;

    /// Writes a delivery's status, attempts and error (by id).
    async fn update_delivery(&mut self, row: &DeliveryRow) -> Result<(), StoreError>;

    /// Makes everything written durable.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;

    /// Discards everything written.
    async fn rollback(self: Box<Self>) -> Result<(), StoreError>;
}

/// How far an account's timeline is kept, and the fingerprint of what its
/// last day was concluded from (see `keel_engine::Fingerprint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineHead {
    /// The last day concluded.
    pub through: keel_core::Date,
    /// Digest of the account and its contracts.
    pub records: u64,
    /// Digest of what was known before `through` (usage, dated records).
    pub known_before: u64,
    /// Digest of what was known on `through`.
    pub known_upto: u64,
}

/// One account's timeline written from a day on, with its new head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineWrite {
    /// The account.
    pub account: ExternalId,
    /// The first day replaced (`None`: the whole timeline).
    pub from: Option<keel_core::Date>,
    /// The rows from `from` on, in day order.
    pub rows: Vec<TimelineRow>,
    /// How far it is kept now.
    pub head: TimelineHead,
}

/// One row of an account's timeline as stored (see keel-timeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRow {
    /// The day its facts hold from.
    pub day: keel_core::Date,
    /// Every fact (true) or what changed since the day before.
    pub checkpoint: bool,
    /// The facts, as a JSON object.
    pub facts: String,
}
