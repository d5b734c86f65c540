//! Reports as JSON: metric values per account as of any date, the
//! portfolio in brief from the stored states, and the workspace's status.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::{Query, date_param};
use crate::AppState;
use crate::auth::{self, Caller};
use crate::error::{ApiError, Code};
use keel_app::load::MetricTableError;

/// A `currency` parameter: an ISO 4217 code (three capital letters).
fn currency(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(c) if !(c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())) => Err(ApiError::new(
            Code::InvalidParameter,
            format!("currency: {c:?} is not a currency code (three capital letters, e.g. USD)"),
        )),
        other => Ok(other),
    }
}

/// The breakdowns of the retention report (`by`).
pub(crate) const RETENTION_BY: [&str; 4] = ["month", "segment", "product", "cohort"];

/// Which metrics, as of when.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricsParams {
    /// As of this date (YYYY-MM-DD); default: today.
    as_of: Option<String>,
    /// Metrics, comma-separated: built-in (docs/journey.md lists them) or
    /// defined in the journey; default: the usage, seat and revenue metrics.
    metric: Option<String>,
}

/// One account's metric values.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricRow {
    /// The account.
    pub account: String,
    /// Value per metric (null: no data).
    #[schema(value_type = Object)]
    pub values: BTreeMap<String, Value>,
}

/// Metric values of every account.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricsReport {
    /// The date.
    pub as_of: String,
    /// The metrics, in the order asked.
    pub metrics: Vec<String>,
    /// One row per account, in id order.
    pub rows: Vec<MetricRow>,
}

/// The server's journey bound to the workspace's event names (409 without one).
async fn journey_plan(state: &AppState, ws: keel_store::WorkspaceId) -> Result<keel_engine::Plan, ApiError> {
    let journey = state.config.journey.as_ref().ok_or_else(no_journey)?;
    let event_names = state.store.event_names(ws).await?;
    Ok(keel_engine::Plan::new(journey.journey.clone(), &event_names))
}

/// A report's failure: the store's as a store error, the rest the caller's.
fn report_error(e: keel_app::reports::ReportError) -> ApiError {
    match e {
        keel_app::reports::ReportError::Store(e) => e.into(),
        keel_app::reports::ReportError::NoJourney => no_journey(),
        keel_app::reports::ReportError::Failed(why) => ApiError::internal(why),
        keel_app::reports::ReportError::Timeline(e) => ApiError::internal(e.to_string()),
        other => ApiError::new(Code::InvalidParameter, other.to_string()),
    }
}

fn no_journey() -> ApiError {
    ApiError::new(Code::NoJourney, "the server runs without a journey")
}

/// Metric values of every account as of a date (what `keel metrics` prints).
#[utoipa::path(
    get,
    path = "/api/v1/reports/metrics",
    tag = "reports",
    params(MetricsParams),
    responses(
        (status = 200, description = "The values", body = MetricsReport),
        (status = 400, description = "A date or metric is invalid (the message names it)", body = super::ErrorBody),
        (status = 404, description = "no_journey: the server runs without a journey", body = super::ErrorBody),
    )
)]
pub async fn metrics(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Query(params): Query<MetricsParams>,
) -> Result<Json<MetricsReport>, ApiError> {
    let _turn = state.heavy.turn().await?;
    let heavy = state.heavy.clone();
    heavy
        .run(async move {
            let as_of =
                date_param(&state, "as_of", params.as_of)?.unwrap_or_else(|| (state.clock)().date_naive());
            let names: Vec<String> = match params.metric {
                Some(list) => {
                    list.split(',').map(str::trim).filter(|m| !m.is_empty()).map(str::to_owned).collect()
                }
                None => keel_app::load::DEFAULT_METRICS.iter().map(|m| (*m).to_owned()).collect(),
            };
            let plan = journey_plan(&state, principal.workspace).await?;
            let mut rows = Vec::new();
            let mut unencodable = None;
            keel_app::load::metric_table(
                state.store.as_ref(),
                principal.workspace,
                &plan,
                as_of,
                &names,
                |hs, values| {
                    for (h, v) in hs.iter().zip(values) {
                        let values = names
                            .iter()
                            .zip(v)
                            .map(|(n, v)| Ok((n.clone(), serde_json::to_value(v)?)))
                            .collect::<Result<_, serde_json::Error>>();
                        match values {
                            Ok(values) => rows.push(MetricRow { account: h.account.id.to_string(), values }),
                            Err(e) => {
                                unencodable.get_or_insert(e);
                            }
                        }
                    }
                },
            )
            .await
            .map_err(|e| match e {
                MetricTableError::Metric { .. } => {
                    ApiError::new(Code::InvalidParameter, format!("metric: {e}"))
                }
                MetricTableError::Store(e) => e.into(),
            })?;
            if let Some(e) = unencodable {
                return Err(ApiError::internal(e));
            }
            Ok(Json(MetricsReport { as_of: as_of.to_string(), metrics: names, rows }))
        })
        .await
}

