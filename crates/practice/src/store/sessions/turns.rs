//! Turns: a turn and all its results written in one transaction (a new
//! session with its first turn, or a further turn), and one turn read back.

use super::{NewSession, NewTurn, StoredResult, StoredTurn};
use crate::error::{PracticeError, Result};
use crate::store::{Store, from_json_text, now, on_pool, to_json_text, write_tx};

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

    pub(super) async fn turn(&self, turn_id: i64) -> Result<StoredTurn> {
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
                    request: r.11.as_deref().map(from_json_text).transpose()?.flatten(),
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
