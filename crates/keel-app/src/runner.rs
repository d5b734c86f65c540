//! The play runner: after accounts are evaluated, finds their trigger
//! occurrences, starts and advances runs (`keel-plays`), and writes what
//! they produce — runs, audit decisions, tasks, outbox entries, queued
//! deliveries, touchpoints — in the same transaction as the trigger memo,
//! so a retry or a concurrent evaluation starts nothing twice.

use std::collections::BTreeMap;

use keel_core::{
    Date, ExternalId, Label, Money, Opportunity, OpportunityKind, OpportunitySource, OpportunityStatus,
    Timestamp, Touchpoint,
};
use keel_engine::{AccountHistory, AccountState};
use keel_journey::Journey;
use keel_plays::{Decision, Effect, Facts, Ledger, Memo, Prior, Run};
use keel_store::{DecisionRow, DeliveryRow, OutboxRow, PlayRunRow, StoreError, TaskRow, WriteTx};
use serde::Serialize;

/// What one pass of the runner did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlayCounts {
    /// Runs started (treated, held out or suppressed).
    pub started: u64,
    /// Occurrences that started nothing because a run was open or stored already.
    pub deduplicated: u64,
    /// Tasks created.
    pub tasks: u64,
    /// Deliveries queued.
    pub deliveries: u64,
    /// Entries put in the approval outbox.
    pub outbox: u64,
    /// Audit decisions appended.
    pub decisions: u64,
}

impl PlayCounts {
    /// Adds another pass's counts.
    pub fn add(&mut self, other: &Self) {
        self.started += other.started;
        self.deduplicated += other.deduplicated;
        self.tasks += other.tasks;
        self.deliveries += other.deliveries;
        self.outbox += other.outbox;
        self.decisions += other.decisions;
    }
}

fn corrupt(key: &str, e: impl ToString) -> StoreError {
    StoreError::Corrupt { table: "play_runs", id: key.to_owned(), reason: e.to_string() }
}

/// A run as the store keeps it.
pub fn run_row(run: &Run, now: Timestamp) -> Result<PlayRunRow, StoreError> {
    let encoded = serde_json::to_string(run).map_err(|e| StoreError::Unencodable {
        table: "play_runs",
        id: run.key.clone(),
        reason: e.to_string(),
    })?;
    Ok(PlayRunRow {
        key: run.key.clone(),
        account: ExternalId::parse(&run.account).unwrap_or_else(|_| unreachable_account()),
        play: run.play.clone(),
        status: run.status.name().to_owned(),
        open: run.status.is_open(),
        holdout: run.status == keel_plays::Status::Holdout,
        started: run.started,
        outcome: run.outcome.as_ref().map(|o| {
            match o {
                keel_plays::Outcome::Pending { .. } => "pending",
                keel_plays::Outcome::Met { .. } => "met",
                keel_plays::Outcome::Missed => "missed",
            }
            .to_owned()
        }),
        run: encoded,
        updated_at: now,
    })
}

fn unreachable_account() -> ExternalId {
    // Runs are made from stored accounts, whose ids parsed when they were stored.
    ExternalId::parse("unknown").unwrap_or_else(|_| unreachable!("a literal id parses"))
}

/// Parses a stored run.
pub fn parse_run(row: &PlayRunRow) -> Result<Run, StoreError> {
    serde_json::from_str(&row.run).map_err(|e| corrupt(&row.key, e))
}

fn decision_rows(decisions: &[Decision]) -> Vec<DecisionRow> {
    decisions
        .iter()
        .map(|d| DecisionRow {
            run_key: d.run.clone(),
            account: ExternalId::parse(&d.account).unwrap_or_else(|_| unreachable_account()),
            play: d.play.clone(),
            at: d.at,
            decision: d.decision.clone(),
            step: d.step.map(|s| s as i64),
            rule: d.rule.clone(),
            by: d.by.clone(),
            detail: d.detail.clone(),
            journey_version: d.journey_version.clone(),
            inputs: serde_json::to_string(&d.inputs).unwrap_or_else(|_| "{}".into()),
        })
        .collect()
}

