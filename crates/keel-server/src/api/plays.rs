//! Plays through the API: the task inbox, the approval outbox, deliveries,
//! an account's play runs with their audit log, and the plays report —
//! what `keel tasks`, `keel outbox`, `keel deliver` and `keel report plays` do.
//!
//! Listing needs the read scope; working a task (done, snooze) the ingest
//! scope, the API's write scope; deciding on a held send and replaying a
//! delivery the admin scope. Every write may be retried: the same decision
//! again changes nothing and answers as the first did.

use axum::Json;
use axum::extract::{Path, State};
use keel_core::{Date, ExternalId};
use keel_store::{DecisionRow, DeliveryRow, OutboxRow, PlayRunRow, TaskQuery, TaskRow};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::{Query, date_param, json_body};
use crate::AppState;
use crate::auth::{self, Caller};
use crate::error::{ApiError, Code};
use keel_app::keys::Principal;
use keel_app::runner::ActionError;

/// The play of a run key (`account/play/trigger/day`).
fn play_of(run_key: &str) -> String {
    run_key.split('/').nth(1).unwrap_or_default().to_owned()
}

/// Stored JSON text as a value (null when it is not JSON).
fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// A `status` parameter: one of `allowed`, or `all` (None: no filter).
fn status_filter(raw: Option<String>, default: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
    let status = raw.unwrap_or_else(|| default.to_owned());
    if status == "all" {
        return Ok(None);
    }
    if !allowed.contains(&status.as_str()) {
        return Err(ApiError::new(
            Code::InvalidParameter,
            format!("status: {status:?} is not one of {}, all", allowed.join(", ")),
        ));
    }
    Ok(Some(status))
}

/// A numeric id from the path; anything else names nothing (404).
fn numeric_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::new(Code::NotFound, format!("no {what} {raw:?}")))
}

fn action_error(e: ActionError) -> ApiError {
    match e {
        ActionError::NotFound(m) => ApiError::new(Code::NotFound, m),
        ActionError::Conflict(m) => ApiError::new(Code::Conflict, m),
        ActionError::Invalid(m) => ApiError::new(Code::InvalidField, m),
        ActionError::Store(e) => e.into(),
    }
}

fn journey(state: &AppState) -> Result<&keel_journey::Journey, ApiError> {
    state
        .config
        .journey
        .as_ref()
        .map(|j| &j.journey)
        .ok_or_else(|| ApiError::new(Code::NoJourney, "the server runs without a journey"))
}

/// A task: a call to action for its owner.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskDoc {
    /// Id.
    pub id: i64,
    /// The account.
    pub account: String,
    /// The play that created it (null: created by hand).
    pub play: Option<String>,
    /// The play run that created it.
    pub run_key: Option<String>,
    /// `risk`, `opportunity`, `lifecycle` or `activity`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// The owning role (`csm`, `support_lead`, …).
    pub role: String,
    /// Who: the role resolved for the account.
    pub owner: String,
    /// Due day.
    pub due: String,
    /// Past its due day and still open or snoozed, as of the request's `as_of`.
    pub overdue: bool,
    /// `low`, `normal`, `high`, `urgent`.
    pub priority: String,
    /// `open`, `snoozed`, `done`, `cancelled`.
    pub status: String,
    /// Snoozed until this day.
    pub snoozed_until: Option<String>,
    /// Why it was snoozed.
    pub snooze_reason: Option<String>,
    /// What came of it (done).
    pub outcome: Option<String>,
    /// The touchpoint kind logged when it is done.
    pub touchpoint_kind: String,
    /// The evidence of the moment that created it.
    #[schema(value_type = Object)]
    pub evidence: Value,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Last changed (RFC 3339).
    pub updated_at: String,
}

