//! The `/user/practice/...` routes: a thin adapter over [`sluice_practice`].
//! They keep the original product's FastAPI conventions rather than CLOVA's
//! envelope: 201 on create, `{"detail": ...}` on errors, 422 with field
//! locations for invalid input, bearer keys of stored users.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Serialize;
use serde_json::{Value, json};
use sluice_practice::retrieval::DocumentFormat;
use sluice_practice::validate::{json_body, path_id, query_int};
use sluice_practice::{
    PageRequest, Practice, PracticeError, RunRequest, RunResponse, SessionFilter, SessionPatch,
    User,
};

use crate::backlog::Backlog;
use crate::state::AppState;

/// Events of a streamed run that may wait for the client's connection before
/// the rest waits, coalesced, in a [`Backlog`].
const EVENTS_IN_FLIGHT: usize = 16;

/// Every practice route: method, path, summary, success status. The router and
/// the OpenAPI document are both checked against this table.
pub const PRACTICE_ROUTES: &[(&str, &str, &str, u16)] = &[
    (
        "GET",
        "/user/practice/me",
        "The caller and the classes they belong to.",
        200,
    ),
    (
        "POST",
        "/user/practice/sessions/run",
        "Quick run: a new session and its first turn, one prompt sent to every model at once.",
        201,
    ),
    (
        "GET",
        "/user/practice/sessions",
        "The caller's sessions, newest first (page, size, class_id, project_id).",
        200,
    ),
    (
        "GET",
        "/user/practice/sessions/{session_id}",
        "A session with every turn and result.",
        200,
    ),
    (
        "PATCH",
        "/user/practice/sessions/{session_id}",
        "Change a session's title or project.",
        200,
    ),
    (
        "DELETE",
        "/user/practice/sessions/{session_id}",
        "Delete a session.",
        204,
    ),
    (
        "POST",
        "/user/practice/sessions/{session_id}/chat",
        "The next turn of a session: each model sees its own earlier answers.",
        201,
    ),
    (
        "POST",
        "/user/practice/runs/{run_id}/stop",
        "Stop one model (model_name query) or every model of a streamed run; what each had generated is stored with finish_reason stopped.",
        204,
    ),
    ("POST", "/user/practice/agents", "Create an agent.", 201),
    (
        "GET",
        "/user/practice/agents",
        "The agents the caller sees.",
        200,
    ),
    ("GET", "/user/practice/agents/{agent_id}", "An agent.", 200),
    (
        "PATCH",
        "/user/practice/agents/{agent_id}",
        "Update an agent.",
        200,
    ),
    (
        "DELETE",
        "/user/practice/agents/{agent_id}",
        "Delete an agent.",
        204,
    ),
    ("POST", "/user/practice/projects", "Create a project.", 201),
    (
        "GET",
        "/user/practice/projects",
        "The projects the caller sees.",
        200,
    ),
    (
        "GET",
        "/user/practice/projects/{project_id}",
        "A project.",
        200,
    ),
    (
        "PATCH",
        "/user/practice/projects/{project_id}",
        "Update a project.",
        200,
    ),
    (
        "DELETE",
        "/user/practice/projects/{project_id}",
        "Delete a project.",
        204,
    ),
    (
        "POST",
        "/user/practice/few-shot-examples",
        "Create a few-shot example.",
        201,
    ),
    (
        "GET",
        "/user/practice/few-shot-examples",
        "The few-shot examples the caller sees.",
        200,
    ),
    (
        "GET",
        "/user/practice/few-shot-examples/{example_id}",
        "A few-shot example.",
        200,
    ),
    (
        "PATCH",
        "/user/practice/few-shot-examples/{example_id}",
        "Update a few-shot example.",
        200,
    ),
    (
        "DELETE",
        "/user/practice/few-shot-examples/{example_id}",
        "Delete a few-shot example.",
        204,
    ),
    (
        "POST",
        "/user/practice/knowledge",
        "Create a knowledge base.",
        201,
    ),
    (
        "GET",
        "/user/practice/knowledge",
        "The knowledge bases the caller sees.",
        200,
    ),
    (
        "GET",
        "/user/practice/knowledge/{knowledge_id}",
        "A knowledge base.",
        200,
    ),
    (
        "PATCH",
        "/user/practice/knowledge/{knowledge_id}",
        "Update a knowledge base.",
        200,
    ),
    (
        "DELETE",
        "/user/practice/knowledge/{knowledge_id}",
        "Delete a knowledge base with its documents.",
        204,
    ),
    (
        "POST",
        "/user/practice/knowledge/{knowledge_id}/documents",
        "Upload a document (raw body; file_name query: .txt, .md or .jsonl).",
        201,
    ),
    (
        "GET",
        "/user/practice/knowledge/{knowledge_id}/documents",
        "The documents of a knowledge base.",
        200,
    ),
    (
        "DELETE",
        "/user/practice/knowledge/{knowledge_id}/documents/{document_id}",
        "Delete a document.",
        204,
    ),
    (
        "POST",
        "/user/practice/knowledge/search",
        "BM25 search over knowledge bases: {knowledge_ids, query, k}.",
        200,
    ),
];

