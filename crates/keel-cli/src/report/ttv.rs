//! `keel report ttv`: time to value, its distribution and the accounts not there yet.

use super::*;

pub(super) async fn ttv_report(ws: &Workspace, journey: &Path, args: TtvArgs) -> anyhow::Result<ExitCode> {
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
    let days = |d: Option<f64>| d.map_or_else(|| UNDEFINED.to_owned(), |d| format!("{d:.1}"));
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
