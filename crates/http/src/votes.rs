//! Blind votes, ratings, the class leaderboard and the class export: a thin
//! adapter over [`sluice_practice`]'s store, in the practice routes'
//! conventions (FastAPI bodies and errors, bearer key or the web app's cookie).

use std::collections::HashMap;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use sluice_practice::leaderboard::Options;
use sluice_practice::validate::{json_body, path_id, query_int};
use sluice_practice::{
    ClassRole, ExportFormat, ExportKind, FieldError, LABELS, MAX_COMMENT_CHARS, PracticeError,
    RatingInput, VERDICTS, Verdict, VoteFilter,
};

use crate::practice::{Answer, Caller, ok};
use crate::state::AppState;

/// Most bootstrap resamples a leaderboard request may ask for.
pub const MAX_RESAMPLES: i64 = 5_000;

/// Chunks of an export that may wait for a slow client: the export reads the
/// database no faster than the client takes it (constant memory).
const CHUNKS_IN_FLIGHT: usize = 4;

/// The routes of this module: method, path, summary, success status (read by
/// the OpenAPI document beside [`crate::PRACTICE_ROUTES`]).
pub const VOTE_ROUTES: &[(&str, &str, &str, u16)] = &[
    (
        "POST",
        "/user/practice/sessions/{session_id}/turns/{turn_id}/vote",
        "Vote on a blind turn (best answer by label, tie, all bad, or skip); answers with every label's model.",
        201,
    ),
    (
        "POST",
        "/user/practice/results/{response_id}/rating",
        "Rate one answer up or down, with an optional comment (rating again replaces it).",
        200,
    ),
    (
        "GET",
        "/user/practice/classes/{class_id}/leaderboard",
        "The class's Bradley–Terry leaderboard of blind votes: scores, bootstrap 95% intervals, vote counts, win-rate matrix.",
        200,
    ),
    (
        "GET",
        "/user/practice/classes/{class_id}/export",
        "The class's results, votes and ratings as JSONL or CSV, streamed (instructors).",
        200,
    ),
];

/// The routes, with their state.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/user/practice/sessions/{session_id}/turns/{turn_id}/vote",
            post(vote),
        )
        .route("/user/practice/results/{response_id}/rating", post(rate))
        .route(
            "/user/practice/classes/{class_id}/leaderboard",
            get(leaderboard),
        )
        .route("/user/practice/classes/{class_id}/export", get(export))
}

