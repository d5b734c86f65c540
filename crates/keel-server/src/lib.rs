//! Keel as a service: the Segment-compatible ingest API (`/v1/*`) with
//! exact deduplication and group commit, API-key authentication, and health
//! endpoints. `keel serve` runs it; [`router`] builds it for tests.
//!
//! Every request is scoped to the workspace of the key it presents; no route
//! takes a workspace from the request itself.

pub mod api;
pub mod auth;
pub mod cache;
pub mod error;
pub mod evaluator;
pub mod heavy;
pub mod ingest;
pub mod listen;
pub mod metrics;
pub mod ratelimit;
pub mod segment;
pub mod timeline;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use keel_core::Timestamp;
use keel_store::Store;
use serde_json::{Value, json};

use crate::auth::{Peer, authenticate, presented_key};
use crate::error::{ApiError, Code};
use crate::ingest::{Ingestor, Outcome};
use crate::segment::{Envelope, Limits};
use keel_app::keys::{Principal, Scope};

/// The clock the server reads (injected: the library never reads the wall clock itself).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// How the server behaves.
#[derive(Clone)]
pub struct Config {
    /// Request size limits.
    pub limits: Limits,
    /// A `track` property that names the account, if any (besides
    /// `context.groupId` and group memberships).
    pub account_property: Option<String>,
    /// Requests per key (`None`: unlimited).
    pub rate_limit: Option<ratelimit::RateLimit>,
    /// How long a checked key is trusted without asking the database again
    /// (a revocation takes effect within this time). Zero: ask every time.
    pub key_cache: chrono::Duration,
    /// The journey to evaluate accounts with as data arrives (`None`: no
    /// streaming evaluation).
    pub journey: Option<Arc<evaluator::JourneyConfig>>,
    /// How long a touched account waits for more data before evaluation.
    pub debounce: std::time::Duration,
    /// How often every account is re-evaluated.
    pub tick: std::time::Duration,
    /// The largest body of a record write (`/api/v1/records/{kind}`), in bytes.
    pub records_bytes: usize,
    /// Days a message id is remembered for deduplication (0: forever).
    pub dedup_window_days: u32,
    /// How often a background task checkpoints the store (zero: never; the
    /// store must then checkpoint on its own, as SQLite does by default).
    pub checkpoint_every: std::time::Duration,
    /// Mark the dashboard's cookies `Secure` (the server sits behind HTTPS).
    pub secure_cookies: bool,
    /// How long the dashboard serves a computed report before it
    /// recomputes it in the background (see [`cache`]).
    pub report_ttl: std::time::Duration,
    /// Compute the dashboard's reports for every workspace with users when
    /// the server starts, so the first page view finds them ready.
    pub warm_reports: bool,
    /// When stored things may have happened (ingest and record writes).
    pub window: keel_core::TimeWindow,
    /// Connection timeouts and the connection cap.
    pub connections: listen::ConnectionLimits,
    /// Unknown API keys one address may present per minute before it is
    /// answered 429 without a lookup (0: no limit).
    pub unknown_keys_per_minute: usize,
    /// The bounds of heavy work (reports, as-of evaluations).
    pub heavy: heavy::HeavyLimits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            account_property: None,
            rate_limit: None,
            key_cache: chrono::Duration::seconds(5),
            journey: None,
            debounce: std::time::Duration::from_millis(200),
            tick: std::time::Duration::from_secs(3600),
            records_bytes: 64 << 20,
            dedup_window_days: 30,
            checkpoint_every: std::time::Duration::ZERO,
            secure_cookies: false,
            report_ttl: std::time::Duration::from_secs(600),
            warm_reports: false,
            window: keel_core::TimeWindow::default(),
            connections: listen::ConnectionLimits::default(),
            unknown_keys_per_minute: auth::BAD_KEYS_PER_PEER,
            heavy: heavy::HeavyLimits::default(),
        }
    }
}