impl TaskDoc {
    fn new(t: TaskRow, as_of: Date) -> Self {
        let overdue = keel_core::task_is_overdue(&t.status, t.due, as_of);
        TaskDoc {
            id: t.id,
            account: t.account.to_string(),
            play: t.run_key.as_deref().map(play_of),
            run_key: t.run_key,
            kind: t.kind,
            title: t.title,
            description: t.description,
            role: t.role,
            owner: t.owner,
            due: t.due.to_string(),
            overdue,
            priority: t.priority,
            status: t.status,
            snoozed_until: t.snoozed_until.map(|d| d.to_string()),
            snooze_reason: t.snooze_reason,
            outcome: t.outcome,
            touchpoint_kind: t.touchpoint_kind,
            evidence: json_of(&t.evidence),
            created_at: t.created_at.to_rfc3339(),
            updated_at: t.updated_at.to_rfc3339(),
        }
    }
}

/// Which tasks.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TaskParams {
    /// Only this owner's tasks.
    owner: Option<String>,
    /// Statuses, comma-separated: open, snoozed, done, cancelled (default open,snoozed).
    status: Option<String>,
    /// `true`: only tasks past their due day.
    overdue: Option<bool>,
    /// Only this account's tasks.
    account: Option<String>,
    /// The day overdue is judged on (YYYY-MM-DD; default today).
    as_of: Option<String>,
    /// At most this many (default 500, at most 10 000).
    limit: Option<usize>,
}

/// Tasks, overdue first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskList {
    /// How many match (the list may stop at `limit`).
    pub total: usize,
    /// Of them, how many are overdue.
    pub overdue: usize,
    /// Overdue first, then by due day.
    pub tasks: Vec<TaskDoc>,
}

/// The task statuses the `status` filter takes.
pub(crate) const TASK_STATUSES: [&str; 4] = ["open", "snoozed", "done", "cancelled"];
/// The outbox `status` filter's values (`all`: no filter).
pub(crate) const OUTBOX_STATUSES: [&str; 4] = ["pending", "approved", "rejected", "all"];
/// The deliveries `status` filter's values (`all`: no filter).
pub(crate) const DELIVERY_STATUSES: [&str; 4] = ["pending", "sent", "dead", "all"];

/// The task inbox: an owner's (or everyone's) tasks, overdue first.
#[utoipa::path(
    get,
    path = "/api/v1/tasks",
    tag = "plays",
    params(TaskParams),
    responses(
        (status = 200, description = "The tasks", body = TaskList),
        (status = 400, description = "A parameter is invalid (the message names it)", body = super::ErrorBody),
    )
)]
pub async fn tasks(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Query(params): Query<TaskParams>,
) -> Result<Json<TaskList>, ApiError> {
    let as_of = date_param(&state, "as_of", params.as_of)?.unwrap_or_else(|| (state.clock)().date_naive());
    let overdue = params.overdue.unwrap_or(false);
    let statuses: Vec<String> = match params.status {
        Some(list) => list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        None if overdue => Vec::new(),
        None => vec!["open".into(), "snoozed".into()],
    };
    if let Some(bad) = statuses.iter().find(|s| !TASK_STATUSES.contains(&s.as_str())) {
        return Err(ApiError::new(
            Code::InvalidParameter,
            format!("status: {bad:?} is not one of {}", TASK_STATUSES.join(", ")),
        ));
    }
    let limit = params.limit.unwrap_or(500);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::new(Code::InvalidParameter, format!("limit: {limit} is not 1 to 10000")));
    }
    let account = params
        .account
        .as_deref()
        .map(ExternalId::parse)
        .transpose()
        .map_err(|e| ApiError::new(Code::InvalidParameter, format!("account: {e}")))?;
    // Tasks sort by due day, so the overdue ones come first.
    let query = TaskQuery {
        owner: params.owner,
        statuses,
        overdue_on: overdue.then_some(as_of),
        account,
        limit: limit as u32,
    };
    let ws = principal.workspace;
    let (list, (total, overdue)) =
        tokio::try_join!(state.store.tasks(ws, &query), state.store.count_tasks(ws, &query, as_of))?;
    let tasks = list.into_iter().map(|t| TaskDoc::new(t, as_of)).collect();
    Ok(Json(TaskList { total: total as usize, overdue: overdue as usize, tasks }))
}

/// A task done.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskDone {
    /// What came of it.
    #[schema(pattern = r"\S")]
    pub outcome: String,
    /// Who did it (default: the task's owner).
    pub by: Option<String>,
}

