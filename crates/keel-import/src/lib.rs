//! Loading the files that CRMs, product analytics and help desks export.
//!
//! [`import`] reads one CSV or JSONL file of one [`EntityKind`], checks every
//! row, and writes the good ones through a [`keel_store::WriteTx`]. Every
//! problem becomes a [`Diagnostic`] that names its place as
//! `file:line: column: reason`. By default a file with any bad row imports
//! nothing; [`ImportOptions::allow_partial`] imports the good rows and
//! reports the rest; [`ImportOptions::dry_run`] checks everything (against
//! the store, too) and writes nothing. Records are upserted by their
//! external id and events deduplicated by message id, so importing the same
//! file twice changes nothing the second time.
//!
//! ```no_run
//! # async fn demo(store: &dyn keel_store::Store, ws: keel_store::WorkspaceId) -> Result<(), keel_import::ImportError> {
//! use keel_import::{import, ImportOptions, Outcome};
//! let options = ImportOptions::new(keel_core::EntityKind::Contracts, chrono::Utc::now());
//! let report = import(store, ws, "contracts.csv".as_ref(), &options, &|_bytes| {}).await?;
//! for d in &report.diagnostics {
//!     eprintln!("{d}"); // contracts.csv:14: mrr: "-20" is negative; ...
//! }
//! assert!(report.outcome != Outcome::Committed || report.rejected == 0);
//! # Ok(()) }
//! ```
//!
//! The columns of each kind are listed by [`columns`] and documented in
//! `docs/import.md`.

mod export;
mod fields;
mod format;
mod kinds;

use std::collections::HashMap;

use rustc_hash::FxHashSet;

/// The accounts a file may refer to.
type KnownAccounts = FxHashSet<ExternalId>;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use keel_core::{EntityKind, ExternalId, Timestamp};
use keel_store::{ImportLog, Store, StoreError, WorkspaceId, WriteCounts, WriteTx};
use tokio::sync::mpsc;

pub use export::{
    Exporter, account_json, contact_json, contract_json, event_json, opportunity_json, survey_json,
    ticket_json, touchpoint_json,
};
pub use fields::FieldError;
pub use format::Format;
pub use kinds::{Column, ColumnType, Record, columns};

use fields::RowReader;
use format::{FileProblem, RowEvent};

/// Records handed to the writer at a time; bounds memory on large event files.
const BATCH: usize = 20_000;
/// Diagnostics kept in a report; the rest are only counted.
const MAX_DIAGNOSTICS: usize = 10_000;

/// How to import a file.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// What the file holds.
    pub kind: EntityKind,
    /// The layout; guessed from the extension when `None`.
    pub format: Option<Format>,
    /// The CSV field separator (`,` unless told otherwise; `\t` for .tsv).
    pub delimiter: Option<u8>,
    /// Check everything, write nothing.
    pub dry_run: bool,
    /// Import the good rows even if some are bad.
    pub allow_partial: bool,
    /// The import's wall-clock time: the `received_at` of events that lack one.
    pub now: Timestamp,
    /// When dates and instants may lie (seen at `now`).
    pub window: keel_core::TimeWindow,
}

impl ImportOptions {
    /// Atomic import of `kind`, format guessed from the file name.
    pub fn new(kind: EntityKind, now: Timestamp) -> Self {
        Self {
            kind,
            format: None,
            delimiter: None,
            dry_run: false,
            allow_partial: false,
            now,
            window: keel_core::TimeWindow::default(),
        }
    }
}

/// One problem, at its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as named by the user.
    pub file: String,
    /// 1-based line (the header is line 1 in CSV).
    pub line: u64,
    /// The column or JSON key, when one is at fault.
    pub column: Option<String>,
    /// What is wrong, and what would be right.
    pub reason: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "{}:{}: {}: {}", self.file, self.line, c, self.reason),
            None => write!(f, "{}:{}: {}", self.file, self.line, self.reason),
        }
    }
}

/// What happened to the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The good rows are stored.
    Committed,
    /// `--dry-run`: checked, counted, rolled back.
    DryRun,
    /// Bad rows (or a bad file) and no `--allow-partial`: nothing stored.
    RolledBack,
}