/// Checked keys by the SHA-256 of the key, with when they were checked.
type CheckedKeys = std::collections::HashMap<Vec<u8>, (Principal, Timestamp)>;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    store: Arc<dyn Store>,
    ingestor: Ingestor,
    config: Config,
    clock: Clock,
    limiter: Arc<ratelimit::Limiter>,
    metrics: Arc<metrics::Metrics>,
    /// Checked keys by the SHA-256 of the key, with when they were checked.
    checked: Arc<std::sync::Mutex<CheckedKeys>>,
    /// The streaming evaluator, when the server runs a journey.
    evaluator: Option<evaluator::Evaluator>,
    /// The dashboard's computed reports.
    reports: Arc<cache::ReportCache>,
    /// Failed dashboard sign-ins per email.
    logins: Arc<web::auth::Throttle>,
    /// Failed dashboard sign-ins per remote address.
    logins_by_peer: Arc<web::auth::Throttle>,
    /// Unknown API keys presented, per remote address.
    bad_keys: Arc<web::auth::Throttle>,
    /// Turns at heavy work.
    heavy: Arc<heavy::Heavy>,
    /// The background timeline task's handle, when the server runs a journey.
    keeper: Option<timeline::Keeper>,
}

/// Starts the server's work over a store, in one place: the state every
/// handler shares (with its ingest writer and, given a journey, its
/// streaming evaluator) and the background tasks the configuration asks
/// for — WAL maintenance, forgetting message ids past the deduplication
/// window, keeping the dashboard's reports warm. Needs a Tokio runtime.
/// `keel serve` calls it; so does the test harness.
pub fn startup(store: Arc<dyn Store>, config: Config, clock: Clock) -> AppState {
    if config.checkpoint_every > std::time::Duration::ZERO {
        tokio::spawn(maintenance(store.clone(), config.checkpoint_every));
    }
    if config.dedup_window_days > 0 {
        tokio::spawn(forget_old_message_ids(store.clone(), clock.clone(), config.dedup_window_days));
    }
    let state = AppState::new(store, config, clock);
    state.keep_timeline();
    if state.config.warm_reports {
        state.heavy.handle().spawn(web::figures::keep_warm(state.clone()));
    }
    state
}

impl AppState {
    /// The state handlers share over a store, with the ingest writer and
    /// the streaming evaluator it cannot work without (needs a Tokio
    /// runtime); no other background task: [`startup`] starts those.
    pub fn new(store: Arc<dyn Store>, config: Config, clock: Clock) -> Self {
        let heavy_limits = config.heavy;
        let unknown_keys = match config.unknown_keys_per_minute {
            0 => usize::MAX,
            n => n,
        };
        let limiter = Arc::new(ratelimit::Limiter::new(config.rate_limit));
        let metrics = Arc::new(metrics::Metrics::default());
        let report_ttl = config.report_ttl;
        let heavy = Arc::new(heavy::Heavy::new(heavy_limits));
        let keeper = config.journey.as_ref().map(|j| timeline::Keeper::new(j.version.clone()));
        let evaluator = config.journey.clone().zip(keeper.clone()).map(|(journey, keeper)| {
            evaluator::Evaluator::start(
                store.clone(),
                journey,
                clock.clone(),
                metrics.clone(),
                evaluator::Timing { debounce: config.debounce, tick: config.tick },
                keeper,
            )
        });
        Self {
            ingestor: Ingestor::start(store.clone(), metrics.clone(), evaluator.clone()),
            evaluator,
            store,
            config,
            clock,
            limiter,
            checked: Arc::default(),
            metrics,
            reports: Arc::new(cache::ReportCache::new(report_ttl).computing_on(heavy.handle())),
            logins: Arc::default(),
            logins_by_peer: Arc::new(web::auth::Throttle::new(
                web::auth::THROTTLE_FAILURES_PER_PEER,
                web::auth::THROTTLE_WINDOW,
            )),
            bad_keys: Arc::new(web::auth::Throttle::new(unknown_keys, auth::BAD_KEYS_WINDOW)),
            heavy,
            keeper,
        }
    }
}

impl AppState {
    /// Takes a turn at heavy work, as a report does, and holds it until the
    /// permit is dropped (tests hold turns to see what waits behind them).
    pub async fn hold_heavy_turn(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.heavy.hold().await
    }

    /// Stalls heavy work before it starts, until the guard is dropped
    /// (tests stall it to see a deadline pass).
    pub fn stall_heavy_work(&self) -> heavy::Stalled {
        self.heavy.stall()
    }

    /// How many requests wait for a turn at heavy work, as it changes.
    pub fn heavy_waiting(&self) -> tokio::sync::watch::Receiver<usize> {
        self.heavy.waiting()
    }

    /// Starts keeping the account timeline in the background (at the
    /// lowest CPU priority; [`startup`] calls it): first every account
    /// without a timeline under the running journey, then what the
    /// evaluator hands over. Waits while heavy work is stalled. Call once.
    pub fn keep_timeline(&self) {
        let (Some(keeper), Some(journey)) = (&self.keeper, &self.config.journey) else { return };
        let task =
            keeper.clone().run(self.store.clone(), journey.clone(), self.clock.clone(), self.heavy.stalled());
        self.heavy.handle().spawn(task);
    }