/// Carries out a run's effects and appends its decisions.
pub async fn apply_effects(
    tx: &mut dyn WriteTx,
    run: &Run,
    effects: Vec<Effect>,
    decisions: &[Decision],
    today: Date,
    now: Timestamp,
) -> Result<PlayCounts, StoreError> {
    let mut counts = PlayCounts::default();
    let account = ExternalId::parse(&run.account).map_err(|e| corrupt(&run.key, e))?;
    for effect in effects {
        match effect {
            Effect::Task { step, kind, title, description, role, owner, due, priority, touchpoint } => {
                let row = TaskRow {
                    id: 0,
                    account: account.clone(),
                    run_key: Some(run.key.clone()),
                    step: Some(step as i64),
                    kind,
                    title,
                    description,
                    role,
                    owner,
                    due,
                    priority,
                    status: "open".into(),
                    snoozed_until: None,
                    snooze_reason: None,
                    outcome: None,
                    touchpoint_kind: touchpoint,
                    evidence: serde_json::to_string(&run.trigger).unwrap_or_default(),
                    created_at: now,
                    updated_at: now,
                };
                counts.tasks += u64::from(tx.insert_task(&row).await?.is_some());
            }
            Effect::Email { step, customer_facing, .. } | Effect::Webhook { step, customer_facing, .. } => {
                let channel = if matches!(effect, Effect::Email { .. }) { "email" } else { "webhook" };
                let row = DeliveryRow {
                    id: 0,
                    account: account.clone(),
                    run_key: run.key.clone(),
                    step: step as i64,
                    channel: channel.into(),
                    customer_facing,
                    payload: serde_json::to_string(&effect).unwrap_or_default(),
                    status: "pending".into(),
                    attempts: 0,
                    next_attempt_at: now,
                    last_error: None,
                    created_on: today,
                    created_at: now,
                    sent_at: None,
                };
                counts.deliveries += u64::from(tx.queue_delivery(&row).await?.is_some());
            }
            Effect::Touchpoint { step, kind, note } => {
                let tp = Touchpoint {
                    id: ExternalId::parse(&format!("keel:{}:{step}", run.key))
                        .map_err(|e| corrupt(&run.key, e))?,
                    account: account.clone(),
                    kind: Label::parse(&kind).map_err(|e| corrupt(&run.key, e))?,
                    occurred: now,
                    owner: Some("keel".into()),
                    notes: (!note.is_empty()).then_some(note),
                    outcome: None,
                };
                tx.upsert_touchpoints(&[tp]).await?;
            }
            Effect::Opportunity { step, kind, currency } => {
                let bad = |e| corrupt(&run.key, e);
                let opportunity = Opportunity {
                    id: ExternalId::parse(&format!("keel:{}:{step}", run.key)).map_err(bad)?,
                    account: account.clone(),
                    kind: OpportunityKind::parse(&kind).map_err(bad)?,
                    source: OpportunitySource::Cs,
                    mrr_delta: Money::parse("0", &currency).map_err(bad)?,
                    stage: "cs_handoff".into(),
                    created: today,
                    closed: None,
                    status: OpportunityStatus::Open,
                };
                tx.upsert_opportunities(&[opportunity]).await?;
            }
            Effect::Outbox { step, send, approver, rule } => {
                let row = OutboxRow {
                    id: 0,
                    account: account.clone(),
                    run_key: run.key.clone(),
                    step: step as i64,
                    approver,
                    rule,
                    payload: serde_json::to_string(&send).unwrap_or_default(),
                    status: "pending".into(),
                    decided_by: None,
                    decided_at: None,
                    note: None,
                    created_at: now,
                };
                counts.outbox += u64::from(tx.insert_outbox(&row).await?.is_some());
            }
        }
    }
    tx.append_play_decisions(&decision_rows(decisions)).await?;
    counts.decisions += decisions.len() as u64;
    Ok(counts)
}