/// Marks a task done with what came of it and logs its touchpoint (once:
/// the same outcome again is a no-op).
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/done",
    tag = "plays",
    params(("id" = i64, Path, description = "Task id")),
    request_body = TaskDone,
    responses(
        (status = 200, description = "The task, done", body = TaskDoc),
        (status = 404, description = "No such task", body = super::ErrorBody),
        (status = 409, description = "Done with another outcome, or cancelled", body = super::ErrorBody),
        (status = 422, description = "No outcome", body = super::ErrorBody),
    )
)]
pub async fn task_done(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Admin>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<TaskDoc>, ApiError> {
    let id = numeric_id(&id, "task")?;
    let input: TaskDone = json_body(&body, "a task outcome")?;
    let now = (state.clock)();
    let task = {
        keel_app::runner::complete_task(
            state.store.as_ref(),
            principal.workspace,
            id,
            &input.outcome,
            input.by.as_deref(),
            now,
        )
        .await
        .map_err(action_error)?
    };
    if let Some(evaluator) = &state.evaluator {
        evaluator.touch(principal.workspace, [task.account.clone()], now);
    }
    Ok(Json(TaskDoc::new(task, now.date_naive())))
}

/// A snooze.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskSnooze {
    /// The day it comes back (YYYY-MM-DD), at most the journey's `snooze_max_days` ahead.
    #[schema(format = Date, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub until: String,
    /// Why.
    #[schema(pattern = r"\S")]
    pub reason: String,
}

/// Snoozes a task until a day, with a reason.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{id}/snooze",
    tag = "plays",
    params(("id" = i64, Path, description = "Task id")),
    request_body = TaskSnooze,
    responses(
        (status = 200, description = "The task, snoozed", body = TaskDoc),
        (status = 404, description = "No such task", body = super::ErrorBody),
        (status = 409, description = "Done or cancelled", body = super::ErrorBody),
        (status = 422, description = "No reason, or a day out of range", body = super::ErrorBody),
    )
)]
pub async fn task_snooze(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Admin>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<TaskDoc>, ApiError> {
    let id = numeric_id(&id, "task")?;
    let input: TaskSnooze = json_body(&body, "a snooze")?;
    let until = keel_core::parse_date(&input.until)
        .map_err(|e| ApiError::new(Code::InvalidField, format!("until: {e}")))?;
    let journey = journey(&state)?;
    let now = (state.clock)();
    let task = keel_app::runner::snooze_task(
        state.store.as_ref(),
        principal.workspace,
        journey,
        id,
        until,
        &input.reason,
        now,
    )
    .await
    .map_err(action_error)?;
    Ok(Json(TaskDoc::new(task, now.date_naive())))
}

/// A customer-facing send held for a human's approval.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxDoc {
    /// Id.
    pub id: i64,
    /// The account.
    pub account: String,
    /// The play.
    pub play: String,
    /// The play run.
    pub run_key: String,
    /// The step of the run.
    pub step: i64,
    /// The role asked to approve.
    pub approver: String,
    /// The governance rule that asked for approval.
    pub rule: String,
    /// The rendered send: `effect` (`email` or `webhook`), and `to`,
    /// `subject`, `body` or `url`, `body`.
    #[schema(value_type = Object)]
    pub send: Value,
    /// `pending`, `approved`, `rejected`.
    pub status: String,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When (RFC 3339).
    pub decided_at: Option<String>,
    /// Why (rejections).
    pub note: Option<String>,
    /// Held since (RFC 3339).
    pub created_at: String,
}

impl From<OutboxRow> for OutboxDoc {
    fn from(o: OutboxRow) -> Self {
        OutboxDoc {
            id: o.id,
            account: o.account.to_string(),
            play: play_of(&o.run_key),
            run_key: o.run_key,
            step: o.step,
            approver: o.approver,
            rule: o.rule,
            send: json_of(&o.payload),
            status: o.status,
            decided_by: o.decided_by,
            decided_at: o.decided_at.map(|t| t.to_rfc3339()),
            note: o.note,
            created_at: o.created_at.to_rfc3339(),
        }
    }
}

/// Which outbox entries.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OutboxParams {
    /// `pending` (default), `approved`, `rejected` or `all`.
    status: Option<String>,
}

