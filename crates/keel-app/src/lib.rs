//! Keel's application layer: what the command line and the server both do
//! with a workspace, over the `Store` trait and the pure crates.
//!
//! - [`load`] reads account histories (records and usage rollups) in the
//!   shape the engine takes, a chunk at a time, and evaluates them on every
//!   core;
//! - [`reports`] runs the portfolio reports (`keel report`, the REST API,
//!   the dashboard) over what it loads;
//! - [`runner`] runs plays for evaluated accounts inside the caller's write
//!   transaction, and the human actions on tasks and the outbox;
//! - [`keys`] makes and checks API keys; [`users`] holds the dashboard's
//!   roles and hashes its passwords;
//! - [`JourneyConfig`] is a checked journey with the version and file it
//!   came from.
//!
//! No HTTP, no terminal: the HTTP crate (`keel-server`) and the binary sit
//! above this one, and nothing here reads the wall clock — `now` and
//! `as_of` are parameters.
//!
//! ```no_run
//! # async fn demo(store: &dyn keel_store::Store, ws: keel_store::WorkspaceId) -> Result<(), keel_store::StoreError> {
//! let accounts = keel_app::load::account_ids(store, ws).await?;
//! println!("{} accounts", accounts.len());
//! # Ok(()) }
//! ```

pub mod features;
pub mod format;
pub mod keys;
pub mod load;
pub mod reports;
pub mod runner;
pub mod timeline;
pub mod users;

/// The journey a workspace runs: checked, with its version (a hash of the
/// file) and where it came from.
#[derive(Clone)]
pub struct JourneyConfig {
    /// The checked journey.
    pub journey: keel_journey::Journey,
    /// Its version (recorded with every state and play decision).
    pub version: String,
    /// The file it was read from.
    pub file: String,
    /// The file's text.
    pub source: String,
}

/// How many heavy computations (reports, as-of evaluations) `keel serve`
/// runs at once by default: half the machine's cores, at least one. Each
/// already spreads over every core (at the lowest CPU priority, so ingest
/// goes first), so more at once only share the same cores and hold more
/// histories in memory.
pub fn heavy_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}
