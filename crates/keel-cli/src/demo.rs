//! `keel demo`: a deterministic synthetic world, into the store or into files.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use keel_core::{Date, EntityKind};
use keel_demo::{DemoConfig, SimulatedAccount};
use keel_import::Exporter;
use keel_store::{ImportLog, WriteCounts};
use tokio::sync::mpsc;

/// Accounts per transaction when writing the world into the store.
const ACCOUNTS_PER_TX: usize = 250;
/// Events per append call.
const EVENTS_PER_APPEND: usize = 20_000;
const ATTRIBUTES: [&str; 5] = ["tier", "touch", "region", "timezone", "industry"];

/// Fill a workspace with a deterministic synthetic world.
///
/// Enterprise, mid-market and SMB accounts with contracts, champions who
/// sometimes leave, usage that ramps up or slides, tickets, NPS, the
/// touchpoints CSMs do or skip, and renewals, expansions and churn that
/// depend on that behaviour (docs/demo.md). The same --seed and --end give
/// the same world; running it twice changes nothing.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How many accounts.
    #[arg(long, default_value_t = 500)]
    accounts: usize,
    /// Months of history.
    #[arg(long, default_value_t = 24)]
    months: u32,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The day after the history ends, YYYY-MM-DD (default: today, UTC).
    #[arg(long, value_parser = parse_date)]
    end: Option<Date>,
    /// The day the default journey's plays went live in the story: from then
    /// on the rescue and champion plays work for the accounts they do not
    /// hold out (default: a year before --end; see docs/demo.md).
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    plays_from: Option<Date>,
    /// Write the world as import files (CSV, events as JSONL) plus the
    /// generator's ground truth into this directory instead of the store.
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
}

fn parse_date(raw: &str) -> Result<Date, String> {
    keel_core::parse_date(raw).map_err(|e| e.to_string())
}

pub(crate) async fn run(
    db: &str,
    workspace: &str,
    journey: &std::path::Path,
    args: DemoArgs,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.accounts > 0, "--accounts must be at least 1");
    anyhow::ensure!((1..=120).contains(&args.months), "--months must be between 1 and 120");
    let config = DemoConfig {
        accounts: args.accounts,
        months: args.months,
        seed: args.seed,
        end: args.end.unwrap_or_else(|| crate::now().date_naive()),
        plays_from: args.plays_from,
    };
    let bar = ProgressBar::new(config.accounts as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} accounts {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("generating");
    if let Some(dir) = &args.export {
        let events = export(&config, dir, &bar)?;
        bar.finish_and_clear();
        say!(
            "wrote {} accounts and {events} events from {} to {} into {} (seed {})",
            config.accounts,
            config.start(),
            config.end,
            dir.display(),
            config.seed
        );
        return Ok(ExitCode::SUCCESS);
    }

    let ws = crate::open_workspace(db, workspace).await?;
    let (send, mut recv) = mpsc::channel::<Vec<SimulatedAccount>>(2);
    let generator = {
        let config = config.clone();
        std::thread::spawn(move || {
            let mut chunk = Vec::with_capacity(ACCOUNTS_PER_TX);
            for history in keel_demo::generate(&config) {
                chunk.push(history);
                if chunk.len() == ACCOUNTS_PER_TX && send.blocking_send(std::mem::take(&mut chunk)).is_err() {
                    return;
                }
            }
            if !chunk.is_empty() {
                let _ = send.blocking_send(chunk);
            }
        })
    };
    let mut events = WriteCounts::default();
    while let Some(chunk) = recv.recv().await {
        let n = chunk.len() as u64;
        events.add(write_chunk(&ws, chunk).await?);
        bar.inc(n);
    }
    generator.join().map_err(|_| anyhow::anyhow!("the demo generator panicked"))?;
    let mut tx = ws.store.begin(ws.id).await?;
    tx.record_import(&ImportLog {
        kind: EntityKind::Events,
        source: format!(
            "keel demo --accounts {} --months {} --seed {} --end {}",
            config.accounts, config.months, config.seed, config.end
        ),
        finished_at: crate::now(),
        counts: events,
        rejected: 0,
    })
    .await?;
    tx.commit().await?;
    bar.finish_and_clear();
    if crate::journey::install_default(journey)? {
        say!("wrote the default journey to {} (`keel journey show` to read it)", journey.display());
    }
    crate::timeline::keep_after_write(&ws, journey).await?;
    say!(
        "demo world: {} accounts, {} months from {} to {}, seed {}: {} new events ({} already there)",
        config.accounts,
        config.months,
        config.start(),
        config.end,
        config.seed,
        events.inserted,
        events.unchanged
    );
    crate::status::run(db, workspace, crate::status::StatusArgs::default()).await?;
    if ws.store.users(ws.id).await?.is_empty() {
        demo_users(&ws).await?;
    }
    say!(
        "\ndashboard: `keel serve`, then http://127.0.0.1:8080 — sign in as {DEMO_LEADER} (leader), \
         {} (a CSM: their own book) or {DEMO_ADMIN}; the demo password is {DEMO_PASSWORD:?}",
        keel_demo::CSMS[0]
    );
    say!(
        "\nnext: `keel evaluate --as-of {end}` (every account's stage, health and moments), \
         `keel account acct-000042 --as-of {end}`",
        end = config.end
    );
    Ok(ExitCode::SUCCESS)
}