/// Outbox entries, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxList {
    /// The entries.
    pub entries: Vec<OutboxDoc>,
}

/// The approval outbox: sends that wait for a human, with what they would say.
#[utoipa::path(
    get,
    path = "/api/v1/outbox",
    tag = "plays",
    params(OutboxParams),
    responses(
        (status = 200, description = "The entries", body = OutboxList),
        (status = 400, description = "An unknown status", body = super::ErrorBody),
    )
)]
pub async fn outbox(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Query(params): Query<OutboxParams>,
) -> Result<Json<OutboxList>, ApiError> {
    let status = status_filter(params.status, "pending", &OUTBOX_STATUSES[..3])?;
    let entries = state.store.outbox(principal.workspace, status.as_deref()).await?;
    Ok(Json(OutboxList { entries: entries.into_iter().map(OutboxDoc::from).collect() }))
}

/// A decision on a held send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboxDecision {
    /// Who decides (kept in the audit log).
    #[schema(pattern = r"\S")]
    pub by: String,
    /// Why (required to reject).
    pub reason: Option<String>,
}

/// Approve or reject, then answer with the entry as it now stands.
async fn decide(
    state: &AppState,
    principal: &Principal,
    id: &str,
    body: &[u8],
    approve: bool,
) -> Result<Json<OutboxDoc>, ApiError> {
    let id = numeric_id(id, "outbox entry")?;
    let input: OutboxDecision = json_body(body, "a decision")?;
    let journey = journey(state)?;
    let (ws, now) = (principal.workspace, (state.clock)());
    {
        let store = state.store.as_ref();
        if approve {
            keel_app::runner::approve_outbox(store, ws, journey, id, &input.by, now).await
        } else {
            let reason = input.reason.as_deref().unwrap_or_default();
            keel_app::runner::reject_outbox(store, ws, journey, id, &input.by, reason, now).await
        }
        .map_err(action_error)?;
    }
    let entry = state.store.outbox(ws, None).await?.into_iter().find(|o| o.id == id);
    entry
        .map(|o| Json(o.into()))
        .ok_or_else(|| ApiError::new(Code::NotFound, format!("no outbox entry {id}")))
}

/// Approves a held send: it goes out (still under quiet hours and the
/// contact budget, judged now) and its run goes on. The same person
/// approving again is a no-op; anyone deciding a decided entry is refused.
#[utoipa::path(
    post,
    path = "/api/v1/outbox/{id}/approve",
    tag = "plays",
    params(("id" = i64, Path, description = "Outbox entry id")),
    request_body = OutboxDecision,
    responses(
        (status = 200, description = "The entry, approved", body = OutboxDoc),
        (status = 404, description = "No such entry", body = super::ErrorBody),
        (status = 409, description = "Decided already, by someone else or the other way", body = super::ErrorBody),
        (status = 422, description = "No `by`", body = super::ErrorBody),
    )
)]
pub async fn approve(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Admin>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<OutboxDoc>, ApiError> {
    decide(&state, &principal, &id, &body, true).await
}

/// Rejects a held send, with a reason: its play run is cancelled.
#[utoipa::path(
    post,
    path = "/api/v1/outbox/{id}/reject",
    tag = "plays",
    params(("id" = i64, Path, description = "Outbox entry id")),
    request_body = OutboxDecision,
    responses(
        (status = 200, description = "The entry, rejected", body = OutboxDoc),
        (status = 404, description = "No such entry", body = super::ErrorBody),
        (status = 409, description = "Decided already, by someone else or the other way", body = super::ErrorBody),
        (status = 422, description = "No `by` or no `reason`", body = super::ErrorBody),
    )
)]
pub async fn reject(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Admin>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<OutboxDoc>, ApiError> {
    decide(&state, &principal, &id, &body, false).await
}

/// An outgoing email or webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDoc {
    /// Id.
    pub id: i64,
    /// The account.
    pub account: String,
    /// The play.
    pub play: String,
    /// The play run.
    pub run_key: String,
    /// `email` or `webhook`.
    pub channel: String,
    /// Counts against the contact budget.
    pub customer_facing: bool,
    /// The rendered send.
    #[schema(value_type = Object)]
    pub send: Value,
    /// `pending`, `sent`, `dead` (retries exhausted; replay by hand).
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// Not before (RFC 3339).
    pub next_attempt_at: String,
    /// The last failure.
    pub last_error: Option<String>,
    /// Delivered (RFC 3339).
    pub sent_at: Option<String>,
}

