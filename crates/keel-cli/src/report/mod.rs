//! `keel report <name>`: portfolio analytics over the workspace's records
//! (definitions in docs/metrics.md).

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use keel_analytics::retention::{By, Retention, RetentionReport};
use keel_app::reports::{ReportError, RetentionQuery};
use keel_core::Date;

use crate::Workspace;
use keel_app::format::{UNDEFINED, cents as money, pct, points};

mod audit;
mod cohorts;
mod expansion;
mod funnel;
mod gates;
mod health;
mod patterns;
mod plays;
mod retention;
mod ttv;

use audit::audit_report;
use cohorts::cohort_report;
use expansion::expansion_report;
use funnel::funnel_report;
use gates::gate_report;
use health::health_report;
use patterns::pattern_report;
use plays::plays_report;
use retention::retention_report;
use ttv::ttv_report;

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    #[command(subcommand)]
    report: Report,
}

#[derive(Debug, Subcommand)]
enum Report {
    /// Revenue retention: NRR, GRR, expansion, contraction, churn, logo churn
    /// and renewal rate over a period, with the months 1–6 / 7+ split.
    Retention(RetentionArgs),
    /// Time to value: p25/p50/p75/p90 days to first value and the share
    /// within the segment's target, by segment and start cohort; the accounts
    /// that have not reached it.
    Ttv(TtvArgs),
    /// Cohort retention: logo and revenue retention by start month × months
    /// since each account's start.
    Cohorts(CohortArgs),
    /// The stage funnel per product line: conversion to the next stage and
    /// dwell time, overall, by segment and by start cohort.
    Funnel(FunnelArgs),
    /// The health backtest: at each month end, the score and band as of that
    /// day against churn within the next 90 days — ROC AUC, top-decile lift,
    /// churn per band, and the green accounts that churned.
    Health(HealthArgs),
    /// Gate validation: for renewal decisions in the window, did the stage's
    /// exit gate (and each condition) hold some days before, and did passing
    /// go with renewing? Difference, 95% interval, verdict per gate.
    Gates(GateArgs),
    /// Expansion and advocacy: expansion pipeline and won MRR by source
    /// (CS-sourced vs the rest), promoters and the asks made of them.
    Expansion(ExpansionArgs),
    /// Failure patterns (seed 000): the share of accounts with no internal
    /// kickoff, no first value by day 90, no alignment meetings, no insights
    /// shared, no renewal conversation — and what each cost at renewal.
    Patterns(PatternArgs),
    /// The journey-map audit: every cell of the 12-month × 8-row map as
    /// systematized, heroic, documented only or missing, from what the data
    /// shows; the risk inventory (heroic cells, and renewal where they
    /// happened vs not); the largest gaps between loyalty blockers and builders.
    Audit(AuditArgs),
    /// Plays: per play, runs triggered, held out, suppressed by rule, held
    /// for approval, completed, and the outcome rate treated vs holdout with
    /// the uplift's 95% interval; per owner, open and overdue tasks.
    Plays(PlaysArgs),
}

#[derive(Debug, Args)]
struct PlaysArgs {
    /// The day overdue tasks are judged on (YYYY-MM-DD); default: today.
    #[arg(long, value_parser = keel_core::parse_date)]
    as_of: Option<Date>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Args)]
struct AuditArgs {
    /// Only months over by this date count (YYYY-MM-DD); default: today.
    #[arg(long, value_parser = keel_core::parse_date)]
    as_of: Option<Date>,
    /// Only accounts whose first contract started on or after this date.
    #[arg(long, value_parser = keel_core::parse_date)]
    from: Option<Date>,
    /// Only accounts whose first contract started before this date.
    #[arg(long, value_parser = keel_core::parse_date)]
    to: Option<Date>,
    /// Only accounts in this segment (as the journey assigns it on each cell's last month).
    #[arg(long)]
    segment: Option<String>,
    /// Output format (csv: one row per cell, or with --explain per link).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// List every cell with each link: how many accounts it is live for.
    #[arg(long)]
    explain: bool,
}

