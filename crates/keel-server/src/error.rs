//! Errors as HTTP answers: a status, a stable machine-readable code and a
//! message that says what to change.
//!
//! Every code an answer can carry is a variant of [`Code`], declared once
//! with its HTTP status and one line of documentation; the OpenAPI
//! document lists them (the `ErrorCode` schema) and docs/api.md's error
//! table is generated from the same list (`keel_server::error::code_table`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Declares the error codes: variant, wire name, status and doc line.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = ($name:literal, $status:ident);)+) => {
        /// A stable code clients can match on; each has one HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        pub enum Code {
            $($(#[doc = $doc])+ #[serde(rename = $name)] $variant,)+
        }

        impl Code {
            /// Every code, in the order of the table in docs/api.md.
            pub const ALL: &[Code] = &[$(Code::$variant,)+];

            /// The name on the wire (`not_found`).
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name,)+ }
            }

            /// The HTTP status every answer with this code has.
            pub fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status,)+ }
            }

            /// When a client gets it, in one line.
            pub fn doc(self) -> &'static str {
                match self { $(Code::$variant => concat!($($doc),+).trim_ascii(),)+ }
            }
        }
    };
}

error_codes! {
    /// The body is not JSON (the message gives line and column).
    InvalidJson = ("invalid_json", BAD_REQUEST);
    /// A single Segment call misses a field or has a wrong type (the message says which).
    InvalidMessage = ("invalid_message", BAD_REQUEST);
    /// A single Segment call was valid but could not be applied (e.g. no account).
    Rejected = ("rejected", BAD_REQUEST);
    /// A batch body without a `batch` array.
    InvalidBatch = ("invalid_batch", BAD_REQUEST);
    /// A gzip body that does not decompress.
    InvalidGzip = ("invalid_gzip", BAD_REQUEST);
    /// A body that is not what the operation takes (not UTF-8, not the expected shape).
    InvalidBody = ("invalid_body", BAD_REQUEST);
    /// A query or path parameter that does not parse or is out of range (the message names it).
    InvalidParameter = ("invalid_parameter", BAD_REQUEST);
    /// A field of a well-formed body that does not check (the message names it).
    InvalidField = ("invalid_field", UNPROCESSABLE_ENTITY);
    /// One record that does not check; nothing was stored (the message names the column).
    InvalidRecord = ("invalid_record", UNPROCESSABLE_ENTITY);
    /// Rows of a record write that do not check; nothing was stored (`problems` lists each).
    InvalidRecords = ("invalid_records", UNPROCESSABLE_ENTITY);
    /// No key, or an unknown or revoked key.
    Unauthorized = ("unauthorized", UNAUTHORIZED);
    /// The key lacks the scope the operation needs.
    Forbidden = ("forbidden", FORBIDDEN);
    /// No such route, call type or resource in the key's workspace.
    NotFound = ("not_found", NOT_FOUND);
    /// The server runs without a journey, which the operation needs.
    NoJourney = ("no_journey", NOT_FOUND);
    /// The route exists but not with this method (`Allow` lists the ones it takes).
    MethodNotAllowed = ("method_not_allowed", METHOD_NOT_ALLOWED);
    /// The body did not arrive within the server's body timeout (`serve.body_timeout`); nothing was stored.
    RequestTimeout = ("request_timeout", REQUEST_TIMEOUT);
    /// The resource is not in a state that allows the action (e.g. a task already done).
    Conflict = ("conflict", CONFLICT);
    /// A single Segment call over its size limit (a batch item over it is rejected on its own).
    MessageTooLarge = ("message_too_large", PAYLOAD_TOO_LARGE);
    /// A batch over its size limit.
    BatchTooLarge = ("batch_too_large", PAYLOAD_TOO_LARGE);
    /// A batch with more messages than its limit.
    TooManyMessages = ("too_many_messages", PAYLOAD_TOO_LARGE);
    /// A body over the operation's size limit.
    BodyTooLarge = ("body_too_large", PAYLOAD_TOO_LARGE);
    /// A `Content-Encoding` other than `gzip` or `identity`.
    UnsupportedEncoding = ("unsupported_encoding", UNSUPPORTED_MEDIA_TYPE);
    /// A `Content-Type` the operation does not take.
    UnsupportedMediaType = ("unsupported_media_type", UNSUPPORTED_MEDIA_TYPE);
    /// The key (or sign-in) is over its rate limit; `Retry-After` says how many seconds to wait.
    RateLimited = ("rate_limited", TOO_MANY_REQUESTS);
    /// Keel failed; nothing of the request was stored, and the cause is in the server's log.
    Internal = ("internal", INTERNAL_SERVER_ERROR);
    /// The store cannot write now (a full disk, an I/O error): nothing was stored; retry after `Retry-After` seconds.
    StoreUnavailable = ("store_unavailable", SERVICE_UNAVAILABLE);
    /// Too much heavy work (reports, as-of evaluations) is running or waiting; retry after `Retry-After` seconds.
    Busy = ("busy", SERVICE_UNAVAILABLE);
    /// A report or as-of evaluation computed longer than `serve.report_deadline` and was stopped.
    DeadlineExceeded = ("deadline_exceeded", GATEWAY_TIMEOUT);
    /// `/readyz`: the database does not answer or cannot write; `Retry-After` says when to ask again.
    NotReady = ("not_ready", SERVICE_UNAVAILABLE);
}

