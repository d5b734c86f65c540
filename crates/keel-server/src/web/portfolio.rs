//! The portfolio page: revenue retention over the trailing twelve months
//! with monthly sparklines, the book by health band, renewals ahead and the
//! accounts at risk. A CSM sees their own book (accounts they own); leaders
//! and admins the whole workspace.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use keel_analytics::retention::{By, RetentionReport};
use keel_core::Date;
use keel_store::{AccountQuery, AccountRow, AccountSort};
use maud::{Markup, html};

use super::auth::Viewer;
use super::{failure, money, page_shell, pct, svg};
use crate::AppState;
use crate::reports::{ReportError, RetentionQuery};

/// The book of the viewer as of a day.
#[derive(Debug, Default)]
struct Book {
    accounts: u64,
    mrr: f64,
    /// Band → (accounts, MRR); `none` for accounts without a band.
    by_band: BTreeMap<String, (u64, f64)>,
    renewing_90: (u64, f64),
    renewing_180: (u64, f64),
    at_risk: Vec<AccountRow>,
}

async fn book(
    state: &AppState,
    ws: keel_store::WorkspaceId,
    owner: Option<&str>,
    today: Date,
) -> Result<Book, keel_store::StoreError> {
    let mut out = Book::default();
    let mut query = AccountQuery {
        owner: owner.map(str::to_owned),
        sort: AccountSort::Id,
        limit: 1000,
        ..AccountQuery::default()
    };
    loop {
        let page = state.store.list_accounts(ws, &query).await?;
        for row in &page.rows {
            out.accounts += 1;
            let Some((_, s)) = &row.evaluated else { continue };
            let mrr = s.mrr.unwrap_or_default();
            out.mrr += mrr;
            let band = out.by_band.entry(s.band.clone().unwrap_or_else(|| "none".into())).or_default();
            band.0 += 1;
            band.1 += mrr;
            if let Some(renewal) = s.renewal.filter(|r| *r >= today) {
                let days = (renewal - today).num_days();
                if days <= 90 {
                    out.renewing_90.0 += 1;
                    out.renewing_90.1 += mrr;
                }
                if days <= 180 {
                    out.renewing_180.0 += 1;
                    out.renewing_180.1 += mrr;
                }
            }
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    let risky = AccountQuery {
        owner: owner.map(str::to_owned),
        band: Some("red".into()),
        sort: AccountSort::Mrr,
        descending: true,
        limit: 15,
        ..AccountQuery::default()
    };
    out.at_risk = state.store.list_accounts(ws, &risky).await?.rows;
    Ok(out)
}

pub(super) async fn page(State(state): State<AppState>, viewer: Viewer) -> Response {
    let today = (state.clock)().date_naive();
    let ws = viewer.user.workspace;
    let owner = (!viewer.sees_everything()).then_some(viewer.user.email.as_str());
    let book = match book(&state, ws, owner, today).await {
        Ok(b) => b,
        Err(e) => return failure(e),
    };
    let from = today.checked_sub_months(chrono::Months::new(12)).unwrap_or(today);
    let query = RetentionQuery {
        from: Some(from),
        to: Some(today),
        as_of: today,
        by: Some(By::Month),
        ..RetentionQuery::default()
    };
    let retention = match crate::reports::retention(state.store.as_ref(), ws, None, &query).await {
        Ok(r) => Ok(r),
        Err(ReportError::Store(e)) => return failure(e),
        Err(other) => Err(other.to_string()),
    };
    let scope = match owner {
        Some(email) => format!("Your book: the accounts {email} owns"),
        None => "The whole workspace".to_owned(),
    };
    let main = html! {
        h1 { "Portfolio" }
        p.scope { (scope) " · as of " (today) }
        (retention_cards(&retention, from, today))
        (book_section(&book))
        (at_risk(&book.at_risk))
    };
    page_shell("Portfolio", Some(&viewer), main).into_response()
}

fn retention_cards(retention: &Result<RetentionReport, String>, from: Date, to: Date) -> Markup {
    html! {
        section aria-labelledby="retention" {
            h2 id="retention" { "Revenue retention, " (from) " to " (to) }
            @match retention {
                Err(why) => p.error { "Retention cannot be computed: " (why) },
                Ok(r) => {
                    @let series = |f: fn(&keel_analytics::retention::Retention) -> Option<f64>| -> Vec<Option<f64>> {
                        r.groups.iter().map(|g| f(&g.retention)).collect()
                    };
                    div.cards {
                        (card("GRR", pct(r.total.grr), Some(svg::sparkline(&series(|x| x.grr), "GRR by month"))))
                        (card("NRR", pct(r.total.nrr), Some(svg::sparkline(&series(|x| x.nrr), "NRR by month"))))
                        (card("Logo churn", pct(r.total.logo_churn), Some(svg::sparkline(&series(|x| x.logo_churn), "Logo churn by month"))))
                        (card("Renewal rate", pct(r.total.renewal_rate), None))
                    }
                    p.note { "Workspace-wide, from contract lines in force (docs/metrics.md); "
                        (r.total.starting_accounts) " accounts at the start, "
                        (r.total.churned_accounts) " churned." }
                }
            }
        }
    }
}

fn card(name: &str, value: String, chart: Option<Markup>) -> Markup {
    html! {
        div.card {
            div.name { (name) }
            div.value data-metric=(name) { (value) }
            @if let Some(c) = chart { (c) }
        }
    }
}

fn book_section(b: &Book) -> Markup {
    let bands = ["red", "yellow", "green", "none"];
    let parts: Vec<(f64, &str, String)> = bands
        .iter()
        .map(|band| {
            let (n, mrr) = b.by_band.get(*band).copied().unwrap_or_default();
            (n as f64, *band, format!("{band}: {n} accounts, {} MRR", money(mrr)))
        })
        .collect();
    html! {
        section aria-labelledby="book" {
            h2 id="book" { "Accounts by health band" }
            p { (b.accounts) " accounts · " (money(b.mrr)) " MRR" }
            (svg::stacked_bar(&parts, "Accounts by health band"))
            table.bands {
                thead { tr { th scope="col" { "Band" } th scope="col" { "Accounts" } th scope="col" { "MRR" } } }
                tbody {
                    @for band in bands {
                        @let (n, mrr) = b.by_band.get(band).copied().unwrap_or_default();
                        tr { th scope="row" { span class=(format!("dot {band}")) {} (band) } td { (n) } td { (money(mrr)) } }
                    }
                }
            }
            h2 { "Renewals ahead" }
            div.cards {
                (card("Next 90 days", format!("{} accounts", b.renewing_90.0), Some(html! { div.detail { (money(b.renewing_90.1)) " MRR" } })))
                (card("Next 180 days", format!("{} accounts", b.renewing_180.0), Some(html! { div.detail { (money(b.renewing_180.1)) " MRR" } })))
            }
        }
    }
}

fn at_risk(rows: &[AccountRow]) -> Markup {
    html! {
        section aria-labelledby="risk" {
            h2 id="risk" { "At risk: red accounts, largest first" }
            @if rows.is_empty() {
                p { "No account is red." }
            } @else {
                (super::accounts::table(rows, None, "accounts risk"))
            }
        }
    }
}
