//! Sessions and runs: who the caller is, a quick run and the next turn (whole
//! or streamed as server-sent events), stopping a streamed run, and reading,
//! changing and deleting sessions.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Serialize;
use serde_json::{Value, json};
use sluice_practice::validate::{json_body, path_id, query_int};
use sluice_practice::{
    Practice, PracticeError, RunRequest, RunResponse, SessionFilter, SessionPatch, User,
};

use super::answer::{Answer, Detail, merge_errors, no_content, ok, optional_query_id, page};
use super::backlog::Backlog;
use super::caller::Caller;
use crate::server::state::AppState;

/// Events of a streamed run that may wait for the client's connection before
/// the rest waits, coalesced, in a [`Backlog`].
const EVENTS_IN_FLIGHT: usize = 16;

pub(super) async fn me(caller: Caller) -> Answer {
    let classes = caller.practice.store().classes_of(caller.user.id).await?;
    let classes: Vec<Value> = classes
        .into_iter()
        .map(|(class, role)| json!({"class": class, "role": role}))
        .collect();
    ok(
        StatusCode::OK,
        &json!({"user": caller.user, "classes": classes}),
    )
}

/// The `started` event of a streamed run: the run's id (to stop it) and its
/// models, as the answer will list them.
#[derive(Serialize)]
struct Started {
    model_names: Vec<String>,
    run_id: i64,
}