impl From<DeliveryRow> for DeliveryDoc {
    fn from(d: DeliveryRow) -> Self {
        DeliveryDoc {
            id: d.id,
            account: d.account.to_string(),
            play: play_of(&d.run_key),
            run_key: d.run_key,
            channel: d.channel,
            customer_facing: d.customer_facing,
            send: json_of(&d.payload),
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.to_rfc3339(),
            last_error: d.last_error,
            sent_at: d.sent_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// Which deliveries.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// `pending`, `sent`, `dead` (the dead-letter list) or `all` (default).
    status: Option<String>,
}

/// Deliveries, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// The deliveries.
    pub deliveries: Vec<DeliveryDoc>,
}

/// Emails and webhooks the plays queued, with their attempts; `status=dead`
/// is the dead-letter list.
#[utoipa::path(
    get,
    path = "/api/v1/deliveries",
    tag = "plays",
    params(DeliveryParams),
    responses(
        (status = 200, description = "The deliveries", body = DeliveryList),
        (status = 400, description = "An unknown status", body = super::ErrorBody),
    )
)]
pub async fn deliveries(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Query(params): Query<DeliveryParams>,
) -> Result<Json<DeliveryList>, ApiError> {
    let status = status_filter(params.status, "all", &DELIVERY_STATUSES[..3])?;
    let list = state.store.deliveries(principal.workspace, status.as_deref()).await?;
    Ok(Json(DeliveryList { deliveries: list.into_iter().map(DeliveryDoc::from).collect() }))
}

/// Who replays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// Who (kept in the audit log).
    #[schema(pattern = r"\S")]
    pub by: String,
}

/// Puts an undelivered (e.g. dead-lettered) delivery back in the queue, due
/// now, with fresh attempts; a delivery that was sent is left as it is.
#[utoipa::path(
    post,
    path = "/api/v1/deliveries/{id}/replay",
    tag = "plays",
    params(("id" = i64, Path, description = "Delivery id")),
    request_body = Replay,
    responses(
        (status = 200, description = "The delivery, queued again (or sent already)", body = DeliveryDoc),
        (status = 404, description = "No such delivery", body = super::ErrorBody),
        (status = 422, description = "No `by`", body = super::ErrorBody),
    )
)]
pub async fn replay(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Admin>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<DeliveryDoc>, ApiError> {
    let id = numeric_id(&id, "delivery")?;
    let input: Replay = json_body(&body, "a replay")?;
    if input.by.trim().is_empty() {
        return Err(ApiError::new(Code::InvalidField, "by: say who replays"));
    }
    let version = journey(&state).map(|j| j.version.clone()).unwrap_or_default();
    let replayed = keel_app::runner::replay_delivery(
        state.store.as_ref(),
        principal.workspace,
        id,
        input.by.trim(),
        &version,
        (state.clock)(),
    )
    .await?;
    replayed.map(|d| Json(d.into())).ok_or_else(|| ApiError::new(Code::NotFound, format!("no delivery {id}")))
}

/// One play run of an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDoc {
    /// `account/play/trigger kind/day`.
    pub key: String,
    /// The play.
    pub play: String,
    /// `triggered`, `held`, `running`, `waiting`, `completed`, `cancelled`, `failed`, `holdout`, `suppressed`.
    pub status: String,
    /// It may still do something.
    pub open: bool,
    /// Held out: no step runs, the outcome is still judged.
    pub holdout: bool,
    /// The day it started.
    pub started: String,
    /// `pending`, `met`, `missed` (null: the play defines no outcome).
    pub outcome: Option<String>,
    /// The whole run: step, waits, trigger evidence.
    #[schema(value_type = Object)]
    pub run: Value,
}

