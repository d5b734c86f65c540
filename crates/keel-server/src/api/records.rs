//! Writing records through the API, in the same format `keel import` reads:
//! a JSON array of objects, JSON lines, or CSV, with the columns of
//! docs/import.md. Upserts by external id (events: deduplicated by message
//! id), so a retried request changes nothing. Also the record schemas of the
//! OpenAPI document, generated from the import columns.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_core::{EntityKind, ExternalId};
use keel_import::{ColumnType, Format, ImportOptions, ImportReport, Outcome};
use keel_store::WorkspaceId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{IntoParams, ToSchema};

use super::Query;
use crate::AppState;
use crate::auth::{self, Caller};
use crate::error::{ApiError, Code};

/// The kinds of record the API writes.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// Accounts.
    Accounts,
    /// Contract lines.
    Contracts,
    /// Contacts.
    Contacts,
    /// Product events (the Segment API is the usual way in).
    Events,
    /// Support tickets.
    Tickets,
    /// Survey responses.
    Surveys,
    /// Touchpoints.
    Touchpoints,
    /// Opportunities.
    Opportunities,
}

fn entity_kind(raw: &str) -> Result<EntityKind, ApiError> {
    EntityKind::ALL.into_iter().find(|k| k.as_str() == raw).ok_or_else(|| {
        ApiError::new(Code::NotFound,
            format!(
                "no record kind {raw:?}: accounts, contracts, contacts, events, tickets, surveys, touchpoints, \
                 opportunities"
            ),
        )
    })
}

/// How to write.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WriteParams {
    /// Check everything (against the stored data too), write nothing.
    #[serde(default)]
    dry_run: bool,
    /// Store the valid rows even if some are invalid (default: all or nothing).
    #[serde(default)]
    allow_partial: bool,
}

