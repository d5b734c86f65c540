//! `keel report plays`: per play, treated vs holdout and the uplift; per owner, the task load.

use super::*;

pub(super) async fn plays_report(
    ws: &Workspace,
    journey: &Path,
    args: PlaysArgs,
) -> anyhow::Result<ExitCode> {
    let Ok(j) = crate::journey::load(journey)? else { return Ok(ExitCode::FAILURE) };
    let as_of = args.as_of.unwrap_or_else(|| crate::now().date_naive());
    let report = keel_app::reports::plays(ws.store.as_ref(), ws.id, &j, as_of).await?;
    let header = [
        "play",
        "triggered",
        "treated",
        "holdout",
        "suppressed",
        "held",
        "deferred",
        "completed",
        "open",
        "outcome treated",
        "outcome holdout",
        "uplift (pts)",
        "95% interval",
        "effect",
    ];
    let rows: Vec<[String; 14]> = report
        .plays
        .iter()
        .map(|p| {
            let suppressed: u64 = p.suppressed.values().sum();
            let (treated, holdout, uplift, interval) = match &p.outcome {
                Some(s) => (
                    format!("{} ({}/{})", pct(s.passed.rate), s.passed.k, s.passed.n),
                    format!("{} ({}/{})", pct(s.failed.rate), s.failed.k, s.failed.n),
                    points(s.difference),
                    points_interval(s.low, s.high),
                ),
                None => (UNDEFINED.into(), UNDEFINED.into(), UNDEFINED.into(), UNDEFINED.into()),
            };
            let effect = p.effect.map_or("no outcome defined".to_owned(), |e| {
                serde_json::to_value(e)
                    .ok()
                    .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
                    .unwrap_or_default()
            });
            [
                p.play.clone(),
                p.triggered.to_string(),
                p.treated.to_string(),
                p.holdout.to_string(),
                suppressed.to_string(),
                p.held_for_approval.to_string(),
                p.deferred.to_string(),
                p.completed.to_string(),
                p.open.to_string(),
                treated,
                holdout,
                uplift,
                interval,
                effect,
            ]
        })
        .collect();
    match args.format {
        Format::Json => say!("{}", serde_json::to_string_pretty(&report)?),
        Format::Csv => write_csv(&header, &rows)?,
        Format::Table => {
            say!(
                "plays: outcome = the play's expected outcome within its window; uplift = treated − holdout\n"
            );
            let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
            print_rows(&header, &rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>());
            let reasons: Vec<String> = report
                .plays
                .iter()
                .flat_map(|p| p.suppressed.iter().map(move |(rule, n)| format!("{} × {n} by {rule}", p.play)))
                .collect();
            if !reasons.is_empty() {
                say!("\nsuppressed: {}", reasons.join("; "));
            }
            say!("\ntasks by owner (as of {as_of}, most overdue first)");
            let header: Vec<String> = ["owner", "open", "overdue", "done"].map(String::from).to_vec();
            let owners: Vec<Vec<String>> = report
                .owners
                .iter()
                .map(|o| vec![o.owner.clone(), o.open.to_string(), o.overdue.to_string(), o.done.to_string()])
                .collect();
            print_rows(&header, &owners);
        }
    }
    Ok(ExitCode::SUCCESS)
}
