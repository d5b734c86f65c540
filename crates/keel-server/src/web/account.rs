//! The account page: the header (MRR, seats, renewal, owner, segment),
//! every product line's stage with its exit gate, the health score with
//! its components and its trend over the last 26 weeks, the moments firing
//! with their reasons, contacts, open tasks and play runs, and a timeline
//! (usage per day, touchpoints, tickets, surveys, contracts, stage changes,
//! moments, plays, tasks; `?show=` picks the kinds) — all as of any date
//! (`?as_of=YYYY-MM-DD`, the date picker), by as-of evaluation.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keel_app::format::UNDEFINED;
use keel_core::{Date, ExternalId};
use keel_engine::{AccountHistory, AccountState};
use keel_store::{PlayRunRow, TaskQuery, TaskRow};
use maud::{Markup, html};

use super::auth::Viewer;
use super::{failure, money, page_shell};
use crate::AppState;

/// The timeline's kinds, in the order the filter lists them.
const KINDS: [&str; 9] =
    ["usage", "touchpoint", "ticket", "survey", "contract", "stage", "moment", "play", "task"];

/// Weeks the health trend and the moment history look back.
const WEEKS: u64 = 26;

fn not_found(viewer: &super::auth::Viewer, what: &str) -> Response {
    let body = page_shell(
        "Not found",
        Some(viewer),
        html! {
            h1 { "Not found" }
            p { (what) }
            p { a href="/accounts" { "All accounts" } }
        },
    );
    (StatusCode::NOT_FOUND, body).into_response()
}

pub(super) async fn page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> Response {
    let q: Vec<(String, String)> =
        form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect();
    let param = |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let today = (state.clock)().date_naive();
    let (as_of, bad_date) = match param("as_of").filter(|s| !s.is_empty()) {
        None => (today, None),
        Some(raw) => match keel_core::parse_date(raw) {
            Ok(d) => (d, None),
            Err(e) => (today, Some(format!("{raw:?} is not a date ({e}); showing today"))),
        },
    };
    let ws = viewer.user.workspace;
    let Ok(id) = ExternalId::parse(&id) else { return not_found(&viewer, "No such account.") };
    let Some(journey) = &state.config.journey else {
        return not_found(&viewer, "The server runs without a journey, so accounts are not evaluated.");
    };
    // Every read at once: the pool has several readers, and the page waits for the slowest only.
    let store = state.store.as_ref();
    let every_task = TaskQuery { account: Some(id.clone()), ..TaskQuery::default() };
    let (history, names, runs, all_tasks) = tokio::join!(
        keel_app::load::history(store, ws, &id),
        store.event_names(ws),
        store.play_runs(ws, None, Some(&id)),
        store.tasks(ws, &every_task),
    );
    let (history, names, runs, all_tasks) = match (history, names, runs, all_tasks) {
        (Ok(Some(h)), Ok(n), Ok(r), Ok(t)) => (h, n, r, t),
        (Ok(None), ..) => {
            return not_found(&viewer, &format!("No account {:?} in this workspace.", id.as_str()));
        }
        (Err(e), ..) | (_, Err(e), ..) | (_, _, Err(e), _) | (.., Err(e)) => return failure(e),
    };
    if !viewer.may_see(history.account.owner.as_deref()) {
        return super::not_in_your_book(
            &viewer,
            &format!("{} is another owner's account.", history.account.name),
        );
    }
    let tasks: Vec<TaskRow> =
        all_tasks.iter().filter(|t| t.status == "open" || t.status == "snoozed").cloned().collect();
    let plan = keel_engine::Plan::new(journey.journey.clone(), &names);
    // The state as of the day and the weekly samples, side by side.
    let (evaluated, weeks) = std::thread::scope(|scope| {
        let weeks = scope.spawn(|| weekly(&plan, &history, as_of));
        let evaluated = keel_engine::evaluate(&plan, &history, as_of);
        (evaluated, weeks.join().unwrap_or_default())
    });
    // The filter form marks itself, so a form with every box cleared shows nothing.
    let show: Vec<&str> = if param("filtered").is_some() {
        KINDS.iter().copied().filter(|k| q.iter().any(|(key, v)| key == "kind" && v == k)).collect()
    } else {
        KINDS.to_vec()
    };
    let sources =
        Sources { history: &history, state: &evaluated, weeks: &weeks, runs: &runs, tasks: &all_tasks };
    let main = html! {
        (header(&history, &evaluated, as_of, today, bad_date.as_deref()))
        div.columns {
            div {
                (stages(&evaluated))
                (health(&evaluated, &weeks, &journey.journey.health))
                (moments(&evaluated))
                (timeline(&sources, as_of, &show))
            }
            div {
                (contacts(&history, as_of))
                (open_tasks(&tasks, as_of))
                (play_runs(&runs, as_of))
            }
        }
    };
    page_shell(&history.account.name, Some(&viewer), main).into_response()
}

