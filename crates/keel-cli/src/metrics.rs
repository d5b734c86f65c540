//! `keel metrics`: a table of metric values per account as of a date, read
//! from only as much usage history as the metrics need.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use keel_app::load::{MetricTableError, metric_table};
use keel_core::Date;

use crate::evaluate::plan;

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
        keel_app::load::DEFAULT_METRICS.iter().map(|m| (*m).to_owned()).collect()
    } else {
        args.metrics.iter().map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()).collect()
    };
    let started = std::time::Instant::now();
    if matches!(args.format, Format::Csv) {
        say!("account,{}", names.join(","));
    }
    metric_table(ws.store.as_ref(), ws.id, &plan, as_of, &names, |histories, rows| {
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
    })
    .await
    .map_err(|e| match e {
        MetricTableError::Metric { name, source } => anyhow::anyhow!("--metric {name}: {source}"),
        MetricTableError::Store(e) => anyhow::Error::new(e).context("reading the workspace"),
    })?;
    tracing::info!(total = ?started.elapsed(), "metrics computed");
    Ok(ExitCode::SUCCESS)
}
