//! The reports the dashboard's pages show, read through the server's
//! [`ReportCache`](crate::cache::ReportCache): each is computed once per
//! workspace, day and parameters, then served from memory (recomputed in the
//! background past the cache's ttl). [`warm`] computes the standard set when
//! the server starts.

use keel_analytics::retention::{By, RetentionReport};
use keel_core::Date;
use keel_store::WorkspaceId;

use crate::AppState;
use crate::cache::{Cached, key};
use keel_app::reports::{self, ReportError, RetentionQuery};

/// The journey's plan for a workspace (None: the server runs without one).
async fn plan(state: &AppState, ws: WorkspaceId) -> Result<keel_engine::Plan, ReportError> {
    let journey = state.config.journey.as_ref().ok_or(ReportError::NoJourney)?;
    let names = state.store.event_names(ws).await?;
    Ok(keel_engine::Plan::new(journey.journey.clone(), &names))
}

/// The journey's version, part of every key that evaluates accounts.
fn version(state: &AppState) -> String {
    state.config.journey.as_ref().map_or_else(|| "none".to_owned(), |j| j.version.clone())
}

/// The twelve months before `today`: `[today − 12 months, today)`.
pub(super) fn trailing_year(today: Date) -> (Date, Date) {
    (today.checked_sub_months(chrono::Months::new(12)).unwrap_or(today), today)
}

