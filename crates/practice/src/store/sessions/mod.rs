//! Practice sessions: a session has models, turns, and per turn one result per
//! model. A turn and all its results are written in one transaction, after the
//! model calls, so nobody ever reads half a turn.
//!
//! Writing a turn with its results, and reading one back whole, is in
//! `turns`; this module holds the types and the sessions themselves.

mod turns;

use serde::Serialize;

use super::{Page, PageRequest, Store, from_json_text, now, on_pool, on_writer, placeholders};
use crate::contract::{EffectiveParams, ModelError, ResultUsage, SentRequest, TurnSettings};
use crate::error::{PracticeError, Result};

/// One model's answer (or failure) in a turn about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewResult {
    /// The logical model name.
    pub model_name: String,
    /// True for the turn's primary model (exactly one per turn).
    pub is_primary: bool,
    /// The answer; `None` when the model failed.
    pub response_text: Option<String>,
    /// The failure: kind, message, upstream status.
    pub error: Option<ModelError>,
    /// The provider's usage and the retrieval sources used.
    pub token_usage: ResultUsage,
    /// Wall time of the model's call.
    pub latency_ms: i64,
    /// The effective generation parameters.
    pub generation_params: EffectiveParams,
    /// What was sent to the model (messages and parameters); `None` when no
    /// call was made.
    pub request: Option<SentRequest>,
    /// The provider's finish reason.
    pub finish_reason: Option<String>,
    /// The provider's response id.
    pub upstream_id: Option<String>,
}

/// A turn about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTurn {
    /// The user's prompt.
    pub prompt_text: String,
    /// The turn's settings (style, parameters, ids, router verdict).
    pub settings: TurnSettings,
    /// One per model, in the order of the request.
    pub results: Vec<NewResult>,
}

/// A stored result: the fields of the original API's `PracticeTurnModelResult`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredResult {
    /// The session's row for this model.
    pub session_model_id: i64,
    /// The logical model name.
    pub model_name: String,
    /// This result's id.
    pub response_id: i64,
    /// The prompt of the turn.
    pub prompt_text: String,
    /// The answer (`null` when the model failed).
    pub response_text: Option<String>,
    /// When it was stored (RFC 3339 UTC).
    pub created_at: String,
    /// Usage and retrieval sources.
    pub token_usage: ResultUsage,
    /// Wall time of the model's call.
    pub latency_ms: i64,
    /// True for the turn's primary model.
    pub is_primary: bool,
    /// The effective generation parameters.
    pub generation_params: EffectiveParams,
    /// The failure, when the model failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ModelError>,
    /// The provider's finish reason (`stopped` when the client stopped it).
    pub finish_reason: Option<String>,
    /// What the model was really sent, after prompt assembly and the sliding
    /// window: `messages`, the generation parameters, and `window` (messages
    /// before trimming, turns and messages dropped, tokens kept, the limit).
    /// `null` when no call was made.
    pub request: Option<SentRequest>,
    /// The answer's label (`A`, `B`, …) in a blind turn; while the turn has
    /// no vote, `model_name` holds the label too and `request` is `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A stored turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredTurn {
    /// Id.
    pub turn_id: i64,
    /// 0 for the first turn.
    pub position: i64,
    /// The prompt.
    pub prompt_text: String,
    /// The turn's settings.
    pub settings: TurnSettings,
    /// When it was stored.
    pub created_at: String,
    /// One per model.
    pub results: Vec<StoredResult>,
    /// For a blind turn: whether its models are shown (after a vote or a
    /// skip). Absent for an ordinary turn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revealed: Option<bool>,
}

/// A model of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionModel {
    /// Id (`session_model_id`).
    pub session_model_id: i64,
    /// The logical model name.
    pub model_name: String,
}

/// A session in a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSummary {
    /// Id.
    pub session_id: i64,
    /// Its class.
    pub class_id: i64,
    /// Its project, if any.
    pub project_id: Option<i64>,
    /// Its agent, if any.
    pub agent_id: Option<i64>,
    /// Title.
    pub session_title: Option<String>,
    /// The knowledge bases set when it was made.
    pub knowledge_ids: Vec<i64>,
    /// Its models, in order.
    pub models: Vec<SessionModel>,
    /// How many turns it has.
    pub turns: i64,
    /// When it was made.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
}

/// A whole session: the summary and every turn with every result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: SessionSummary,
    /// Every turn, oldest first.
    pub history: Vec<StoredTurn>,
}

/// Which sessions to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only this class's.
    pub class_id: Option<i64>,
    /// Only this project's.
    pub project_id: Option<i64>,
}

/// A change to a session. `Some(None)` clears a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionPatch {
    /// New title.
    pub title: Option<Option<String>>,
    /// New project (must be visible to the user).
    pub project_id: Option<Option<i64>>,
}

/// The settings a session is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// Its owner.
    pub user_id: i64,
    /// Its class.
    pub class_id: i64,
    /// Its project.
    pub project_id: Option<i64>,
    /// Its agent.
    pub agent_id: Option<i64>,
    /// Its title.
    pub title: Option<String>,
    /// Its knowledge bases.
    pub knowledge_ids: Vec<i64>,
}

