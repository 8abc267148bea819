//! Chat completions through sluice: CLOVA Studio's `/v3/chat-completions/{model}`
//! and `/v1/chat-completions/{model}`, and the OpenAI-compatible
//! `/v1/openai/chat/completions` and `/v1/chat/completions`, forwarded to the
//! provider configured for the model (`[models.NAME]`), streaming included,
//! answered in the wire format the client spoke. Per model, `auto_trim` trims
//! the history with the sliding window first (the header
//! `X-Sluice-Turns-Dropped` says how many turns went) and `route_check` has the
//! router check the last user message first.
//!
//! Also here: the access-token flow (`GET /v1/auth/token`) and the v3 token
//! calculator (the v1 calculator under v3's path).
//!
//! Here: the handlers and what they share (the wire formats, failures).
//! `parse` reads a request, `forward` hands it to the chat flow that practice
//! runs use too ([`sluice_practice::chat`]: the router check, the trim, the
//! provider call), `reply` answers in the client's wire format, and `relay`
//! passes a provider's own wire answer through when the client spoke the same
//! one. Only the wire formats are this module's own.

use std::collections::HashMap;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sluice_core::Message;
use sluice_practice::provider::{ProviderError, ProviderKind, RawObject};

use crate::server::error::{ApiError, Code, Success};
use crate::server::extract::ApiJson;
use crate::server::state::AppState;

mod forward;
mod parse;
mod relay;
mod reply;

use forward::forward;
use parse::{parse_clova, parse_openai};

/// The response header that says how many turns `auto_trim` dropped.
pub const TURNS_DROPPED: HeaderName = HeaderName::from_static("x-sluice-turns-dropped");

/// CLOVA Studio's request id header, passed on upstream.
const REQUEST_ID: &str = "x-ncp-clovastudio-request-id";

/// Answer length when a request names none (clamped to the model's profile).
const DEFAULT_MAX_TOKENS: u32 = 512;

/// Which wire format a client spoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// CLOVA Studio v3: camelCase, the envelope, SSE `token`/`result` events.
    ClovaV3,
    /// CLOVA Studio v1 (HCX-003 era): the envelope with `inputLength`/`outputLength`/`stopReason`.
    ClovaV1,
    /// OpenAI chat completions: snake_case, `choices`, `data:` chunks and `[DONE]`.
    OpenAi,
}

impl Wire {
    /// The provider wire format of the same spelling (v1 is read as v3).
    fn kind(self) -> ProviderKind {
        match self {
            Wire::OpenAi => ProviderKind::Openai,
            Wire::ClovaV3 | Wire::ClovaV1 => ProviderKind::Clova,
        }
    }
}

/// A chat-completions request, whatever its wire format.
#[derive(Debug, Clone)]
struct Chat {
    model: String,
    messages: Vec<Message>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    max_tokens: Option<u32>,
    seed: Option<u64>,
    stream: bool,
}

/// A failure, answered in the client's wire format.
struct Failure {
    wire: Wire,
    code: Code,
    message: String,
}

impl Failure {
    fn new(wire: Wire, code: Code, message: impl Into<String>) -> Self {
        Self {
            wire,
            code,
            message: message.into(),
        }
    }