/// The practice routes, with their state.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/user/practice/me", get(me))
        .route("/user/practice/sessions/run", post(run))
        .route("/user/practice/sessions", get(list_sessions))
        .route(
            "/user/practice/sessions/{session_id}",
            get(get_session).patch(patch_session).delete(delete_session),
        )
        .route("/user/practice/sessions/{session_id}/chat", post(chat))
        .route("/user/practice/runs/{run_id}/stop", post(stop_run))
        .route("/user/practice/agents", post(create_agent).get(list_agents))
        .route(
            "/user/practice/agents/{agent_id}",
            get(get_agent).patch(patch_agent).delete(delete_agent),
        )
        .route(
            "/user/practice/projects",
            post(create_project).get(list_projects),
        )
        .route(
            "/user/practice/projects/{project_id}",
            get(get_project).patch(patch_project).delete(delete_project),
        )
        .route(
            "/user/practice/few-shot-examples",
            post(create_few_shot).get(list_few_shots),
        )
        .route(
            "/user/practice/few-shot-examples/{example_id}",
            get(get_few_shot)
                .patch(patch_few_shot)
                .delete(delete_few_shot),
        )
        .route(
            "/user/practice/knowledge",
            post(create_knowledge).get(list_knowledge),
        )
        .route("/user/practice/knowledge/search", post(search))
        .route(
            "/user/practice/knowledge/{knowledge_id}",
            get(get_knowledge)
                .patch(patch_knowledge)
                .delete(delete_knowledge),
        )
        .route(
            "/user/practice/knowledge/{knowledge_id}/documents",
            post(upload_document).get(list_documents),
        )
        .route(
            "/user/practice/knowledge/{knowledge_id}/documents/{document_id}",
            delete(delete_document),
        )
}

/// The `detail` of a 503: the store is busy (SQLite's write lock held by
/// another process past the busy timeout) or out of reach (PostgreSQL
/// restarting). A turn is stored in one transaction, so a failed write left
/// nothing half-stored; the request may be sent again.
pub(crate) const STORE_UNAVAILABLE: &str = "the database is busy or unavailable; try again";

/// The `Retry-After` of a 503 from the store, in seconds.
const STORE_RETRY_AFTER: &str = "1";

/// A practice error as the original API answers it.
pub(crate) struct Detail(PracticeError);

impl From<PracticeError> for Detail {
    fn from(e: PracticeError) -> Self {
        Self(e)
    }
}

