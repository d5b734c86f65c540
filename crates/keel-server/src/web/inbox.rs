//! The inbox: my tasks, overdue first, each completed with an outcome or
//! snoozed with a reason; and the approval outbox with each held send as
//! it would go out. Leaders and admins get the team view (everyone's tasks,
//! `?owner=` to pick one person) and every held send; a CSM their own
//! tasks and the sends held for their accounts.

use std::collections::HashSet;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keel_store::{OutboxRow, TaskQuery, TaskRow};
use maud::{Markup, html};
use serde::Deserialize;

use super::auth::Viewer;
use super::{csrf_ok, failure, forbidden, page_shell};
use crate::AppState;
use keel_app::runner::ActionError;

/// Tasks shown at once.
const PAGE: u32 = 100;

fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect()
}

fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

pub(super) async fn page(State(state): State<AppState>, viewer: Viewer, RawQuery(raw): RawQuery) -> Response {
    let q = pairs(raw.as_deref());
    let today = (state.clock)().date_naive();
    let ws = viewer.user.workspace;
    // A CSM's inbox is theirs; a leader's team view shows everyone unless asked for one person.
    let owner = match param(&q, "owner") {
        Some(o) if viewer.sees_everything() => (!o.is_empty()).then(|| o.to_owned()),
        _ if viewer.sees_everything() => None,
        _ => Some(viewer.user.email.clone()),
    };
    // The most overdue first (tasks sort by due day), a page of them.
    let query = TaskQuery {
        owner: owner.clone(),
        statuses: vec!["open".into(), "snoozed".into()],
        limit: PAGE,
        ..TaskQuery::default()
    };
    let (tasks, (total, overdue)) =
        match tokio::try_join!(state.store.tasks(ws, &query), state.store.count_tasks(ws, &query, today)) {
            Ok(x) => x,
            Err(e) => return failure(e),
        };
    let outbox = match held_for(&state, &viewer).await {
        Ok(o) => o,
        Err(e) => return failure(e),
    };
    let notice = param(&q, "notice").map(str::to_owned);
    let problem = param(&q, "problem").map(str::to_owned);
    let scope = match &owner {
        Some(o) if *o == viewer.user.email => "My tasks".to_owned(),
        Some(o) => format!("Tasks of {o}"),
        None => "The team's tasks".to_owned(),
    };
    let main = html! {
        h1 { "Inbox" }
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        @if let Some(p) = problem { p.error role="alert" { (p) } }
        @if viewer.sees_everything() {
            form.filters method="get" action="/inbox" {
                label { "Owner" input name="owner" value=(owner.clone().unwrap_or_default()) placeholder="everyone"; }
                button type="submit" { "Show" }
            }
        }
        section aria-labelledby="tasks" {
            h2 id="tasks" { (scope) ": " (total) ", " (overdue) " overdue" }
            @if tasks.is_empty() { p { "Nothing to do." } }
            @if total > tasks.len() as u64 { p.note { "Showing the " (tasks.len()) " most overdue; complete or snooze them to see the next." } }
            @for t in &tasks { (task(t, &viewer, today)) }
        }
        section aria-labelledby="outbox" {
            h2 id="outbox" { "Waiting for approval: " (outbox.len()) }
            @if outbox.is_empty() { p { "Nothing is held." } }
            @for o in &outbox { (held(o, &viewer)) }
        }
    };
    page_shell("Inbox", Some(&viewer), main).into_response()
}

/// The sends held for this viewer: all of them for leaders and admins, those
/// of their own accounts for a CSM.
async fn held_for(state: &AppState, viewer: &Viewer) -> Result<Vec<OutboxRow>, keel_store::StoreError> {
    let ws = viewer.user.workspace;
    let all = state.store.outbox(ws, Some("pending")).await?;
    if viewer.sees_everything() {
        return Ok(all);
    }
    let query = keel_store::AccountQuery {
        owner: Some(viewer.user.email.clone()),
        limit: 1000,
        ..keel_store::AccountQuery::default()
    };
    let mut mine = HashSet::new();
    let mut q = query;
    loop {
        let page = state.store.list_accounts(ws, &q).await?;
        mine.extend(page.rows.into_iter().map(|r| r.account.id));
        match page.next {
            Some(n) => q.after = Some(n),
            None => break,
        }
    }
    Ok(all.into_iter().filter(|o| mine.contains(&o.account)).collect())
}

fn task(t: &TaskRow, viewer: &Viewer, today: keel_core::Date) -> Markup {
    let late = keel_core::task_is_overdue(&t.status, t.due, today);
    html! {
        article.task id=(format!("task-{}", t.id)) class=[late.then_some("late")] {
            h3 { (t.title) }
            p.note {
                a href=(format!("/accounts/{}", t.account.as_str())) { (t.account.as_str()) }
                " · " (t.owner) " · due " (t.due) @if late { " (overdue)" } " · " (t.priority) " · " (t.kind)
                @if let Some(u) = t.snoozed_until { " · snoozed until " (u) }
            }
            @if !t.description.is_empty() { p { (t.description) } }
            div.actions {
                form method="post" action=(format!("/inbox/tasks/{}/done", t.id)) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    label { "Outcome" input name="outcome" required placeholder="what came of it"; }
                    button type="submit" { "Done" }
                }
                form method="post" action=(format!("/inbox/tasks/{}/snooze", t.id)) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    label { "Until" input name="until" type="date" required; }
                    label { "Reason" input name="reason" required; }
                    button.secondary type="submit" { "Snooze" }
                }
            }
        }
    }
}