impl From<PlayRunRow> for RunDoc {
    fn from(r: PlayRunRow) -> Self {
        RunDoc {
            key: r.key,
            play: r.play,
            status: r.status,
            open: r.open,
            holdout: r.holdout,
            started: r.started.to_string(),
            outcome: r.outcome,
            run: json_of(&r.run),
        }
    }
}

/// One entry of the play audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionDoc {
    /// The run.
    pub run_key: String,
    /// The play.
    pub play: String,
    /// When (RFC 3339).
    pub at: String,
    /// `fired`, `holdout`, `suppressed`, `deferred`, `held_for_approval`, `approved`, `queued`, `sent`, …
    pub decision: String,
    /// The step.
    pub step: Option<i64>,
    /// The governance rule.
    pub rule: Option<String>,
    /// Who (human decisions).
    pub by: Option<String>,
    /// In words.
    pub detail: String,
    /// The journey version it was decided under.
    pub journey_version: String,
    /// The inputs it was decided on.
    #[schema(value_type = Object)]
    pub inputs: Value,
}

impl From<DecisionRow> for DecisionDoc {
    fn from(d: DecisionRow) -> Self {
        DecisionDoc {
            run_key: d.run_key,
            play: d.play,
            at: d.at.to_rfc3339(),
            decision: d.decision,
            step: d.step,
            rule: d.rule,
            by: d.by,
            detail: d.detail,
            journey_version: d.journey_version,
            inputs: json_of(&d.inputs),
        }
    }
}

/// An account's play runs and their audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountPlays {
    /// Runs, oldest first.
    pub runs: Vec<RunDoc>,
    /// Every decision, oldest first.
    pub decisions: Vec<DecisionDoc>,
}

/// An account's play runs, with every decision taken on them.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{id}/plays",
    tag = "plays",
    params(("id" = String, Path, description = "Account id")),
    responses(
        (status = 200, description = "Runs and decisions", body = AccountPlays),
        (status = 404, description = "No such account", body = super::ErrorBody),
    )
)]
pub async fn account_plays(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Path(id): Path<String>,
) -> Result<Json<AccountPlays>, ApiError> {
    let id = super::accounts::account_id(&id)?;
    super::accounts::account_records(&state, &principal, &id, keel_store::RecordKinds::default()).await?;
    let ws = principal.workspace;
    let mut runs = state.store.play_runs(ws, None, Some(&id)).await?;
    runs.sort_by(|a, b| (a.started, &a.key).cmp(&(b.started, &b.key)));
    let decisions = state.store.play_decisions(ws, Some(&id), None).await?;
    Ok(Json(AccountPlays {
        runs: runs.into_iter().map(RunDoc::from).collect(),
        decisions: decisions.into_iter().map(DecisionDoc::from).collect(),
    }))
}

/// When.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlaysReportParams {
    /// Overdue is judged on this day (YYYY-MM-DD; default today).
    as_of: Option<String>,
}

/// Per play: triggered, treated and held out, suppressed by rule, held,
/// completed, and the outcome rate treated vs holdout with the uplift and
/// its 95% interval; per owner: open, overdue and done tasks (what
/// `keel report plays` prints; docs/plays.md).
#[utoipa::path(
    get,
    path = "/api/v1/reports/plays",
    tag = "reports",
    params(PlaysReportParams),
    responses(
        (status = 200, description = "The report", body = keel_analytics::plays::PlaysReport),
        (status = 400, description = "A parameter is invalid (the message names it)", body = super::ErrorBody),
        (status = 404, description = "no_journey: the server runs without a journey", body = super::ErrorBody),
    )
)]
pub async fn report(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Query(params): Query<PlaysReportParams>,
) -> Result<Json<keel_analytics::plays::PlaysReport>, ApiError> {
    let as_of = date_param(&state, "as_of", params.as_of)?.unwrap_or_else(|| (state.clock)().date_naive());
    let journey = journey(&state)?;
    let report = keel_app::reports::plays(state.store.as_ref(), principal.workspace, journey, as_of)
        .await
        .map_err(|e| match e {
            keel_app::reports::ReportError::Store(e) => e.into(),
            other => ApiError::new(Code::InvalidParameter, other.to_string()),
        })?;
    Ok(Json(report))
}
