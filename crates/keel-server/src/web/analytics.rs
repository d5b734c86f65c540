//! The analytics page: the evidence a CS leader brings to a QBR — revenue
//! retention month by month, the cohort heatmap, the time-to-value
//! histogram against each segment's target, the stage funnel, gate
//! validation, the health backtest (ROC curve, churn by band, the accounts
//! that were green and churned) and play uplift against holdouts. Every
//! figure comes from the same reports as `keel report` and the REST API
//! (docs/metrics.md), read through the report cache, and each section says
//! when it was computed. `?segment=` narrows every section that can be.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use keel_analytics::backtest::HealthBacktest;
use keel_analytics::cohorts::CohortReport;
use keel_analytics::funnel::FunnelReport;
use keel_analytics::gates::{GateReport, Split};
use keel_analytics::plays::PlaysReport;
use keel_analytics::retention::RetentionReport;
use keel_analytics::ttv::TtvReport;
use keel_app::format::UNDEFINED;
use maud::{Markup, html};

use super::auth::Viewer;
use super::{Shown, computed, figures, page_shell, pct, shown, svg};
use crate::AppState;

pub(super) async fn page(State(state): State<AppState>, viewer: Viewer, RawQuery(raw): RawQuery) -> Response {
    let q: Vec<(String, String)> =
        form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect();
    let segment = q.iter().find(|(k, _)| k == "segment").map(|(_, v)| v.clone()).filter(|v| !v.is_empty());
    let ws = viewer.user.workspace;
    let today = (state.clock)().date_naive();
    let s = &state;
    let seg = || segment.clone();
    let (retention, cohorts, ttv, funnel, gates, health, plays) = tokio::join!(
        figures::retention(s, ws, today, seg()),
        figures::cohorts(s, ws, today, seg()),
        figures::ttv(s, ws, today, seg()),
        figures::funnel(s, ws, today, seg()),
        figures::gates(s, ws, today, seg()),
        figures::health(s, ws, today, seg()),
        figures::plays(s, ws, today),
    );
    let parts = (|| {
        Ok::<_, super::Failure>((
            shown(retention)?,
            shown(cohorts)?,
            shown(ttv)?,
            shown(funnel)?,
            shown(gates)?,
            shown(health)?,
            shown(plays)?,
        ))
    })();
    let (retention, cohorts, ttv, funnel, gates, health, plays) = match parts {
        Ok(p) => p,
        Err(f) => return f.page(),
    };
    let segments: Vec<String> = state
        .config
        .journey
        .as_ref()
        .map(|j| j.journey.segments.iter().map(|s| s.id.clone()).collect())
        .unwrap_or_default();
    let main = html! {
        h1 { "Analytics" }
        p.scope { "The whole workspace · as of " (today) " · definitions in docs/metrics.md" }
        form.filters method="get" action="/analytics" {
            label { "Segment" select name="segment" {
                option value="" selected[segment.is_none()] { "all" }
                @for s in &segments { option value=(s) selected[segment.as_deref() == Some(s.as_str())] { (s) } }
            } }
            button type="submit" { "Show" }
        }
        nav.toc aria-label="Sections" {
            a href="#retention" { "Retention" } a href="#cohorts" { "Cohorts" } a href="#ttv" { "Time to value" }
            a href="#funnel" { "Funnel" } a href="#gates" { "Gates" } a href="#health" { "Health backtest" }
            a href="#plays" { "Plays" }
        }
        (section("retention", "Revenue retention by month", &retention, retention_view))
        (section("cohorts", "Cohort retention (revenue)", &cohorts, cohort_view))
        (section("ttv", "Time to first value", &ttv, ttv_view))
        (section("funnel", "Stage funnel", &funnel, funnel_view))
        (section("gates", "Do the exit gates predict renewal?", &gates, gates_view))
        (section("health", "Does the health score predict churn?", &health, health_view))
        (section("plays", "Do the plays work? Treated against held out", &plays, plays_view))
    };
    page_shell("Analytics", Some(&viewer), main).into_response()
}

fn section<T>(id: &str, title: &str, part: &Shown<T>, view: fn(&T) -> Markup) -> Markup {
    html! {
        section.analytic aria-labelledby=(id) {
            h2 id=(id) { (title) }
            @match part {
                Err(why) => p.error role="alert" { (why) },
                Ok(c) => { (view(&c.value)) (computed(c)) }
            }
        }
    }
}