impl IntoResponse for Detail {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let detail = match &self.0 {
            PracticeError::Validation(errors) => json!(errors),
            PracticeError::Blocked(verdict) => {
                json!({"msg": "the prompt was blocked by the router; no model was called", "blocked": verdict})
            }
            PracticeError::AllModelsFailed(errors) => {
                json!({"msg": "every model failed", "errors": errors})
            }
            PracticeError::OverBudget(refusal) => json!(refusal),
            PracticeError::Store(_) if self.0.is_unavailable() => {
                tracing::warn!(error = %self.0, "practice store unavailable");
                json!(STORE_UNAVAILABLE)
            }
            PracticeError::Store(_) | PracticeError::Corrupt(_) => {
                tracing::error!(error = %self.0, "practice store failed");
                json!("internal error")
            }
            PracticeError::Unauthorized => json!("Not authenticated"),
            other => json!(other.to_string()),
        };
        let mut response = (status, axum::Json(json!({ "detail": detail }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if let PracticeError::OverBudget(refusal) = &self.0 {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(refusal.retry_after),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_static(STORE_RETRY_AFTER),
            );
        }
        response
    }
}

pub(crate) type Answer = Result<Response, Detail>;

/// The user of a request's bearer key, with the practice service.
pub(crate) struct Caller {
    pub(crate) practice: Practice,
    pub(crate) user: User,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(practice) = state.practice().cloned() else {
            let body = json!({"detail": "practice sessions are not enabled on this server"});
            return Err((StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response());
        };
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::auth::bearer);
        let Some(key) = key else {
            return cookie_caller(practice, state, parts).await;
        };
        match practice.store().authenticate(key).await {
            Ok(Some(user)) => Ok(Caller { practice, user }),
            Ok(None) => {
                // Capped like every other route's rejections: a flood of bad
                // keys must not become a flood of log lines.
                if state.request_logs().admit() {
                    tracing::warn!("rejected: invalid or revoked practice key");
                }
                Err(Detail(PracticeError::Unauthorized).into_response())
            }
            Err(e) => Err(Detail(e).into_response()),
        }
    }
}

/// The caller signed in by the web app's session cookie (no bearer key).
async fn cookie_caller(
    practice: Practice,
    state: &AppState,
    parts: &Parts,
) -> Result<Caller, Response> {
    use crate::web::session::{CookieAuth, cookie_user};
    match cookie_user(state.session_secret(), &parts.method, &parts.headers) {
        Ok(Some(user_id)) => match practice.store().user(user_id).await {
            Ok(user) => Ok(Caller { practice, user }),
            Err(PracticeError::NotFound(_)) => {
                Err(Detail(PracticeError::Unauthorized).into_response())
            }
            Err(e) => Err(Detail(e).into_response()),
        },
        Ok(None) | Err(CookieAuth::Invalid) => {
            Err(Detail(PracticeError::Unauthorized).into_response())
        }
        Err(CookieAuth::Csrf) => Err((
            StatusCode::FORBIDDEN,
            axum::Json(json!({"detail": "missing or wrong CSRF token"})),
        )
            .into_response()),
    }
}

pub(crate) fn ok<T: Serialize>(status: StatusCode, value: &T) -> Answer {
    Ok((status, axum::Json(value)).into_response())
}

fn no_content() -> Answer {
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) fn page(query: &HashMap<String, String>) -> Result<PageRequest, PracticeError> {
    Ok(PageRequest {
        page: query_int(
            query.get("page").map(String::as_str),
            "page",
            Some(1),
            1,
            i64::MAX / 1024,
        )?,
        size: query_int(
            query.get("size").map(String::as_str),
            "size",
            Some(50),
            1,
            200,
        )?,
    })
}

pub(crate) fn optional_query_id(
    query: &HashMap<String, String>,
    name: &str,
) -> Result<Option<i64>, PracticeError> {
    query
        .get(name)
        .map(|v| query_int(Some(v), name, None, 1, i64::MAX))
        .transpose()
}

async fn me(caller: Caller) -> Answer {
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

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// Records every model call of a finished run in the metrics.
fn record_calls(state: &AppState, outcome: &Result<RunResponse, PracticeError>) {
    let metrics = state.metrics();
    let tokens = |usage: &Value, key: &str| usage[key].as_u64().unwrap_or(0);
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
                    let kind = r
                        .error
                        .as_ref()
                        .and_then(|e| e["kind"].as_str())
                        .unwrap_or("ok");
                    let (i, o) = (
                        tokens(&r.token_usage, "prompt_tokens"),
                        tokens(&r.token_usage, "completion_tokens"),
                    );
                    let cost = sluice_practice::budget::cost(prices(model), i, o).unwrap_or(0.0);
                    (kind, i, o, cost)
                }),
            );
            for (i, r) in response.results.iter().enumerate() {
                // A blind answer's model_name is its label: count the model.
                let model = response.model_names.get(i).unwrap_or(&r.model_name);
                let kind = r
                    .error
                    .as_ref()
                    .and_then(|e| e["kind"].as_str())
                    .unwrap_or("ok");
                metrics.observe_model_call(
                    model,
                    std::time::Duration::from_millis(r.latency_ms.max(0) as u64),
                    kind,
                    tokens(&r.token_usage, "prompt_tokens"),
                    tokens(&r.token_usage, "completion_tokens"),
                );
            }
        }
        Err(PracticeError::OverBudget(refusal)) => {
            metrics.observe_budget_refusal(refusal.class_id, refusal.limit.as_str());
        }
        Err(PracticeError::AllModelsFailed(errors)) => {
            for e in errors {
                let model = e["model_name"].as_str().unwrap_or_default();
                let kind = e["error"]["kind"].as_str().unwrap_or("error");
                let latency =
                    std::time::Duration::from_millis(e["latency_ms"].as_u64().unwrap_or(0));
                metrics.observe_model_call(model, latency, kind, 0, 0);
            }
        }
        Err(_) => {}
    }
}

