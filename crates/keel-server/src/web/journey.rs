//! The journey page: the 12-month × 8-row map for a segment, each cell
//! coloured by what the journey-map audit finds in the data (systematized,
//! heroic, documented only, missing); a cell's detail with its links and
//! the live counts behind the classification (`?cell=N`); the stages with
//! their exit gates; and the journey file the server runs.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use keel_analytics::audit::{AuditReport, CellAudit, Status};
use keel_app::format::UNDEFINED;
use maud::{Markup, html};

use super::auth::Viewer;
use super::{page_shell, pct};
use crate::AppState;

fn label(status: Status) -> &'static str {
    match status {
        Status::Systematized => "systematized",
        Status::Heroic => "heroic",
        Status::DocumentedOnly => "documented only",
        Status::Missing => "missing",
    }
}

pub(super) async fn page(State(state): State<AppState>, viewer: Viewer, RawQuery(raw): RawQuery) -> Response {
    let Some(config) = &state.config.journey else {
        let body = page_shell(
            "Journey",
            Some(&viewer),
            html! {
                h1 { "Journey" } p { "The server runs without a journey file." }
            },
        );
        return body.into_response();
    };
    let q: Vec<(String, String)> =
        form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect();
    let param =
        |k: &str| q.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    let segment = param("segment");
    let chosen: Option<usize> = param("cell").and_then(|c| c.parse().ok());
    let journey = &config.journey;
    let ws = viewer.user.workspace;
    let today = (state.clock)().date_naive();
    let audit = match super::shown(super::figures::audit(&state, ws, today, segment.clone()).await) {
        Ok(a) => a,
        Err(f) => return f.page(),
    };
    let seg_query = segment.as_deref().map(|s| format!("segment={s}&")).unwrap_or_default();
    let main = html! {
        h1 { "Journey" }
        p.note { (config.file) " · version " code { (config.version) } " · checked: every expression and reference resolves" }
        form.filters method="get" action="/journey" {
            label { "Segment" select name="segment" {
                option value="" selected[segment.is_none()] { "all" }
                @for s in &journey.segments {
                    option value=(s.id) selected[segment.as_deref() == Some(s.id.as_str())] { (s.id) }
                }
            } }
            button type="submit" { "Show" }
        }
        @match &audit {
            Err(why) => p.error role="alert" { (why) },
            Ok(cached) => {
                @let a = &cached.value;
                (map(a, &seg_query))
                (super::computed(cached))
                @if let Some(cell) = chosen.and_then(|i| a.cells.get(i)) { (detail(cell)) }
            }
        }
        section aria-labelledby="stages" {
            h2 id="stages" { "Stages and their exit gates" }
            table.stages {
                thead { tr { th scope="col" { "Stage" } th scope="col" { "Exit gate" } th scope="col" { "Target" } th scope="col" { "Owner" } th scope="col" { "Watches" } } }
                tbody {
                    @for st in &journey.stages {
                        tr {
                            th scope="row" { (st.name) " " small { "(" (st.id) ")" } }
                            td { code { (st.exit.source) } }
                            td { (st.target_days.map(|d| format!("{d} days")).unwrap_or_default()) }
                            td { (st.owner) }
                            td { code { (st.watch) } }
                        }
                    }
                }
            }
        }
    };
    page_shell("Journey", Some(&viewer), main).into_response()
}

fn map(a: &AuditReport, seg_query: &str) -> Markup {
    // The cell of the journey that covers a row's month.
    let covering = |row: &str, month: u8| {
        a.cells.iter().position(|c| c.row == row && c.months.0 <= month && month <= c.months.1)
    };
    html! {
        section aria-labelledby="map" {
            h2 id="map" { "The journey map, as the data shows it" }
            p.note { (a.accounts) " accounts audited. "
                @for (status, n) in &a.counts { span class=(format!("chip {}", status.as_str())) { (label(*status)) ": " (n) } " " } }
            div.mapwrap {
                table.map {
                    thead { tr { th scope="col" { "Row" } @for m in 1..=12u8 { th scope="col" { "M" (m) } } } }
                    tbody {
                        @for (row, statuses) in &a.grid {
                            tr {
                                th scope="row" { (row.replace('_', " ")) }
                                @for (m, status) in statuses.iter().enumerate() {
                                    @let month = m as u8 + 1;
                                    @match covering(row, month) {
                                        Some(i) if a.cells[i].months.0 == month => {
                                            @let span = a.cells[i].months.1 - a.cells[i].months.0 + 1;
                                            td class=(format!("cell {}", status.as_str())) colspan=(span) {
                                                a href=(format!("/journey?{seg_query}cell={i}#cell")) title=(a.cells[i].text) {
                                                    (label(*status))
                                                }
                                            }
                                        }
                                        Some(_) => {}
                                        None => td class="cell missing" { (UNDEFINED) },
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

fn detail(c: &CellAudit) -> Markup {
    html! {
        section id="cell" aria-labelledby="cell-title" {
            h2 id="cell-title" { (c.row.replace('_', " ")) ", months " (c.months.0) "–" (c.months.1) ": " (label(c.status)) }
            blockquote { (c.text) }
            p { (c.accounts) " accounts lived through these months." }
            @if c.links.is_empty() { p { "The cell links nothing the data could show." } }
            @else {
                table.links {
                    thead { tr { th scope="col" { "Link" } th scope="col" { "Reads" } th scope="col" { "Live for" } th scope="col" { "Share" } th scope="col" { "Fired" } } }
                    tbody {
                        @for l in &c.links {
                            tr {
                                th scope="row" { (l.kind.as_str()) " " code { (l.id) } }
                                td { (l.feeds.join(", ")) }
                                td { (l.live) }
                                td { (pct(l.live_share)) }
                                td { (l.fired.map(|f| f.to_string()).unwrap_or_default()) }
                            }
                        }
                    }
                }
                p.note { "Systematized: a link is live for at least half the accounts; heroic: for some; documented only: for none (docs/metrics.md)." }
            }
        }
    }
}
