//! The `keel` command line: argument parsing (clap), configuration files,
//! progress bars and printing, glue between the terminal and Keel's crates.
//!
//! Every command but one runs here, over `keel-app` and the pure crates.
//! `keel serve` is parsed here too (its workspace opened, its journey
//! loaded), then handed to the [`ServeFn`] the binary passes to [`main`]:
//! this crate never depends on the HTTP crate, so the binary (`crates/keel`)
//! is the one place where the command line and the server meet.
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     keel_cli::main(|_call| Box::pin(async { anyhow::bail!("this build has no server") }))
//! }
//! ```
//!
//! Exit codes: 0 success; 1 failure (for imports: nothing was stored);
//! 2 `--allow-partial` import that stored the good rows and rejected others.

/// Prints a line to stdout; a closed pipe (`keel status | head`) is not an error.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod config;
mod demo;
mod evaluate;
mod features;
mod import;
mod journey;
mod metrics;
mod plays;
mod privacy;
mod report;
mod serve;
mod status;
mod timeline;
mod users;

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

pub use plays::SmtpArgs;
pub use serve::ServeArgs;

/// What `keel serve` hands to the server: the workspace (opened without
/// automatic checkpoints: the server checkpoints in the background), the
/// journey it evaluates with, if there is one, and the parsed arguments.
pub struct ServeCall {
    /// The open workspace.
    pub ws: Workspace,
    /// The checked journey, with its version.
    pub journey: Option<Arc<keel_app::JourneyConfig>>,
    /// The arguments, with the configuration file's settings applied.
    pub args: ServeArgs,
    /// When stored things may have happened (`--earliest`).
    pub window: keel_core::TimeWindow,
}

/// Runs the server for `keel serve` (the binary passes it to [`main`]).
pub type ServeFn = fn(ServeCall) -> Pin<Box<dyn Future<Output = anyhow::Result<ExitCode>>>>;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use keel_store::{DbUrl, Store, WorkspaceId};

/// Keel — the post-sale customer journey engine.
///
/// Keel keeps your customers' accounts, contracts, contacts, product usage,
/// tickets, surveys, touchpoints and opportunities in one workspace, so the
/// journey you designed can be run and measured.
///
/// Start with `keel demo` for a workspace full of realistic history, or load
/// your own exports with `keel import accounts accounts.csv` (then contracts,
/// contacts, events, ...). `keel status` shows what a workspace holds.
#[derive(Debug, Parser)]
#[command(name = "keel", version, propagate_version = true, max_term_width = 100)]
struct Cli {
    /// A configuration file (default: keel.toml when it exists); flags and
    /// KEEL_* variables override it. See docs/configuration.md.
    #[arg(long, global = true, env = "KEEL_CONFIG")]
    config: Option<std::path::PathBuf>,

    /// The database: an SQLite file path or a sqlite:// URL.
    #[arg(long, global = true, env = "KEEL_DB", default_value = "keel.db")]
    db: String,

    /// The workspace inside the database.
    #[arg(long, global = true, env = "KEEL_WORKSPACE", default_value = "default")]
    workspace: String,

    /// The journey file (see docs/journey.md).
    #[arg(long, global = true, env = "KEEL_JOURNEY", default_value = "journey.toml")]
    journey: std::path::PathBuf,

