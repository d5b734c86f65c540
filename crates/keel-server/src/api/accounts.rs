//! Accounts: the filtered, sorted, paginated list; one account with its full
//! state; its records; its state as of any date; its timeline; logging a
//! touchpoint.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use keel_core::{EntityKind, ExternalId};
use keel_store::{AccountCursor, AccountQuery, AccountSort, Accounts, RecordKinds, Snapshot};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::openapi::schema::ArrayBuilder;
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{IntoParams, ToSchema};

use super::{Query, date_param, plain_date};
use crate::AppState;
use crate::auth::{self, Caller};
use crate::error::{ApiError, Code};
use keel_app::keys::Principal;

fn account_ref() -> Ref {
    Ref::from_schema_name("Account")
}

fn array_of(name: &str) -> RefOr<Schema> {
    ArrayBuilder::new().items(Ref::from_schema_name(name)).build().into()
}

fn contracts_schema() -> RefOr<Schema> {
    array_of("Contract")
}

fn contacts_schema() -> RefOr<Schema> {
    array_of("Contact")
}

/// Filters, order and page of the account list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Segment id, as the journey names it.
    segment: Option<String>,
    /// A stage of any product line (`adoption`), or of one line (`analytics:adoption`).
    stage: Option<String>,
    /// Health band: `red`, `yellow` or `green`.
    band: Option<String>,
    /// Owner, exactly as stored.
    owner: Option<String>,
    /// Renewal on or after this date (YYYY-MM-DD).
    renewal_from: Option<String>,
    /// Renewal on or before this date (YYYY-MM-DD).
    renewal_to: Option<String>,
    /// Text the name or id contains (case-insensitive).
    q: Option<String>,
    /// Order: `id`, `name`, `owner`, `mrr`, `renewal` or `score`; a leading `-`
    /// sorts descending. Accounts without a value come last. Default `name`.
    sort: Option<String>,
    /// Rows per page, 1 to 1000 (default 50).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page (with the same filters and order).
    cursor: Option<String>,
}

/// A product line's stage.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineStage {
    /// The product line.
    pub product_line: String,
    /// Its stage (null: the line ended).
    pub stage: Option<String>,
}

/// One row of the account list.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountRow {
    /// External id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Owner.
    pub owner: Option<String>,
    /// Segment, as of the last evaluation.
    pub segment: Option<String>,
    /// Health band.
    pub band: Option<String>,
    /// Health score, 0–100.
    pub score: Option<f64>,
    /// Stage per product line.
    pub stages: Vec<LineStage>,
    /// MRR of the active contract lines.
    pub mrr: Option<f64>,
    /// When the active contract ends (YYYY-MM-DD).
    pub renewal_date: Option<String>,
    /// When Keel last evaluated the account (null: not yet).
    pub evaluated_at: Option<String>,
}

/// A page of accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountList {
    /// The rows.
    pub accounts: Vec<AccountRow>,
    /// Accounts matching the filters, on all pages.
    pub total: u64,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// The cursor as clients see it: the order it belongs to and the last row's key.
#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    sort: AccountSort,
    desc: bool,
    #[serde(flatten)]
    at: AccountCursor,
}

fn invalid(name: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::new(Code::InvalidParameter, format!("{name}: {message}"))
}

pub(crate) fn query_from(params: ListParams) -> Result<AccountQuery, ApiError> {
    let raw_sort = params.sort.unwrap_or_else(|| "name".to_owned());
    let (descending, name) = match raw_sort.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw_sort.as_str()),
    };
    let sort = AccountSort::ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s).ok_or_else(|| {
        invalid(
            "sort",
            format!("{raw_sort:?} is not one of id, name, owner, mrr, renewal, score (- for descending)"),
        )
    })?;
    if let Some(band) = &params.band {
        band.parse::<keel_core::Band>().map_err(|e| invalid("band", e.to_string()))?;
    }
    let limit = params.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(invalid("limit", format!("{limit} is not between 1 and 1000")));
    }
    let after = match params.cursor {
        None => None,
        Some(raw) => {
            let cursor: Cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(raw.as_bytes())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| invalid("cursor", "not a cursor this API returned"))?;
            if cursor.sort != sort || cursor.desc != descending {
                return Err(invalid("cursor", "it belongs to another order; pass the same sort as before"));
            }
            Some(cursor.at)
        }
    };
    Ok(AccountQuery {
        segment: params.segment,
        stage: params.stage,
        band: params.band,
        owner: params.owner,
        renewal_from: plain_date("renewal_from", params.renewal_from)?,
        renewal_to: plain_date("renewal_to", params.renewal_to)?,
        search: params.q.filter(|q| !q.is_empty()),
        sort,
        descending,
        limit,
        after,
    })
}

