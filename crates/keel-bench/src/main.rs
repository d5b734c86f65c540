//! `keel-bench`: Keel's benchmarks, each against a plain peer in the same run.
//!
//! `keel-bench import` measures bulk event import into SQLite: Keel's
//! `import` (validation, exact message-id deduplication, usage rollups, one
//! atomic transaction) against a plain prepared-statement insert of the same
//! rows with rusqlite. Each side runs in its own process so that peak memory
//! (VmHWM) is its own; runs alternate and the medians are reported.

use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Import and demo move millions of small strings between threads; mimalloc
/// handles that pattern far better than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod checkpoint;
mod ingest_load;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use keel_core::EntityKind;
use keel_import::{Exporter, ImportOptions, Outcome};
use keel_store::{SqliteOptions, SqliteStore, Store};
use serde::{Deserialize, Serialize};

#[derive(Debug, Parser)]
#[command(name = "keel-bench", about = "Keel benchmarks against plain peers")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Bulk event import: Keel vs a plain prepared-statement insert.
    Import {
        /// Demo accounts to generate (about 1 000 events each).
        #[arg(long, default_value_t = 10_000)]
        accounts: usize,
        /// Where generated data and scratch databases go.
        #[arg(long, default_value = "bench-data")]
        data: PathBuf,
        /// Runs per side (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// A load generator for `keel serve` (run by scripts/bench-ingest in its
    /// own process): Segment track calls, in batches or one per request.
    IngestLoad {
        /// The server's base URL.
        #[arg(long)]
        url: String,
        /// An ingest key.
        #[arg(long)]
        key: String,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Events per request: 1 sends /v1/track, more send /v1/batch.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// How long to send.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// Accounts the events spread over.
        #[arg(long, default_value_t = 1_000)]
        accounts: usize,
    },
    /// The ingest benchmark's peer: plain rusqlite inserts of the same
    /// events into a table keyed by message id, one durable commit (WAL,
    /// synchronous=FULL) per `batch` events, no HTTP, for a fixed time.
    IngestPeer {
        /// Where the scratch database goes.
        #[arg(long)]
        db: PathBuf,
        /// Events per commit.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// How long to insert.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
    },
    /// Evaluating every account as of its last day: full replay against
    /// continuing from the day before's checkpoints.
    Checkpoint {
        /// A Keel database (e.g. made by `keel demo`).
        #[arg(long)]
        db: PathBuf,
        /// The journey (default: the default journey).
        #[arg(long)]
        journey: Option<PathBuf>,
        /// Runs per side (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// One side of the import benchmark (run by `import` in a child process).
    #[command(hide = true)]
    ImportSide {
        #[arg(long, value_enum)]
        side: Side,
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        db: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Side {
    Keel,
    Plain,
}

#[derive(Debug, Serialize, Deserialize)]
struct SideResult {
    events: u64,
    seconds: f64,
    peak_rss_mib: f64,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Bench::Import { accounts, data, runs } => import_bench(accounts, &data, runs),
        Bench::IngestLoad { url, key, concurrency, batch, seconds, accounts } => {
            let load = ingest_load::Load { url, key, concurrency, batch, seconds, accounts };
            let report = tokio::runtime::Runtime::new()?.block_on(ingest_load::run(load))?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Bench::Checkpoint { db, journey, runs } => checkpoint::run(&db, journey.as_deref(), runs),
        Bench::IngestPeer { db, batch, seconds } => {
            println!("{}", serde_json::to_string(&ingest_load::peer(&db, batch, seconds)?)?);
            Ok(())
        }
        Bench::ImportSide { side, data, db } => {
            let result = match side {
                Side::Keel => keel_side(&data, &db)?,
                Side::Plain => plain_side(&data, &db)?,
            };
            println!("{}", serde_json::to_string(&result)?);
            Ok(())
        }
    }
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn dataset(accounts: usize, data: &Path) -> anyhow::Result<PathBuf> {
    let dir = data.join(format!("import-{accounts}"));
    if dir.join("events.jsonl").exists() && dir.join("accounts.csv").exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir)?;
    eprintln!("generating {accounts} demo accounts into {} …", dir.display());
    let config = keel_demo::DemoConfig {
        accounts,
        months: 24,
        seed: 42,
        end: "2026-11-01".parse().context("date")?,
        plays_from: None,
    };
    let attrs: Vec<String> = ["tier", "touch", "region", "timezone", "industry"].map(String::from).to_vec();
    let mut acc = Exporter::csv(
        EntityKind::Accounts,
        BufWriter::new(std::fs::File::create(dir.join("accounts.csv.tmp"))?),
        &attrs,
    )?;
    let mut ev = Exporter::jsonl(
        EntityKind::Events,
        BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("events.jsonl.tmp"))?),
    );
    for h in keel_demo::generate(&config) {
        acc.account(&h.account, &attrs)?;
        for e in &h.events {
            ev.event(e)?;
        }
    }
    acc.finish()?;
    ev.finish()?;
    std::fs::rename(dir.join("accounts.csv.tmp"), dir.join("accounts.csv"))?;
    std::fs::rename(dir.join("events.jsonl.tmp"), dir.join("events.jsonl"))?;
    Ok(dir)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn import_bench(accounts: usize, data: &Path, runs: usize) -> anyhow::Result<()> {
    let dir = dataset(accounts, data)?;
    let bytes = std::fs::metadata(dir.join("events.jsonl"))?.len();
    let exe = std::env::current_exe()?;
    let mut results: Vec<(Side, SideResult)> = Vec::new();
    for run in 0..runs.max(1) {
        for side in [Side::Keel, Side::Plain] {
            let db = data.join(format!("scratch-{side:?}.db"));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            let out = Command::new(&exe)
                .args(["import-side", "--side", &format!("{side:?}").to_lowercase()])
                .arg("--data")
                .arg(&dir)
                .arg("--db")
                .arg(&db)
                .output()?;
            if !out.status.success() {
                bail!("{side:?} run failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            let r: SideResult = serde_json::from_slice(&out.stdout)?;
            eprintln!(
                "run {run} {side:?}: {} events in {:.2} s = {:.0} events/s, peak {:.0} MiB",
                r.events,
                r.seconds,
                r.events as f64 / r.seconds,
                r.peak_rss_mib
            );
            results.push((side, r));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
        }
    }
    let stat = |side: Side| {
        let rs: Vec<&SideResult> = results.iter().filter(|(s, _)| *s == side).map(|(_, r)| r).collect();
        let events = rs[0].events;
        let secs = median(rs.iter().map(|r| r.seconds).collect());
        let rss = median(rs.iter().map(|r| r.peak_rss_mib).collect());
        (events, secs, events as f64 / secs, rss)
    };
    let keel = stat(Side::Keel);
    let plain = stat(Side::Plain);
    println!("| side | events | median time | events/s | peak RSS |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| Keel `import events` (validate, dedup, rollups, atomic) | {} | {:.2} s | {:.0} | {:.0} MiB |",
        keel.0, keel.1, keel.2, keel.3
    );
    println!(
        "| plain rusqlite prepared INSERT (parse + insert only) | {} | {:.2} s | {:.0} | {:.0} MiB |",
        plain.0, plain.1, plain.2, plain.3
    );
    println!(
        "\nKeel / plain throughput: {:.2}×  ({:.0} MB of JSONL, {} runs each, medians)",
        keel.2 / plain.2,
        bytes as f64 / 1e6,
        runs
    );
    Ok(())
}

fn keel_side(dir: &Path, db: &Path) -> anyhow::Result<SideResult> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let store = SqliteStore::open(db.to_str().context("utf-8 path")?, SqliteOptions::default()).await?;
        let ws = store.workspace("bench").await?;
        #[allow(clippy::disallowed_methods, reason = "a benchmark edge: the import time of rows without one")]
        let now = chrono::Utc::now();
        let accounts = keel_import::import(
            &store,
            ws,
            &dir.join("accounts.csv"),
            &ImportOptions::new(EntityKind::Accounts, now),
            &|_| {},
        )
        .await?;
        anyhow::ensure!(
            accounts.outcome == Outcome::Committed,
            "accounts: {:?}",
            accounts.diagnostics.first()
        );
        let start = Instant::now();
        let report = keel_import::import(
            &store,
            ws,
            &dir.join("events.jsonl"),
            &ImportOptions::new(EntityKind::Events, now),
            &|_| {},
        )
        .await?;
        let seconds = start.elapsed().as_secs_f64();
        anyhow::ensure!(report.outcome == Outcome::Committed, "events: {:?}", report.diagnostics.first());
        Ok(SideResult { events: report.counts.inserted, seconds, peak_rss_mib: peak_rss_mib() })
    })
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    message_id: &'a str,
    account_id: &'a str,
    user_id: &'a str,
    event: &'a str,
    timestamp: &'a str,
    received_at: &'a str,
    #[serde(default)]
    properties: Option<&'a serde_json::value::RawValue>,
}

fn micros(raw: &str) -> anyhow::Result<i64> {
    Ok(chrono::DateTime::parse_from_rfc3339(raw)?.timestamp_micros())
}

fn plain_side(dir: &Path, db: &Path) -> anyhow::Result<SideResult> {
    let mut conn = rusqlite::Connection::open(db)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -262_144)?;
    conn.execute_batch(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, account_id TEXT NOT NULL, message_id TEXT NOT NULL, \
         user_id TEXT NOT NULL, name TEXT NOT NULL, ts INTEGER NOT NULL, received_at INTEGER NOT NULL, properties TEXT)",
    )?;
    let start = Instant::now();
    let file = BufReader::with_capacity(1 << 20, std::fs::File::open(dir.join("events.jsonl"))?);
    let tx = conn.transaction()?;
    let mut n = 0u64;
    {
        let mut stmt = tx.prepare(
            "INSERT INTO events (account_id, message_id, user_id, name, ts, received_at, properties) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )?;
        for line in file.lines() {
            let line = line?;
            let e: RawEvent<'_> = serde_json::from_str(&line)?;
            let props = e.properties.map(|p| p.get()).filter(|p| *p != "{}");
            stmt.execute(rusqlite::params![
                e.account_id,
                e.message_id,
                e.user_id,
                e.event,
                micros(e.timestamp)?,
                micros(e.received_at)?,
                props
            ])?;
            n += 1;
        }
    }
    tx.commit()?;
    Ok(SideResult { events: n, seconds: start.elapsed().as_secs_f64(), peak_rss_mib: peak_rss_mib() })
}
