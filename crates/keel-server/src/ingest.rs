//! Group commit: one writer task takes every ingest request waiting at the
//! moment, writes all their messages in one transaction, commits, and only
//! then answers each request. Nothing is acknowledged before it is durable;
//! throughput comes from sharing one commit among concurrent requests.

use std::collections::BTreeMap;
use std::sync::Arc;

use keel_core::{Account, Event, EventName, ExternalId, Timestamp};
use keel_store::{Store, StoreError, WorkspaceId, WriteTx};
use serde::Serialize;

use crate::segment::RejectionCode;
use tokio::sync::{mpsc, oneshot};

use crate::evaluator::Evaluator;
use crate::metrics::Metrics;
use crate::segment::{Call, Message};

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Stored now.
    Accepted,
    /// Stored before (same message id), or a membership that already held.
    Duplicate,
    /// Kept until its user joins an account: an event or identify of a user
    /// no `group` call has named yet. When one does, it is attributed to
    /// that account as if it had arrived then.
    Held,
    /// Refused; nothing of it was stored.
    Rejected {
        /// Why, for clients to match on.
        code: crate::segment::RejectionCode,
        /// Why, for a person.
        reason: String,
    },
}

struct Job {
    ws: WorkspaceId,
    messages: Vec<Message>,
    /// Messages of the request refused before the writer (unparseable), to keep.
    refused: Vec<keel_store::RejectionRow>,
    received_at: Timestamp,
    reply: oneshot::Sender<Result<Vec<Outcome>, WriteError>>,
}

/// Why messages were not written (nothing of their group was stored).
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The writer task is gone (the server is shutting down).
    #[error("the ingest writer has stopped")]
    Stopped,
    /// The store cannot write for a reason of its own (a full disk, an I/O
    /// error, a lock held too long): the same messages may succeed later.
    #[error("the store cannot write now: {0}")]
    Unavailable(String),
    /// The transaction failed otherwise.
    #[error("the ingest transaction failed: {0}")]
    Failed(String),
}

/// Handle to the writer task.
#[derive(Clone)]
pub struct Ingestor {
    jobs: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
}

/// The accounts whose data one committed group changed.
type Touched = std::collections::BTreeSet<ExternalId>;

/// Messages per transaction at most; requests beyond wait for the next one.
const MAX_GROUP: usize = 50_000;

impl Ingestor {
    /// Starts the writer task on `store`.
    pub fn start(store: Arc<dyn Store>, metrics: Arc<Metrics>, evaluator: Option<Evaluator>) -> Self {
        let (jobs, rx) = mpsc::channel(4_096);
        // The writer gets a thread of its own: on the shared runtime, each of
        // its awaits on the database would queue behind every request task.
        crate::on_own_thread("keel-ingest-writer", writer(store, rx, metrics.clone(), evaluator));
        Self { jobs, metrics }
    }

    /// Writes messages of one workspace; returns once they are committed.
    pub async fn write(
        &self,
        ws: WorkspaceId,
        messages: Vec<Message>,
        refused: Vec<keel_store::RejectionRow>,
        received_at: Timestamp,
    ) -> Result<Vec<Outcome>, WriteError> {
        if messages.is_empty() && refused.is_empty() {
            return Ok(Vec::new());
        }
        self.metrics.request_messages.observe(messages.len() as f64);
        let (reply, answer) = oneshot::channel();
        self.metrics.queue_depth.inc();
        self.jobs
            .send(Job { ws, messages, refused, received_at, reply })
            .await
            .map_err(|_| WriteError::Stopped)?;
        answer.await.map_err(|_| WriteError::Stopped)?
    }
}