/// The cursor that continues `query` after the row at `at`.
pub(crate) fn next_cursor(query: &AccountQuery, at: keel_store::AccountCursor) -> String {
    let cursor = Cursor { sort: query.sort, desc: query.descending, at };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
}

/// Lists the workspace's accounts with their stage, band, MRR and renewal date.
#[utoipa::path(
    get,
    path = "/api/v1/accounts",
    tag = "accounts",
    params(ListParams),
    responses(
        (status = 200, description = "A page of accounts", body = AccountList),
        (status = 400, description = "A parameter is invalid (the message names it)", body = super::ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Query(params): Query<ListParams>,
) -> Result<Json<AccountList>, ApiError> {
    if let (Some(journey), Some(segment)) = (&state.config.journey, &params.segment)
        && !journey.journey.segments.iter().any(|s| &s.id == segment)
    {
        let known: Vec<&str> = journey.journey.segments.iter().map(|s| s.id.as_str()).collect();
        return Err(invalid(
            "segment",
            format!("{segment:?}: the journey has no such segment (it has {})", known.join(", ")),
        ));
    }
    let query = query_from(params)?;
    let page = state.store.list_accounts(principal.workspace, &query).await?;
    let next_cursor = page.next.map(|at| next_cursor(&query, at));
    let accounts = page
        .rows
        .into_iter()
        .map(|row| {
            let (evaluated_at, summary) = match row.evaluated {
                Some((at, s)) => (Some(at.to_rfc3339()), s),
                None => (None, Default::default()),
            };
            AccountRow {
                id: row.account.id.to_string(),
                name: row.account.name,
                owner: row.account.owner,
                segment: summary.segment,
                band: summary.band,
                score: summary.score,
                stages: summary
                    .stages
                    .into_iter()
                    .map(|(product_line, stage)| LineStage { product_line, stage })
                    .collect(),
                mrr: summary.mrr,
                renewal_date: summary.renewal.map(|d| d.to_string()),
                evaluated_at,
            }
        })
        .collect();
    Ok(Json(AccountList { accounts, total: page.total, next_cursor }))
}

/// The account id of a route's path.
pub(crate) fn account_id(id: &str) -> Result<ExternalId, ApiError> {
    ExternalId::parse(id).map_err(|e| invalid("id", e))
}

fn no_account(id: &ExternalId) -> ApiError {
    ApiError::new(Code::NotFound, format!("no account {:?}", id.as_str()))
}

/// The account's records of `kinds`; 404 when the workspace has no such account.
pub(crate) async fn account_records(
    state: &AppState,
    principal: &Principal,
    id: &ExternalId,
    kinds: RecordKinds,
) -> Result<Snapshot, ApiError> {
    let snapshot = state.store.records(principal.workspace, Accounts::One(id), kinds).await?;
    if snapshot.accounts.is_empty() {
        return Err(no_account(id));
    }
    Ok(snapshot)
}

/// An account's evaluated state, as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct StateDoc {
    /// When Keel evaluated it (absent for an as-of evaluation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evaluated_at: Option<String>,
    /// The date it was evaluated as of.
    pub as_of: String,
    /// The journey version it ran under.
    pub journey_version: String,
    /// The engine's account state: `segment`; `lines` (per product line: stage,
    /// entered, days_in_stage, gate conditions with the values they read,
    /// gate_passed, ttv_days, transitions); `health` (score, band, coverage,
    /// components with their values and points); firing `moments` with
    /// their reasons; and the account's `metrics`.
    #[schema(value_type = Object)]
    pub state: Value,
}

