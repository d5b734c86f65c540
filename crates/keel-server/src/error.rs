//! Errors as HTTP answers: a status, a stable machine-readable code and a
//! message that says what to change.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable code clients can match on (e.g. `payload_too_large`).
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// Seconds to wait before retrying (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// 400: the request cannot be understood.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no credentials, or credentials that are not a valid key.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: a valid key without the scope this needs.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 413: over a size limit.
    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }

    /// 500: Keel failed; the message is logged, the client gets a generic one.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(error = %message, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
    }
}

/// Seconds a client is asked to wait when the store cannot write now.
pub const RETRY_UNAVAILABLE_SECS: u64 = 5;

impl ApiError {
    /// 503 with Retry-After: the store cannot write now (a full disk, an I/O
    /// error); nothing of the request was stored, and the same request may
    /// succeed later. The cause is logged, not sent.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "the store cannot write; answering 503");
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the store cannot write now; nothing was stored, retry later",
        );
        e.retry_after = Some(RETRY_UNAVAILABLE_SECS);
        e
    }
}

impl From<keel_store::StoreError> for ApiError {
    fn from(e: keel_store::StoreError) -> Self {
        if e.is_unavailable() { Self::unavailable(e) } else { Self::internal(e) }
    }
}

impl From<crate::ingest::WriteError> for ApiError {
    fn from(e: crate::ingest::WriteError) -> Self {
        match e {
            crate::ingest::WriteError::Unavailable(_) => Self::unavailable(e),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(json!({"code": self.code, "message": self.message}))).into_response();
        if let Some(v) = self.retry_after.and_then(|secs| HeaderValue::from_str(&secs.to_string()).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"keel\", Bearer"));
        }
        response
    }
}