/// Which retention report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RetentionParams {
    /// First day of the period (YYYY-MM-DD); default: twelve months before `to`.
    from: Option<String>,
    /// First day after the period; default: the first day of `as_of`'s month.
    to: Option<String>,
    /// The day the default period is counted back from; default: today.
    as_of: Option<String>,
    /// Only accounts in this segment (as the journey assigns it on `from`).
    segment: Option<String>,
    /// Only lines of this product line.
    product: Option<String>,
    /// Only lines in this currency (required when lines carry several).
    currency: Option<String>,
    /// Break the headline down: `month`, `segment`, `product` or `cohort`.
    by: Option<String>,
    /// `true`: list every starting account and every line due (the rows add
    /// up to the headline).
    explain: Option<bool>,
}

/// Revenue retention over a period: NRR, GRR, the MRR bridge, logo churn,
/// renewal rate, the months 1–6 / 7+ split, an optional breakdown (what
/// `keel report retention` prints; definitions in docs/metrics.md).
#[utoipa::path(
    get,
    path = "/api/v1/reports/retention",
    tag = "reports",
    params(RetentionParams),
    responses(
        (status = 200, description = "The report; amounts are decimal strings, ratios fractions (null: undefined)", body = keel_analytics::retention::RetentionReport),
        (status = 400, description = "A parameter is invalid, or lines carry several currencies and none was chosen (the message names it)", body = super::ErrorBody),
        (status = 404, description = "no_journey: segments were asked for and the server runs without a journey", body = super::ErrorBody),
    )
)]
pub async fn retention(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Query(params): Query<RetentionParams>,
) -> Result<Json<keel_analytics::retention::RetentionReport>, ApiError> {
    let _turn = state.heavy.turn().await?;
    let heavy = state.heavy.clone();
    heavy
        .run(async move {
            use keel_analytics::retention::By;
            use keel_app::reports::{ReportError, RetentionQuery};
            let by = match params.by.as_deref() {
                None => None,
                Some("month") => Some(By::Month),
                Some("segment") => Some(By::Segment),
                Some("product") => Some(By::Product),
                Some("cohort") => Some(By::Cohort),
                Some(other) => {
                    return Err(ApiError::new(
                        Code::InvalidParameter,
                        format!("by: {other:?} is not one of {}", RETENTION_BY.join(", ")),
                    ));
                }
            };
            let query = RetentionQuery {
                from: date_param(&state, "from", params.from)?,
                to: date_param(&state, "to", params.to)?,
                as_of: date_param(&state, "as_of", params.as_of)?
                    .unwrap_or_else(|| (state.clock)().date_naive()),
                segment: params.segment,
                product: params.product,
                currency: currency(params.currency)?,
                by,
                explain: params.explain.unwrap_or(false),
            };
            let plan = match (&state.config.journey, query.segment.is_some() || by == Some(By::Segment)) {
                (Some(journey), true) => {
                    let event_names = state.store.event_names(principal.workspace).await?;
                    Some(keel_engine::Plan::new(journey.journey.clone(), &event_names))
                }
                _ => None,
            };
            let report = keel_app::reports::retention(
                state.store.as_ref(),
                principal.workspace,
                plan.as_ref(),
                &query,
            )
            .await
            .map_err(|e| match e {
                ReportError::Analytics(keel_analytics::AnalyticsError::EmptyPeriod { from, to }) => {
                    ApiError::new(Code::InvalidParameter, format!("from {from} must come before to {to}"))
                }
                other => report_error(other),
            })?;
            Ok(Json(report))
        })
        .await
}