/// One account with everything Keel knows of it now.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountDetail {
    /// The account record.
    #[schema(schema_with = account_ref)]
    pub account: Value,
    /// Its latest evaluated state (null: not evaluated yet).
    pub state: Option<StateDoc>,
    /// Its contract lines.
    #[schema(schema_with = contracts_schema)]
    pub contracts: Vec<Value>,
    /// Its contacts.
    #[schema(schema_with = contacts_schema)]
    pub contacts: Vec<Value>,
}

async fn stored_state(
    state: &AppState,
    principal: &Principal,
    id: &ExternalId,
) -> Result<Option<StateDoc>, ApiError> {
    let Some(stored) = state.store.account_state(principal.workspace, id).await? else { return Ok(None) };
    Ok(Some(StateDoc {
        evaluated_at: Some(stored.evaluated_at.to_rfc3339()),
        as_of: stored.as_of.to_string(),
        journey_version: stored.journey_version,
        state: serde_json::from_str(&stored.state).map_err(ApiError::internal)?,
    }))
}

/// One account: its record, latest evaluated state, contract lines and contacts.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{id}",
    tag = "accounts",
    params(("id" = String, Path, description = "The account's external id")),
    responses(
        (status = 200, description = "The account", body = AccountDetail),
        (status = 404, description = "The workspace has no such account", body = super::ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Path(id): Path<String>,
) -> Result<Json<AccountDetail>, ApiError> {
    let id = account_id(&id)?;
    let kinds = RecordKinds { contracts: true, contacts: true, ..RecordKinds::default() };
    let snapshot = account_records(&state, &principal, &id, kinds).await?;
    Ok(Json(AccountDetail {
        account: keel_import::account_json(&snapshot.accounts[0]),
        state: stored_state(&state, &principal, &id).await?,
        contracts: snapshot.contracts.iter().map(keel_import::contract_json).collect(),
        contacts: snapshot.contacts.iter().map(keel_import::contact_json).collect(),
    }))
}

/// `as_of` of the state route.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StateParams {
    /// Evaluate as of this date (YYYY-MM-DD) instead of reading the stored state.
    as_of: Option<String>,
}

/// The account's state: the stored one, or evaluated as of any date.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{id}/state",
    tag = "accounts",
    params(("id" = String, Path, description = "The account's external id"), StateParams),
    responses(
        (status = 200, description = "The state", body = StateDoc),
        (status = 400, description = "`as_of` is not a date", body = super::ErrorBody),
        (status = 404, description = "not_found: no such account, or not evaluated yet; no_journey: `as_of` asked of a server that runs without a journey", body = super::ErrorBody),
    )
)]
pub async fn state(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Path(id): Path<String>,
    Query(params): Query<StateParams>,
) -> Result<Json<StateDoc>, ApiError> {
    let id = account_id(&id)?;
    let ws = principal.workspace;
    if let Some(as_of) = date_param(&state, "as_of", params.as_of)? {
        let _turn = state.heavy.turn().await?;
        let heavy = state.heavy.clone();
        return heavy
            .run(async move {
                let Some(journey) = &state.config.journey else {
                    return Err(ApiError::new(Code::NoJourney, "the server runs without a journey"));
                };
                let history = keel_app::load::history(state.store.as_ref(), ws, &id)
                    .await?
                    .ok_or_else(|| no_account(&id))?;
                let names = state.store.event_names(ws).await?;
                let plan = keel_engine::Plan::new(journey.journey.clone(), &names);
                let evaluated = keel_engine::evaluate(&plan, &history, as_of);
                Ok(Json(StateDoc {
                    evaluated_at: None,
                    as_of: as_of.to_string(),
                    journey_version: journey.version.clone(),
                    state: serde_json::to_value(&evaluated).map_err(ApiError::internal)?,
                }))
            })
            .await;
    }
    stored_state(&state, &principal, &id).await?.map(Json).ok_or_else(|| {
        ApiError::new(
            Code::NotFound,
            format!("no evaluated state for account {:?} (unknown, or not evaluated yet)", id.as_str()),
        )
    })
}

/// `limit` of the timeline route.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimelineParams {
    /// Entries to return, newest first (default 100, at most 1000).
    limit: Option<u32>,
}