/// The demo's sign-in password (a demo workspace only; `keel users add` for real ones).
pub(crate) const DEMO_PASSWORD: &str = "keel-demo";
const DEMO_ADMIN: &str = "admin@keel.example";
const DEMO_LEADER: &str = "lead@keel.example";

/// Dashboard users for the demo world: an admin, a CS leader, and each of
/// the CSMs who own its accounts.
async fn demo_users(ws: &crate::Workspace) -> anyhow::Result<()> {
    crate::users::add_user(ws, DEMO_ADMIN, Some("Avery Admin"), "admin", DEMO_PASSWORD).await?;
    crate::users::add_user(ws, DEMO_LEADER, Some("Lee Leader"), "leader", DEMO_PASSWORD).await?;
    for csm in keel_demo::CSMS {
        crate::users::add_user(ws, csm, None, "csm", DEMO_PASSWORD).await?;
    }
    Ok(())
}

async fn write_chunk(ws: &crate::Workspace, chunk: Vec<SimulatedAccount>) -> anyhow::Result<WriteCounts> {
    let mut tx = ws.store.begin(ws.id).await?;
    let mut all = SimulatedParts::default();
    for h in chunk {
        all.accounts.push(h.account);
        all.contracts.extend(h.contracts);
        all.contacts.extend(h.contacts);
        all.events.extend(h.events);
        all.tickets.extend(h.tickets);
        all.surveys.extend(h.surveys);
        all.touchpoints.extend(h.touchpoints);
        all.opportunities.extend(h.opportunities);
    }
    tx.upsert_accounts(&all.accounts).await?;
    tx.upsert_contracts(&all.contracts).await?;
    tx.upsert_contacts(&all.contacts).await?;
    tx.upsert_tickets(&all.tickets).await?;
    tx.upsert_surveys(&all.surveys).await?;
    tx.upsert_touchpoints(&all.touchpoints).await?;
    tx.upsert_opportunities(&all.opportunities).await?;
    let mut counts = WriteCounts::default();
    for slice in all.events.chunks(EVENTS_PER_APPEND) {
        counts.add(tx.append_events(slice).await?.counts);
    }
    tx.commit().await?;
    Ok(counts)
}

/// The records of a chunk of accounts, gathered by kind.
#[derive(Default)]
struct SimulatedParts {
    accounts: Vec<keel_core::Account>,
    contracts: Vec<keel_core::Contract>,
    contacts: Vec<keel_core::Contact>,
    events: Vec<keel_core::Event>,
    tickets: Vec<keel_core::Ticket>,
    surveys: Vec<keel_core::SurveyResponse>,
    touchpoints: Vec<keel_core::Touchpoint>,
    opportunities: Vec<keel_core::Opportunity>,
}

struct Files {
    accounts: Exporter<BufWriter<File>>,
    contracts: Exporter<BufWriter<File>>,
    contacts: Exporter<BufWriter<File>>,
    events: Exporter<BufWriter<File>>,
    tickets: Exporter<BufWriter<File>>,
    surveys: Exporter<BufWriter<File>>,
    touchpoints: Exporter<BufWriter<File>>,
    opportunities: Exporter<BufWriter<File>>,
    truth: csv::Writer<BufWriter<File>>,
    renewals: csv::Writer<BufWriter<File>>,
}

