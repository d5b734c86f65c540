//! `keel report audit`: the journey-map grid, the risk inventory and the blocker/builder gaps.

use super::*;

/// The one-letter code of a status in the grid.
fn status_code(s: keel_analytics::audit::Status) -> &'static str {
    use keel_analytics::audit::Status;
    match s {
        Status::Systematized => "S",
        Status::Heroic => "H",
        Status::DocumentedOnly => "D",
        Status::Missing => "–",
    }
}

fn cell_months((a, b): (u8, u8)) -> String {
    if a == b { format!("{a}") } else { format!("{a}–{b}") }
}

pub(super) async fn audit_report(
    ws: &Workspace,
    journey: &Path,
    args: AuditArgs,
) -> anyhow::Result<ExitCode> {
    let Some((plan, _)) = crate::evaluate::plan(ws, journey).await? else { return Ok(ExitCode::FAILURE) };
    let as_of = args.as_of.unwrap_or_else(|| crate::now().date_naive());
    let report = keel_app::reports::audit(
        ws.store.as_ref(),
        ws.id,
        &plan,
        as_of,
        (args.from, args.to),
        args.segment.as_deref(),
    )
    .await?;
    let link_rows = || -> Vec<[String; 9]> {
        report
            .cells
            .iter()
            .flat_map(|c| {
                c.links.iter().map(move |l| {
                    [
                        c.row.clone(),
                        cell_months(c.months),
                        c.status.as_str().to_owned(),
                        c.accounts.to_string(),
                        format!("{}:{}", l.kind.as_str(), l.id),
                        l.live.to_string(),
                        pct(l.live_share),
                        l.fired.map_or(UNDEFINED.into(), |f| f.to_string()),
                        l.feeds.join(" "),
                    ]
                })
            })
            .collect()
    };
    let link_header = ["row", "months", "status", "accounts", "link", "live", "live share", "fired", "feeds"];
    match args.format {
        Format::Json => say!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv if args.explain => write_csv(&link_header, &link_rows())?,
        Format::Csv => {
            let rows: Vec<[String; 6]> = report
                .cells
                .iter()
                .map(|c| {
                    [
                        c.row.clone(),
                        c.months.0.to_string(),
                        c.months.1.to_string(),
                        c.status.as_str().to_owned(),
                        c.accounts.to_string(),
                        c.text.clone(),
                    ]
                })
                .collect();
            write_csv(&["row", "first_month", "last_month", "status", "accounts", "text"], &rows)?;
        }
        Format::Table => {
            say!(
                "journey-map audit: {} accounts, months over by {as_of}{}",
                report.accounts,
                args.segment.as_deref().map(|s| format!(", segment {s}")).unwrap_or_default()
            );
            say!("S systematized · H heroic (some accounts, not most) · D documented only · – missing\n");
            let mut header = vec!["row \\ month".to_owned()];
            header.extend((1..=12).map(|m| m.to_string()));
            let rows: Vec<Vec<String>> = report
                .grid
                .iter()
                .map(|(row, statuses)| {
                    let mut r = vec![row.clone()];
                    r.extend(statuses.iter().map(|s| status_code(*s).to_owned()));
                    r
                })
                .collect();
            print_rows(&header, &rows);
            let counts: Vec<String> =
                report.counts.iter().map(|(s, n)| format!("{} {n}", s.as_str().replace('_', " "))).collect();
            say!("\ngrid cells: {}", counts.join(", "));

            say!("\nrisk inventory: cells that rely on heroics, renewal where they happened vs not");
            if report.risk_inventory.is_empty() {
                say!("  none");
            } else {
                let rows: Vec<[String; 8]> = report
                    .risk_inventory
                    .iter()
                    .map(|r| {
                        let s = &r.renewal;
                        [
                            format!("{} {}", r.row, cell_months(r.months)),
                            format!("{}/{}", r.covered, r.accounts),
                            format!("{} ({}/{})", pct(s.passed.rate), s.passed.k, s.passed.n),
                            format!("{} ({}/{})", pct(s.failed.rate), s.failed.k, s.failed.n),
                            points(s.difference),
                            points_interval(s.low, s.high),
                            verdict_name(s.verdict),
                            r.text.clone(),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "cell",
                        "happened",
                        "renewed where it did",
                        "renewed where not",
                        "difference (pts)",
                        "95% interval",
                        "verdict",
                        "text",
                    ],
                    &rows,
                );
            }

            say!(
                "\nloyalty blockers against builders, largest gap first (gap: blocked and not built / accounts)"
            );
            let side = |c: &Option<(String, keel_analytics::audit::Status)>| {
                c.as_ref().map_or("(no cell)".into(), |(t, s)| format!("[{}] {t}", status_code(*s)))
            };
            for g in &report.gaps {
                let counts = match (g.blocked, g.blocked_not_built) {
                    (Some(blocked), Some(both)) => format!(
                        "{both} of {} accounts blocked and not built (blocked {blocked}, built {})",
                        g.accounts, g.built
                    ),
                    _ => format!(
                        "blockers not measurable: the cell links no moment (built {} of {})",
                        g.built, g.accounts
                    ),
                };
                let months = if g.months.0 == g.months.1 { "month" } else { "months" };
                say!("  {months} {}: gap {} — {counts}", cell_months(g.months), pct(g.gap));
                say!("    blocker {}", side(&g.blocker));
                say!("    builder {}", side(&g.builder));
            }
            if args.explain {
                say!(
                    "\nevery cell and link (live: a touchpoint logged or stage held; a metric's or moment's feeds flowing)"
                );
                print_table(&link_header, &link_rows());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
