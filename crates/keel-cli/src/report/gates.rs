//! `keel report gates`: whether each exit gate predicts renewal.

use super::*;

pub(super) async fn gate_report(ws: &Workspace, journey: &Path, args: GateArgs) -> anyhow::Result<ExitCode> {
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
            format!("{} pts", points(s.difference)),
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
