//! `keel features`: the feature table for learning, as CSV.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use keel_core::Date;

/// `keel features --dates … --out …`.
#[derive(Debug, Args)]
pub(crate) struct FeaturesArgs {
    /// The dates (YYYY-MM-DD, comma-separated): one row per account active on each.
    #[arg(long, value_delimiter = ',', value_parser = keel_core::parse_date, conflicts_with_all = ["from", "to"])]
    dates: Vec<Date>,
    /// With --to instead of --dates: every month end from this date on.
    #[arg(long, value_parser = keel_core::parse_date, requires = "to")]
    from: Option<Date>,
    /// With --from: every month end before this date.
    #[arg(long, value_parser = keel_core::parse_date, requires = "from")]
    to: Option<Date>,
    /// Outcomes count only when known by this date (YYYY-MM-DD); default: today.
    #[arg(long, value_parser = keel_core::parse_date)]
    as_of: Option<Date>,
    /// The CSV file to write (`-`: standard output).
    #[arg(long)]
    out: PathBuf,
}

pub(crate) async fn run(
    ws: &crate::Workspace,
    journey: &Path,
    args: FeaturesArgs,
) -> anyhow::Result<ExitCode> {
    let Some((plan, version)) = crate::evaluate::plan(ws, journey).await? else {
        return Ok(ExitCode::FAILURE);
    };
    let mut dates = match (args.from, args.to) {
        (Some(from), Some(to)) => {
            anyhow::ensure!(from < to, "--from {from} must come before --to {to}");
            keel_app::reports::month_ends(from, to)
        }
        _ => args.dates,
    };
    dates.sort();
    dates.dedup();
    anyhow::ensure!(!dates.is_empty(), "no date: give --dates D1,D2,… or --from and --to (month ends)");
    let known = args.as_of.unwrap_or_else(|| crate::now().date_naive());
    let to_stdout = args.out.as_os_str() == "-";
    let sink: Box<dyn std::io::Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        let file =
            std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
        Box::new(std::io::BufWriter::new(file))
    };
    let mut csv = csv::Writer::from_writer(sink);
    csv.write_record(keel_app::features::columns(&plan))?;
    let made =
        keel_app::features::features(ws.store.as_ref(), ws.id, &plan, &version, &dates, known, |rows| {
            for row in &rows {
                csv.write_record(keel_app::features::values(&plan, row)).map_err(std::io::Error::other)?;
            }
            Ok(())
        })
        .await?;
    csv.flush()?;
    if !to_stdout {
        let mut err = std::io::stderr().lock();
        writeln!(
            err,
            "features: {} rows on {} dates ({} to {}) to {}; {} accounts read from the timeline, {} evaluated",
            made.rows,
            dates.len(),
            dates[0],
            dates[dates.len() - 1],
            args.out.display(),
            made.from_timeline,
            made.evaluated
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