async fn writer(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Job>,
    metrics: Arc<Metrics>,
    evaluator: Option<Evaluator>,
) {
    while let Some(first) = rx.recv().await {
        // Take the store's write turn (by opening the transaction) before
        // forming the group: requests that arrive while the previous group
        // commits join this one instead of waiting for the next.
        let started = std::time::Instant::now();
        let first_ws = first.ws;
        let opened = store.begin(first_ws).await;
        let waited = started.elapsed();
        let mut size = first.messages.len();
        let mut jobs = vec![first];
        while size < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => {
                    size += job.messages.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        metrics.queue_depth.dec_by(jobs.len() as i64);
        // The first workspace's group goes first, in the transaction already
        // open (a second one could not begin while it is); other workspaces
        // that joined get a transaction each after it.
        let (mine, others): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.ws == first_ws);
        let mut by_ws: BTreeMap<WorkspaceId, Vec<Job>> = BTreeMap::new();
        for job in others {
            by_ws.entry(job.ws).or_default().push(job);
        }
        let groups = std::iter::once((first_ws, mine, Some(opened)))
            .chain(by_ws.into_iter().map(|(ws, jobs)| (ws, jobs, None)));
        for (ws, jobs, opened) in groups {
            let n: usize = jobs.iter().map(|j| j.messages.len()).sum();
            let tx = match opened {
                Some(tx) => tx,
                None => store.begin(ws).await,
            };
            let result = match tx {
                Ok(tx) => commit_group(tx, &jobs).await,
                Err(e) => Err(e),
            };
            tracing::debug!(
                requests = jobs.len(),
                messages = n,
                waited_for_writer = ?waited,
                elapsed = ?started.elapsed(),
                "group committed"
            );
            metrics.group_requests.observe(jobs.len() as f64);
            metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
            match result {
                Ok((outcomes, touched)) => {
                    let earliest = jobs.iter().map(|j| j.received_at).min();
                    if let (Some(evaluator), Some(at)) = (&evaluator, earliest) {
                        evaluator.touch(ws, touched, at);
                    }
                    for o in outcomes.iter().flatten() {
                        match o {
                            Outcome::Accepted => metrics.outcome("accepted"),
                            Outcome::Duplicate => metrics.outcome("duplicate"),
                            Outcome::Held => metrics.outcome("held"),
                            Outcome::Rejected { code, .. } => metrics.rejected(*code),
                        }
                    }
                    for (job, outcome) in jobs.into_iter().zip(outcomes) {
                        let _ = job.reply.send(Ok(outcome));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "ingest transaction failed; nothing of it was stored");
                    let failure = if e.is_unavailable() {
                        WriteError::Unavailable(e.to_string())
                    } else {
                        WriteError::Failed(e.to_string())
                    };
                    for job in jobs {
                        let _ = job.reply.send(Err(failure.clone()));
                    }
                }
            }
        }
    }
}

/// A stub for an account first seen in product data; a CRM import fills it in later.
fn stub_account(
    id: &ExternalId,
    traits: Option<&serde_json::Map<String, serde_json::Value>>,
    at: Timestamp,
) -> Account {
    let name = traits
        .and_then(|t| t.get("name"))
        .and_then(|v| v.as_str())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(id.as_str())
        .to_owned();
    let attributes =
        traits.map(|t| t.iter().filter(|(k, _)| *k != "name").map(|(k, v)| (k.clone(), v.clone())).collect());
    Account {
        id: id.clone(),
        name,
        attributes: attributes.unwrap_or_default(),
        owner: None,
        parent: None,
        created: at.date_naive(),
    }
}

/// What became of each message of a group: `[request][message]`.
type Outcomes = Vec<Vec<Outcome>>;

/// The account each message that names none belongs to through its user's
/// membership at the message's time, by `(request, message)`.
type Membership = BTreeMap<(usize, usize), ExternalId>;

/// Writes one workspace's group of requests in the open transaction `tx`
/// and commits it: stub accounts, memberships, identifies, then events, in
/// that order (each step reads what the one before wrote).
async fn commit_group(mut tx: Box<dyn WriteTx>, jobs: &[Job]) -> Result<(Outcomes, Touched), StoreError> {
    let t0 = std::time::Instant::now();
    let mut outcomes: Outcomes = jobs.iter().map(|j| vec![Outcome::Accepted; j.messages.len()]).collect();
    stub_missing_accounts(tx.as_mut(), jobs).await?;
    apply_memberships(tx.as_mut(), jobs, &mut outcomes).await?;
    let membership = memberships_then(tx.as_mut(), jobs).await?;
    apply_identifies(tx.as_mut(), jobs, &membership, &mut outcomes).await?;
    let (events, positions) = events_of(jobs, &membership, &mut outcomes);
    let appended = tx.append_events(&events).await?;
    for d in appended.duplicates {
        let (j, i) = positions[d];
        outcomes[j][i] = Outcome::Duplicate;
    }
    let mut touched = release_held(tx.as_mut(), jobs, &outcomes).await?;
    hold(tx.as_mut(), jobs, &mut outcomes).await?;
    tx.record_rejections(&refusals(jobs, &outcomes)).await?;
    tx.commit().await?;
    tracing::trace!(committed = ?t0.elapsed(), "group written");
    for (j, job) in jobs.iter().enumerate() {
        for (i, m) in job.messages.iter().enumerate() {
            if outcomes[j][i] != Outcome::Accepted {
                continue;
            }
            if let Some(a) = m.account.clone().or_else(|| membership.get(&(j, i)).cloned()) {
                touched.insert(a);
            }
        }
    }
    Ok((outcomes, touched))
}

