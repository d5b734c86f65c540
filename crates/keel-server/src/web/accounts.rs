//! The accounts list: filter by segment, stage, band, owner and renewal
//! window, search by name or id, sort by any column, page with keyset
//! cursors, and export the whole filtered list as CSV. The parameters are
//! the REST API's (`GET /api/v1/accounts`), so a filtered page's URL and an
//! API call read the same. A CSM starts on their own book.

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_store::{AccountQuery, AccountRow};
use maud::{Markup, html};

use super::auth::Viewer;
use super::{failure, money, page_shell};
use crate::AppState;
use crate::api::accounts::{ListParams, next_cursor, query_from};

/// The query as the page reads it: a CSM sees their own book only (an
/// `owner` other than theirs is refused by [`foreign_owner`]); leaders and
/// admins everyone's unless they pick an owner.
fn params(
    raw: Option<&str>,
    viewer: &super::auth::Viewer,
) -> Result<(ListParams, Vec<(String, String)>), String> {
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect();
    if !viewer.sees_everything() {
        pairs.retain(|(k, _)| k != "owner");
        pairs.push(("owner".into(), viewer.user.email.clone()));
    }
    let kept: Vec<(String, String)> = pairs.iter().filter(|(_, v)| !v.is_empty()).cloned().collect();
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(&kept).finish();
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(encoded.as_bytes()));
    let params: ListParams = serde_path_to_error::deserialize(de).map_err(|e| e.to_string())?;
    Ok((params, pairs))
}

/// A CSM asking for another owner's book (or everyone's, `owner=`).
fn foreign_owner(raw: Option<&str>, viewer: &super::auth::Viewer) -> Option<String> {
    if viewer.sees_everything() {
        return None;
    }
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .find(|(k, v)| k == "owner" && v.as_ref() != viewer.user.email)
        .map(|(_, v)| if v.is_empty() { "everyone's".to_owned() } else { format!("{v}'s") })
}

fn link(pairs: &[(String, String)], replace: &[(&str, &str)], path: &str) -> String {
    let mut out: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| !replace.iter().any(|(r, _)| r == k) && k != "cursor")
        .cloned()
        .collect();
    out.extend(
        replace.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    format!("{path}?{}", form_urlencoded::Serializer::new(String::new()).extend_pairs(&out).finish())
}

fn value<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str())
}

pub(super) async fn page(State(state): State<AppState>, viewer: Viewer, RawQuery(raw): RawQuery) -> Response {
    if let Some(whose) = foreign_owner(raw.as_deref(), &viewer) {
        return super::not_in_your_book(&viewer, &format!("You asked for {whose} accounts."));
    }
    let ws = viewer.user.workspace;
    let parsed = params(raw.as_deref(), &viewer)
        .and_then(|(p, pairs)| query_from(p).map(|q| (q, pairs)).map_err(|e| e.message));
    let (query, pairs) = match parsed {
        Ok(x) => x,
        Err(why) => {
            let body = page_shell(
                "Accounts",
                Some(&viewer),
                html! {
                    h1 { "Accounts" }
                    p.error role="alert" { (why) }
                    p { a href="/accounts" { "Clear the filters" } }
                },
            );
            return (StatusCode::BAD_REQUEST, body).into_response();
        }
    };
    let page = match state.store.list_accounts(ws, &query).await {
        Ok(p) => p,
        Err(e) => return failure(e),
    };
    let next = page.next.map(|at| next_cursor(&query, at));
    let main = html! {
        h1 { "Accounts" }
        (filters(&pairs))
        p.note {
            (page.total) " accounts match · "
            a href=(link(&pairs, &[], "/accounts.csv")) download { "Export CSV" }
        }
        (table(&page.rows, Some(&pairs), "accounts"))
        nav.pages aria-label="Pages" {
            @if value(&pairs, "cursor").is_empty() { "" } @else { a href=(link(&pairs, &[], "/accounts")) { "First page" } " " }
            @if let Some(c) = &next { a rel="next" href=(format!("{}&cursor={c}", link(&pairs, &[], "/accounts"))) { "Next page" } }
        }
    };
    page_shell("Accounts", Some(&viewer), main).into_response()
}

fn filters(pairs: &[(String, String)]) -> Markup {
    let v = |k: &str| value(pairs, k).to_owned();
    html! {
        form.filters method="get" action="/accounts" {
            label { "Search" input name="q" type="search" value=(v("q")) placeholder="name or id"; }
            label { "Segment" input name="segment" value=(v("segment")); }
            label { "Stage" input name="stage" value=(v("stage")) placeholder="stage or line:stage"; }
            label { "Band" select name="band" {
                @for b in ["", "red", "yellow", "green"] {
                    option value=(b) selected[v("band") == b] { (if b.is_empty() { "any" } else { b }) }
                }
            } }
            label { "Owner" input name="owner" value=(v("owner")) placeholder="everyone"; }
            label { "Renewal from" input name="renewal_from" type="date" value=(v("renewal_from")); }
            label { "to" input name="renewal_to" type="date" value=(v("renewal_to")); }
            input type="hidden" name="sort" value=(v("sort"));
            button type="submit" { "Filter" }
        }
    }
}