/// One change Keel saw.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    /// When Keel saw it.
    pub at: String,
    /// `stage_changed`, `band_changed`, `moment_started` or `moment_ended`.
    pub kind: String,
    /// What changed (from/to, the moment and its reason, …).
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// An account's timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    /// The account.
    pub account: String,
    /// Newest first.
    pub entries: Vec<TimelineEntry>,
}

/// The account's timeline: stage and band changes, moments starting and ending.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{id}/timeline",
    tag = "accounts",
    params(("id" = String, Path, description = "The account's external id"), TimelineParams),
    responses(
        (status = 200, description = "The timeline, newest first", body = Timeline),
        (status = 404, description = "No such account", body = super::ErrorBody),
    )
)]
pub async fn timeline(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Path(id): Path<String>,
    Query(params): Query<TimelineParams>,
) -> Result<Json<Timeline>, ApiError> {
    let id = account_id(&id)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(invalid("limit", format!("{limit} is not between 1 and 1000")));
    }
    let entries = state.store.timeline(principal.workspace, &id, limit).await?;
    if entries.is_empty() {
        // An account without changes yet, or none at all: say which.
        account_records(&state, &principal, &id, RecordKinds::default()).await?;
    }
    let entries = entries
        .into_iter()
        .map(|e| TimelineEntry {
            at: e.at.to_rfc3339(),
            kind: e.kind,
            detail: serde_json::from_str(&e.detail).unwrap_or(Value::Null),
        })
        .collect();
    Ok(Json(Timeline { account: id.to_string(), entries }))
}

/// Records of one kind of one account.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordList {
    /// The account.
    pub account: String,
    /// The kind.
    pub kind: String,
    /// The records, as objects with the kind's import columns (see the
    /// Contract, Contact, Ticket, Survey, Touchpoint and Opportunity schemas).
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<Value>,
}

/// The record kinds an account lists.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountRecordKind {
    /// Contract lines.
    Contracts,
    /// Contacts.
    Contacts,
    /// Support tickets.
    Tickets,
    /// Survey responses.
    Surveys,
    /// Touchpoints.
    Touchpoints,
    /// Opportunities.
    Opportunities,
}

/// The account's records of one kind.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{id}/records/{kind}",
    tag = "accounts",
    params(
        ("id" = String, Path, description = "The account's external id"),
        ("kind" = AccountRecordKind, Path, description = "Which records"),
    ),
    responses(
        (status = 200, description = "The records, oldest id first", body = RecordList),
        (status = 404, description = "No such account, or no such kind", body = super::ErrorBody),
    )
)]
pub async fn records(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Read>,
    Path((id, kind)): Path<(String, String)>,
) -> Result<Json<RecordList>, ApiError> {
    let id = account_id(&id)?;
    let kind: AccountRecordKind = serde_json::from_value(Value::String(kind.clone())).map_err(|_| {
        ApiError::new(
            Code::NotFound,
            format!(
                "no record kind {kind:?}: contracts, contacts, tickets, surveys, touchpoints, opportunities"
            ),
        )
    })?;
    let mut kinds = RecordKinds::default();
    match kind {
        AccountRecordKind::Contracts => kinds.contracts = true,
        AccountRecordKind::Contacts => kinds.contacts = true,
        AccountRecordKind::Tickets => kinds.tickets = true,
        AccountRecordKind::Surveys => kinds.surveys = true,
        AccountRecordKind::Touchpoints => kinds.touchpoints = true,
        AccountRecordKind::Opportunities => kinds.opportunities = true,
    }
    let s = account_records(&state, &principal, &id, kinds).await?;
    let (name, records): (&str, Vec<Value>) = match kind {
        AccountRecordKind::Contracts => {
            ("contracts", s.contracts.iter().map(keel_import::contract_json).collect())
        }
        AccountRecordKind::Contacts => {
            ("contacts", s.contacts.iter().map(keel_import::contact_json).collect())
        }
        AccountRecordKind::Tickets => ("tickets", s.tickets.iter().map(keel_import::ticket_json).collect()),
        AccountRecordKind::Surveys => ("surveys", s.surveys.iter().map(keel_import::survey_json).collect()),
        AccountRecordKind::Touchpoints => {
            ("touchpoints", s.touchpoints.iter().map(keel_import::touchpoint_json).collect())
        }
        AccountRecordKind::Opportunities => {
            ("opportunities", s.opportunities.iter().map(keel_import::opportunity_json).collect())
        }
    };
    Ok(Json(RecordList { account: id.to_string(), kind: name.to_owned(), records }))
}