/// Which accounts' first terms.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PatternParams {
    /// Accounts whose first term ended on or before this date (YYYY-MM-DD); default: today.
    as_of: Option<String>,
    /// Only accounts in this segment (as the journey assigns it on their first term's end).
    segment: Option<String>,
}

/// Failure patterns (seed 000): for each pattern the data shows, the share
/// of accounts with it and renewal with vs without it (what `keel report
/// patterns --format json` prints; definitions in docs/metrics.md).
#[utoipa::path(
    get,
    path = "/api/v1/reports/patterns",
    tag = "reports",
    params(PatternParams),
    responses(
        (status = 200, description = "The report", body = keel_analytics::patterns::PatternReport),
        (status = 400, description = "A parameter is invalid (the message names it)", body = super::ErrorBody),
        (status = 404, description = "no_journey: the server runs without a journey", body = super::ErrorBody),
    )
)]
pub async fn patterns(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Query(params): Query<PatternParams>,
) -> Result<Json<keel_analytics::patterns::PatternReport>, ApiError> {
    let _turn = state.heavy.turn().await?;
    let heavy = state.heavy.clone();
    heavy
        .run(async move {
            let as_of =
                date_param(&state, "as_of", params.as_of)?.unwrap_or_else(|| (state.clock)().date_naive());
            let plan = journey_plan(&state, principal.workspace).await?;
            let report = keel_app::reports::patterns(
                state.store.as_ref(),
                principal.workspace,
                &plan,
                as_of,
                params.segment.as_deref(),
            )
            .await
            .map_err(report_error)?;
            Ok(Json(report))
        })
        .await
}

/// Which journey-map audit.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only months over by this date count (YYYY-MM-DD); default: today.
    as_of: Option<String>,
    /// Only accounts whose first contract started on or after this date.
    from: Option<String>,
    /// Only accounts whose first contract started before this date.
    to: Option<String>,
    /// Only accounts in this segment (as the journey assigns it on each cell's last month).
    segment: Option<String>,
}

/// The journey-map audit: every cell of the 12-month map classified as
/// systematized, heroic, documented only or missing from what the data
/// shows, the risk inventory and the blocker/builder gaps (what `keel report
/// audit --format json` prints; definitions in docs/metrics.md).
#[utoipa::path(
    get,
    path = "/api/v1/reports/audit",
    tag = "reports",
    params(AuditParams),
    responses(
        (status = 200, description = "The report", body = keel_analytics::audit::AuditReport),
        (status = 400, description = "A parameter is invalid (the message names it)", body = super::ErrorBody),
        (status = 404, description = "no_journey: the server runs without a journey", body = super::ErrorBody),
    )
)]
pub async fn audit(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Query(params): Query<AuditParams>,
) -> Result<Json<keel_analytics::audit::AuditReport>, ApiError> {
    let _turn = state.heavy.turn().await?;
    let heavy = state.heavy.clone();
    heavy
        .run(async move {
            let as_of =
                date_param(&state, "as_of", params.as_of)?.unwrap_or_else(|| (state.clock)().date_naive());
            let (from, to) = (date_param(&state, "from", params.from)?, date_param(&state, "to", params.to)?);
            let plan = journey_plan(&state, principal.workspace).await?;
            let report = keel_app::reports::audit(
                state.store.as_ref(),
                principal.workspace,
                &plan,
                as_of,
                (from, to),
                params.segment.as_deref(),
            )
            .await
            .map_err(report_error)?;
            Ok(Json(report))
        })
        .await
}

