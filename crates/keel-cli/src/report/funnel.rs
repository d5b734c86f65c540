//! `keel report funnel`: stage conversion and dwell per product line.

use super::*;

pub(super) async fn funnel_report(
    ws: &Workspace,
    journey: &Path,
    args: FunnelArgs,
) -> anyhow::Result<ExitCode> {
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
