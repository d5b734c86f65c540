//! `keel timeline`: build the account timeline from history and read it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use keel_core::{Date, ExternalId};

/// `keel timeline rebuild | show`.
#[derive(Debug, Args)]
pub(crate) struct TimelineArgs {
    #[command(subcommand)]
    command: TimelineCommand,
}

#[derive(Debug, Subcommand)]
enum TimelineCommand {
    /// Conclude every day of every account again, from its first contract or
    /// usage to `--through`, under the current journey (after a journey change).
    Rebuild {
        /// The last day to conclude (YYYY-MM-DD); default: today.
        #[arg(long, value_parser = keel_core::parse_date)]
        through: Option<Date>,
    },
    /// What Keel concluded about one account on a day, fact by fact.
    Show {
        /// The account's external id.
        account: String,
        /// The day (YYYY-MM-DD); default: today.
        #[arg(long, value_parser = keel_core::parse_date)]
        as_of: Option<Date>,
        /// One JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(
    ws: &crate::Workspace,
    journey: &Path,
    args: TimelineArgs,
) -> anyhow::Result<ExitCode> {
    let Some((plan, version)) = crate::evaluate::plan(ws, journey).await? else {
        return Ok(ExitCode::FAILURE);
    };
    let today = keel_app::timeline::today(crate::now(), &plan.journey().governance.default_timezone);
    match args.command {
        TimelineCommand::Rebuild { through } => {
            let through = through.unwrap_or(today);
            keep(ws, &plan, &version, through, true).await?;
            Ok(ExitCode::SUCCESS)
        }
        TimelineCommand::Show { account, as_of, json } => {
            let id = ExternalId::parse(&account).map_err(|e| anyhow::anyhow!("account {account:?}: {e}"))?;
            let day = as_of.unwrap_or(today);
            let facts = keel_app::timeline::facts_on(ws.store.as_ref(), ws.id, &id, &version, day).await?;
            let Some(facts) = facts else {
                eprintln!(
                    "error: no timeline for account {account:?} on {day} under journey {version} \
                     (unknown account, a day before its first, or not built: run `keel timeline rebuild`)"
                );
                return Ok(ExitCode::FAILURE);
            };
            if json {
                say!("{}", serde_json::to_string(&facts)?);
            } else {
                say!("account {account} on {day} (journey {version})");
                for (path, value) in &facts {
                    say!("  {path:<44} {}", serde_json::to_string(value)?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Keeps every account's timeline under the journey through `through`
/// (each appended, restated or rebuilt as its head says; every one rebuilt
/// with `rebuild`), with a progress bar, and drops other journeys' rows.
async fn keep(
    ws: &crate::Workspace,
    plan: &keel_engine::Plan,
    version: &str,
    through: Date,
    rebuild: bool,
) -> anyhow::Result<()> {
    let accounts = keel_app::load::account_ids(ws.store.as_ref(), ws.id).await?.len();
    let bar = ProgressBar::new(accounts as u64);
    bar.set_style(
        ProgressStyle::with_template("timeline [{bar:40}] {pos}/{len} accounts {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let under = keel_app::timeline::Under { plan, version, through };
    let which = keel_app::timeline::Which::All;
    let done = keel_app::timeline::keep(ws.store.as_ref(), ws.id, under, which, rebuild, |n| {
        bar.inc(n as u64);
    })
    .await
    .context("keeping the timeline")?;
    bar.finish_and_clear();
    let dropped = ws.store.drop_other_timelines(ws.id, version).await?;
    say!(
        "timeline: concluded {} days of {} accounts through {through} in {:.1} s: {} rows (journey {version}){}",
        done.days,
        done.accounts,
        started.elapsed().as_secs_f64(),
        done.rows,
        if dropped > 0 { format!("; dropped {dropped} rows of earlier journeys") } else { String::new() }
    );
    Ok(())
}

/// After `keel import` or `keel demo` wrote: keeps the timeline under the
/// journey file through today, when the file is there and checks (else
/// says so: `keel serve` or `keel timeline rebuild` keep it later).
pub(crate) async fn keep_after_write(ws: &crate::Workspace, journey: &Path) -> anyhow::Result<()> {
    if !journey.exists() {
        say!(
            "timeline: not kept ({} not found); `keel serve` keeps it, or `keel timeline rebuild`",
            journey.display()
        );
        return Ok(());
    }
    let Some((plan, version)) = crate::evaluate::plan(ws, journey).await? else {
        say!("timeline: not kept (the journey does not check); `keel timeline rebuild` once it does");
        return Ok(());
    };
    let today = keel_app::timeline::today(crate::now(), &plan.journey().governance.default_timezone);
    keep(ws, &plan, &version, today, false).await
}
