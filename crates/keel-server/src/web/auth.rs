//! Signing in to the dashboard: Argon2id password hashes, sessions kept as
//! a hash of a random cookie token, and a CSRF token on every form.
//!
//! The session cookie is `HttpOnly` and `SameSite=Lax` (plus `Secure` when
//! the server is told it sits behind HTTPS); every POST must carry the
//! session's CSRF token, compared in constant time. The sign-in form, which
//! has no session yet, uses a double-submit cookie instead.

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

pub use keel_app::users::{HashError, ROLES, hash_password, verify_password};

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

    /// Whether the viewer may see and work an account owned by `owner`: a
    /// CSM only their own (the roles matrix in docs/dashboard.md).
    pub fn may_see(&self, owner: Option<&str>) -> bool {
        self.sees_everything() || owner == Some(self.user.email.as_str())
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

/// Failed sign-ins an email may have within [`THROTTLE_WINDOW`] before
/// sign-in is refused for it.
pub const THROTTLE_FAILURES: usize = 5;
/// Failed sign-ins from one address (any emails) before it must wait:
/// higher than per email, as several people may sign in through one proxy.
pub const THROTTLE_FAILURES_PER_PEER: usize = 50;

/// The window failed sign-ins are counted over.
pub const THROTTLE_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Counts failed sign-ins per email, so a password cannot be guessed at the
/// server's speed: past [`THROTTLE_FAILURES`] failures in
/// [`THROTTLE_WINDOW`] the form refuses that email (right password or not)
/// until the oldest failure leaves the window. A successful sign-in clears
/// the count. Per process: behind several servers each counts its own.
pub struct Throttle {
    limit: usize,
    window: std::time::Duration,
    failures:
        std::sync::Mutex<std::collections::HashMap<String, std::collections::VecDeque<std::time::Instant>>>,
}

impl Default for Throttle {
    /// Per email: [`THROTTLE_FAILURES`] in [`THROTTLE_WINDOW`].
    fn default() -> Self {
        Self::new(THROTTLE_FAILURES, THROTTLE_WINDOW)
    }
}

impl Throttle {
    /// At most `limit` failures per key in any `window`.
    pub fn new(limit: usize, window: std::time::Duration) -> Self {
        Self { limit, window, failures: std::sync::Mutex::default() }
    }

    /// How long `email` must wait before it may try again (None: it may now).
    pub fn wait(&self, email: &str) -> Option<std::time::Duration> {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let list = map.get_mut(email)?;
        while list.front().is_some_and(|t| t.elapsed() >= self.window) {
            list.pop_front();
        }
        if list.len() < self.limit {
            return None;
        }
        list.front().map(|t| self.window.saturating_sub(t.elapsed()))
    }

    /// Counts a failed sign-in.
    pub fn failed(&self, email: &str) {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Forget emails whose failures all left the window, so the map stays small.
        if map.len() > 10_000 {
            map.retain(|_, l| l.back().is_some_and(|t| t.elapsed() < self.window));
        }
        let list = map.entry(email.to_owned()).or_default();
        list.push_back(std::time::Instant::now());
        while list.len() > self.limit {
            list.pop_front();
        }
    }

    /// Clears the count after a successful sign-in.
    pub fn succeeded(&self, email: &str) {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(email);
    }
}

#[cfg(test)]
mod throttle_tests {
    #[test]
    fn an_email_is_refused_after_five_failures_and_cleared_by_a_success() {
        let t = super::Throttle::default();
        for _ in 0..super::THROTTLE_FAILURES - 1 {
            t.failed("a@x");
        }
        assert_eq!(t.wait("a@x"), None, "four failures still may try");
        t.failed("a@x");
        let wait = t.wait("a@x").unwrap();
        assert!(wait > std::time::Duration::from_secs(14 * 60), "{wait:?}");
        assert_eq!(t.wait("b@x"), None, "another email is not affected");
        t.succeeded("a@x");
        assert_eq!(t.wait("a@x"), None);
    }
}
