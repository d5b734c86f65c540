//! `keel metrics`: a table of metric values per account as of a date, read
//! from only as much usage history as the metrics need.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use keel_core::Date;
use keel_engine::{History, Needs};
use keel_store::RecordKinds;

use keel_server::load::{Usage, account_ids, load_chunk};

use crate::evaluate::{CHUNK, on_every_core, plan};

/// The metrics shown when none are asked for.
const DEFAULT: &[&str] = &[
    "active_users_7d",
    "active_users_28d",
    "active_seat_ratio",
    "core_features_weekly",
    "feature_breadth",
    "usage_change_pct",
    "mrr",
    "days_to_renewal",
];

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// One header line, then one line per account.
    Csv,
    /// One JSON object per account and line.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct MetricsArgs {
    /// As of this date (YYYY-MM-DD); default: today.
    #[arg(long, value_parser = keel_core::parse_date)]
    as_of: Option<Date>,
    /// Metrics to compute, built-in or from the journey (repeat, or separate
    /// with commas); default: the usage, seat and revenue metrics.
    #[arg(long = "metric", value_delimiter = ',')]
    metrics: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
}

pub(crate) async fn run(
    db: &str,
    workspace: &str,
    journey: &Path,
    args: MetricsArgs,
) -> anyhow::Result<ExitCode> {
    let ws = crate::open_workspace(db, workspace).await?;
    let Some((plan, _)) = plan(&ws, journey).await? else { return Ok(ExitCode::FAILURE) };
    let as_of = args.as_of.unwrap_or_else(|| crate::now().date_naive());
    let names: Vec<String> = if args.metrics.is_empty() {
        DEFAULT.iter().map(|m| (*m).to_owned()).collect()
    } else {
        args.metrics.iter().map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()).collect()
    };
    let mut needs = Needs::default();
    for name in &names {
        needs = needs.union(plan.needs(name).with_context(|| format!("--metric {name}"))?);
    }
    let kinds = RecordKinds {
        contracts: needs.contracts,
        contacts: needs.contacts,
        tickets: needs.tickets,
        surveys: needs.surveys,
        touchpoints: needs.touchpoints,
        opportunities: false,
    };
    let since = match needs.usage {
        History::None => None,
        History::Days(n) => Some(as_of - chrono::Days::new(u64::from(n.saturating_sub(1)))),
        History::All => None,
    };
    let started = std::time::Instant::now();
    let ids = account_ids(ws.store.as_ref(), ws.id).await.context("reading the workspace")?;
    tracing::debug!(?needs, "reading");
    let usage = if needs.usage == History::None { Usage::None } else { Usage::Since(since, false) };

    if matches!(args.format, Format::Csv) {
        say!("account,{}", names.join(","));
    }
    for chunk in ids.chunks(CHUNK) {
        let histories = load_chunk(ws.store.as_ref(), ws.id, chunk, kinds, usage).await?;
        let rows = on_every_core(&histories, |h| keel_engine::metric_values(&plan, h, as_of, &names));
        for (h, values) in histories.iter().zip(rows) {
            match args.format {
                Format::Csv => {
                    let cells: Vec<String> =
                        values.iter().map(|v| v.map(|v| v.to_string()).unwrap_or_default()).collect();
                    say!("{},{}", h.account.id, cells.join(","));
                }
                Format::Json => {
                    let metrics: serde_json::Map<String, serde_json::Value> = names
                        .iter()
                        .zip(&values)
                        .map(|(n, v)| (n.clone(), serde_json::to_value(v).unwrap_or_default()))
                        .collect();
                    say!(
                        "{}",
                        serde_json::json!({"account": h.account.id.as_str(), "as_of": as_of, "metrics": metrics})
                    );
                }
            }
        }
    }
    tracing::info!(total = ?started.elapsed(), "metrics computed");
    Ok(ExitCode::SUCCESS)
}