    /// Returns once the background timeline task has done its first pass
    /// and no account waits for it (at once without a journey; never
    /// before [`AppState::keep_timeline`]).
    pub async fn timeline_settled(&self) {
        if let Some(keeper) = &self.keeper {
            keeper.settled().await;
        }
    }

    /// How a workspace's timeline stands (None: no journey).
    pub fn timeline_status(&self, ws: keel_store::WorkspaceId) -> Option<timeline::TimelineStatus> {
        self.keeper.as_ref().map(|k| k.status(ws))
    }

    /// Returns once everything the evaluator was asked to evaluate before
    /// the call is evaluated and committed (at once without a journey).
    /// Data a client sent is asked for before its request is answered.
    pub async fn settled(&self) {
        if let Some(evaluator) = &self.evaluator {
            evaluator.settled().await;
        }
    }

    /// Evaluates every account of every workspace now and returns once
    /// their states are committed: for data written behind the server's
    /// back (straight into the store), which the scheduled tick would only
    /// pick up later.
    pub async fn evaluate_everything(&self) -> Result<(), keel_store::StoreError> {
        if let Some(evaluator) = &self.evaluator {
            evaluator.everything(self.store.as_ref()).await?;
            evaluator.settled().await;
        }
        Ok(())
    }
}

/// Runs a long-lived task on a thread of its own with a single-threaded
/// runtime: its awaits on the database then resume at once instead of
/// queueing behind every request task of the shared runtime. The thread ends
/// with the task (when its channel closes). Falls back to the shared runtime
/// if no thread can be started.
fn on_own_thread(name: &str, task: impl std::future::Future<Output = ()> + Send + 'static) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::warn!(error = %e, task = name, "no runtime of its own; the task shares the server's");
            tokio::spawn(task);
            return;
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        let task = rx.recv().expect("the task is sent right after the thread starts");
        runtime.block_on(task);
    });
    match spawned {
        Ok(_) => {
            let _ = tx.send(task);
        }
        Err(e) => {
            tracing::warn!(error = %e, task = name, "no thread of its own; the task shares the server's");
            tokio::spawn(task);
        }
    }
}

/// The store's housekeeping in the background (for SQLite, checkpoints),
/// so that no request's commit pays for it.
async fn maintenance(store: Arc<dyn Store>, every: std::time::Duration) {
    let mut interval = tokio::time::interval(every);
    loop {
        interval.tick().await;
        if let Err(e) = store.maintain().await {
            tracing::warn!(error = %e, "store maintenance failed; retrying");
        }
    }
}

/// Every hour: deduplication forgets the message ids older than its window,
/// a slice of the key space at a time so that ingest waits at most one slice.
async fn forget_old_message_ids(store: Arc<dyn Store>, clock: Clock, window_days: u32) {
    const PARTS: u32 = 256;
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        interval.tick().await;
        let mut forgotten = 0;
        for part in 0..PARTS {
            match store.forget_message_ids(clock(), window_days, part, PARTS).await {
                Ok(n) => forgotten += n,
                Err(e) => {
                    tracing::error!(error = %e, "forgetting old message ids failed; retrying in an hour");
                    break;
                }
            }
        }
        tracing::info!(forgotten, window_days, "deduplication forgot message ids older than its window");
    }
}

/// The OpenAPI document of the whole HTTP API.
pub fn openapi() -> serde_json::Value {
    api::finish(api::routes().into_openapi())
}

/// The whole HTTP API.
pub fn router(state: AppState) -> axum::Router {
    let (routes, openapi) = api::routes().split_for_parts();
    let mut doc = api::finish(openapi);
    if let Some(journey) = &state.config.journey {
        api::contract::with_journey(&mut doc, &journey.journey);
    }
    let declared = Arc::new(api::contract::DeclaredQuery::of(&doc));
    let json = serde_json::to_string_pretty(&doc).unwrap_or_default();
    let page = api::docs::page(&doc);
    routes
        .route_layer(axum::middleware::from_fn_with_state(declared, api::contract::refuse_unknown_query))
        .merge(web::routes())
        .route(
            "/api/v1/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], json) }),
        )
        .route("/api/docs", get(move || async move { axum::response::Html(page) }))
        .fallback(|| async { ApiError::new(Code::NotFound, "no such route") })
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(state.config.connections.body_read))
        .layer(axum::middleware::from_fn(api::contract::one_error_format))
        .layer(catch_panics())
        .with_state(state)
}