async fn run(
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

async fn chat(
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

/// Both results, or every validation error of both (FastAPI reports query and
/// body errors together).
pub(crate) fn merge_errors<A, B>(
    a: Result<A, PracticeError>,
    b: Result<B, PracticeError>,
) -> Result<(A, B), PracticeError> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(PracticeError::Validation(mut x)), Err(PracticeError::Validation(y))) => {
            x.extend(y);
            Err(PracticeError::Validation(x))
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
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
async fn stream<F, Fut>(runs: crate::runs::LiveRuns, caller: Caller, work: F) -> Answer
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
    let started = json!({"run_id": registered.id(), "model_names": model_names});
    // The channel is empty: the first event always has room.
    let _ = out_tx.try_send(Ok(Event::default()
        .event("started")
        .data(started.to_string())));
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
                let body = Detail(e).into_response();
                let bytes = axum::body::to_bytes(body.into_body(), usize::MAX)
                    .await
                    .unwrap_or_default();
                let detail: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                Event::default()
                    .event("error")
                    .data(json!({"status": status, "detail": detail["detail"]}).to_string())
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
async fn stop_run(
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

async fn list_sessions(caller: Caller, Query(query): Query<HashMap<String, String>>) -> Answer {
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

async fn get_session(caller: Caller, Path(id): Path<String>) -> Answer {
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

async fn patch_session(caller: Caller, Path(id): Path<String>, body: Bytes) -> Answer {
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

async fn delete_session(caller: Caller, Path(id): Path<String>) -> Answer {
    let id = path_id(&id, "session_id")?;
    caller
        .practice
        .store()
        .delete_session(caller.user.id, id)
        .await?;
    no_content()
}

/// The handlers of one library object type: create, list, read, update, delete.
macro_rules! library_handlers {
    ($create:ident, $list:ident, $get:ident, $patch:ident, $delete:ident, $id:literal,
     $parse:path, $store_create:ident, $store_list:ident, $store_get:ident, $store_update:ident, $store_delete:ident) => {
        async fn $create(caller: Caller, body: Bytes) -> Answer {
            let input = $parse(&json_body(&body)?, None)?;
            ok(
                StatusCode::CREATED,
                &caller
                    .practice
                    .store()
                    .$store_create(caller.user.id, &input)
                    .await?,
            )
        }

        async fn $list(caller: Caller, Query(query): Query<HashMap<String, String>>) -> Answer {
            let page = page(&query)?;
            ok(
                StatusCode::OK,
                &caller
                    .practice
                    .store()
                    .$store_list(caller.user.id, page)
                    .await?,
            )
        }

        async fn $get(caller: Caller, Path(id): Path<String>) -> Answer {
            let id = path_id(&id, $id)?;
            ok(
                StatusCode::OK,
                &caller
                    .practice
                    .store()
                    .$store_get(caller.user.id, id)
                    .await?,
            )
        }

        async fn $patch(caller: Caller, Path(id): Path<String>, body: Bytes) -> Answer {
            let id = path_id(&id, $id)?;
            let body = json_body(&body)?;
            let store = caller.practice.store();
            let current = serde_json::to_value(store.$store_get(caller.user.id, id).await?)
                .expect("serializable");
            let input = $parse(&body, Some(current))?;
            ok(
                StatusCode::OK,
                &store.$store_update(caller.user.id, id, &input).await?,
            )
        }

        async fn $delete(caller: Caller, Path(id): Path<String>) -> Answer {
            let id = path_id(&id, $id)?;
            caller
                .practice
                .store()
                .$store_delete(caller.user.id, id)
                .await?;
            no_content()
        }
    };
}

library_handlers!(
    create_agent,
    list_agents,
    get_agent,
    patch_agent,
    delete_agent,
    "agent_id",
    sluice_practice::parse_agent,
    create_agent,
    list_agents,
    agent,
    update_agent,
    delete_agent
);
library_handlers!(
    create_project,
    list_projects,
    get_project,
    patch_project,
    delete_project,
    "project_id",
    sluice_practice::parse_project,
    create_project,
    list_projects,
    project,
    update_project,
    delete_project
);
library_handlers!(
    create_few_shot,
    list_few_shots,
    get_few_shot,
    patch_few_shot,
    delete_few_shot,
    "example_id",
    sluice_practice::parse_few_shot,
    create_few_shot,
    list_few_shots,
    few_shot,
    update_few_shot,
    delete_few_shot
);
library_handlers!(
    create_knowledge,
    list_knowledge,
    get_knowledge,
    patch_knowledge,
    delete_knowledge,
    "knowledge_id",
    sluice_practice::parse_knowledge,
    create_knowledge,
    list_knowledge,
    knowledge,
    update_knowledge,
    delete_knowledge
);

async fn upload_document(
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Answer {
    let id = path_id(&id, "knowledge_id")?;
    let Some(file_name) = query
        .get("file_name")
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
    else {
        return Err(PracticeError::field(
            vec![Value::from("query"), Value::from("file_name")],
            "missing",
            "Field required",
        )
        .into());
    };
    let format = match query.get("format").map(String::as_str) {
        None => None,
        Some("text" | "txt") => Some(DocumentFormat::Text),
        Some("markdown" | "md") => Some(DocumentFormat::Markdown),
        Some("jsonl") => Some(DocumentFormat::Jsonl),
        Some(_) => {
            return Err(PracticeError::field(
                vec![Value::from("query"), Value::from("format")],
                "enum",
                "Input should be 'text', 'markdown' or 'jsonl'",
            )
            .into());
        }
    };
    let documents = caller
        .practice
        .store()
        .add_document(caller.user.id, id, file_name, format, &body)
        .await?;
    ok(StatusCode::CREATED, &json!({"items": documents}))
}

async fn list_documents(
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let id = path_id(&id, "knowledge_id")?;
    let page = page(&query)?;
    ok(
        StatusCode::OK,
        &caller
            .practice
            .store()
            .list_documents(caller.user.id, id, page)
            .await?,
    )
}

async fn delete_document(caller: Caller, Path((kb, doc)): Path<(String, String)>) -> Answer {
    let kb = path_id(&kb, "knowledge_id")?;
    let doc = path_id(&doc, "document_id")?;
    let store = caller.practice.store();
    if store.document(caller.user.id, doc).await?.knowledge_id != kb {
        return Err(PracticeError::NotFound("document").into());
    }
    store.delete_document(caller.user.id, doc).await?;
    no_content()
}

async fn search(caller: Caller, body: Bytes) -> Answer {
    use sluice_practice::validate::{Checker, at};
    let body = json_body(&body)?;
    let loc = vec![Value::from("body")];
    let mut check = Checker::new();
    let (mut ids, mut query, mut k) = (Vec::new(), String::new(), 5);
    if let Some(map) = check.object(&body, &loc) {
        check.no_unknown(map, &["knowledge_ids", "query", "k"], &loc);
        ids = check
            .id_list(map, "knowledge_ids", &loc)
            .unwrap_or_default();
        if ids.is_empty() && check.is_ok() {
            check.error(
                at(&loc, "knowledge_ids"),
                "too_short",
                "List should have at least 1 item after validation, not 0",
            );
        }
        query = check
            .required_string(map, "query", &loc, 1..=10_000, true)
            .unwrap_or_default();
        k = check.int(map, "k", &loc, 1, 100).unwrap_or(5);
    }
    check.finish()?;
    let hits = caller
        .practice
        .store()
        .search(caller.user.id, &ids, &query, k as usize)
        .await?;
    ok(StatusCode::OK, &json!({"items": hits}))
}