#[derive(Debug, Args)]
struct PatternArgs {
    /// Accounts whose first term ended on or before this date (YYYY-MM-DD); default: today.
    #[arg(long, value_parser = keel_core::parse_date)]
    as_of: Option<Date>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Only accounts in this segment (as the journey assigns it on their first term's end).
    #[arg(long)]
    segment: Option<String>,
}

#[derive(Debug, Args)]
struct ExpansionArgs {
    /// First day of the period (YYYY-MM-DD); default: twelve months before --to.
    #[arg(long, value_parser = keel_core::parse_date)]
    from: Option<Date>,
    /// First day after the period; default: the first day of --as-of's month.
    #[arg(long, value_parser = keel_core::parse_date)]
    to: Option<Date>,
    /// The day the default period is counted back from; default: today.
    #[arg(long, value_parser = keel_core::parse_date)]
    as_of: Option<Date>,
    /// Only opportunities in this currency (required when they carry several).
    #[arg(long)]
    currency: Option<String>,
    /// Output format (csv: one row per source).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// List every advocacy candidate.
    #[arg(long)]
    explain: bool,
    /// Only accounts in this segment (as the journey assigns it on --to).
    #[arg(long)]
    segment: Option<String>,
}

#[derive(Debug, Args)]
struct GateArgs {
    /// Decisions (line ends) after this date (YYYY-MM-DD); default: six months before --to.
    #[arg(long, value_parser = keel_core::parse_date)]
    from: Option<Date>,
    /// Decisions on or before this date; default: the first day of --as-of's month.
    #[arg(long, value_parser = keel_core::parse_date)]
    to: Option<Date>,
    /// What is known: only decisions on or before it; default: today.
    #[arg(long, value_parser = keel_core::parse_date)]
    as_of: Option<Date>,
    /// Read the gates this many days before each decision (default: half a
    /// year, before the renewal window, where the early stages' gates apply).
    #[arg(long, default_value_t = 180)]
    lead_days: u64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Include every decision (JSON): the stages it had reached, whether it went on, the outcome.
    #[arg(long)]
    explain: bool,
    /// Also test this CEL condition over the journey's metrics on every
    /// decision (repeat for more): a candidate gate, before it is written.
    #[arg(long = "condition")]
    conditions: Vec<String>,
    /// Only decisions whose account was in this segment on the day the gates are read.
    #[arg(long)]
    segment: Option<String>,
}

#[derive(Debug, Args)]
struct HealthArgs {
    /// Month ends on or after this date (YYYY-MM-DD); default: twelve months before --to.
    #[arg(long, value_parser = keel_core::parse_date)]
    from: Option<Date>,
    /// Month ends before this date; default: 90 days before --as-of.
    #[arg(long, value_parser = keel_core::parse_date)]
    to: Option<Date>,
    /// What is known: only month ends whose 90 days end by then; default: today.
    #[arg(long, value_parser = keel_core::parse_date)]
    as_of: Option<Date>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// List every green snapshot that churned.
    #[arg(long)]
    explain: bool,
    /// Only snapshots where the account was in this segment (on that month end).
    #[arg(long)]
    segment: Option<String>,
}

#[derive(Debug, Args)]
struct FunnelArgs {
    /// Rebuild the stage history as of this date (YYYY-MM-DD); default: today.
    #[arg(long, value_parser = keel_core::parse_date)]
    as_of: Option<Date>,
    /// Only this product line.
    #[arg(long)]
    product: Option<String>,
    /// Break down by segment or by start cohort (table format).
    #[arg(long, value_enum)]
    by: Option<FunnelBy>,
    /// Output format (csv: one row per product line, group and stage).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Only accounts in this segment (as the journey assigns it on --as-of).
    #[arg(long)]
    segment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FunnelBy {
    Segment,
    Cohort,
}

#[derive(Debug, Args)]
struct CohortArgs {
    /// The last day observed (YYYY-MM-DD); default: today.
    #[arg(long, value_parser = keel_core::parse_date)]
    as_of: Option<Date>,
    /// Months since start to follow.
    #[arg(long, default_value_t = 24)]
    months: u32,
    /// Only lines of this product line.
    #[arg(long)]
    product: Option<String>,
    /// Only lines in this currency (required when lines carry several).
    #[arg(long)]
    currency: Option<String>,
    /// Output format (csv: one row per cohort and month).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Only accounts in this segment (as the journey assigns it on --as-of).
    #[arg(long)]
    segment: Option<String>,
}

#[derive(Debug, Args)]
struct TtvArgs {
    /// Evaluate as of this date (YYYY-MM-DD); default: today.
    #[arg(long, value_parser = keel_core::parse_date)]
    as_of: Option<Date>,
    /// Only accounts whose first contract started on or after this date.
    #[arg(long, value_parser = keel_core::parse_date)]
    from: Option<Date>,
    /// Only accounts whose first contract started before this date.
    #[arg(long, value_parser = keel_core::parse_date)]
    to: Option<Date>,
    /// Output format (csv: one row per group).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// List every account that has not reached first value.
    #[arg(long)]
    explain: bool,
    /// Only accounts in this segment (as the journey assigns it on --as-of).
    #[arg(long)]
    segment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Aligned text for a terminal.
    Table,
    /// One JSON document.
    Json,
    /// The breakdown (or, with --explain, the accounts) as CSV.
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ByArg {
    Month,
    Segment,
    Product,
    Cohort,
}

#[derive(Debug, Args)]
struct RetentionArgs {
    /// First day of the period (YYYY-MM-DD); default: twelve months before --to.
    #[arg(long, value_parser = keel_core::parse_date)]
    from: Option<Date>,
    /// First day after the period; default: the first day of --as-of's month.
    #[arg(long, value_parser = keel_core::parse_date)]
    to: Option<Date>,
    /// The day the default period is counted back from; default: today.
    #[arg(long, value_parser = keel_core::parse_date)]
    as_of: Option<Date>,
    /// Only accounts in this segment (as the journey assigns it on --from).
    #[arg(long)]
    segment: Option<String>,
    /// Only lines of this product line.
    #[arg(long)]
    product: Option<String>,
    /// Only lines in this currency (required when lines carry several).
    #[arg(long)]
    currency: Option<String>,
    /// Break the headline down.
    #[arg(long, value_enum)]
    by: Option<ByArg>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// List every starting account (start MRR, end MRR, class) and every line
    /// due for renewal: the rows add up to the headline.
    #[arg(long)]
    explain: bool,
}

pub(crate) async fn run(
    db: &str,
    workspace: &str,
    journey: &Path,
    args: ReportArgs,
) -> anyhow::Result<ExitCode> {
    let ws = crate::open_workspace(db, workspace).await?;
    match args.report {
        Report::Retention(args) => retention_report(&ws, journey, args).await,
        Report::Ttv(args) => ttv_report(&ws, journey, args).await,
        Report::Cohorts(args) => cohort_report(&ws, journey, args).await,
        Report::Funnel(args) => funnel_report(&ws, journey, args).await,
        Report::Health(args) => health_report(&ws, journey, args).await,
        Report::Gates(args) => gate_report(&ws, journey, args).await,
        Report::Expansion(args) => expansion_report(&ws, journey, args).await,
        Report::Patterns(args) => pattern_report(&ws, journey, args).await,
        Report::Audit(args) => audit_report(&ws, journey, args).await,
        Report::Plays(args) => plays_report(&ws, journey, args).await,
    }
}

/// One header line, then the rows, as CSV on stdout.
fn write_csv<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> anyhow::Result<()> {
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    out.write_record(header)?;
    for r in rows {
        out.write_record(r)?;
    }
    out.flush()?;
    Ok(())
}

/// An interval of a difference of rates, in percentage points.
fn points_interval(low: Option<f64>, high: Option<f64>) -> String {
    match (low, high) {
        (Some(l), Some(h)) => format!("{:+.1} .. {:+.1}", l * 100.0, h * 100.0),
        _ => UNDEFINED.into(),
    }
}

/// A verdict as JSON spells it (`not_enough_data`).
fn verdict_name(v: keel_analytics::gates::Verdict) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Left-aligned first column, right-aligned numbers.
fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.to_vec()).collect();
    print_rows(&header, &rows);
}

/// As [`print_table`], for rows of any width.
pub(crate) fn print_rows(header: &[String], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Text columns (any value starting with a letter or a bracket) read
    // left-aligned; numbers, shares and intervals right-aligned.
    let text: Vec<bool> = (0..widths.len())
        .map(|i| {
            i == 0
                || rows.iter().any(|r| {
                    r.get(i).and_then(|c| c.chars().next()).is_some_and(|c| c.is_alphabetic() || c == '[')
                })
        })
        .collect();
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| if text[i] { format!("{c:<w$}") } else { format!("{c:>w$}") })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    say!("{}", line(header));
    for r in rows {
        say!("{}", line(r));
    }
}
