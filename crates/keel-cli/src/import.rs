//! `keel import`: files in, a per-file summary and every rejected row out.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use keel_core::EntityKind;
use keel_import::{Format, ImportOptions, Outcome};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Kind {
    Accounts,
    Contracts,
    Contacts,
    Events,
    Tickets,
    Surveys,
    Touchpoints,
    Opportunities,
}

impl From<Kind> for EntityKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Accounts => EntityKind::Accounts,
            Kind::Contracts => EntityKind::Contracts,
            Kind::Contacts => EntityKind::Contacts,
            Kind::Events => EntityKind::Events,
            Kind::Tickets => EntityKind::Tickets,
            Kind::Surveys => EntityKind::Surveys,
            Kind::Touchpoints => EntityKind::Touchpoints,
            Kind::Opportunities => EntityKind::Opportunities,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum FormatArg {
    Csv,
    Jsonl,
}

/// Load records from CSV or JSONL files.
///
/// Each file is one transaction: if any row is bad, nothing from that file
/// is stored (unless --allow-partial) and every bad row is reported as
/// FILE:LINE: COLUMN: REASON. Records are matched by id, events by message
/// id, so importing the same file again changes nothing.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// What the files hold.
    kind: Kind,
    /// The files (.csv, .tsv, .jsonl or .ndjson).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The file format, when the extension does not say.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// The CSV field separator (default ',' or tab for .tsv).
    #[arg(long)]
    delimiter: Option<char>,
    /// Check every row (against the store too) and store nothing.
    #[arg(long)]
    dry_run: bool,
    /// Store the good rows even if some are bad (exit code 2 when rows were rejected).
    #[arg(long)]
    allow_partial: bool,
    /// How many rejected rows to print per file.
    #[arg(long, default_value_t = 50)]
    max_errors: usize,
}

pub(crate) async fn run(
    db: &str,
    workspace: &str,
    window: keel_core::TimeWindow,
    journey: &std::path::Path,
    args: ImportArgs,
) -> anyhow::Result<ExitCode> {
    let ws = crate::open_workspace(db, workspace).await?;
    let delimiter = match args.delimiter {
        Some(c) if c.is_ascii() => Some(c as u8),
        Some(c) => anyhow::bail!("--delimiter {c:?} must be a single ASCII character"),
        None => None,
    };
    let mut worst = ExitCode::SUCCESS;
    let mut wrote = false;
    for path in &args.files {
        let options = ImportOptions {
            kind: args.kind.into(),
            format: args.format.map(|f| match f {
                FormatArg::Csv => Format::Csv,
                FormatArg::Jsonl => Format::Jsonl,
            }),
            delimiter,
            dry_run: args.dry_run,
            allow_partial: args.allow_partial,
            now: crate::now(),
            window,
        };
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let bar = if size > 4 << 20 {
            let bar = ProgressBar::new(size);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(path.display().to_string());
            bar
        } else {
            ProgressBar::hidden()
        };
        let report =
            keel_import::import(ws.store.as_ref(), ws.id, path, &options, &|bytes| bar.set_position(bytes))
                .await?;
        bar.finish_and_clear();
        for d in report.diagnostics.iter().take(args.max_errors) {
            eprintln!("{d}");
        }
        let shown = report.diagnostics.len().min(args.max_errors) as u64;
        if report.rejected > 0 && (report.diagnostics.len() as u64) > shown {
            eprintln!(
                "{}: … {} more problems not shown (--max-errors)",
                report.file,
                report.diagnostics.len() as u64 - shown
            );
        }
        let c = report.counts;
        let verdict = match report.outcome {
            Outcome::Committed if report.rejected > 0 => "imported the good rows",
            Outcome::Committed => "imported",
            Outcome::DryRun => "dry run, nothing stored",
            Outcome::RolledBack => "rejected, nothing stored",
        };
        let unchanged = if options.kind == EntityKind::Events { "duplicate" } else { "unchanged" };
        say!(
            "{}: {verdict}: {} rows, {} inserted, {} updated, {} {unchanged}, {} rejected",
            report.file,
            report.rows,
            c.inserted,
            c.updated,
            c.unchanged,
            report.rejected
        );
        wrote |= report.outcome == Outcome::Committed && c.inserted + c.updated > 0;
        match report.outcome {
            Outcome::RolledBack => worst = ExitCode::FAILURE,
            Outcome::DryRun if report.rejected > 0 => worst = ExitCode::FAILURE,
            Outcome::Committed if report.rejected > 0 && worst == ExitCode::SUCCESS => {
                worst = ExitCode::from(2)
            }
            _ => {}
        }
    }
    if wrote {
        crate::timeline::keep_after_write(&ws, journey).await?;
    }
    Ok(worst)
}