fn retention_view(r: &RetentionReport) -> Markup {
    let labels: Vec<String> = r.groups.iter().map(|g| g.key.clone()).collect();
    let series = |f: fn(&keel_analytics::retention::Retention) -> Option<f64>| -> Vec<Option<f64>> {
        r.groups.iter().map(|g| f(&g.retention)).collect()
    };
    let lines = [
        svg::Series { name: "NRR", class: "nrr", values: series(|x| x.nrr) },
        svg::Series { name: "GRR", class: "grr", values: series(|x| x.grr) },
    ];
    html! {
        p { "Over the twelve months: NRR " strong data-metric="NRR" { (pct(r.total.nrr)) } ", GRR " strong { (pct(r.total.grr)) }
            ", logo churn " (pct(r.total.logo_churn)) ", renewal rate " (pct(r.total.renewal_rate)) "." }
        (svg::line_chart(&lines, &labels, |v| format!("{:.0}%", v * 100.0), "NRR and GRR by month"))
        table.compact {
            thead { tr { th scope="col" { "Month" } th scope="col" { "NRR" } th scope="col" { "GRR" } th scope="col" { "Logo churn" } th scope="col" { "Churned accounts" } } }
            tbody {
                @for g in &r.groups {
                    tr { th scope="row" { (g.key) } td { (pct(g.retention.nrr)) } td { (pct(g.retention.grr)) } td { (pct(g.retention.logo_churn)) } td { (g.retention.churned_accounts) } }
                }
            }
        }
    }
}

/// The heatmap's steps: (lowest share, CSS class, what it means). The
/// classes pair each background with a text colour that keeps WCAG AA
/// contrast, which a continuous scale cannot do across its middle.
const HEAT: [(f64, &str, &str); 5] = [
    (1.0, "h4", "100% or more"),
    (0.85, "h3", "85–100%"),
    (0.7, "h2", "70–85%"),
    (0.5, "h1", "50–70%"),
    (f64::NEG_INFINITY, "h0", "below 50%"),
];

fn heat(v: Option<f64>) -> &'static str {
    v.and_then(|x| HEAT.iter().find(|(lo, _, _)| x >= *lo)).map_or("", |h| h.1)
}

