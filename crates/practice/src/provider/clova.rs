//! The CLOVA Studio v3 wire format: `POST {base}/v3/chat-completions/{model}`,
//! camelCase fields, and every answer in a `{"status", "result"}` envelope.

use serde::{Deserialize, Serialize};

use super::sse::Event;
use super::wire::{StreamStep, WireMessage, parse_json, wire_messages};
use super::{ChatReply, ChatRequest, ProviderError, TokenUsage};

/// Lets both sides' logs be matched; CLOVA echoes it back.
pub(super) const REQUEST_ID_HEADER: &str = "X-NCP-CLOVASTUDIO-REQUEST-ID";

/// The envelope code of success.
const OK: &str = "20000";

/// The endpoint of `model` under the API base.
pub(super) fn endpoint(base: &str, model: &str) -> String {
    format!("{base}/v3/chat-completions/{model}")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    messages: Vec<WireMessage<'a>>,
    temperature: f64,
    top_p: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
}

/// HCX-007 (a reasoning model) takes `maxCompletionTokens` and rejects
/// `maxTokens`; the other v3 models take `maxTokens`.
pub(super) fn wants_max_completion_tokens(model: &str) -> bool {
    model
        .get(..7)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("HCX-007"))
}

/// The JSON body of a request. Streaming is asked for with the `Accept` header,
/// not in the body.
pub(super) fn request_body(model: &str, request: &ChatRequest) -> Vec<u8> {
    let (max_tokens, max_completion_tokens) = if wants_max_completion_tokens(model) {
        (None, Some(request.max_tokens))
    } else {
        (Some(request.max_tokens), None)
    };
    let body = Body {
        messages: wire_messages(&request.messages),
        temperature: request.temperature,
        top_p: request.top_p,
        max_tokens,
        max_completion_tokens,
        seed: request.seed,
    };
    // Strings, numbers and booleans always serialize.
    serde_json::to_vec(&body).expect("a chat request serializes")
}

#[derive(Deserialize)]
struct Envelope {
    status: Option<Status>,
    result: Option<ResultBody>,
}

#[derive(Deserialize)]
struct Status {
    /// A string on the wire ("42900"); a number is accepted too.
    code: serde_json::Value,
    #[serde(default)]
    message: String,
}

impl Status {
    fn code(&self) -> String {
        match &self.code {
            serde_json::Value::String(code) => code.clone(),
            other => other.to_string(),
        }
    }

