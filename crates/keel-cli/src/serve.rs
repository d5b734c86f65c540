//! `keel serve`'s arguments and preparation (the binary runs the server),
//! and `keel keys`: the workspace's API keys.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use keel_app::keys::{self, Scope};

/// `keel serve`'s arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KEEL_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// A `track` property that names the account (besides `context.groupId`
    /// and group memberships), e.g. `account_id`.
    #[arg(long, env = "KEEL_ACCOUNT_PROPERTY")]
    pub account_property: Option<String>,
    /// Requests per second each API key may make (bursts of twice that);
    /// over it Keel answers 429 with Retry-After. 0: unlimited.
    #[arg(long, env = "KEEL_RATE_LIMIT", default_value_t = 25_000.0)]
    pub rate_limit: f64,
    /// Seconds between re-evaluations of every account (time-based
    /// conditions: TTV slips, the renewal window, silence).
    #[arg(long, env = "KEEL_TICK", default_value_t = 3600)]
    pub tick: u64,
    /// Milliseconds a touched account waits for more data before it is evaluated.
    #[arg(long, env = "KEEL_DEBOUNCE_MS", default_value_t = 200)]
    pub debounce_ms: u64,
    /// Seconds a checked API key is trusted without asking the database
    /// (a revocation on another server takes effect within this time).
    #[arg(long, env = "KEEL_KEY_CACHE_SECS", default_value_t = 5)]
    pub key_cache_secs: u64,
    /// Largest Segment message (a single call, or one item of a batch), in bytes.
    #[arg(long, env = "KEEL_MESSAGE_MAX_BYTES", default_value_t = 4 << 20)]
    pub message_max_bytes: usize,
    /// Largest Segment batch request, in bytes.
    #[arg(long, env = "KEEL_BATCH_MAX_BYTES", default_value_t = (8 << 20) + (64 << 10))]
    pub batch_max_bytes: usize,
    /// Most messages in one Segment batch.
    #[arg(long, env = "KEEL_BATCH_MAX_MESSAGES", default_value_t = 2_500)]
    pub batch_max_messages: usize,
    /// Largest body of a record write (/api/v1/records/{kind}), in bytes.
    #[arg(long, env = "KEEL_RECORDS_MAX_BYTES", default_value_t = 64 << 20)]
    pub records_max_bytes: usize,
    /// Days a message id is remembered for deduplication; a message resent
    /// later is accepted again. 0: remember forever.
    #[arg(long, env = "KEEL_DEDUP_WINDOW_DAYS", default_value_t = 30)]
    pub dedup_window_days: u32,
    /// Seconds between rounds of the delivery worker, which sends the emails
    /// and webhooks plays queued (with retries and dead-lettering). 0: the
    /// server delivers nothing (run `keel deliver` instead).
    #[arg(long, env = "KEEL_DELIVER_EVERY", default_value_t = 30)]
    pub deliver_every: u64,
    /// Mark the dashboard's cookies Secure: set it when Keel is reached over
    /// HTTPS (behind a TLS proxy).
    #[arg(long, env = "KEEL_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Seconds the dashboard shows a portfolio report (retention, the
    /// journey-map audit, the analytics) before recomputing it in the
    /// background; the page names when its figures were computed.
    #[arg(long, env = "KEEL_REPORT_TTL", default_value_t = 600)]
    pub report_ttl: u64,
    /// Seconds a client may take to send a request's headers (slow ones are
    /// disconnected).
    #[arg(long, env = "KEEL_HEADER_TIMEOUT", default_value_t = 10)]
    pub header_timeout: u64,
    /// Seconds a client may take to send a request's body.
    #[arg(long, env = "KEEL_BODY_TIMEOUT", default_value_t = 60)]
    pub body_timeout: u64,
    /// Seconds a connection may stay open with nothing to do.
    #[arg(long, env = "KEEL_IDLE_TIMEOUT", default_value_t = 75)]
    pub idle_timeout: u64,
    /// Connections open at once; past it Keel stops accepting until one
    /// closes (and logs it). Keep it under the process's descriptor limit.
    #[arg(long, env = "KEEL_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Reports and as-of evaluations computing at once (each spreads over
    /// every core); more wait for a turn. Default: half the cores, at least one.
    #[arg(long, env = "KEEL_REPORT_CONCURRENCY", default_value_t = keel_app::heavy_concurrency())]
    pub report_concurrency: usize,
    /// Reports that may wait for a turn; past it, 503 `busy` at once.
    #[arg(long, env = "KEEL_REPORT_QUEUE", default_value_t = 32)]
    pub report_queue: usize,
    /// Seconds a report may wait for its turn before it is answered 503 `busy`.
    #[arg(long, env = "KEEL_REPORT_WAIT", default_value_t = 30)]
    pub report_wait: u64,
    /// Seconds a report may compute once it has its turn; then it is
    /// stopped and answered 504 `deadline_exceeded`.
    #[arg(long, env = "KEEL_REPORT_DEADLINE", default_value_t = 300)]
    pub report_deadline: u64,
    /// Unknown API keys one address may present per minute before it is
    /// answered 429 without a lookup. 0: no limit.
    #[arg(long, env = "KEEL_UNKNOWN_KEYS_PER_MINUTE", default_value_t = 20)]
    pub unknown_keys_per_minute: usize,
    #[command(flatten)]
    #[allow(missing_docs, reason = "flattened: its own fields carry the help")]
    pub smtp: crate::plays::SmtpArgs,
}

