//! The REST API under `/api/v1`: accounts and their records, state and
//! timeline, record writes in the import format, the journey, reports, keys,
//! and plays (tasks, the approval outbox, deliveries, runs).
//! Every handler is annotated for the OpenAPI document, which
//! is generated from these annotations (see [`crate::openapi`]) and served at `/api/v1/openapi.json`
//! with a human-readable page at `/api/docs`.

pub mod accounts;
pub mod contract;
pub mod docs;
pub mod ingest;
pub mod journey;
pub mod keys;
pub mod plays;
pub mod records;
pub mod reports;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{OpenApi as _, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, Code};

/// The error body every failed request gets.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code to match on (the `ErrorCode` schema lists every one).
    pub code: Code,
    /// What went wrong and what to change, for a person.
    pub message: String,
    /// Machine-readable specifics, when there are any: a rejected Segment
    /// call's `{"rejection": <RejectionCode>}`.
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// Query parameters, with a JSON error naming the bad one instead of axum's
/// plain-text rejection. Unknown parameters are refused, so a misspelt
/// filter is an error rather than silently ignored.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or_default();
        if let Some((name, _)) = form_urlencoded::parse(raw.as_bytes()).find(|(_, v)| v.is_empty()) {
            return Err(ApiError::new(
                Code::InvalidParameter,
                format!("{name}: empty; leave the parameter out instead"),
            ));
        }
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(raw.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let message = match e.path().to_string().as_str() {
                "." => e.inner().to_string(),
                field => format!("{field}: {}", e.inner()),
            };
            ApiError::new(Code::InvalidParameter, message)
        })
    }
}

/// A date query parameter (YYYY-MM-DD), with an error naming it.
/// A date parameter that filters rather than computes (any valid date).
pub(crate) fn plain_date(name: &str, raw: Option<String>) -> Result<Option<keel_core::Date>, ApiError> {
    raw.map(|raw| {
        keel_core::parse_date(&raw)
            .map_err(|e| ApiError::new(Code::InvalidParameter, format!("{name}: {raw:?}: {e}")))
    })
    .transpose()
}

/// How far ahead of today a report or an as-of evaluation may be asked
/// for: the cost of some grows with the span (a year 9999 took 80× as
/// long as today), and nothing is known there.
pub(crate) const DATES_AHEAD_YEARS: i32 = 5;

/// A date parameter, within the workspace's window: not before the
/// `earliest` setting, at most [`DATES_AHEAD_YEARS`] after today.
pub(crate) fn date_param(
    state: &AppState,
    name: &str,
    raw: Option<String>,
) -> Result<Option<keel_core::Date>, ApiError> {
    use chrono::Datelike as _;
    let Some(raw) = raw else { return Ok(None) };
    let bad = |why: String| ApiError::new(Code::InvalidParameter, format!("{name}: {raw:?}: {why}"));
    let date = keel_core::parse_date(&raw).map_err(|e| bad(e.to_string()))?;
    let earliest = state.config.window.earliest;
    let today = (state.clock)().date_naive();
    let latest = today.with_year(today.year() + DATES_AHEAD_YEARS).unwrap_or(today);
    if date < earliest {
        return Err(bad(format!("before {earliest}, the earliest date Keel accepts")));
    }
    if date > latest {
        return Err(bad(format!("more than {DATES_AHEAD_YEARS} years ahead; the latest is {latest}")));
    }
    Ok(Some(date))
}

/// A JSON request body; `what` names it in the error ("a touchpoint").
pub(crate) fn json_body<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            Code::InvalidJson,
            format!("the body is not {what}: {e} (line {}, column {})", e.line(), e.column()),
        )
    })
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Keel",
        description = "Keel's HTTP API: Segment-compatible ingest under /v1, and the REST API under /api/v1. \
Authenticate with an API key (`keel keys create`) as HTTP Basic user name (empty password), as a Bearer \
token, or — for Segment calls — as `writeKey` in the body. Every request acts in the key's workspace only. \
Errors are JSON objects with a stable `code` and a `message`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(ErrorBody, Code, crate::segment::RejectionCode, accounts::AccountRecordKind, records::RecordKind)),
    tags(
        (name = "ingest", description = "Segment HTTP Tracking API (needs the ingest scope); what it refused (read scope)"),
        (name = "accounts", description = "Accounts, their state, timeline and records (read scope)"),
        (name = "records", description = "Writing records in the import format (write scope)"),
        (name = "journey", description = "The journey the server evaluates with (read scope)"),
        (name = "reports", description = "Portfolio reports (read scope)"),
        (name = "plays", description = "Tasks, the approval outbox, deliveries and play runs: read scope to \
list, admin scope to work a task, approve, reject or replay"),
        (name = "keys", description = "API keys of the workspace (admin scope)"),
        (name = "operations", description = "Health, readiness and metrics (no key)"),
    )
)]
struct ApiDoc;

/// The API's routes with their OpenAPI annotations.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(crate::healthz))
        .routes(routes!(crate::ready))
        .routes(routes!(crate::prometheus))
        .routes(routes!(crate::single))
        .routes(routes!(crate::batch))
        .routes(routes!(crate::import))
        .routes(routes!(ingest::rejections))
        .routes(routes!(ingest::audit))
        .routes(routes!(accounts::list))
        .routes(routes!(accounts::get))
        .routes(routes!(accounts::state))
        .routes(routes!(accounts::timeline))
        .routes(routes!(accounts::records))
        .routes(routes!(accounts::log_touchpoint))
        .routes(routes!(records::write))
        .routes(routes!(journey::get))
        .routes(routes!(journey::validate))
        .routes(routes!(journey::timeline))
        .routes(routes!(reports::metrics))
        .routes(routes!(reports::portfolio))
        .routes(routes!(reports::retention))
        .routes(routes!(reports::ttv))
        .routes(routes!(reports::cohorts))
        .routes(routes!(reports::funnel))
        .routes(routes!(reports::health))
        .routes(routes!(reports::gates))
        .routes(routes!(reports::expansion))
        .routes(routes!(reports::patterns))
        .routes(routes!(reports::audit))
        .routes(routes!(reports::status))
        .routes(routes!(plays::report))
        .routes(routes!(plays::tasks))
        .routes(routes!(plays::task_done))
        .routes(routes!(plays::task_snooze))
        .routes(routes!(plays::outbox))
        .routes(routes!(plays::approve))
        .routes(routes!(plays::reject))
        .routes(routes!(plays::deliveries))
        .routes(routes!(plays::replay))
        .routes(routes!(plays::account_plays))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::revoke))
}

/// Adds the security schemes and the record schemas, then what
/// [`contract::tighten`] adds to every operation.
pub fn finish(mut api: OpenApi) -> serde_json::Value {
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
    components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    for (name, schema) in records::schemas() {
        components.schemas.insert(name, schema);
    }
    let mut doc = serde_json::to_value(&api).expect("the OpenAPI document serialises");
    contract::tighten(&mut doc);
    doc
}
