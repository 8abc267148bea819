//! The practice web app: one page and its ES modules, served by `sluice serve`
//! at `/`, over the same public API as any client, signed in with a session
//! cookie instead of a bearer key.
//!
//! - [`assets`]: the embedded files, with ETags, a strict CSP and compression.
//!
//! The signed session cookie and its CSRF token live in the server core
//! (`server::session`): the practice routes accept the cookie too.

pub(crate) mod assets;

use std::time::SystemTime;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::server::session;
use crate::server::state::AppState;

pub use assets::sizes as asset_sizes;

/// The web routes: `/`, `/assets/{name}` and `/web/session` (sign in, who
/// am I, sign out). Assets are compressed with brotli or gzip as the browser
/// accepts (once, see [`assets`]).
pub(crate) fn routes() -> Router<AppState> {
    assets::warm();
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{name}", get(assets::asset))
        .route("/web/session", get(who).post(sign_in).delete(sign_out))
}

fn detail(status: StatusCode, message: &str) -> Response {
    let mut r = (status, axum::Json(json!({ "detail": message }))).into_response();
    assets::security_headers(r.headers_mut());
    r
}

/// The signed-in user and the CSRF token the page must send back.
async fn signed_in(state: &AppState, cookie: &str, user_id: i64) -> Response {
    let Some(practice) = state.practice() else {
        return detail(
            StatusCode::SERVICE_UNAVAILABLE,
            "practice sessions are not enabled on this server",
        );
    };
    match practice.store().user(user_id).await {
        Ok(user) => {
            let csrf = state.session_secret().csrf_token(cookie);
            let mut r = axum::Json(json!({"user": user, "csrf_token": csrf})).into_response();
            assets::security_headers(r.headers_mut());
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            r
        }
        Err(_) => detail(StatusCode::UNAUTHORIZED, "Not authenticated"),
    }
}

/// `GET /web/session`: who the cookie signs in, with the CSRF token; 401 when
/// signed out or expired.
async fn who(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let secret = state.session_secret();
    match session::cookie_value(&headers)
        .and_then(|c| Some((c, secret.verify(c, SystemTime::now())?)))
    {
        Some((cookie, user)) => signed_in(&state, cookie, user).await,
        None => detail(StatusCode::UNAUTHORIZED, "Not authenticated"),
    }
}

/// `POST /web/session` with `{"key": "..."}`: checks the key and sets the
/// session cookie. Only JSON is accepted, which a cross-site form cannot send.
async fn sign_in(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json_type {
        return detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the key as application/json",
        );
    }
    let key = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["key"].as_str().map(|k| k.trim().to_string()));
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            "expected {\"key\": \"<your key>\"}",
        );
    };
    let Some(practice) = state.practice() else {
        return detail(
            StatusCode::SERVICE_UNAVAILABLE,
            "practice sessions are not enabled on this server",
        );
    };
    match practice.store().authenticate(&key).await {
        Ok(Some(user)) => {
            let cookie =
                state
                    .session_secret()
                    .issue(user.id, SystemTime::now(), session::LIFETIME);
            let mut r = signed_in(&state, &cookie, user.id).await;
            r.headers_mut().insert(
                header::SET_COOKIE,
                session::set_cookie(Some(&cookie), &headers),
            );
            r
        }
        Ok(None) => {
            tracing::warn!("web sign-in rejected: invalid or revoked key");
            detail(StatusCode::UNAUTHORIZED, "invalid or revoked key")
        }
        Err(e) => crate::practice::Detail::from(e).into_response(),
    }
}

/// `DELETE /web/session`: clears the cookie. Needs the CSRF token, so another
/// site cannot sign the user out.
async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session::cookie_user(
        state.session_secret(),
        &axum::http::Method::DELETE,
        &headers,
    ) {
        Err(session::CookieAuth::Csrf) => {
            detail(StatusCode::FORBIDDEN, "missing or wrong CSRF token")
        }
        _ => {
            let mut r = StatusCode::NO_CONTENT.into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, session::set_cookie(None, &headers));
            assets::security_headers(r.headers_mut());
            r
        }
    }
}
