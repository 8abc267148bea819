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

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sluice_core::{Message, Role};
use sluice_practice::PracticeModel;
use sluice_practice::provider::{
    ChatReply, ChatRequest, ProviderError, ProviderKind, RawObject, WireRequest, translate,
};
use sluice_router::RouteRequest;

use crate::error::{ApiError, Code, Success};
use crate::extract::ApiJson;
use crate::state::AppState;

mod relay;

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

fn number(body: &Value, keys: &[&str]) -> Result<Option<f64>, String> {
    for key in keys {
        match body.get(*key) {
            None | Some(Value::Null) => {}
            Some(v) => {
                return v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| format!("Invalid parameter: {key} must be a number"));
            }
        }
    }
    Ok(None)
}

/// The first of `keys` that is set, each checked whether it is used or not
/// (`maxCompletionTokens` wins over `maxTokens`, but a `maxTokens` of the wrong
/// type is still an error).
fn count(body: &Value, keys: &[&str]) -> Result<Option<u64>, String> {
    let mut first = None;
    for key in keys {
        match body.get(*key) {
            None | Some(Value::Null) => {}
            Some(v) => {
                // `64.0` is 64, as the sliding window reads `maxTokens`.
                let whole = v.as_u64().or_else(|| {
                    v.as_f64()
                        .filter(|f| f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(f))
                        .map(|f| f as u64)
                });
                let n = whole.ok_or_else(|| {
                    format!("Invalid parameter: {key} must be a non-negative integer")
                })?;
                first = first.or(Some(n));
            }
        }
    }
    Ok(first)
}

/// The messages of a chat request, in either format, read as the sliding
/// window and the token calculators read them (`sluice_core::Message`): content
/// a string, `null` or text parts, tool fields in either spelling; errors name
/// the field, in the same words.
fn parse_messages(body: &Value) -> Result<Vec<Message>, String> {
    let items = body
        .get("messages")
        .filter(|m| m.as_array().is_some_and(|a| !a.is_empty()))
        .ok_or("Invalid parameter: messages must be a non-empty array")?;
    serde_path_to_error::deserialize(items).map_err(|e| {
        let path = format!("messages{}", e.path());
        // The body is an object: the words are about the field at `path`.
        let words = sluice_core::describe_json_error("{", e.inner(), &path);
        format!("Invalid parameter: {words}")
    })
}

/// The JSON types a forwarded field may have.
#[derive(Clone, Copy)]
enum Shape {
    Integer,
    Number,
    Object,
    /// A list of strings; with `or_string`, a single string too.
    Strings {
        or_string: bool,
    },
    /// A list of `{"type": "function", "function": {"name": ...}}`.
    Tools,
}

/// Checks the type of each field sluice documents but forwards as written, so
/// that a wrong one is refused here, naming it, as the OpenAPI document says.
fn check_shapes(body: &Value, fields: &[(&str, Shape)]) -> Result<(), String> {
    for (key, shape) in fields {
        let Some(value) = body.get(*key).filter(|v| !v.is_null()) else {
            continue;
        };
        let strings = |v: &Value| v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        let ok = match shape {
            Shape::Integer => value.is_i64() || value.is_u64(),
            Shape::Number => value.is_number(),
            Shape::Object => value.is_object(),
            Shape::Strings { or_string } => strings(value) || (*or_string && value.is_string()),
            Shape::Tools => value.as_array().is_some_and(|tools| {
                tools
                    .iter()
                    .all(|t| t["type"] == "function" && t["function"]["name"].is_string())
            }),
        };
        if !ok {
            let what = match shape {
                Shape::Integer => "an integer",
                Shape::Number => "a number",
                Shape::Object => "an object",
                Shape::Strings { or_string: false } => "a list of strings",
                Shape::Strings { or_string: true } => "a string or a list of strings",
                Shape::Tools => "a list of {\"type\": \"function\", \"function\": {\"name\": ...}}",
            };
            return Err(format!("Invalid parameter: {key} must be {what}"));
        }
    }
    Ok(())
}

