//! Forwarding a chat-completions request in its provider's own wire format, as
//! the client wrote it: every field the client sent goes upstream byte for byte
//! (tools, `response_format`, `stop`, `n`, fields sluice has never heard of),
//! and every field of the answer comes back. Sluice replaces only what it owns:
//!
//! - the model: OpenAI's `model` becomes the provider's upstream model id
//!   (CLOVA names the model in the path);
//! - the messages: those the caller keeps ([`WireRequest::keep_messages`],
//!   after auto-trim), each byte for byte;
//! - the maximum: every one of `max_tokens` / `max_completion_tokens`
//!   (`maxTokens` / `maxCompletionTokens`) the client set becomes the clamped
//!   value; with none set, the one the model takes is added.
//!
//! The answer is checked as a normal call checks it (an error envelope under
//! HTTP 200 is still an error; a stream must end properly) and handed back
//! whole, or event by event.

use serde_json::value::RawValue;
use tokio::sync::mpsc::Sender;
use tokio::time::Instant;

use super::raw::RawObject;
use super::read;
use super::retry::Failure;
use super::wire::{StreamStep, is_event_stream};
use super::{Provider, ProviderError, ProviderKind, clova, openai, sse};

/// A chat-completions request in the wire format of the provider it goes to,
/// kept as the client wrote it.
#[derive(Debug, Clone)]
pub struct WireRequest {
    wire: ProviderKind,
    /// The client's body, `messages` included (replaced when sent).
    body: RawObject,
    /// The client's messages, each as written.
    messages: Vec<Box<RawValue>>,
    /// Which of `messages` go upstream.
    kept: Vec<usize>,
    max_tokens: Option<u32>,
    stream: bool,
    request_id: Option<String>,
}

/// The fields that carry the maximum, in each wire format.
fn max_fields(wire: ProviderKind) -> [&'static str; 2] {
    match wire {
        ProviderKind::Clova => ["maxCompletionTokens", "maxTokens"],
        _ => ["max_completion_tokens", "max_tokens"],
    }
}

impl WireRequest {
    /// `body` in `wire`'s format (OpenAI or CLOVA); its `messages` must be an
    /// array. `stream` asks for an SSE answer: for OpenAI it should match the
    /// body's `stream`, CLOVA asks with the `Accept` header.
    pub fn new(wire: ProviderKind, body: RawObject, stream: bool) -> Result<Self, String> {
        if wire == ProviderKind::Local {
            return Err("a local model takes no wire request".into());
        }
        let messages: Vec<Box<RawValue>> = match body.parse("messages") {
            Some(Ok(messages)) => messages,
            _ => return Err("Invalid parameter: messages must be an array".into()),
        };
        Ok(Self {
            wire,
            kept: (0..messages.len()).collect(),
            messages,
            body,
            max_tokens: None,
            stream,
            request_id: None,
        })
    }

    /// The wire format.
    pub fn wire(&self) -> ProviderKind {
        self.wire
    }

    /// The client's body as written (the messages all there).
    pub fn body(&self) -> &RawObject {
        &self.body
    }

    /// The client's messages, each as written.
    pub fn messages(&self) -> &[Box<RawValue>] {
        &self.messages
    }

    /// Sends only the messages at `indices` (ascending), as auto-trim keeps them.
    pub fn keep_messages(&mut self, indices: impl IntoIterator<Item = usize>) {
        self.kept = indices
            .into_iter()
            .filter(|&i| i < self.messages.len())
            .collect();
    }

    /// The maximum sent (see the module documentation); without one, the
    /// client's fields go as written.
    pub fn set_max_tokens(&mut self, max_tokens: u32) {
        self.max_tokens = Some(max_tokens);
    }

    /// Sent to CLOVA Studio as `X-NCP-CLOVASTUDIO-REQUEST-ID`.
    pub fn set_request_id(&mut self, id: impl Into<String>) {
        self.request_id = Some(id.into());
    }

    /// Whether an SSE answer is asked for.
    pub fn stream(&self) -> bool {
        self.stream
    }

    /// The body sent to a provider whose upstream model id is `upstream_model`.
    pub fn to_body(&self, upstream_model: &str) -> String {
        let mut body = self.body.clone();
        if self.wire == ProviderKind::Openai {
            body.insert("model", upstream_model);
        }
        let kept: Vec<&RawValue> = self.kept.iter().map(|&i| &*self.messages[i]).collect();
        body.insert("messages", &kept);
        if let Some(max) = self.max_tokens {
            let set: Vec<&str> = max_fields(self.wire)
                .into_iter()
                .filter(|field| body.get(field).is_some_and(|v| v.get() != "null"))
                .collect();
            if set.is_empty() {
                let field = match self.wire {
                    ProviderKind::Clova if clova::wants_max_completion_tokens(upstream_model) => {
                        "maxCompletionTokens"
                    }
                    ProviderKind::Clova => "maxTokens",
                    _ => "max_tokens",
                };
                body.insert(field, &max);
            }
            for field in set {
                body.insert(field, &max);
            }
        }
        body.to_json()
    }
}

