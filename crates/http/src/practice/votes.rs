//! Blind votes, ratings, the class leaderboard and the class export: a thin
//! adapter over [`sluice_practice`]'s store, in the practice routes'
//! conventions (FastAPI bodies and errors, bearer key or the web app's cookie).

use std::collections::HashMap;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::on;
use serde_json::json;
use sluice_practice::leaderboard::Options;
use sluice_practice::validate::{json_body, path_id, query_int};
use sluice_practice::{
    ClassRole, ExportFormat, ExportKind, FieldError, PracticeError, RatingInput, Verdict,
    VoteFilter,
};

use super::answer::{Answer, merge_errors, ok};
use super::caller::Caller;
use crate::routes::{VOTE, Votes, mount};
use crate::server::state::AppState;

/// Most bootstrap resamples a leaderboard request may ask for.
pub const MAX_RESAMPLES: i64 = 5_000;

/// Chunks of an export that may wait for a slow client: the export reads the
/// database no faster than the client takes it (constant memory).
const CHUNKS_IN_FLIGHT: usize = 4;

/// The vote routes, with their state.
pub(super) fn routes() -> Router<AppState> {
    mount(&VOTE, |op, method| match op {
        Votes::Vote => on(method, vote),
        Votes::Rate => on(method, rate),
        Votes::Leaderboard => on(method, leaderboard),
        Votes::Export => on(method, export),
    })
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
    let (id, input) = merge_errors(id, input)?;
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
    let (a, b) = merge_errors(a, b)?;
    Ok((a, b, c?))
}
