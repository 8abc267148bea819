//! The OpenAI-compatible wire format: `POST {base}/chat/completions`.

use serde::{Deserialize, Serialize};

use super::sse::Event;
use super::wire::{StreamStep, WireMessage, parse_json, wire_messages};
use super::{ChatReply, ChatRequest, ProviderError, TokenUsage};

/// The endpoint under the API base (which already ends in `/v1` or similar).
pub(super) fn endpoint(base: &str) -> String {
    format!("{base}/chat/completions")
}

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    temperature: f64,
    top_p: f64,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    /// Without it a stream carries no token counts at all.
    include_usage: bool,
}

/// The JSON body of a request.
pub(super) fn request_body(model: &str, request: &ChatRequest, stream: bool) -> Vec<u8> {
    let body = Body {
        model,
        messages: wire_messages(&request.messages),
        temperature: request.temperature,
        top_p: request.top_p,
        max_tokens: request.max_tokens,
        seed: request.seed,
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
    };
    // Strings, numbers and booleans always serialize.
    serde_json::to_vec(&body).expect("a chat request serializes")
}

#[derive(Deserialize)]
struct Completion {
    id: Option<String>,
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    /// `null` when the model wrote nothing visible (all its budget went to
    /// reasoning, say): an empty answer, not a broken one.
    content: Option<String>,
}

#[derive(Deserialize)]
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

/// Reads a whole (non-streamed) answer.
pub(super) fn parse_reply(body: &[u8]) -> Result<ChatReply, ProviderError> {
    let completion: Completion = parse_json(body)?;
    let Some(choice) = completion.choices.into_iter().next() else {
        return Err(ProviderError::bad_response("the answer has no choices"));
    };
    let Some(usage) = completion.usage else {
        return Err(ProviderError::bad_response("the answer has no usage"));
    };
    Ok(ChatReply {
        text: choice.message.content.unwrap_or_default(),
        usage: usage.into(),
        finish_reason: choice.finish_reason,
        upstream_id: completion.id,
        attempts: 0,
    })
}

#[derive(Deserialize)]
struct Chunk {
    id: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    usage: Option<Usage>,
    /// vLLM and LiteLLM report a failure mid-stream this way.
    error: Option<StreamError>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct StreamError {
    #[serde(default)]
    message: String,
    code: Option<serde_json::Value>,
}

/// What a stream has said so far, besides its text.
#[derive(Debug, Default)]
pub(super) struct StreamState {
    id: Option<String>,
    finish_reason: Option<String>,
    usage: Option<TokenUsage>,
    done: bool,
}

impl StreamState {
    /// Reads one `data:` chunk.
    pub(super) fn event(&mut self, event: &Event) -> Result<StreamStep, ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(StreamStep::Done);
        }
        if data.is_empty() {
            return Ok(StreamStep::Continue);
        }
        let chunk: Chunk = parse_json(data.as_bytes())?;
        if let Some(error) = chunk.error {
            // An HTTP-like code says which side failed; otherwise the stream is
            // simply not what was promised.
            let status = error
                .code
                .as_ref()
                .and_then(serde_json::Value::as_u64)
                .and_then(|code| u16::try_from(code).ok())
                .filter(|code| (400..=599).contains(code));
            return Err(match status {
                Some(status) => ProviderError::from_status(status, error.message),
                None => {
                    ProviderError::bad_response(format!("error in the stream: {}", error.message))
                }
            });
        }
        if chunk.id.is_some() {
            self.id = chunk.id;
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
        }
        let Some(choice) = chunk.choices.into_iter().next() else {
            return Ok(StreamStep::Continue);
        };
        if choice.finish_reason.is_some() {
            self.finish_reason = choice.finish_reason;
        }
        Ok(match choice.delta.content {
            Some(delta) => StreamStep::Delta(delta),
            None => StreamStep::Continue,
        })
    }

    /// Whether what was read makes a whole answer: `[DONE]` or a finish reason.
    pub(super) fn is_complete(&self) -> bool {
        self.done || self.finish_reason.is_some()
    }

    /// The reply once the stream has ended, `text` being the deltas forwarded.
    pub(super) fn finish(self, text: String) -> Result<ChatReply, ProviderError> {
        if !self.is_complete() {
            return Err(ProviderError::bad_response(
                "the stream ended before [DONE] and without a finish reason",
            ));
        }
        if self.usage.is_none() {
            // Servers that ignore `stream_options` send no counts. The text has
            // already been shown, so it is kept rather than failed.
            tracing::debug!("the stream carried no usage; counting zero tokens");
        }
        Ok(ChatReply {
            text,
            usage: self.usage.unwrap_or_default(),
            finish_reason: self.finish_reason,
            upstream_id: self.id,
            attempts: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(data: &str) -> Event {
        Event {
            name: None,
            data: data.to_string(),
        }
    }

    #[test]
    fn a_stream_of_chunks() {
        let mut state = StreamState::default();
        let steps: Vec<_> = [
            r#"{"id":"c1","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#,
            "[DONE]",
        ]
        .into_iter()
        .map(|d| state.event(&data(d)).unwrap())
        .collect();
        assert_eq!(
            steps,
            [
                StreamStep::Continue,
                StreamStep::Delta("Hi".into()),
                StreamStep::Continue,
                StreamStep::Continue,
                StreamStep::Done
            ]
        );
        let reply = state.finish("Hi".into()).unwrap();
        assert_eq!(reply.usage.total_tokens, 4);
        assert_eq!(reply.finish_reason.as_deref(), Some("stop"));
        assert_eq!(reply.upstream_id.as_deref(), Some("c1"));
    }

    #[test]
    fn an_error_chunk() {
        let mut state = StreamState::default();
        let error = state
            .event(&data(r#"{"error":{"message":"overloaded","code":503}}"#))
            .unwrap_err();
        assert_eq!(error.status(), Some(503));
        assert!(StreamState::default().finish(String::new()).is_err());
    }
}
