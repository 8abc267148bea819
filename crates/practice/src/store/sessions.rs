//! Practice sessions: a session has models, turns, and per turn one result per
//! model. A turn and all its results are written in one transaction, after the
//! model calls, so nobody ever reads half a turn.

use serde::Serialize;
use serde_json::Value;

use super::{
    Page, PageRequest, Store, from_json_text, now, on_pool, on_writer, placeholders, to_json_text,
    write_tx,
};
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
    pub error: Option<Value>,
    /// The provider's usage and the retrieval sources used.
    pub token_usage: Value,
    /// Wall time of the model's call.
    pub latency_ms: i64,
    /// The effective generation parameters.
    pub generation_params: Value,
    /// What was sent to the model (messages and parameters).
    pub request: Value,
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
    pub settings: Value,
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
    pub token_usage: Value,
    /// Wall time of the model's call.
    pub latency_ms: i64,
    /// True for the turn's primary model.
    pub is_primary: bool,
    /// The effective generation parameters.
    pub generation_params: Value,
    /// The failure, when the model failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// The provider's finish reason (`stopped` when the client stopped it).
    pub finish_reason: Option<String>,
    /// What the model was really sent, after prompt assembly and the sliding
    /// window: `messages`, the generation parameters, and `window` (messages
    /// before trimming, turns and messages dropped, tokens kept, the limit).
    /// `null` when no call was made.
    pub request: Value,
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
    pub settings: Value,
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

/// Inserts a turn and its results inside transaction `$tx`; adds session models
/// the session does not have yet. Evaluates to the stored turn, built from what
/// was written (the JSON columns read back from their text, as a read would), so
/// that nothing is read again after the commit.
///
/// Performance: every statement is a round trip to the database (for SQLite, a
/// hop to the connection's own thread and back), and a practice run's CPU time
/// went mostly to those hops. A new session has no turns and no models, so it
/// looks neither up; the missing models go in with one statement. A new
/// session's turn with three models went from 15 statements (with `BEGIN` and
/// `COMMIT`) and 2 reads after the commit to 8 statements.
macro_rules! insert_turn {
    ($tx:ident, $session_id:expr, $turn:expr, $at:expr, new_session: $new_session:expr) => {{
        let session_id: i64 = $session_id;
        let turn: &NewTurn = $turn;
        let at: &String = $at;
        let (position, mut models): (i64, Vec<(i64, String)>) = if $new_session {
            (0, Vec::new())
        } else {
            let position = sqlx::query_scalar("SELECT COUNT(*) FROM turns WHERE session_id = $1")
                .bind(session_id)
                .fetch_one(&mut *$tx)
                .await?;
            let models = sqlx::query_as(
                "SELECT id, model_name FROM session_models WHERE session_id = $1 ORDER BY position",
            )
            .bind(session_id)
            .fetch_all(&mut *$tx)
            .await?;
            (position, models)
        };
        let settings = to_json_text(&turn.settings);
        let turn_id: i64 = sqlx::query_scalar(
            "INSERT INTO turns (session_id, position, prompt_text, settings, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(session_id)
        .bind(position)
        .bind(&turn.prompt_text)
        .bind(&settings)
        .bind(at)
        .fetch_one(&mut *$tx)
        .await?;
        let mut missing: Vec<&str> = Vec::new();
        for result in &turn.results {
            let name = result.model_name.as_str();
            if !models.iter().any(|(_, m)| m == name) && !missing.contains(&name) {
                missing.push(name);
            }
        }
        if !missing.is_empty() {
            // Positions continue after the session's models (all read above).
            let values = (0..missing.len())
                .map(|k| format!("($1, ${}, {})", k + 2, models.len() + k))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT INTO session_models (session_id, model_name, position) \
                 VALUES {values} RETURNING id, model_name"
            );
            let mut insert = sqlx::query_as::<_, (i64, String)>(&sql).bind(session_id);
            for name in &missing {
                insert = insert.bind(*name);
            }
            models.extend(insert.fetch_all(&mut *$tx).await?);
        }
        let mut results = Vec::with_capacity(turn.results.len());
        for result in &turn.results {
            let session_model_id = models
                .iter()
                .find(|(_, m)| *m == result.model_name)
                .map(|&(id, _)| id)
                .expect("every model of the turn was found or inserted above");
            let token_usage = to_json_text(&result.token_usage);
            let generation_params = to_json_text(&result.generation_params);
            let error = result.error.as_ref().map(to_json_text);
            let response_id: i64 = sqlx::query_scalar(
                "INSERT INTO results (turn_id, session_model_id, model_name, is_primary, response_text, \
                 error, token_usage, latency_ms, generation_params, request, finish_reason, \
                 upstream_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
            )
            .bind(turn_id)
            .bind(session_model_id)
            .bind(&result.model_name)
            .bind(result.is_primary)
            .bind(&result.response_text)
            .bind(&error)
            .bind(&token_usage)
            .bind(result.latency_ms)
            .bind(&generation_params)
            .bind(to_json_text(&result.request))
            .bind(&result.finish_reason)
            .bind(&result.upstream_id)
            .bind(at)
            .fetch_one(&mut *$tx)
            .await?;
            results.push(StoredResult {
                session_model_id,
                model_name: result.model_name.clone(),
                response_id,
                prompt_text: turn.prompt_text.clone(),
                response_text: result.response_text.clone(),
                created_at: at.clone(),
                token_usage: from_json_text(&token_usage)?,
                latency_ms: result.latency_ms,
                is_primary: result.is_primary,
                generation_params: from_json_text(&generation_params)?,
                error: error.as_deref().map(from_json_text).transpose()?,
                finish_reason: result.finish_reason.clone(),
                request: result.request.clone(),
                label: None,
            });
        }
        if !$new_session {
            sqlx::query("UPDATE sessions SET updated_at = $2 WHERE id = $1")
                .bind(session_id)
                .bind(at)
                .execute(&mut *$tx)
                .await?;
        }
        StoredTurn {
            turn_id,
            position,
            prompt_text: turn.prompt_text.clone(),
            settings: from_json_text(&settings)?,
            created_at: at.clone(),
            results,
            revealed: None,
        }
    }};
}

