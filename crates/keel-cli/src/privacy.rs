//! `keel backup`, `keel restore`, `keel forget`, `keel export` and
//! `keel audit`: the operator's side of data protection.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use keel_store::{AuditEntry, DbUrl};

use crate::Workspace;

/// `keel backup`.
#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// The file to write (must not exist). Consistent even while `keel serve` writes.
    to: PathBuf,
}

/// `keel restore`.
#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// A file `keel backup` wrote. It replaces the database (--db), which no
    /// `keel serve` may have open.
    from: PathBuf,
}

/// `keel forget`.
#[derive(Debug, Args)]
pub(crate) struct ForgetArgs {
    #[command(subcommand)]
    what: PersonCommand,
    /// The request this answers (a ticket number), kept in the audit log
    /// instead of the person's identity.
    #[arg(long, global = true)]
    reference: Option<String>,
}

/// `keel export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[command(subcommand)]
    what: PersonCommand,
}

#[derive(Debug, Subcommand)]
enum PersonCommand {
    /// A person: by contact id, product user id or email.
    Contact {
        /// Contact id, product user id or email.
        who: String,
    },
}

/// `keel audit`.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// How many entries, newest first.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

/// Who runs this command, for the audit log.
pub(crate) fn cli_actor() -> String {
    format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
}

/// Appends an admin action to the workspace's audit log.
pub(crate) async fn audit(ws: &Workspace, action: &str, subject: &str, detail: String) -> anyhow::Result<()> {
    let entry = AuditEntry {
        at: crate::now(),
        actor: cli_actor(),
        action: action.to_owned(),
        subject: subject.to_owned(),
        detail,
    };
    ws.store.append_audit(ws.id, &entry).await.context("writing the audit log")
}

pub(crate) async fn backup(ws: &Workspace, args: BackupArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!args.to.exists(), "{} exists already; name a new file", args.to.display());
    ws.store.backup(&args.to).await.with_context(|| format!("backing up to {}", args.to.display()))?;
    let bytes = std::fs::metadata(&args.to).map(|m| m.len()).unwrap_or(0);
    say!("backed up {} to {} ({bytes} bytes)", ws.url, args.to.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn restore(db: &str, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let DbUrl::Sqlite(path) = DbUrl::parse(db)?;
    keel_store::restore_file(&args.from, std::path::Path::new(&path))
        .with_context(|| format!("restoring {} into {path}", args.from.display()))?;
    say!("restored {} into {path}", args.from.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn forget(ws: &Workspace, args: ForgetArgs) -> anyhow::Result<ExitCode> {
    let PersonCommand::Contact { who } = args.what;
    let Some(report) = ws.store.forget_person(ws.id, who.trim()).await? else {
        anyhow::bail!("workspace {:?} holds no contact, user or email {who:?}", ws.name);
    };
    for (place, n) in &report.changed {
        say!("{n:>8}  {place}");
    }
    say!("forgotten: {} rows changed; product usage stays counted under a random pseudonym", report.total());
    // The log keeps the request's reference, never the person's identity.
    let subject = args.reference.unwrap_or_else(|| "(no reference given)".into());
    audit(ws, "person.forgotten", &subject, format!("{} rows changed", report.total())).await?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn export(ws: &Workspace, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let PersonCommand::Contact { who } = args.what;
    let Some(data) = ws.store.person(ws.id, who.trim()).await? else {
        anyhow::bail!("workspace {:?} holds no contact, user or email {who:?}", ws.name);
    };
    say!("{}", serde_json::to_string_pretty(&data)?);
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn audit_log(ws: &Workspace, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let entries = ws.store.audit_log(ws.id, args.limit.max(1)).await?;
    for e in &entries {
        if args.json {
            say!("{}", serde_json::to_string(e)?);
        } else {
            say!(
                "{}  {:<20} {:<18} {:<28} {}",
                e.at.format("%Y-%m-%d %H:%M:%S"),
                e.actor,
                e.action,
                e.subject,
                e.detail
            );
        }
    }
    if entries.is_empty() && !args.json {
        say!("no admin actions recorded");
    }
    Ok(ExitCode::SUCCESS)
}