/// Runs the plays of one evaluated account inside `tx`.
pub async fn run_account(
    tx: &mut dyn WriteTx,
    journey: &Journey,
    history: &AccountHistory,
    state: AccountState,
    now: Timestamp,
) -> Result<PlayCounts, StoreError> {
    let mut counts = PlayCounts::default();
    if journey.plays.is_empty() {
        return Ok(counts);
    }
    let today = state.as_of;
    let window = journey.governance.contact_budget.map_or(0, |(_, d)| d).max(1);
    let since = today.checked_sub_days(chrono::Days::new(u64::from(window) + 365)).unwrap_or(today);
    let account = history.account.id.clone();
    let stored = tx.play_state(&account, since).await?;
    let facts = Facts::new(journey, history, state, &stored.touches);
    let mut ledger = Ledger { touches: stored.touches.clone() };
    let memo = match &stored.memo {
        Some((as_of, holding)) => Memo {
            as_of: Some(*as_of),
            holding: serde_json::from_str(holding).map_err(|e| corrupt(account.as_str(), e))?,
        },
        None => Memo::default(),
    };
    // A memo from a later day (an as-of evaluation of the past) is not this timeline: leave it.
    if memo.as_of.is_some_and(|d| d > today) {
        return Ok(counts);
    }

    // Open runs go on first, so a run that completes today frees its play.
    let mut open_plays: Vec<String> = Vec::new();
    for row in &stored.active_runs {
        let mut run = parse_run(row)?;
        let (effects, decisions) = keel_plays::advance(journey, &mut run, &facts, &mut ledger, now);
        if !effects.is_empty() || !decisions.is_empty() {
            counts.add(&apply_effects(tx, &run, effects, &decisions, today, now).await?);
            tx.update_play_run(&run_row(&run, now)?).await?;
        }
        if run.status.is_open() {
            open_plays.push(run.play.clone());
        }
    }

    let last: BTreeMap<&str, Date> = stored.last_started.iter().map(|(p, d)| (p.as_str(), *d)).collect();
    for occurrence in keel_plays::occurrences(journey, &facts, &memo) {
        let Some(play) = journey.plays.iter().find(|p| p.id == occurrence.play) else { continue };
        let prior =
            Prior { open: open_plays.contains(&play.id), last_started: last.get(play.id.as_str()).copied() };
        let started = keel_plays::start(journey, play, &occurrence, &facts, &prior, &mut ledger, now);
        match &started.run {
            Some(run) => {
                if tx.insert_play_run(&run_row(run, now)?).await? {
                    counts.started += 1;
                    counts
                        .add(&apply_effects(tx, run, started.effects, &started.decisions, today, now).await?);
                    if run.status.is_open() {
                        open_plays.push(run.play.clone());
                    }
                } else {
                    counts.deduplicated += 1;
                }
            }
            None if !started.decisions.is_empty() => {
                tx.append_play_decisions(&decision_rows(&started.decisions)).await?;
                counts.decisions += started.decisions.len() as u64;
            }
            None => {}
        }
    }
    let holding =
        serde_json::to_string(&keel_plays::holding(journey, &facts)).unwrap_or_else(|_| "[]".into());
    tx.put_play_memo(&account, today, &holding).await?;
    Ok(counts)
}

/// Runs the plays of evaluated accounts in one transaction of the caller.
pub async fn run_accounts(
    tx: &mut dyn WriteTx,
    journey: &Journey,
    evaluated: Vec<(&AccountHistory, AccountState)>,
    now: Timestamp,
) -> Result<PlayCounts, StoreError> {
    let mut counts = PlayCounts::default();
    for (history, state) in evaluated {
        counts.add(&run_account(tx, journey, history, state, now).await?);
    }
    Ok(counts)
}

/// Why a human action on a task or the outbox was refused.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// No such task, outbox entry or run.
    #[error("{0}")]
    NotFound(String),
    /// The entry is not in a state that allows the action.
    #[error("{0}")]
    Conflict(String),
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One account's history and its evaluation as of `day`.
pub async fn evaluate_account(
    store: &dyn keel_store::Store,
    ws: keel_store::WorkspaceId,
    journey: &Journey,
    account: &ExternalId,
    day: Date,
) -> Result<Option<(AccountHistory, AccountState)>, StoreError> {
    let Some(history) = crate::load::history(store, ws, account).await? else { return Ok(None) };
    let plan = keel_engine::Plan::new(journey.clone(), &store.event_names(ws).await?);
    let state = keel_engine::evaluate(&plan, &history, day);
    Ok(Some((history, state)))
}

/// Evaluates every account of a workspace as of `day` and runs their plays,
/// a chunk of accounts per transaction (`keel simulate`, the scheduler).
pub async fn run_day(
    store: &dyn keel_store::Store,
    ws: keel_store::WorkspaceId,
    journey: &Journey,
    day: Date,
    now: Timestamp,
) -> Result<PlayCounts, StoreError> {
    let plan = keel_engine::Plan::new(journey.clone(), &store.event_names(ws).await?);
    let ids = crate::load::account_ids(store, ws).await?;
    let mut counts = PlayCounts::default();
    for chunk in ids.chunks(500) {
        let snapshot =
            store.records(ws, keel_store::Accounts::List(chunk), keel_store::RecordKinds::ALL).await?;
        let mut histories = crate::load::group(snapshot);
        crate::load::fill_usage(store, ws, &mut histories, None, true).await?;
        let states = crate::load::on_every_core(&histories, |h| keel_engine::evaluate(&plan, h, day)).await;
        let mut tx = store.begin(ws).await?;
        counts.add(&run_accounts(tx.as_mut(), journey, histories.iter().zip(states).collect(), now).await?);
        tx.commit().await?;
    }
    Ok(counts)
}

