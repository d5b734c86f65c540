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
    let (_, refused) = ws.store.rejections(ws.id, 1).await?;
    if refused.is_empty() {
        say!("  no ingest rejections");
    } else {
        let total: u64 = refused.iter().map(|(_, n)| n).sum();
        let by: Vec<String> = refused.iter().map(|(c, n)| format!("{c} {n}")).collect();
        say!("  ingest rejections kept: {total} ({}); `keel ingest rejections` lists them", by.join(", "));
    }
    let held = ws.store.held_count(ws.id).await?;
    if held > 0 {
        say!(
            "  messages held for users in no account yet: {held} (attributed when a group call names the user)"
        );
    }
    Ok(())
}

/// `keel ingest`: what the server's ingest refused.
#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    #[command(subcommand)]
    command: IngestCommand,
}

#[derive(Debug, clap::Subcommand)]
enum IngestCommand {
    /// The Segment messages the server refused, newest first, with their codes and reasons.
    Rejections {
        /// How many to list.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn ingest(db: &str, workspace: &str, args: IngestArgs) -> anyhow::Result<()> {
    let ws = crate::open_workspace(db, workspace).await?;
    let IngestCommand::Rejections { limit, json } = args.command;
    let (rows, _) = ws.store.rejections(ws.id, limit.max(1)).await?;
    for r in &rows {
        if json {
            say!("{}", serde_json::to_string(r)?);
        } else {
            say!(
                "{}  {:<20} {:<24} {:<16} {}",
                r.at.format("%Y-%m-%d %H:%M:%S"),
                r.code,
                r.message_id.as_deref().unwrap_or("-"),
                r.user_id.as_deref().unwrap_or("-"),
                r.reason
            );
        }
    }
    if rows.is_empty() && !json {
        say!("no ingest rejections");
    }
    Ok(())
}
