//! `keel status`: what a workspace holds.

use clap::Args;

/// Show counts per kind, the date ranges covered and the last import.
#[derive(Debug, Default, Args)]
pub(crate) struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(db: &str, workspace: &str, args: StatusArgs) -> anyhow::Result<()> {
    let ws = crate::open_workspace(db, workspace).await?;
    let status = ws.store.status(ws.id).await?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    say!("workspace {} in {}", ws.name, ws.url);
    for (kind, n) in &status.counts {
        say!("  {:<14} {n:>12}", kind.as_str());
    }
    match &status.events_span {
        Some((lo, hi)) => say!("  events from {} to {}", lo.format("%Y-%m-%d"), hi.format("%Y-%m-%d")),
        None => say!("  no events yet"),
    }
    if let Some((lo, hi)) = &status.contracts_span {
        say!("  contracts from {lo} to {hi}");
    }
    match &status.last_import {
        Some(i) => say!(
            "  last import: {} from {} at {} ({} inserted, {} updated, {} unchanged, {} rejected)",
            i.kind,
            i.source,
            i.finished_at.format("%Y-%m-%d %H:%M:%S UTC"),
            i.counts.inserted,
            i.counts.updated,
            i.counts.unchanged,
            i.rejected
        ),
        None => say!("  no imports yet"),
    }
    Ok(())
}
