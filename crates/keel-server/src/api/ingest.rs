//! What ingest refused (`GET /api/v1/ingest/rejections`) and what admins
//! did (`GET /api/v1/audit`).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Query;
use crate::AppState;
use crate::auth::{self, Caller};
use crate::error::{ApiError, Code};

/// `limit` of the rejections route.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RejectionParams {
    /// Rejections to list, newest first (default 100, at most 1000).
    limit: Option<u32>,
}

/// Refused Segment messages, and how many of each code the workspace keeps.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rejections {
    /// Newest first.
    pub rejections: Vec<keel_store::RejectionRow>,
    /// Kept rejections by code (the workspace keeps its latest 10 000).
    pub counts: std::collections::BTreeMap<String, u64>,
    /// Messages held (not refused) for users no `group` call has placed in
    /// an account yet; attributed when one does.
    pub held: u64,
}

/// The Segment messages Keel refused — the ones an SDK was told about only
/// inside a 200 answer or an error callback — with their codes and reasons.
#[utoipa::path(
    get,
    path = "/api/v1/ingest/rejections",
    tag = "ingest",
    params(RejectionParams),
    responses((status = 200, description = "Refused messages, newest first", body = Rejections))
)]
pub async fn rejections(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Query(params): Query<RejectionParams>,
) -> Result<Json<Rejections>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            Code::InvalidParameter,
            format!("limit: {limit} is not between 1 and 1000"),
        ));
    }
    let (rejections, counts) = state.store.rejections(principal.workspace, limit).await?;
    let held = state.store.held_count(principal.workspace).await?;
    Ok(Json(Rejections { rejections, counts: counts.into_iter().collect(), held }))
}

/// `limit` of the audit route.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Entries to list, newest first (default 100, at most 1000).
    limit: Option<u32>,
}

/// The workspace's admin audit log (append-only): keys created and revoked,
/// dashboard users added and disabled, journey versions served, outbox
/// approvals, people forgotten. Admin keys only.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "keys",
    params(AuditParams),
    responses((status = 200, description = "Admin actions, newest first", body = Vec<keel_store::AuditEntry>))
)]
pub async fn audit(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Admin>,
    Query(params): Query<AuditParams>,
) -> Result<Json<Vec<keel_store::AuditEntry>>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            Code::InvalidParameter,
            format!("limit: {limit} is not between 1 and 1000"),
        ));
    }
    Ok(Json(state.store.audit_log(principal.workspace, limit).await?))
}