/// The result of importing one file.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The file.
    pub file: String,
    /// The kind imported.
    pub kind: EntityKind,
    /// Data rows read (blank lines excluded).
    pub rows: u64,
    /// Inserted / updated / unchanged (duplicates, for events). In a
    /// rolled-back import these are what would have been written.
    pub counts: WriteCounts,
    /// Rows rejected.
    pub rejected: u64,
    /// The first problems found, in file order (at most 10 000).
    pub diagnostics: Vec<Diagnostic>,
    /// Whether anything was stored.
    pub outcome: Outcome,
}

/// Why an import could not run at all (as opposed to bad rows).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be opened or read.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The format could not be guessed.
    #[error("{file}: cannot tell the format from the file name; name it .csv or .jsonl, or pass --format")]
    UnknownFormat {
        /// The file.
        file: String,
    },
    /// The store failed.
    #[error("{file}: {source}")]
    Store {
        /// The file.
        file: String,
        /// The store error.
        source: StoreError,
    },
}

/// Parses rows without a store: every row's fields checked exactly as an
/// import checks them, with `known` as the accounts the workspace holds.
/// Returns (rows read, rows rejected, diagnostics), or the problem that
/// stopped the file. The core the fuzz target drives (see fuzz/).
pub fn check_rows(
    input: impl Read + Send,
    format: Format,
    delimiter: u8,
    options: &ImportOptions,
    known: &[ExternalId],
) -> Result<(u64, u64, Vec<Diagnostic>), Diagnostic> {
    let known: KnownAccounts = known.iter().cloned().collect();
    let (send, mut recv) = mpsc::channel::<Batch>(4);
    let (mut rows, mut rejected, mut diagnostics) = (0, 0, Vec::new());
    let parsed = std::thread::scope(|scope| {
        let parser = scope.spawn(|| parse_file(input, format, delimiter, options, &known, "input", send));
        while let Some(batch) = recv.blocking_recv() {
            rows += batch.rows;
            rejected += batch.rejected;
            keep_diagnostics(&mut diagnostics, batch.diagnostics);
        }
        parser.join().unwrap_or_else(|_| {
            Err(FileProblem { line: 0, column: None, reason: "the reader thread panicked".into() })
        })
    });
    match parsed {
        Ok(()) => Ok((rows, rejected, diagnostics)),
        Err(p) => Err(Diagnostic { file: "input".into(), line: p.line, column: p.column, reason: p.reason }),
    }
}

