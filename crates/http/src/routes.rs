//! Every route the server documents, in one table per API, read by both the
//! router ([`app`](fn@crate::app)) and the OpenAPI document: a route is mounted
//! and documented from the same row, so the two cannot drift apart.
//!
//! This module is a leaf: it names paths, methods and operations, never a
//! handler. Each API maps its operations to handlers (an exhaustive `match`,
//! so that a new row without a handler does not compile) and mounts them with
//! [`mount`].

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter};

/// Every API path is also served under these prefixes, as older CLOVA Studio
/// deployments use them.
pub const PREFIXES: [&str; 3] = ["", "/testapp", "/serviceapp"];

/// The API endpoints, without prefix. The router and the OpenAPI document are
/// both built from this table. The hosted API's app-id (task-id) forms, with a
/// trailing `/{appId}`, are served too: older clients post to them.
pub(crate) const API: [(&str, Endpoint); 14] = [
    (
        "/v1/api-tools/sliding/chat-messages/{modelName}",
        Endpoint::Sliding,
    ),
    (
        "/v1/api-tools/sliding/chat-messages/{modelName}/{appId}",
        Endpoint::Sliding,
    ),
    (
        "/v1/api-tools/chat-tokenize/{modelName}",
        Endpoint::Tokenize,
    ),
    (
        "/v1/api-tools/chat-tokenize/{modelName}/{appId}",
        Endpoint::Tokenize,
    ),
    (
        "/v3/api-tools/chat-tokenize/{modelName}",
        Endpoint::TokenizeV3,
    ),
    (
        "/v3/api-tools/chat-tokenize/{modelName}/{appId}",
        Endpoint::TokenizeV3,
    ),
    (
        "/v1/routers/{router-id}/versions/{version}/route",
        Endpoint::Route,
    ),
    ("/v3/chat-completions/{modelName}", Endpoint::ChatV3),
    ("/v3/chat-completions/{modelName}/{appId}", Endpoint::ChatV3),
    ("/v1/chat-completions/{modelName}", Endpoint::ChatV1),
    ("/v1/chat-completions/{modelName}/{appId}", Endpoint::ChatV1),
    ("/v1/openai/chat/completions", Endpoint::OpenAi),
    ("/v1/chat/completions", Endpoint::OpenAi),
    ("/v1/auth/token", Endpoint::AuthToken),
];

/// Operational endpoints: no prefix, no auth, no limits.
pub(crate) const OPS: [&str; 4] = ["/healthz", "/metrics", "/openapi.json", "/readyz"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Sliding,
    Tokenize,
    TokenizeV3,
    Route,
    ChatV3,
    ChatV1,
    OpenAi,
    AuthToken,
}

impl Endpoint {
    /// The method the endpoint answers.
    pub(crate) fn method(self) -> Method {
        match self {
            Endpoint::AuthToken => Method::GET,
            _ => Method::POST,
        }
    }
}

/// Every `(method, path)` the server answers, prefixes included.
pub fn served_routes() -> Vec<(Method, String)> {
    let mut routes: Vec<_> = PREFIXES
        .iter()
        .flat_map(|prefix| {
            API.iter()
                .map(move |(path, endpoint)| (endpoint.method(), format!("{prefix}{path}")))
        })
        .collect();
    routes.extend(OPS.iter().map(|path| (Method::GET, path.to_string())));
    routes
}

/// One route of the practice API (FastAPI conventions): the operation that
/// serves it, its method, path, summary and success status.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route<Op> {
    pub(crate) op: Op,
    pub(crate) method: &'static str,
    pub(crate) path: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) status: u16,
}

const fn route<Op>(
    op: Op,
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    status: u16,
) -> Route<Op> {
    Route {
        op,
        method,
        path,
        summary,
        status,
    }
}

