//! The endpoints: each converts a request to a library call and the result (or the
//! library's error) to the envelope. No business logic lives here.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{Method, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sluice_core::{Message, TrimReport, WireMessage};
use sluice_router::{Explanation, RouteRequest, RouteResult};

use crate::error::{ApiError, Code, Success};
use crate::extract::ApiJson;
use crate::state::AppState;

/// `maxTokens` when a request leaves it out, as the hosted API documents.
pub const DEFAULT_MAX_TOKENS: i64 = 100;

/// Inputs with up to this many bytes of text are counted on the async worker;
/// larger ones go to the blocking pool, so that one huge history cannot stall the
/// other requests on its worker (uncached counting runs at roughly 10-50 MB/s).
const INLINE_TEXT_BYTES: usize = 16 * 1024;

fn text_bytes<M: AsRef<Message>>(messages: &[M]) -> usize {
    messages.iter().map(|m| m.as_ref().content.len()).sum()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SlidingRequest {
    #[serde(default = "default_max_tokens", deserialize_with = "integral_number")]
    max_tokens: i64,
    messages: Vec<WireMessage>,
}

/// An integer, also spelled with a fraction of zero (`100.0`): JSON Schema's
/// `"type": "integer"`, which the OpenAPI document uses, admits both.
fn integral_number<'de, D: serde::Deserializer<'de>>(de: D) -> Result<i64, D::Error> {
    use serde::de::{Error, Unexpected};
    let n = match serde_json::Value::deserialize(de)? {
        serde_json::Value::Number(n) => n,
        other => {
            let unexpected = match &other {
                serde_json::Value::Bool(b) => Unexpected::Bool(*b),
                serde_json::Value::String(s) => Unexpected::Str(s),
                serde_json::Value::Array(_) => Unexpected::Seq,
                serde_json::Value::Object(_) => Unexpected::Map,
                _ => Unexpected::Unit,
            };
            return Err(D::Error::invalid_type(unexpected, &"an integer"));
        }
    };
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    if let Some(u) = n.as_u64() {
        return Err(D::Error::invalid_value(
            Unexpected::Unsigned(u),
            &"an integer in range",
        ));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(f as i64),
        Some(f) if f.fract() == 0.0 => Err(D::Error::invalid_value(
            Unexpected::Float(f),
            &"an integer in range",
        )),
        Some(f) => Err(D::Error::invalid_type(Unexpected::Float(f), &"an integer")),
        None => Err(D::Error::custom("maxTokens: expected an integer")),
    }
}

fn default_max_tokens() -> i64 {
    DEFAULT_MAX_TOKENS
}

#[derive(Debug, Serialize)]
pub(crate) struct SlidingResult {
    /// The adjusted history (CLOVA's field): each kept message exactly as it
    /// came, unknown fields included.
    messages: Vec<WireMessage>,
    /// What was removed and why (ours).
    report: TrimReport,
}

#[derive(Debug, Deserialize)]
pub(crate) struct TokenizeRequest {
    messages: Vec<WireMessage>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TokenizeResult {
    /// Each message as it came, with its `count` added (CLOVA's field).
    messages: Vec<Box<RawValue>>,
    /// Tokens of the reply prefix, counted once per prompt (ours).
    reply: usize,
    /// The prompt's size: all counts plus `reply` (ours).
    total: usize,
}

/// The `{modelName}` of a path (with or without the app id the hosted API
/// puts after it).
fn path_param(
    params: Result<Path<std::collections::HashMap<String, String>>, PathRejection>,
) -> Result<String, ApiError> {
    let params = params
        .map(|Path(p)| p)
        .map_err(|e| ApiError::new(Code::NOT_FOUND, format!("Not found: {}", e.body_text())))?;
    params
        .get("modelName")
        .cloned()
        .ok_or_else(|| ApiError::new(Code::NOT_FOUND, "Not found: no model name in the path"))
}

/// The boolean query parameter `name` (`false` when absent): `true` or
/// `false`, as the OpenAPI document's `{"type": "boolean"}` says; any other
/// value is `40001`. The last occurrence wins.
pub(crate) fn bool_query(uri: &Uri, name: &str) -> Result<bool, ApiError> {
    let mut value = false;
    for pair in uri.query().unwrap_or_default().split('&') {
        let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
        if key != name {
            continue;
        }
        value = match raw {
            "true" => true,
            "false" => false,
            _ => {
                let shown: String = raw.chars().take(32).collect();
                return Err(ApiError::invalid(format!(
                    "query parameter `{name}` must be true or false, got {shown:?}"
                )));
            }
        };
    }
    Ok(value)
}

/// Runs CPU-bound work inline for small inputs (`text_bytes`), on the blocking
/// pool otherwise.
async fn cpu<T: Send + 'static>(
    text_bytes: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    if text_bytes <= INLINE_TEXT_BYTES {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)
}

/// `POST /v1/api-tools/sliding/chat-messages/{modelName}`.
pub(crate) async fn sliding(
    State(state): State<AppState>,
    model: Result<Path<std::collections::HashMap<String, String>>, PathRejection>,
    uri: Uri,
    ApiJson(req): ApiJson<SlidingRequest>,
) -> Result<Success<SlidingResult>, ApiError> {
    let model = state.profiles().model(&path_param(model)?)?;
    // The hosted v1 endpoint documents three roles; `tool` (with its call)
    // is accepted too, as the OpenAPI document says: a request's validity does
    // not depend on a query flag. `?tools=true` is kept for older clients and
    // changes nothing; a value other than true or false is 40001.
    bool_query(&uri, "tools")?;
    let max_tokens = req.max_tokens;
    let messages = req.messages;
    let (messages, trim) = cpu(text_bytes(&messages), move || {
        let trim = model.trim(&messages, max_tokens);
        (messages, trim)
    })
    .await?;
    let trim = trim?;
    let report = trim.report().clone();
    state.metrics().add_tokens("sliding", report.tokens_after);
    state
        .metrics()
        .add_trimmed(report.messages_dropped, report.turns_dropped);
    Ok(Success(SlidingResult {
        messages: trim.apply(messages),
        report,
    }))
}

/// `POST /v1/api-tools/chat-tokenize/{modelName}`.
pub(crate) async fn tokenize(
    State(state): State<AppState>,
    model: Result<Path<std::collections::HashMap<String, String>>, PathRejection>,
    ApiJson(req): ApiJson<TokenizeRequest>,
) -> Result<Success<TokenizeResult>, ApiError> {
    let model = state.profiles().model(&path_param(model)?)?;
    if req.messages.is_empty() {
        return Err(ApiError::invalid("messages must not be empty"));
    }
    let messages = req.messages;
    let (messages, counts) = cpu(text_bytes(&messages), move || {
        let counts = model.count(&messages);
        (messages, counts)
    })
    .await?;
    state.metrics().add_tokens("tokenize", counts.total);
    Ok(Success(TokenizeResult {
        messages: messages
            .into_iter()
            .zip(counts.per_message)
            .map(|(message, count)| message.json_with_count(count))
            .collect(),
        reply: counts.reply,
        total: counts.total,
    }))
}

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
        Err(crate::routers::Missing::NotFound(e)) => return Err(e.into()),
        Err(crate::routers::Missing::Invalid(e)) => return Err(e.into()),
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
    let mut response = crate::error::json_response(axum::http::StatusCode::OK, &document);
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
