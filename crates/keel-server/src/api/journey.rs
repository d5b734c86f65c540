//! The journey the server evaluates with, and checking a journey file.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use keel_journey::{Detection, Entry};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{self, Caller};
use crate::error::{ApiError, Code};

/// A stage, in brief.
#[derive(Debug, Serialize, ToSchema)]
pub struct StageDoc {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Owner role.
    pub owner: String,
    /// How an account enters: `contract_start`, `previous_exit`, `renewal_window` or a CEL condition.
    pub entry: String,
    /// The exit gate (CEL).
    pub exit: String,
    /// The metric watched while in the stage.
    pub watch: String,
    /// Target days in the stage.
    pub target_days: Option<u32>,
}

/// A moment that matters, in brief.
#[derive(Debug, Serialize, ToSchema)]
pub struct MomentDoc {
    /// Id.
    pub id: String,
    /// A built-in detector's name, or the CEL condition.
    pub detection: String,
    /// Owner role.
    pub owner: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// The play it triggers.
    pub play: Option<String>,
}

/// A segment, in brief.
#[derive(Debug, Serialize, ToSchema)]
pub struct SegmentDoc {
    /// Id.
    pub id: String,
    /// Who it belongs to (CEL).
    pub when: String,
    /// `high_touch`, `tech_touch` or `hybrid`.
    pub touch: String,
}

/// The journey the server runs.
#[derive(Debug, Serialize, ToSchema)]
pub struct JourneyDoc {
    /// The file it was read from.
    pub file: String,
    /// Its version: a hash of the file, which stored states and lineage carry.
    pub version: String,
    /// Its name.
    pub name: String,
    /// The file's text.
    pub source: String,
    /// Stages, in order.
    pub stages: Vec<StageDoc>,
    /// Moments that matter.
    pub moments: Vec<MomentDoc>,
    /// Segments, in the order they are tried.
    pub segments: Vec<SegmentDoc>,
}

/// The journey the server evaluates accounts with.
#[utoipa::path(
    get,
    path = "/api/v1/journey",
    tag = "journey",
    responses(
        (status = 200, description = "The journey", body = JourneyDoc),
        (status = 404, description = "The server runs without a journey", body = super::ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller<auth::Read>,
) -> Result<Json<JourneyDoc>, ApiError> {
    let Some(config) = &state.config.journey else {
        return Err(ApiError::new(Code::NoJourney, "the server runs without a journey"));
    };
    let j = &config.journey;
    Ok(Json(JourneyDoc {
        file: config.file.clone(),
        version: config.version.clone(),
        name: j.name.clone(),
        source: config.source.clone(),
        stages: j
            .stages
            .iter()
            .map(|s| StageDoc {
                id: s.id.clone(),
                name: s.name.clone(),
                owner: s.owner.clone(),
                entry: match &s.entry {
                    Entry::ContractStart => "contract_start".to_owned(),
                    Entry::PreviousExit => "previous_exit".to_owned(),
                    Entry::RenewalWindow => "renewal_window".to_owned(),
                    Entry::When(e) => e.source.clone(),
                },
                exit: s.exit.source.clone(),
                watch: s.watch.clone(),
                target_days: s.target_days,
            })
            .collect(),
        moments: j
            .moments
            .iter()
            .map(|m| MomentDoc {
                id: m.id.clone(),
                detection: match &m.detection {
                    Detection::Detector { name, .. } => name.clone(),
                    Detection::When(e) => e.source.clone(),
                },
                owner: m.owner.clone(),
                severity: m.severity.as_str().to_owned(),
                play: m.play.clone(),
            })
            .collect(),
        segments: j
            .segments
            .iter()
            .map(|s| SegmentDoc {
                id: s.id.clone(),
                when: s.when.source.clone(),
                touch: s.touch.as_str().to_owned(),
            })
            .collect(),
    }))
}

/// One problem in a journey file.
#[derive(Debug, Serialize, ToSchema)]
pub struct JourneyProblem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// The source line.
    pub excerpt: String,
    /// Characters the problem spans from `column`.
    pub width: usize,
}

/// The result of checking a journey file.
#[derive(Debug, Serialize, ToSchema)]
pub struct JourneyCheck {
    /// Whether the file is a valid journey.
    pub valid: bool,
    /// Its problems (empty when valid).
    pub problems: Vec<JourneyProblem>,
    /// Stages, moments and segments it defines (when valid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<JourneyCounts>,
}

/// What a valid journey holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct JourneyCounts {
    /// Stages.
    pub stages: usize,
    /// Moments that matter.
    pub moments: usize,
    /// Segments.
    pub segments: usize,
    /// Health components.
    pub health_components: usize,
    /// Journey-map cells.
    pub map_cells: usize,
}

/// Checks a journey file (the body, as TOML) as `keel journey check` does:
/// syntax, every CEL expression against the metrics, every reference.
/// Nothing is stored.
#[utoipa::path(
    post,
    path = "/api/v1/journey/validate",
    tag = "journey",
    request_body(content = String, content_type = "application/toml", description = "A journey.toml"),
    responses(
        (status = 200, description = "The check's result (valid or not)", body = JourneyCheck),
        (status = 400, description = "The body is not UTF-8 text", body = super::ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB", body = super::ErrorBody),
    )
)]
pub async fn validate(
    _caller: Caller<auth::Read>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Json<JourneyCheck>, ApiError> {
    let bytes = crate::read_body(&headers, body, 1 << 20, Code::BodyTooLarge, "a journey file").await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| ApiError::new(Code::InvalidBody, format!("the journey is not UTF-8: {e}")))?;
    if text.trim().is_empty() {
        return Err(ApiError::new(Code::InvalidBody, "the body is empty: send a journey.toml"));
    }
    Ok(Json(match keel_journey::check("journey.toml", text) {
        Ok(j) => JourneyCheck {
            valid: true,
            problems: Vec::new(),
            counts: Some(JourneyCounts {
                stages: j.stages.len(),
                moments: j.moments.len(),
                segments: j.segments.len(),
                health_components: j.health.components.len(),
                map_cells: j.map.cells.len(),
            }),
        },
        Err(diagnostics) => JourneyCheck {
            valid: false,
            problems: diagnostics
                .into_iter()
                .map(|d| JourneyProblem {
                    line: d.line,
                    column: d.column,
                    message: d.message,
                    excerpt: d.excerpt,
                    width: d.width,
                })
                .collect(),
            counts: None,
        },
    }))
}

/// How the workspace's account timeline stands under the running journey:
/// whether it is current, or being re-derived in the background (after a
/// start with an edited journey, or records edited after the fact).
#[utoipa::path(
    get,
    path = "/api/v1/timeline",
    tag = "journey",
    responses(
        (status = 200, description = "The timeline's status", body = crate::timeline::TimelineStatus),
        (status = 404, description = "The server runs without a journey", body = super::ErrorBody),
    )
)]
pub async fn timeline(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
) -> Result<Json<crate::timeline::TimelineStatus>, ApiError> {
    state
        .timeline_status(principal.workspace)
        .map(Json)
        .ok_or_else(|| ApiError::new(Code::NoJourney, "the server runs without a journey"))
}
