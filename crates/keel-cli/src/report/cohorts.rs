//! `keel report cohorts`: logo and revenue retention by start cohort.

use super::*;

pub(super) async fn cohort_report(
    ws: &Workspace,
    journey: &Path,
    args: CohortArgs,
) -> anyhow::Result<ExitCode> {
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