fn parse_clova(body: &Value, model: String, stream: bool) -> Result<Chat, String> {
    check_shapes(
        body,
        &[
            ("topK", Shape::Integer),
            ("repetitionPenalty", Shape::Number),
            ("stop", Shape::Strings { or_string: false }),
            ("tools", Shape::Tools),
            ("responseFormat", Shape::Object),
            ("thinking", Shape::Object),
        ],
    )?;
    Ok(Chat {
        model,
        messages: parse_messages(body)?,
        temperature: number(body, &["temperature"])?,
        top_p: number(body, &["topP"])?,
        max_tokens: count(body, &["maxCompletionTokens", "maxTokens"])?
            .map(|m| m.min(u64::from(u32::MAX)) as u32),
        seed: count(body, &["seed"])?,
        stream,
    })
}

fn parse_openai(body: &Value) -> Result<Chat, String> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or("Invalid parameter: model is required")?
        .to_string();
    check_shapes(
        body,
        &[
            ("tools", Shape::Tools),
            ("response_format", Shape::Object),
            ("stop", Shape::Strings { or_string: true }),
            ("n", Shape::Integer),
            ("stream_options", Shape::Object),
        ],
    )?;
    if body["n"].as_i64().is_some_and(|n| !(1..=16).contains(&n)) {
        return Err("Invalid parameter: n must be between 1 and 16".into());
    }
    Ok(Chat {
        model,
        messages: parse_messages(body)?,
        temperature: number(body, &["temperature"])?,
        top_p: number(body, &["top_p"])?,
        max_tokens: count(body, &["max_completion_tokens", "max_tokens"])?
            .map(|m| m.min(u64::from(u32::MAX)) as u32),
        seed: count(body, &["seed"])?,
        stream: match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("Invalid parameter: stream must be true or false".into()),
        },
    })
}

/// Checks, trims and forwards one request; answers in `wire`.
///
/// A request in the wire format its provider speaks goes upstream as the
/// client wrote it (see [`WireRequest`]); across wire formats its fields are
/// mapped ([`sluice_practice::provider::translate`]); to a local model, or from
/// the v1 wire, only the fields [`ChatRequest`] carries, and any other field
/// the wire format defines is refused rather than dropped.
async fn forward(
    state: &AppState,
    chat: Chat,
    wire: Wire,
    raw: RawObject,
    request_id: Option<String>,
) -> Response {
    let Some(configured) = state.practice().and_then(|p| p.model(&chat.model)).cloned() else {
        return Failure::new(
            wire,
            Code::MODEL_NOT_FOUND,
            format!(
                "Model not found: {:?} is not configured on this server ([models.NAME])",
                chat.model
            ),
        )
        .into_response();
    };
    let config = configured.provider.config();
    let max_tokens = chat
        .max_tokens
        .unwrap_or(DEFAULT_MAX_TOKENS)
        .clamp(1, configured.model.profile().max_output);
    if config.route_check {
        if let Some(blocked) = route_check(state, &chat.messages) {
            return Failure::new(wire, Code::FORBIDDEN, blocked).into_response();
        }
    }
    let trim = if config.auto_trim {
        // The tool definitions are part of the prompt the model sees: what
        // they take is not left to the history.
        let reserved = i64::from(max_tokens) + tool_tokens(&configured.model, &raw) as i64;
        match configured.model.trim(&chat.messages, reserved) {
            Ok(trim) => Some(trim),
            Err(e) => {
                return Failure::new(wire, Code::CONTEXT_EXCEEDED, e.to_string()).into_response();
            }
        }
    } else {
        None
    };
    let dropped = trim.as_ref().map(|t| t.report().turns_dropped);
    let mut response = match (wire, config.provider) {
        (Wire::OpenAi | Wire::ClovaV3, ProviderKind::Openai | ProviderKind::Clova) => {
            let body = match translate::request(wire.kind(), config.provider, &raw, chat.stream) {
                Ok(body) => body,
                Err(message) => {
                    return Failure::new(wire, Code::INVALID_PARAMETER, message).into_response();
                }
            };
            let mut request = match WireRequest::new(config.provider, body, chat.stream) {
                Ok(request) => request,
                Err(message) => {
                    return Failure::new(wire, Code::INVALID_PARAMETER, message).into_response();
                }
            };
            if let Some(trim) = &trim {
                request.keep_messages(trim.kept_indices());
            }
            request.set_max_tokens(max_tokens);
            if let Some(id) = request_id {
                request.set_request_id(id);
            }
            relay::call(configured, request, wire, chat.model.clone()).await
        }
        _ => {
            if let Err(message) = only_typed_fields(wire, &raw, config.provider) {
                return Failure::new(wire, Code::INVALID_PARAMETER, message).into_response();
            }
            let messages = match &trim {
                Some(trim) => trim.apply(chat.messages.clone()),
                None => chat.messages.clone(),
            };
            let request = ChatRequest {
                messages,
                temperature: chat
                    .temperature
                    .unwrap_or(sluice_practice::prompt::DEFAULT_TEMPERATURE),
                top_p: chat.top_p.unwrap_or(sluice_practice::prompt::DEFAULT_TOP_P),
                max_tokens,
                seed: chat.seed,
                request_id,
            };
            if chat.stream {
                stream(configured, request, wire, chat.model.clone()).await
            } else {
                match configured.provider.chat(&request).await {
                    Ok(reply) => (
                        StatusCode::OK,
                        axum::Json(render(wire, &chat.model, &reply)),
                    )
                        .into_response(),
                    Err(e) => Failure::upstream(wire, &e).into_response(),
                }
            }
        }
    };
    if let Some(dropped) = dropped {
        response
            .headers_mut()
            .insert(TURNS_DROPPED, HeaderValue::from(dropped as u64));
    }
    response
}

