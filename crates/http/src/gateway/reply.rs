//! Answering in the client's wire format: a whole reply, or a stream of
//! events that begins only with the first delta.

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sluice_practice::PracticeModel;
use sluice_practice::provider::{ChatReply, ChatRequest};

use crate::server::error::Code;

use super::{Failure, Wire};

pub(super) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A whole reply in the client's format.
pub(super) fn render(wire: Wire, model: &str, reply: &ChatReply) -> Value {
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
pub(super) async fn stream(
    configured: &PracticeModel,
    request: ChatRequest,
    wire: Wire,
    model: String,
) -> Response {
    // Both bounded: a client that reads slowly holds the upstream back (its
    // answer is read no faster than it is sent on) instead of filling memory.
    let mut streamed = configured.stream(request, STREAM_IN_FLIGHT);
    let (out_tx, mut out_rx) =
        tokio::sync::mpsc::channel::<Result<Event, Infallible>>(STREAM_IN_FLIGHT);
    // `None`: the call ended without a single delta.
    let first = streamed.next().await;
    let early = if first.is_none() {
        match streamed.finish().await {
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
                    next = streamed.next() => match next {
                        Some(text) => text,
                        None => break,
                    },
                    // The client went away (the response body was dropped):
                    // dropping `streamed` stops the model instead of letting
                    // it generate, and bill, an answer nobody reads.
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
            None => streamed.finish().await,
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
