//! Plays in SQLite: runs, the audit log, tasks, the outbox and deliveries
//! (migration 0007). Every insert a retry may repeat is `OR IGNORE` on a
//! unique key, and says whether it inserted.

use keel_core::{Date, ExternalId, Timestamp};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqliteExecutor};

use super::rows::{from_micros, micros};
use crate::plays::*;
use crate::{StoreError, WorkspaceId};

fn corrupt(table: &'static str, id: impl ToString, reason: impl ToString) -> StoreError {
    StoreError::Corrupt { table, id: id.to_string(), reason: reason.to_string() }
}

fn date(table: &'static str, id: &str, raw: &str) -> Result<Date, StoreError> {
    keel_core::parse_date(raw).map_err(|e| corrupt(table, id, e))
}

fn time(table: &'static str, id: &str, v: i64) -> Result<Timestamp, StoreError> {
    from_micros(v).map_err(|e| corrupt(table, id, e))
}

fn account(table: &'static str, raw: &str) -> Result<ExternalId, StoreError> {
    ExternalId::parse(raw).map_err(|e| corrupt(table, raw, e))
}

const RUN_COLUMNS: &str = "run_key, account, play, status, open, holdout, started, outcome, run, updated_at";

fn run_row(r: &SqliteRow) -> Result<PlayRunRow, StoreError> {
    let key: String = r.try_get(0)?;
    Ok(PlayRunRow {
        account: account("play_runs", &r.try_get::<String, _>(1)?)?,
        play: r.try_get(2)?,
        status: r.try_get(3)?,
        open: r.try_get(4)?,
        holdout: r.try_get(5)?,
        started: date("play_runs", &key, &r.try_get::<String, _>(6)?)?,
        outcome: r.try_get(7)?,
        run: r.try_get(8)?,
        updated_at: time("play_runs", &key, r.try_get(9)?)?,
        key,
    })
}

const DECISION_COLUMNS: &str =
    "run_key, account, play, at, decision, step, rule, by_whom, detail, journey_version, inputs";

fn decision_row(r: &SqliteRow) -> Result<DecisionRow, StoreError> {
    let run_key: String = r.try_get(0)?;
    Ok(DecisionRow {
        account: account("play_decisions", &r.try_get::<String, _>(1)?)?,
        play: r.try_get(2)?,
        at: time("play_decisions", &run_key, r.try_get(3)?)?,
        decision: r.try_get(4)?,
        step: r.try_get(5)?,
        rule: r.try_get(6)?,
        by: r.try_get(7)?,
        detail: r.try_get(8)?,
        journey_version: r.try_get(9)?,
        inputs: r.try_get(10)?,
        run_key,
    })
}

const TASK_COLUMNS: &str = "id, account, run_key, step, kind, title, description, role, owner, due, priority, \
                            status, snoozed_until, snooze_reason, outcome, touchpoint_kind, evidence, created_at, \
                            updated_at";

fn task_row(r: &SqliteRow) -> Result<TaskRow, StoreError> {
    let id: i64 = r.try_get(0)?;
    let key = id.to_string();
    let snoozed: Option<String> = r.try_get(12)?;
    Ok(TaskRow {
        id,
        account: account("tasks", &r.try_get::<String, _>(1)?)?,
        run_key: r.try_get(2)?,
        step: r.try_get(3)?,
        kind: r.try_get(4)?,
        title: r.try_get(5)?,
        description: r.try_get(6)?,
        role: r.try_get(7)?,
        owner: r.try_get(8)?,
        due: date("tasks", &key, &r.try_get::<String, _>(9)?)?,
        priority: r.try_get(10)?,
        status: r.try_get(11)?,
        snoozed_until: snoozed.map(|s| date("tasks", &key, &s)).transpose()?,
        snooze_reason: r.try_get(13)?,
        outcome: r.try_get(14)?,
        touchpoint_kind: r.try_get(15)?,
        evidence: r.try_get(16)?,
        created_at: time("tasks", &key, r.try_get(17)?)?,
        updated_at: time("tasks", &key, r.try_get(18)?)?,
    })
}

const OUTBOX_COLUMNS: &str =
    "id, account, run_key, step, approver, rule, payload, status, decided_by, decided_at, note, created_at";