/// Tokens of a request's tool definitions under `model`'s profile: counted
/// as one more system message holding their JSON, which is how chat templates
/// (ChatML's among them) put tools before the conversation.
fn tool_tokens(model: &sluice_core::Model, raw: &RawObject) -> usize {
    match raw.parse::<Value>("tools") {
        Some(Ok(tools)) if tools.as_array().is_some_and(|t| !t.is_empty()) => {
            model.count_message(&Message::new(Role::System, tools.to_string()))
        }
        _ => 0,
    }
}

/// Why the router blocks the last user message, if it does.
fn route_check(state: &AppState, messages: &[Message]) -> Option<String> {
    let router = state.practice().and_then(|p| p.router())?;
    let last_user = messages.iter().rev().find(|m| m.role == Role::User)?;
    if last_user.content.trim().is_empty() {
        return None;
    }
    let routed = router
        .route(&RouteRequest::new(last_user.content.as_str()))
        .ok()?;
    let hits: Vec<String> = routed
        .blocked_content
        .result
        .iter()
        .chain(&routed.safety.result)
        .cloned()
        .collect();
    (!hits.is_empty()).then(|| {
        format!(
            "Forbidden: the request was blocked by the router (domain {:?}: {})",
            routed.domain.result,
            hits.join(", ")
        )
    })
}

/// The fields [`ChatRequest`] carries, per wire format: what the typed path
/// (a local model, the v1 wire) can forward.
fn typed_fields(wire: Wire) -> &'static [&'static str] {
    match wire {
        Wire::OpenAi => &[
            "model",
            "messages",
            "temperature",
            "top_p",
            "max_tokens",
            "max_completion_tokens",
            "seed",
            "stream",
        ],
        Wire::ClovaV3 | Wire::ClovaV1 => &[
            "messages",
            "temperature",
            "topP",
            "maxTokens",
            "maxCompletionTokens",
            "seed",
        ],
    }
}