/// `(method, path, summary, success status)` of each route of `table`: the
/// public form of a table.
const fn rows<Op: Copy, const N: usize>(
    table: &[Route<Op>; N],
) -> [(&'static str, &'static str, &'static str, u16); N] {
    let mut rows = [("", "", "", 0); N];
    let mut i = 0;
    while i < N {
        let r = table[i];
        rows[i] = (r.method, r.path, r.summary, r.status);
        i += 1;
    }
    rows
}

/// A router with every route of `table`, each served by `handler(op, method)`.
/// Routes that share a path are merged in table order.
pub(crate) fn mount<S, Op: Copy>(
    table: &[Route<Op>],
    handler: impl Fn(Op, MethodFilter) -> MethodRouter<S>,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    table.iter().fold(Router::new(), |router, r| {
        let method = Method::from_bytes(r.method.as_bytes()).expect("a method of the table");
        let filter = MethodFilter::try_from(method).expect("a method axum routes");
        router.route(r.path, handler(r.op, filter))
    })
}

/// The operations of the practice API proper: sessions, runs and the library
/// (agents, projects, few-shot examples, knowledge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Practice {
    Me,
    Run,
    ListSessions,
    GetSession,
    PatchSession,
    DeleteSession,
    Chat,
    StopRun,
    CreateAgent,
    ListAgents,
    GetAgent,
    PatchAgent,
    DeleteAgent,
    CreateProject,
    ListProjects,
    GetProject,
    PatchProject,
    DeleteProject,
    CreateFewShot,
    ListFewShots,
    GetFewShot,
    PatchFewShot,
    DeleteFewShot,
    CreateKnowledge,
    ListKnowledge,
    GetKnowledge,
    PatchKnowledge,
    DeleteKnowledge,
    UploadDocument,
    ListDocuments,
    DeleteDocument,
    Search,
}

