//! Signing in to the dashboard: Argon2id password hashes, sessions kept as
//! a hash of a random cookie token, and a CSRF token on every form.
//!
//! The session cookie is `HttpOnly` and `SameSite=Lax` (plus `Secure` when
//! the server is told it sits behind HTTPS); every POST must carry the
//! session's CSRF token, compared in constant time. The sign-in form, which
//! has no session yet, uses a double-submit cookie instead.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use keel_core::Timestamp;
use keel_store::{SessionRow, UserRow};
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use crate::AppState;

/// The session cookie.
pub const SESSION_COOKIE: &str = "keel_session";
/// The sign-in form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "keel_login_csrf";
/// How long a session lasts.
pub const SESSION_DAYS: i64 = 14;

/// The roles a dashboard user may have.
pub const ROLES: [&str; 3] = ["admin", "leader", "csm"];

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("hashing the password: {0}")]
pub struct HashError(String);

/// An Argon2id PHC string of `password`, with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let salt = SaltString::encode_b64(&bytes).map_err(|e| HashError(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches the stored hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A random URL-safe token of 32 bytes.
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Equal in constant time (for tokens of equal length).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A cookie of the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value; `max_age` 0 deletes the cookie.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age: i64) -> String {
    let secure = if state.config.secure_cookies { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Who.
    pub user: UserRow,
    /// The session's CSRF token, for the page's forms.
    pub csrf: String,
}

impl Viewer {
    /// Leaders and admins see the whole workspace; a CSM their own book.
    pub fn sees_everything(&self) -> bool {
        self.user.role != "csm"
    }
}

/// The viewer of a request with a live session.
pub async fn viewer(state: &AppState, headers: &HeaderMap) -> Result<Option<Viewer>, keel_store::StoreError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    let found = state.store.session(&digest(token), (state.clock)()).await?;
    Ok(found.map(|(s, user)| Viewer { user, csrf: s.csrf }))
}

/// Starts a session for `user`: the cookie token to set.
pub async fn start_session(state: &AppState, user: &UserRow) -> Result<String, keel_store::StoreError> {
    let now: Timestamp = (state.clock)();
    let token = token();
    let session = SessionRow {
        token_hash: digest(&token),
        user_id: user.id,
        csrf: self::token(),
        created_at: now,
        expires_at: now + chrono::Duration::days(SESSION_DAYS),
    };
    state.store.create_session(&session).await?;
    Ok(token)
}

/// Ends the request's session, if it has one.
pub async fn end_session(state: &AppState, headers: &HeaderMap) -> Result<(), keel_store::StoreError> {
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        state.store.delete_session(&digest(token), (state.clock)()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_hash_and_nothing_else() {
        let stored = hash_password("correct horse").unwrap_or_default();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &stored));
        assert!(!verify_password("correct horse ", &stored));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(hash_password("correct horse").unwrap_or_default(), stored, "salted");
    }

    #[test]
    fn cookies_are_found_by_name_and_tokens_compared_whole() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; keel_session=abc; b=2".parse().unwrap_or_else(|_| unreachable!()));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
        assert_ne!(token(), token());
    }
}