async fn vote(
    caller: Caller,
    Path((session, turn)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let session_id = path_id(&session, "session_id");
    let turn_id = path_id(&turn, "turn_id");
    let verdict = json_body(&body).and_then(|b| Verdict::parse(&b));
    let (session_id, turn_id, verdict) = merge3(session_id, turn_id, verdict)?;
    let reveal = caller
        .practice
        .store()
        .vote(caller.user.id, session_id, turn_id, &verdict)
        .await?;
    ok(StatusCode::CREATED, &reveal)
}

async fn rate(caller: Caller, Path(id): Path<String>, body: Bytes) -> Answer {
    let id = path_id(&id, "response_id");
    let input = json_body(&body).and_then(|b| RatingInput::parse(&b));
    let (id, input) = crate::practice::merge_errors(id, input)?;
    let rating = caller
        .practice
        .store()
        .rate(caller.user.id, id, input.up, input.comment.as_deref())
        .await?;
    ok(StatusCode::OK, &rating)
}

/// An optional text query parameter from a fixed set, or 422.
fn query_choice(
    query: &HashMap<String, String>,
    name: &str,
    options: &[&'static str],
    default: &'static str,
) -> Result<&'static str, PracticeError> {
    match query.get(name) {
        None => Ok(default),
        Some(v) => options.iter().find(|o| **o == v).copied().ok_or_else(|| {
            PracticeError::Validation(vec![FieldError::new(
                vec![json!("query"), json!(name)],
                "enum",
                format!("Input should be {}", options.join(", ")),
            )])
        }),
    }
}

/// An optional text query parameter of at most `max` characters.
fn query_text(
    query: &HashMap<String, String>,
    name: &str,
    max: usize,
) -> Result<Option<String>, PracticeError> {
    match query.get(name) {
        Some(v) if v.chars().count() > max => {
            Err(PracticeError::Validation(vec![FieldError::new(
                vec![json!("query"), json!(name)],
                "string_too_long",
                format!("String should have at most {max} characters"),
            )]))
        }
        other => Ok(other.cloned()),
    }
}

async fn leaderboard(
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let class_id = path_id(&id, "class_id")?;
    let get = |name| query.get(name).map(String::as_str);
    let filter = VoteFilter {
        class_id: Some(class_id),
        domain: query_text(&query, "domain", 30)?,
        agent_id: get("agent_id")
            .map(|v| query_int(Some(v), "agent_id", None, 1, i64::MAX))
            .transpose()?,
        style_preset: query
            .get("style_preset")
            .map(|_| query_choice(&query, "style_preset", &sluice_practice::STYLE_PRESETS, ""))
            .transpose()?
            .map(str::to_string),
    };
    let options = Options {
        resamples: query_int(get("resamples"), "resamples", Some(1000), 0, MAX_RESAMPLES)? as usize,
        seed: query_int(get("seed"), "seed", Some(0), 0, i64::MAX)? as u64,
        ..Options::default()
    };
    let store = caller.practice.store();
    store.class_for_member(class_id, caller.user.id).await?;
    ok(StatusCode::OK, &store.leaderboard(&filter, &options).await?)
}

async fn export(
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let class_id = path_id(&id, "class_id")?;
    let format = query_choice(&query, "format", &["jsonl", "csv"], "jsonl")?;
    let kind = query_choice(
        &query,
        "kind",
        &["all", "results", "votes", "ratings"],
        "all",
    )?;
    let format = ExportFormat::parse(format).expect("one of the choices");
    let kind = ExportKind::parse(kind).expect("one of the choices");
    let store = caller.practice.store().clone();
    let (_, role) = store.class_for_member(class_id, caller.user.id).await?;
    if role != ClassRole::Instructor {
        return Err(PracticeError::Forbidden(
            "only the class's instructors export its work".into(),
        )
        .into());
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    tokio::spawn(async move {
        // Headers are gone by now: a failure can only cut the body short,
        // which the client sees as an incomplete transfer.
        if let Err(e) = store.export_class(class_id, format, kind, tx).await {
            tracing::error!(error = %e, class_id, "export failed midway");
        }
    });
    let body = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok::<_, std::io::Error>(Bytes::from(c))))
    });
    let extension = match format {
        ExportFormat::Jsonl => "jsonl",
        ExportFormat::Csv => "csv",
    };
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!(
            "attachment; filename=\"class-{class_id}.{extension}\""
        ))
        .expect("ASCII"),
    );
    Ok(response)
}

fn merge3<A, B, C>(
    a: Result<A, PracticeError>,
    b: Result<B, PracticeError>,
    c: Result<C, PracticeError>,
) -> Result<(A, B, C), PracticeError> {
    let (a, b) = crate::practice::merge_errors(a, b)?;
    Ok((a, b, c?))
}

