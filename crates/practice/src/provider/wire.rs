//! What both wire formats share: messages as sent, what a stream event means,
//! what an error body says, and reading a JSON answer.

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde::Deserialize;

use super::error::ProviderError;

pub(super) fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// What one stream event means.
#[derive(Debug, PartialEq)]
pub(super) enum StreamStep {
    /// Text to append and forward.
    Delta(String),
    /// Nothing to forward (role-only chunks, usage, keep-alives).
    Continue,
    /// The end of the answer.
    Done,
}

/// A message as sent upstream: both formats take role and content alike.
#[derive(serde::Serialize)]
pub(super) struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
}

pub(super) fn wire_messages(messages: &[sluice_core::Message]) -> Vec<WireMessage<'_>> {
    messages
        .iter()
        .map(|m| WireMessage {
            role: m.role.as_str(),
            content: &m.content,
        })
        .collect()
}

/// What an error body says, in whichever shape the upstream used: OpenAI's
/// `{"error":{"message","type","code"}}`, CLOVA's `{"status":{"code","message"}}`,
/// FastAPI's `{"detail": "..."}`, a bare `{"message"}` or plain text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Fault {
    pub(super) message: String,
    /// The machine-readable codes found (`type` and `code`), space-separated.
    pub(super) code: Option<String>,
}

impl Fault {
    pub(super) fn from_body(body: &[u8]) -> Self {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Fault {
                message: preview(&String::from_utf8_lossy(body)),
                code: None,
            };
        };
        let text = |value: &serde_json::Value| match value {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let error = json.get("error");
        let message = [
            error.and_then(|e| e.get("message")),
            error,
            json.get("status").and_then(|s| s.get("message")),
            json.get("message"),
            json.get("detail"),
        ]
        .into_iter()
        .flatten()
        .find_map(text)
        .unwrap_or_else(|| preview(&json.to_string()));
        let codes: Vec<String> = [
            error.and_then(|e| e.get("type")),
            error.and_then(|e| e.get("code")),
            json.get("status").and_then(|s| s.get("code")),
            json.get("code"),
        ]
        .into_iter()
        .flatten()
        .filter_map(text)
        .collect();
        Fault {
            message,
            code: (!codes.is_empty()).then(|| codes.join(" ")),
        }
    }

    /// A 429 that says the quota or credit is used up: waiting seconds will not
    /// help, so it is not retried.
    pub(super) fn is_quota_exhausted(&self) -> bool {
        let says_quota = |s: &str| s.to_ascii_lowercase().contains("quota");
        says_quota(&self.message) || self.code.as_deref().is_some_and(says_quota)
    }
}

/// Reads a JSON document, mapping any failure to [`ProviderError::BadResponse`].
pub(super) fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ProviderError> {
    serde_json::from_slice(body).map_err(|e| {
        ProviderError::bad_response(format!(
            "{e}; the body starts: {}",
            preview(&String::from_utf8_lossy(body))
        ))
    })
}

/// The first characters of an upstream text, for error messages.
pub(super) fn preview(text: &str) -> String {
    const MAX: usize = 200;
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
