//! The dashboard: server-rendered HTML (maud) and plain CSS served from the
//! binary, no script needed and nothing fetched from the internet. Pages
//! read the same store and reports as the REST API; a signed-in session
//! (see [`auth`]) decides what a person sees — a CSM their own book,
//! leaders and admins the whole workspace.

mod account;
mod accounts;
mod analytics;
pub mod auth;
pub mod figures;
mod inbox;
mod journey;
mod portfolio;
mod svg;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use keel_app::format::{money, pct};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::AppState;
use auth::Viewer;

/// The dashboard's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(portfolio::page))
        .route("/accounts", get(accounts::page))
        .route("/accounts.csv", get(accounts::csv))
        .route("/accounts/{id}", get(account::page))
        .route("/inbox", get(inbox::page))
        .route("/journey", get(journey::page))
        .route("/analytics", get(analytics::page))
        .route("/inbox/{what}/{id}/{action}", post(inbox::act))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/static/keel.css", get(css))
}

const CSS: &str = include_str!("keel.css");

async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], CSS)
}

/// A page's answer when something failed on the server's side.
fn failure(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "dashboard page failed");
    let body = page_shell(
        "Something went wrong",
        None,
        html! {
            h1 { "Something went wrong" }
            p { "The server could not build this page. The log has the details." }
        },
    );
    (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
}

/// The page around every view: the navigation, who is signed in, sign out.
fn page_shell(title: &str, viewer: Option<&Viewer>, main: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · Keel" }
                    link rel="stylesheet" href="/static/keel.css";
                }
                body {
                    a.skip href="#main" { "Skip to content" }
                    header.top {
                        a.brand href="/" { "Keel" }
                        @if let Some(v) = viewer {
                            nav aria-label="Main" {
                                a href="/" aria-current=[(title == "Portfolio").then_some("page")] { "Portfolio" }
                                a href="/accounts" aria-current=[(title == "Accounts").then_some("page")] { "Accounts" }
                                a href="/inbox" aria-current=[(title == "Inbox").then_some("page")] { "Inbox" }
                                a href="/journey" aria-current=[(title == "Journey").then_some("page")] { "Journey" }
                                a href="/analytics" aria-current=[(title == "Analytics").then_some("page")] { "Analytics" }
                            }
                            div.who {
                                span { (v.user.name) " · " (v.user.role) }
                                form method="post" action="/logout" {
                                    input type="hidden" name="csrf" value=(v.csrf);
                                    button type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                    main id="main" { (main) }
                }
            }
        }
        .into_string(),
    )
}

/// Every page's first extractor: the signed-in viewer, or the answer that
/// sends them to sign in.
impl axum::extract::FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Response> {
        match auth::viewer(state, &parts.headers).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(e) => Err(failure(e)),
        }
    }
}

fn login_page(state: &AppState, email: &str, error: Option<&str>, status: StatusCode) -> Response {
    let csrf = auth::token();
    let body = page_shell(
        "Sign in",
        None,
        html! {
            section.signin {
                h1 { "Sign in to Keel" }
                @if let Some(e) = error {
                    p.error role="alert" { (e) }
                }
                form method="post" action="/login" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="email" { "Email" }
                    input id="email" name="email" type="email" autocomplete="username" required value=(email);
                    label for="password" { "Password" }
                    input id="password" name="password" type="password" autocomplete="current-password" required;
                    button type="submit" { "Sign in" }
                }
            }
        },
    );
    let cookie = auth::set_cookie(state, auth::LOGIN_COOKIE, &csrf, 3600);
    (status, [(header::SET_COOKIE, cookie)], body).into_response()
}

async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match auth::viewer(&state, &headers).await {
        Ok(Some(_)) => Redirect::to("/").into_response(),
        Ok(None) => login_page(&state, "", None, StatusCode::OK),
        Err(e) => failure(e),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    csrf: String,
}

/// A hash of no one's password: an unknown email is checked against it, so
/// it costs what a known one costs and the answer's timing tells nothing.
static NO_ONE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| auth::hash_password("no one's password").unwrap_or_default());