/// session id, session model id, model name.
type ModelRow = (i64, i64, String);
pub(super) type SummaryRow = (
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    String,
    String,
    String,
);
const SUMMARY_COLUMNS: &str =
    "id, class_id, project_id, agent_id, title, knowledge_ids, created_at, updated_at";

impl Store {
    /// A session the user owns, without its turns.
    pub async fn session_summary(&self, user_id: i64, session_id: i64) -> Result<SessionSummary> {
        let sql = format!("SELECT {SUMMARY_COLUMNS} FROM sessions WHERE id = $1 AND user_id = $2");
        let row: Option<SummaryRow> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(session_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?);
        let row = row.ok_or(PracticeError::NotFound("session"))?;
        Ok(self.summaries(vec![row]).await?.remove(0))
    }

    /// A session the user owns, with every turn and result.
    pub async fn session(&self, user_id: i64, session_id: i64) -> Result<SessionDetail> {
        let summary = self.session_summary(user_id, session_id).await?;
        let turn_ids: Vec<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM turns WHERE session_id = $1 ORDER BY position",
        )
        .bind(session_id)
        .fetch_all(pool)
        .await?);
        let mut history = Vec::with_capacity(turn_ids.len());
        for id in turn_ids {
            history.push(self.turn(id).await?);
        }
        Ok(SessionDetail { summary, history })
    }

    /// One page of the user's sessions, newest first.
    pub async fn list_sessions(
        &self,
        user_id: i64,
        filter: SessionFilter,
        page: PageRequest,
    ) -> Result<Page<SessionSummary>> {
        let condition =
            "user_id = $1 AND ($2 IS NULL OR class_id = $2) AND ($3 IS NULL OR project_id = $3)";
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM sessions WHERE {condition} ORDER BY id DESC LIMIT $4 OFFSET $5"
        );
        let count = format!("SELECT COUNT(*) FROM sessions WHERE {condition}");
        let (rows, total): (Vec<SummaryRow>, i64) = on_pool!(self, pool => (
            sqlx::query_as(&sql)
                .bind(user_id)
                .bind(filter.class_id)
                .bind(filter.project_id)
                .bind(page.size)
                .bind(page.offset())
                .fetch_all(pool)
                .await?,
            sqlx::query_scalar(&count)
                .bind(user_id)
                .bind(filter.class_id)
                .bind(filter.project_id)
                .fetch_one(pool)
                .await?,
        ));
        Ok(Page {
            items: self.summaries(rows).await?,
            total,
            page: page.page,
            size: page.size,
        })
    }

    /// Changes a session's title or project.
    pub async fn update_session(
        &self,
        user_id: i64,
        session_id: i64,
        patch: &SessionPatch,
    ) -> Result<SessionSummary> {
        let current = self.session_summary(user_id, session_id).await?;
        if let Some(Some(project_id)) = patch.project_id {
            self.project(user_id, project_id).await?;
        }
        let title = patch.title.clone().unwrap_or(current.session_title);
        let project_id = patch.project_id.unwrap_or(current.project_id);
        on_writer!(self, pool => sqlx::query(
            "UPDATE sessions SET title = $3, project_id = $4, updated_at = $5 WHERE id = $1 AND user_id = $2",
        )
        .bind(session_id)
        .bind(user_id)
        .bind(title)
        .bind(project_id)
        .bind(now())
        .execute(pool)
        .await?
        .rows_affected());
        self.session_summary(user_id, session_id).await
    }

    /// Deletes a session with its turns and results.
    pub async fn delete_session(&self, user_id: i64, session_id: i64) -> Result<()> {
        let done = on_writer!(self, pool => sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2")
            .bind(session_id)
            .bind(user_id)
            .execute(pool)
            .await?
            .rows_affected());
        if done == 0 {
            return Err(PracticeError::NotFound("session"));
        }
        Ok(())
    }

    pub(super) async fn summaries(&self, rows: Vec<SummaryRow>) -> Result<Vec<SessionSummary>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let list = placeholders(1, ids.len());
        let models_sql = format!(
            "SELECT session_id, id, model_name FROM session_models WHERE session_id IN ({list}) \
             ORDER BY session_id, position"
        );
        let turns_sql = format!(
            "SELECT session_id, COUNT(*) FROM turns WHERE session_id IN ({list}) GROUP BY session_id"
        );
        let (models, turns): (Vec<ModelRow>, Vec<(i64, i64)>) = on_pool!(self, pool => {
            let mut models = sqlx::query_as(&models_sql);
            let mut turns = sqlx::query_as(&turns_sql);
            for id in &ids {
                models = models.bind(*id);
                turns = turns.bind(*id);
            }
            (models.fetch_all(pool).await?, turns.fetch_all(pool).await?)
        });
        rows.into_iter()
            .map(|r| {
                Ok(SessionSummary {
                    session_id: r.0,
                    class_id: r.1,
                    project_id: r.2,
                    agent_id: r.3,
                    session_title: r.4,
                    knowledge_ids: from_json_text(&r.5)?,
                    models: models
                        .iter()
                        .filter(|m| m.0 == r.0)
                        .map(|m| SessionModel {
                            session_model_id: m.1,
                            model_name: m.2.clone(),
                        })
                        .collect(),
                    turns: turns.iter().find(|t| t.0 == r.0).map_or(0, |t| t.1),
                    created_at: r.6,
                    updated_at: r.7,
                })
            })
            .collect()
    }
}
