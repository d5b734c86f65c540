//! Who is calling: the API key a request presents (HTTP Basic user name,
//! Bearer token, or a Segment body's `writeKey`), checked against the store
//! (with a short cache), its scope, and its rate limit.
//!
//! Handlers take a [`Caller<S>`] — an extractor that answers 401, 403 or 429
//! before the handler runs — instead of checking the key themselves. Only
//! the Segment routes, whose key may ride in the body, call
//! `authenticate` directly once they have read it.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
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
/// The `admin` scope.
#[derive(Debug)]
pub struct Admin;

impl NeedsScope for Read {
    const SCOPE: Scope = Scope::Read;
}
impl NeedsScope for Ingest {
    const SCOPE: Scope = Scope::Ingest;
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
        Ok(Self(authenticate(state, key, S::SCOPE).await?, PhantomData))
    }
}

/// The key a request presents: HTTP Basic (key as user name), Bearer, or
/// the body's `writeKey`.
pub(crate) fn presented_key(headers: &HeaderMap, body: Option<&Value>) -> Result<Option<String>, ApiError> {
    if let Some(raw) = headers.get(header::AUTHORIZATION) {
        let raw = raw.to_str().map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
        if let Some(token) = raw.strip_prefix("Bearer ") {
            return Ok(Some(token.trim().to_owned()));
        }
        if let Some(encoded) = raw.strip_prefix("Basic ") {
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
    key: Option<String>,
    scope: Scope,
) -> Result<Principal, ApiError> {
    let key = key.ok_or_else(|| {
        ApiError::unauthorized("no API key: send it as HTTP Basic user name, a Bearer token, or writeKey")
    })?;
    let now = (state.clock)();
    let digest = keys::digest(&key);
    let cached = {
        let checked = state.checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        checked.get(&digest).filter(|(_, at)| now - *at < state.config.key_cache).map(|(p, _)| p.clone())
    };
    let principal = match cached {
        Some(p) => p,
        None => {
            let p = keys::check(state.store.as_ref(), &key)
                .await?
                .ok_or_else(|| ApiError::unauthorized("the API key is unknown or revoked"))?;
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
