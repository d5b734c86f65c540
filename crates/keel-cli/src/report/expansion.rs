//! `keel report expansion`: expansion by source and the candidates.

use super::*;

pub(super) async fn expansion_report(
    ws: &Workspace,
    journey: &Path,
    args: ExpansionArgs,
) -> anyhow::Result<ExitCode> {
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
