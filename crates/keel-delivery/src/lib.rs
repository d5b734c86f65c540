//! Delivery of queued play sends: emails over SMTP (lettre; STARTTLS, TLS
//! or plain for a local relay) and webhooks signed with HMAC-SHA256 under
//! the Standard Webhooks headers. A failed attempt is retried with
//! exponential backoff; after the last attempt the delivery is dead-lettered
//! until someone replays it. Every outcome lands in the play audit log.
//!
//! This crate is an edge, as the HTTP crate is: it talks to the network.
//! `keel deliver` and `keel simulate` call [`deliver_due`]; `keel serve`
//! runs [`worker`] beside the HTTP server. Replaying a dead-lettered
//! delivery is a store operation and lives in `keel_app::runner`.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use keel_core::Timestamp;
use keel_plays::Effect;
use keel_store::{DeliveryRow, Store, StoreError};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;
use sha2::Sha256;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain text (a local relay).
    Plain,
    /// Upgrade with STARTTLS; refuse a server that cannot.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// Where emails go.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Security.
    pub security: SmtpSecurity,
    /// User name and password, when the relay asks.
    pub credentials: Option<(String, String)>,
    /// The sender when the owner is not an email address.
    pub default_from: String,
}

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Email transport (None: emails fail with "no SMTP server configured").
    pub smtp: Option<SmtpConfig>,
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// The first retry waits this long; each next one twice as long.
    pub backoff: Duration,
    /// Webhook request timeout.
    pub timeout: Duration,
    /// The journey version stamped on the audit entries.
    pub journey_version: String,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            smtp: None,
            max_attempts: 6,
            backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            journey_version: String::new(),
        }
    }
}

/// What one pass delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryCounts {
    /// Delivered.
    pub sent: u64,
    /// Failed, to be retried.
    pub retrying: u64,
    /// Failed for the last time.
    pub dead: u64,
}

/// The Standard Webhooks signature of a body: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
/// A secret written `whsec_<base64>` is decoded first; any other is used as bytes.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> String {
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_else(|| secret.as_bytes().to_vec());
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

fn mailbox(raw: &str, name: Option<&str>) -> Result<Mailbox, String> {
    let address = raw.parse().map_err(|e| format!("{raw:?} is not an email address: {e}"))?;
    Ok(Mailbox::new(name.map(str::to_owned), address))
}

async fn send_email(smtp: &SmtpConfig, effect: &Effect) -> Result<(), String> {
    let Effect::Email { to, from, subject, body, .. } = effect else { return Err("not an email".into()) };
    let sender = if from.contains('@') { from.as_str() } else { smtp.default_from.as_str() };
    let mut message = Message::builder().from(mailbox(sender, None)?).subject(subject.clone());
    for r in to {
        message = message.to(mailbox(&r.email, Some(&r.name))?);
    }
    let message = message
        .header(ContentType::TEXT_PLAIN)
        .body(body.clone())
        .map_err(|e| format!("building the email: {e}"))?;
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host).port(smtp.port);
    if smtp.security != SmtpSecurity::Plain {
        let params = TlsParameters::new(smtp.host.clone()).map_err(|e| format!("TLS: {e}"))?;
        builder = builder.tls(match smtp.security {
            SmtpSecurity::Tls => Tls::Wrapper(params),
            _ => Tls::Required(params),
        });
    }
    if let Some((user, password)) = &smtp.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    builder
        .timeout(Some(Duration::from_secs(30)))
        .build()
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP {}:{}: {e}", smtp.host, smtp.port))
}