/// A report through the cache under `name`, the day, the journey version and
/// the segment; `make` computes it from the server state, the workspace's
/// plan (None without a journey, or when `needs_plan` is false and no
/// segment is asked) and the segment.
async fn cached<T, F, Fut>(
    state: &AppState,
    ws: WorkspaceId,
    name: &str,
    today: Date,
    segment: Option<String>,
    needs_plan: bool,
    make: F,
) -> Result<Cached<T>, ReportError>
where
    T: Send + Sync + 'static,
    F: FnOnce(AppState, Option<keel_engine::Plan>, Option<String>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, ReportError>> + Send + 'static,
{
    let k = key(ws, name, &[&today, &version(state), &segment.clone().unwrap_or_default()]);
    let s = state.clone();
    state
        .reports
        .get(&k, &state.clock, move || async move {
            let plan = if needs_plan || segment.is_some() { Some(plan(&s, ws).await?) } else { None };
            make(s, plan, segment).await
        })
        .await
}

/// The plan a report that evaluates accounts needs.
fn with(plan: Option<keel_engine::Plan>) -> Result<keel_engine::Plan, ReportError> {
    plan.ok_or(ReportError::NoJourney)
}

/// Revenue retention over the trailing twelve months, by month, of the
/// accounts in `segment` at the start (all when none).
pub(super) async fn retention(
    state: &AppState,
    ws: WorkspaceId,
    today: Date,
    segment: Option<String>,
) -> Result<Cached<RetentionReport>, ReportError> {
    let (from, to) = trailing_year(today);
    cached(state, ws, "retention", today, segment, false, move |s, plan, segment| async move {
        let query = RetentionQuery {
            from: Some(from),
            to: Some(to),
            as_of: today,
            by: Some(By::Month),
            segment,
            ..RetentionQuery::default()
        };
        reports::retention(s.store.as_ref(), ws, plan.as_ref(), &query).await
    })
    .await
}

/// The journey-map audit as of `today`, for a segment or all.
pub(super) async fn audit(
    state: &AppState,
    ws: WorkspaceId,
    today: Date,
    segment: Option<String>,
) -> Result<Cached<keel_analytics::audit::AuditReport>, ReportError> {
    cached(state, ws, "audit", today, segment, true, move |s, plan, segment| async move {
        let plan = with(plan)?;
        reports::audit(s.store.as_ref(), ws, &plan, today, (None, None), segment.as_deref()).await
    })
    .await
}

/// Time to value as of `today`, for a segment or all.
pub(super) async fn ttv(
    state: &AppState,
    ws: WorkspaceId,
    today: Date,
    segment: Option<String>,
) -> Result<Cached<keel_analytics::ttv::TtvReport>, ReportError> {
    cached(state, ws, "ttv", today, segment, true, move |s, plan, segment| async move {
        let plan = with(plan)?;
        reports::ttv(s.store.as_ref(), ws, &plan, today, (None, None), segment.as_deref()).await
    })
    .await
}

/// Cohort retention over 24 months, for a segment or all.
pub(super) async fn cohorts(
    state: &AppState,
    ws: WorkspaceId,
    today: Date,
    segment: Option<String>,
) -> Result<Cached<keel_analytics::cohorts::CohortReport>, ReportError> {
    cached(state, ws, "cohorts", today, segment, false, move |s, plan, segment| async move {
        let store = s.store.as_ref();
        reports::cohorts(store, ws, plan.as_ref(), today, 24, None, None, segment.as_deref()).await
    })
    .await
}

/// The stage funnel as of `today`, for a segment or all.
pub(super) async fn funnel(
    state: &AppState,
    ws: WorkspaceId,
    today: Date,
    segment: Option<String>,
) -> Result<Cached<keel_analytics::funnel::FunnelReport>, ReportError> {
    cached(state, ws, "funnel", today, segment, true, move |s, plan, segment| async move {
        let plan = with(plan)?;
        reports::funnel(s.store.as_ref(), ws, &plan, today, segment.as_deref()).await
    })
    .await
}

/// Gate validation over its default window (the two quarters before this
/// month), decisions read 180 days ahead.
pub(super) async fn gates(
    state: &AppState,
    ws: WorkspaceId,
    today: Date,
    segment: Option<String>,
) -> Result<Cached<keel_analytics::gates::GateReport>, ReportError> {
    cached(state, ws, "gates", today, segment, true, move |s, plan, segment| async move {
        let plan = with(plan)?;
        let period = reports::gate_window(None, None, today)?;
        let store = s.store.as_ref();
        let mut report =
            reports::gates(store, ws, &plan, period, today, 180, &[], segment.as_deref()).await?;
        // The page shows the table, not every decision.
        report.observations = Vec::new();
        Ok(report)
    })
    .await
}

/// The health backtest over its default window.
pub(super) async fn health(
    state: &AppState,
    ws: WorkspaceId,
    today: Date,
    segment: Option<String>,
) -> Result<Cached<keel_analytics::backtest::HealthBacktest>, ReportError> {
    cached(state, ws, "health", today, segment, true, move |s, plan, segment| async move {
        let plan = with(plan)?;
        let (from, to) = reports::health_window(None, None, today);
        let dates = reports::snapshot_dates(from, to, today);
        // Evaluated, not read from the timeline, for now: see keel report health.
        reports::health_backtest(s.store.as_ref(), ws, &plan, None, &dates, segment.as_deref()).await
    })
    .await
}

/// Play outcomes, treated against held out.
pub(super) async fn plays(
    state: &AppState,
    ws: WorkspaceId,
    today: Date,
) -> Result<Cached<keel_analytics::plays::PlaysReport>, ReportError> {
    cached(state, ws, "plays", today, None, false, move |s, _, _| async move {
        let journey = s.config.journey.as_ref().ok_or(ReportError::NoJourney)?;
        reports::plays(s.store.as_ref(), ws, &journey.journey, today).await
    })
    .await
}

/// Health bands seven days ago against today.
pub(super) async fn movements(
    state: &AppState,
    ws: WorkspaceId,
    today: Date,
) -> Result<Cached<Vec<reports::BandMove>>, ReportError> {
    cached(state, ws, "movements", today, None, true, move |s, plan, _| async move {
        let plan = with(plan)?;
        let week_ago = today - chrono::Days::new(7);
        reports::band_movements(s.store.as_ref(), ws, &plan, week_ago, today).await
    })
    .await
}

/// Keeps the pages' standard reports ready: computes them for every
/// workspace with dashboard users when the server starts, then again every
/// report ttl (a stale report is then recomputed in the background, and a
/// new day's reports are computed before anyone asks).
pub async fn keep_warm(state: AppState) {
    loop {
        warm(&state).await;
        tokio::time::sleep(state.config.report_ttl).await;
    }
}

/// Computes the pages' standard reports for every workspace that has
/// dashboard users, one after another, so the first visitor finds them.
pub async fn warm(state: &AppState) {
    let workspaces = match state.store.workspaces().await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "warming the dashboard's reports: no workspace list");
            return;
        }
    };
    for (ws, name) in workspaces {
        if state.store.users(ws).await.map(|u| u.is_empty()).unwrap_or(true) {
            continue;
        }
        let today = (state.clock)().date_naive();
        let started = std::time::Instant::now();
        let s = state;
        if s.config.journey.is_none() {
            if let Err(e) = retention(s, ws, today, None).await {
                tracing::warn!(workspace = %name, error = %e, "the dashboard's retention could not be computed");
            }
            continue;
        }
        let results: [Result<(), ReportError>; 9] = [
            retention(s, ws, today, None).await.map(drop),
            movements(s, ws, today).await.map(drop),
            ttv(s, ws, today, None).await.map(drop),
            audit(s, ws, today, None).await.map(drop),
            cohorts(s, ws, today, None).await.map(drop),
            funnel(s, ws, today, None).await.map(drop),
            gates(s, ws, today, None).await.map(drop),
            health(s, ws, today, None).await.map(drop),
            plays(s, ws, today).await.map(drop),
        ];
        let failed: Vec<String> =
            results.into_iter().filter_map(Result::err).map(|e| e.to_string()).collect();
        let ms = started.elapsed().as_millis() as u64;
        if failed.is_empty() {
            tracing::info!(workspace = %name, ms, "dashboard reports ready");
        } else {
            tracing::warn!(workspace = %name, ms, errors = ?failed, "some dashboard reports could not be computed");
        }
    }
}