/// Approves a pending outbox entry: its step runs (still under suppression,
/// quiet hours and the budget) and its run goes on.
pub async fn approve_outbox(
    store: &dyn keel_store::Store,
    ws: keel_store::WorkspaceId,
    journey: &Journey,
    id: i64,
    by: &str,
    now: Timestamp,
) -> Result<PlayCounts, ActionError> {
    decide(store, ws, journey, id, by, None, now).await
}

/// Rejects a pending outbox entry; its run is cancelled.
pub async fn reject_outbox(
    store: &dyn keel_store::Store,
    ws: keel_store::WorkspaceId,
    journey: &Journey,
    id: i64,
    by: &str,
    reason: &str,
    now: Timestamp,
) -> Result<PlayCounts, ActionError> {
    decide(store, ws, journey, id, by, Some(reason), now).await
}

async fn decide(
    store: &dyn keel_store::Store,
    ws: keel_store::WorkspaceId,
    journey: &Journey,
    id: i64,
    by: &str,
    reject: Option<&str>,
    now: Timestamp,
) -> Result<PlayCounts, ActionError> {
    if by.trim().is_empty() {
        return Err(ActionError::Invalid("by: say who decides".into()));
    }
    if reject.is_some_and(|r| r.trim().is_empty()) {
        return Err(ActionError::Invalid("reason: say why".into()));
    }
    let today = now.date_naive();
    let peek = {
        let mut tx = store.begin(ws).await?;
        let entry = tx.outbox_entry(id).await?;
        tx.rollback().await?;
        entry.ok_or_else(|| ActionError::NotFound(format!("no outbox entry {id}")))?
    };
    let evaluated = if reject.is_none() {
        Some(
            evaluate_account(store, ws, journey, &peek.account, today)
                .await?
                .ok_or_else(|| ActionError::NotFound(format!("account {} is gone", peek.account)))?,
        )
    } else {
        None
    };
    let mut tx = store.begin(ws).await?;
    let mut entry =
        tx.outbox_entry(id).await?.ok_or_else(|| ActionError::NotFound(format!("no outbox entry {id}")))?;
    if entry.status != "pending" {
        let asked = if reject.is_some() { "rejected" } else { "approved" };
        if entry.status == asked && entry.decided_by.as_deref() == Some(by) {
            return Ok(PlayCounts::default()); // a retry of the same decision
        }
        return Err(ActionError::Conflict(format!(
            "outbox entry {id} was {} by {} already",
            entry.status,
            entry.decided_by.as_deref().unwrap_or("someone")
        )));
    }
    let row =
        tx.play_run(&entry.run_key).await?.ok_or_else(|| ActionError::NotFound(entry.run_key.clone()))?;
    let mut run = parse_run(&row)?;
    entry.status = if reject.is_some() { "rejected" } else { "approved" }.into();
    entry.decided_by = Some(by.to_owned());
    entry.decided_at = Some(now);
    entry.note = reject.map(str::to_owned);
    tx.decide_outbox(&entry).await?;
    let mut counts = PlayCounts::default();
    match (reject, evaluated) {
        (Some(reason), _) => {
            let decisions = keel_plays::cancel(journey, &mut run, by, reason, now);
            counts.add(&apply_effects(tx.as_mut(), &run, Vec::new(), &decisions, today, now).await?);
        }
        (None, Some((history, state))) => {
            let window = journey.governance.contact_budget.map_or(1, |(_, d)| d);
            let since = today.checked_sub_days(chrono::Days::new(u64::from(window) + 365)).unwrap_or(today);
            let stored = tx.play_state(&entry.account, since).await?;
            let facts = Facts::new(journey, &history, state, &stored.touches);
            let mut ledger = Ledger { touches: stored.touches };
            let (effects, decisions) = keel_plays::approve(journey, &mut run, &facts, &mut ledger, by, now);
            counts.add(&apply_effects(tx.as_mut(), &run, effects, &decisions, today, now).await?);
        }
        (None, None) => {}
    }
    tx.update_play_run(&run_row(&run, now)?).await?;
    tx.commit().await?;
    let action = if reject.is_some() { "outbox.rejected" } else { "outbox.approved" };
    let entry = keel_store::AuditEntry {
        at: now,
        actor: by.to_owned(),
        action: action.into(),
        subject: format!("outbox {id}"),
        detail: format!(
            "play run {} on {}{}",
            entry.run_key,
            entry.account,
            reject.map_or(String::new(), |r| format!(": {r}"))
        ),
    };
    store.append_audit(ws, &entry).await?;
    Ok(counts)
}

