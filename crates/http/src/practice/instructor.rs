//! The instructor's routes: a class's students, their sessions (read-only,
//! every read recorded), usage, and budgets; and the access record a student
//! reads. A thin adapter over [`sluice_practice`]'s store, in the practice
//! routes' FastAPI conventions. Whoever may not see a class gets 404, as for a
//! class that does not exist.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::on;
use serde_json::{Value, json};
use sluice_practice::budget::{Limits, parse_time};
use sluice_practice::validate::{Checker, json_body, path_id};
use sluice_practice::{ClassRole, ClassSessionFilter, PracticeError, UsageFilter};

use super::answer::{Answer, ok, optional_query_id, page};
use super::caller::Caller;
use crate::routes::{INSTRUCTOR, Instructor, mount};
use crate::server::state::AppState;

/// The instructor routes, with their state.
pub(super) fn routes() -> Router<AppState> {
    mount(&INSTRUCTOR, |op, method| match op {
        Instructor::Students => on(method, students),
        Instructor::Sessions => on(method, sessions),
        Instructor::Session => on(method, session),
        Instructor::SessionReads => on(method, session_reads),
        Instructor::Usage => on(method, usage),
        Instructor::Daily => on(method, daily),
        Instructor::Events => on(method, events),
        Instructor::Budgets => on(method, budgets),
        Instructor::ClassBudget => on(method, class_budget),
        Instructor::StudentBudget => on(method, student_budget),
    })
}

/// The class id of the path, checked to be one the caller instructs.
async fn instructed(caller: &Caller, class_id: &str) -> Result<i64, PracticeError> {
    let class_id = path_id(class_id, "class_id")?;
    caller
        .practice
        .store()
        .instructor_class(class_id, caller.user.id)
        .await?;
    Ok(class_id)
}

fn query_error(name: &str, kind: &'static str, msg: &str) -> PracticeError {
    PracticeError::field(vec![Value::from("query"), Value::from(name)], kind, msg)
}

/// `from` and `to`: a date (`YYYY-MM-DD`, UTC; `to` takes in the whole day)
/// or an RFC 3339 time. In ms since the epoch.
fn time_range(
    query: &HashMap<String, String>,
) -> Result<(Option<i64>, Option<i64>), PracticeError> {
    let parse = |name: &str| -> Result<Option<i64>, PracticeError> {
        let Some(text) = query.get(name) else {
            return Ok(None);
        };
        let ms = parse_time(text).ok_or_else(|| {
            query_error(
                name,
                "datetime_parsing",
                "Input should be a date (YYYY-MM-DD) or an RFC 3339 time",
            )
        })?;
        // A date as `to` is the end of that day.
        let whole_day = name == "to" && text.trim().len() == 10;
        Ok(Some(if whole_day { ms + 86_400_000 } else { ms }))
    };
    Ok((parse("from")?, parse("to")?))
}

fn model_name(query: &HashMap<String, String>) -> Result<Option<String>, PracticeError> {
    match query.get("model_name").map(|m| m.trim()) {
        None => Ok(None),
        Some("") => Err(query_error(
            "model_name",
            "string_too_short",
            "String should have at least 1 character",
        )),
        Some(m) => Ok(Some(m.to_string())),
    }
}

fn usage_filter(query: &HashMap<String, String>) -> Result<UsageFilter, PracticeError> {
    let (from_ms, to_ms) = time_range(query)?;
    Ok(UsageFilter {
        student_id: optional_query_id(query, "student_id")?,
        model_name: model_name(query)?,
        from_ms,
        to_ms,
    })
}

async fn students(caller: Caller, Path(class_id): Path<String>) -> Answer {
    let class_id = instructed(&caller, &class_id).await?;
    let students = caller.practice.store().class_students(class_id).await?;
    ok(StatusCode::OK, &json!({ "items": students }))
}

async fn sessions(
    caller: Caller,
    Path(class_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let page = page(&query)?;
    let (from, to) = time_range(&query)?;
    let has_errors = match query.get("has_errors").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return Err(query_error(
                "has_errors",
                "bool_parsing",
                "Input should be a valid boolean, unable to interpret input",
            )
            .into());
        }
    };
    let filter = ClassSessionFilter {
        student_id: optional_query_id(&query, "student_id")?,
        model_name: model_name(&query)?,
        agent_id: optional_query_id(&query, "agent_id")?,
        from: from.map(sluice_practice::budget::rfc3339_ms),
        to: to.map(sluice_practice::budget::rfc3339_ms),
        has_errors,
    };
    let class_id = instructed(&caller, &class_id).await?;
    let list = caller
        .practice
        .store()
        .class_sessions(class_id, &filter, page)
        .await?;
    ok(StatusCode::OK, &list)
}