/// A handler that panics (a bug) answers 500 `internal` in the one error
/// format and is logged; the connection and the server carry on.
fn catch_panics() -> tower_http::catch_panic::CatchPanicLayer<fn(Box<dyn std::any::Any + Send>) -> Response> {
    fn answer(panic: Box<dyn std::any::Any + Send>) -> Response {
        let what = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("a panic");
        tracing::error!(panic = what, "a request handler panicked");
        ApiError::new(Code::Internal, "internal error; see the server log").into_response()
    }
    tower_http::catch_panic::CatchPanicLayer::custom(answer as fn(_) -> Response)
}

#[cfg(test)]
mod panic_tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn a_handler_that_panics_answers_500_in_the_error_format() {
        async fn boom() -> &'static str {
            panic!("index out of bounds")
        }
        let router: axum::Router =
            axum::Router::new().route("/boom", axum::routing::get(boom)).layer(super::catch_panics());
        let answer = router.oneshot(Request::get("/boom").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(answer.status().as_u16(), 500);
        let body = axum::body::to_bytes(answer.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "internal", "{body}");
    }
}

/// Serves on `addr` until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    state: AppState,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_on(tokio::net::TcpListener::bind(addr).await?, state, shutdown).await
}

/// Serves on a bound listener (tests bind port 0 and read the address).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "keel is serving");
    let limits = state.config.connections;
    listen::serve(listener, router(state), limits, shutdown).await
}

/// Whether the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "`ok`", body = String)))]
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// Prometheus metrics: ingest counts, batch sizes, commit latency, evaluation latency, queue depth.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text")))]
pub(crate) async fn prometheus(State(state): State<AppState>) -> Response {
    let body = state.metrics.render();
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
        .into_response()
}

/// Whether the server can answer: the database responds.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "`ready`", body = String),
        (status = 503, description = "not_ready: the database does not answer, or cannot write (a full disk, an I/O error); with Retry-After", body = api::ErrorBody),
    )
)]
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let answer = match state.store.workspace("default").await {
        Ok(_) => state.store.writable((state.clock)()).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            let mut error = ApiError::new(Code::NotReady, e.to_string());
            error.retry_after = Some(error::RETRY_UNAVAILABLE_SECS);
            error.into_response()
        }
    }
}

/// Reads the body (gunzipped when `Content-Encoding: gzip`, as Segment's
/// libraries can send it) up to `limit` bytes; more is a 413 with `code`.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    code: Code,
    what: &str,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(code, format!("{what} is larger than {limit} bytes; split it into smaller requests"))
    };
    let raw = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut timed_out = false;
        while let Some(c) = cause {
            timed_out |= c.is::<tower_http::timeout::TimeoutError>();
            cause = c.source();
        }
        if timed_out {
            ApiError::new(Code::RequestTimeout, format!("{what} did not arrive in time; nothing was stored"))
        } else {
            too_large()
        }
    })?;
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity");
    match encoding.trim().to_ascii_lowercase().as_str() {
        "identity" | "" => Ok(raw),
        "gzip" => {
            use std::io::Read as _;
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..]).take(limit as u64 + 1).read_to_end(&mut out).map_err(
                |e| ApiError::new(Code::InvalidGzip, format!("the gzip body does not decompress: {e}")),
            )?;
            if out.len() > limit {
                return Err(too_large());
            }
            Ok(out.into())
        }
        other => Err(ApiError::new(
            Code::UnsupportedEncoding,
            format!("Content-Encoding {other:?} is not supported (send identity or gzip)"),
        )),
    }
}

pub(crate) fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            Code::InvalidJson,
            format!("the body is not valid JSON: {e} (line {}, column {})", e.line(), e.column()),
        )
    })
}

/// Counts a request's answer in the metrics.
fn counted(state: &AppState, kind: &str, result: Result<Response, ApiError>) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    state.metrics.request(kind, response.status().as_u16());
    response
}