/// The practice routes.
pub(crate) const PRACTICE: [Route<Practice>; 32] = [
    route(
        Practice::Me,
        "GET",
        "/user/practice/me",
        "The caller and the classes they belong to.",
        200,
    ),
    route(
        Practice::Run,
        "POST",
        "/user/practice/sessions/run",
        "Quick run: a new session and its first turn, one prompt sent to every model at once.",
        201,
    ),
    route(
        Practice::ListSessions,
        "GET",
        "/user/practice/sessions",
        "The caller's sessions, newest first (page, size, class_id, project_id).",
        200,
    ),
    route(
        Practice::GetSession,
        "GET",
        "/user/practice/sessions/{session_id}",
        "A session with every turn and result.",
        200,
    ),
    route(
        Practice::PatchSession,
        "PATCH",
        "/user/practice/sessions/{session_id}",
        "Change a session's title or project.",
        200,
    ),
    route(
        Practice::DeleteSession,
        "DELETE",
        "/user/practice/sessions/{session_id}",
        "Delete a session.",
        204,
    ),
    route(
        Practice::Chat,
        "POST",
        "/user/practice/sessions/{session_id}/chat",
        "The next turn of a session: each model sees its own earlier answers.",
        201,
    ),
    route(
        Practice::StopRun,
        "POST",
        "/user/practice/runs/{run_id}/stop",
        "Stop one model (model_name query) or every model of a streamed run; what each had generated is stored with finish_reason stopped.",
        204,
    ),
    route(
        Practice::CreateAgent,
        "POST",
        "/user/practice/agents",
        "Create an agent.",
        201,
    ),
    route(
        Practice::ListAgents,
        "GET",
        "/user/practice/agents",
        "The agents the caller sees.",
        200,
    ),
    route(
        Practice::GetAgent,
        "GET",
        "/user/practice/agents/{agent_id}",
        "An agent.",
        200,
    ),
    route(
        Practice::PatchAgent,
        "PATCH",
        "/user/practice/agents/{agent_id}",
        "Update an agent.",
        200,
    ),
    route(
        Practice::DeleteAgent,
        "DELETE",
        "/user/practice/agents/{agent_id}",
        "Delete an agent.",
        204,
    ),
    route(
        Practice::CreateProject,
        "POST",
        "/user/practice/projects",
        "Create a project.",
        201,
    ),
    route(
        Practice::ListProjects,
        "GET",
        "/user/practice/projects",
        "The projects the caller sees.",
        200,
    ),
    route(
        Practice::GetProject,
        "GET",
        "/user/practice/projects/{project_id}",
        "A project.",
        200,
    ),
    route(
        Practice::PatchProject,
        "PATCH",
        "/user/practice/projects/{project_id}",
        "Update a project.",
        200,
    ),
    route(
        Practice::DeleteProject,
        "DELETE",
        "/user/practice/projects/{project_id}",
        "Delete a project.",
        204,
    ),
    route(
        Practice::CreateFewShot,
        "POST",
        "/user/practice/few-shot-examples",
        "Create a few-shot example.",
        201,
    ),
    route(
        Practice::ListFewShots,
        "GET",
        "/user/practice/few-shot-examples",
        "The few-shot examples the caller sees.",
        200,
    ),
    route(
        Practice::GetFewShot,
        "GET",
        "/user/practice/few-shot-examples/{example_id}",
        "A few-shot example.",
        200,
    ),
    route(
        Practice::PatchFewShot,
        "PATCH",
        "/user/practice/few-shot-examples/{example_id}",
        "Update a few-shot example.",
        200,
    ),
    route(
        Practice::DeleteFewShot,
        "DELETE",
        "/user/practice/few-shot-examples/{example_id}",
        "Delete a few-shot example.",
        204,
    ),
    route(
        Practice::CreateKnowledge,
        "POST",
        "/user/practice/knowledge",
        "Create a knowledge base.",
        201,
    ),
    route(
        Practice::ListKnowledge,
        "GET",
        "/user/practice/knowledge",
        "The knowledge bases the caller sees.",
        200,
    ),
    route(
        Practice::GetKnowledge,
        "GET",
        "/user/practice/knowledge/{knowledge_id}",
        "A knowledge base.",
        200,
    ),
    route(
        Practice::PatchKnowledge,
        "PATCH",
        "/user/practice/knowledge/{knowledge_id}",
        "Update a knowledge base.",
        200,
    ),
    route(
        Practice::DeleteKnowledge,
        "DELETE",
        "/user/practice/knowledge/{knowledge_id}",
        "Delete a knowledge base with its documents.",
        204,
    ),
    route(
        Practice::UploadDocument,
        "POST",
        "/user/practice/knowledge/{knowledge_id}/documents",
        "Upload a document (raw body; file_name query: .txt, .md or .jsonl).",
        201,
    ),
    route(
        Practice::ListDocuments,
        "GET",
        "/user/practice/knowledge/{knowledge_id}/documents",
        "The documents of a knowledge base.",
        200,
    ),
    route(
        Practice::DeleteDocument,
        "DELETE",
        "/user/practice/knowledge/{knowledge_id}/documents/{document_id}",
        "Delete a document.",
        204,
    ),
    route(
        Practice::Search,
        "POST",
        "/user/practice/knowledge/search",
        "BM25 search over knowledge bases: {knowledge_ids, query, k}.",
        200,
    ),
];

/// Every practice route: method, path, summary, success status. The router and
/// the OpenAPI document are both built from this table.
pub const PRACTICE_ROUTES: &[(&str, &str, &str, u16)] = &rows(&PRACTICE);

/// The operations of the instructor side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Instructor {
    Students,
    Sessions,
    Session,
    SessionReads,
    Usage,
    Daily,
    Events,
    Budgets,
    ClassBudget,
    StudentBudget,
}

