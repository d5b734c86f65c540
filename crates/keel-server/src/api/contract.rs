//! What the OpenAPI document promises beyond each handler's annotations, so
//! that it describes exactly what the server enforces: the answers every
//! operation can give (400 for a parameter or body that does not parse, 401
//! with `WWW-Authenticate`, 429 and 503 with `Retry-After`, 413 and 415 where
//! there is a body), the constraints of the query parameters the handlers
//! check (dates, enumerations, ranges, no empty strings), unique operation
//! ids, and — once the server knows its journey — the segments and metrics
//! it accepts. The router's [`refuse_unknown_query`] reads the same document
//! to refuse query parameters an operation does not declare.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{ApiError, Code};

/// A date query parameter: what `keel_core::parse_date` accepts.
fn date() -> Value {
    json!({"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"})
}

/// An external id as `keel_core::ExternalId::parse` takes it: no control
/// characters, no surrounding whitespace, at most 256 bytes (which a schema
/// can only say in characters).
fn external_id() -> Value {
    let cc = r"\x00-\x1f\x7f-\x9f";
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": 256,
        "pattern": format!(r"^[^\s{cc}]([^{cc}]*[^\s{cc}])?$"),
    })
}

/// A Segment batch: each item of `batch` is checked (and accepted or
/// rejected) on its own, so an item may be anything; the key may ride in
/// the body as `writeKey`.
fn segment_batch() -> Value {
    json!({
        "type": "object",
        "required": ["batch"],
        "properties": {
            "batch": {
                "type": "array",
                "items": {"description": "A Segment message (track, identify, group, page, screen, alias); \
                    one that does not check is rejected in `results` without failing the others"}
            },
            "sentAt": {"description": "When the client sent the batch (RFC 3339); corrects the clock skew of \
                timestamps, ignored when it is not a timestamp"},
            "context": {"description": "Merged into every message's context when it is an object"},
            "writeKey": {"type": ["string", "null"], "description": "The API key, for clients that cannot send a header"}
        }
    })
}

/// One of `values`.
fn one_of(values: &[&str]) -> Value {
    json!({"type": "string", "enum": values})
}

/// A comma-separated list of `values`.
fn list_of(values: &[&str]) -> Value {
    let one = format!("({})", values.iter().map(|v| regex_escape(v)).collect::<Vec<_>>().join("|"));
    json!({"type": "string", "pattern": format!("^{one}(,{one})*$")})
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| if c.is_ascii_alphanumeric() || c == '_' { vec![c] } else { vec!['\\', c] })
        .collect()
}

fn int_range(min: u64, max: u64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

/// The schema of a query parameter the handler checks beyond its type, by
/// operation path and name (None: keep the annotation's, no empty string).
fn query_schema(path: &str, name: &str) -> Option<Value> {
    Some(match (path, name) {
        (_, "as_of" | "from" | "to" | "renewal_from" | "renewal_to") => date(),
        ("/api/v1/accounts", "sort") => {
            let names: Vec<&str> = keel_store::AccountSort::ALL.iter().map(|(n, _)| *n).collect();
            let mut all: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            all.extend(names.iter().map(|n| format!("-{n}")));
            json!({"type": "string", "enum": all})
        }
        ("/api/v1/accounts", "band") => one_of(&keel_core::Band::names()),
        ("/api/v1/accounts", "limit") => int_range(1, 1000),
        ("/api/v1/accounts/{id}/timeline", "limit") => int_range(1, 1000),
        ("/api/v1/tasks", "status") => list_of(&super::plays::TASK_STATUSES),
        ("/api/v1/tasks", "limit") => int_range(1, 10_000),
        ("/api/v1/outbox", "status") => one_of(&super::plays::OUTBOX_STATUSES),
        ("/api/v1/deliveries", "status") => one_of(&super::plays::DELIVERY_STATUSES),
        ("/api/v1/reports/retention", "by") => one_of(&super::reports::RETENTION_BY),
        ("/api/v1/reports/cohorts", "months") => int_range(0, 240),
        ("/api/v1/reports/gates", "lead_days") => int_range(0, 3650),
        ("/api/v1/tasks", "account") => external_id(),
        (_, "currency") => json!({"type": "string", "pattern": "^[A-Z]{3}$"}),
        _ => return None,
    })
}

/// An error answer's description and body.
fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    })
}

