//! `keel tasks`, `keel outbox` and `keel simulate`: the CSM's inbox, the
//! approval outbox, and replaying the world forward day by day so plays fire.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use keel_app::runner::{self, ActionError};
use keel_core::{Date, ExternalId};
use keel_journey::Journey;
use keel_store::{TaskQuery, TaskRow};

use crate::Workspace;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Aligned text.
    Table,
    /// One JSON document.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct TasksArgs {
    #[command(subcommand)]
    command: Option<TaskCommand>,
    /// Only this owner's tasks.
    #[arg(long)]
    owner: Option<String>,
    /// Only these statuses: open, snoozed, done, cancelled (comma-separated; default open,snoozed).
    #[arg(long, value_delimiter = ',')]
    status: Vec<String>,
    /// Only tasks past their due day (as of --as-of).
    #[arg(long)]
    overdue: bool,
    /// Only this account's tasks.
    #[arg(long)]
    account: Option<String>,
    /// The day overdue is judged on (default: today).
    #[arg(long, value_parser = keel_core::parse_date)]
    as_of: Option<Date>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Debug, Subcommand)]
enum TaskCommand {
    /// Mark a task done with what came of it; logs its touchpoint.
    Done {
        /// Task id.
        id: i64,
        /// What came of it.
        #[arg(long)]
        outcome: String,
        /// Who did it (default: the task's owner).
        #[arg(long)]
        by: Option<String>,
    },
    /// Snooze a task until a day, with a reason.
    Snooze {
        /// Task id.
        id: i64,
        /// The day it comes back.
        #[arg(long, value_parser = keel_core::parse_date)]
        until: Date,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

fn journey_or_exit(path: &Path) -> anyhow::Result<Result<Journey, ExitCode>> {
    Ok(match crate::journey::load(path)? {
        Ok(j) => Ok(j),
        Err(_) => Err(ExitCode::FAILURE),
    })
}

fn refused(e: ActionError) -> anyhow::Result<ExitCode> {
    match e {
        ActionError::Store(e) => Err(e.into()),
        other => {
            eprintln!("error: {other}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub(crate) async fn tasks(ws: &Workspace, journey: &Path, args: TasksArgs) -> anyhow::Result<ExitCode> {
    let now = crate::now();
    match args.command {
        Some(TaskCommand::Done { id, outcome, by }) => {
            match runner::complete_task(ws.store.as_ref(), ws.id, id, &outcome, by.as_deref(), now).await {
                Ok(t) => say!("task {id} done: {} — {}", t.title, t.outcome.unwrap_or_default()),
                Err(e) => return refused(e),
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some(TaskCommand::Snooze { id, until, reason }) => {
            let j = match journey_or_exit(journey)? {
                Ok(j) => j,
                Err(code) => return Ok(code),
            };
            match runner::snooze_task(ws.store.as_ref(), ws.id, &j, id, until, &reason, now).await {
                Ok(t) => say!("task {id} snoozed until {until}: {}", t.title),
                Err(e) => return refused(e),
            }
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }
    let as_of = args.as_of.unwrap_or_else(|| now.date_naive());
    let statuses = if args.status.is_empty() && !args.overdue {
        vec!["open".into(), "snoozed".into()]
    } else {
        args.status
    };
    let account = args.account.as_deref().map(ExternalId::parse).transpose().context("--account")?;
    let query = TaskQuery {
        owner: args.owner,
        statuses,
        overdue_on: args.overdue.then_some(as_of),
        account,
        limit: 0,
    };
    let mut list = ws.store.tasks(ws.id, &query).await?;
    // Overdue first, then by due day.
    list.sort_by_key(|t| (t.due >= as_of, t.due, t.id));
    if args.format == Format::Json {
        say!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        say!("no tasks");
        return Ok(ExitCode::SUCCESS);
    }
    let overdue = list.iter().filter(|t| keel_core::task_is_overdue(&t.status, t.due, as_of)).count();
    say!("{} task(s), {overdue} overdue as of {as_of}\n", list.len());
    let rows: Vec<Vec<String>> = list.iter().map(|t| task_cells(t, as_of)).collect();
    let header: Vec<String> =
        ["id", "due", "priority", "type", "status", "owner", "account", "title"].map(String::from).to_vec();
    crate::report::print_rows(&header, &rows);
    Ok(ExitCode::SUCCESS)
}

fn task_cells(t: &TaskRow, as_of: Date) -> Vec<String> {
    let late = keel_core::task_is_overdue(&t.status, t.due, as_of);
    let status = match (&t.status[..], t.snoozed_until) {
        ("snoozed", Some(u)) => format!("snoozed to {u}"),
        (s, _) => s.to_owned(),
    };
    vec![
        t.id.to_string(),
        if late { format!("{} (late)", t.due) } else { t.due.to_string() },
        t.priority.clone(),
        t.kind.clone(),
        status,
        t.owner.clone(),
        t.account.to_string(),
        t.title.clone(),
    ]
}

#[derive(Debug, Args)]
pub(crate) struct OutboxArgs {
    #[command(subcommand)]
    command: Option<OutboxCommand>,
    /// Only entries with this status: pending, approved, rejected (default pending).
    #[arg(long, default_value = "pending")]
    status: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

#[derive(Debug, Subcommand)]
enum OutboxCommand {
    /// Approve a held send: it goes out (still under quiet hours and the contact budget).
    Approve {
        /// Outbox entry id.
        id: i64,
        /// Who approves.
        #[arg(long)]
        by: String,
    },
    /// Reject a held send: its play run is cancelled.
    Reject {
        /// Outbox entry id.
        id: i64,
        /// Who rejects.
        #[arg(long)]
        by: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

pub(crate) async fn outbox(ws: &Workspace, journey: &Path, args: OutboxArgs) -> anyhow::Result<ExitCode> {
    let now = crate::now();
    if let Some(command) = args.command {
        let j = match journey_or_exit(journey)? {
            Ok(j) => j,
            Err(code) => return Ok(code),
        };
        let (id, result) = match command {
            OutboxCommand::Approve { id, by } => (
                id,
                runner::approve_outbox(ws.store.as_ref(), ws.id, &j, id, &by, now)
                    .await
                    .map(|c| ("approved", c)),
            ),
            OutboxCommand::Reject { id, by, reason } => (
                id,
                runner::reject_outbox(ws.store.as_ref(), ws.id, &j, id, &by, &reason, now)
                    .await
                    .map(|c| ("rejected", c)),
            ),
        };
        return match result {
            Ok((what, c)) => {
                say!(
                    "outbox entry {id} {what}; {} delivery queued, {} task(s) created",
                    c.deliveries,
                    c.tasks
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => refused(e),
        };
    }
    let status = (args.status != "all").then_some(args.status.as_str());
    let list = ws.store.outbox(ws.id, status).await?;
    if args.format == Format::Json {
        say!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        say!("the outbox is empty");
        return Ok(ExitCode::SUCCESS);
    }
    for o in &list {
        let send: serde_json::Value = serde_json::from_str(&o.payload).unwrap_or_default();
        say!(
            "#{} {} · {} · rule {} · for {} · {}",
            o.id,
            o.account,
            o.run_key.split('/').nth(1).unwrap_or(""),
            o.rule,
            o.approver,
            o.status
        );
        match send["effect"].as_str() {
            Some("email") => {
                let to: Vec<&str> =
                    send["to"].as_array().into_iter().flatten().filter_map(|r| r["email"].as_str()).collect();
                say!(
                    "  to: {}\n  subject: {}\n  {}",
                    to.join(", "),
                    send["subject"].as_str().unwrap_or(""),
                    send["body"].as_str().unwrap_or("").replace('\n', "\n  ")
                );
            }
            _ => say!(
                "  webhook {}: {}",
                send["url"].as_str().unwrap_or(""),
                send["body"].as_str().unwrap_or("")
            ),
        }
        say!("");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// The first day to replay.
    #[arg(long, value_parser = keel_core::parse_date)]
    from: Date,
    /// The last day to replay (inclusive).
    #[arg(long, value_parser = keel_core::parse_date)]
    to: Date,
    /// The hour of the day (UTC) each day's pass runs at (quiet hours are judged at it).
    #[arg(long, default_value_t = 14)]
    hour: u32,
    /// Evaluate every N days instead of daily (level triggers are then seen up to N−1 days late).
    #[arg(long, default_value_t = 1)]
    every: u32,
    /// Also deliver each day's queued emails and webhooks (see --smtp).
    #[arg(long)]
    deliver: bool,
    #[command(flatten)]
    smtp: SmtpArgs,
}

pub(crate) async fn simulate(ws: &Workspace, journey: &Path, args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let j = match journey_or_exit(journey)? {
        Ok(j) => j,
        Err(code) => return Ok(code),
    };
    if args.to < args.from || args.hour > 23 || args.every == 0 {
        anyhow::bail!("--to must be on or after --from, --hour within 0..23, and --every at least 1");
    }
    let delivery = keel_delivery::DeliveryConfig {
        smtp: args.smtp.config()?,
        journey_version: j.version.clone(),
        ..keel_delivery::DeliveryConfig::default()
    };
    let mut delivered = keel_delivery::DeliveryCounts::default();
    let mut total = runner::PlayCounts::default();
    let mut day = args.from;
    while day <= args.to {
        let now = day.and_hms_opt(args.hour, 0, 0).unwrap_or_default().and_utc();
        let c = runner::run_day(ws.store.as_ref(), ws.id, &j, day, now).await?;
        if c.started + c.tasks + c.deliveries + c.outbox > 0 {
            say!(
                "{day}: {} run(s) started, {} task(s), {} delivery(ies) queued, {} held for approval",
                c.started,
                c.tasks,
                c.deliveries,
                c.outbox
            );
        }
        total.add(&c);
        if args.deliver {
            let d = keel_delivery::deliver_due(ws.store.as_ref(), &delivery, now, crate::now()).await?;
            delivered.sent += d.sent;
            delivered.retrying += d.retrying;
            delivered.dead += d.dead;
        }
        match day.checked_add_days(chrono::Days::new(u64::from(args.every))) {
            Some(next) => day = next,
            None => break,
        }
    }
    say!(
        "\nreplayed {} to {}: {} run(s) started, {} task(s), {} delivery(ies) queued, {} held for approval, {} decision(s) logged",
        args.from,
        args.to,
        total.started,
        total.tasks,
        total.deliveries,
        total.outbox,
        total.decisions
    );
    if args.deliver {
        say!(
            "delivered: {} sent, {} failed attempts to retry, {} dead-lettered",
            delivered.sent,
            delivered.retrying,
            delivered.dead
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Where emails go, from flags or `KEEL_SMTP_*` variables.
#[derive(Debug, Clone, Args)]
pub struct SmtpArgs {
    /// SMTP server as HOST:PORT (env KEEL_SMTP); without it, emails wait and fail with a clear error.
    #[arg(long = "smtp", env = "KEEL_SMTP")]
    pub(crate) smtp: Option<String>,
    /// plain (a local relay), starttls, or tls (port 465).
    #[arg(long = "smtp-security", env = "KEEL_SMTP_SECURITY", default_value = "starttls")]
    pub(crate) security: String,
    /// SMTP user name (env KEEL_SMTP_USER); the password comes from KEEL_SMTP_PASSWORD.
    #[arg(long = "smtp-user", env = "KEEL_SMTP_USER")]
    pub(crate) user: Option<String>,
    /// The sender address when an owner is not an email address.
    #[arg(long = "smtp-from", env = "KEEL_SMTP_FROM", default_value = "keel@localhost")]
    pub(crate) smtp_from: String,
}

impl SmtpArgs {
    /// The SMTP settings these arguments name (`None`: no relay given).
    pub fn config(&self) -> anyhow::Result<Option<keel_delivery::SmtpConfig>> {
        use keel_delivery::{SmtpConfig, SmtpSecurity};
        let Some(addr) = &self.smtp else { return Ok(None) };
        let (host, port) = addr
            .rsplit_once(':')
            .with_context(|| format!("--smtp (KEEL_SMTP, serve.smtp) takes HOST:PORT, not {addr:?}"))?;
        let port: u16 =
            port.parse().with_context(|| format!("--smtp (KEEL_SMTP, serve.smtp): port {port:?}"))?;
        let security = match self.security.as_str() {
            "plain" => SmtpSecurity::Plain,
            "starttls" => SmtpSecurity::StartTls,
            "tls" => SmtpSecurity::Tls,
            other => anyhow::bail!(
                "--smtp-security (KEEL_SMTP_SECURITY, serve.smtp_security) {other:?}: plain, starttls or tls"
            ),
        };
        let credentials = match &self.user {
            Some(user) => {
                let password =
                    std::env::var("KEEL_SMTP_PASSWORD").context("--smtp-user needs KEEL_SMTP_PASSWORD")?;
                Some((user.clone(), password))
            }
            None => None,
        };
        Ok(Some(SmtpConfig {
            host: host.to_owned(),
            port,
            security,
            credentials,
            default_from: self.smtp_from.clone(),
        }))
    }
}

#[derive(Debug, Args)]
pub(crate) struct DeliverArgs {
    #[command(subcommand)]
    command: Option<DeliverCommand>,
    #[command(flatten)]
    smtp: SmtpArgs,
    /// List deliveries with this status instead of sending: pending, sent, dead, all.
    #[arg(long)]
    list: Option<String>,
}

#[derive(Debug, Subcommand)]
enum DeliverCommand {
    /// Put a dead-lettered delivery back in the queue.
    Replay {
        /// Delivery id.
        id: i64,
        /// Who replays it.
        #[arg(long)]
        by: String,
    },
}

pub(crate) async fn deliver(ws: &Workspace, journey: &Path, args: DeliverArgs) -> anyhow::Result<ExitCode> {
    let now = crate::now();
    let version = match crate::journey::load(journey)? {
        Ok(j) => j.version,
        Err(_) => String::new(),
    };
    if let Some(DeliverCommand::Replay { id, by }) = args.command {
        return match keel_app::runner::replay_delivery(ws.store.as_ref(), ws.id, id, &by, &version, now)
            .await?
        {
            Some(d) => {
                say!("delivery {id}: {}", d.status);
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("error: no delivery {id}");
                Ok(ExitCode::FAILURE)
            }
        };
    }
    if let Some(status) = &args.list {
        let status = (status != "all").then_some(status.as_str());
        let list = ws.store.deliveries(ws.id, status).await?;
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|d| {
                vec![
                    d.id.to_string(),
                    d.channel.clone(),
                    d.status.clone(),
                    d.attempts.to_string(),
                    d.account.to_string(),
                    d.run_key.split('/').nth(1).unwrap_or_default().to_owned(),
                    d.last_error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        let header: Vec<String> = ["id", "channel", "status", "attempts", "account", "play", "last error"]
            .map(String::from)
            .to_vec();
        crate::report::print_rows(&header, &rows);
        return Ok(ExitCode::SUCCESS);
    }
    let config = keel_delivery::DeliveryConfig {
        smtp: args.smtp.config()?,
        journey_version: version,
        ..keel_delivery::DeliveryConfig::default()
    };
    let c = keel_delivery::deliver_due(ws.store.as_ref(), &config, now, now).await?;
    say!("{} sent, {} to retry, {} dead-lettered", c.sent, c.retrying, c.dead);
    Ok(ExitCode::SUCCESS)
}