/// One Segment call: `track`, `identify`, `group`, `page`, `screen`, `alias`,
/// or Keel's `ungroup` (ends a user's membership of an account). Answers
/// only after the message is committed.
#[utoipa::path(
    post,
    path = "/v1/{call}",
    tag = "ingest",
    params(("call" = String, Path, description = "track, identify, group, page, screen, alias or ungroup")),
    request_body(content = Object, description = "A Segment message (at most `message_max_bytes`, 4 MiB by default)"),
    responses(
        (status = 200, description = "Accepted, held or a duplicate", body = SingleAnswer),
        (status = 400, description = "invalid_json (with line and column), invalid_message, rejected, invalid_gzip", body = api::ErrorBody),
        (status = 404, description = "No such call", body = api::ErrorBody),
        (status = 413, description = "message_too_large", body = api::ErrorBody),
        (status = 415, description = "unsupported_encoding (send identity or gzip)", body = api::ErrorBody),
    )
)]
pub(crate) async fn single(
    State(state): State<AppState>,
    Peer(peer): Peer,
    Path(call): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = single_call(&state, peer, call, headers, body).await;
    counted(&state, "single", result)
}

/// A Segment batch: up to 2 500 messages and `batch_max_bytes` (8 MiB + 64 KiB by default). Answers after the
/// accepted messages are committed, with a result per message.
#[utoipa::path(
    post,
    path = "/v1/batch",
    tag = "ingest",
    request_body(content = Object, description = "`{\"batch\": [messages…], \"sentAt\": …, \"context\": …}`"),
    responses(
        (status = 200, description = "A result per message, in order", body = BatchAnswer),
        (status = 400, description = "invalid_json, invalid_batch, invalid_gzip", body = api::ErrorBody),
        (status = 413, description = "batch_too_large, too_many_messages", body = api::ErrorBody),
        (status = 415, description = "unsupported_encoding", body = api::ErrorBody),
    )
)]
pub(crate) async fn batch(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = batch_call(&state, peer, headers, body).await;
    counted(&state, "batch", result)
}

/// Segment's `/v1/import`: the same as `/v1/batch`.
#[utoipa::path(
    post,
    path = "/v1/import",
    tag = "ingest",
    request_body(content = Object, description = "As /v1/batch"),
    responses((status = 200, description = "As /v1/batch", body = BatchAnswer))
)]
pub(crate) async fn import(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = batch_call(&state, peer, headers, body).await;
    counted(&state, "batch", result)
}

async fn single_call(
    state: &AppState,
    peer: Option<std::net::IpAddr>,
    call: String,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !segment::TYPES.contains(&call.as_str()) {
        return Err(ApiError::new(Code::NotFound, format!("no call /v1/{call}")));
    }
    let limit = state.config.limits.message_bytes;
    // A key in a header is checked before the body is read; only a key
    // that rides in the body (`writeKey`) waits for it.
    let header_key = presented_key(&headers, None)?;
    let early = match header_key {
        Some(k) => Some(authenticate(state, peer, Some(k), Scope::Ingest).await?),
        None => None,
    };
    let bytes = read_body(&headers, body, limit, Code::MessageTooLarge, "a single call").await?;
    let value = parse_json(&bytes)?;
    let principal = match early {
        Some(p) => p,
        None => authenticate(state, peer, presented_key(&headers, Some(&value))?, Scope::Ingest).await?,
    };
    let received_at = (state.clock)();
    let env = Envelope {
        received_at,
        account_property: state.config.account_property.clone(),
        window: state.config.window,
        ..Envelope::default()
    };
    let message = segment::parse(&value, Some(&call), &env).map_err(|r| {
        state.metrics.rejected(r.code);
        ApiError::new(Code::InvalidMessage, r.reason).with_details(json!({"rejection": r.code}))
    })?;
    let outcome = state
        .ingestor
        .write(principal.workspace, vec![message], Vec::new(), received_at)
        .await?
        .pop()
        .unwrap_or(Outcome::Accepted);
    match outcome {
        Outcome::Rejected { code, reason } => {
            Err(ApiError::new(Code::Rejected, reason).with_details(json!({"rejection": code})))
        }
        other => Ok(Json(SingleAnswer { success: true, result: other }).into_response()),
    }
}

/// A batch request's envelope; the messages stay raw until parsed one by one.
#[derive(Debug, Default, serde::Deserialize)]
struct BatchBody<'a> {
    #[serde(borrow)]
    batch: Option<Vec<&'a serde_json::value::RawValue>>,
    #[serde(rename = "sentAt")]
    sent_at: Option<Value>,
    context: Option<Value>,
    #[serde(rename = "writeKey")]
    write_key: Option<String>,
}