fn retry_after() -> Value {
    json!({"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer", "minimum": 1}}})
}

/// Adds what the handlers' annotations leave out (see the module's doc).
pub fn tighten(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for (method, op) in item.iter_mut() {
            if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            tighten_operation(path, op);
        }
    }
}

fn tighten_operation(path: &str, op: &mut Value) {
    // Handler names repeat across modules (`list`, `get`): the tag makes
    // each operation id unique.
    let tag = op.pointer("/tags/0").and_then(Value::as_str).map(str::to_owned);
    if let (Some(tag), Some(id)) = (tag, op.get("operationId").and_then(Value::as_str)) {
        op["operationId"] = json!(format!("{tag}_{id}"));
    }
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in params.iter_mut() {
            let name = p["name"].as_str().unwrap_or_default().to_owned();
            let place = p["in"].as_str().unwrap_or_default().to_owned();
            if place == "path" {
                p["schema"]["minLength"] = json!(1);
                if path.starts_with("/api/v1/accounts/{id}") && name == "id" {
                    p["schema"] = external_id();
                }
                continue;
            }
            if place != "query" {
                continue;
            }
            if let Some(schema) = query_schema(path, &name) {
                p["schema"] = schema;
            } else if p["schema"]["type"] == json!("string")
                || p["schema"]["type"] == json!(["string", "null"])
            {
                p["schema"] = json!({"type": "string", "minLength": 1});
            } else if p["schema"]["type"] == json!(["integer", "null"]) {
                p["schema"]["type"] = json!("integer");
            } else if p["schema"]["type"] == json!(["boolean", "null"]) {
                p["schema"]["type"] = json!("boolean");
            }
        }
    }
    if path == "/v1/batch" || path == "/v1/import" {
        op["requestBody"]["content"]["application/json"]["schema"] = segment_batch();
    }
    // The handlers refuse an empty body: at least one item, one character.
    if let Some(content) = op.pointer_mut("/requestBody/content").and_then(Value::as_object_mut) {
        for media in content.values_mut() {
            let schema = &mut media["schema"];
            if schema["type"] == json!("array") {
                schema["minItems"] = json!(1);
            } else if schema["type"] == json!("string") {
                schema["minLength"] = json!(1);
                schema["pattern"] = json!(r"\S");
            }
        }
    }
    let api = path.starts_with("/api/v1") || path.starts_with("/v1");
    let has_body = op.get("requestBody").is_some();
    let responses = op["responses"].as_object_mut().expect("every operation has responses");
    for answer in responses.values_mut() {
        if answer.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
            answer["description"] = json!("OK");
        }
    }
    if !api {
        return;
    }
    let mut add = |status: &str, description: &str| {
        responses.entry(status.to_owned()).or_insert_with(|| error(description));
    };
    add(
        "400",
        "invalid_parameter, invalid_json or invalid_body: a parameter or the body does not parse (the message names it)",
    );
    add("401", "unauthorized: no key, or a key that is unknown or revoked");
    add("403", "forbidden: the key lacks the scope this needs");
    add("429", "rate_limited: the key is over its rate limit");
    add(
        "500",
        "internal: Keel failed; nothing of the request was stored, and the cause is in the server's log",
    );
    add(
        "503",
        "store_unavailable: the store cannot write now, nothing was stored; busy: too many reports running or waiting",
    );
    if path.starts_with("/api/v1/reports/") || path == "/api/v1/accounts/{id}/state" {
        add(
            "504",
            "deadline_exceeded: the computation took longer than serve.report_deadline and was stopped",
        );
    }
    if has_body {
        add("408", "request_timeout: the body did not arrive within the server's body timeout");
        add("413", "body_too_large: the body is over the operation's limit");
        add("415", "unsupported_media_type or unsupported_encoding");
    }
    responses["401"]["headers"] = json!({"WWW-Authenticate": {
        "description": "The schemes a key may be presented in", "schema": {"type": "string"}
    }});
    responses["429"]["headers"] = retry_after();
    responses["503"]["headers"] = retry_after();
    op["security"] = json!([{"basic": []}, {"bearer": []}]);
}