fn header(h: &AccountHistory, s: &AccountState, as_of: Date, today: Date, bad: Option<&str>) -> Markup {
    let active: Vec<&keel_core::Contract> = h.contracts.iter().filter(|c| c.is_in_force(as_of)).collect();
    let mrr: f64 = active.iter().map(|c| c.mrr.amount.to_string().parse::<f64>().unwrap_or_default()).sum();
    let seats: u32 = active.iter().map(|c| c.seats).sum();
    let renewal = active.iter().filter_map(|c| c.end).min();
    html! {
        p.crumbs { a href="/accounts" { "Accounts" } " / " (h.account.id.as_str()) }
        h1 { (h.account.name) }
        @if let Some(b) = bad { p.error role="alert" { (b) } }
        form.asof method="get" {
            label for="as_of" { "As of" }
            input id="as_of" name="as_of" type="date" value=(as_of) max=(today);
            button type="submit" { "Show" }
            @if as_of != today { " " a href="?" { "Back to today" } }
        }
        dl.facts {
            div { dt { "MRR" } dd data-fact="mrr" { (money(mrr)) } }
            div { dt { "Seats" } dd { (seats) } }
            div { dt { "Renewal" } dd { (renewal.map(|d| d.to_string()).unwrap_or_else(|| UNDEFINED.into())) } }
            div { dt { "Owner" } dd { (h.account.owner.clone().unwrap_or_else(|| UNDEFINED.into())) } }
            div { dt { "Segment" } dd data-fact="segment" { (s.segment.clone().unwrap_or_else(|| UNDEFINED.into())) } }
            div { dt { "Health" } dd data-fact="band" {
                @match (s.health.band, s.health.score) {
                    (Some(b), Some(x)) => { span class=(format!("dot {}", b.as_str())) {} (b.as_str()) " · " (format!("{x:.0}")) }
                    _ => "no data",
                }
            } }
        }
    }
}