/// Which expansion report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExpansionParams {
    /// First day of the period (YYYY-MM-DD); default: twelve months before `to`.
    from: Option<String>,
    /// First day after the period; default: the first day of `as_of`'s month.
    to: Option<String>,
    /// The day the default period is counted back from; default: today.
    as_of: Option<String>,
    /// Only opportunities in this currency (required when they carry several).
    currency: Option<String>,
    /// Only accounts in this segment (as the journey assigns it on `to`).
    segment: Option<String>,
}

/// Expansion and advocacy: expansion and cross-sell opportunities created,
/// won, lost and open by source (CS-sourced vs the rest), and the promoters
/// with the advocacy asks made of them (what `keel report expansion
/// --format json` prints; definitions in docs/metrics.md).
#[utoipa::path(
    get,
    path = "/api/v1/reports/expansion",
    tag = "reports",
    params(ExpansionParams),
    responses(
        (status = 200, description = "The report", body = keel_analytics::expansion::ExpansionReport),
        (status = 400, description = "A parameter is invalid (the message names it)", body = super::ErrorBody),
    )
)]
pub async fn expansion(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Query(params): Query<ExpansionParams>,
) -> Result<Json<keel_analytics::expansion::ExpansionReport>, ApiError> {
    let _turn = state.heavy.turn().await?;
    let heavy = state.heavy.clone();
    heavy
        .run(async move {
            let as_of =
                date_param(&state, "as_of", params.as_of)?.unwrap_or_else(|| (state.clock)().date_naive());
            let query = keel_app::reports::RetentionQuery {
                from: date_param(&state, "from", params.from)?,
                to: date_param(&state, "to", params.to)?,
                as_of,
                ..Default::default()
            };
            let period =
                query.period().map_err(|e| ApiError::new(Code::InvalidParameter, format!("from/to: {e}")))?;
            let plan = match state.config.journey {
                Some(_) => Some(journey_plan(&state, principal.workspace).await?),
                None => None,
            };
            let report = keel_app::reports::expansion(
                state.store.as_ref(),
                principal.workspace,
                plan.as_ref(),
                period,
                currency(params.currency)?.as_deref(),
                params.segment.as_deref(),
            )
            .await
            .map_err(report_error)?;
            Ok(Json(report))
        })
        .await
}

/// Which gate validation.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GateParams {
    /// Decisions (line ends) after this date (YYYY-MM-DD); default: six months before `to`.
    from: Option<String>,
    /// Decisions on or before this date; default: the first day of `as_of`'s month.
    to: Option<String>,
    /// What is known: only decisions on or before it; default: today.
    as_of: Option<String>,
    /// Read the gates this many days before each decision (default 180, at most 3650).
    lead_days: Option<u64>,
    /// `true`: include every decision (stages reached, went on, outcome).
    explain: Option<bool>,
    /// Also test this CEL condition over the journey's metrics on every decision.
    condition: Option<String>,
    /// Only decisions whose account was in this segment on the day the gates are read.
    segment: Option<String>,
}