/// The journey's vocabulary as the document's constraints: `segment` is one
/// of its segments, `metric` a comma-separated list of metrics a table can
/// show.
pub fn with_journey(doc: &mut Value, journey: &keel_journey::Journey) {
    let segments: Vec<&str> = journey.segments.iter().map(|s| s.id.as_str()).collect();
    let metrics: Vec<String> = keel_journey::catalog::BUILTIN_METRICS
        .iter()
        .filter(|m| !m.reads.stage)
        .map(|m| m.name.to_owned())
        .chain(journey.metrics.iter().map(|m| m.name.clone()))
        .collect();
    let metrics: Vec<&str> = metrics.iter().map(String::as_str).collect();
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for op in item.values_mut() {
            let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else { continue };
            for p in params.iter_mut().filter(|p| p["in"] == json!("query")) {
                match p["name"].as_str() {
                    Some("segment") => p["schema"] = one_of(&segments),
                    Some("metric") => p["schema"] = list_of(&metrics),
                    _ => {}
                }
            }
        }
    }
}

/// The query parameter names each operation declares, by method and path
/// template.
#[derive(Debug, Default)]
pub struct DeclaredQuery(BTreeMap<(String, String), BTreeSet<String>>);

impl DeclaredQuery {
    /// Reads them from the document.
    pub fn of(doc: &Value) -> Self {
        let mut out = BTreeMap::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let names = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == json!("query"))
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect();
                out.insert((method.to_uppercase(), path.clone()), names);
            }
        }
        Self(out)
    }
}

/// Refuses a request to a documented operation whose query string names a
/// parameter the operation does not declare (a misspelt filter is an error,
/// not silently ignored). Routes outside the document (the dashboard) pass.
pub async fn refuse_unknown_query(
    axum::extract::State(declared): axum::extract::State<Arc<DeclaredQuery>>,
    request: Request,
    next: Next,
) -> Response {
    // Most requests carry no query string: they cost one check.
    let Some(query) = request.uri().query() else { return next.run(request).await };
    let matched = request.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    if let Some(path) = matched {
        let key = (request.method().as_str().to_owned(), path);
        if let Some(names) = declared.0.get(&key) {
            for (name, _) in form_urlencoded::parse(query.as_bytes()) {
                if !names.contains(name.as_ref()) {
                    let known = if names.is_empty() {
                        "this operation takes no query parameters".to_owned()
                    } else {
                        format!("expected one of {}", names.iter().cloned().collect::<Vec<_>>().join(", "))
                    };
                    return ApiError::new(
                        Code::InvalidParameter,
                        format!("{name}: unknown parameter; {known}"),
                    )
                    .into_response();
                }
            }
        }
    }
    next.run(request).await
}

/// Answers every API error in the one format: a framework rejection that
/// reaches the client as plain text or an empty body (a body over the size
/// limit, a method the route does not take) becomes the JSON error body
/// with the code for its status. The dashboard's pages are left alone.
pub async fn one_error_format(request: Request, next: Next) -> Response {
    let api = {
        let path = request.uri().path();
        path.starts_with("/api/") || path.starts_with("/v1/")
    };
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !api || json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (code, message) = match status {
        axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            (Code::BodyTooLarge, "the body is over this operation's size limit")
        }
        axum::http::StatusCode::METHOD_NOT_ALLOWED => {
            (Code::MethodNotAllowed, "this route does not take this method")
        }
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            (Code::UnsupportedMediaType, "this operation does not take this Content-Type")
        }
        axum::http::StatusCode::NOT_FOUND => (Code::NotFound, "no such route"),
        s if s.is_server_error() => (Code::Internal, "Keel failed; the cause is in the server's log"),
        _ => (Code::InvalidBody, "the request could not be read"),
    };
    let allow = response.headers().get(axum::http::header::ALLOW).cloned();
    let mut answer = ApiError::new(code, message).into_response();
    if let Some(allow) = allow {
        answer.headers_mut().insert(axum::http::header::ALLOW, allow);
    }
    answer
}