impl ServeArgs {
    /// Takes the configuration file's `[serve]` settings where no flag or variable gave one.
    pub(crate) fn apply(&mut self, m: &clap::ArgMatches, f: crate::config::ServeFile) {
        use crate::config::pick;
        self.bind = pick(m, "bind", self.bind, f.bind);
        self.account_property =
            pick(m, "account_property", self.account_property.take(), f.account_property.map(Some));
        self.rate_limit = pick(m, "rate_limit", self.rate_limit, f.rate_limit);
        self.tick = pick(m, "tick", self.tick, f.tick);
        self.debounce_ms = pick(m, "debounce_ms", self.debounce_ms, f.debounce_ms);
        self.key_cache_secs = pick(m, "key_cache_secs", self.key_cache_secs, f.key_cache_secs);
        self.message_max_bytes = pick(m, "message_max_bytes", self.message_max_bytes, f.message_max_bytes);
        self.batch_max_bytes = pick(m, "batch_max_bytes", self.batch_max_bytes, f.batch_max_bytes);
        self.batch_max_messages =
            pick(m, "batch_max_messages", self.batch_max_messages, f.batch_max_messages);
        self.records_max_bytes = pick(m, "records_max_bytes", self.records_max_bytes, f.records_max_bytes);
        self.dedup_window_days = pick(m, "dedup_window_days", self.dedup_window_days, f.dedup_window_days);
        self.deliver_every = pick(m, "deliver_every", self.deliver_every, f.deliver_every);
        self.secure_cookies = pick(m, "secure_cookies", self.secure_cookies, f.secure_cookies);
        self.report_ttl = pick(m, "report_ttl", self.report_ttl, f.report_ttl);
        self.header_timeout = pick(m, "header_timeout", self.header_timeout, f.header_timeout);
        self.body_timeout = pick(m, "body_timeout", self.body_timeout, f.body_timeout);
        self.idle_timeout = pick(m, "idle_timeout", self.idle_timeout, f.idle_timeout);
        self.max_connections = pick(m, "max_connections", self.max_connections, f.max_connections);
        self.report_concurrency =
            pick(m, "report_concurrency", self.report_concurrency, f.report_concurrency);
        self.report_queue = pick(m, "report_queue", self.report_queue, f.report_queue);
        self.report_wait = pick(m, "report_wait", self.report_wait, f.report_wait);
        self.report_deadline = pick(m, "report_deadline", self.report_deadline, f.report_deadline);
        self.unknown_keys_per_minute =
            pick(m, "unknown_keys_per_minute", self.unknown_keys_per_minute, f.unknown_keys_per_minute);
        let smtp = &mut self.smtp;
        smtp.smtp = pick(m, "smtp", smtp.smtp.take(), f.smtp.map(Some));
        smtp.security = pick(m, "security", std::mem::take(&mut smtp.security), f.smtp_security);
        smtp.user = pick(m, "user", smtp.user.take(), f.smtp_user.map(Some));
        smtp.smtp_from = pick(m, "smtp_from", std::mem::take(&mut smtp.smtp_from), f.smtp_from);
    }
}

