//! The portfolio page: revenue retention over the trailing twelve months
//! with monthly sparklines, the book by health band and this week's band
//! movements, time to value against target, renewals ahead and the
//! accounts at risk. A CSM sees their own book (accounts they own); leaders
//! and admins the whole workspace.

use keel_app::format::UNDEFINED;
use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use keel_analytics::retention::RetentionReport;
use keel_core::Date;
use keel_store::{AccountQuery, AccountRow, AccountSort};
use maud::{Markup, html};

use super::auth::Viewer;
use super::{Shown, computed, failure, figures, money, page_shell, pct, shown, svg};
use crate::AppState;
use keel_app::reports::BandMove;

/// Accounts and their MRR.
type Tally = (u64, f64);

/// The book of the viewer as of a day.
#[derive(Debug, Default)]
struct Book {
    /// Accounts with a line in force (MRR above zero), or not evaluated yet.
    accounts: u64,
    /// Evaluated accounts without one: churned, or not started.
    former: u64,
    mrr: f64,
    /// Band → (accounts, MRR); `none` for accounts without a band.
    by_band: BTreeMap<String, (u64, f64)>,
    /// Band → accounts and MRR renewing within 90 days, and within 180.
    renewing: BTreeMap<String, (Tally, Tally)>,
    renewing_90: (u64, f64),
    renewing_180: (u64, f64),
    at_risk: Vec<AccountRow>,
    /// The next renewals, soonest first.
    next_renewals: Vec<AccountRow>,
}

async fn book(
    state: &AppState,
    ws: keel_store::WorkspaceId,
    owner: Option<&str>,
    today: Date,
) -> Result<Book, keel_store::StoreError> {
    let risky = AccountQuery {
        owner: owner.map(str::to_owned),
        band: Some("red".into()),
        sort: AccountSort::Mrr,
        descending: true,
        limit: 15,
        ..AccountQuery::default()
    };
    let soon = AccountQuery {
        owner: owner.map(str::to_owned),
        renewal_from: Some(today),
        renewal_to: Some(today + chrono::Days::new(90)),
        sort: AccountSort::Renewal,
        limit: 10,
        ..AccountQuery::default()
    };
    let (summary, at_risk, next) = tokio::join!(
        state.store.book(ws, owner, today),
        state.store.list_accounts(ws, &risky),
        state.store.list_accounts(ws, &soon),
    );
    let summary = summary?;
    let mut out = Book {
        accounts: summary.not_evaluated,
        former: summary.former,
        at_risk: at_risk?.rows,
        next_renewals: next?.rows,
        ..Book::default()
    };
    if summary.not_evaluated > 0 {
        out.by_band.entry("none".into()).or_default().0 += summary.not_evaluated;
    }
    for b in summary.bands {
        let band = b.band.unwrap_or_else(|| "none".into());
        out.accounts += b.accounts;
        out.mrr += b.mrr;
        let slot = out.by_band.entry(band.clone()).or_default();
        slot.0 += b.accounts;
        slot.1 += b.mrr;
        let ahead = out.renewing.entry(band).or_default();
        for (sum, add) in [(&mut ahead.0, b.renewing_90), (&mut ahead.1, b.renewing_180)] {
            sum.0 += add.0;
            sum.1 += add.1;
        }
        for (sum, add) in [(&mut out.renewing_90, b.renewing_90), (&mut out.renewing_180, b.renewing_180)] {
            sum.0 += add.0;
            sum.1 += add.1;
        }
    }
    out.at_risk.retain(|r| r.evaluated.as_ref().and_then(|(_, s)| s.mrr).is_some_and(|m| m > 0.0));
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
    let (from, _) = figures::trailing_year(today);
    let (retention, movements, ttv) = tokio::join!(
        figures::retention(&state, ws, today, None),
        figures::movements(&state, ws, today),
        figures::ttv(&state, ws, today, None),
    );
    let (retention, movements, ttv) = match (shown(retention), shown(movements), shown(ttv)) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(f), _, _) | (_, Err(f), _) | (_, _, Err(f)) => return f.page(),
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
        (movements_section(&movements, owner))
        (ttv_section(&ttv))
        (at_risk(&book.at_risk))
    };
    page_shell("Portfolio", Some(&viewer), main).into_response()
}

