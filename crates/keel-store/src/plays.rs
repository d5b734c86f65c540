//! What the store keeps of plays: runs, the audit log, tasks, the approval
//! outbox and deliveries. Runs and payloads are JSON written by
//! `keel-plays`; the store indexes the columns it filters on.

use keel_core::{Date, ExternalId, Timestamp};
use serde::Serialize;

/// One play run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlayRunRow {
    /// `account/play/trigger kind/day`, unique in the workspace.
    pub key: String,
    /// Account.
    pub account: ExternalId,
    /// Play id.
    pub play: String,
    /// Status name.
    pub status: String,
    /// Whether it may still do something (at most one open run per account and play).
    pub open: bool,
    /// Held out.
    pub holdout: bool,
    /// The day it started.
    pub started: Date,
    /// `pending`, `met`, `missed`, or None when no outcome is judged.
    pub outcome: Option<String>,
    /// The run as JSON.
    pub run: String,
    /// Last written.
    pub updated_at: Timestamp,
}

/// One entry of the append-only play audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionRow {
    /// The run's key.
    pub run_key: String,
    /// Account.
    pub account: ExternalId,
    /// Play id.
    pub play: String,
    /// When.
    pub at: Timestamp,
    /// What was decided.
    pub decision: String,
    /// Step index.
    pub step: Option<i64>,
    /// Governance rule.
    pub rule: Option<String>,
    /// Who.
    pub by: Option<String>,
    /// In words.
    pub detail: String,
    /// Journey version.
    pub journey_version: String,
    /// Inputs, a JSON object.
    pub inputs: String,
}

/// A task (a call to action).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRow {
    /// Id (0 before it is stored).
    pub id: i64,
    /// Account.
    pub account: ExternalId,
    /// The run that created it (None: created by hand).
    pub run_key: Option<String>,
    /// The run's step.
    pub step: Option<i64>,
    /// `risk`, `opportunity`, `lifecycle` or `activity`.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Owning role.
    pub role: String,
    /// Who.
    pub owner: String,
    /// Due day.
    pub due: Date,
    /// `low`, `normal`, `high`, `urgent`.
    pub priority: String,
    /// `open`, `snoozed`, `done`, `cancelled`.
    pub status: String,
    /// Snoozed until.
    pub snoozed_until: Option<Date>,
    /// Why it was snoozed.
    pub snooze_reason: Option<String>,
    /// The outcome note when done.
    pub outcome: Option<String>,
    /// Touchpoint kind logged when done.
    pub touchpoint_kind: String,
    /// The evidence of the moment that created it (JSON).
    pub evidence: String,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// Which tasks to list.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    /// Only this owner.
    pub owner: Option<String>,
    /// Only these statuses (empty: all).
    pub statuses: Vec<String>,
    /// Only open or snoozed tasks due before this day.
    pub overdue_on: Option<Date>,
    /// Only this account.
    pub account: Option<ExternalId>,
    /// At most this many.
    pub limit: u32,
}

/// A customer-facing step waiting for a human.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxRow {
    /// Id (0 before it is stored).
    pub id: i64,
    /// Account.
    pub account: ExternalId,
    /// The run's key.
    pub run_key: String,
    /// Step index.
    pub step: i64,
    /// The approving role.
    pub approver: String,
    /// The rule that asked for approval.
    pub rule: String,
    /// The rendered send (JSON).
    pub payload: String,
    /// `pending`, `approved`, `rejected`.
    pub status: String,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// Why (rejections).
    pub note: Option<String>,
    /// Created.
    pub created_at: Timestamp,
}

/// An outgoing email or webhook, with its delivery attempts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRow {
    /// Id (0 before it is stored).
    pub id: i64,
    /// Account.
    pub account: ExternalId,
    /// The run's key.
    pub run_key: String,
    /// Step index.
    pub step: i64,
    /// `email` or `webhook`.
    pub channel: String,
    /// Counts against the contact budget.
    pub customer_facing: bool,
    /// The rendered send (JSON).
    pub payload: String,
    /// `pending`, `sent`, `dead` (retries exhausted; replay by hand).
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// Not before.
    pub next_attempt_at: Timestamp,
    /// The last failure.
    pub last_error: Option<String>,
    /// The evaluation day it was queued on.
    pub created_on: Date,
    /// Created.
    pub created_at: Timestamp,
    /// Delivered.
    pub sent_at: Option<Timestamp>,
}

/// What play evaluation needs of one account, read inside its write transaction.
#[derive(Debug, Clone, Default)]
pub struct PlayState {
    /// The trigger memo: its day and the trigger keys (JSON array).
    pub memo: Option<(Date, String)>,
    /// Runs still open or with an outcome still pending.
    pub active_runs: Vec<PlayRunRow>,
    /// Per play: the latest day a run started.
    pub last_started: Vec<(String, Date)>,
    /// Days of customer-facing touches: queued or sent play deliveries and
    /// CSM-logged `email` touchpoints.
    pub touches: Vec<Date>,
}