fn stages(s: &AccountState) -> Markup {
    html! {
        section aria-labelledby="stages" {
            h2 id="stages" { "Stages" }
            @if s.lines.is_empty() { p { "No product line has started." } }
            @for line in &s.lines {
                @let met = line.gate.iter().filter(|c| c.holds == Some(true)).count();
                @let total = line.gate.len();
                div.line {
                    h3 { (line.product_line) ": " (line.stage.clone().unwrap_or_else(|| "ended".into())) }
                    p.note { (line.days_in_stage) " days in the stage, since " (line.entered) }
                    @if total > 0 {
                        label { "Exit gate: " (met) " of " (total) " conditions met"
                            progress max=(total) value=(met) { (met) "/" (total) }
                        }
                        ul.gate {
                            @for c in &line.gate {
                                li class=(match c.holds { Some(true) => "ok", Some(false) => "no", None => "unknown" }) {
                                    code { (c.expr) }
                                    @for (k, v) in &c.values {
                                        " · " (k) " = " (v.map(|v| v.to_string()).unwrap_or_else(|| "no data".into()))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One weekly sample of the account, oldest first.
struct Week {
    on: Date,
    score: Option<f64>,
    fired: Vec<String>,
}

/// The account every week for [`WEEKS`] weeks up to `as_of` (the last
/// sample is `as_of` itself), each evaluated as of its own day.
fn weekly(plan: &keel_engine::Plan, h: &AccountHistory, as_of: Date) -> Vec<Week> {
    let days: Vec<Date> = (0..=WEEKS).rev().map(|w| as_of - chrono::Days::new(7 * w)).collect();
    let sample = |on: Date| {
        let s = keel_engine::signals(plan, h, on);
        Week { on, score: s.health.score, fired: s.fired }
    };
    days.into_iter().map(sample).collect()
}

fn health(s: &AccountState, weeks: &[Week], model: &keel_journey::HealthModel) -> Markup {
    let labels: Vec<String> = weeks.iter().map(|w| w.on.format("%b %d").to_string()).collect();
    let trend = [super::svg::Series {
        name: "Health score",
        class: "score",
        values: weeks.iter().map(|w| w.score).collect(),
    }];
    html! {
        section aria-labelledby="health" {
            h2 id="health" { "Health" }
            (super::svg::line_chart_on(
                &trend,
                &labels,
                |v| format!("{v:.0}"),
                &format!("Health score weekly over the last {WEEKS} weeks"),
                Some((0.0, 100.0)),
                &[(model.red, "red".to_owned()), (model.yellow, "yellow".to_owned())],
            ))
            @if s.health.uncertain { p.note { "Uncertain: only " (format!("{:.0}%", s.health.coverage * 100.0)) " of the weight has data." } }
            table.health {
                thead { tr { th scope="col" { "Component" } th scope="col" { "Metric" } th scope="col" { "Value" } th scope="col" { "Score" } th scope="col" { "Weight" } } }
                tbody {
                    @for c in &s.health.components {
                        tr {
                            th scope="row" { (c.id) }
                            td { code { (c.metric) } }
                            td { (c.value.map(|v| v.to_string()).unwrap_or_else(|| "no data".into())) }
                            td { (c.score.map(|x| format!("{x:.0}")).unwrap_or_else(|| UNDEFINED.into())) }
                            td { (format!("{:.0}", c.weight)) }
                        }
                    }
                }
            }
        }
    }
}

fn moments(s: &AccountState) -> Markup {
    html! {
        section aria-labelledby="moments" {
            h2 id="moments" { "Moments that matter" }
            @if s.moments.is_empty() { p { "None firing." } }
            ul.moments {
                @for m in &s.moments {
                    li class=(format!("sev-{}", m.severity)) {
                        strong { (m.id) } " (" (m.severity) ", " (m.owner) ")"
                        div.reason { (m.reason) }
                    }
                }
            }
        }
    }
}

/// One line of the timeline.
struct Entry {
    on: Date,
    kind: &'static str,
    text: String,
}

/// What the timeline is made from.
struct Sources<'a> {
    history: &'a AccountHistory,
    state: &'a AccountState,
    weeks: &'a [Week],
    runs: &'a [PlayRunRow],
    tasks: &'a [TaskRow],
}

/// The most entries the timeline shows.
const SHOWN: usize = 80;

fn timeline(src: &Sources<'_>, as_of: Date, show: &[&str]) -> Markup {
    let h = src.history;
    let mut entries: Vec<Entry> = Vec::new();
    for t in &h.touchpoints {
        let mut text = t.kind.to_string();
        for part in [&t.notes, &t.outcome].into_iter().flatten() {
            text.push_str(" — ");
            text.push_str(part);
        }
        entries.push(Entry { on: t.occurred.date_naive(), kind: "touchpoint", text });
    }
    for t in &h.tickets {
        entries.push(Entry {
            on: t.opened.date_naive(),
            kind: "ticket",
            text: format!("sev {} ticket {}", t.severity.level(), t.id.as_str()),
        });
    }
    for s in &h.surveys {
        entries.push(Entry {
            on: s.responded.date_naive(),
            kind: "survey",
            text: format!("{} {}", s.kind.as_str(), s.score),
        });
    }
    for c in &h.contracts {
        entries.push(Entry {
            on: c.start,
            kind: "contract",
            text: format!("{} line starts, {} seats", c.product.as_str(), c.seats),
        });
    }
    for u in &h.usage {
        if u.events > 0 {
            entries.push(Entry { on: u.day, kind: "usage", text: format!("{} events", u.events) });
        }
    }
    for line in &src.state.lines {
        for t in line.transitions.iter().skip(1) {
            let to = t.to.clone().unwrap_or_else(|| "ended".into());
            let from = t.from.clone().unwrap_or_else(|| UNDEFINED.into());
            entries.push(Entry {
                on: t.on,
                kind: "stage",
                text: format!("{}: {from} → {to} ({})", line.product_line, t.rule),
            });
        }
    }
    for pair in src.weeks.windows(2) {
        for id in pair[1].fired.iter().filter(|m| !pair[0].fired.contains(m)) {
            entries.push(Entry {
                on: pair[1].on,
                kind: "moment",
                text: format!("{id} fires (first seen this week)"),
            });
        }
        for id in pair[0].fired.iter().filter(|m| !pair[1].fired.contains(m)) {
            entries.push(Entry { on: pair[1].on, kind: "moment", text: format!("{id} stops firing") });
        }
    }
    for r in src.runs {
        let held = if r.holdout { ", held out" } else { "" };
        entries.push(Entry { on: r.started, kind: "play", text: format!("play {} started{held}", r.play) });
    }
    for t in src.tasks {
        entries.push(Entry {
            on: t.created_at.date_naive(),
            kind: "task",
            text: format!("task for {}: {}", t.owner, t.title),
        });
        if t.status == "done" {
            entries.push(Entry {
                on: t.updated_at.date_naive(),
                kind: "task",
                text: format!("task done: {}", t.title),
            });
        }
    }
    entries.retain(|e| e.on <= as_of && show.contains(&e.kind));
    entries.sort_by_key(|e| std::cmp::Reverse(e.on));
    let total = entries.len();
    entries.truncate(SHOWN);
    html! {
        section aria-labelledby="timeline" {
            h2 id="timeline" { "Timeline" }
            form.filters.kinds method="get" {
                input type="hidden" name="as_of" value=(as_of);
                input type="hidden" name="filtered" value="1";
                fieldset {
                    legend { "Show" }
                    @for k in KINDS {
                        label.check { input type="checkbox" name="kind" value=(k) checked[show.contains(&k)]; " " (k) }
                    }
                }
                button type="submit" { "Filter" }
            }
            @if total > SHOWN { p.note { "The latest " (SHOWN) " of " (total) " entries." } }
            ol.timeline {
                @for e in &entries {
                    li class=(e.kind) { time datetime=(e.on) { (e.on) } " " span.kind { (e.kind) } " " (e.text) }
                }
            }
        }
    }
}

/// A contact's last sign of life by `as_of`: product use under their id or
/// email, or a survey they answered; with what it was.
fn last_activity(h: &AccountHistory, c: &keel_core::Contact, as_of: Date) -> Option<(Date, &'static str)> {
    let ids: Vec<u64> = h
        .users
        .iter()
        .filter(|(_, name)| name == c.id.as_str() || name.eq_ignore_ascii_case(&c.email))
        .map(|(id, _)| *id)
        .collect();
    let used = h
        .usage
        .iter()
        .filter(|u| u.day <= as_of && u.known <= as_of)
        .filter(|u| u.users.iter().any(|(id, _)| ids.contains(id)))
        .map(|u| (u.day, "product use"))
        .max();
    let answered = h
        .surveys
        .iter()
        .filter(|s| s.contact.as_ref() == Some(&c.id) && s.responded.date_naive() <= as_of)
        .map(|s| (s.responded.date_naive(), "survey"))
        .max();
    used.into_iter().chain(answered).max_by_key(|(d, _)| *d)
}

fn contacts(h: &AccountHistory, as_of: Date) -> Markup {
    html! {
        section aria-labelledby="contacts" {
            h2 id="contacts" { "Contacts" }
            ul.contacts {
                @for c in h.contacts.iter().filter(|c| c.active_from <= as_of && c.role.as_str() != "user") {
                    @let gone = c.active_to.is_some_and(|e| e <= as_of);
                    li class=[gone.then_some("gone")] {
                        strong { (c.role.as_str().replace('_', " ")) } " " (if c.name.is_empty() { c.email.clone() } else { c.name.clone() })
                        @if gone { " (left " (c.active_to.map(|d| d.to_string()).unwrap_or_default()) ")" }
                        div.note {
                            @match last_activity(h, c, as_of) {
                                Some((d, what)) => { "last active " (d) " (" (what) ", " ((as_of - d).num_days()) " days ago)" },
                                None => "no activity seen",
                            }
                        }
                    }
                }
            }
        }
    }
}

fn open_tasks(tasks: &[TaskRow], as_of: Date) -> Markup {
    html! {
        section aria-labelledby="tasks" {
            h2 id="tasks" { "Open tasks" }
            @if tasks.is_empty() { p { "None." } }
            ul.tasks {
                @for t in tasks {
                    li class=[keel_core::task_is_overdue(&t.status, t.due, as_of).then_some("late")] {
                        (t.title) div.note { (t.owner) " · due " (t.due) " · " (t.priority) }
                    }
                }
            }
        }
    }
}

fn play_runs(runs: &[PlayRunRow], as_of: Date) -> Markup {
    let mut runs: Vec<&PlayRunRow> = runs.iter().filter(|r| r.started <= as_of).collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.started));
    html! {
        section aria-labelledby="runs" {
            h2 id="runs" { "Plays" }
            @if runs.is_empty() { p { "No play has run." } }
            ul.runs {
                @for r in runs.iter().take(20) {
                    li { strong { (r.play) } " " (r.status) @if r.holdout { " (held out)" } div.note { "since " (r.started) @if let Some(o) = &r.outcome { " · outcome " (o) } } }
                }
            }
        }
    }
}