/// Every message of the group refused, before the writer or by it, to keep
/// for operators (`GET /api/v1/ingest/rejections`).
fn refusals(jobs: &[Job], outcomes: &Outcomes) -> Vec<keel_store::RejectionRow> {
    let mut rows: Vec<keel_store::RejectionRow> =
        jobs.iter().flat_map(|j| j.refused.iter().cloned()).collect();
    for (j, job) in jobs.iter().enumerate() {
        for (i, m) in job.messages.iter().enumerate() {
            if let Outcome::Rejected { code, reason } = &outcomes[j][i] {
                rows.push(keel_store::RejectionRow {
                    at: job.received_at,
                    code: code.as_str().to_owned(),
                    reason: reason.clone(),
                    message_id: Some(m.message_id.as_str().to_owned()),
                    user_id: Some(m.user.as_str().to_owned()),
                });
            }
        }
    }
    rows
}

/// Accounts first seen in the group: created as stubs, with group traits
/// when a group call names them.
async fn stub_missing_accounts(tx: &mut dyn WriteTx, jobs: &[Job]) -> Result<(), StoreError> {
    let named: Vec<ExternalId> =
        jobs.iter().flat_map(|j| &j.messages).filter_map(|m| m.account.clone()).collect();
    let missing = tx.missing_accounts(&named).await?;
    if missing.is_empty() {
        return Ok(());
    }
    let mut stubs = BTreeMap::new();
    for m in jobs.iter().flat_map(|j| &j.messages) {
        let Some(id) = m.account.as_ref().filter(|a| missing.binary_search(a).is_ok()) else { continue };
        let traits = match &m.call {
            Call::Group { traits, .. } => Some(traits),
            _ => None,
        };
        // A group call's traits win over a bare mention.
        if traits.is_some() || !stubs.contains_key(id) {
            stubs.insert(id.clone(), stub_account(id, traits, m.timestamp));
        }
    }
    tx.upsert_accounts(&stubs.into_values().collect::<Vec<_>>()).await?;
    Ok(())
}

/// Group, ungroup and alias calls, in arrival order, before any event is
/// attributed.
async fn apply_memberships(
    tx: &mut dyn WriteTx,
    jobs: &[Job],
    outcomes: &mut Outcomes,
) -> Result<(), StoreError> {
    for (j, job) in jobs.iter().enumerate() {
        for (i, m) in job.messages.iter().enumerate() {
            let changed = match &m.call {
                Call::Group { account, .. } => tx.join_account(&m.user, account, m.timestamp).await?,
                Call::Ungroup { account } => tx.leave_account(&m.user, account, m.timestamp).await?,
                Call::Alias { previous } => match alias(tx, m, previous).await? {
                    Some(changed) => changed,
                    None => {
                        outcomes[j][i] = Outcome::Rejected {
                            code: RejectionCode::UnknownAccount,
                            reason: format!(
                                "neither {:?} nor {:?} belongs to an account yet: send a group call first, \
                                 or context.groupId",
                                previous.as_str(),
                                m.user.as_str()
                            ),
                        };
                        continue;
                    }
                },
                _ => continue,
            };
            if !changed {
                outcomes[j][i] = Outcome::Duplicate;
            }
        }
    }
    Ok(())
}