    /// The error this status stands for; the HTTP status is the code's first
    /// three digits.
    fn error(&self) -> ProviderError {
        let code = self.code();
        let message = if self.message.is_empty() {
            format!("code {code}")
        } else {
            format!("{} (code {code})", self.message)
        };
        match code.get(..3).and_then(|digits| digits.parse::<u16>().ok()) {
            Some(status) => ProviderError::from_status(status, message),
            None => ProviderError::bad_response(format!("unknown status: {message}")),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultBody {
    message: ResultMessage,
    finish_reason: Option<String>,
    usage: Usage,
    id: Option<String>,
}

#[derive(Deserialize)]
struct ResultMessage {
    /// `null` or absent beside `toolCalls`: no text.
    #[serde(default, deserialize_with = "null_as_empty")]
    content: String,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Option::<String>::deserialize(deserializer).map(Option::unwrap_or_default)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: Option<u64>,
}

impl From<Usage> for TokenUsage {
    fn from(usage: Usage) -> Self {
        TokenUsage {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            total_tokens: usage
                .total_tokens
                .unwrap_or(usage.prompt_tokens + usage.completion_tokens),
        }
    }
}

fn reply(result: ResultBody, text: String) -> ChatReply {
    ChatReply {
        text,
        usage: result.usage.into(),
        finish_reason: result.finish_reason,
        upstream_id: result.id,
        attempts: 0,
    }
}

/// Reads a whole (non-streamed) answer. An error envelope under HTTP 200 is
/// still an error.
pub(super) fn parse_reply(body: &[u8]) -> Result<ChatReply, ProviderError> {
    let envelope: Envelope = parse_json(body)?;
    if let Some(status) = envelope.status.as_ref().filter(|s| s.code() != OK) {
        return Err(status.error());
    }
    let Some(result) = envelope.result else {
        return Err(ProviderError::bad_response("the answer has no result"));
    };
    let text = result.message.content.clone();
    Ok(reply(result, text))
}

#[derive(Deserialize)]
struct TokenEvent {
    message: ResultMessage,
}

#[derive(Deserialize)]
struct ErrorEvent {
    status: Status,
}

/// What a stream has said so far, besides its text.
#[derive(Default)]
pub(super) struct StreamState {
    result: Option<ResultBody>,
}

impl StreamState {
    /// Whether what was read makes a whole answer: the `result` event came.
    pub(super) fn is_complete(&self) -> bool {
        self.result.is_some()
    }

    /// Reads one event: `token`, `result`, `error` or `signal`.
    pub(super) fn event(&mut self, event: &Event) -> Result<StreamStep, ProviderError> {
        match event.name.as_deref() {
            Some("token") => {
                let token: TokenEvent = parse_json(event.data.as_bytes())?;
                Ok(StreamStep::Delta(token.message.content))
            }
            // The result comes last but one: the `signal` after it ends the stream.
            Some("result") => {
                self.result = Some(parse_json(event.data.as_bytes())?);
                Ok(StreamStep::Continue)
            }
            Some("error") => {
                let error: ErrorEvent = parse_json(event.data.as_bytes())?;
                Err(error.status.error())
            }
            Some("signal") if is_done_signal(&event.data) => Ok(StreamStep::Done),
            _ => Ok(StreamStep::Continue),
        }
    }

    /// The reply once the stream has ended, `text` being the deltas forwarded.
    /// When no token event carried text, the result's message is the answer
    /// (and the reader forwards it whole).
    pub(super) fn finish(self, text: String) -> Result<ChatReply, ProviderError> {
        let Some(result) = self.result else {
            return Err(ProviderError::bad_response(
                "the stream ended without a result event",
            ));
        };
        let text = if text.is_empty() && !result.message.content.is_empty() {
            result.message.content.clone()
        } else {
            text
        };
        Ok(reply(result, text))
    }
}

/// `[DONE]`, bare or as `{"data":"[DONE]"}`.
fn is_done_signal(data: &str) -> bool {
    let data = data.trim();
    if data == "[DONE]" {
        return true;
    }
    #[derive(Deserialize)]
    struct Signal {
        data: String,
    }
    serde_json::from_str::<Signal>(data).is_ok_and(|signal| signal.data.trim() == "[DONE]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> Event {
        Event {
            name: Some(name.to_string()),
            data: data.to_string(),
        }
    }

    #[test]
    fn the_max_tokens_field_follows_the_model() {
        let request = ChatRequest {
            messages: vec![sluice_core::Message::user("hi")],
            temperature: 0.5,
            top_p: 0.8,
            max_tokens: 100,
            seed: None,
            request_id: None,
        };
        let body = |model| -> serde_json::Value {
            serde_json::from_slice(&request_body(model, &request)).unwrap()
        };
        assert_eq!(body("HCX-005")["maxTokens"], 100);
        assert!(body("HCX-005").get("maxCompletionTokens").is_none());
        assert_eq!(body("HCX-007")["maxCompletionTokens"], 100);
        assert!(body("hcx-007-x").get("maxTokens").is_none());
        assert!(body("HCX").get("maxCompletionTokens").is_none());
    }

    #[test]
    fn envelope_errors_map_to_their_http_status() {
        let error = parse_reply(br#"{"status":{"code":"42900","message":"Too many requests"}}"#)
            .unwrap_err();
        assert_eq!(error.kind(), "rate_limited");
        assert_eq!(error.status(), Some(429));
        let error = parse_reply(
            br#"{"status":{"code":40001,"message":"Invalid parameter: topK"},"result":null}"#,
        )
        .unwrap_err();
        assert_eq!(error.status(), Some(400));
        assert!(error.to_string().contains("Invalid parameter: topK"));
    }

    #[test]
    fn signals() {
        assert!(is_done_signal("[DONE]"));
        assert!(is_done_signal(r#"{"data":"[DONE]"}"#));
        assert!(!is_done_signal(r#"{"data":"keep-alive"}"#));
        let mut state = StreamState::default();
        assert_eq!(
            state.event(&event("signal", "[DONE]")).unwrap(),
            StreamStep::Done
        );
        assert!(state.finish(String::new()).is_err());
    }
}