/// The `ErrorCode` schema: the wire names, each with its status and line.
impl utoipa::PartialSchema for Code {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        let lines: Vec<String> = Code::ALL
            .iter()
            .map(|c| format!("- `{}` ({}): {}", c.as_str(), c.status().as_u16(), c.doc()))
            .collect();
        ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some(Code::ALL.iter().map(|c| c.as_str())))
            .description(Some(format!(
                "A stable code to match on; each has one HTTP status.\n\n{}",
                lines.join("\n")
            )))
            .into()
    }
}

impl utoipa::ToSchema for Code {
    fn name() -> std::borrow::Cow<'static, str> {
        "ErrorCode".into()
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error table of docs/api.md, as Markdown: status, code, when.
pub fn code_table() -> String {
    let mut out = String::from("| status | code | when |\n|---|---|---|\n");
    for code in Code::ALL {
        out.push_str(&format!("| {} | `{}` | {} |\n", code.status().as_u16(), code.as_str(), code.doc()));
    }
    out
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status (the code's).
    pub status: StatusCode,
    /// A stable code clients can match on.
    pub code: Code,
    /// What went wrong, for a person.
    pub message: String,
    /// Seconds to wait before retrying (429, 503).
    pub retry_after: Option<u64>,
    /// Machine-readable specifics (e.g. a Segment rejection's code).
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// An error with this code (and so its status) and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { status: code.status(), code, message: message.into(), retry_after: None, details: None }
    }

    /// The same error with machine-readable specifics in `details`.
    #[must_use]
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 401: no credentials, or credentials that are not a valid key.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthorized, message)
    }

    /// 403: a valid key without the scope this needs.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, message)
    }

    /// 500: Keel failed; the message is logged, the client gets a generic one.
    pub fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(error = %message, "request failed");
        Self::new(Code::Internal, "internal error; see the server log")
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
        let mut e =
            Self::new(Code::StoreUnavailable, "the store cannot write now; nothing was stored, retry later");
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
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(details) = self.details {
            body["details"] = details;
        }
        let mut response = (self.status, Json(body)).into_response();
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

#[cfg(test)]
mod tests {
    use super::{Code, code_table};

    #[test]
    fn every_code_has_a_unique_name_its_serialised_form_and_an_error_status() {
        let mut names = std::collections::BTreeSet::new();
        for code in Code::ALL {
            assert!(names.insert(code.as_str()), "{code} is declared twice");
            assert_eq!(serde_json::to_value(code).ok(), Some(serde_json::json!(code.as_str())));
            assert!(code.status().is_client_error() || code.status().is_server_error(), "{code}");
            assert!(!code.doc().is_empty() && !code.doc().ends_with(' '), "{code}");
        }
    }

    /// docs/api.md holds the table generated from [`Code`]. Run the test
    /// with `KEEL_WRITE_DOCS=1` to rewrite it after changing a code.
    #[test]
    fn the_error_table_in_docs_api_md_is_generated_from_the_codes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md");
        let doc = std::fs::read_to_string(path).expect("docs/api.md");
        let (start, end) = ("<!-- error-codes:start -->\n", "<!-- error-codes:end -->");
        let from = doc.find(start).expect("the start marker") + start.len();
        let to = doc.find(end).expect("the end marker");
        let table = code_table();
        if std::env::var_os("KEEL_WRITE_DOCS").is_some() {
            std::fs::write(path, format!("{}{table}{}", &doc[..from], &doc[to..]))
                .expect("writes docs/api.md");
        } else {
            assert_eq!(
                &doc[from..to],
                table,
                "docs/api.md's error table is stale: run with KEEL_WRITE_DOCS=1"
            );
        }
    }

    #[test]
    fn the_openapi_document_lists_every_code_by_its_wire_name() {
        let doc = crate::openapi();
        let listed = &doc["components"]["schemas"]["ErrorCode"]["enum"];
        let wire: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, &serde_json::json!(wire));
    }
}