fn outbox_row(r: &SqliteRow) -> Result<OutboxRow, StoreError> {
    let id: i64 = r.try_get(0)?;
    let key = id.to_string();
    let decided: Option<i64> = r.try_get(9)?;
    Ok(OutboxRow {
        id,
        account: account("outbox", &r.try_get::<String, _>(1)?)?,
        run_key: r.try_get(2)?,
        step: r.try_get(3)?,
        approver: r.try_get(4)?,
        rule: r.try_get(5)?,
        payload: r.try_get(6)?,
        status: r.try_get(7)?,
        decided_by: r.try_get(8)?,
        decided_at: decided.map(|d| time("outbox", &key, d)).transpose()?,
        note: r.try_get(10)?,
        created_at: time("outbox", &key, r.try_get(11)?)?,
    })
}

const DELIVERY_COLUMNS: &str = "id, account, run_key, step, channel, customer_facing, payload, status, attempts, \
                                next_attempt_at, last_error, created_on, created_at, sent_at, workspace_id";

fn delivery_row(r: &SqliteRow) -> Result<DeliveryRow, StoreError> {
    let id: i64 = r.try_get(0)?;
    let key = id.to_string();
    let sent: Option<i64> = r.try_get(13)?;
    Ok(DeliveryRow {
        id,
        account: account("deliveries", &r.try_get::<String, _>(1)?)?,
        run_key: r.try_get(2)?,
        step: r.try_get(3)?,
        channel: r.try_get(4)?,
        customer_facing: r.try_get(5)?,
        payload: r.try_get(6)?,
        status: r.try_get(7)?,
        attempts: r.try_get(8)?,
        next_attempt_at: time("deliveries", &key, r.try_get(9)?)?,
        last_error: r.try_get(10)?,
        created_on: date("deliveries", &key, &r.try_get::<String, _>(11)?)?,
        created_at: time("deliveries", &key, r.try_get(12)?)?,
        sent_at: sent.map(|s| time("deliveries", &key, s)).transpose()?,
    })
}

pub(crate) async fn play_state(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    account: &ExternalId,
    since: Date,
) -> Result<PlayState, StoreError> {
    let memo = sqlx::query("SELECT as_of, holding FROM play_memos WHERE workspace_id = ? AND account = ?")
        .bind(ws.0)
        .bind(account.as_str())
        .fetch_optional(&mut *c)
        .await?
        .map(|r| -> Result<_, StoreError> {
            let as_of: String = r.try_get(0)?;
            Ok((date("play_memos", account.as_str(), &as_of)?, r.try_get(1)?))
        })
        .transpose()?;
    let active_runs = sqlx::query(&format!(
        "SELECT {RUN_COLUMNS} FROM play_runs WHERE workspace_id = ? AND account = ? \
         AND (open = 1 OR outcome = 'pending') ORDER BY id"
    ))
    .bind(ws.0)
    .bind(account.as_str())
    .fetch_all(&mut *c)
    .await?
    .iter()
    .map(run_row)
    .collect::<Result<_, _>>()?;
    let last_started = sqlx::query(
        "SELECT play, MAX(started) FROM play_runs WHERE workspace_id = ? AND account = ? \
         AND status NOT IN ('suppressed') GROUP BY play",
    )
    .bind(ws.0)
    .bind(account.as_str())
    .fetch_all(&mut *c)
    .await?
    .iter()
    .map(|r| -> Result<_, StoreError> {
        Ok((r.try_get::<String, _>(0)?, date("play_runs", account.as_str(), &r.try_get::<String, _>(1)?)?))
    })
    .collect::<Result<_, _>>()?;
    let since_text = since.to_string();
    let mut touches: Vec<Date> = Vec::new();
    for r in sqlx::query(
        "SELECT created_on FROM deliveries WHERE workspace_id = ? AND account = ? AND customer_facing = 1 \
         AND status != 'dead' AND created_on >= ?",
    )
    .bind(ws.0)
    .bind(account.as_str())
    .bind(&since_text)
    .fetch_all(&mut *c)
    .await?
    {
        touches.push(date("deliveries", account.as_str(), &r.try_get::<String, _>(0)?)?);
    }
    // CSM-logged emails: touchpoints of kind `email` that Keel did not log itself.
    for r in sqlx::query(
        "SELECT t.occurred_at FROM touchpoints t JOIN accounts a ON a.id = t.account_id \
         WHERE a.workspace_id = ? AND a.external_id = ? AND t.kind = 'email' AND t.external_id NOT LIKE 'keel:%'",
    )
    .bind(ws.0)
    .bind(account.as_str())
    .fetch_all(&mut *c)
    .await?
    {
        let at = time("touchpoints", account.as_str(), r.try_get(0)?)?;
        if at.date_naive() >= since {
            touches.push(at.date_naive());
        }
    }
    touches.sort();
    Ok(PlayState { memo, active_runs, last_started, touches })
}