/// Imports one file. `progress` is called with the number of bytes read so far.
pub async fn import(
    store: &dyn Store,
    ws: WorkspaceId,
    path: &Path,
    options: &ImportOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ImportReport, ImportError> {
    let file = path.display().to_string();
    let format = options
        .format
        .or_else(|| Format::from_path(path))
        .ok_or_else(|| ImportError::UnknownFormat { file: file.clone() })?;
    let is_tsv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
    let delimiter = options.delimiter.unwrap_or(if is_tsv { b'\t' } else { b',' });
    let input = std::fs::File::open(path).map_err(|source| ImportError::Io { file: file.clone(), source })?;
    import_reader(store, ws, &file, input, format, delimiter, options, progress).await
}

/// Imports from any reader; `file` names it in diagnostics.
#[allow(clippy::too_many_arguments, reason = "the public entry point is `import`; this is its testable core")]
pub async fn import_reader(
    store: &dyn Store,
    ws: WorkspaceId,
    file: &str,
    input: impl Read + Send + 'static,
    format: Format,
    delimiter: u8,
    options: &ImportOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ImportReport, ImportError> {
    let store_err = |source| ImportError::Store { file: file.to_owned(), source };
    let mut tx = store.begin(ws).await.map_err(store_err)?;
    let known: Arc<KnownAccounts> =
        Arc::new(tx.account_ids().await.map_err(store_err)?.into_iter().collect());

    let (send, mut recv) = mpsc::channel::<Batch>(4);
    let parser = {
        let known = Arc::clone(&known);
        let options = options.clone();
        let file = file.to_owned();
        std::thread::spawn(move || parse_file(input, format, delimiter, &options, &known, &file, send))
    };

    let mut report = ImportReport {
        file: file.to_owned(),
        kind: options.kind,
        rows: 0,
        counts: WriteCounts::default(),
        rejected: 0,
        diagnostics: Vec::new(),
        outcome: Outcome::RolledBack,
    };
    let mut pending: Vec<(u64, Record)> = Vec::new();
    let mut write_error = None;
    while let Some(batch) = recv.recv().await {
        progress(batch.bytes);
        report.rows += batch.rows;
        report.rejected += batch.rejected;
        keep_diagnostics(&mut report.diagnostics, batch.diagnostics);
        let writing = report.rejected == 0 || options.allow_partial;
        if options.kind == EntityKind::Events {
            if writing && write_error.is_none() {
                let events: Vec<_> = batch
                    .records
                    .into_iter()
                    .filter_map(|(_, r)| if let Record::Event(e) = r { Some(e) } else { None })
                    .collect();
                match tx.append_events(&events).await {
                    Ok(outcome) => report.counts.add(outcome.counts),
                    Err(e) => write_error = Some(e),
                }
            }
        } else {
            pending.extend(batch.records);
        }
    }
    let parsed = parser.join().unwrap_or_else(|_| {
        Err(FileProblem { line: 0, column: None, reason: "the reader thread panicked".into() })
    });
    if let Some(e) = write_error {
        return Err(store_err(e));
    }
    if let Err(problem) = parsed {
        report.diagnostics.insert(
            0,
            Diagnostic {
                file: file.to_owned(),
                line: problem.line,
                column: problem.column,
                reason: problem.reason,
            },
        );
        report.rejected = report.rejected.max(1);
        report.counts = WriteCounts::default();
        tx.rollback().await.map_err(store_err)?;
        return Ok(report);
    }

    if options.kind == EntityKind::Accounts {
        check_parents(&mut pending, &known, file, &mut report);
    }
    if !pending.is_empty() && (report.rejected == 0 || options.allow_partial) {
        let records: Vec<Record> = pending.into_iter().map(|(_, r)| r).collect();
        report.counts = write_records(tx.as_mut(), options.kind, records).await.map_err(store_err)?;
    }

    report.diagnostics.sort_by_key(|d| d.line);
    let keep = !options.dry_run && (report.rejected == 0 || options.allow_partial);
    if keep {
        tx.record_import(&ImportLog {
            kind: options.kind,
            source: file.to_owned(),
            finished_at: options.now,
            counts: report.counts,
            rejected: report.rejected,
        })
        .await
        .map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        report.outcome = Outcome::Committed;
    } else {
        tx.rollback().await.map_err(store_err)?;
        report.outcome = if options.dry_run { Outcome::DryRun } else { Outcome::RolledBack };
        if !options.dry_run {
            // Nothing was stored; counts were only what would have been.
            report.counts = WriteCounts::default();
        }
    }
    Ok(report)
}

fn keep_diagnostics(into: &mut Vec<Diagnostic>, more: Vec<Diagnostic>) {
    let room = MAX_DIAGNOSTICS.saturating_sub(into.len());
    into.extend(more.into_iter().take(room));
}

/// A parent must be stored already or be defined in the same file.
fn check_parents(
    pending: &mut Vec<(u64, Record)>,
    known: &KnownAccounts,
    file: &str,
    report: &mut ImportReport,
) {
    let in_file: KnownAccounts = pending
        .iter()
        .filter_map(|(_, r)| if let Record::Account(a) = r { Some(a.id.clone()) } else { None })
        .collect();
    let mut bad = Vec::new();
    pending.retain(|(line, r)| match r.account_ref() {
        Some(parent) if !known.contains(parent) && !in_file.contains(parent) => {
            bad.push(Diagnostic {
                file: file.to_owned(),
                line: *line,
                column: Some("parent_id".into()),
                reason: format!("unknown account {:?}: not stored and not in this file", parent.as_str()),
            });
            false
        }
        _ => true,
    });
    report.rejected += bad.len() as u64;
    keep_diagnostics(&mut report.diagnostics, bad);
}

async fn write_records(
    tx: &mut dyn WriteTx,
    kind: EntityKind,
    records: Vec<Record>,
) -> Result<WriteCounts, StoreError> {
    macro_rules! typed {
        ($variant:ident, $method:ident) => {{
            let rows: Vec<_> = records
                .into_iter()
                .filter_map(|r| if let Record::$variant(x) = r { Some(x) } else { None })
                .collect();
            tx.$method(&rows).await
        }};
    }
    match kind {
        EntityKind::Accounts => typed!(Account, upsert_accounts),
        EntityKind::Contracts => typed!(Contract, upsert_contracts),
        EntityKind::Contacts => typed!(Contact, upsert_contacts),
        EntityKind::Tickets => typed!(Ticket, upsert_tickets),
        EntityKind::Surveys => typed!(Survey, upsert_surveys),
        EntityKind::Touchpoints => typed!(Touchpoint, upsert_touchpoints),
        EntityKind::Opportunities => typed!(Opportunity, upsert_opportunities),
        EntityKind::Events => {
            let rows: Vec<_> = records
                .into_iter()
                .filter_map(|r| if let Record::Event(x) = r { Some(x) } else { None })
                .collect();
            tx.append_events(&rows).await.map(|o| o.counts)
        }
    }
}

/// Parsed rows on their way from the reader thread to the writer.
struct Batch {
    records: Vec<(u64, Record)>,
    rows: u64,
    rejected: u64,
    diagnostics: Vec<Diagnostic>,
    bytes: u64,
}

/// Counts bytes as they are read, for the progress bar.
struct Counting<R> {
    inner: R,
    bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

fn parse_file(
    input: impl Read,
    format: Format,
    delimiter: u8,
    options: &ImportOptions,
    known: &KnownAccounts,
    file: &str,
    send: mpsc::Sender<Batch>,
) -> Result<(), FileProblem> {
    let bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let input = Counting { inner: input, bytes: Arc::clone(&bytes) };
    let new_batch = || Batch {
        records: Vec::with_capacity(BATCH),
        rows: 0,
        rejected: 0,
        diagnostics: Vec::new(),
        bytes: 0,
    };
    let mut batch = new_batch();
    let mut first_line: HashMap<String, u64> = HashMap::new();
    let kind = options.kind;
    let flush = |batch: &mut Batch| {
        let mut full = std::mem::replace(batch, new_batch());
        full.bytes = bytes.load(std::sync::atomic::Ordering::Relaxed);
        // A closed channel means the writer gave up; nothing more to do.
        let _ = send.blocking_send(full);
    };
    let mut on = |event: RowEvent<'_>| {
        batch.rows += 1;
        let (line, fields) = match event {
            RowEvent::Row(line, fields) => (line, fields),
            RowEvent::Bad { line, column, reason } => {
                batch.rejected += 1;
                batch.diagnostics.push(Diagnostic { file: file.to_owned(), line, column, reason });
                return;
            }
        };
        let mut reader = RowReader::new(fields, options.window, options.now);
        let record = kinds::parse_row(kind, &mut reader, options.now);
        let mut errors = reader.errors;
        if let Some(record) = &record {
            if kind != EntityKind::Accounts
                && let Some(account) = record.account_ref()
                && !known.contains(account)
            {
                errors.push(FieldError {
                    column: "account_id".into(),
                    reason: format!(
                        "unknown account {:?}; import it in an accounts file first",
                        account.as_str()
                    ),
                });
            }
            if kind != EntityKind::Events {
                if let Some(first) = first_line.get(record.id()) {
                    errors.push(FieldError {
                        column: "id".into(),
                        reason: format!(
                            "duplicate id {:?} in this file (first on line {first})",
                            record.id()
                        ),
                    });
                } else {
                    first_line.insert(record.id().to_owned(), line);
                }
            }
        }
        match record {
            Some(record) if errors.is_empty() => batch.records.push((line, record)),
            _ => {
                batch.rejected += 1;
                batch.diagnostics.extend(errors.into_iter().map(|e| Diagnostic {
                    file: file.to_owned(),
                    line,
                    column: Some(e.column),
                    reason: e.reason,
                }));
            }
        }
        if batch.records.len() >= BATCH {
            flush(&mut batch);
        }
    };
    let result = match format {
        Format::Csv => format::read_csv(input, kind, delimiter, &mut on),
        Format::Jsonl => format::read_jsonl(input, kind, &mut on),
    };
    flush(&mut batch);
    result
}