/// For events and identifies that name no account: the account their user
/// belonged to at the message's time, in one query.
async fn memberships_then(tx: &mut dyn WriteTx, jobs: &[Job]) -> Result<Membership, StoreError> {
    let mut asks = Vec::new();
    let mut asked = Vec::new();
    for (j, job) in jobs.iter().enumerate() {
        for (i, m) in job.messages.iter().enumerate() {
            if matches!(m.call, Call::Event { .. } | Call::Identify { .. }) && m.account.is_none() {
                asks.push((m.user.clone(), m.timestamp));
                asked.push((j, i));
            }
        }
    }
    let found = tx.account_of_users(&asks).await?;
    Ok(asked.into_iter().zip(found).filter_map(|(at, account)| Some((at, account?))).collect())
}

/// Identify calls: the user's contact record, in arrival order.
async fn apply_identifies(
    tx: &mut dyn WriteTx,
    jobs: &[Job],
    membership: &Membership,
    outcomes: &mut Outcomes,
) -> Result<(), StoreError> {
    for (j, job) in jobs.iter().enumerate() {
        for (i, m) in job.messages.iter().enumerate() {
            let Call::Identify { traits } = &m.call else { continue };
            let Some(account) = m.account.clone().or_else(|| membership.get(&(j, i)).cloned()) else {
                outcomes[j][i] = Outcome::Held;
                continue;
            };
            outcomes[j][i] = identify(tx, m, &account, traits).await?;
        }
    }
    Ok(())
}

/// The group's events, attributed by the message, else by the user's
/// membership then, with the `(request, message)` each came from; messages
/// that cannot become one are rejected in `outcomes`.
fn events_of(
    jobs: &[Job],
    membership: &Membership,
    outcomes: &mut Outcomes,
) -> (Vec<Event>, Vec<(usize, usize)>) {
    let mut events = Vec::new();
    let mut positions = Vec::new();
    for (j, job) in jobs.iter().enumerate() {
        for (i, m) in job.messages.iter().enumerate() {
            let Call::Event { name, properties } = &m.call else { continue };
            let name = match EventName::parse(name) {
                Ok(n) => n,
                Err(e) => {
                    outcomes[j][i] = Outcome::Rejected {
                        code: RejectionCode::InvalidEventName,
                        reason: format!("event: {e}"),
                    };
                    continue;
                }
            };
            let Some(account) = m.account.clone().or_else(|| membership.get(&(j, i)).cloned()) else {
                outcomes[j][i] = Outcome::Held;
                continue;
            };
            events.push(Event {
                message_id: m.message_id.clone(),
                account,
                user: m.user.clone(),
                name,
                timestamp: m.timestamp,
                received_at: job.received_at,
                properties: properties.clone(),
            });
            positions.push((j, i));
        }
    }
    (events, positions)
}

/// Applies an `alias` call: the two ids are one person, so from the call's
/// time each belongs to the account the other belongs to (or both to
/// `context.groupId` when the call names one), and later events of either
/// id land on that account. `None`: neither id belongs to an account.
/// `Some(false)`: they were linked already (a retry).
async fn alias(
    tx: &mut dyn keel_store::WriteTx,
    m: &Message,
    previous: &keel_core::UserId,
) -> Result<Option<bool>, StoreError> {
    let at = m.timestamp;
    let (of_previous, of_user) = match &m.account {
        Some(account) => (Some(account.clone()), Some(account.clone())),
        None => {
            let found = tx.account_of_users(&[(previous.clone(), at), (m.user.clone(), at)]).await?;
            (found[0].clone(), found[1].clone())
        }
    };
    if of_previous.is_none() && of_user.is_none() {
        return Ok(None);
    }
    let mut changed = false;
    if let Some(account) = &of_previous {
        changed |= tx.join_account(&m.user, account, at).await?;
    }
    if let Some(account) = &of_user {
        changed |= tx.join_account(previous, account, at).await?;
    }
    Ok(Some(changed))
}