/// The instructor routes.
pub(crate) const INSTRUCTOR: [Route<Instructor>; 10] = [
    route(
        Instructor::Students,
        "GET",
        "/user/practice/classes/{class_id}/students",
        "Instructors: the class's students with their sessions, turns and last activity.",
        200,
    ),
    route(
        Instructor::Sessions,
        "GET",
        "/user/practice/classes/{class_id}/sessions",
        "Instructors: the sessions of the class's students, newest first (student_id, model_name, agent_id, from, to, has_errors, page, size).",
        200,
    ),
    route(
        Instructor::Session,
        "GET",
        "/user/practice/classes/{class_id}/sessions/{session_id}",
        "Instructors: a student's session, read-only; the read is recorded and its student sees it.",
        200,
    ),
    route(
        Instructor::SessionReads,
        "GET",
        "/user/practice/session-reads",
        "Who (which instructor) read the caller's sessions and when, newest first (session_id, page, size).",
        200,
    ),
    route(
        Instructor::Usage,
        "GET",
        "/user/practice/classes/{class_id}/usage",
        "Instructors: the class's usage in all, per student and per model: runs, calls, tokens, errors, latency percentiles, cost (student_id, model_name, from, to).",
        200,
    ),
    route(
        Instructor::Daily,
        "GET",
        "/user/practice/classes/{class_id}/usage/daily",
        "Instructors: the class's usage per UTC day (student_id, model_name, from, to).",
        200,
    ),
    route(
        Instructor::Events,
        "GET",
        "/user/practice/classes/{class_id}/usage/events",
        "Instructors: the raw usage events, one per model call, newest first (student_id, model_name, from, to, page, size).",
        200,
    ),
    route(
        Instructor::Budgets,
        "GET",
        "/user/practice/classes/{class_id}/budgets",
        "The class's budget and its students' with what is used and left (a student sees the class's and their own).",
        200,
    ),
    route(
        Instructor::ClassBudget,
        "PUT",
        "/user/practice/classes/{class_id}/budget",
        "Instructors: set the class's limits (null: no limit).",
        200,
    ),
    route(
        Instructor::StudentBudget,
        "PUT",
        "/user/practice/classes/{class_id}/students/{student_id}/budget",
        "Instructors: set one student's limits (null: no limit).",
        200,
    ),
];

/// Every instructor route: method, path, summary, success status. The router
/// and the OpenAPI document are both built from this table.
pub const INSTRUCTOR_ROUTES: &[(&str, &str, &str, u16)] = &rows(&INSTRUCTOR);

/// The operations of blind votes, ratings, the leaderboard and the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Votes {
    Vote,
    Rate,
    Leaderboard,
    Export,
}

/// The vote routes.
pub(crate) const VOTE: [Route<Votes>; 4] = [
    route(
        Votes::Vote,
        "POST",
        "/user/practice/sessions/{session_id}/turns/{turn_id}/vote",
        "Vote on a blind turn (best answer by label, tie, all bad, or skip); answers with every label's model.",
        201,
    ),
    route(
        Votes::Rate,
        "POST",
        "/user/practice/results/{response_id}/rating",
        "Rate one answer up or down, with an optional comment (rating again replaces it).",
        200,
    ),
    route(
        Votes::Leaderboard,
        "GET",
        "/user/practice/classes/{class_id}/leaderboard",
        "The class's Bradley–Terry leaderboard of blind votes: scores, bootstrap 95% intervals, vote counts, win-rate matrix.",
        200,
    ),
    route(
        Votes::Export,
        "GET",
        "/user/practice/classes/{class_id}/export",
        "The class's results, votes and ratings as JSONL or CSV, streamed (instructors).",
        200,
    ),
];

/// The vote routes: method, path, summary, success status (documented beside
/// [`PRACTICE_ROUTES`]).
pub const VOTE_ROUTES: &[(&str, &str, &str, u16)] = &rows(&VOTE);

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn no_route_is_listed_twice() {
        let mut seen = BTreeSet::new();
        let tables = [PRACTICE_ROUTES, VOTE_ROUTES, INSTRUCTOR_ROUTES];
        for (method, path, ..) in tables.into_iter().flatten() {
            assert!(seen.insert((*method, *path)), "{method} {path}");
        }
        let served = served_routes();
        for (method, path) in &served {
            assert!(
                seen.insert((method.as_str(), path.as_str())),
                "{method} {path}"
            );
        }
    }
}