#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; it is shown once, only a hash of it is stored.
    Create {
        /// A name to recognise the key by (e.g. "segment-prod").
        #[arg(long)]
        name: String,
        /// Scopes: ingest, read, admin (repeat or separate with commas).
        #[arg(long = "scope", value_delimiter = ',', default_value = "ingest")]
        scopes: Vec<Scope>,
    },
    /// List the workspace's keys (prefixes, never the keys).
    List,
    /// Revoke a key by its prefix; requests with it fail from then on.
    Revoke {
        /// The key's prefix, as `keel keys list` shows it.
        prefix: String,
    },
}

/// Opens the workspace and loads the journey for `keel serve`; `None` when
/// the journey does not check (its diagnostics are printed).
pub(crate) async fn prepare(
    db: &str,
    workspace: &str,
    journey: &std::path::Path,
    args: ServeArgs,
) -> anyhow::Result<Option<crate::ServeCall>> {
    // Checkpoints run in the background, not inside a request's commit.
    let ws = crate::open_workspace_with(db, workspace, false).await?;
    let journey = if journey.exists() {
        let Ok(checked) = crate::journey::load(journey)? else { return Ok(None) };
        let bytes = std::fs::read(journey).with_context(|| format!("reading {}", journey.display()))?;
        let version = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes));
        eprintln!("keel: evaluating accounts as data arrives with {} (version {version})", journey.display());
        // A journey version served for the first time goes into the audit log.
        let last = ws.store.audit_log(ws.id, 1_000).await?;
        if last.iter().find(|e| e.action == "journey.served").is_none_or(|e| e.subject != version) {
            crate::privacy::audit(&ws, "journey.served", &version, journey.display().to_string()).await?;
        }
        Some(Arc::new(keel_app::JourneyConfig {
            journey: checked,
            version,
            file: journey.display().to_string(),
            source: String::from_utf8_lossy(&bytes).into_owned(),
        }))
    } else {
        eprintln!("keel: no {} here: accounts are not evaluated (`keel init` writes one)", journey.display());
        None
    };
    Ok(Some(crate::ServeCall { ws, journey, args, window: keel_core::TimeWindow::default() }))
}

pub(crate) async fn keys(db: &str, workspace: &str, args: KeysArgs) -> anyhow::Result<ExitCode> {
    let ws = crate::open_workspace(db, workspace).await?;
    match args.command {
        KeysCommand::Create { name, scopes } => {
            let key = keys::create(ws.store.as_ref(), ws.id, &ws.name, &name, &scopes, crate::now()).await?;
            let detail = format!("{name:?} with scopes {}", key.stored.scopes.join(","));
            crate::privacy::audit(&ws, "key.created", &key.stored.prefix, detail).await?;
            say!("{}", key.secret);
            eprintln!(
                "created key {:?} ({}) for workspace {:?} with scopes {}; it is shown only now",
                name,
                key.stored.prefix,
                ws.name,
                key.stored.scopes.join(",")
            );
        }
        KeysCommand::List => {
            let keys = ws.store.api_keys(ws.id).await?;
            say!("{:<14} {:<24} {:<20} {:<20} {}", "PREFIX", "NAME", "SCOPES", "CREATED", "REVOKED");
            for k in keys {
                let fmt = |t: keel_core::Timestamp| t.format("%Y-%m-%d %H:%M").to_string();
                say!(
                    "{:<14} {:<24} {:<20} {:<20} {}",
                    k.prefix,
                    k.name,
                    k.scopes.join(","),
                    fmt(k.created_at),
                    k.revoked_at.map(fmt).unwrap_or_else(|| "-".into())
                );
            }
        }
        KeysCommand::Revoke { prefix } => {
            if ws.store.revoke_api_key(ws.id, &prefix, crate::now()).await? {
                crate::privacy::audit(&ws, "key.revoked", &prefix, String::new()).await?;
                eprintln!("revoked {prefix}");
            } else {
                anyhow::bail!("workspace {:?} has no active key with prefix {prefix:?}", ws.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