/// One invalid row.
#[derive(Debug, Serialize, ToSchema)]
pub struct RowProblem {
    /// 1-based: the item of a JSON array, the line of JSON lines, the line of CSV (the header is line 1).
    pub line: u64,
    /// The column at fault, if one is.
    pub field: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// What a write did.
#[derive(Debug, Serialize, ToSchema)]
pub struct WriteReport {
    /// `invalid_records` when nothing was stored because of invalid rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<crate::error::Code>,
    /// A summary, when nothing was stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `committed`, `dry_run` or `rolled_back`.
    pub outcome: String,
    /// Rows read.
    pub rows: u64,
    /// Rows that were new.
    pub inserted: u64,
    /// Rows that replaced a stored record with other content.
    pub updated: u64,
    /// Rows stored exactly so already (events: duplicate message ids).
    pub unchanged: u64,
    /// Rows refused.
    pub rejected: u64,
    /// Why (the first 10 000).
    pub problems: Vec<RowProblem>,
}

impl From<ImportReport> for WriteReport {
    fn from(r: ImportReport) -> Self {
        let outcome = match r.outcome {
            Outcome::Committed => "committed",
            Outcome::DryRun => "dry_run",
            Outcome::RolledBack => "rolled_back",
        };
        let (code, message) = if r.outcome == Outcome::RolledBack {
            (
                Some(crate::error::Code::InvalidRecords),
                Some(format!(
                    "{} of {} rows are invalid; nothing was stored (fix them, or pass allow_partial=true to \
                     store the valid ones)",
                    r.rejected, r.rows
                )),
            )
        } else {
            (None, None)
        };
        WriteReport {
            code,
            message,
            outcome: outcome.to_owned(),
            rows: r.rows,
            inserted: r.counts.inserted,
            updated: r.counts.updated,
            unchanged: r.counts.unchanged,
            rejected: r.rejected,
            problems: r
                .diagnostics
                .into_iter()
                .map(|d| RowProblem { line: d.line, field: d.column, reason: d.reason })
                .collect(),
        }
    }
}

/// Imports rows (JSON objects with the import columns) in one transaction
/// and marks their accounts for re-evaluation.
pub(crate) async fn write_rows(
    state: &AppState,
    ws: WorkspaceId,
    kind: EntityKind,
    rows: Vec<Value>,
    dry_run: bool,
    allow_partial: bool,
) -> Result<ImportReport, ApiError> {
    let mut lines = Vec::new();
    for row in &rows {
        serde_json::to_writer(&mut lines, row).map_err(ApiError::internal)?;
        lines.push(b'\n');
    }
    let touched = rows.iter().filter_map(|r| account_of(kind, r)).collect();
    import(state, ws, kind, lines, Format::Jsonl, dry_run, allow_partial, touched).await
}

fn account_of(kind: EntityKind, row: &Value) -> Option<ExternalId> {
    let key = if kind == EntityKind::Accounts { "id" } else { "account_id" };
    let raw = row.get(key).or_else(|| row.get("groupId"))?;
    ExternalId::parse(raw.as_str()?).ok()
}

#[allow(clippy::too_many_arguments, reason = "one call site per body format")]
async fn import(
    state: &AppState,
    ws: WorkspaceId,
    kind: EntityKind,
    bytes: Vec<u8>,
    format: Format,
    dry_run: bool,
    allow_partial: bool,
    touched: Vec<ExternalId>,
) -> Result<ImportReport, ApiError> {
    let now = (state.clock)();
    let options = ImportOptions {
        dry_run,
        allow_partial,
        window: state.config.window,
        ..ImportOptions::new(kind, now)
    };
    let report = keel_import::import_reader(
        state.store.as_ref(),
        ws,
        "request body",
        std::io::Cursor::new(bytes),
        format,
        b',',
        &options,
        &|_| {},
    )
    .await
    .map_err(ApiError::internal)?;
    if report.outcome == Outcome::Committed
        && let Some(evaluator) = &state.evaluator
    {
        evaluator.touch(ws, touched, now);
    }
    Ok(report)
}

/// Creates or replaces records of one kind by external id (events: appends,
/// deduplicated by message id) in one transaction: all or nothing unless
/// `allow_partial`. The body is a JSON array of objects
/// (`application/json`), JSON lines (`application/x-ndjson`) or CSV
/// (`text/csv`), with the columns of the kind (the schemas Account,
/// Contract, …); gzip bodies are accepted.
#[utoipa::path(
    post,
    path = "/api/v1/records/{kind}",
    tag = "records",
    params(("kind" = RecordKind, Path, description = "What the body holds"), WriteParams),
    request_body(
        description = "The records: a JSON array of objects, JSON lines, or CSV with a header row",
        content(
            (Vec<Object> = "application/json"),
            (String = "application/x-ndjson"),
            (String = "text/csv"),
        )
    ),
    responses(
        (status = 200, description = "Stored (or checked, with dry_run)", body = WriteReport),
        (status = 400, description = "The body is not a JSON array of objects", body = super::ErrorBody),
        (status = 404, description = "No such kind", body = super::ErrorBody),
        (status = 413, description = "The body is larger than the limit", body = super::ErrorBody),
        (status = 415, description = "Another content type", body = super::ErrorBody),
        (status = 422, description = "Invalid rows; nothing stored", body = WriteReport),
    )
)]
pub async fn write(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Write>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    Query(params): Query<WriteParams>,
    body: Body,
) -> Result<Response, ApiError> {
    let kind = entity_kind(&kind)?;
    let limit = state.config.records_bytes;
    let bytes = crate::read_body(&headers, body, limit, Code::BodyTooLarge, "the body").await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(Code::InvalidBody, "the body is empty: send at least one record"));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let (WriteParams { dry_run, allow_partial }, ws) = (params, principal.workspace);
    let report = match content_type.as_str() {
        "application/json" => {
            let value = crate::parse_json(&bytes)?;
            let rows = match value {
                Value::Array(rows) if rows.is_empty() => {
                    return Err(ApiError::new(
                        Code::InvalidBody,
                        "the body is an empty array: send at least one record",
                    ));
                }
                other => other,
            };
            if let Value::Array(rows) = &rows
                && let Some(at) = rows.iter().position(|r| !r.is_object())
            {
                return Err(ApiError::new(
                    Code::InvalidBody,
                    format!(
                        "item {} of the array is not an object: each record is an object of columns",
                        at + 1
                    ),
                ));
            }
            let Value::Array(rows) = rows else {
                return Err(ApiError::new(
                    Code::InvalidBody,
                    "the body must be a JSON array of objects (or send JSON lines as application/x-ndjson)",
                ));
            };
            write_rows(&state, ws, kind, rows, dry_run, allow_partial).await?
        }
        "application/x-ndjson" | "application/jsonl" | "application/json-seq" => {
            let touched = bytes
                .split(|b| *b == b'\n')
                .filter_map(|line| serde_json::from_slice::<Value>(line).ok())
                .filter_map(|row| account_of(kind, &row))
                .collect();
            import(&state, ws, kind, bytes.to_vec(), Format::Jsonl, dry_run, allow_partial, touched).await?
        }
        "text/csv" => {
            let touched = csv_accounts(kind, &bytes);
            import(&state, ws, kind, bytes.to_vec(), Format::Csv, dry_run, allow_partial, touched).await?
        }
        other => {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                format!("Content-Type {other:?}: send application/json, application/x-ndjson or text/csv"),
            ));
        }
    };
    let status =
        if report.outcome == Outcome::RolledBack { Code::InvalidRecords.status() } else { StatusCode::OK };
    Ok((status, Json(WriteReport::from(report))).into_response())
}