/// A touchpoint to log.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTouchpoint {
    /// Its id; when absent, derived from the `Idempotency-Key` header if sent,
    /// else from the touchpoint's content — so a retried request stores it once.
    pub id: Option<String>,
    /// What happened: `kickoff`, `ebr`, `qbr`, `alignment_meeting`, `email`, … (a label).
    pub kind: String,
    /// When (RFC 3339); default: now.
    pub occurred_at: Option<String>,
    /// Who on the team.
    pub owner: Option<String>,
    /// Notes.
    pub notes: Option<String>,
    /// The outcome.
    pub outcome: Option<String>,
}

/// What logging a touchpoint did.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedTouchpoint {
    /// `inserted`, `updated` (same id, other content) or `unchanged` (a retry).
    pub result: String,
    /// The touchpoint as stored.
    #[schema(schema_with = touchpoint_ref)]
    pub touchpoint: Value,
}

fn touchpoint_ref() -> Ref {
    Ref::from_schema_name("Touchpoint")
}

/// Logs one touchpoint on the account (a meeting, a call, an email).
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{id}/touchpoints",
    tag = "records",
    params(
        ("id" = String, Path, description = "The account's external id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries of a touchpoint without an id safe"),
    ),
    request_body = NewTouchpoint,
    responses(
        (status = 201, description = "Stored", body = LoggedTouchpoint),
        (status = 200, description = "Already stored (a retry), or replaced", body = LoggedTouchpoint),
        (status = 400, description = "The body is not valid JSON", body = super::ErrorBody),
        (status = 404, description = "No such account", body = super::ErrorBody),
        (status = 422, description = "A field is invalid (the message names it)", body = super::ErrorBody),
    )
)]
pub async fn log_touchpoint(
    State(state): State<AppState>,
    Caller(principal, _): Caller<auth::Write>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let id = account_id(&id)?;
    let input: NewTouchpoint = super::json_body(&body, "a touchpoint")?;
    account_records(&state, &principal, &id, RecordKinds::default()).await?;
    let occurred_at = input.occurred_at.clone().unwrap_or_else(|| (state.clock)().to_rfc3339());
    let record_id = match &input.id {
        Some(given) => given.clone(),
        None => {
            let basis = match headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
                Some(key) => format!("key\u{0}{key}"),
                None => format!(
                    "content\u{0}{}\u{0}{}\u{0}{occurred_at}\u{0}{:?}\u{0}{:?}\u{0}{:?}",
                    id.as_str(),
                    input.kind,
                    input.owner,
                    input.notes,
                    input.outcome
                ),
            };
            format!("tp-{:032x}", xxhash_rust::xxh3::xxh3_128(basis.as_bytes()))
        }
    };
    let row = json!({
        "id": record_id, "account_id": id.as_str(), "kind": input.kind, "occurred_at": occurred_at,
        "owner": input.owner, "notes": input.notes, "outcome": input.outcome,
    });
    let report = super::records::write_rows(
        &state,
        principal.workspace,
        EntityKind::Touchpoints,
        vec![row],
        false,
        false,
    )
    .await?;
    if let Some(d) = report.diagnostics.first() {
        return Err(ApiError::new(
            Code::InvalidRecord,
            match &d.column {
                Some(c) => format!("{c}: {}", d.reason),
                None => d.reason.clone(),
            },
        ));
    }
    let (status, result) = if report.counts.inserted > 0 {
        (StatusCode::CREATED, "inserted")
    } else if report.counts.updated > 0 {
        (StatusCode::OK, "updated")
    } else {
        (StatusCode::OK, "unchanged")
    };
    let stored = state
        .store
        .records(
            principal.workspace,
            Accounts::One(&id),
            RecordKinds { touchpoints: true, ..Default::default() },
        )
        .await?
        .touchpoints
        .into_iter()
        .find(|t| t.id.as_str() == record_id)
        .map(|t| keel_import::touchpoint_json(&t))
        .unwrap_or(Value::Null);
    Ok((status, Json(LoggedTouchpoint { result: result.to_owned(), touchpoint: stored })).into_response())
}