fn create(dir: &Path, name: &str) -> anyhow::Result<BufWriter<File>> {
    let path = dir.join(name);
    Ok(BufWriter::with_capacity(
        1 << 20,
        File::create(&path).with_context(|| format!("creating {}", path.display()))?,
    ))
}

fn export(config: &DemoConfig, dir: &Path, bar: &ProgressBar) -> anyhow::Result<u64> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let attrs: Vec<String> = ATTRIBUTES.iter().map(|s| (*s).to_owned()).collect();
    let csv_file = |kind: EntityKind| -> anyhow::Result<Exporter<BufWriter<File>>> {
        Ok(Exporter::csv(kind, create(dir, &format!("{kind}.csv"))?, &attrs)?)
    };
    let mut f = Files {
        accounts: csv_file(EntityKind::Accounts)?,
        contracts: csv_file(EntityKind::Contracts)?,
        contacts: csv_file(EntityKind::Contacts)?,
        events: Exporter::jsonl(EntityKind::Events, create(dir, "events.jsonl")?),
        tickets: csv_file(EntityKind::Tickets)?,
        surveys: csv_file(EntityKind::Surveys)?,
        touchpoints: csv_file(EntityKind::Touchpoints)?,
        opportunities: csv_file(EntityKind::Opportunities)?,
        truth: csv::Writer::from_writer(create(dir, "truth_accounts.csv")?),
        renewals: csv::Writer::from_writer(create(dir, "truth_renewals.csv")?),
    };
    f.truth.write_record([
        "account_id",
        "segment",
        "internal_kickoff",
        "ttv_days",
        "champion_left",
        "champion_replaced",
        "usage_decline_from",
        "unresolved_sev1",
        "mobile_rate",
        "churned_on",
    ])?;
    f.renewals.write_record([
        "account_id",
        "date",
        "p_renew",
        "renewed",
        "seat_factor",
        "no_first_value_by_day_60",
        "champion_gone",
        "usage_declining",
        "unresolved_sev1",
        "broad_adoption",
    ])?;
    let opt = |d: Option<Date>| d.map(|d| d.to_string()).unwrap_or_default();
    let mut events = 0u64;
    for h in keel_demo::generate(config) {
        f.accounts.account(&h.account, &attrs)?;
        for c in &h.contracts {
            f.contracts.contract(c)?;
        }
        for c in &h.contacts {
            f.contacts.contact(c)?;
        }
        for e in &h.events {
            f.events.event(e)?;
        }
        events += h.events.len() as u64;
        for t in &h.tickets {
            f.tickets.ticket(t)?;
        }
        for s in &h.surveys {
            f.surveys.survey(s)?;
        }
        for t in &h.touchpoints {
            f.touchpoints.touchpoint(t)?;
        }
        for o in &h.opportunities {
            f.opportunities.opportunity(o)?;
        }
        let t = &h.truth;
        f.truth.write_record([
            h.account.id.to_string(),
            t.segment.as_str().to_owned(),
            t.internal_kickoff.to_string(),
            t.ttv_days.map(|d| d.to_string()).unwrap_or_default(),
            opt(t.champion_left),
            opt(t.champion_replaced),
            opt(t.usage_decline_from),
            t.unresolved_sev1.len().to_string(),
            format!("{:.4}", t.mobile_rate),
            opt(t.churned_on),
        ])?;
        for r in &t.renewals {
            f.renewals.write_record([
                h.account.id.to_string(),
                r.date.to_string(),
                format!("{:.4}", r.p_renew),
                r.renewed.to_string(),
                format!("{:.3}", r.seat_factor),
                r.no_first_value_by_day_60.to_string(),
                r.champion_gone.to_string(),
                r.usage_declining.to_string(),
                r.unresolved_sev1.to_string(),
                r.broad_adoption.to_string(),
            ])?;
        }
        bar.inc(1);
    }
    for e in
        [f.accounts, f.contracts, f.contacts, f.events, f.tickets, f.surveys, f.touchpoints, f.opportunities]
    {
        e.finish()?;
    }
    f.truth.flush()?;
    f.renewals.flush()?;
    Ok(events)
}