    fn upstream(wire: Wire, e: &ProviderError) -> Self {
        let code = match e {
            ProviderError::Timeout { .. } => Code::TIMEOUT,
            ProviderError::RateLimited { .. } => Code::TOO_MANY_REQUESTS,
            ProviderError::Upstream4xx { .. } => Code::INVALID_PARAMETER,
            _ => Code::BAD_GATEWAY,
        };
        Self::new(wire, code, format!("upstream {}: {e}", e.kind()))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self.wire {
            // OpenAI answers an unknown model with 404 `model_not_found`, and
            // clients branch on exactly that.
            Wire::OpenAi if self.code == Code::MODEL_NOT_FOUND => {
                let body = json!({"error": {"message": self.message, "type": "invalid_request_error",
                                            "param": "model", "code": "model_not_found"}});
                (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
            }
            Wire::OpenAi => {
                let status = self.code.http_status();
                let kind = match status.as_u16() {
                    401 => "authentication_error",
                    404 => "not_found_error",
                    429 => "rate_limit_error",
                    400..=499 => "invalid_request_error",
                    _ => "api_error",
                };
                let body =
                    json!({"error": {"message": self.message, "type": kind, "code": self.code.0}});
                (status, axum::Json(body)).into_response()
            }
            Wire::ClovaV3 | Wire::ClovaV1 => ApiError::new(self.code, self.message).into_response(),
        }
    }
}

/// The model name of a path (`{modelName}`, with or without a trailing app id).
fn path_model(
    params: Result<Path<HashMap<String, String>>, PathRejection>,
) -> Result<String, ApiError> {
    params
        .ok()
        .and_then(|Path(p)| p.get("modelName").cloned())
        .ok_or_else(|| ApiError::new(Code::NOT_FOUND, "Not found: no model name in the path"))
}

/// `POST /v3/chat-completions/{modelName}` (CLOVA Studio v3).
pub(crate) async fn clova_v3(
    State(state): State<AppState>,
    params: Result<Path<HashMap<String, String>>, PathRejection>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RawObject>,
) -> Response {
    clova(state, params, headers, body, Wire::ClovaV3).await
}

/// `POST /v1/chat-completions/{modelName}` (CLOVA Studio v1).
pub(crate) async fn clova_v1(
    State(state): State<AppState>,
    params: Result<Path<HashMap<String, String>>, PathRejection>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<RawObject>,
) -> Response {
    clova(state, params, headers, body, Wire::ClovaV1).await
}

async fn clova(
    state: AppState,
    params: Result<Path<HashMap<String, String>>, PathRejection>,
    headers: HeaderMap,
    raw: RawObject,
    wire: Wire,
) -> Response {
    let model = match path_model(params) {
        Ok(model) => model,
        Err(e) => return e.into_response(),
    };
    let stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    // The typed reading checks the fields sluice reads; `raw` is what goes upstream.
    let body: Value = serde_json::from_str(&raw.to_json()).unwrap_or(Value::Null);
    let request_id = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match parse_clova(&body, model, stream) {
        Ok(chat) => forward(&state, chat, wire, raw, request_id).await,
        Err(message) => Failure::new(wire, Code::INVALID_PARAMETER, message).into_response(),
    }
}

/// `POST /v1/openai/chat/completions` and `POST /v1/chat/completions`.
pub(crate) async fn openai(State(state): State<AppState>, body: Bytes) -> Response {
    let bytes = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&body);
    let body: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            let words = sluice_core::describe_json_error(&String::from_utf8_lossy(&body), &e, "");
            return Failure::new(
                Wire::OpenAi,
                Code::MALFORMED,
                format!("malformed JSON: {words}"),
            )
            .into_response();
        }
    };
    let raw = match RawObject::from_slice(bytes) {
        Ok(raw) => raw,
        Err(e) => {
            return Failure::new(
                Wire::OpenAi,
                Code::INVALID_PARAMETER,
                format!("Invalid parameter: the body must be a JSON object: {e}"),
            )
            .into_response();
        }
    };
    match parse_openai(&body) {
        Ok(chat) => forward(&state, chat, Wire::OpenAi, raw, None).await,
        Err(message) => {
            Failure::new(Wire::OpenAi, Code::INVALID_PARAMETER, message).into_response()
        }
    }
}

/// `GET /v1/auth/token[?existingToken=true]`: an access token for the key the
/// request presented (the auth layer has checked it), with its expiry.
pub(crate) async fn auth_token(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Success<Value>, ApiError> {
    let Some(key) = crate::server::auth::presented_key(&headers) else {
        return Err(ApiError::new(
            Code::UNAUTHORIZED,
            "Unauthorized: a token is issued for an API key: send it as `Authorization: Bearer <key>`",
        ));
    };
    if key.starts_with(crate::server::tokens::TOKEN_PREFIX) {
        return Err(ApiError::new(
            Code::UNAUTHORIZED,
            "Unauthorized: a token is issued for an API key, not for another token",
        ));
    }
    let existing = match query.get("existingToken").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            let shown: String = other.chars().take(32).collect();
            return Err(ApiError::invalid(format!(
                "query parameter `existingToken` must be true or false, got {shown:?}"
            )));
        }
    };
    let issued = state.tokens().issue(key, existing).await.map_err(|e| {
        tracing::error!(error = %e, "cannot issue an access token");
        ApiError::new(Code::UNAVAILABLE, "the token store is unavailable")
    })?;
    let time = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    Ok(Success(json!({
        "token": issued.token,
        "accessToken": issued.token,
        "createdAt": time(issued.created_at),
        "expiresAt": time(issued.expires_at),
    })))
}

/// `POST /v3/api-tools/chat-tokenize/{modelName}`: the same calculator as v1,
/// whose messages already take content as a string, `null` or text parts.
pub(crate) async fn tokenize_v3(
    state: State<AppState>,
    params: Result<Path<HashMap<String, String>>, PathRejection>,
    body: ApiJson<crate::clova::window::TokenizeRequest>,
) -> Result<Success<crate::clova::window::TokenizeResult>, ApiError> {
    crate::clova::tokenize(state, params, body).await
}
