//! Who calls a practice route: the user of a bearer key, or of the web app's
//! session cookie.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_practice::{Practice, PracticeError, User};

use super::answer::Detail;
use crate::server::state::AppState;

/// The user of a request's bearer key, with the practice service.
pub(crate) struct Caller {
    pub(crate) practice: Practice,
    pub(crate) user: User,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(practice) = state.practice().cloned() else {
            let body = json!({"detail": "practice sessions are not enabled on this server"});
            return Err((StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response());
        };
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::server::auth::bearer);
        let Some(key) = key else {
            return cookie_caller(practice, state, parts).await;
        };
        match practice.store().authenticate(key).await {
            Ok(Some(user)) => Ok(Caller { practice, user }),
            Ok(None) => {
                // Capped like every other route's rejections: a flood of bad
                // keys must not become a flood of log lines.
                if state.request_logs().admit() {
                    tracing::warn!("rejected: invalid or revoked practice key");
                }
                Err(Detail(PracticeError::Unauthorized).into_response())
            }
            Err(e) => Err(Detail(e).into_response()),
        }
    }
}

/// The caller signed in by the web app's session cookie (no bearer key).
async fn cookie_caller(
    practice: Practice,
    state: &AppState,
    parts: &Parts,
) -> Result<Caller, Response> {
    use crate::server::session::{CookieAuth, cookie_user};
    match cookie_user(state.session_secret(), &parts.method, &parts.headers) {
        Ok(Some(user_id)) => match practice.store().user(user_id).await {
            Ok(user) => Ok(Caller { practice, user }),
            Err(PracticeError::NotFound(_)) => {
                Err(Detail(PracticeError::Unauthorized).into_response())
            }
            Err(e) => Err(Detail(e).into_response()),
        },
        Ok(None) | Err(CookieAuth::Invalid) => {
            Err(Detail(PracticeError::Unauthorized).into_response())
        }
        Err(CookieAuth::Csrf) => Err((
            StatusCode::FORBIDDEN,
            axum::Json(json!({"detail": "missing or wrong CSRF token"})),
        )
            .into_response()),
    }
}
