//! API keys of the workspace, as `keel keys` manages them (admin scope).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::auth::{self, Caller};
use crate::error::{ApiError, Code};
use keel_app::keys::Scope;

/// A key, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyDoc {
    /// A name to recognise it by.
    pub name: String,
    /// Its first characters: what identifies it in listings and to revoke it.
    pub prefix: String,
    /// `ingest`, `read`, `admin`.
    pub scopes: Vec<String>,
    /// When it was created.
    pub created_at: String,
    /// When it was revoked (null: it is live).
    pub revoked_at: Option<String>,
}

impl From<keel_store::ApiKey> for KeyDoc {
    fn from(k: keel_store::ApiKey) -> Self {
        KeyDoc {
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes,
            created_at: k.created_at.to_rfc3339(),
            revoked_at: k.revoked_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// The workspace's keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// Oldest first, revoked ones included.
    pub keys: Vec<KeyDoc>,
}

/// The workspace's API keys (never their secrets).
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys", responses((status = 200, description = "The workspace's keys, live and revoked", body = KeyList)))]
pub async fn list(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Admin>,
) -> Result<Json<KeyList>, ApiError> {
    let keys = state.store.api_keys(principal.workspace).await?;
    Ok(Json(KeyList { keys: keys.into_iter().map(KeyDoc::from).collect() }))
}

/// A key to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// A name to recognise it by.
    #[schema(pattern = r"\S")]
    pub name: String,
    /// Any of `ingest`, `read`, `admin`.
    #[schema(schema_with = scopes_schema)]
    pub scopes: Vec<String>,
}

/// One or more of the scopes a key can hold.
fn scopes_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let scope = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .enum_values(Some(keel_app::keys::Scope::ALL.iter().map(|s| s.as_str())));
    ArrayBuilder::new().items(scope).min_items(Some(1)).build()
}

/// A created key: the only time its secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The whole key; Keel keeps only a hash of it.
    pub secret: String,
    /// The stored key.
    pub key: KeyDoc,
}

/// Creates a key of the workspace; the answer holds its secret, shown this once.
#[utoipa::path(
    post,
    path = "/api/v1/keys",
    tag = "keys",
    request_body = NewKey,
    responses(
        (status = 201, description = "Created", body = CreatedKey),
        (status = 422, description = "invalid_field: an empty name, no scope or an unknown one", body = super::ErrorBody),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Admin>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let input: NewKey = super::json_body(&body, "a key")?;
    if input.name.trim().is_empty() {
        return Err(ApiError::new(Code::InvalidField, "name: empty"));
    }
    if input.scopes.is_empty() {
        return Err(ApiError::new(Code::InvalidField, "scopes: give at least one of ingest, read, admin"));
    }
    let scopes = input
        .scopes
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::new(Code::InvalidField, format!("scopes: {e}")))?;
    let workspace_name = state
        .store
        .workspaces()
        .await?
        .into_iter()
        .find(|(id, _)| *id == principal.workspace)
        .map(|(_, name)| name)
        .unwrap_or_default();
    let created = keel_app::keys::create(
        state.store.as_ref(),
        principal.workspace,
        &workspace_name,
        input.name.trim(),
        &scopes,
        (state.clock)(),
    )
    .await?;
    let entry = keel_store::AuditEntry {
        at: (state.clock)(),
        actor: format!("key:{}", principal.prefix),
        action: "key.created".into(),
        subject: created.stored.prefix.clone(),
        detail: format!("{:?} with scopes {}", created.stored.name, created.stored.scopes.join(",")),
    };
    state.store.append_audit(principal.workspace, &entry).await?;
    let body = CreatedKey { secret: created.secret, key: created.stored.into() };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Revokes a key of the workspace (within the key cache's few seconds, it stops working).
#[utoipa::path(
    delete,
    path = "/api/v1/keys/{prefix}",
    tag = "keys",
    params(("prefix" = String, Path, description = "The key's prefix, as listed")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "The workspace has no live key with this prefix", body = super::ErrorBody),
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Admin>,
    Path(prefix): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.revoke_api_key(principal.workspace, &prefix, (state.clock)()).await? {
        // This server forgets every checked key at once; others within the key cache's time.
        state.checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
        let entry = keel_store::AuditEntry {
            at: (state.clock)(),
            actor: format!("key:{}", principal.prefix),
            action: "key.revoked".into(),
            subject: prefix,
            detail: String::new(),
        };
        state.store.append_audit(principal.workspace, &entry).await?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(Code::NotFound, format!("no live key {prefix:?} in this workspace")))
    }
}