async fn batch_call(
    state: &AppState,
    peer: Option<std::net::IpAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let limits = state.config.limits;
    let header_key = presented_key(&headers, None)?;
    let early = match header_key {
        Some(k) => Some(authenticate(state, peer, Some(k), Scope::Ingest).await?),
        None => None,
    };
    let bytes = read_body(&headers, body, limits.batch_bytes, Code::BatchTooLarge, "a batch").await?;
    // The items stay raw text until each is parsed on its own: their sizes
    // are their lengths, and a bad item does not spoil the others.
    let batch: BatchBody<'_> = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(_) => {
            // Invalid JSON (say where), or valid JSON of the wrong shape.
            parse_json(&bytes)?;
            BatchBody::default()
        }
    };
    let principal = match early {
        Some(p) => p,
        None => authenticate(state, peer, batch.write_key.clone(), Scope::Ingest).await?,
    };
    let Some(items) = &batch.batch else {
        return Err(ApiError::new(Code::InvalidBatch, "the body must be an object with a \"batch\" array"));
    };
    if items.len() > limits.batch_messages {
        return Err(ApiError::new(
            Code::TooManyMessages,
            format!("the batch holds {} messages; the limit is {}", items.len(), limits.batch_messages),
        ));
    }
    let received_at = (state.clock)();
    let sent_at = batch
        .sent_at
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    let group_id =
        batch.context.as_ref().and_then(|c| c.pointer("/groupId")).and_then(Value::as_str).map(str::to_owned);
    let env = Envelope {
        received_at,
        sent_at,
        group_id,
        account_property: state.config.account_property.clone(),
        window: state.config.window,
    };

    let mut results: Vec<Outcome> = Vec::with_capacity(items.len());
    let mut valid = Vec::new();
    let mut refused = Vec::new();
    let mut slots = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let size = item.get().len();
        let parsed = if size > limits.message_bytes {
            Err(segment::Rejection::new(
                segment::RejectionCode::MessageTooLarge,
                format!("{size} bytes; the limit is {}", limits.message_bytes),
            ))
        } else {
            serde_json::from_str::<Value>(item.get())
                .map_err(|e| {
                    segment::Rejection::new(segment::RejectionCode::InvalidMessage, format!("not JSON: {e}"))
                })
                .and_then(|item| segment::parse(&item, None, &env))
        };
        match parsed {
            Ok(m) => {
                valid.push(m);
                slots.push(i);
                results.push(Outcome::Accepted);
            }
            Err(segment::Rejection { code, reason }) => {
                state.metrics.rejected(code);
                // Its ids, when the item is readable enough to have them.
                let raw: Option<Value> = serde_json::from_str(item.get()).ok();
                let field =
                    |k: &str| raw.as_ref().and_then(|v| v.get(k)).and_then(Value::as_str).map(str::to_owned);
                refused.push(keel_store::RejectionRow {
                    at: received_at,
                    code: code.as_str().to_owned(),
                    reason: reason.clone(),
                    message_id: field("messageId"),
                    user_id: field("userId").or_else(|| field("anonymousId")),
                });
                results.push(Outcome::Rejected { code, reason });
            }
        }
    }
    let written = state.ingestor.write(principal.workspace, valid, refused, received_at).await?;
    for (slot, outcome) in slots.into_iter().zip(written) {
        results[slot] = outcome;
    }
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|o| f(o)).count();
    let body = BatchAnswer {
        success: true,
        accepted: count(|o| matches!(o, Outcome::Accepted)),
        duplicate: count(|o| matches!(o, Outcome::Duplicate)),
        held: count(|o| matches!(o, Outcome::Held)),
        rejected: count(|o| matches!(o, Outcome::Rejected { .. })),
        results,
    };
    Ok(Json(body).into_response())
}

/// A single Segment call's answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SingleAnswer {
    /// Always true (a failure is an error answer).
    pub success: bool,
    /// Accepted, held until the user joins an account, or a duplicate of a
    /// message stored before.
    pub result: Outcome,
}

/// A batch's answer: counts, and one result per message in order.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct BatchAnswer {
    /// Always true (a batch that cannot be read is an error answer).
    pub success: bool,
    /// Messages stored now.
    pub accepted: usize,
    /// Messages stored before (same message id).
    pub duplicate: usize,
    /// Messages kept until their user joins an account (a `group` call).
    pub held: usize,
    /// Messages refused, each with its code and reason.
    pub rejected: usize,
    /// One per message, in the batch's order.
    pub results: Vec<Outcome>,
}
