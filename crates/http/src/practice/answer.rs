//! How the practice routes answer: FastAPI's conventions, a body with its
//! status, or `{"detail": ...}` for a [`PracticeError`].

use std::collections::HashMap;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use sluice_practice::validate::query_int;
use sluice_practice::{PageRequest, PracticeError};

/// The `detail` of a 503: the store is busy (SQLite's write lock held by
/// another process past the busy timeout) or out of reach (PostgreSQL
/// restarting). A turn is stored in one transaction, so a failed write left
/// nothing half-stored; the request may be sent again.
pub(crate) const STORE_UNAVAILABLE: &str = "the database is busy or unavailable; try again";

/// The `Retry-After` of a 503 from the store, in seconds.
const STORE_RETRY_AFTER: &str = "1";

/// A practice error as the original API answers it.
pub(crate) struct Detail(pub(super) PracticeError);

impl From<PracticeError> for Detail {
    fn from(e: PracticeError) -> Self {
        Self(e)
    }
}

impl Detail {
    /// The `detail` of the body the error is answered with; an internal
    /// error is logged here, and not shown.
    pub(super) fn detail(&self) -> serde_json::Value {
        match &self.0 {
            PracticeError::Validation(errors) => json!(errors),
            PracticeError::Blocked(verdict) => {
                json!({"msg": "the prompt was blocked by the router; no model was called", "blocked": verdict})
            }
            PracticeError::AllModelsFailed(errors) => {
                json!({"msg": "every model failed", "errors": errors})
            }
            PracticeError::OverBudget(refusal) => json!(refusal),
            PracticeError::Store(_) if self.0.is_unavailable() => {
                tracing::warn!(error = %self.0, "practice store unavailable");
                json!(STORE_UNAVAILABLE)
            }
            PracticeError::Store(_) | PracticeError::Corrupt(_) => {
                tracing::error!(error = %self.0, "practice store failed");
                json!("internal error")
            }
            PracticeError::Unauthorized => json!("Not authenticated"),
            other => json!(other.to_string()),
        }
    }
}

impl IntoResponse for Detail {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let detail = self.detail();
        let mut response = (status, axum::Json(json!({ "detail": detail }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if let PracticeError::OverBudget(refusal) = &self.0 {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(refusal.retry_after),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(STORE_RETRY_AFTER),
            );
        }
        response
    }
}

pub(crate) type Answer = Result<Response, Detail>;

pub(crate) fn ok<T: Serialize>(status: StatusCode, value: &T) -> Answer {
    Ok((status, axum::Json(value)).into_response())
}

pub(super) fn no_content() -> Answer {
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) fn page(query: &HashMap<String, String>) -> Result<PageRequest, PracticeError> {
    Ok(PageRequest {
        page: query_int(
            query.get("page").map(String::as_str),
            "page",
            Some(1),
            1,
            i64::MAX / 1024,
        )?,
        size: query_int(
            query.get("size").map(String::as_str),
            "size",
            Some(50),
            1,
            200,
        )?,
    })
}

pub(crate) fn optional_query_id(
    query: &HashMap<String, String>,
    name: &str,
) -> Result<Option<i64>, PracticeError> {
    query
        .get(name)
        .map(|v| query_int(Some(v), name, None, 1, i64::MAX))
        .transpose()
}

/// Both results, or every validation error of both (FastAPI reports query and
/// body errors together).
pub(crate) fn merge_errors<A, B>(
    a: Result<A, PracticeError>,
    b: Result<B, PracticeError>,
) -> Result<(A, B), PracticeError> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(PracticeError::Validation(mut x)), Err(PracticeError::Validation(y))) => {
            x.extend(y);
            Err(PracticeError::Validation(x))
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}