async fn session(caller: Caller, Path((class_id, session_id)): Path<(String, String)>) -> Answer {
    let class_id = path_id(&class_id, "class_id")?;
    let session_id = path_id(&session_id, "session_id")?;
    let session = caller
        .practice
        .store()
        .read_student_session(caller.user.id, class_id, session_id)
        .await?;
    ok(StatusCode::OK, &session)
}

async fn session_reads(caller: Caller, Query(query): Query<HashMap<String, String>>) -> Answer {
    let page = page(&query)?;
    let session_id = optional_query_id(&query, "session_id")?;
    let reads = caller
        .practice
        .store()
        .session_reads(caller.user.id, session_id, page)
        .await?;
    ok(StatusCode::OK, &reads)
}

async fn usage(
    caller: Caller,
    Path(class_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let filter = usage_filter(&query)?;
    let class_id = instructed(&caller, &class_id).await?;
    let summary = caller
        .practice
        .store()
        .usage_summary(class_id, &filter)
        .await?;
    ok(StatusCode::OK, &summary)
}

async fn daily(
    caller: Caller,
    Path(class_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let filter = usage_filter(&query)?;
    let class_id = instructed(&caller, &class_id).await?;
    let days = caller
        .practice
        .store()
        .usage_daily(class_id, &filter)
        .await?;
    ok(StatusCode::OK, &json!({ "items": days }))
}

async fn events(
    caller: Caller,
    Path(class_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer {
    let page = page(&query)?;
    let filter = usage_filter(&query)?;
    let class_id = instructed(&caller, &class_id).await?;
    let events = caller
        .practice
        .store()
        .usage_events(class_id, &filter, page)
        .await?;
    ok(StatusCode::OK, &events)
}

async fn budgets(caller: Caller, Path(class_id): Path<String>) -> Answer {
    let class_id = path_id(&class_id, "class_id")?;
    let store = caller.practice.store();
    let only = match store.role_in(class_id, caller.user.id).await? {
        Some(ClassRole::Instructor) => None,
        Some(ClassRole::Student) => Some(caller.user.id),
        None => return Err(PracticeError::NotFound("class").into()),
    };
    let now = caller.practice.clock().now_ms();
    let items = store.budgets(class_id, only, now).await?;
    ok(StatusCode::OK, &json!({ "items": items }))
}

/// A body of limits: each key optional, `null` or absent for no limit.
fn limits_body(body: &Bytes) -> Result<Limits, PracticeError> {
    let body = json_body(body)?;
    let loc = vec![Value::from("body")];
    let mut check = Checker::new();
    let mut limits = Limits::default();
    if let Some(map) = check.object(&body, &loc) {
        check.no_unknown(
            map,
            &[
                "tokens_per_day",
                "tokens_per_week",
                "runs_per_hour",
                "cost_per_month",
            ],
            &loc,
        );
        limits.tokens_per_day = check.int(map, "tokens_per_day", &loc, 0, i64::MAX / 2);
        limits.tokens_per_week = check.int(map, "tokens_per_week", &loc, 0, i64::MAX / 2);
        limits.runs_per_hour = check.int(map, "runs_per_hour", &loc, 0, i64::MAX / 2);
        limits.cost_per_month = check.float(map, "cost_per_month", &loc, 0.0, 1e15);
    }
    check.finish()?;
    Ok(limits)
}

async fn class_budget(caller: Caller, Path(class_id): Path<String>, body: Bytes) -> Answer {
    let limits = limits_body(&body)?;
    let class_id = instructed(&caller, &class_id).await?;
    let store = caller.practice.store();
    store.set_budget(class_id, None, &limits).await?;
    let now = caller.practice.clock().now_ms();
    let status = store.budgets(class_id, Some(0), now).await?.remove(0);
    ok(StatusCode::OK, &status)
}

async fn student_budget(
    caller: Caller,
    Path((class_id, student_id)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let student_id = path_id(&student_id, "student_id")?;
    let limits = limits_body(&body)?;
    let class_id = instructed(&caller, &class_id).await?;
    let store = caller.practice.store();
    store
        .set_budget(class_id, Some(student_id), &limits)
        .await?;
    let now = caller.practice.clock().now_ms();
    let status = store
        .budgets(class_id, Some(student_id), now)
        .await?
        .into_iter()
        .find(|b| b.user_id == Some(student_id))
        .ok_or(PracticeError::NotFound("class member"))?;
    ok(StatusCode::OK, &status)
}