/// Gate validation: for each renewal decision in the window, whether the
/// exit gate of the stage the line stood in `lead_days` before held (and
/// each of its conditions), and the renewal rates of passed and failed —
/// difference, 95% Newcombe interval, verdict (what
/// `keel report gates --format json` prints). Heavy on large workspaces.
#[utoipa::path(
    get,
    path = "/api/v1/reports/gates",
    tag = "reports",
    params(GateParams),
    responses(
        (status = 200, description = "The report", body = keel_analytics::gates::GateReport),
        (status = 400, description = "A parameter is invalid (the message names it)", body = super::ErrorBody),
        (status = 404, description = "no_journey: the server runs without a journey", body = super::ErrorBody),
    )
)]
pub async fn gates(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Query(params): Query<GateParams>,
) -> Result<Json<keel_analytics::gates::GateReport>, ApiError> {
    let _turn = state.heavy.turn().await?;
    let heavy = state.heavy.clone();
    heavy
        .run(async move {
            let as_of =
                date_param(&state, "as_of", params.as_of)?.unwrap_or_else(|| (state.clock)().date_naive());
            let lead_days = params.lead_days.unwrap_or(180);
            if lead_days > 3650 {
                return Err(ApiError::new(
                    Code::InvalidParameter,
                    format!("lead_days: {lead_days} is more than 3650"),
                ));
            }
            let period = keel_app::reports::gate_window(
                date_param(&state, "from", params.from)?,
                date_param(&state, "to", params.to)?,
                as_of,
            )
            .map_err(|e| ApiError::new(Code::InvalidParameter, format!("from/to: {e}")))?;
            let plan = journey_plan(&state, principal.workspace).await?;
            let extra = match &params.condition {
                Some(source) => {
                    vec![keel_journey::compile_condition(plan.journey(), source).map_err(|e| {
                        ApiError::new(Code::InvalidParameter, format!("condition {source:?}: {e}"))
                    })?]
                }
                None => Vec::new(),
            };
            let mut report = keel_app::reports::gates(
                state.store.as_ref(),
                principal.workspace,
                &plan,
                period,
                as_of,
                lead_days,
                &extra,
                params.segment.as_deref(),
            )
            .await
            .map_err(report_error)?;
            if !params.explain.unwrap_or(false) {
                report.observations = Vec::new();
            }
            Ok(Json(report))
        })
        .await
}

/// Which backtest.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HealthParams {
    /// Month ends on or after this date (YYYY-MM-DD); default: twelve months before `to`.
    from: Option<String>,
    /// Month ends before this date; default: 90 days before `as_of`.
    to: Option<String>,
    /// What is known: only month ends whose following 90 days end by then; default: today.
    as_of: Option<String>,
    /// Only snapshots where the account was in this segment (on that month end).
    segment: Option<String>,
}

/// The health backtest: at each month end, every active account's score and
/// band as of that day against churn within the next 90 days — ROC AUC with
/// a bootstrap interval, top-decile lift, churn per band, the green accounts
/// that churned (what `keel report health --format json` prints). Evaluates
/// every account at every month end: heavy on large workspaces.
#[utoipa::path(
    get,
    path = "/api/v1/reports/health",
    tag = "reports",
    params(HealthParams),
    responses(
        (status = 200, description = "The report", body = keel_analytics::backtest::HealthBacktest),
        (status = 400, description = "A parameter is invalid, or no month end has its 90 days known (the message names it)", body = super::ErrorBody),
        (status = 404, description = "no_journey: the server runs without a journey", body = super::ErrorBody),
    )
)]
pub async fn health(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Query(params): Query<HealthParams>,
) -> Result<Json<keel_analytics::backtest::HealthBacktest>, ApiError> {
    let _turn = state.heavy.turn().await?;
    let heavy = state.heavy.clone();
    heavy
        .run(async move {
            let as_of =
                date_param(&state, "as_of", params.as_of)?.unwrap_or_else(|| (state.clock)().date_naive());
            let (from, to) = keel_app::reports::health_window(
                date_param(&state, "from", params.from)?,
                date_param(&state, "to", params.to)?,
                as_of,
            );
            if from >= to {
                return Err(ApiError::new(
                    Code::InvalidParameter,
                    format!("from {from} must come before to {to}"),
                ));
            }
            let dates = keel_app::reports::snapshot_dates(from, to, as_of);
            if dates.is_empty() {
                return Err(ApiError::new(
                    Code::InvalidParameter,
                    format!(
                        "as_of: no month end in {from} .. {to} has its following 90 days known by {as_of}"
                    ),
                ));
            }
            let plan = journey_plan(&state, principal.workspace).await?;
            // Evaluated, not read from the timeline, for now: see keel report health.
            let report = keel_app::reports::health_backtest(
                state.store.as_ref(),
                principal.workspace,
                &plan,
                None,
                &dates,
                params.segment.as_deref(),
            )
            .await
            .map_err(report_error)?;
            Ok(Json(report))
        })
        .await
}