pub(crate) async fn put_memo(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    account: &ExternalId,
    as_of: Date,
    holding: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO play_memos (workspace_id, account, as_of, holding) VALUES (?, ?, ?, ?) \
         ON CONFLICT (workspace_id, account) DO UPDATE SET as_of = excluded.as_of, holding = excluded.holding",
    )
    .bind(ws.0)
    .bind(account.as_str())
    .bind(as_of.to_string())
    .bind(holding)
    .execute(c)
    .await?;
    Ok(())
}

pub(crate) async fn insert_run(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    r: &PlayRunRow,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT OR IGNORE INTO play_runs (workspace_id, run_key, account, play, status, open, holdout, started, \
         outcome, run, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(ws.0)
    .bind(&r.key)
    .bind(r.account.as_str())
    .bind(&r.play)
    .bind(&r.status)
    .bind(r.open)
    .bind(r.holdout)
    .bind(r.started.to_string())
    .bind(&r.outcome)
    .bind(&r.run)
    .bind(micros(r.updated_at))
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn update_run(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    r: &PlayRunRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE play_runs SET status = ?, open = ?, outcome = ?, run = ?, updated_at = ? \
         WHERE workspace_id = ? AND run_key = ?",
    )
    .bind(&r.status)
    .bind(r.open)
    .bind(&r.outcome)
    .bind(&r.run)
    .bind(micros(r.updated_at))
    .bind(ws.0)
    .bind(&r.key)
    .execute(c)
    .await?;
    Ok(())
}

pub(crate) async fn run(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    key: &str,
) -> Result<Option<PlayRunRow>, StoreError> {
    sqlx::query(&format!("SELECT {RUN_COLUMNS} FROM play_runs WHERE workspace_id = ? AND run_key = ?"))
        .bind(ws.0)
        .bind(key)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(run_row)
        .transpose()
}

pub(crate) async fn append_decisions(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    rows: &[DecisionRow],
) -> Result<(), StoreError> {
    for d in rows {
        sqlx::query(&format!(
            "INSERT INTO play_decisions (workspace_id, {DECISION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(ws.0)
        .bind(&d.run_key)
        .bind(d.account.as_str())
        .bind(&d.play)
        .bind(micros(d.at))
        .bind(&d.decision)
        .bind(d.step)
        .bind(&d.rule)
        .bind(&d.by)
        .bind(&d.detail)
        .bind(&d.journey_version)
        .bind(&d.inputs)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

pub(crate) async fn insert_task(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    t: &TaskRow,
) -> Result<Option<i64>, StoreError> {
    let done = sqlx::query(
        "INSERT OR IGNORE INTO tasks (workspace_id, account, run_key, step, kind, title, description, role, owner, \
         due, priority, status, snoozed_until, snooze_reason, outcome, touchpoint_kind, evidence, created_at, \
         updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(ws.0)
    .bind(t.account.as_str())
    .bind(&t.run_key)
    .bind(t.step)
    .bind(&t.kind)
    .bind(&t.title)
    .bind(&t.description)
    .bind(&t.role)
    .bind(&t.owner)
    .bind(t.due.to_string())
    .bind(&t.priority)
    .bind(&t.status)
    .bind(t.snoozed_until.map(|d| d.to_string()))
    .bind(&t.snooze_reason)
    .bind(&t.outcome)
    .bind(&t.touchpoint_kind)
    .bind(&t.evidence)
    .bind(micros(t.created_at))
    .bind(micros(t.updated_at))
    .execute(c)
    .await?;
    Ok((done.rows_affected() == 1).then(|| done.last_insert_rowid()))
}

pub(crate) async fn task(
    c: impl SqliteExecutor<'_>,
    ws: WorkspaceId,
    id: i64,
) -> Result<Option<TaskRow>, StoreError> {
    sqlx::query(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE workspace_id = ? AND id = ?"))
        .bind(ws.0)
        .bind(id)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(task_row)
        .transpose()
}

pub(crate) async fn update_task(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    t: &TaskRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tasks SET status = ?, snoozed_until = ?, snooze_reason = ?, outcome = ?, owner = ?, due = ?, \
         updated_at = ? WHERE workspace_id = ? AND id = ?",
    )
    .bind(&t.status)
    .bind(t.snoozed_until.map(|d| d.to_string()))
    .bind(&t.snooze_reason)
    .bind(&t.outcome)
    .bind(&t.owner)
    .bind(t.due.to_string())
    .bind(micros(t.updated_at))
    .bind(ws.0)
    .bind(t.id)
    .execute(c)
    .await?;
    Ok(())
}

pub(crate) async fn tasks(
    c: impl SqliteExecutor<'_>,
    ws: WorkspaceId,
    q: &TaskQuery,
) -> Result<Vec<TaskRow>, StoreError> {
    let mut qb = sqlx::QueryBuilder::new(format!("SELECT {TASK_COLUMNS} FROM tasks WHERE workspace_id = "));
    task_filter(&mut qb, ws, q);
    qb.push(" ORDER BY due, id LIMIT ").push_bind(i64::from(if q.limit == 0 { u32::MAX } else { q.limit }));
    qb.build().fetch_all(c).await?.iter().map(task_row).collect()
}

/// How many tasks match `q` (its limit aside), and how many of them are
/// open or snoozed and due before `as_of`.
pub(crate) async fn count_tasks(
    c: impl SqliteExecutor<'_>,
    ws: WorkspaceId,
    q: &TaskQuery,
    as_of: Date,
) -> Result<(u64, u64), StoreError> {
    let mut qb =
        sqlx::QueryBuilder::new("SELECT COUNT(*), COALESCE(SUM(status IN ('open', 'snoozed') AND due < ");
    qb.push_bind(as_of.to_string()).push("), 0) FROM tasks WHERE workspace_id = ");
    task_filter(&mut qb, ws, q);
    let row = qb.build().fetch_one(c).await?;
    let (total, overdue): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    Ok((total.max(0) as u64, overdue.max(0) as u64))
}

fn task_filter(qb: &mut sqlx::QueryBuilder<'_, sqlx::Sqlite>, ws: WorkspaceId, q: &TaskQuery) {
    qb.push_bind(ws.0);
    if let Some(owner) = &q.owner {
        qb.push(" AND owner = ").push_bind(owner.clone());
    }
    if let Some(a) = &q.account {
        qb.push(" AND account = ").push_bind(a.as_str().to_owned());
    }
    if !q.statuses.is_empty() {
        qb.push(" AND status IN (");
        let mut list = qb.separated(", ");
        for s in &q.statuses {
            list.push_bind(s.clone());
        }
        qb.push(")");
    }
    if let Some(day) = q.overdue_on {
        qb.push(" AND status IN ('open', 'snoozed') AND due < ").push_bind(day.to_string());
    }
}

pub(crate) async fn insert_outbox(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    o: &OutboxRow,
) -> Result<Option<i64>, StoreError> {
    let done = sqlx::query(
        "INSERT OR IGNORE INTO outbox (workspace_id, account, run_key, step, approver, rule, payload, status, \
         decided_by, decided_at, note, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(ws.0)
    .bind(o.account.as_str())
    .bind(&o.run_key)
    .bind(o.step)
    .bind(&o.approver)
    .bind(&o.rule)
    .bind(&o.payload)
    .bind(&o.status)
    .bind(&o.decided_by)
    .bind(o.decided_at.map(micros))
    .bind(&o.note)
    .bind(micros(o.created_at))
    .execute(c)
    .await?;
    Ok((done.rows_affected() == 1).then(|| done.last_insert_rowid()))
}

pub(crate) async fn outbox_entry(
    c: impl SqliteExecutor<'_>,
    ws: WorkspaceId,
    id: i64,
) -> Result<Option<OutboxRow>, StoreError> {
    sqlx::query(&format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE workspace_id = ? AND id = ?"))
        .bind(ws.0)
        .bind(id)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(outbox_row)
        .transpose()
}

pub(crate) async fn decide_outbox(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    o: &OutboxRow,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE outbox SET status = ?, decided_by = ?, decided_at = ?, note = ? \
         WHERE workspace_id = ? AND id = ? AND status = 'pending'",
    )
    .bind(&o.status)
    .bind(&o.decided_by)
    .bind(o.decided_at.map(micros))
    .bind(&o.note)
    .bind(ws.0)
    .bind(o.id)
    .execute(c)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn outbox(
    c: impl SqliteExecutor<'_>,
    ws: WorkspaceId,
    status: Option<&str>,
) -> Result<Vec<OutboxRow>, StoreError> {
    sqlx::query(&format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE workspace_id = ? AND (? IS NULL OR status = ?) ORDER BY id"
    ))
    .bind(ws.0)
    .bind(status)
    .bind(status)
    .fetch_all(c)
    .await?
    .iter()
    .map(outbox_row)
    .collect()
}

pub(crate) async fn queue_delivery(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    d: &DeliveryRow,
) -> Result<Option<i64>, StoreError> {
    let done = sqlx::query(
        "INSERT OR IGNORE INTO deliveries (workspace_id, account, run_key, step, channel, customer_facing, payload, \
         status, attempts, next_attempt_at, last_error, created_on, created_at, sent_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(ws.0)
    .bind(d.account.as_str())
    .bind(&d.run_key)
    .bind(d.step)
    .bind(&d.channel)
    .bind(d.customer_facing)
    .bind(&d.payload)
    .bind(&d.status)
    .bind(d.attempts)
    .bind(micros(d.next_attempt_at))
    .bind(&d.last_error)
    .bind(d.created_on.to_string())
    .bind(micros(d.created_at))
    .bind(d.sent_at.map(micros))
    .execute(c)
    .await?;
    Ok((done.rows_affected() == 1).then(|| done.last_insert_rowid()))
}

pub(crate) async fn update_delivery(
    c: &mut SqliteConnection,
    ws: WorkspaceId,
    d: &DeliveryRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_error = ?, sent_at = ? \
         WHERE workspace_id = ? AND id = ?",
    )
    .bind(&d.status)
    .bind(d.attempts)
    .bind(micros(d.next_attempt_at))
    .bind(&d.last_error)
    .bind(d.sent_at.map(micros))
    .bind(ws.0)
    .bind(d.id)
    .execute(c)
    .await?;
    Ok(())
}

pub(crate) async fn deliveries(
    c: impl SqliteExecutor<'_>,
    ws: Option<WorkspaceId>,
    status: Option<&str>,
    due: Option<(Timestamp, u32)>,
) -> Result<Vec<(WorkspaceId, DeliveryRow)>, StoreError> {
    let (before, limit) = due.map_or((None, u32::MAX), |(t, n)| (Some(micros(t)), n));
    sqlx::query(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE (? IS NULL OR workspace_id = ?) AND (? IS NULL OR status = ?) \
         AND (? IS NULL OR next_attempt_at <= ?) ORDER BY next_attempt_at, id LIMIT ?"
    ))
    .bind(ws.map(|w| w.0))
    .bind(ws.map(|w| w.0))
    .bind(status)
    .bind(status)
    .bind(before)
    .bind(before)
    .bind(i64::from(limit))
    .fetch_all(c)
    .await?
    .iter()
    .map(|r| Ok((WorkspaceId(r.try_get(14)?), delivery_row(r)?)))
    .collect()
}

pub(crate) async fn runs(
    c: impl SqliteExecutor<'_>,
    ws: WorkspaceId,
    play: Option<&str>,
    account: Option<&ExternalId>,
) -> Result<Vec<PlayRunRow>, StoreError> {
    // Only the filters asked for: `? IS NULL OR account = ?` would keep
    // SQLite from using the by-account index and scan every run.
    let mut q = sqlx::QueryBuilder::new(format!("SELECT {RUN_COLUMNS} FROM play_runs WHERE workspace_id = "));
    q.push_bind(ws.0);
    if let Some(account) = account {
        q.push(" AND account = ").push_bind(account.as_str().to_owned());
    }
    if let Some(play) = play {
        q.push(" AND play = ").push_bind(play.to_owned());
    }
    q.push(" ORDER BY started, id");
    q.build().fetch_all(c).await?.iter().map(run_row).collect()
}

pub(crate) async fn decisions(
    c: impl SqliteExecutor<'_>,
    ws: WorkspaceId,
    account: Option<&ExternalId>,
    run_key: Option<&str>,
) -> Result<Vec<DecisionRow>, StoreError> {
    // Only the filters asked for, so the by-account and by-run indexes serve them.
    let mut q = sqlx::QueryBuilder::new(format!(
        "SELECT {DECISION_COLUMNS} FROM play_decisions WHERE workspace_id = "
    ));
    q.push_bind(ws.0);
    if let Some(account) = account {
        q.push(" AND account = ").push_bind(account.as_str().to_owned());
    }
    if let Some(key) = run_key {
        q.push(" AND run_key = ").push_bind(key.to_owned());
    }
    q.push(" ORDER BY id");
    q.build().fetch_all(c).await?.iter().map(decision_row).collect()
}