async fn send_webhook(
    client: &reqwest::Client,
    d: &DeliveryRow,
    effect: &Effect,
    wall: Timestamp,
) -> Result<(), String> {
    let Effect::Webhook { url, body, secret_env, .. } = effect else { return Err("not a webhook".into()) };
    // One id per delivery, the same on every attempt, so the receiver can deduplicate.
    let id =
        format!("msg_{:016x}", xxhash_rust::xxh3::xxh3_64(format!("{}/{}", d.run_key, d.step).as_bytes()));
    let timestamp = wall.timestamp();
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .body(body.clone());
    if let Some(var) = secret_env {
        let secret = std::env::var(var).map_err(|_| format!("the signing secret ${var} is not set"))?;
        request = request.header("webhook-signature", sign(&secret, &id, timestamp, body));
    }
    let response = request.send().await.map_err(|e| format!("POST {url}: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("POST {url}: HTTP {}", response.status()))
    }
}

/// Attempts every pending delivery due at `now` (the scheduler's time,
/// which `keel simulate` moves day by day) and records each outcome;
/// `wall` is the real time, which webhook signatures carry (receivers
/// reject stale timestamps). Each delivery's outcome is written in a
/// transaction of its own, never held open across the network call.
pub async fn deliver_due(
    store: &dyn Store,
    config: &DeliveryConfig,
    now: Timestamp,
    wall: Timestamp,
) -> Result<DeliveryCounts, StoreError> {
    let client = reqwest::Client::builder().timeout(config.timeout).build().unwrap_or_default();
    let mut counts = DeliveryCounts::default();
    for (ws, mut d) in store.due_deliveries(now, 500).await? {
        let result = match serde_json::from_str::<Effect>(&d.payload) {
            Err(e) => Err(format!("unreadable payload: {e}")),
            Ok(effect @ Effect::Email { .. }) => match &config.smtp {
                Some(smtp) => send_email(smtp, &effect).await,
                None => Err("no SMTP server configured".into()),
            },
            Ok(effect) => send_webhook(&client, &d, &effect, wall).await,
        };
        d.attempts += 1;
        let entry = match result {
            Ok(()) => {
                d.status = "sent".into();
                d.sent_at = Some(now);
                d.last_error = None;
                counts.sent += 1;
                keel_app::runner::delivery_decision(
                    &d,
                    &config.journey_version,
                    "sent",
                    format!("{} delivered (attempt {})", d.channel, d.attempts),
                    now,
                )
            }
            Err(e) if d.attempts >= i64::from(config.max_attempts) => {
                d.status = "dead".into();
                d.last_error = Some(e.clone());
                counts.dead += 1;
                keel_app::runner::delivery_decision(
                    &d,
                    &config.journey_version,
                    "dead_lettered",
                    format!("gave up after {} attempts: {e}", d.attempts),
                    now,
                )
            }
            Err(e) => {
                let wait = config.backoff * 2u32.saturating_pow((d.attempts - 1).clamp(0, 16) as u32);
                d.next_attempt_at =
                    now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1));
                d.last_error = Some(e.clone());
                counts.retrying += 1;
                let detail = format!("attempt {} failed: {e}; next at {}", d.attempts, d.next_attempt_at);
                keel_app::runner::delivery_decision(&d, &config.journey_version, "failed", detail, now)
            }
        };
        let mut tx = store.begin(ws).await?;
        tx.update_delivery(&d).await?;
        tx.append_play_decisions(&[entry]).await?;
        tx.commit().await?;
    }
    Ok(counts)
}

/// The delivery worker of `keel serve`: every `every`, sends what plays
/// queued and is due. A failing store is logged and tried again on the
/// next round.
pub async fn worker(
    store: std::sync::Arc<dyn Store>,
    clock: impl Fn() -> Timestamp + Send + Sync,
    config: DeliveryConfig,
    every: Duration,
) {
    let mut ticker = tokio::time::interval(every.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = clock();
        match deliver_due(store.as_ref(), &config, now, now).await {
            Ok(c) if c == DeliveryCounts::default() => {}
            Ok(c) => tracing::info!(sent = c.sent, retrying = c.retrying, dead = c.dead, "delivered"),
            Err(e) => tracing::warn!(error = %e, "delivery round failed; trying again next round"),
        }
    }
}