/// A held message as the store keeps it: what `identify` or an event needs
/// back, with the message's corrected time.
#[derive(Serialize, serde::Deserialize)]
struct HeldPayload {
    timestamp: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    traits: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Keeps the group's messages marked `Held` (users in no account yet) until
/// a `group` call names their user; a message held before is a duplicate,
/// and beyond [`keel_store::MAX_HELD`] per workspace they are refused.
async fn hold(tx: &mut dyn WriteTx, jobs: &[Job], outcomes: &mut Outcomes) -> Result<(), StoreError> {
    let mut rows = Vec::new();
    let mut at = Vec::new();
    for (j, job) in jobs.iter().enumerate() {
        for (i, m) in job.messages.iter().enumerate() {
            if outcomes[j][i] != Outcome::Held {
                continue;
            }
            let payload = match &m.call {
                Call::Event { name, properties } => HeldPayload {
                    timestamp: m.timestamp,
                    event: Some(name.clone()),
                    properties: Some(properties.clone()),
                    traits: None,
                },
                Call::Identify { traits } => HeldPayload {
                    timestamp: m.timestamp,
                    event: None,
                    properties: None,
                    traits: Some(traits.clone()),
                },
                _ => continue,
            };
            rows.push(keel_store::HeldMessage {
                message_id: m.message_id.as_str().to_owned(),
                user: m.user.clone(),
                received_at: job.received_at,
                // Maps with string keys and a time: serialising cannot fail.
                payload: serde_json::to_string(&payload).expect("a held payload serialises"),
            });
            at.push((j, i));
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let room = usize::try_from(keel_store::MAX_HELD.saturating_sub(tx.held_messages().await?)).unwrap_or(0);
    for &(j, i) in at.iter().skip(room) {
        outcomes[j][i] = Outcome::Rejected {
            code: RejectionCode::UnknownAccount,
            reason: format!(
                "no account for user {:?}, and the workspace already holds {} messages of users in no \
                 account: send group calls (or context.groupId) for the users it holds",
                jobs[j].messages[i].user.as_str(),
                keel_store::MAX_HELD
            ),
        };
    }
    rows.truncate(room);
    let fresh = tx.hold_messages(&rows).await?;
    for (&(j, i), fresh) in at.iter().zip(fresh) {
        if !fresh {
            outcomes[j][i] = Outcome::Duplicate;
        }
    }
    Ok(())
}

/// Attributes the held messages of every user a `group` or `alias` call of
/// this group placed in an account: events are stored (a message id stored
/// before stays a duplicate) and identifies applied, as of their own time.
/// Returns the accounts whose data changed, held messages included.
async fn release_held(
    tx: &mut dyn WriteTx,
    jobs: &[Job],
    outcomes: &Outcomes,
) -> Result<Touched, StoreError> {
    let mut touched = Touched::new();
    let mut users = std::collections::BTreeSet::new();
    for (j, job) in jobs.iter().enumerate() {
        for (i, m) in job.messages.iter().enumerate() {
            if matches!(outcomes[j][i], Outcome::Rejected { .. }) {
                continue;
            }
            match &m.call {
                Call::Group { .. } => {
                    users.insert(m.user.clone());
                }
                Call::Alias { previous } => {
                    users.insert(m.user.clone());
                    users.insert(previous.clone());
                }
                _ => {}
            }
        }
    }
    if users.is_empty() {
        return Ok(touched);
    }
    let held = tx.take_held(&users.into_iter().collect::<Vec<_>>()).await?;
    if held.is_empty() {
        return Ok(touched);
    }
    let mut messages = Vec::with_capacity(held.len());
    for h in &held {
        let p: HeldPayload = serde_json::from_str(&h.payload).map_err(|e| StoreError::Corrupt {
            table: "held_messages",
            id: h.message_id.clone(),
            reason: e.to_string(),
        })?;
        let message_id = keel_core::MessageId::parse(&h.message_id).map_err(|e| StoreError::Corrupt {
            table: "held_messages",
            id: h.message_id.clone(),
            reason: e.to_string(),
        })?;
        messages.push((h, p, message_id));
    }
    let asks: Vec<_> = messages.iter().map(|(h, p, _)| (h.user.clone(), p.timestamp)).collect();
    let accounts = tx.account_of_users(&asks).await?;
    let mut events = Vec::new();
    for ((h, p, message_id), account) in messages.into_iter().zip(accounts) {
        // The user joined in this group, so an account is always found.
        let Some(account) = account else { continue };
        match (p.event, p.traits) {
            (Some(name), _) => {
                let Ok(name) = EventName::parse(&name) else { continue };
                events.push(Event {
                    message_id,
                    account: account.clone(),
                    user: h.user.clone(),
                    name,
                    timestamp: p.timestamp,
                    received_at: h.received_at,
                    properties: p.properties.unwrap_or_default(),
                });
            }
            (None, Some(traits)) => {
                let m = Message {
                    message_id,
                    user: h.user.clone(),
                    timestamp: p.timestamp,
                    account: Some(account.clone()),
                    call: Call::Identify { traits: traits.clone() },
                };
                identify(tx, &m, &account, &traits).await?;
            }
            (None, None) => continue,
        }
        touched.insert(account);
    }
    tx.append_events(&events).await?;
    Ok(touched)
}

fn trait_text<'a>(traits: &'a serde_json::Map<String, serde_json::Value>, key: &str) -> Option<&'a str> {
    traits.get(key).and_then(|v| v.as_str()).map(str::trim).filter(|s| !s.is_empty())
}

/// Applies an `identify` call to the user's contact (contact id = user id):
/// email, name and role from the traits (`role`, or `champion: true` /
/// `executive_sponsor: true`). A change of role or account closes the old
/// period — kept as contact `USER~FROM` with its end date — and opens a new
/// one from the call's day, so champion changes stay visible over time.
async fn identify(
    tx: &mut dyn keel_store::WriteTx,
    m: &Message,
    account: &ExternalId,
    traits: &serde_json::Map<String, serde_json::Value>,
) -> Result<Outcome, StoreError> {
    let reject = |code: RejectionCode, reason: String| Ok(Outcome::Rejected { code, reason });
    let id = match ExternalId::parse(m.user.as_str()) {
        Ok(id) => id,
        Err(e) => return reject(RejectionCode::InvalidUserId, format!("userId: {e}")),
    };
    let existing = tx.contact(&id).await?;
    let flag = |key: &str| traits.get(key).and_then(serde_json::Value::as_bool) == Some(true);
    let role = match trait_text(traits, "role") {
        Some(r) => r.to_owned(),
        None if flag("champion") => "champion".into(),
        None if flag("executive_sponsor") => "executive_sponsor".into(),
        None => existing.as_ref().map_or_else(|| "user".to_owned(), |c| c.role.to_string()),
    };
    let role = match keel_core::Label::parse(&role) {
        Ok(r) => r,
        Err(e) => return reject(RejectionCode::InvalidRole, format!("traits.role: {e}")),
    };
    let full_name = match (trait_text(traits, "firstName"), trait_text(traits, "lastName")) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(n), None) | (None, Some(n)) => Some(n.to_owned()),
        (None, None) => None,
    };
    let email = trait_text(traits, "email")
        .map(str::to_owned)
        .or_else(|| existing.as_ref().map(|c| c.email.clone()))
        .unwrap_or_default();
    let name = trait_text(traits, "name")
        .map(str::to_owned)
        .or(full_name)
        .or_else(|| existing.as_ref().map(|c| c.name.clone()))
        .unwrap_or_else(|| if email.is_empty() { id.to_string() } else { email.clone() });
    let day = m.timestamp.date_naive();
    let fresh = keel_core::Contact {
        id: id.clone(),
        account: account.clone(),
        email,
        name,
        role,
        active_from: day,
        active_to: None,
    };
    let rows = match existing {
        Some(c) if c.account == fresh.account && c.role == fresh.role && c.active_to.is_none() => {
            let updated = keel_core::Contact { active_from: c.active_from, ..fresh };
            if updated == c {
                return Ok(Outcome::Duplicate);
            }
            vec![updated]
        }
        Some(c) if c.active_to.is_none() => {
            let closed_id = match ExternalId::parse(&format!("{}~{}", c.id, c.active_from)) {
                Ok(id) => id,
                Err(e) => return reject(RejectionCode::InvalidUserId, format!("userId: {e}")),
            };
            let closed = keel_core::Contact { id: closed_id, active_to: Some(day.max(c.active_from)), ..c };
            vec![closed, fresh]
        }
        _ => vec![fresh],
    };
    tx.upsert_contacts(&rows).await?;
    Ok(Outcome::Accepted)
}