/// The OpenAPI operations of [`VOTE_ROUTES`].
pub(crate) fn openapi_paths(paths: &mut Map<String, Value>) {
    let detail = json!({"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Detail"}}}});
    let with = |description: &str| {
        let mut d = detail.clone();
        d["description"] = json!(description);
        d
    };
    for (method, path, summary, status) in VOTE_ROUTES {
        let mut parameters: Vec<Value> = path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1, "maximum": i64::MAX}}))
            .collect();
        let query = |name: &str, schema: Value| json!({"name": name, "in": "query", "required": false, "schema": schema});
        let mut responses = json!({
            "401": with("Missing, invalid or revoked key"),
            "404": with("Not found, or not visible to the caller"),
            "422": {"description": "Validation error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ValidationDetail"}}}},
            "503": {"description": "The database is busy or out of reach; the request may be sent again",
                    "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Detail"}}}}
        });
        let mut body = None;
        let ok = if path.ends_with("/vote") {
            responses["400"] = with("Not a blind turn, or no answer with that label");
            responses["409"] = with("The turn already has a vote");
            body = Some(
                json!({"type": "object", "additionalProperties": false, "required": ["verdict"],
                "properties": {
                    "verdict": {"enum": VERDICTS, "description": "best: the answer with `label` is best; tie: all as good; all_bad: all bad (a tie for the leaderboard); skip: no verdict, the names are shown all the same"},
                    "label": {"enum": LABELS, "description": "With verdict best only"}},
                "if": {"properties": {"verdict": {"const": "best"}}},
                "then": {"required": ["label"], "properties": {"label": {"type": "string"}}},
                "else": {"properties": {"label": {"type": "null"}}}}),
            );
            json!({"description": "The vote, with every label's model", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PracticeVoteReveal"}}}})
        } else if path.ends_with("/rating") {
            body = Some(
                json!({"type": "object", "additionalProperties": false, "required": ["value"],
                "properties": {"value": {"enum": ["up", "down"]},
                    "comment": {"type": ["string", "null"], "maxLength": MAX_COMMENT_CHARS}}}),
            );
            json!({"description": "The rating", "content": {"application/json": {"schema": {"type": "object",
                "required": ["rating_id", "response_id", "value", "comment", "created_at"]}}}})
        } else if path.ends_with("/leaderboard") {
            responses["403"] = with("Not a member of the class");
            parameters.push(query("domain", json!({"type": "string", "maxLength": 30, "description": "The router's domain of the prompt (empty: prompts with none)"})));
            parameters.push(query(
                "agent_id",
                json!({"type": "integer", "minimum": 1, "maximum": i64::MAX}),
            ));
            parameters.push(query(
                "style_preset",
                json!({"enum": sluice_practice::STYLE_PRESETS}),
            ));
            parameters.push(query(
                "resamples",
                json!({"type": "integer", "minimum": 0, "maximum": MAX_RESAMPLES, "default": 1000}),
            ));
            parameters.push(query(
                "seed",
                json!({"type": "integer", "minimum": 0, "maximum": i64::MAX, "default": 0}),
            ));
            json!({"description": "Best first. Ties count half a win to each side; all_bad is a tie; skips are counted, not fitted. Scores are centred natural-log strengths with a weak prior (one virtual tie per model against an anchor at 0); rating = 1000 + 400·score/ln 10; lower and upper are the 2.5th and 97.5th percentiles of a seeded bootstrap over votes.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PracticeLeaderboard"}}}})
        } else {
            responses["403"] = with("Not an instructor of the class");
            parameters.push(query(
                "format",
                json!({"enum": ["jsonl", "csv"], "default": "jsonl"}),
            ));
            parameters.push(query(
                "kind",
                json!({"enum": ["all", "results", "votes", "ratings"], "default": "all"}),
            ));
            json!({"description": "JSONL: one record a line with kind (result, vote, rating), id and messages (each line a request `sluice trim --jsonl` reads); CSV: one header for every kind",
                "content": {"application/jsonl": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}}})
        };
        responses[status.to_string()] = ok;
        let id = format!(
            "practice_{}_{}",
            method.to_lowercase(),
            path.trim_start_matches("/user/practice/")
                .replace(['/', '-'], "_")
                .replace(['{', '}'], "")
        );
        let mut op = json!({
            "operationId": id, "summary": summary, "tags": ["practice"],
            "security": [{"bearer": []}], "parameters": parameters, "responses": responses,
        });
        if let Some(schema) = body {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": schema}}});
        }
        let item = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        item[method.to_lowercase()] = op;
    }
}

/// Schemas of this module's answers.
pub(crate) fn schemas() -> Value {
    let number = json!({"type": "number"});
    let interval = json!({"type": ["number", "null"]});
    json!({
        "PracticeVoteReveal": {"type": "object", "required": ["vote_id", "turn_id", "verdict", "labels"],
            "properties": {"vote_id": {"type": "integer"}, "turn_id": {"type": "integer"},
                "verdict": {"enum": VERDICTS}, "best_label": {"type": ["string", "null"]},
                "best_model": {"type": ["string", "null"]}, "domain": {"type": "string"},
                "created_at": {"type": "string"},
                "labels": {"type": "array", "items": {"type": "object", "required": ["label", "model_name"],
                    "properties": {"label": {"type": "string"}, "model_name": {"type": "string"}}}}}},
        "PracticeLeaderboard": {"type": "object", "required": ["rows", "matrix", "total_votes", "skipped", "filter", "facets"],
            "properties": {
                "rows": {"type": "array", "items": {"type": "object",
                    "required": ["model_name", "score", "rating", "lower", "upper", "votes", "wins", "losses", "ties"],
                    "properties": {"model_name": {"type": "string"}, "score": number, "rating": number,
                        "lower": interval, "upper": interval, "votes": {"type": "integer"},
                        "wins": {"type": "integer"}, "losses": {"type": "integer"}, "ties": {"type": "integer"}}}},
                "matrix": {"type": "object", "required": ["models", "win_rate", "comparisons"]},
                "total_votes": {"type": "integer"}, "skipped": {"type": "integer"},
                "resamples": {"type": "integer"}, "seed": {"type": "integer"}, "prior_ties": number,
                "filter": {"type": "object"}, "facets": {"type": "object"}}}
    })
}