/// A request for the typed path may carry only [`typed_fields`]: any other
/// field is named in a 400 rather than dropped.
fn only_typed_fields(wire: Wire, raw: &RawObject, provider: ProviderKind) -> Result<(), String> {
    let allowed = typed_fields(wire);
    let extra: Vec<&str> = raw
        .iter()
        .filter(|(key, value)| !allowed.contains(key) && value.get() != "null")
        .map(|(key, _)| key)
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    let route = match wire {
        Wire::ClovaV1 => "the v1 chat-completions route".to_string(),
        _ => format!("a {provider} model"),
    };
    Err(format!(
        "Invalid parameter: {} cannot be forwarded to {route}, which takes only {}",
        extra.join(", "),
        allowed.join(", ")
    ))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A whole reply in the client's format.
fn render(wire: Wire, model: &str, reply: &ChatReply) -> Value {
    let u = &reply.usage;
    match wire {
        Wire::ClovaV3 => json!({
            "status": {"code": Code::OK.0, "message": "OK"},
            "result": {
                "created": now_secs() * 1000,
                "message": {"role": "assistant", "content": reply.text},
                "finishReason": reply.finish_reason.as_deref().unwrap_or("stop"),
                "usage": {"promptTokens": u.prompt_tokens, "completionTokens": u.completion_tokens, "totalTokens": u.total_tokens}
            }
        }),
        Wire::ClovaV1 => json!({
            "status": {"code": Code::OK.0, "message": "OK"},
            "result": {
                "message": {"role": "assistant", "content": reply.text},
                "inputLength": u.prompt_tokens,
                "outputLength": u.completion_tokens,
                "stopReason": match reply.finish_reason.as_deref() {
                    Some("length") => "length",
                    _ => "stop_before",
                },
            }
        }),
        Wire::OpenAi => json!({
            "id": reply.upstream_id.clone().unwrap_or_else(|| format!("chatcmpl-sluice-{}", now_secs())),
            "object": "chat.completion",
            "created": now_secs(),
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": reply.finish_reason.as_deref().unwrap_or("stop"),
            }],
            "usage": {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "total_tokens": u.total_tokens}
        }),
    }
}

/// Deltas, and events, a streamed reply may hold ahead of its client.
pub(super) const STREAM_IN_FLIGHT: usize = 16;

