//! Answers of forwarded requests: in the client's own wire format the
//! upstream's body or events pass on as written, sluice changing only the
//! `model` of an OpenAI answer back to the name the client asked for; across
//! wire formats they are translated ([`translate`]).

use std::convert::Infallible;

use axum::http::{StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sluice_practice::PracticeModel;
use sluice_practice::provider::translate::{self, StreamTranslator};
use sluice_practice::provider::{ProviderError, RawObject, WireAnswer, WireEvent, WireRequest};

use sluice_practice::provider::ProviderKind;

use super::reply::STREAM_IN_FLIGHT;
use super::{Failure, Wire};

/// Sends `request` (in the provider's wire format) and answers in `wire`,
/// blocking or streamed as the request asks.
///
/// As for every streamed answer, nothing is sent before the first event, so a
/// call that fails before it is answered with its error status.
pub(super) async fn call(
    configured: &PracticeModel,
    request: WireRequest,
    wire: Wire,
    model: String,
) -> Response {
    let from = request.wire();
    if !request.stream() {
        return match configured.forward(&request).await {
            Ok(answer) => whole(from, wire, &model, answer),
            Err(e) => Failure::upstream(wire, &e).into_response(),
        };
    }
    // Bounded both ways, so that a client that does not read holds the
    // upstream back (TCP does the rest) instead of filling memory.
    let mut streamed = configured.forward_stream(request, STREAM_IN_FLIGHT);
    let (out_tx, mut out_rx) =
        tokio::sync::mpsc::channel::<Result<Event, Infallible>>(STREAM_IN_FLIGHT);
    let first = streamed.next().await;
    let early = match first {
        Some(_) => None,
        None => match streamed.finish().await {
            Err(e) => return Failure::upstream(wire, &e).into_response(),
            // The server ignored the request for a stream.
            Ok(answer @ WireAnswer::Whole(_)) => return whole(from, wire, &model, answer),
            Ok(WireAnswer::Streamed) => Some(Ok(WireAnswer::Streamed)),
        },
    };
    let mut translator = StreamTranslator::new(from, wire.kind(), &model);
    tokio::spawn(async move {
        let mut pending = first;
        loop {
            let event = match pending.take() {
                Some(event) => event,
                None => tokio::select! {
                    next = streamed.next() => match next {
                        Some(event) => event,
                        None => break,
                    },
                    // The client went away: dropping `streamed` stops the upstream request.
                    () = out_tx.closed() => return,
                },
            };
            for event in translator.event(event) {
                if out_tx
                    .send(Ok(render_event(wire, &model, event)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        let outcome = match early {
            Some(outcome) => outcome,
            None => streamed.finish().await,
        };
        if outcome.is_ok() {
            for event in translator.finish() {
                let _ = out_tx.send(Ok(render_event(wire, &model, event))).await;
            }
        }
        for event in closing(wire, outcome) {
            let _ = out_tx.send(Ok(event)).await;
        }
    });
    let body = futures_util::stream::poll_fn(move |cx| out_rx.poll_recv(cx));
    Sse::new(body).into_response()
}

/// A whole answer, as the upstream wrote it (in `from`'s wire format).
fn whole(from: ProviderKind, wire: Wire, model: &str, answer: WireAnswer) -> Response {
    let WireAnswer::Whole(body) = answer else {
        let e = ProviderError::BadResponse {
            message: "a stream where a whole answer was asked for".into(),
        };
        return Failure::upstream(wire, &e).into_response();
    };
    let mut body = match translate::answer(from, wire.kind(), &body, model) {
        Ok(body) => body,
        Err(e) => return Failure::upstream(wire, &e).into_response(),
    };
    if wire == Wire::OpenAi {
        body.insert("model", model);
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_json(),
    )
        .into_response()
}

/// One upstream event for the client.
fn render_event(wire: Wire, model: &str, event: WireEvent) -> Event {
    let mut out = Event::default();
    if let Some(name) = event.name {
        out = out.event(name);
    }
    let data = match (wire, RawObject::from_json(&event.data)) {
        (Wire::OpenAi, Ok(mut chunk)) if chunk.contains("model") => {
            chunk.insert("model", model);
            chunk.to_json()
        }
        _ => event.data,
    };
    out.data(data)
}

/// The stream's last events: its end marker, or the error that cut it short.
fn closing(wire: Wire, outcome: Result<WireAnswer, ProviderError>) -> Vec<Event> {
    match (wire, outcome) {
        (Wire::OpenAi, Ok(_)) => vec![Event::default().data("[DONE]")],
        (Wire::OpenAi, Err(e)) => {
            let failure = Failure::upstream(wire, &e);
            vec![
                Event::default().data(
                    json!({"error": {"message": failure.message, "type": "api_error", "code": failure.code.0}})
                        .to_string(),
                ),
                Event::default().data("[DONE]"),
            ]
        }
        (_, Ok(_)) => vec![
            Event::default()
                .event("signal")
                .data(json!({"data": "[DONE]"}).to_string()),
        ],
        (_, Err(e)) => {
            let failure = Failure::upstream(wire, &e);
            vec![Event::default().event("error").data(
                json!({"status": {"code": failure.code.0, "message": failure.message}}).to_string(),
            )]
        }
    }
}
