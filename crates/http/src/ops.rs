//! The operational endpoints, served without prefix, auth or limits:
//! liveness, readiness, metrics and the OpenAPI document; and the answers for
//! a path that is no route and a route called with the wrong method.

use axum::extract::State;
use axum::http::{Method, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::server::error::{ApiError, Code, Success};
use crate::server::state::AppState;

/// `GET /healthz`: the process is up and serving.
pub(crate) async fn healthz() -> Success<serde_json::Value> {
    Success(serde_json::json!({ "healthy": true }))
}

/// How long `/readyz` waits for the database before calling it unreachable:
/// a balancer's check has its own timeout, and a slow answer is a failed one.
const READY_DB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /readyz`: whether this replica should get traffic: not draining, and
/// (with a practice store) the database answers and is at the schema version
/// this build knows. `50300` with the reason otherwise.
pub(crate) async fn readyz(
    State(state): State<AppState>,
) -> Result<Success<serde_json::Value>, ApiError> {
    let unavailable = |why: String| {
        Err(ApiError::new(
            Code::UNAVAILABLE,
            format!("not ready: {why}"),
        ))
    };
    if state.is_draining() {
        return unavailable("shutting down".into());
    }
    if let Some(practice) = state.practice() {
        let wanted = sluice_practice::SCHEMA_VERSION;
        match tokio::time::timeout(READY_DB_TIMEOUT, practice.store().schema_version()).await {
            Ok(Ok(version)) if version == wanted => {}
            Ok(Ok(version)) => {
                return unavailable(format!(
                    "the database is at schema version {version}, this build needs {wanted}"
                ));
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: the database cannot be read");
                return unavailable("the database cannot be read".into());
            }
            Err(_) => return unavailable("the database does not answer".into()),
        }
    }
    Ok(Success(serde_json::json!({ "ready": true })))
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(),
    )
        .into_response();
    response.extensions_mut().insert(Code::OK);
    response
}

/// `GET /openapi.json`.
pub(crate) async fn openapi(State(state): State<AppState>) -> Response {
    let chat_models = state
        .practice()
        .map(|p| p.model_names().collect::<Vec<_>>())
        .unwrap_or_default();
    let document = crate::openapi::document_for(state.profiles().names(), chat_models);
    let mut response = crate::server::error::json_response(axum::http::StatusCode::OK, &document);
    response.extensions_mut().insert(Code::OK);
    response
}

/// Any path that is not a route: `40400`.
pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        Code::NOT_FOUND,
        format!("Not found: no route for {method} {}", uri.path()),
    )
}

/// A route with the wrong method: `40500`.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        Code::METHOD_NOT_ALLOWED,
        format!("Method not allowed: {method} {}", uri.path()),
    )
}
