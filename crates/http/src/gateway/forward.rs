//! One request through the gateway: its model's chat flow
//! ([`sluice_practice::PracticeModel::prepare`]: the router check and the trim its switches ask
//! for), then the call, whole or streamed, in the wire format that fits.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sluice_core::{Message, Role};
use sluice_practice::chat::Refusal;
use sluice_practice::provider::{ChatRequest, ProviderKind, RawObject, WireRequest, translate};

use crate::server::error::Code;
use crate::server::state::AppState;

use super::reply::{render, stream};
use super::{Chat, DEFAULT_MAX_TOKENS, Failure, TURNS_DROPPED, Wire, relay};

/// Checks, trims and forwards one request; answers in `wire`.
///
/// A request in the wire format its provider speaks goes upstream as the
/// client wrote it (see [`WireRequest`]); across wire formats its fields are
/// mapped ([`sluice_practice::provider::translate`]); to a local model, or from
/// the v1 wire, only the fields [`ChatRequest`] carries, and any other field
/// the wire format defines is refused rather than dropped.
pub(super) async fn forward(
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
    // The tool definitions are part of the prompt the model sees: what they
    // take is not left to the history (counted only when the model trims).
    let reserved = || i64::from(max_tokens) + tool_tokens(&configured.model, &raw) as i64;
    let router = state.practice().and_then(|p| p.router());
    let trim = match configured.prepare(router.map(|r| &**r), &chat.messages, reserved) {
        Ok(trim) => trim,
        Err(refusal @ Refusal::Blocked(_)) => {
            return Failure::new(wire, Code::FORBIDDEN, format!("Forbidden: {refusal}"))
                .into_response();
        }
        Err(refusal) => {
            return Failure::new(wire, Code::CONTEXT_EXCEEDED, refusal.to_string()).into_response();
        }
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
            relay::call(&configured, request, wire, chat.model.clone()).await
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
                stream(&configured, request, wire, chat.model.clone()).await
            } else {
                match configured.call(&request).await {
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
