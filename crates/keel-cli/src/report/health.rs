//! `keel report health`: the health backtest (AUC, lift, churn per band).

use super::*;

pub(super) async fn health_report(
    ws: &Workspace,
    journey: &Path,
    args: HealthArgs,
) -> anyhow::Result<ExitCode> {
    let Some((plan, _)) = crate::evaluate::plan(ws, journey).await? else {
        return Ok(ExitCode::FAILURE);
    };
    let as_of = args.as_of.unwrap_or_else(|| crate::now().date_naive());
    let (from, to) = keel_app::reports::health_window(args.from, args.to, as_of);
    anyhow::ensure!(from < to, "--from {from} must come before --to {to}");
    let dates = keel_app::reports::snapshot_dates(from, to, as_of);
    anyhow::ensure!(
        !dates.is_empty(),
        "no month end in {from} .. {to} has its following 90 days known by --as-of {as_of}"
    );
    let mut report = keel_app::reports::health_backtest(
        ws.store.as_ref(),
        ws.id,
        &plan,
        // The timeline's JSON rows cost more to read than evaluating a
        // dozen month ends (docs/ARCHITECTURE.md, "Reading the timeline"):
        // evaluated until the columnar layout lands.
        None,
        &dates,
        args.segment.as_deref(),
    )
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
                report.auc.map_or(UNDEFINED.into(), |a| format!("{a:.3}")),
                report.auc_low.map_or(UNDEFINED.into(), |a| format!("{a:.3}")),
                report.auc_high.map_or(UNDEFINED.into(), |a| format!("{a:.3}"))
            );
            say!(
                "  top-decile lift    {}  (lowest tenth of scores: {}; all: {})",
                report.top_decile_lift.map_or(UNDEFINED.into(), |l| format!("{l:.2}×")),
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
                    g.score.map_or(UNDEFINED.into(), |s| format!("{s:.0}")),
                    g.churned_on
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
