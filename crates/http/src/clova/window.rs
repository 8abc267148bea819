//! The sliding window and the token calculator: a history trimmed to fit a
//! model's context, and every message's token count.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::Uri;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sluice_core::{TrimReport, WireMessage};

use crate::server::error::{ApiError, Success};
use crate::server::extract::ApiJson;
use crate::server::state::AppState;

use super::{bool_query, cpu, path_param, text_bytes};

/// `maxTokens` when a request leaves it out, as the hosted API documents.
pub const DEFAULT_MAX_TOKENS: i64 = 100;

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