    /// The earliest date Keel stores something as having happened (ingest
    /// and imports refuse anything before it; instants may lie at most one
    /// day after now).
    #[arg(long, global = true, env = "KEEL_EARLIEST", default_value = "2000-01-01", value_parser = parse_earliest)]
    earliest: keel_core::Date,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load records from CSV or JSONL files (see docs/import.md for the columns).
    Import(import::ImportArgs),
    /// Fill a workspace with a deterministic synthetic world of B2B customers.
    Demo(demo::DemoArgs),
    /// Show what the workspace holds: counts, date ranges, the last import.
    Status(status::StatusArgs),
    /// Check or show the journey file (stages, moments, health, map).
    Journey(journey::JourneyArgs),
    /// Write the default journey file (journey.toml) to start from.
    Init(journey::InitArgs),
    /// Evaluate every account as of a date: stages, health bands, moments.
    Evaluate(evaluate::EvaluateArgs),
    /// One account's full state as of a date, with the reasons.
    Account(evaluate::AccountArgs),
    /// Metric values of every account as of a date, as CSV or JSON lines.
    Metrics(metrics::MetricsArgs),
    /// Portfolio analytics: revenue retention (see docs/metrics.md).
    Report(report::ReportArgs),
    /// Run the HTTP service: Segment-compatible ingest (see docs/api.md).
    Serve(serve::ServeArgs),
    /// Create, list and revoke the workspace's API keys.
    Keys(serve::KeysArgs),
    /// What the server's ingest refused: `keel ingest rejections`.
    Ingest(status::IngestArgs),
    /// Tasks from plays: list (overdue first), complete with an outcome, snooze.
    Tasks(plays::TasksArgs),
    /// Customer-facing sends waiting for approval: list, approve, reject.
    Outbox(plays::OutboxArgs),
    /// Replay days forward: evaluate every account each day and run the plays.
    Simulate(plays::SimulateArgs),
    /// Send queued play emails and webhooks now; list deliveries; replay a dead-lettered one.
    Deliver(plays::DeliverArgs),
    /// The people who sign in to the dashboard: add, list, disable.
    Users(users::UsersArgs),
    /// Write a consistent copy of the database to a file (online, while `keel serve` runs).
    Backup(privacy::BackupArgs),
    /// Replace the database with a backup (`keel serve` must be stopped).
    Restore(privacy::RestoreArgs),
    /// Remove a person's personal data everywhere (an erasure request): `keel forget contact EMAIL`.
    Forget(privacy::ForgetArgs),
    /// Everything held about a person, as JSON (an access request): `keel export contact EMAIL`.
    Export(privacy::ExportArgs),
    /// The admin audit log: keys, users, journey versions, approvals, forgets.
    Audit(privacy::AuditArgs),
    /// The account timeline: what Keel concluded each day (rebuild, show).
    Timeline(timeline::TimelineArgs),
    /// The feature table for learning: every metric of each account on each
    /// date, with churn, contraction and expansion within 30/90/180 days (CSV).
    Features(features::FeaturesArgs),
}

/// An open store and the workspace commands work in.
pub struct Workspace {
    /// The store.
    pub store: Box<dyn Store>,
    /// The workspace's id in it.
    pub id: WorkspaceId,
    /// The workspace's name.
    pub name: String,
    /// Where the store is.
    pub url: DbUrl,
}

pub(crate) async fn open_workspace(db: &str, workspace: &str) -> anyhow::Result<Workspace> {
    open_workspace_with(db, workspace, true).await
}

/// As [`open_workspace`]; `auto_checkpoint: false` when the caller checkpoints in the background.
pub(crate) async fn open_workspace_with(
    db: &str,
    workspace: &str,
    auto_checkpoint: bool,
) -> anyhow::Result<Workspace> {
    let url = DbUrl::parse(db)?;
    let store =
        keel_store::open_with(&url, auto_checkpoint).await.with_context(|| format!("opening {url}"))?;
    let id = store.workspace(workspace).await.with_context(|| format!("opening workspace {workspace:?}"))?;
    Ok(Workspace { store, id, name: workspace.to_owned(), url })
}

/// The one place the CLI reads the wall clock: import times and the demo's default end date.
#[allow(clippy::disallowed_methods, reason = "the CLI is an edge; it owns the clock")]
pub fn now() -> keel_core::Timestamp {
    chrono::Utc::now()
}

fn parse_earliest(raw: &str) -> Result<keel_core::Date, String> {
    keel_core::parse_date(raw).map_err(|e| e.to_string())
}

impl Cli {
    fn window(&self) -> keel_core::TimeWindow {
        keel_core::TimeWindow { earliest: self.earliest, ..keel_core::TimeWindow::default() }
    }
}