/// One event of a streamed answer, as the upstream wrote it: OpenAI's `data:`
/// chunks (no name), CLOVA's `token` and `result` events. The end markers
/// (`[DONE]`, CLOVA's `signal`) are not passed on: the stream's end is the
/// call's return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireEvent {
    /// The `event:` field.
    pub name: Option<String>,
    /// The `data:` field.
    pub data: String,
}

/// A forwarded call's answer.
#[derive(Debug, Clone)]
pub enum WireAnswer {
    /// A whole answer (also when a stream was asked for and the server ignored
    /// that): the upstream's body, every field as written.
    Whole(RawObject),
    /// The answer went out as [`WireEvent`]s.
    Streamed,
}

impl Provider {
    /// Sends `request` (in this provider's wire format) upstream with this
    /// model's deadline, concurrency limit and retries, and returns the answer
    /// as the upstream wrote it. With `events` and a streamed request, each
    /// event is sent there as it arrives.
    pub async fn forward(
        &self,
        request: &WireRequest,
        events: Option<&Sender<WireEvent>>,
    ) -> Result<WireAnswer, ProviderError> {
        if request.wire != self.config.provider {
            return Err(ProviderError::Transport {
                message: format!(
                    "a {} request cannot go to the {} provider {:?}",
                    request.wire, self.config.provider, self.name
                ),
            });
        }
        let events = events.filter(|_| request.stream);
        let started = Instant::now();
        let deadline = started + std::time::Duration::from_millis(self.config.timeout_ms);
        let outcome = tokio::time::timeout_at(
            deadline,
            self.in_slot_with_retries(deadline, |attempt| {
                self.forward_attempt(request, events, attempt)
            }),
        )
        .await;
        let result = match outcome {
            Ok(Ok((answer, _attempts))) => Ok(answer),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(ProviderError::Timeout {
                after_ms: self.config.timeout_ms,
            }),
        };
        if let Err(error) = &result {
            tracing::warn!(model = %self.name, kind = error.kind(), elapsed_ms = started.elapsed().as_millis(), %error, "forwarded chat completion failed");
        }
        result
    }

    async fn forward_attempt(
        &self,
        request: &WireRequest,
        events: Option<&Sender<WireEvent>>,
        attempt: u32,
    ) -> Result<WireAnswer, Failure> {
        tracing::debug!(model = %self.name, attempt, stream = request.stream, url = %self.endpoint, "forwarding upstream");
        let body = request.to_body(&self.upstream_model).into_bytes();
        let response = self
            .send(body, request.stream, request.request_id.as_deref())
            .await?;
        match events {
            Some(events) if is_event_stream(response.headers()) => {
                self.relay(response, events).await?;
                Ok(WireAnswer::Streamed)
            }
            _ => {
                let body = read::body(response, read::Limits::of(&self.config)).await?;
                read::check_utf8(&body).map_err(Failure::fatal)?;
                // Checked as a normal call checks it; the body goes back as written.
                match self.config.provider {
                    ProviderKind::Clova => clova::parse_reply(&body),
                    _ => openai::parse_reply(&body),
                }
                .map_err(Failure::fatal)?;
                let whole = RawObject::from_slice(&body)
                    .map_err(|e| Failure::fatal(ProviderError::bad_response(e.to_string())))?;
                Ok(WireAnswer::Whole(whole))
            }
        }
    }