/// Marks a task done with an outcome note and logs its touchpoint.
pub async fn complete_task(
    store: &dyn keel_store::Store,
    ws: keel_store::WorkspaceId,
    id: i64,
    outcome: &str,
    by: Option<&str>,
    now: Timestamp,
) -> Result<TaskRow, ActionError> {
    if outcome.trim().is_empty() {
        return Err(ActionError::Invalid("outcome: say what came of it".into()));
    }
    let mut tx = store.begin(ws).await?;
    let mut task = tx.task(id).await?.ok_or_else(|| ActionError::NotFound(format!("no task {id}")))?;
    match task.status.as_str() {
        "done" if task.outcome.as_deref() == Some(outcome.trim()) => return Ok(task), // a retry
        "done" | "cancelled" => {
            return Err(ActionError::Conflict(format!("task {id} is {} already", task.status)));
        }
        _ => {}
    }
    task.status = "done".into();
    task.outcome = Some(outcome.trim().to_owned());
    task.snoozed_until = None;
    task.updated_at = now;
    tx.update_task(&task).await?;
    let tp = Touchpoint {
        id: ExternalId::parse(&format!("keel:task:{id}")).map_err(|e| ActionError::Invalid(e.to_string()))?,
        account: task.account.clone(),
        kind: Label::parse(&task.touchpoint_kind).map_err(|e| ActionError::Invalid(e.to_string()))?,
        occurred: now,
        owner: Some(by.unwrap_or(&task.owner).to_owned()),
        notes: Some(task.title.clone()),
        outcome: task.outcome.clone(),
    };
    tx.upsert_touchpoints(&[tp]).await?;
    tx.commit().await?;
    Ok(task)
}

/// Snoozes a task until a day (at most the journey's `snooze_max_days` ahead), with a reason.
pub async fn snooze_task(
    store: &dyn keel_store::Store,
    ws: keel_store::WorkspaceId,
    journey: &Journey,
    id: i64,
    until: Date,
    reason: &str,
    now: Timestamp,
) -> Result<TaskRow, ActionError> {
    let today = now.date_naive();
    let max = journey.governance.snooze_max_days;
    if reason.trim().is_empty() {
        return Err(ActionError::Invalid("reason: say why".into()));
    }
    if until <= today || (until - today).num_days() > i64::from(max) {
        return Err(ActionError::Invalid(format!(
            "until: snooze until a day after today and at most {max} days ahead (snooze_max_days)"
        )));
    }
    let mut tx = store.begin(ws).await?;
    let mut task = tx.task(id).await?.ok_or_else(|| ActionError::NotFound(format!("no task {id}")))?;
    if !matches!(task.status.as_str(), "open" | "snoozed") {
        return Err(ActionError::Conflict(format!("task {id} is {}", task.status)));
    }
    task.status = "snoozed".into();
    task.snoozed_until = Some(until);
    task.snooze_reason = Some(reason.trim().to_owned());
    task.updated_at = now;
    tx.update_task(&task).await?;
    tx.commit().await?;
    Ok(task)
}

/// The audit entry of something that happened to a queued delivery
/// (`sent`, `failed`, `dead`, `replayed`).
pub fn delivery_decision(
    d: &DeliveryRow,
    journey_version: &str,
    decision: &str,
    detail: String,
    now: Timestamp,
) -> DecisionRow {
    DecisionRow {
        run_key: d.run_key.clone(),
        account: d.account.clone(),
        play: d.run_key.split('/').nth(1).unwrap_or_default().to_owned(),
        at: now,
        decision: decision.to_owned(),
        step: Some(d.step),
        rule: None,
        by: None,
        detail,
        journey_version: journey_version.to_owned(),
        inputs: "{}".into(),
    }
}

/// Puts a dead-lettered (or any undelivered) delivery back in the queue,
/// due now, and says so in the audit log.
pub async fn replay_delivery(
    store: &dyn keel_store::Store,
    ws: keel_store::WorkspaceId,
    id: i64,
    by: &str,
    journey_version: &str,
    now: Timestamp,
) -> Result<Option<DeliveryRow>, StoreError> {
    let Some(mut d) = store.deliveries(ws, None).await?.into_iter().find(|d| d.id == id) else {
        return Ok(None);
    };
    if d.status == "sent" {
        return Ok(Some(d));
    }
    d.status = "pending".into();
    d.attempts = 0;
    d.next_attempt_at = now;
    let mut entry = delivery_decision(&d, journey_version, "replayed", format!("replayed by {by}"), now);
    entry.by = Some(by.to_owned());
    let mut tx = store.begin(ws).await?;
    tx.update_delivery(&d).await?;
    tx.append_play_decisions(&[entry]).await?;
    tx.commit().await?;
    Ok(Some(d))
}
