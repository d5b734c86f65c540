//! `keel report <name>`: portfolio analytics over the workspace's records
//! (definitions in docs/metrics.md).

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use keel_analytics::retention::{By, Retention, RetentionReport};
use keel_app::reports::{ReportError, RetentionQuery};
use keel_core::Date;
use rust_decimal::Decimal;

use crate::Workspace;

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

async fn plays_report(ws: &Workspace, journey: &Path, args: PlaysArgs) -> anyhow::Result<ExitCode> {
    let Ok(j) = crate::journey::load(journey)? else { return Ok(ExitCode::FAILURE) };
    let as_of = args.as_of.unwrap_or_else(|| crate::now().date_naive());
    let report = keel_app::reports::plays(ws.store.as_ref(), ws.id, &j, as_of).await?;
    let header = [
        "play",
        "triggered",
        "treated",
        "holdout",
        "suppressed",
        "held",
        "deferred",
        "completed",
        "open",
        "outcome treated",
        "outcome holdout",
        "uplift (pts)",
        "95% interval",
        "effect",
    ];
    let rows: Vec<[String; 14]> = report
        .plays
        .iter()
        .map(|p| {
            let suppressed: u64 = p.suppressed.values().sum();
            let (treated, holdout, uplift, interval) = match &p.outcome {
                Some(s) => (
                    format!("{} ({}/{})", pct(s.passed.rate), s.passed.k, s.passed.n),
                    format!("{} ({}/{})", pct(s.failed.rate), s.failed.k, s.failed.n),
                    s.difference.map_or("–".into(), |d| format!("{:+.1}", d * 100.0)),
                    points_interval(s.low, s.high),
                ),
                None => ("–".into(), "–".into(), "–".into(), "–".into()),
            };
            let effect = p.effect.map_or("no outcome defined".to_owned(), |e| {
                serde_json::to_value(e)
                    .ok()
                    .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
                    .unwrap_or_default()
            });
            [
                p.play.clone(),
                p.triggered.to_string(),
                p.treated.to_string(),
                p.holdout.to_string(),
                suppressed.to_string(),
                p.held_for_approval.to_string(),
                p.deferred.to_string(),
                p.completed.to_string(),
                p.open.to_string(),
                treated,
                holdout,
                uplift,
                interval,
                effect,
            ]
        })
        .collect();
    match args.format {
        Format::Json => say!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv => write_csv(&header, &rows)?,
        Format::Table => {
            say!(
                "plays: outcome = the play's expected outcome within its window; uplift = treated − holdout\n"
            );
            let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
            print_rows(&header, &rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>());
            let reasons: Vec<String> = report
                .plays
                .iter()
                .flat_map(|p| p.suppressed.iter().map(move |(rule, n)| format!("{} × {n} by {rule}", p.play)))
                .collect();
            if !reasons.is_empty() {
                say!("\nsuppressed: {}", reasons.join("; "));
            }
            say!("\ntasks by owner (as of {as_of}, most overdue first)");
            let header: Vec<String> = ["owner", "open", "overdue", "done"].map(String::from).to_vec();
            let owners: Vec<Vec<String>> = report
                .owners
                .iter()
                .map(|o| vec![o.owner.clone(), o.open.to_string(), o.overdue.to_string(), o.done.to_string()])
                .collect();
            print_rows(&header, &owners);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The one-letter code of a status in the grid.
fn status_code(s: keel_analytics::audit::Status) -> &'static str {
    use keel_analytics::audit::Status;
    match s {
        Status::Systematized => "S",
        Status::Heroic => "H",
        Status::DocumentedOnly => "D",
        Status::Missing => "–",
    }
}

fn cell_months((a, b): (u8, u8)) -> String {
    if a == b { format!("{a}") } else { format!("{a}–{b}") }
}

async fn audit_report(ws: &Workspace, journey: &Path, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let Some((plan, _)) = crate::evaluate::plan(ws, journey).await? else { return Ok(ExitCode::FAILURE) };
    let as_of = args.as_of.unwrap_or_else(|| crate::now().date_naive());
    let report = keel_app::reports::audit(
        ws.store.as_ref(),
        ws.id,
        &plan,
        as_of,
        (args.from, args.to),
        args.segment.as_deref(),
    )
    .await?;
    let link_rows = || -> Vec<[String; 9]> {
        report
            .cells
            .iter()
            .flat_map(|c| {
                c.links.iter().map(move |l| {
                    [
                        c.row.clone(),
                        cell_months(c.months),
                        c.status.as_str().to_owned(),
                        c.accounts.to_string(),
                        format!("{}:{}", l.kind.as_str(), l.id),
                        l.live.to_string(),
                        pct(l.live_share),
                        l.fired.map_or("–".into(), |f| f.to_string()),
                        l.feeds.join(" "),
                    ]
                })
            })
            .collect()
    };
    let link_header = ["row", "months", "status", "accounts", "link", "live", "live share", "fired", "feeds"];
    match args.format {
        Format::Json => say!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv if args.explain => write_csv(&link_header, &link_rows())?,
        Format::Csv => {
            let rows: Vec<[String; 6]> = report
                .cells
                .iter()
                .map(|c| {
                    [
                        c.row.clone(),
                        c.months.0.to_string(),
                        c.months.1.to_string(),
                        c.status.as_str().to_owned(),
                        c.accounts.to_string(),
                        c.text.clone(),
                    ]
                })
                .collect();
            write_csv(&["row", "first_month", "last_month", "status", "accounts", "text"], &rows)?;
        }
        Format::Table => {
            say!(
                "journey-map audit: {} accounts, months over by {as_of}{}",
                report.accounts,
                args.segment.as_deref().map(|s| format!(", segment {s}")).unwrap_or_default()
            );
            say!("S systematized · H heroic (some accounts, not most) · D documented only · – missing\n");
            let mut header = vec!["row \\ month".to_owned()];
            header.extend((1..=12).map(|m| m.to_string()));
            let rows: Vec<Vec<String>> = report
                .grid
                .iter()
                .map(|(row, statuses)| {
                    let mut r = vec![row.clone()];
                    r.extend(statuses.iter().map(|s| status_code(*s).to_owned()));
                    r
                })
                .collect();
            print_rows(&header, &rows);
            let counts: Vec<String> =
                report.counts.iter().map(|(s, n)| format!("{} {n}", s.as_str().replace('_', " "))).collect();
            say!("\ngrid cells: {}", counts.join(", "));

            say!("\nrisk inventory: cells that rely on heroics, renewal where they happened vs not");
            if report.risk_inventory.is_empty() {
                say!("  none");
            } else {
                let rows: Vec<[String; 8]> = report
                    .risk_inventory
                    .iter()
                    .map(|r| {
                        let s = &r.renewal;
                        [
                            format!("{} {}", r.row, cell_months(r.months)),
                            format!("{}/{}", r.covered, r.accounts),
                            format!("{} ({}/{})", pct(s.passed.rate), s.passed.k, s.passed.n),
                            format!("{} ({}/{})", pct(s.failed.rate), s.failed.k, s.failed.n),
                            s.difference.map_or("–".into(), |d| format!("{:+.1}", d * 100.0)),
                            points_interval(s.low, s.high),
                            verdict_name(s.verdict),
                            r.text.clone(),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "cell",
                        "happened",
                        "renewed where it did",
                        "renewed where not",
                        "difference (pts)",
                        "95% interval",
                        "verdict",
                        "text",
                    ],
                    &rows,
                );
            }

            say!(
                "\nloyalty blockers against builders, largest gap first (gap: blocked and not built / accounts)"
            );
            let side = |c: &Option<(String, keel_analytics::audit::Status)>| {
                c.as_ref().map_or("(no cell)".into(), |(t, s)| format!("[{}] {t}", status_code(*s)))
            };
            for g in &report.gaps {
                let counts = match (g.blocked, g.blocked_not_built) {
                    (Some(blocked), Some(both)) => format!(
                        "{both} of {} accounts blocked and not built (blocked {blocked}, built {})",
                        g.accounts, g.built
                    ),
                    _ => format!(
                        "blockers not measurable: the cell links no moment (built {} of {})",
                        g.built, g.accounts
                    ),
                };
                let months = if g.months.0 == g.months.1 { "month" } else { "months" };
                say!("  {months} {}: gap {} — {counts}", cell_months(g.months), pct(g.gap));
                say!("    blocker {}", side(&g.blocker));
                say!("    builder {}", side(&g.builder));
            }
            if args.explain {
                say!(
                    "\nevery cell and link (live: a touchpoint logged or stage held; a metric's or moment's feeds flowing)"
                );
                print_table(&link_header, &link_rows());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn pattern_report(ws: &Workspace, journey: &Path, args: PatternArgs) -> anyhow::Result<ExitCode> {
    let Some((plan, _)) = crate::evaluate::plan(ws, journey).await? else { return Ok(ExitCode::FAILURE) };
    let as_of = args.as_of.unwrap_or_else(|| crate::now().date_naive());
    let report =
        keel_app::reports::patterns(ws.store.as_ref(), ws.id, &plan, as_of, args.segment.as_deref()).await?;
    let header = [
        "pattern",
        "accounts",
        "share",
        "renewed without",
        "renewed with",
        "cost (pts)",
        "95% interval",
        "verdict",
    ];
    let rows: Vec<[String; 8]> = report
        .patterns
        .iter()
        .map(|p| {
            let s = &p.renewal;
            [
                p.pattern.to_owned(),
                p.showing.to_string(),
                pct(p.share),
                format!("{} ({}/{})", pct(s.passed.rate), s.passed.k, s.passed.n),
                format!("{} ({}/{})", pct(s.failed.rate), s.failed.k, s.failed.n),
                s.difference.map_or("–".into(), |d| format!("{:+.1}", d * 100.0)),
                points_interval(s.low, s.high),
                verdict_name(s.verdict),
            ]
        })
        .collect();
    match args.format {
        Format::Json => say!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv => {
            write_csv(&header, &rows)?;
        }
        Format::Table => {
            say!(
                "failure patterns: {} accounts whose first term ended by {as_of} ({} renewed); cost = renewal without − with",
                report.accounts,
                report.renewed
            );
            print_table(&header, &rows);
            for p in &report.patterns {
                say!("  {}: {}", p.pattern, p.rule);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn expansion_report(ws: &Workspace, journey: &Path, args: ExpansionArgs) -> anyhow::Result<ExitCode> {
    let as_of = args.as_of.unwrap_or_else(|| crate::now().date_naive());
    let period =
        RetentionQuery { from: args.from, to: args.to, as_of, ..RetentionQuery::default() }.period()?;
    // The promoter threshold comes from the journey when there is one.
    let plan = match crate::journey::load(journey)? {
        Ok(_) => crate::evaluate::plan(ws, journey).await?.map(|(p, _)| p),
        Err(_) => None,
    };
    let mut report = keel_app::reports::expansion(
        ws.store.as_ref(),
        ws.id,
        plan.as_ref(),
        period,
        args.currency.as_deref(),
        args.segment.as_deref(),
    )
    .await?;
    if !args.explain && args.format != Format::Json {
        report.candidates.truncate(10);
    }
    let header =
        ["source", "created", "created_mrr", "won", "won_mrr", "lost", "win_rate", "open_on_to", "open_mrr"];
    let rows: Vec<[String; 9]> = report
        .by_source
        .iter()
        .chain(std::iter::once(&report.total))
        .map(|r| {
            [
                r.source.clone(),
                r.created.to_string(),
                money(r.created_mrr),
                r.won.to_string(),
                money(r.won_mrr),
                r.lost.to_string(),
                pct(r.win_rate),
                r.open_on_to.to_string(),
                money(r.open_mrr),
            ]
        })
        .collect();
    match args.format {
        Format::Json => say!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv => {
            write_csv(&header, &rows)?;
        }
        Format::Table => {
            say!(
                "expansion and cross-sell opportunities {} .. {} (to exclusive){}",
                period.from,
                period.to,
                report.currency.as_deref().map(|c| format!(", MRR in {c}")).unwrap_or_default()
            );
            print_table(&header, &rows);
            say!("\nCS-sourced share of won expansion MRR: {}", pct(report.cs_share_of_won_mrr));
            say!(
                "\nadvocacy: {} promoters (latest NPS ≥ {}) active on {}; {} of them asked in the period; {} asks in all",
                report.promoters,
                report.promoter_min_nps,
                period.to,
                report.candidates_asked,
                report.asks
            );
            for c in &report.candidates {
                say!("  {} NPS {} on {}, asked {} times", c.account, c.nps, c.responded, c.asks);
            }
            if (report.candidates.len() as u64) < report.promoters {
                say!("  … (--explain lists all {})", report.promoters);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn gate_report(ws: &Workspace, journey: &Path, args: GateArgs) -> anyhow::Result<ExitCode> {
    let Some((plan, _)) = crate::evaluate::plan(ws, journey).await? else { return Ok(ExitCode::FAILURE) };
    let as_of = args.as_of.unwrap_or_else(|| crate::now().date_naive());
    let period = keel_app::reports::gate_window(args.from, args.to, as_of)?;
    let mut extra = Vec::new();
    for source in &args.conditions {
        extra.push(
            keel_journey::compile_condition(plan.journey(), source)
                .map_err(|e| anyhow::anyhow!("--condition {source:?}: {e}"))?,
        );
    }
    let mut report = keel_app::reports::gates(
        ws.store.as_ref(),
        ws.id,
        &plan,
        period,
        as_of,
        args.lead_days,
        &extra,
        args.segment.as_deref(),
    )
    .await?;
    if !args.explain {
        report.observations = Vec::new();
    }
    let header =
        ["stage / condition", "passed renewed", "failed renewed", "difference", "95% interval", "verdict"];
    let cell = |r: &keel_analytics::backtest::Rate| format!("{} ({}/{})", pct(r.rate), r.k, r.n);
    let row = |name: String, s: &keel_analytics::gates::Split| -> [String; 6] {
        [
            name,
            cell(&s.passed),
            cell(&s.failed),
            s.difference.map_or("–".into(), |d| format!("{:+.1} pts", d * 100.0)),
            points_interval(s.low, s.high),
            verdict_name(s.verdict),
        ]
    };
    match args.format {
        Format::Json => say!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv | Format::Table => {
            let mut rows = Vec::new();
            for g in &report.stages {
                rows.push(row(format!("{} (whole gate)", g.stage), &g.whole));
                for (c, s) in &g.conditions {
                    rows.push(row(format!("  {c}"), s));
                }
            }
            for (c, s) in &report.extra {
                rows.push(row(format!("{c} (--condition, every decision)"), s));
            }
            if args.format == Format::Csv {
                let mut out = csv::Writer::from_writer(std::io::stdout().lock());
                out.write_record(header)?;
                for r in &rows {
                    out.write_record(r.iter().map(|c| c.trim()))?;
                }
                out.flush()?;
            } else {
                say!(
                    "gate validation: {} renewal decisions in {} .. {} ({} renewed), gates read {} days before each",
                    report.decisions,
                    period.from,
                    period.to,
                    report.renewed,
                    report.lead_days
                );
                say!("(a verdict needs {} decisions a side)\n", keel_analytics::gates::MIN_GROUP);
                print_table(&header, &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn health_report(ws: &Workspace, journey: &Path, args: HealthArgs) -> anyhow::Result<ExitCode> {
    let Some((plan, _)) = crate::evaluate::plan(ws, journey).await? else { return Ok(ExitCode::FAILURE) };
    let as_of = args.as_of.unwrap_or_else(|| crate::now().date_naive());
    let (from, to) = keel_app::reports::health_window(args.from, args.to, as_of);
    anyhow::ensure!(from < to, "--from {from} must come before --to {to}");
    let dates = keel_app::reports::snapshot_dates(from, to, as_of);
    anyhow::ensure!(
        !dates.is_empty(),
        "no month end in {from} .. {to} has its following 90 days known by --as-of {as_of}"
    );
    let mut report =
        keel_app::reports::health_backtest(ws.store.as_ref(), ws.id, &plan, &dates, args.segment.as_deref())
            .await?;
    if !args.explain && args.format != Format::Json {
        report.green_but_churned.truncate(10);
    }
    let rate = |r: &keel_analytics::backtest::Rate| {
        format!("{} ({}–{}; {} of {})", pct(r.rate), pct(r.low), pct(r.high), r.k, r.n)
    };
    match args.format {
        Format::Json => say!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv => {
            let mut out = csv::Writer::from_writer(std::io::stdout().lock());
            out.write_record(["band", "snapshots", "churned", "churn_rate", "low", "high"])?;
            let f = |x: Option<f64>| x.map(|x| format!("{x:.6}")).unwrap_or_default();
            for b in &report.by_band {
                let c = &b.churn;
                out.write_record([
                    b.band.clone(),
                    c.n.to_string(),
                    c.k.to_string(),
                    f(c.rate),
                    f(c.low),
                    f(c.high),
                ])?;
            }
            out.flush()?;
        }
        Format::Table => {
            say!(
                "health backtest: {} month ends from {} to {}, churn within the next 90 days",
                report.dates.len(),
                report.dates.first().map(ToString::to_string).unwrap_or_default(),
                report.dates.last().map(ToString::to_string).unwrap_or_default()
            );
            say!(
                "  snapshots {} (scored {}), churned within 90 days {}",
                report.snapshots,
                report.scored,
                report.churned
            );
            say!(
                "  ROC AUC            {} (95% interval {} – {}, bootstrapping accounts)",
                report.auc.map_or("–".into(), |a| format!("{a:.3}")),
                report.auc_low.map_or("–".into(), |a| format!("{a:.3}")),
                report.auc_high.map_or("–".into(), |a| format!("{a:.3}"))
            );
            say!(
                "  top-decile lift    {}  (lowest tenth of scores: {}; all: {})",
                report.top_decile_lift.map_or("–".into(), |l| format!("{l:.2}×")),
                rate(&report.top_decile),
                rate(&report.base)
            );
            say!("\nchurn within 90 days by band (calibration)");
            for b in &report.by_band {
                say!("  {:<8} {}", b.band, rate(&b.churn));
            }
            let shown = report.green_but_churned.len();
            say!(
                "\ngreen but churned{}",
                if args.explain { String::new() } else { format!(" (first {shown}; --explain for all)") }
            );
            for g in &report.green_but_churned {
                say!(
                    "  {} green on {} (score {}), churned {}",
                    g.account,
                    g.on,
                    g.score.map_or("–".into(), |s| format!("{s:.0}")),
                    g.churned_on
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn funnel_report(ws: &Workspace, journey: &Path, args: FunnelArgs) -> anyhow::Result<ExitCode> {
    let Some((plan, _)) = crate::evaluate::plan(ws, journey).await? else { return Ok(ExitCode::FAILURE) };
    let as_of = args.as_of.unwrap_or_else(|| crate::now().date_naive());
    let mut report =
        keel_app::reports::funnel(ws.store.as_ref(), ws.id, &plan, as_of, args.segment.as_deref()).await?;
    if let Some(p) = &args.product {
        report.product_lines.retain(|l| &l.product_line == p);
        anyhow::ensure!(!report.product_lines.is_empty(), "--product {p:?}: no line of that product line");
    }
    let days = |d: Option<f64>| d.map_or_else(String::new, |d| format!("{d:.0}"));
    let header = [
        "group",
        "stage",
        "reached",
        "converted",
        "conversion",
        "in_now",
        "ended_in",
        "dwell_p25",
        "dwell_p50",
        "dwell_p75",
        "dwell_p90",
    ];
    let rows = |group: &str, stages: &[keel_analytics::funnel::StageStats]| -> Vec<[String; 11]> {
        stages
            .iter()
            .map(|s| {
                [
                    group.to_owned(),
                    s.stage.clone(),
                    s.reached.to_string(),
                    s.converted.to_string(),
                    pct(s.conversion),
                    s.in_stage_now.to_string(),
                    s.ended_in_stage.to_string(),
                    days(s.dwell_p25),
                    days(s.dwell_p50),
                    days(s.dwell_p75),
                    days(s.dwell_p90),
                ]
            })
            .collect()
    };
    let grouped = |l: &keel_analytics::funnel::LineFunnel| -> Vec<[String; 11]> {
        let mut out = rows("all", &l.stages);
        let groups = match args.by {
            Some(FunnelBy::Segment) => Some(&l.by_segment),
            Some(FunnelBy::Cohort) => Some(&l.by_cohort),
            None => None,
        };
        for (k, stages) in groups.into_iter().flatten() {
            out.extend(rows(k, stages));
        }
        out
    };
    match args.format {
        Format::Json => say!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv => {
            let mut out = csv::Writer::from_writer(std::io::stdout().lock());
            let mut head = vec!["product_line"];
            head.extend(header);
            out.write_record(&head)?;
            for l in &report.product_lines {
                for r in grouped(l) {
                    let mut rec = vec![l.product_line.clone()];
                    rec.extend(r);
                    out.write_record(&rec)?;
                }
            }
            out.flush()?;
        }
        Format::Table => {
            for l in &report.product_lines {
                say!(
                    "{}: {} lines, stage history as of {as_of} (dwell in days, visits that moved on)",
                    l.product_line,
                    l.lines
                );
                print_table(&header, &grouped(l));
                say!();
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn cohort_report(ws: &Workspace, journey: &Path, args: CohortArgs) -> anyhow::Result<ExitCode> {
    let as_of = args.as_of.unwrap_or_else(|| crate::now().date_naive());
    // Segments come from the journey, needed only to filter by one.
    let plan = match &args.segment {
        Some(_) => match crate::evaluate::plan(ws, journey).await? {
            Some((p, _)) => Some(p),
            None => return Ok(ExitCode::FAILURE),
        },
        None => None,
    };
    let report = keel_app::reports::cohorts(
        ws.store.as_ref(),
        ws.id,
        plan.as_ref(),
        as_of,
        args.months,
        args.product.as_deref(),
        args.currency.as_deref(),
        args.segment.as_deref(),
    )
    .await?;
    match args.format {
        Format::Json => say!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv => {
            let mut out = csv::Writer::from_writer(std::io::stdout().lock());
            out.write_record([
                "cohort",
                "month",
                "accounts",
                "active",
                "start_mrr",
                "mrr",
                "logo_retention",
                "revenue_retention",
            ])?;
            let ratio = |r: Option<f64>| r.map(|r| format!("{r:.6}")).unwrap_or_default();
            for c in &report.cohorts {
                for cell in &c.cells {
                    out.write_record([
                        c.cohort.clone(),
                        cell.month.to_string(),
                        cell.accounts.to_string(),
                        cell.active.to_string(),
                        money(cell.start_mrr),
                        money(cell.mrr),
                        ratio(cell.logo_retention),
                        ratio(cell.revenue_retention),
                    ])?;
                }
            }
            out.flush()?;
        }
        Format::Table => {
            let width = report.cohorts.iter().map(|c| c.cells.len()).max().unwrap_or(0);
            for (title, pick) in [
                ("logo retention", (|c: &keel_analytics::cohorts::Cell| c.logo_retention) as fn(&_) -> _),
                ("revenue retention", |c: &keel_analytics::cohorts::Cell| c.revenue_retention),
            ] {
                say!("{title} by start month × months since start, as of {as_of}");
                let mut header = vec!["cohort".to_owned(), "accounts".to_owned()];
                header.extend((0..width).map(|k| format!("m{k}")));
                let rows: Vec<Vec<String>> = report
                    .cohorts
                    .iter()
                    .map(|c| {
                        let mut row = vec![c.cohort.clone(), c.accounts.to_string()];
                        row.extend(
                            (0..width).map(|k| c.cells.get(k).map_or(String::new(), |cell| pct(pick(cell)))),
                        );
                        row
                    })
                    .collect();
                print_rows(&header, &rows);
                say!();
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn ttv_report(ws: &Workspace, journey: &Path, args: TtvArgs) -> anyhow::Result<ExitCode> {
    let Some((plan, _)) = crate::evaluate::plan(ws, journey).await? else { return Ok(ExitCode::FAILURE) };
    let as_of = args.as_of.unwrap_or_else(|| crate::now().date_naive());
    if let (Some(from), Some(to)) = (args.from, args.to) {
        anyhow::ensure!(from < to, "--from {from} must come before --to {to}");
    }
    let mut report = keel_app::reports::ttv(
        ws.store.as_ref(),
        ws.id,
        &plan,
        as_of,
        (args.from, args.to),
        args.segment.as_deref(),
    )
    .await?;
    if !args.explain {
        report.not_reached = Vec::new();
    }
    let days = |d: Option<f64>| d.map_or_else(|| "–".to_owned(), |d| format!("{d:.1}"));
    let header =
        ["group", "accounts", "reached", "p25", "p50", "p75", "p90", "within_target", "overdue", "waiting"];
    let rows: Vec<[String; 10]> = std::iter::once(("all".to_owned(), &report.total))
        .chain(report.by_segment.iter().map(|(k, s)| (format!("segment {k}"), s)))
        .chain(report.by_cohort.iter().map(|(k, s)| (format!("cohort {k}"), s)))
        .map(|(k, s)| {
            [
                k,
                s.accounts.to_string(),
                s.reached.to_string(),
                days(s.p25),
                days(s.p50),
                days(s.p75),
                days(s.p90),
                pct(s.share_within_target),
                s.overdue.to_string(),
                s.waiting.to_string(),
            ]
        })
        .collect();
    match args.format {
        Format::Json => say!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv => {
            write_csv(&header, &rows)?;
        }
        Format::Table => {
            say!("time to value as of {as_of}: days from the first contract's start to first value");
            say!(
                "(percentiles among accounts that reached it; within_target among those that had the whole window)\n"
            );
            print_table(&header, &rows);
            if args.explain {
                say!("\naccounts without first value (overdue first)");
                let rows: Vec<[String; 5]> = report
                    .not_reached
                    .iter()
                    .map(|n| {
                        [
                            n.account.to_string(),
                            n.segment.clone().unwrap_or_default(),
                            n.start.to_string(),
                            n.tenure_days.to_string(),
                            if n.overdue { "overdue" } else { "waiting" }.to_owned(),
                        ]
                    })
                    .collect();
                print_table(&["account", "segment", "start", "tenure_days", "status"], &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn retention_report(ws: &Workspace, journey: &Path, args: RetentionArgs) -> anyhow::Result<ExitCode> {
    let query = RetentionQuery {
        from: args.from,
        to: args.to,
        as_of: args.as_of.unwrap_or_else(|| crate::now().date_naive()),
        segment: args.segment,
        product: args.product,
        currency: args.currency,
        by: args.by.map(|b| match b {
            ByArg::Month => By::Month,
            ByArg::Segment => By::Segment,
            ByArg::Product => By::Product,
            ByArg::Cohort => By::Cohort,
        }),
        explain: args.explain,
    };
    // Segments come from the journey: load it only when they are asked for.
    let plan = if query.segment.is_some() || query.by == Some(By::Segment) {
        let Some((plan, _)) = crate::evaluate::plan(ws, journey).await? else { return Ok(ExitCode::FAILURE) };
        Some(plan)
    } else {
        None
    };
    let report = keel_app::reports::retention(ws.store.as_ref(), ws.id, plan.as_ref(), &query)
        .await
        .map_err(|e| match e {
            ReportError::UnknownSegment { .. } => anyhow::anyhow!("--{e}"),
            other => other.into(),
        })?;
    match args.format {
        Format::Json => say!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv => csv_report(&report, args.explain)?,
        Format::Table => table_report(&report, args.explain),
    }
    Ok(ExitCode::SUCCESS)
}

fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "–".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

fn money(d: Decimal) -> String {
    format!("{:.2}", d.round_dp(2))
}

const COLUMNS: [&str; 13] = [
    "group",
    "starting_accounts",
    "starting_mrr",
    "ending_mrr",
    "expansion_mrr",
    "contraction_mrr",
    "churned_mrr",
    "nrr",
    "grr",
    "logo_churn",
    "renewals_due",
    "renewal_rate",
    "new_mrr",
];

fn row(key: &str, r: &Retention) -> [String; 13] {
    [
        key.to_owned(),
        r.starting_accounts.to_string(),
        money(r.starting_mrr),
        money(r.ending_mrr),
        money(r.expansion_mrr),
        money(r.contraction_mrr),
        money(r.churned_mrr),
        pct(r.nrr),
        pct(r.grr),
        pct(r.logo_churn),
        r.renewals_due.to_string(),
        pct(r.renewal_rate),
        money(r.new_mrr),
    ]
}

fn csv_report(report: &RetentionReport, explain: bool) -> anyhow::Result<()> {
    let mut out = csv::Writer::from_writer(std::io::stdout().lock());
    if explain {
        out.write_record(["account", "start_mrr", "end_mrr", "class"])?;
        for a in &report.total.accounts {
            out.write_record([a.account.as_str(), &money(a.start_mrr), &money(a.end_mrr), a.class.as_str()])?;
        }
    } else {
        out.write_record(COLUMNS)?;
        let ratio = |r: Option<f64>| r.map(|r| format!("{r:.6}")).unwrap_or_default();
        for (key, r) in std::iter::once(("all", &report.total))
            .chain(report.groups.iter().map(|g| (g.key.as_str(), &g.retention)))
        {
            let mut cells = row(key, r);
            // Machine-readable ratios: fractions, empty when undefined.
            cells[7] = ratio(r.nrr);
            cells[8] = ratio(r.grr);
            cells[9] = ratio(r.logo_churn);
            cells[11] = ratio(r.renewal_rate);
            out.write_record(&cells)?;
        }
    }
    out.flush()?;
    Ok(())
}

fn table_report(report: &RetentionReport, explain: bool) {
    let t = &report.total;
    let cur = report.currency.as_deref().unwrap_or("");
    say!(
        "revenue retention {} .. {} (to exclusive){}",
        t.period.from,
        t.period.to,
        if cur.is_empty() { String::new() } else { format!(", MRR in {cur}") }
    );
    say!("  starting accounts   {:>12}", t.starting_accounts);
    say!("  starting MRR        {:>12}", money(t.starting_mrr));
    say!("  + expansion         {:>12}", money(t.expansion_mrr));
    say!("  − contraction       {:>12}", money(t.contraction_mrr));
    say!("  − churned           {:>12}  ({} accounts)", money(t.churned_mrr), t.churned_accounts);
    say!("  = ending MRR        {:>12}", money(t.ending_mrr));
    say!("  NRR                 {:>12}", pct(t.nrr));
    say!("  GRR                 {:>12}", pct(t.grr));
    say!("  logo churn          {:>12}", pct(t.logo_churn));
    say!(
        "  renewal rate        {:>12}  ({} of {} lines due; {} by MRR)",
        pct(t.renewal_rate),
        t.renewals_renewed,
        t.renewals_due,
        pct(t.renewal_rate_mrr)
    );
    say!("  new accounts        {:>12}  ({} MRR, outside NRR/GRR)", t.new_accounts, money(t.new_mrr));
    let s = &report.tenure_split;
    say!("\ntenure on {} (seed 000: GRR is decided in months 1–6, NRR in months 7+)", t.period.from);
    say!(
        "  months 1–6  {:>6} accounts  GRR {:>7}  NRR {:>7}",
        s.early.starting_accounts,
        pct(s.early.grr),
        pct(s.early.nrr)
    );
    say!(
        "  months 7+   {:>6} accounts  GRR {:>7}  NRR {:>7}",
        s.late.starting_accounts,
        pct(s.late.grr),
        pct(s.late.nrr)
    );
    if let Some(d) = &s.diagnostic {
        say!("  ! {d}");
    }
    if !s.pointers.is_empty() {
        say!(
            "  where the early losses point (gates not passed by the end of month 3, moments of months 1–3):"
        );
        let rows: Vec<[String; 5]> = s
            .pointers
            .iter()
            .map(|p| {
                let what = match p.kind {
                    keel_analytics::retention::PointerKind::Gate => format!("    {} exit gate open", p.id),
                    keel_analytics::retention::PointerKind::Moment => format!("    moment {}", p.id),
                };
                [
                    what,
                    format!("{} ({})", p.accounts, pct(p.share)),
                    p.churned.to_string(),
                    pct(p.churn_showing),
                    pct(p.churn_rest),
                ]
            })
            .collect();
        print_table(&["", "early accounts", "churned", "churn showing it", "churn without"], &rows);
    }
    if !report.groups.is_empty() {
        say!();
        let rows: Vec<[String; 13]> = report.groups.iter().map(|g| row(&g.key, &g.retention)).collect();
        print_table(&COLUMNS, &rows);
    }
    if explain {
        say!("\nstarting accounts (the rows add up to the headline)");
        let rows: Vec<[String; 4]> = t
            .accounts
            .iter()
            .map(|a| {
                [a.account.to_string(), money(a.start_mrr), money(a.end_mrr), a.class.as_str().to_owned()]
            })
            .collect();
        print_table(&["account", "start_mrr", "end_mrr", "class"], &rows);
        say!("\nlines due for renewal");
        let rows: Vec<[String; 5]> = t
            .renewals
            .iter()
            .map(|l| {
                [
                    l.line.to_string(),
                    l.account.to_string(),
                    l.end.to_string(),
                    money(l.mrr),
                    if l.renewed { "renewed" } else { "not renewed" }.to_owned(),
                ]
            })
            .collect();
        print_table(&["line", "account", "end", "mrr", "outcome"], &rows);
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
        _ => "–".into(),
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