/// The `error` event that ends a streamed run which failed after it started:
/// the status and `detail` the same failure answers with unstreamed.
#[derive(Serialize)]
struct Failed {
    detail: Value,
    status: u16,
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// Records every model call of a finished run in the metrics.
fn record_calls(state: &AppState, outcome: &Result<RunResponse, PracticeError>) {
    let metrics = state.metrics();
    match outcome {
        Ok(response) => {
            let prices = |model: &str| {
                state
                    .practice()
                    .and_then(|p| p.model(model))
                    .map_or((None, None), |m| m.provider.config().prices())
            };
            metrics.observe_class_run(
                response.class_id,
                response.results.iter().enumerate().map(|(n, r)| {
                    // A blind answer's model_name is its label: price the model.
                    let model = response.model_names.get(n).unwrap_or(&r.model_name);
                    let kind = r.error.as_ref().map_or("ok", |e| e.kind.as_str());
                    let (i, o) = (
                        r.token_usage.prompt_tokens.unwrap_or(0),
                        r.token_usage.completion_tokens.unwrap_or(0),
                    );
                    let cost = sluice_practice::budget::cost(prices(model), i, o).unwrap_or(0.0);
                    (kind, i, o, cost)
                }),
            );
            for (i, r) in response.results.iter().enumerate() {
                // A blind answer's model_name is its label: count the model.
                let model = response.model_names.get(i).unwrap_or(&r.model_name);
                let kind = r.error.as_ref().map_or("ok", |e| e.kind.as_str());
                metrics.observe_model_call(
                    model,
                    std::time::Duration::from_millis(r.latency_ms.max(0) as u64),
                    kind,
                    r.token_usage.prompt_tokens.unwrap_or(0),
                    r.token_usage.completion_tokens.unwrap_or(0),
                );
            }
        }
        Err(PracticeError::OverBudget(refusal)) => {
            metrics.observe_budget_refusal(refusal.class_id, refusal.limit.as_str());
        }
        Err(PracticeError::AllModelsFailed(errors)) => {
            for e in errors {
                // A negative latency (a clock that went back) counts as 0.
                let latency = std::time::Duration::from_millis(e.latency_ms.max(0) as u64);
                metrics.observe_model_call(&e.model_name, latency, e.error.kind.as_str(), 0, 0);
            }
        }
        Err(_) => {}
    }
}

pub(super) async fn run(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Answer {
    let class_id = query_int(
        query.get("class_id").map(String::as_str),
        "class_id",
        None,
        1,
        i64::MAX,
    );
    let request = json_body(&body).and_then(|b| RunRequest::parse(&b, false));
    let (class_id, request) = merge_errors(class_id, request)?;
    if wants_stream(&headers) {
        let runs = state.runs().clone();
        return stream(runs, caller, move |practice, user, events| async move {
            let outcome = practice.run(&user, class_id, &request, Some(events)).await;
            record_calls(&state, &outcome);
            outcome
        })
        .await;
    }
    let outcome = caller
        .practice
        .run(&caller.user, class_id, &request, None)
        .await;
    record_calls(&state, &outcome);
    ok(StatusCode::CREATED, &outcome?)
}

pub(super) async fn chat(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(session_id): Path<String>,
    body: Bytes,
) -> Answer {
    let session_id = path_id(&session_id, "session_id");
    let request = json_body(&body).and_then(|b| RunRequest::parse(&b, true));
    let (session_id, request) = merge_errors(session_id, request)?;
    if wants_stream(&headers) {
        let runs = state.runs().clone();
        return stream(runs, caller, move |practice, user, events| async move {
            let outcome = practice
                .chat(&user, session_id, &request, Some(events))
                .await;
            record_calls(&state, &outcome);
            outcome
        })
        .await;
    }
    let outcome = caller
        .practice
        .chat(&caller.user, session_id, &request, None)
        .await;
    record_calls(&state, &outcome);
    ok(StatusCode::CREATED, &outcome?)
}

/// A run streamed as server-sent events: `started` (with the `run_id` that
/// stops its models), `token` events tagged with the model, `model_done` per
/// model, then `result` with the stored response (or `error` with the detail
/// the JSON answer would carry, for a failure after the models were called).
///
/// Until the run reports that its checks passed, nothing is sent: a run that
/// fails before (not a member, session or agent not found, model not allowed,
/// blocked prompt) answers with its real status and the same JSON body as the
/// blocking request, since it created nothing.
async fn stream<F, Fut>(runs: crate::server::runs::LiveRuns, caller: Caller, work: F) -> Answer
where
    F: FnOnce(Practice, User, sluice_practice::Streaming) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<sluice_practice::RunResponse, PracticeError>>
        + Send
        + 'static,
{
    use sluice_practice::RunEvent;
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = sluice_practice::StopSignal::new();
    let Caller { practice, user } = caller;
    let registered = runs.register(user.id, stop.clone());
    let streaming = sluice_practice::Streaming {
        events: events_tx,
        stop,
    };
    // The run goes on even if the client goes away, or reads slowly: its
    // result is stored, so its events are always taken at once.
    let run = tokio::spawn(work(practice, user, streaming));
    let model_names = match events_rx.recv().await {
        Some(RunEvent::Started { model_names }) => model_names,
        // Every sender is gone before the run started: it failed its checks.
        _ => {
            return match run.await {
                Ok(Err(e)) => Err(Detail(e)),
                Ok(Ok(response)) => ok(StatusCode::CREATED, &response),
                Err(e) => {
                    tracing::error!(error = %e, "practice run task failed");
                    Err(Detail(PracticeError::Corrupt(
                        "the run task failed".to_string(),
                    )))
                }
            };
        }
    };
    // Bounded: what the client has not taken waits, coalesced, in the backlog.
    let (out_tx, out_rx) =
        tokio::sync::mpsc::channel::<Result<Event, Infallible>>(EVENTS_IN_FLIGHT);
    let started = Started {
        model_names,
        run_id: registered.id(),
    };
    // The channel is empty: the first event always has room.
    let _ = out_tx.try_send(Ok(Event::default()
        .event("started")
        .data(serde_json::to_string(&started).expect("serializable"))));
    tokio::spawn(async move {
        // Stops are accepted for as long as the run may still call models.
        let _registered = registered;
        let event = |event: RunEvent| {
            let name = match &event {
                RunEvent::Started { .. } => "started",
                RunEvent::Token { .. } => "token",
                RunEvent::ModelDone { .. } => "model_done",
            };
            let data = serde_json::to_string(&event).expect("serializable");
            Ok(Event::default().event(name).data(data))
        };
        let mut backlog = Backlog::default();
        let mut client_gone = false;
        loop {
            tokio::select! {
                next = events_rx.recv() => match next {
                    Some(next) if !client_gone => backlog.push(next),
                    Some(_) => {}
                    None => break,
                },
                permit = out_tx.reserve(), if !backlog.is_empty() => match permit {
                    Ok(permit) => permit.send(event(backlog.pop().expect("not empty"))),
                    Err(_) => {
                        client_gone = true;
                        backlog.clear();
                    }
                },
            }
        }
        // The run is over (its sender is gone): waiting on the client holds up no one.
        while let Some(next) = backlog.pop() {
            if out_tx.send(event(next)).await.is_err() {
                break;
            }
        }
        let last = match run.await {
            Ok(Ok(response)) => Event::default()
                .event("result")
                .data(serde_json::to_string(&response).expect("serializable")),
            Ok(Err(e)) => {
                let status = e.status();
                let failed = Failed {
                    detail: Detail(e).detail(),
                    status,
                };
                Event::default()
                    .event("error")
                    .data(serde_json::to_string(&failed).expect("serializable"))
            }
            Err(e) => {
                tracing::error!(error = %e, "practice run task failed");
                Event::default()
                    .event("error")
                    .data(r#"{"status":500,"detail":"internal error"}"#)
            }
        };
        let _ = out_tx.send(Ok(last)).await;
    });
    let body = tokio_stream_from(out_rx);
    Ok((
        StatusCode::CREATED,
        Sse::new(body).keep_alive(KeepAlive::default()),
    )
        .into_response())
}

/// `POST /user/practice/runs/{run_id}/stop[?model_name=M]`: stops one model
/// (or all) of the caller's streamed run; 404 for a run that ended, or that is
/// not the caller's.
pub(super) async fn stop_run(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let id = path_id(&id, "run_id")?;
    let model = query.get("model_name").map(|m| m.trim());
    if state.runs().stop(id, caller.user.id, model) {
        no_content()
    } else {
        Err(PracticeError::NotFound("run").into())
    }
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

pub(super) async fn list_sessions(
    caller: Caller,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let page = page(&query)?;
    let filter = SessionFilter {
        class_id: optional_query_id(&query, "class_id")?,
        project_id: optional_query_id(&query, "project_id")?,
    };
    let store = caller.practice.store();
    // Filtering by a class one is not in is refused like a run in it (404 for
    // no such class, 403 for a non-member), not answered with an empty page
    // that reads as "no sessions yet".
    if let Some(class_id) = filter.class_id {
        store.class_for_member(class_id, caller.user.id).await?;
    }
    let sessions = store.list_sessions(caller.user.id, filter, page).await?;
    ok(StatusCode::OK, &sessions)
}

pub(super) async fn get_session(caller: Caller, Path(id): Path<String>) -> Answer {
    let id = path_id(&id, "session_id")?;
    ok(
        StatusCode::OK,
        &caller
            .practice
            .store()
            .session_view(caller.user.id, id)
            .await?,
    )
}

pub(super) async fn patch_session(caller: Caller, Path(id): Path<String>, body: Bytes) -> Answer {
    use sluice_practice::validate::{Checker, at};
    let id = path_id(&id, "session_id")?;
    let body = json_body(&body)?;
    let loc = vec![Value::from("body")];
    let mut check = Checker::new();
    let mut patch = SessionPatch::default();
    if let Some(map) = check.object(&body, &loc) {
        check.no_unknown(map, &["title", "session_title", "project_id"], &loc);
        for key in ["title", "session_title"] {
            if map.contains_key(key) {
                patch.title = Some(check.string(map, key, &loc, 1..=200, true));
            }
        }
        if let Some(v) = map.get("project_id") {
            patch.project_id = Some(check.int_value(v, at(&loc, "project_id"), 1, i64::MAX));
        }
    }
    check.finish()?;
    ok(
        StatusCode::OK,
        &caller
            .practice
            .store()
            .update_session(caller.user.id, id, &patch)
            .await?,
    )
}

pub(super) async fn delete_session(caller: Caller, Path(id): Path<String>) -> Answer {
    let id = path_id(&id, "session_id")?;
    caller
        .practice
        .store()
        .delete_session(caller.user.id, id)
        .await?;
    no_content()
}