fn csv_accounts(kind: EntityKind, bytes: &[u8]) -> Vec<ExternalId> {
    let key = if kind == EntityKind::Accounts { "id" } else { "account_id" };
    let mut reader = csv::Reader::from_reader(bytes);
    let Some(at) = reader.headers().ok().and_then(|h| h.iter().position(|c| c.trim() == key)) else {
        return Vec::new();
    };
    reader.records().filter_map(Result::ok).filter_map(|r| ExternalId::parse(r.get(at)?).ok()).collect()
}

/// The component schema of each record kind, from the import columns.
pub fn schemas() -> Vec<(String, RefOr<Schema>)> {
    let names = [
        (EntityKind::Accounts, "Account"),
        (EntityKind::Contracts, "Contract"),
        (EntityKind::Contacts, "Contact"),
        (EntityKind::Events, "Event"),
        (EntityKind::Tickets, "Ticket"),
        (EntityKind::Surveys, "Survey"),
        (EntityKind::Touchpoints, "Touchpoint"),
        (EntityKind::Opportunities, "Opportunity"),
    ];
    names
        .into_iter()
        .map(|(kind, name)| {
            let mut object = ObjectBuilder::new().description(Some(format!(
                "A record of {kind}, with the columns `keel import {kind}` reads (docs/import.md)"
            )));
            for column in keel_import::columns(kind) {
                object = object.property(column.name, column_schema(column.ty, column.required));
                if column.required {
                    object = object.required(column.name);
                }
            }
            (name.to_owned(), Schema::Object(object.build()).into())
        })
        .collect()
}

fn column_schema(ty: ColumnType, required: bool) -> RefOr<Schema> {
    let nullable = |t: Type| {
        if required {
            utoipa::openapi::schema::SchemaType::Type(t)
        } else {
            utoipa::openapi::schema::SchemaType::from_iter([t, Type::Null])
        }
    };
    let text = ObjectBuilder::new().schema_type(nullable(Type::String));
    let built = match ty {
        ColumnType::Text => text,
        ColumnType::Id => text.description(Some("an external id")),
        ColumnType::Label => text.description(Some("a lowercase label")),
        ColumnType::Date => text.format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))),
        ColumnType::Timestamp => text.format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        ColumnType::Integer => ObjectBuilder::new().schema_type(nullable(Type::Integer)),
        ColumnType::Decimal => ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                Type::String,
                Type::Number,
                Type::Null,
            ]))
            .description(Some("a decimal amount, as text or a number")),
        ColumnType::Object => ObjectBuilder::new().schema_type(nullable(Type::Object)),
        ColumnType::Choice(words) => text.enum_values(Some(words.iter().copied())),
    };
    Schema::Object(built.build()).into()
}