    /// Passes an SSE answer on event by event, checking it as it goes (an error
    /// event fails the call) and that it ends as the wire format says.
    async fn relay(
        &self,
        response: reqwest::Response,
        events: &Sender<WireEvent>,
    ) -> Result<(), Failure> {
        use futures_util::StreamExt;
        // Under the model's reading limits, as every other reply (read.rs): a
        // line past `max_line_bytes` or a stream past `max_stream_bytes` ends
        // the call, so an upstream cannot make sluice hold more than that.
        let limits = read::Limits::of(&self.config);
        let mut check = Check::new(self.config.provider, limits);
        let mut parser = limits.sse_parser();
        let mut parsed = Vec::new();
        let mut read_bytes = 0;
        let mut body = response.bytes_stream();
        loop {
            let next = body.next().await;
            let body_ended = next.is_none();
            let refusal = match next {
                Some(chunk) => {
                    let chunk = chunk.map_err(Failure::from_body_error)?;
                    limits
                        .count_stream(&mut read_bytes, &chunk)
                        .map_err(Failure::fatal)?;
                    parser.feed(&chunk, &mut parsed)
                }
                // Some servers close without the final blank line.
                None => parser.finish(&mut parsed),
            };
            for event in parsed.drain(..) {
                if check.event(&event).map_err(Failure::fatal)? {
                    // A receiver that went away does not make the answer unwanted.
                    // Waits for room: a client that does not read holds the
                    // upstream back instead of filling memory.
                    let _ = events
                        .send(WireEvent {
                            name: event.name,
                            data: event.data,
                        })
                        .await;
                }
                if check.ended {
                    return check.finish().map_err(Failure::fatal);
                }
            }
            // Events completed before a refusal were passed on: they are real.
            refusal.map_err(|r| Failure::fatal(limits.refused(r)))?;
            if body_ended {
                break;
            }
        }
        check.finish().map_err(Failure::fatal)
    }
}

/// Checks a relayed stream with the wire format's own decoder.
struct Check {
    decoder: Decoder,
    limits: read::Limits,
    /// Bytes of answer text so far, held to `max_reply_bytes` as every reply is.
    text: u64,
    /// The end marker came (or the body ended).
    ended: bool,
}

enum Decoder {
    Openai(openai::StreamState),
    Clova(clova::StreamState),
}

impl Check {
    fn new(kind: ProviderKind, limits: read::Limits) -> Self {
        let decoder = match kind {
            ProviderKind::Clova => Decoder::Clova(clova::StreamState::default()),
            _ => Decoder::Openai(openai::StreamState::default()),
        };
        Self {
            decoder,
            limits,
            text: 0,
            ended: false,
        }
    }

    /// Reads one event; `true` when it is passed on (not an end marker).
    fn event(&mut self, event: &sse::Event) -> Result<bool, ProviderError> {
        let step = match &mut self.decoder {
            Decoder::Openai(state) => state.event(event)?,
            Decoder::Clova(state) => state.event(event)?,
        };
        match step {
            StreamStep::Done => {
                self.ended = true;
                return Ok(false);
            }
            StreamStep::Delta(delta) => {
                self.text += delta.len() as u64;
                self.limits.check_reply(self.text)?;
            }
            StreamStep::Continue => {}
        }
        // CLOVA's keep-alive and other signals are the transport's, not the answer's.
        Ok(event.name.as_deref() != Some("signal"))
    }

    fn finish(self) -> Result<(), ProviderError> {
        let complete = match &self.decoder {
            Decoder::Openai(state) => state.is_complete(),
            Decoder::Clova(state) => state.is_complete(),
        };
        if complete {
            Ok(())
        } else {
            Err(ProviderError::bad_response(
                "the stream ended before the answer was complete",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_owned_fields_change() {
        let text = r#"{"model":"gpt","messages":[{"role":"system","content":"s"},{"role":"user", "content":"a"},{"role":"user","content":"b" }],"tools":[{"type":"function","function":{"name":"f","parameters":{"x":1.50}}}],"max_tokens":9999,"n":2}"#;
        let mut request = WireRequest::new(
            ProviderKind::Openai,
            RawObject::from_json(text).unwrap(),
            false,
        )
        .unwrap();
        request.keep_messages([0, 2]);
        request.set_max_tokens(100);
        assert_eq!(
            request.to_body("upstream-id"),
            r#"{"model":"upstream-id","messages":[{"role":"system","content":"s"},{"role":"user","content":"b" }],"tools":[{"type":"function","function":{"name":"f","parameters":{"x":1.50}}}],"max_tokens":100,"n":2}"#
        );
        let text = r#"{"messages":[],"topK":0,"thinking":{"effort":"low"}}"#;
        let mut request = WireRequest::new(
            ProviderKind::Clova,
            RawObject::from_json(text).unwrap(),
            true,
        )
        .unwrap();
        request.set_max_tokens(64);
        assert_eq!(
            request.to_body("HCX-007"),
            r#"{"messages":[],"topK":0,"thinking":{"effort":"low"},"maxCompletionTokens":64}"#
        );
        assert_eq!(
            request.to_body("HCX-005"),
            r#"{"messages":[],"topK":0,"thinking":{"effort":"low"},"maxTokens":64}"#
        );
    }
}