/// Which funnel.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FunnelParams {
    /// Rebuild the stage history as of this date (YYYY-MM-DD); default: today.
    as_of: Option<String>,
    /// Only accounts in this segment (as the journey assigns it on `as_of`).
    segment: Option<String>,
}

/// The stage funnel per product line: reached, converted to the next stage,
/// in the stage now, ended in it, and dwell-time quantiles, overall, by
/// segment and by start cohort (what `keel report funnel` prints). Every
/// account is evaluated: this is a heavy call on large workspaces.
#[utoipa::path(
    get,
    path = "/api/v1/reports/funnel",
    tag = "reports",
    params(FunnelParams),
    responses(
        (status = 200, description = "The report", body = keel_analytics::funnel::FunnelReport),
        (status = 400, description = "A parameter is invalid (the message names it)", body = super::ErrorBody),
        (status = 404, description = "no_journey: the server runs without a journey", body = super::ErrorBody),
    )
)]
pub async fn funnel(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Query(params): Query<FunnelParams>,
) -> Result<Json<keel_analytics::funnel::FunnelReport>, ApiError> {
    let _turn = state.heavy.turn().await?;
    let heavy = state.heavy.clone();
    heavy
        .run(async move {
            let as_of =
                date_param(&state, "as_of", params.as_of)?.unwrap_or_else(|| (state.clock)().date_naive());
            let plan = journey_plan(&state, principal.workspace).await?;
            let report = keel_app::reports::funnel(
                state.store.as_ref(),
                principal.workspace,
                &plan,
                as_of,
                params.segment.as_deref(),
            )
            .await
            .map_err(report_error)?;
            Ok(Json(report))
        })
        .await
}

/// Which cohort report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CohortParams {
    /// The last day observed (YYYY-MM-DD); default: today.
    as_of: Option<String>,
    /// Months since start to follow (default 24, at most 240).
    months: Option<u32>,
    /// Only lines of this product line.
    product: Option<String>,
    /// Only lines in this currency (required when lines carry several).
    currency: Option<String>,
    /// Only accounts in this segment (as the journey assigns it on `as_of`); needs the journey.
    segment: Option<String>,
}

/// Cohort retention: logo and revenue retention by start month × months
/// since each account's own start (what `keel report cohorts` prints;
/// definitions in docs/metrics.md).
#[utoipa::path(
    get,
    path = "/api/v1/reports/cohorts",
    tag = "reports",
    params(CohortParams),
    responses(
        (status = 200, description = "The report", body = keel_analytics::cohorts::CohortReport),
        (status = 400, description = "A parameter is invalid (the message names it)", body = super::ErrorBody),
    )
)]
pub async fn cohorts(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Query(params): Query<CohortParams>,
) -> Result<Json<keel_analytics::cohorts::CohortReport>, ApiError> {
    let _turn = state.heavy.turn().await?;
    let heavy = state.heavy.clone();
    heavy
        .run(async move {
            let as_of =
                date_param(&state, "as_of", params.as_of)?.unwrap_or_else(|| (state.clock)().date_naive());
            let months = params.months.unwrap_or(24);
            if months > 240 {
                return Err(ApiError::new(
                    Code::InvalidParameter,
                    format!("months: {months} is more than 240"),
                ));
            }
            let plan = match (&state.config.journey, &params.segment) {
                (Some(_), Some(_)) => Some(journey_plan(&state, principal.workspace).await?),
                _ => None,
            };
            let report = keel_app::reports::cohorts(
                state.store.as_ref(),
                principal.workspace,
                plan.as_ref(),
                as_of,
                months,
                params.product.as_deref(),
                currency(params.currency)?.as_deref(),
                params.segment.as_deref(),
            )
            .await
            .map_err(report_error)?;
            Ok(Json(report))
        })
        .await
}

