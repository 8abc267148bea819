//! The `/user/practice/...` routes: a thin adapter over [`sluice_practice`].
//! They keep the original product's FastAPI conventions rather than CLOVA's
//! envelope: 201 on create, `{"detail": ...}` on errors, 422 with field
//! locations for invalid input, bearer keys of stored users (or the web app's
//! session cookie).
//!
//! The routes are mounted from the tables in [`routes`](crate::routes), the
//! same rows the OpenAPI document is written from. `sessions` holds runs and
//! sessions, `library` agents, projects, few-shot examples and knowledge,
//! `instructor` the instructor's side and `votes` blind votes, ratings, the
//! leaderboard and the export; `caller` is who calls and `answer` how every
//! route answers.

mod answer;
mod backlog;
mod caller;
mod instructor;
mod library;
mod sessions;
mod votes;

use axum::Router;
use axum::routing::{MethodFilter, MethodRouter, on};

pub(crate) use answer::Detail;
pub use votes::MAX_RESAMPLES;

use crate::routes::{PRACTICE, Practice, mount};
use crate::server::state::AppState;

/// Every practice route (votes and the instructor's included), with their state.
pub(crate) fn routes() -> Router<AppState> {
    mount(&PRACTICE, handler)
        .merge(votes::routes())
        .merge(instructor::routes())
}

/// The handler of each practice operation, for the method its route has.
fn handler(op: Practice, method: MethodFilter) -> MethodRouter<AppState> {
    match op {
        Practice::Me => on(method, sessions::me),
        Practice::Run => on(method, sessions::run),
        Practice::ListSessions => on(method, sessions::list_sessions),
        Practice::GetSession => on(method, sessions::get_session),
        Practice::PatchSession => on(method, sessions::patch_session),
        Practice::DeleteSession => on(method, sessions::delete_session),
        Practice::Chat => on(method, sessions::chat),
        Practice::StopRun => on(method, sessions::stop_run),
        Practice::CreateAgent => on(method, library::create_agent),
        Practice::ListAgents => on(method, library::list_agents),
        Practice::GetAgent => on(method, library::get_agent),
        Practice::PatchAgent => on(method, library::patch_agent),
        Practice::DeleteAgent => on(method, library::delete_agent),
        Practice::CreateProject => on(method, library::create_project),
        Practice::ListProjects => on(method, library::list_projects),
        Practice::GetProject => on(method, library::get_project),
        Practice::PatchProject => on(method, library::patch_project),
        Practice::DeleteProject => on(method, library::delete_project),
        Practice::CreateFewShot => on(method, library::create_few_shot),
        Practice::ListFewShots => on(method, library::list_few_shots),
        Practice::GetFewShot => on(method, library::get_few_shot),
        Practice::PatchFewShot => on(method, library::patch_few_shot),
        Practice::DeleteFewShot => on(method, library::delete_few_shot),
        Practice::CreateKnowledge => on(method, library::create_knowledge),
        Practice::ListKnowledge => on(method, library::list_knowledge),
        Practice::GetKnowledge => on(method, library::get_knowledge),
        Practice::PatchKnowledge => on(method, library::patch_knowledge),
        Practice::DeleteKnowledge => on(method, library::delete_knowledge),
        Practice::UploadDocument => on(method, library::upload_document),
        Practice::ListDocuments => on(method, library::list_documents),
        Practice::DeleteDocument => on(method, library::delete_document),
        Practice::Search => on(method, library::search),
    }
}
