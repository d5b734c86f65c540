//! Who is calling: the API key a request presents (HTTP Basic user name,
//! Bearer token, or a Segment body's `writeKey`), checked against the store
//! (with a short cache), its scope, and its rate limit.
//!
//! Handlers take a [`Caller<S>`] — an extractor that answers 401, 403 or 429
//! before the handler runs — instead of checking the key themselves. Only
//! the Segment routes, whose key may ride in the body, call
//! `authenticate` directly once they have read it.

use std::marker::PhantomData;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use keel_app::keys::{self, Principal, Scope};
use serde_json::Value;

use crate::AppState;
use crate::error::{ApiError, Code};

/// The scope an operation needs, as a type.
pub trait NeedsScope: Send + Sync + 'static {
    /// The scope.
    const SCOPE: Scope;
}

/// The `read` scope.
#[derive(Debug)]
pub struct Read;
/// The `ingest` scope.
#[derive(Debug)]
pub struct Ingest;
/// The `write` scope.
#[derive(Debug)]
pub struct Write;
/// The `admin` scope.
#[derive(Debug)]
pub struct Admin;

impl NeedsScope for Read {
    const SCOPE: Scope = Scope::Read;
}
impl NeedsScope for Ingest {
    const SCOPE: Scope = Scope::Ingest;
}
impl NeedsScope for Write {
    const SCOPE: Scope = Scope::Write;
}
impl NeedsScope for Admin {
    const SCOPE: Scope = Scope::Admin;
}

/// The key's principal, once the key is known, live, holds scope `S` and
/// is within its rate limit.
#[derive(Debug)]
pub struct Caller<S>(pub Principal, pub PhantomData<S>);

impl<S: NeedsScope> FromRequestParts<AppState> for Caller<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = presented_key(&parts.headers, None)?;
        Ok(Self(authenticate(state, Peer::of(parts).0, key, S::SCOPE).await?, PhantomData))
    }
}

/// Unknown keys one remote address may present in [`BAD_KEYS_WINDOW`]
/// before it is answered 429 without a lookup (the default of
/// [`crate::Config::unknown_keys_per_minute`]).
pub const BAD_KEYS_PER_PEER: usize = 20;
/// The window unknown keys are counted over.
pub const BAD_KEYS_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// The remote address of the request's connection, when the server knows
/// it (it does when it serves through [`crate::serve_on`]; an in-process
/// router call has none).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<IpAddr>);

impl Peer {
    /// The address in `parts`.
    pub fn of(parts: &Parts) -> Self {
        Self(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts))
    }
}

/// The key a request presents: HTTP Basic (key as user name), Bearer, or
/// the body's `writeKey`.
pub(crate) fn presented_key(headers: &HeaderMap, body: Option<&Value>) -> Result<Option<String>, ApiError> {
    if let Some(raw) = headers.get(header::AUTHORIZATION) {
        let raw = raw.to_str().map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
        // Schemes are case-insensitive (RFC 9110, section 11.1).
        let (scheme, rest) = raw.trim_start().split_once(' ').unwrap_or((raw, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return Ok(Some(rest.trim().to_owned()));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let encoded = rest;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| ApiError::unauthorized("the Basic credentials are not base64"))?;
            let text = String::from_utf8(decoded)
                .map_err(|_| ApiError::unauthorized("the Basic credentials are not UTF-8"))?;
            let user = text.split(':').next().unwrap_or_default();
            return Ok(Some(user.to_owned()));
        }
        return Err(ApiError::unauthorized("the Authorization header must be Basic or Bearer"));
    }
    Ok(body.and_then(|b| b.get("writeKey")).and_then(Value::as_str).map(str::to_owned))
}

pub(crate) async fn authenticate(
    state: &AppState,
    peer: Option<IpAddr>,
    key: Option<String>,
    scope: Scope,
) -> Result<Principal, ApiError> {
    let key = key.ok_or_else(|| {
        ApiError::unauthorized("no API key: send it as HTTP Basic user name, a Bearer token, or writeKey")
    })?;
    let source = peer.map(|ip| ip.to_string());
    let now = (state.clock)();
    let digest = keys::digest(&key);
    let cached = {
        let checked = state.checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        checked.get(&digest).filter(|(_, at)| now - *at < state.config.key_cache).map(|(p, _)| p.clone())
    };
    let principal = match cached {
        Some(p) => p,
        None => {
            // A source that keeps presenting unknown keys waits, and costs no lookup meanwhile.
            if let Some(wait) = source.as_deref().and_then(|s| state.bad_keys.wait(s)) {
                let mut e = ApiError::new(
                    Code::RateLimited,
                    "too many unknown API keys from this address; retry later".to_owned(),
                );
                e.retry_after = Some(wait.as_secs().max(1));
                state.metrics.unknown_keys.get_or_create(&crate::metrics::label("answer", "throttled")).inc();
                return Err(e);
            }
            let Some(p) = keys::check(state.store.as_ref(), &key).await? else {
                if let Some(s) = &source {
                    state.bad_keys.failed(s);
                }
                tracing::info!(peer = source.as_deref().unwrap_or("-"), "unknown API key presented");
                state
                    .metrics
                    .unknown_keys
                    .get_or_create(&crate::metrics::label("answer", "unauthorized"))
                    .inc();
                return Err(ApiError::unauthorized("the API key is unknown or revoked"));
            };
            let mut checked = state.checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if checked.len() > 10_000 {
                checked.clear();
            }
            checked.insert(digest, (p.clone(), now));
            p
        }
    };
    if !keys::allows(&principal.scopes, scope) {
        return Err(ApiError::forbidden(format!("this key lacks the {scope} scope")));
    }
    if let Err(wait) = state.limiter.take(&principal.prefix, now) {
        let mut e =
            ApiError::new(Code::RateLimited, format!("this key is over its rate limit; retry in {wait} s"));
        e.retry_after = Some(wait);
        return Err(e);
    }
    Ok(principal)
}