/// Which time-to-value report.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TtvParams {
    /// Evaluate as of this date (YYYY-MM-DD); default: today.
    as_of: Option<String>,
    /// Only accounts whose first contract started on or after this date.
    from: Option<String>,
    /// Only accounts whose first contract started before this date.
    to: Option<String>,
    /// `true`: list every account that has not reached first value.
    explain: Option<bool>,
    /// Only accounts in this segment (as the journey assigns it on `as_of`).
    segment: Option<String>,
}

/// Time to value: percentiles of days to first value, the share within
/// each segment's target, by segment and start cohort (what
/// `keel report ttv` prints; definitions in docs/metrics.md).
#[utoipa::path(
    get,
    path = "/api/v1/reports/ttv",
    tag = "reports",
    params(TtvParams),
    responses(
        (status = 200, description = "The report", body = keel_analytics::ttv::TtvReport),
        (status = 400, description = "A parameter is invalid (the message names it)", body = super::ErrorBody),
        (status = 404, description = "no_journey: the server runs without a journey", body = super::ErrorBody),
    )
)]
pub async fn ttv(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Query(params): Query<TtvParams>,
) -> Result<Json<keel_analytics::ttv::TtvReport>, ApiError> {
    let _turn = state.heavy.turn().await?;
    let heavy = state.heavy.clone();
    heavy
        .run(async move {
            let as_of =
                date_param(&state, "as_of", params.as_of)?.unwrap_or_else(|| (state.clock)().date_naive());
            let (from, to) = (date_param(&state, "from", params.from)?, date_param(&state, "to", params.to)?);
            if let (Some(from), Some(to)) = (from, to)
                && from >= to
            {
                return Err(ApiError::new(
                    Code::InvalidParameter,
                    format!("from {from} must come before to {to}"),
                ));
            }
            let plan = journey_plan(&state, principal.workspace).await?;
            let mut report = keel_app::reports::ttv(
                state.store.as_ref(),
                principal.workspace,
                &plan,
                as_of,
                (from, to),
                params.segment.as_deref(),
            )
            .await
            .map_err(report_error)?;
            if !params.explain.unwrap_or(false) {
                report.not_reached = Vec::new();
            }
            Ok(Json(report))
        })
        .await
}

/// Accounts and MRR by band, segment and stage, and renewals ahead: the
/// book the dashboard's portfolio page reads.
#[utoipa::path(
    get,
    path = "/api/v1/reports/portfolio",
    tag = "reports",
    responses((status = 200, description = "The portfolio", body = keel_app::reports::Portfolio))
)]
pub async fn portfolio(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
) -> Result<Json<keel_app::reports::Portfolio>, ApiError> {
    let today = (state.clock)().date_naive();
    Ok(Json(keel_app::reports::portfolio(state.store.as_ref(), principal.workspace, today).await?))
}

/// What a workspace holds (what `keel status` prints).
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceStatus {
    /// Records per kind.
    pub counts: BTreeMap<String, u64>,
    /// The earliest and latest event timestamps (null: no events).
    #[schema(value_type = Option<(String, String)>)]
    pub events_span: Option<(keel_core::Timestamp, keel_core::Timestamp)>,
    /// The earliest contract start and the latest contract end (null: no contracts).
    pub contracts_span: Option<(String, String)>,
    /// The most recent import (null: none yet).
    pub last_import: Option<keel_store::ImportLog>,
}

/// What the workspace holds: counts per kind, date ranges, the last import.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "reports",
    responses((status = 200, description = "The status (what `keel status` prints)", body = WorkspaceStatus))
)]
pub async fn status(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
) -> Result<Json<WorkspaceStatus>, ApiError> {
    let status = state.store.status(principal.workspace).await?;
    Ok(Json(WorkspaceStatus {
        counts: status.counts.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
        events_span: status.events_span,
        contracts_span: status.contracts_span,
        last_import: status.last_import,
    }))
}