/// The command line, with the configuration file's settings where no flag
/// or variable gave one.
fn parse() -> anyhow::Result<Cli> {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let (file, _) = config::load(cli.config.as_deref())?;
    cli.db = config::pick(&matches, "db", cli.db, file.db);
    cli.workspace = config::pick(&matches, "workspace", cli.workspace, file.workspace);
    cli.journey = config::pick(&matches, "journey", cli.journey, file.journey);
    cli.earliest = config::pick(&matches, "earliest", cli.earliest, file.earliest);
    if let (Command::Serve(args), Some(("serve", sub))) = (&mut cli.command, matches.subcommand()) {
        args.apply(sub, file.serve);
    }
    Ok(cli)
}

/// Parses the command line and runs the command; `serve` runs the server
/// for `keel serve`.
pub fn main(serve: ServeFn) -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("KEEL_LOG"))
        .with_writer(std::io::stderr);
    // KEEL_LOG_FORMAT=json: one JSON object per line, for log collectors.
    if std::env::var("KEEL_LOG_FORMAT").is_ok_and(|f| f == "json") {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let window = cli.window();
    let result = runtime.block_on(async {
        match cli.command {
            Command::Import(args) => import::run(&cli.db, &cli.workspace, window, &cli.journey, args).await,
            Command::Demo(args) => demo::run(&cli.db, &cli.workspace, &cli.journey, args).await,
            Command::Journey(args) => journey::run(&cli.journey, args),
            Command::Init(args) => journey::init(&cli.journey, args),
            Command::Evaluate(args) => evaluate::run(&cli.db, &cli.workspace, &cli.journey, args).await,
            Command::Account(args) => evaluate::account(&cli.db, &cli.workspace, &cli.journey, args).await,
            Command::Metrics(args) => metrics::run(&cli.db, &cli.workspace, &cli.journey, args).await,
            Command::Report(args) => report::run(&cli.db, &cli.workspace, &cli.journey, args).await,
            Command::Serve(args) => {
                match serve::prepare(&cli.db, &cli.workspace, &cli.journey, args).await? {
                    Some(call) => serve(crate::ServeCall { window, ..call }).await,
                    None => Ok(ExitCode::FAILURE),
                }
            }
            Command::Keys(args) => serve::keys(&cli.db, &cli.workspace, args).await,
            Command::Ingest(args) => {
                status::ingest(&cli.db, &cli.workspace, args).await.map(|()| ExitCode::SUCCESS)
            }
            Command::Tasks(args) => {
                let ws = open_workspace(&cli.db, &cli.workspace).await?;
                plays::tasks(&ws, &cli.journey, args).await
            }
            Command::Outbox(args) => {
                let ws = open_workspace(&cli.db, &cli.workspace).await?;
                plays::outbox(&ws, &cli.journey, args).await
            }
            Command::Deliver(args) => {
                let ws = open_workspace(&cli.db, &cli.workspace).await?;
                plays::deliver(&ws, &cli.journey, args).await
            }
            Command::Users(args) => {
                let ws = open_workspace(&cli.db, &cli.workspace).await?;
                users::run(&ws, args).await
            }
            Command::Backup(args) => {
                let ws = open_workspace(&cli.db, &cli.workspace).await?;
                privacy::backup(&ws, args).await
            }
            Command::Restore(args) => privacy::restore(&cli.db, args),
            Command::Forget(args) => {
                let ws = open_workspace(&cli.db, &cli.workspace).await?;
                privacy::forget(&ws, args).await
            }
            Command::Export(args) => {
                let ws = open_workspace(&cli.db, &cli.workspace).await?;
                privacy::export(&ws, args).await
            }
            Command::Audit(args) => {
                let ws = open_workspace(&cli.db, &cli.workspace).await?;
                privacy::audit_log(&ws, args).await
            }
            Command::Timeline(args) => {
                let ws = open_workspace(&cli.db, &cli.workspace).await?;
                timeline::run(&ws, &cli.journey, args).await
            }
            Command::Features(args) => {
                let ws = open_workspace(&cli.db, &cli.workspace).await?;
                features::run(&ws, &cli.journey, args).await
            }
            Command::Simulate(args) => {
                let ws = open_workspace(&cli.db, &cli.workspace).await?;
                plays::simulate(&ws, &cli.journey, args).await
            }
            Command::Status(args) => {
                status::run(&cli.db, &cli.workspace, args).await.map(|()| ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
