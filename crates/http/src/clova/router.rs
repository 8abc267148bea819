//! The router: a query (with its chat history) classified into a domain, and
//! that domain's content and safety filters run.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::Uri;
use serde::Serialize;
use sluice_router::{Explanation, RouteRequest, RouteResult};

use crate::server::error::{ApiError, Code, Success};
use crate::server::extract::ApiJson;
use crate::server::state::AppState;

use super::{bool_query, cpu, text_bytes};

#[derive(Debug, Serialize)]
pub(crate) struct RouteResponse {
    /// The router API's result fields.
    #[serde(flatten)]
    result: RouteResult,
    /// With `?explain=true`: scores, the runner-up, every rule that fired (ours).
    #[serde(skip_serializing_if = "Option::is_none")]
    explanation: Option<Explanation>,
}

/// `POST /v1/routers/{router-id}/versions/{version}/route[?explain=true]`.
pub(crate) async fn route(
    State(state): State<AppState>,
    params: Result<Path<(String, String)>, PathRejection>,
    uri: Uri,
    ApiJson(req): ApiJson<RouteRequest>,
) -> Result<Success<RouteResponse>, ApiError> {
    let (id, version) = params
        .map(|Path(p)| p)
        .map_err(|e| ApiError::new(Code::NOT_FOUND, format!("Not found: {}", e.body_text())))?;
    let version = version
        .parse::<u32>()
        .ok()
        .filter(|&v| v >= 1)
        .ok_or_else(|| {
            ApiError::invalid(format!("version must be an integer >= 1, got {version:?}"))
        })?;
    let explain = bool_query(&uri, "explain")?;
    let router = match state.routers().get(&id, version, state.profiles()) {
        Ok(router) => router,
        Err(crate::server::routers::Missing::NotFound(e)) => return Err(e.into()),
        Err(crate::server::routers::Missing::Invalid(e)) => return Err(e.into()),
    };
    let size = req.query.len() + text_bytes(&req.chat_history);
    let routed = cpu(size, move || {
        if explain {
            router
                .route_explained(&req)
                .map(|r| (r.result, Some(r.explanation)))
        } else {
            router.route(&req).map(|r| (r, None))
        }
    })
    .await??;
    state
        .metrics()
        .add_tokens("route", routed.0.usage.prompt_tokens);
    Ok(Success(RouteResponse {
        result: routed.0,
        explanation: routed.1,
    }))
}