fn held(o: &OutboxRow, viewer: &Viewer) -> Markup {
    let send: serde_json::Value = serde_json::from_str(&o.payload).unwrap_or_default();
    let play = o.run_key.split('/').nth(1).unwrap_or_default();
    html! {
        article.held id=(format!("outbox-{}", o.id)) {
            h3 { (play) " → " a href=(format!("/accounts/{}", o.account.as_str())) { (o.account.as_str()) } }
            p.note { "Held by rule " code { (o.rule) } " for " (o.approver) }
            @match send["effect"].as_str() {
                Some("email") => {
                    dl.email {
                        dt { "To" } dd { @for r in send["to"].as_array().into_iter().flatten() { (r["email"].as_str().unwrap_or_default()) " " } }
                        dt { "Subject" } dd.subject { (send["subject"].as_str().unwrap_or_default()) }
                    }
                    pre.body { (send["body"].as_str().unwrap_or_default()) }
                }
                _ => {
                    p { "Webhook to " code { (send["url"].as_str().unwrap_or_default()) } }
                    pre.body { (send["body"].as_str().unwrap_or_default()) }
                }
            }
            div.actions {
                form method="post" action=(format!("/inbox/outbox/{}/approve", o.id)) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    button type="submit" { "Approve and send" }
                }
                form method="post" action=(format!("/inbox/outbox/{}/reject", o.id)) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    label { "Reason" input name="reason" required; }
                    button.secondary type="submit" { "Reject" }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct ActionForm {
    csrf: String,
    outcome: Option<String>,
    until: Option<String>,
    reason: Option<String>,
}

/// Back to the inbox with a message (post, redirect, get).
fn back(result: Result<String, String>) -> Response {
    let (key, text) = match result {
        Ok(n) => ("notice", n),
        Err(p) => ("problem", p),
    };
    let query = form_urlencoded::Serializer::new(String::new()).append_pair(key, &text).finish();
    Redirect::to(&format!("/inbox?{query}")).into_response()
}

fn refused(e: ActionError) -> Result<String, String> {
    match e {
        ActionError::Store(e) => {
            tracing::error!(error = %e, "inbox action failed");
            Err("The server could not do that; the log has the details.".into())
        }
        other => Err(other.to_string()),
    }
}

pub(super) async fn act(
    State(state): State<AppState>,
    Path((what, id, action)): Path<(String, i64, String)>,
    viewer: Viewer,
    body: String,
) -> Response {
    if !csrf_ok(&viewer, &body) {
        return forbidden(&viewer);
    }
    let Ok(form) = serde_urlencoded::from_str::<ActionForm>(&body) else {
        return back(Err("The form was incomplete.".into()));
    };
    let _ = form.csrf;
    let Some(journey) = state.config.journey.as_ref().map(|j| &j.journey) else {
        return back(Err("The server runs without a journey.".into()));
    };
    if what == "outbox" && !viewer.sees_everything() {
        // A CSM decides only the sends held for their own accounts.
        match held_for(&state, &viewer).await {
            Ok(mine) if mine.iter().any(|o| o.id == id) => {}
            Ok(_) => {
                return back(Err(format!(
                    "Outbox entry {id} is not one of your accounts'; a leader decides it."
                )));
            }
            Err(e) => return failure(e),
        }
    }
    if what == "tasks" && !viewer.sees_everything() {
        // A CSM works only their own tasks.
        let own = keel_store::TaskQuery {
            owner: Some(viewer.user.email.clone()),
            limit: 100_000,
            ..keel_store::TaskQuery::default()
        };
        match state.store.tasks(viewer.user.workspace, &own).await {
            Ok(mine) if mine.iter().any(|t| t.id == id) => {}
            Ok(_) => return back(Err(format!("Task {id} is another owner's; they or a leader work it."))),
            Err(e) => return failure(e),
        }
    }
    let (store, ws, now, by) =
        (state.store.as_ref(), viewer.user.workspace, (state.clock)(), viewer.user.email.as_str());
    let result = match (what.as_str(), action.as_str()) {
        ("tasks", "done") => {
            let outcome = form.outcome.unwrap_or_default();
            match keel_app::runner::complete_task(store, ws, id, &outcome, Some(by), now).await {
                Ok(t) => {
                    if let Some(evaluator) = &state.evaluator {
                        evaluator.touch(ws, [t.account.clone()], now);
                    }
                    Ok(format!("Done: {}", t.title))
                }
                Err(e) => refused(e),
            }
        }
        ("tasks", "snooze") => {
            let until = form.until.as_deref().and_then(|u| keel_core::parse_date(u).ok());
            match until {
                None => Err("Pick the day the task comes back.".into()),
                Some(until) => {
                    let reason = form.reason.unwrap_or_default();
                    match keel_app::runner::snooze_task(store, ws, journey, id, until, &reason, now).await {
                        Ok(t) => Ok(format!("Snoozed until {until}: {}", t.title)),
                        Err(e) => refused(e),
                    }
                }
            }
        }
        ("outbox", "approve") => {
            match keel_app::runner::approve_outbox(store, ws, journey, id, by, now).await {
                Ok(_) => Ok(format!("Approved: outbox entry {id} goes out")),
                Err(e) => refused(e),
            }
        }
        ("outbox", "reject") => {
            let reason = form.reason.unwrap_or_default();
            match keel_app::runner::reject_outbox(store, ws, journey, id, by, &reason, now).await {
                Ok(_) => Ok(format!("Rejected: outbox entry {id}; its play run is cancelled")),
                Err(e) => refused(e),
            }
        }
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    back(result)
}