fn cohort_view(r: &CohortReport) -> Markup {
    let months = r.cohorts.iter().map(|c| c.cells.len()).max().unwrap_or(0).min(13);
    let latest: Vec<_> = r.cohorts.iter().rev().take(18).collect();
    html! {
        p.note { "Each row is the accounts whose first contract started that month; each column a month since their start; the cell the share of their starting MRR still in force (expansion can take it past 100%). The latest 18 cohorts, months 0–" (months.saturating_sub(1)) "." }
        p.legend { @for (_, class, words) in HEAT.iter().rev() { span class=(format!("swatch {class}")) { (words) } " " } }
        div.mapwrap {
            table.heatmap {
                thead { tr { th scope="col" { "Cohort" } th scope="col" { "Accounts" } @for m in 0..months { th scope="col" { "M" (m) } } } }
                tbody {
                    @for c in latest.iter().rev() {
                        tr {
                            th scope="row" { (c.cohort) }
                            td { (c.accounts) }
                            @for m in 0..months {
                                @match c.cells.get(m) {
                                    Some(cell) => td class=(heat(cell.revenue_retention)) title=(format!("logo retention {}", pct(cell.logo_retention))) { (cell.revenue_retention.map(|v| format!("{:.0}%", v * 100.0)).unwrap_or_default()) },
                                    None => td {},
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn ttv_view(r: &TtvReport) -> Markup {
    let width = r.histogram.first().map_or(1, |b| b.to_days - b.from_days).max(1);
    let span = r.histogram.last().map_or(1, |b| b.to_days).max(1) as f64;
    let counts: Vec<(String, u64)> =
        r.histogram.iter().map(|b| (format!("{}–{}d", b.from_days, b.to_days - 1), b.accounts)).collect();
    let markers: Vec<(f64, String)> = r
        .by_segment
        .iter()
        .filter_map(|(seg, s)| s.target_days.map(|t| ((t / span).min(1.0), format!("{seg} target {t:.0}d"))))
        .collect();
    let t = &r.total;
    html! {
        p { "Median " strong data-metric="TTV p50" { (t.p50.map(|d| format!("{d:.0} days")).unwrap_or_else(|| UNDEFINED.into())) }
            " (p25 " (t.p25.map(|d| format!("{d:.0}")).unwrap_or_else(|| UNDEFINED.into()))
            ", p75 " (t.p75.map(|d| format!("{d:.0}")).unwrap_or_else(|| UNDEFINED.into()))
            ", p90 " (t.p90.map(|d| format!("{d:.0}")).unwrap_or_else(|| UNDEFINED.into())) "); "
            (t.reached) " of " (t.accounts) " accounts reached first value, " (pct(t.share_within_target)) " within target; "
            (t.overdue) " overdue." }
        (svg::bars(&counts, &markers, &format!("Accounts by days to first value, in bins of {width} days")))
        table.compact {
            thead { tr { th scope="col" { "Segment" } th scope="col" { "Target" } th scope="col" { "p50" } th scope="col" { "Within target" } th scope="col" { "Overdue" } th scope="col" { "Waiting" } } }
            tbody {
                @for (seg, s) in &r.by_segment {
                    tr { th scope="row" { (seg) } td { (s.target_days.map(|d| format!("{d:.0} days")).unwrap_or_default()) }
                         td { (s.p50.map(|d| format!("{d:.0} days")).unwrap_or_else(|| UNDEFINED.into())) }
                         td { (pct(s.share_within_target)) " (" (s.within_target) "/" (s.eligible) ")" }
                         td { (s.overdue) } td { (s.waiting) } }
                }
            }
        }
    }
}

/// A share as a bar inside a table cell, with the figure beside it.
fn share_bar(v: Option<f64>) -> Markup {
    let w = v.map_or(0.0, |x| x.clamp(0.0, 1.0) * 100.0);
    html! { span.meter { span style=(format!("width:{w:.1}%")) {} } " " (pct(v)) }
}

fn funnel_view(r: &FunnelReport) -> Markup {
    html! {
        @for line in &r.product_lines {
            h3 { (line.product_line) " · " (line.lines) " lines" }
            table.compact.funnel {
                thead { tr { th scope="col" { "Stage" } th scope="col" { "Reached" } th scope="col" { "Went on to" } th scope="col" { "Conversion" } th scope="col" { "In it now" } th scope="col" { "Median dwell" } th scope="col" { "p90 dwell" } } }
                tbody {
                    @for st in &line.stages {
                        tr { th scope="row" { (st.stage) } td { (st.reached) } td { (st.next.clone().unwrap_or_default()) }
                             td { (share_bar(st.conversion)) } td { (st.in_stage_now) }
                             td { (st.dwell_p50.map(|d| format!("{d:.0} days")).unwrap_or_else(|| UNDEFINED.into())) }
                             td { (st.dwell_p90.map(|d| format!("{d:.0} days")).unwrap_or_else(|| UNDEFINED.into())) } }
                    }
                }
            }
        }
    }
}

/// A difference in points with its interval, e.g. `+21.2 pts (+13.1 .. +29.7)`.
fn points(s: &Split) -> String {
    match (s.difference, s.low, s.high) {
        (Some(d), Some(l), Some(h)) => {
            format!("{:+.1} pts ({:+.1} .. {:+.1})", d * 100.0, l * 100.0, h * 100.0)
        }
        _ => UNDEFINED.to_owned(),
    }
}

fn words<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(|s| s.replace('_', " "))).unwrap_or_default()
}

fn rate(r: &keel_analytics::backtest::Rate) -> String {
    format!("{} ({}/{})", pct(r.rate), r.k, r.n)
}

fn gates_view(r: &GateReport) -> Markup {
    html! {
        p { (r.decisions) " renewal decisions, " (r.renewed) " renewed; each account read " (r.lead_days)
            " days before its decision. A gate is predictive when lines that passed it renewed more often, with the whole 95% interval above zero." }
        table.compact.gates {
            thead { tr { th scope="col" { "Stage" } th scope="col" { "Exit gate" } th scope="col" { "Renewed, passed" } th scope="col" { "Renewed, not passed" } th scope="col" { "Difference (95%)" } th scope="col" { "Verdict" } } }
            tbody {
                @for g in &r.stages {
                    tr { th scope="row" { (g.stage) } td { code { (g.gate) } }
                         td { (rate(&g.whole.passed)) } td { (rate(&g.whole.failed)) }
                         td { (points(&g.whole)) } td class=(format!("verdict {}", words(&g.whole.verdict).replace(' ', "-"))) { (words(&g.whole.verdict)) } }
                    @for (cond, split) in &g.conditions {
                        tr.condition { th scope="row" { "" } td { "· " code { (cond) } }
                             td { (rate(&split.passed)) } td { (rate(&split.failed)) }
                             td { (points(split)) } td { (words(&split.verdict)) } }
                    }
                }
            }
        }
    }
}

fn health_view(r: &HealthBacktest) -> Markup {
    let curve: Vec<(f64, f64)> =
        r.roc.iter().map(|p| (p.false_positive_rate, p.true_positive_rate)).collect();
    let bands: Vec<(String, &str, f64, f64, f64)> = r
        .by_band
        .iter()
        .filter_map(|b| {
            let class = match b.band.as_str() {
                "green" | "yellow" | "red" => b.band.as_str(),
                _ => "none",
            };
            Some((b.band.clone(), class, b.churn.rate?, b.churn.low?, b.churn.high?))
        })
        .collect();
    let auc = match (r.auc, r.auc_low, r.auc_high) {
        (Some(a), Some(l), Some(h)) => format!("{a:.3} ({l:.3}–{h:.3})"),
        (Some(a), _, _) => format!("{a:.3}"),
        _ => UNDEFINED.to_owned(),
    };
    html! {
        p { (r.snapshots) " account-months (" (r.dates.len()) " month ends), " (r.churned) " followed by churn within 90 days. "
            "ROC AUC " strong data-metric="AUC" { (auc) } " (0.5 is a coin toss); the lowest-scoring tenth churned "
            (r.top_decile_lift.map(|l| format!("{l:.2}×")).unwrap_or_else(|| UNDEFINED.into())) " as often as the average." }
        div.pair {
            div { h3 { "ROC curve" } (svg::roc(&curve, &format!("ROC curve of the health score, AUC {auc}"))) }
            div {
                h3 { "Churn within 90 days, by band" }
                (svg::intervals(&bands, "Churn rate by health band with 95% intervals"))
                table.compact {
                    thead { tr { th scope="col" { "Band" } th scope="col" { "Churned" } th scope="col" { "95% interval" } } }
                    tbody {
                        @for b in &r.by_band {
                            tr { th scope="row" { (b.band) } td { (rate(&b.churn)) }
                                 td { (pct(b.churn.low)) " – " (pct(b.churn.high)) } }
                        }
                    }
                }
            }
        }
        h3 { "Green, and churned (" (r.green_but_churned.len()) ")" }
        @if r.green_but_churned.is_empty() { p { "None: no account churned within 90 days of being green." } }
        @else {
            table.compact.green-churned {
                thead { tr { th scope="col" { "Account" } th scope="col" { "Green on" } th scope="col" { "Score" } th scope="col" { "Churned on" } } }
                tbody {
                    @for g in r.green_but_churned.iter().rev().take(20) {
                        tr { th scope="row" { a href=(format!("/accounts/{}?as_of={}", g.account.as_str(), g.on)) { (g.account.as_str()) } }
                             td { (g.on) } td { (g.score.map(|s| format!("{s:.0}")).unwrap_or_default()) } td { (g.churned_on) } }
                    }
                }
            }
            @if r.green_but_churned.len() > 20 { p.note { "The latest 20 shown; `keel report health` lists them all." } }
        }
    }
}

fn plays_view(r: &PlaysReport) -> Markup {
    html! {
        @if r.plays.iter().all(|p| p.triggered == 0) { p { "No play has run yet." } }
        @else {
            table.compact.plays {
                thead { tr { th scope="col" { "Play" } th scope="col" { "Runs" } th scope="col" { "Held out" } th scope="col" { "Outcome, treated" } th scope="col" { "Outcome, held out" } th scope="col" { "Uplift (95%)" } th scope="col" { "Effect" } } }
                tbody {
                    @for p in r.plays.iter().filter(|p| p.triggered > 0) {
                        tr { th scope="row" { (p.name) " " small { "(" (p.play) ")" } } td { (p.treated) } td { (p.holdout) }
                             @match &p.outcome {
                                 Some(o) => { td { (rate(&o.passed)) } td { (rate(&o.failed)) } td { (points(o)) } },
                                 None => { td { (UNDEFINED) } td { (UNDEFINED) } td { "no outcome declared" } },
                             }
                             td { (p.effect.as_ref().map(words).unwrap_or_default()) } }
                    }
                }
            }
        }
    }
}