fn retention_cards(retention: &Shown<RetentionReport>, from: Date, to: Date) -> Markup {
    html! {
        section aria-labelledby="retention" {
            h2 id="retention" { "Revenue retention, " (from) " to " (to) }
            @match retention {
                Err(why) => p.error { "Retention cannot be computed: " (why) },
                Ok(cached) => {
                    @let r = &cached.value;
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
                        (r.total.churned_accounts) " churned. " a href="/analytics#retention" { "Month by month" } }
                    (computed(cached))
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
            p { (b.accounts) " accounts with a line in force · " (money(b.mrr)) " MRR"
                @if b.former > 0 { " · " (b.former) " without one (churned or not started)" } }
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
            table.renewals {
                caption { "Renewals by health band" }
                thead { tr { th scope="col" { "Band" } th scope="col" { "Next 90 days" } th scope="col" { "MRR" } th scope="col" { "Next 180 days" } th scope="col" { "MRR" } } }
                tbody {
                    @for band in bands {
                        @let ((n90, m90), (n180, m180)) = b.renewing.get(band).copied().unwrap_or_default();
                        tr { th scope="row" { span class=(format!("dot {band}")) {} (band) }
                             td data-renewing=(format!("{band}-90")) { (n90) } td { (money(m90)) }
                             td data-renewing=(format!("{band}-180")) { (n180) } td { (money(m180)) } }
                    }
                }
            }
            @if !b.next_renewals.is_empty() {
                h3 { "The next renewals" }
                (super::accounts::table(&b.next_renewals, None, "accounts renewals-next"))
            }
        }
    }
}

const BANDS: [&str; 4] = ["red", "yellow", "green", "none"];

/// How much worse a band is than green (none counts as unknown, not worse).
fn rank(band: Option<&str>) -> Option<u8> {
    match band?.parse::<keel_core::Band>().ok()? {
        keel_core::Band::Green => Some(0),
        keel_core::Band::Yellow => Some(1),
        keel_core::Band::Red => Some(2),
    }
}

/// The accounts whose band got worse (reddest first), and how many got better.
fn worse_and_better<'a>(rows: &[&'a BandMove]) -> (Vec<&'a BandMove>, usize) {
    let moved = |m: &BandMove| rank(m.before.as_deref()).zip(rank(m.after.as_deref()));
    let mut worse: Vec<&BandMove> =
        rows.iter().copied().filter(|m| moved(m).is_some_and(|(b, a)| a > b)).collect();
    worse.sort_by(|x, y| (rank(y.after.as_deref()), &x.account).cmp(&(rank(x.after.as_deref()), &y.account)));
    let better = rows.iter().filter(|m| moved(m).is_some_and(|(b, a)| a < b)).count();
    (worse, better)
}

fn movements_section(movements: &Shown<Vec<BandMove>>, owner: Option<&str>) -> Markup {
    html! {
        section aria-labelledby="moves" {
            h2 id="moves" { "This week's band movements" }
            @match movements {
                Err(why) => p.error { "Movements cannot be computed: " (why) },
                Ok(cached) => {
                    @let rows: Vec<&BandMove> = cached.value.iter().filter(|m| owner.is_none_or(|o| m.owner.as_deref() == Some(o))).collect();
                    @let cell = |b: &str, a: &str| rows.iter().filter(|m| m.before.as_deref().unwrap_or("none") == b && m.after.as_deref().unwrap_or("none") == a).count();
                    @let (worse, better) = worse_and_better(&rows);
                    p { strong data-metric="worse" { (worse.len()) } " accounts moved to a worse band in the last seven days, "
                        strong data-metric="better" { (better) } " to a better one." }
                    table.moves {
                        caption { "Band seven days ago (rows) against today (columns)" }
                        thead { tr { th scope="col" { "7 days ago ↓ · today →" } @for a in BANDS { th scope="col" { (a) } } } }
                        tbody {
                            @for b in BANDS {
                                tr { th scope="row" { span class=(format!("dot {b}")) {} (b) }
                                     @for a in BANDS { @let n = cell(b, a); td class=[(a != b && n > 0).then_some("moved")] { (n) } } }
                            }
                        }
                    }
                    @if !worse.is_empty() {
                        h3 { "Moved to a worse band" }
                        ul.moved {
                            @for m in worse.iter().take(12) {
                                li { a href=(format!("/accounts/{}", m.account.as_str())) { (m.name) } " · "
                                     (m.before.clone().unwrap_or_default()) " → " span class=(format!("dot {}", m.after.clone().unwrap_or_default())) {} (m.after.clone().unwrap_or_default())
                                     @if let Some(s) = m.score { " (" (format!("{s:.0}")) ")" } }
                            }
                        }
                    }
                    (computed(cached))
                }
            }
        }
    }
}

fn ttv_section(ttv: &Shown<keel_analytics::ttv::TtvReport>) -> Markup {
    let days = |d: Option<f64>| d.map_or_else(|| UNDEFINED.to_owned(), |d| format!("{d:.0} days"));
    html! {
        section aria-labelledby="ttv" {
            h2 id="ttv" { "Time to first value" }
            @match ttv {
                Err(why) => p.error { "Time to value cannot be computed: " (why) },
                Ok(cached) => {
                    @let r = &cached.value;
                    div.cards {
                        (card("TTV p50", days(r.total.p50), Some(html! { div.detail { (pct(r.total.share_within_target)) " within target · " (r.total.overdue) " overdue" } })))
                        @for (seg, s) in &r.by_segment {
                            @let verdict = match (s.p50, s.target_days) { (Some(p), Some(t)) if p <= t => "on target", (Some(_), Some(_)) => "over target", _ => "" };
                            (card(&format!("{seg}: p50"), days(s.p50), Some(html! { div.detail { "target " (days(s.target_days)) " · " (verdict) } })))
                        }
                    }
                    p.note { a href="/analytics#ttv" { "The distribution" } }
                    (computed(cached))
                }
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