impl Store {
    /// Stores a new session with its first turn, in one transaction.
    pub async fn create_session(
        &self,
        session: &NewSession,
        turn: &NewTurn,
    ) -> Result<(i64, StoredTurn)> {
        let at = now();
        let (session_id, stored) = write_tx!(self, tx => {
            let session_id: i64 = sqlx::query_scalar(
                "INSERT INTO sessions (user_id, class_id, project_id, agent_id, title, knowledge_ids, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
            )
            .bind(session.user_id)
            .bind(session.class_id)
            .bind(session.project_id)
            .bind(session.agent_id)
            .bind(&session.title)
            .bind(to_json_text(&session.knowledge_ids))
            .bind(&at)
            .fetch_one(&mut *tx)
            .await?;
            let stored = insert_turn!(tx, session_id, turn, &at, new_session: true);
            (session_id, stored)
        });
        Ok((session_id, stored))
    }

    /// Stores the next turn of a session the user owns, in one transaction.
    pub async fn append_turn(
        &self,
        user_id: i64,
        session_id: i64,
        turn: &NewTurn,
    ) -> Result<StoredTurn> {
        let at = now();
        let stored = write_tx!(self, tx => {
            let owned: Option<i64> =
                sqlx::query_scalar("SELECT id FROM sessions WHERE id = $1 AND user_id = $2")
                    .bind(session_id)
                    .bind(user_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if owned.is_none() {
                return Err(PracticeError::NotFound("session"));
            }
            insert_turn!(tx, session_id, turn, &at, new_session: false)
        });
        Ok(stored)
    }

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

    async fn turn(&self, turn_id: i64) -> Result<StoredTurn> {
        type ResultRow = (
            i64,
            String,
            i64,
            Option<String>,
            String,
            String,
            i64,
            bool,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let head: Option<(i64, String, String, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT position, prompt_text, settings, created_at FROM turns WHERE id = $1",
        )
        .bind(turn_id)
        .fetch_optional(pool)
        .await?);
        let (position, prompt_text, settings, created_at) =
            head.ok_or(PracticeError::NotFound("turn"))?;
        let rows: Vec<ResultRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT session_model_id, model_name, id, response_text, created_at, token_usage, \
             latency_ms, is_primary, generation_params, error, finish_reason, request \
             FROM results WHERE turn_id = $1 ORDER BY id",
        )
        .bind(turn_id)
        .fetch_all(pool)
        .await?);
        let results = rows
            .into_iter()
            .map(|r| {
                Ok(StoredResult {
                    session_model_id: r.0,
                    model_name: r.1,
                    response_id: r.2,
                    prompt_text: prompt_text.clone(),
                    response_text: r.3,
                    created_at: r.4,
                    token_usage: from_json_text(&r.5)?,
                    latency_ms: r.6,
                    is_primary: r.7,
                    generation_params: from_json_text(&r.8)?,
                    error: r.9.as_deref().map(from_json_text).transpose()?,
                    finish_reason: r.10,
                    request: r
                        .11
                        .as_deref()
                        .map(from_json_text)
                        .transpose()?
                        .unwrap_or(Value::Null),
                    label: None,
                })
            })
            .collect::<Result<_>>()?;
        Ok(StoredTurn {
            turn_id,
            position,
            prompt_text,
            settings: from_json_text(&settings)?,
            created_at,
            results,
            revealed: None,
        })
    }
}