/// Account rows as a table. With the page's query `pairs`, the headings
/// sort (clicking again reverses); without, they are plain.
pub(super) fn table(rows: &[AccountRow], pairs: Option<&[(String, String)]>, class: &str) -> Markup {
    let heading = |label: &str, key: &str| match pairs {
        None => html! { (label) },
        Some(pairs) => {
            let current = value(pairs, "sort");
            let (next, mark) = match current {
                s if s == key => (format!("-{key}"), " ▲"),
                s if s == format!("-{key}") => (key.to_owned(), " ▼"),
                _ => (key.to_owned(), ""),
            };
            html! { a href=(link(pairs, &[("sort", &next)], "/accounts")) { (label) (mark) } }
        }
    };
    html! {
        table class=(class) {
            thead { tr {
                th scope="col" { (heading("Account", "name")) }
                th scope="col" { "Segment" }
                th scope="col" { "Stage" }
                th scope="col" { (heading("Health", "score")) }
                th scope="col" { (heading("MRR", "mrr")) }
                th scope="col" { (heading("Renewal", "renewal")) }
                th scope="col" { (heading("Owner", "owner")) }
            } }
            tbody {
                @for row in rows {
                    @let s = row.evaluated.as_ref().map(|(_, s)| s);
                    tr {
                        td { a href=(format!("/accounts/{}", row.account.id.as_str())) { (row.account.name) } }
                        td { (s.and_then(|s| s.segment.clone()).unwrap_or_default()) }
                        td { (s.map(|s| s.stages.iter().filter_map(|(l, st)| st.as_ref().map(|st| format!("{l}: {st}"))).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                        td { @if let Some(b) = s.and_then(|s| s.band.clone()) { span class=(format!("dot {b}")) {} (b) " " (s.and_then(|s| s.score).map(|x| format!("{x:.0}")).unwrap_or_default()) } }
                        td { (s.and_then(|s| s.mrr).map(money).unwrap_or_default()) }
                        td { (s.and_then(|s| s.renewal).map(|d| d.to_string()).unwrap_or_default()) }
                        td { (row.account.owner.clone().unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

/// Every account the filters match, as CSV (the page's columns).
pub(super) async fn csv(State(state): State<AppState>, viewer: Viewer, RawQuery(raw): RawQuery) -> Response {
    if let Some(whose) = foreign_owner(raw.as_deref(), &viewer) {
        return super::not_in_your_book(&viewer, &format!("You asked to export {whose} accounts."));
    }
    let query = match params(raw.as_deref(), &viewer).and_then(|(p, _)| query_from(p).map_err(|e| e.message))
    {
        Ok(q) => q,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    let mut query = AccountQuery { limit: 1000, after: None, ..query };
    let mut out = csv::Writer::from_writer(Vec::new());
    let header_row = ["id", "name", "owner", "segment", "band", "score", "stages", "mrr", "renewal_date"];
    if let Err(e) = out.write_record(header_row) {
        return failure(e);
    }
    loop {
        let page = match state.store.list_accounts(viewer.user.workspace, &query).await {
            Ok(p) => p,
            Err(e) => return failure(e),
        };
        for row in &page.rows {
            let s = row.evaluated.as_ref().map(|(_, s)| s);
            let stages = s
                .map(|s| {
                    s.stages
                        .iter()
                        .filter_map(|(l, st)| st.as_ref().map(|st| format!("{l}:{st}")))
                        .collect::<Vec<_>>()
                        .join(";")
                })
                .unwrap_or_default();
            let record = [
                row.account.id.as_str().to_owned(),
                row.account.name.clone(),
                row.account.owner.clone().unwrap_or_default(),
                s.and_then(|s| s.segment.clone()).unwrap_or_default(),
                s.and_then(|s| s.band.clone()).unwrap_or_default(),
                s.and_then(|s| s.score).map(|x| format!("{x:.1}")).unwrap_or_default(),
                stages,
                s.and_then(|s| s.mrr).map(|x| format!("{x:.2}")).unwrap_or_default(),
                s.and_then(|s| s.renewal).map(|d| d.to_string()).unwrap_or_default(),
            ];
            let record = record.iter().map(|cell| keel_app::format::spreadsheet_safe(cell));
            if let Err(e) = out.write_record(record.map(|c| c.into_owned())) {
                return failure(e);
            }
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    let body = out.into_inner().unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"accounts.csv\""),
        ],
        body,
    )
        .into_response()
}
