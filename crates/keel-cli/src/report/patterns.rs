//! `keel report patterns`: failure patterns and renewal with vs without each.

use super::*;

pub(super) async fn pattern_report(
    ws: &Workspace,
    journey: &Path,
    args: PatternArgs,
) -> anyhow::Result<ExitCode> {
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
                points(s.difference),
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