async fn login(
    State(state): State<AppState>,
    crate::auth::Peer(peer): crate::auth::Peer,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Ok(form) = serde_urlencoded::from_str::<LoginForm>(&body) else {
        return login_page(&state, "", Some("Fill in your email and password."), StatusCode::BAD_REQUEST);
    };
    let expected = auth::cookie(&headers, auth::LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !auth::same(expected, &form.csrf) {
        let message = "The sign-in form expired. Try again.";
        return login_page(&state, &form.email, Some(message), StatusCode::FORBIDDEN);
    }
    let email = form.email.trim().to_lowercase();
    let peer = peer.map(|ip| ip.to_string());
    let waits = [
        (state.logins.wait(&email), "for this email"),
        (peer.as_deref().and_then(|p| state.logins_by_peer.wait(p)), "from your address"),
    ];
    if let Some((wait, whose)) = waits.into_iter().filter_map(|(w, whose)| Some((w?, whose))).max() {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        tracing::warn!(email = %email, peer = peer.as_deref().unwrap_or("-"), "dashboard sign-in throttled");
        let message = format!("Too many failed sign-ins {whose}. Try again in {minutes} minutes.");
        state.metrics.sign_ins.get_or_create(&crate::metrics::label("outcome", "throttled")).inc();
        let mut page = login_page(&state, &email, Some(&message), StatusCode::TOO_MANY_REQUESTS);
        if let Ok(v) = (minutes * 60).to_string().parse() {
            page.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return page;
    }
    let user = match state.store.user_by_email(&email).await {
        Ok(u) => u,
        Err(e) => return failure(e),
    };
    // The same answer, in the same time, for an unknown email and a wrong
    // password: an unknown one is checked against a hash of no one's. The
    // check (Argon2, ~40 ms of CPU) runs off the async workers.
    let stored = user.as_ref().map_or_else(|| NO_ONE.clone(), |u| u.password_hash.clone());
    let password = form.password.clone();
    let matches =
        tokio::task::spawn_blocking(move || auth::verify_password(&password, &stored)).await.unwrap_or(false);
    state.metrics.password_checks.inc();
    let valid = user.filter(|u| matches && u.disabled_at.is_none());
    let Some(user) = valid else {
        state.logins.failed(&email);
        if let Some(p) = &peer {
            state.logins_by_peer.failed(p);
        }
        state.metrics.sign_ins.get_or_create(&crate::metrics::label("outcome", "refused")).inc();
        tracing::info!(email = %email, "dashboard sign-in refused");
        return login_page(&state, &email, Some("Wrong email or password."), StatusCode::UNAUTHORIZED);
    };
    state.logins.succeeded(&email);
    state.metrics.sign_ins.get_or_create(&crate::metrics::label("outcome", "signed_in")).inc();
    match auth::start_session(&state, &user).await {
        Ok(token) => {
            let days = auth::SESSION_DAYS * 86_400;
            let session = auth::set_cookie(&state, auth::SESSION_COOKIE, &token, days);
            let spent = auth::set_cookie(&state, auth::LOGIN_COOKIE, "", 0);
            let mut response = Redirect::to("/").into_response();
            let h = response.headers_mut();
            for c in [session, spent] {
                if let Ok(v) = c.parse() {
                    h.append(header::SET_COOKIE, v);
                }
            }
            response
        }
        Err(e) => failure(e),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// Checks a POST's CSRF token against the session's.
fn csrf_ok(viewer: &Viewer, body: &str) -> bool {
    serde_urlencoded::from_str::<CsrfForm>(body).is_ok_and(|f| auth::same(&f.csrf, &viewer.csrf))
}

/// A page a CSM may not see: another owner's account or book.
fn not_in_your_book(viewer: &Viewer, what: &str) -> Response {
    let body = page_shell(
        "Not in your book",
        Some(viewer),
        html! {
            h1 { "Not in your book" }
            p { (what) " A CSM sees and works the accounts they own; a leader sees everyone's." }
            p { a href="/accounts" { "Your accounts" } }
        },
    );
    (StatusCode::FORBIDDEN, body).into_response()
}

fn forbidden(viewer: &Viewer) -> Response {
    let body = page_shell(
        "Refused",
        Some(viewer),
        html! {
            h1 { "Refused" }
            p { "This form was not sent from a Keel page of your session. Reload the page and try again." }
        },
    );
    (StatusCode::FORBIDDEN, body).into_response()
}

async fn logout(State(state): State<AppState>, viewer: Viewer, headers: HeaderMap, body: String) -> Response {
    if !csrf_ok(&viewer, &body) {
        return forbidden(&viewer);
    }
    if let Err(e) = auth::end_session(&state, &headers).await {
        return failure(e);
    }
    let gone = auth::set_cookie(&state, auth::SESSION_COOKIE, "", 0);
    ([(header::SET_COOKIE, gone)], Redirect::to("/login")).into_response()
}

/// A page section's report, or why it cannot be shown.
type Shown<T> = Result<crate::cache::Cached<T>, String>;

/// The server's own failure behind a page, which answers it with a 500.
struct Failure(String);

impl Failure {
    fn page(self) -> Response {
        failure(self.0)
    }
}

/// A cached report for a page: the report, or (for a question the report
/// cannot answer, such as an unknown segment) what the section says instead;
/// the server's own failures are a [`Failure`].
fn shown<T>(r: Result<crate::cache::Cached<T>, keel_app::reports::ReportError>) -> Result<Shown<T>, Failure> {
    use keel_app::reports::ReportError;
    match r {
        Ok(c) => Ok(Ok(c)),
        Err(ReportError::Store(e)) => Err(Failure(e.to_string())),
        Err(ReportError::Failed(e)) => Err(Failure(e)),
        Err(ReportError::Timeline(e)) => Err(Failure(e.to_string())),
        Err(other) => Ok(Err(other.to_string())),
    }
}

/// When a cached report's figures were computed (and that newer ones are on
/// their way when it is past the cache's time to live).
fn computed<T>(c: &crate::cache::Cached<T>) -> Markup {
    html! {
        p.computed {
            "Computed " time datetime=(c.computed_at.to_rfc3339()) { (c.computed_at.format("%Y-%m-%d %H:%M UTC")) }
            @if c.stale { " · being recomputed" }
        }
    }
}