/// A streamed reply: CLOVA `token` events then `result` (and `signal` `[DONE]`),
/// or OpenAI `chat.completion.chunk` data lines then `[DONE]`.
///
/// Nothing is sent until the first delta arrives, so a call that fails before
/// it (refused, timed out, rate limited, a garbage answer: retries included)
/// is answered with its error status in the client's format, as a blocking
/// call would be; only a failure after the stream began is an `error` event
/// (CLOVA) or an error chunk (OpenAI) at the end of a 200 stream.
async fn stream(
    configured: PracticeModel,
    request: ChatRequest,
    wire: Wire,
    model: String,
) -> Response {
    // Both bounded: a client that reads slowly holds the upstream back (its
    // answer is read no faster than it is sent on) instead of filling memory.
    let (tokens_tx, mut tokens_rx) = tokio::sync::mpsc::channel::<String>(STREAM_IN_FLIGHT);
    let (out_tx, mut out_rx) =
        tokio::sync::mpsc::channel::<Result<Event, Infallible>>(STREAM_IN_FLIGHT);
    let mut call = Call(tokio::spawn(async move {
        configured.provider.chat_stream(&request, tokens_tx).await
    }));
    // `None`: the call ended (it drops the sender) without a single delta.
    let first = tokens_rx.recv().await;
    let early = if first.is_none() {
        let outcome = (&mut call.0).await.unwrap_or_else(|e| {
            Err(ProviderError::Transport {
                message: format!("the call failed: {e}"),
            })
        });
        match outcome {
            Err(e) => return Failure::upstream(wire, &e).into_response(),
            Ok(reply) => Some(reply),
        }
    } else {
        None
    };
    tokio::spawn(async move {
        let id = format!("chatcmpl-sluice-{}", now_secs());
        let mut pending = first;
        loop {
            let text = match pending.take() {
                Some(text) => text,
                None => tokio::select! {
                    next = tokens_rx.recv() => match next {
                        Some(text) => text,
                        None => break,
                    },
                    // The client went away (the response body was dropped):
                    // dropping `call` stops the model instead of letting it
                    // generate, and bill, an answer nobody reads.
                    () = out_tx.closed() => return,
                },
            };
            let event = match wire {
                Wire::OpenAi => Event::default().data(
                    json!({"id": id, "object": "chat.completion.chunk", "created": now_secs(), "model": model,
                           "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": null}]})
                    .to_string(),
                ),
                _ => Event::default()
                    .event("token")
                    .data(json!({"message": {"role": "assistant", "content": text}}).to_string()),
            };
            if out_tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        let outcome = match early {
            Some(reply) => Ok(reply),
            None => (&mut call.0).await.unwrap_or_else(|e| {
                Err(ProviderError::Transport {
                    message: format!("the call failed: {e}"),
                })
            }),
        };
        let last: Vec<Event> = match (wire, outcome) {
            (Wire::OpenAi, Ok(reply)) => {
                let u = reply.usage;
                vec![
                    Event::default().data(
                        json!({"id": id, "object": "chat.completion.chunk", "created": now_secs(), "model": model,
                               "choices": [{"index": 0, "delta": {}, "finish_reason": reply.finish_reason.as_deref().unwrap_or("stop")}],
                               "usage": {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "total_tokens": u.total_tokens}})
                        .to_string(),
                    ),
                    Event::default().data("[DONE]"),
                ]
            }
            (Wire::OpenAi, Err(e)) => {
                let failure = Failure::upstream(wire, &e);
                vec![
                    Event::default().data(json!({"error": {"message": failure.message, "type": "api_error", "code": failure.code.0}}).to_string()),
                    Event::default().data("[DONE]"),
                ]
            }
            (_, Ok(reply)) => {
                let u = reply.usage;
                vec![
                    Event::default().event("result").data(
                        json!({"message": {"role": "assistant", "content": reply.text},
                               "finishReason": reply.finish_reason.as_deref().unwrap_or("stop"),
                               "usage": {"promptTokens": u.prompt_tokens, "completionTokens": u.completion_tokens, "totalTokens": u.total_tokens}})
                        .to_string(),
                    ),
                    Event::default().event("signal").data(json!({"data": "[DONE]"}).to_string()),
                ]
            }
            (_, Err(e)) => {
                let failure = Failure::upstream(wire, &e);
                vec![
                    Event::default().event("error").data(
                        json!({"status": {"code": failure.code.0, "message": failure.message}})
                            .to_string(),
                    ),
                ]
            }
        };
        for event in last {
            let _ = out_tx.send(Ok(event)).await;
        }
    });
    let body = futures_util::stream::poll_fn(move |cx| out_rx.poll_recv(cx));
    Sse::new(body).into_response()
}

/// A model call spawned for a streamed reply, aborted when dropped: when the
/// client leaves before the first delta the handler is dropped, and after it
/// the task that forwards deltas returns, and either way the call (an upstream
/// request, or a local model generating) stops at its next await.
struct Call<T>(tokio::task::JoinHandle<Result<T, ProviderError>>);

impl<T> Call<T> {
    /// The call's result, once it ends.
    async fn outcome(&mut self) -> Result<T, ProviderError> {
        (&mut self.0).await.unwrap_or_else(|e| {
            Err(ProviderError::Transport {
                message: format!("the call failed: {e}"),
            })
        })
    }
}

impl<T> Drop for Call<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The key a request presented: `Authorization: Bearer <key>`, or the legacy
/// `X-NCP-CLOVASTUDIO-API-KEY` header.
pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer)
        .or_else(|| {
            headers
                .get("x-ncp-clovastudio-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|k| !k.is_empty())
        })
}

/// `GET /v1/auth/token[?existingToken=true]`: an access token for the key the
/// request presented (the auth layer has checked it), with its expiry.
pub(crate) async fn auth_token(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Success<Value>, ApiError> {
    let Some(key) = presented_key(&headers) else {
        return Err(ApiError::new(
            Code::UNAUTHORIZED,
            "Unauthorized: a token is issued for an API key: send it as `Authorization: Bearer <key>`",
        ));
    };
    if key.starts_with(crate::tokens::TOKEN_PREFIX) {
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
    body: ApiJson<crate::handlers::TokenizeRequest>,
) -> Result<Success<crate::handlers::TokenizeResult>, ApiError> {
    crate::handlers::tokenize(state, params, body).await
}
