//! `keel report retention`: GRR, NRR, churn and renewals, as a table or CSV.

use super::*;

pub(super) async fn retention_report(
    ws: &Workspace,
    journey: &Path,
    args: RetentionArgs,
) -> anyhow::Result<ExitCode> {
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
