//! Budgets in the database: limits, reservations and their settlement
//! (see [`crate::budget`] for the rules).

use serde::Serialize;

use super::{Backend, Store, now, on_pool, write_tx};
use crate::budget::{LimitKind, Limits, Refusal, Scope, day_of, rfc3339_ms};
use crate::error::{PracticeError, Result};

/// Slack for comparing sums of costs, which are floating point.
const COST_EPSILON: f64 = 1e-9;

/// A run's reservation: its row, and the worst case it reserved.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    /// The `usage_runs` row.
    pub id: i64,
    /// The class.
    pub class_id: i64,
    /// The student (or whoever ran it).
    pub user_id: i64,
    /// Tokens reserved.
    pub tokens: i64,
    /// Cost reserved.
    pub cost: f64,
}

/// One model call of a run, as settled.
#[derive(Debug, Clone, PartialEq)]
pub struct CallUsage {
    /// The logical model name.
    pub model_name: String,
    /// Prompt tokens the provider reported (0 when no call was made).
    pub prompt_tokens: i64,
    /// Answer tokens.
    pub completion_tokens: i64,
    /// The error's kind when the call failed.
    pub error_kind: Option<String>,
    /// Wall time of the call.
    pub latency_ms: i64,
    /// Its cost; `None` when the model has no prices.
    pub cost: Option<f64>,
}

/// What a run really used, to settle its reservation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunUsage {
    /// The session it was stored in, if it was.
    pub session_id: Option<i64>,
    /// Its agent.
    pub agent_id: Option<i64>,
    /// One per model called.
    pub calls: Vec<CallUsage>,
}

impl RunUsage {
    fn tokens(&self) -> i64 {
        self.calls
            .iter()
            .map(|c| c.prompt_tokens + c.completion_tokens)
            .sum()
    }

    fn cost(&self) -> f64 {
        self.calls.iter().filter_map(|c| c.cost).sum()
    }
}

/// One limit of a budget with its usage in the current period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitStatus {
    /// Which limit.
    pub limit: LimitKind,
    /// Its value; `null` when not set.
    pub value: Option<f64>,
    /// Used in the current period (runs in flight count their reservation).
    pub used: f64,
    /// What is left; `null` when not set.
    pub remaining: Option<f64>,
    /// When the period ends (RFC 3339 UTC).
    pub resets_at: String,
}

/// The budget of a class as a whole or of one student, with what is left.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetStatus {
    /// `class` or `student`.
    pub scope: Scope,
    /// The student; `null` for the class.
    pub user_id: Option<i64>,
    /// The student's name; `null` for the class.
    pub user_name: Option<String>,
    /// The limits set.
    pub limits: Limits,
    /// Every kind of limit, set or not, with its usage.
    pub status: Vec<LimitStatus>,
}

type LimitRow = (i64, Option<i64>, Option<i64>, Option<i64>, Option<f64>);

fn limits_of(row: &LimitRow) -> Limits {
    Limits {
        tokens_per_day: row.1,
        tokens_per_week: row.2,
        runs_per_hour: row.3,
        cost_per_month: row.4,
    }
}

/// The usage of `kind` in `period` by the class (`user_id` 0) or one user.
/// Evaluates to an `f64`; `$exec` is a pool or a transaction.
macro_rules! used_since {
    ($exec:expr, $kind:expr, $class_id:expr, $user_id:expr, $period:expr) => {{
        let filter = "FROM usage_runs WHERE class_id = $1 AND ($2 = 0 OR user_id = $2) \
                      AND at_ms >= $3 AND at_ms < $4";
        let (start, end): (i64, i64) = $period;
        match $kind {
            LimitKind::TokensPerDay | LimitKind::TokensPerWeek => {
                let sql = format!("SELECT CAST(COALESCE(SUM(tokens), 0) AS BIGINT) {filter}");
                let v: i64 = sqlx::query_scalar(&sql)
                    .bind($class_id)
                    .bind($user_id)
                    .bind(start)
                    .bind(end)
                    .fetch_one($exec)
                    .await?;
                v as f64
            }
            LimitKind::RunsPerHour => {
                let sql = format!("SELECT COUNT(*) {filter}");
                let v: i64 = sqlx::query_scalar(&sql)
                    .bind($class_id)
                    .bind($user_id)
                    .bind(start)
                    .bind(end)
                    .fetch_one($exec)
                    .await?;
                v as f64
            }
            LimitKind::CostPerMonth => {
                let sql =
                    format!("SELECT CAST(COALESCE(SUM(cost), 0) AS DOUBLE PRECISION) {filter}");
                let v: f64 = sqlx::query_scalar(&sql)
                    .bind($class_id)
                    .bind($user_id)
                    .bind(start)
                    .bind(end)
                    .fetch_one($exec)
                    .await?;
                v
            }
        }
    }};
}

fn check_limits(limits: &Limits) -> Result<()> {
    let ints = [
        ("tokens_per_day", limits.tokens_per_day),
        ("tokens_per_week", limits.tokens_per_week),
        ("runs_per_hour", limits.runs_per_hour),
    ];
    for (name, value) in ints {
        if value.is_some_and(|v| v < 0) {
            return Err(PracticeError::BadRequest(format!(
                "{name} must be 0 or more"
            )));
        }
    }
    if limits
        .cost_per_month
        .is_some_and(|v| !v.is_finite() || v < 0.0)
    {
        return Err(PracticeError::BadRequest(
            "cost_per_month must be a finite number, 0 or more".into(),
        ));
    }
    Ok(())
}

impl Store {
    /// Sets the limits of a class as a whole (`user_id` `None`) or of one of
    /// its members; all `None` removes them.
    pub async fn set_budget(
        &self,
        class_id: i64,
        user_id: Option<i64>,
        limits: &Limits,
    ) -> Result<()> {
        check_limits(limits)?;
        self.class(class_id).await?;
        if let Some(user_id) = user_id {
            if self.role_in(class_id, user_id).await?.is_none() {
                return Err(PracticeError::NotFound("class member"));
            }
        }
        let user_id = user_id.unwrap_or(0);
        write_tx!(self, tx => {
            if limits.is_empty() {
                sqlx::query("DELETE FROM budgets WHERE class_id = $1 AND user_id = $2")
                    .bind(class_id)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            } else {
                sqlx::query(
                    "INSERT INTO budgets (class_id, user_id, tokens_per_day, tokens_per_week, \
                     runs_per_hour, cost_per_month, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (class_id, user_id) DO UPDATE SET \
                     tokens_per_day = excluded.tokens_per_day, tokens_per_week = excluded.tokens_per_week, \
                     runs_per_hour = excluded.runs_per_hour, cost_per_month = excluded.cost_per_month, \
                     updated_at = excluded.updated_at",
                )
                .bind(class_id)
                .bind(user_id)
                .bind(limits.tokens_per_day)
                .bind(limits.tokens_per_week)
                .bind(limits.runs_per_hour)
                .bind(limits.cost_per_month)
                .bind(now())
                .execute(&mut *tx)
                .await?;
            }
        });
        Ok(())
    }

    /// Reserves a run's worst case (`tokens`, `cost`, and one run) for
    /// `user_id` in `class_id` at `now_ms`, or refuses it with the first
    /// limit of the class or the student it would pass. Every replica on the
    /// database serialises here: SQLite's write lock, a row lock on the class
    /// in PostgreSQL.
    pub async fn reserve(
        &self,
        class_id: i64,
        user_id: i64,
        tokens: i64,
        cost: f64,
        now_ms: i64,
    ) -> Result<Reservation> {
        let id = write_tx!(self, tx => {
            if let Backend::Postgres(_) = &*self.backend {
                sqlx::query("SELECT id FROM classes WHERE id = $1 FOR UPDATE")
                    .bind(class_id)
                    .execute(&mut *tx)
                    .await?;
            }
            let rows: Vec<LimitRow> = sqlx::query_as(
                "SELECT user_id, tokens_per_day, tokens_per_week, runs_per_hour, cost_per_month \
                 FROM budgets WHERE class_id = $1 AND (user_id = 0 OR user_id = $2) ORDER BY user_id DESC",
            )
            .bind(class_id)
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
            // The student's own limits first: they are the ones a student can act on.
            for row in &rows {
                let (scope, who) = if row.0 == 0 { (Scope::Class, 0) } else { (Scope::Student, user_id) };
                let limits = limits_of(row);
                for kind in LimitKind::ALL {
                    let Some(limit) = limits.get(kind) else { continue };
                    let used = used_since!(&mut *tx, kind, class_id, who, kind.period(now_ms));
                    let need = kind.amount(tokens, cost);
                    if used + need > limit + COST_EPSILON {
                        return Err(PracticeError::OverBudget(Box::new(Refusal::new(
                            class_id, kind, scope, limit, used, need, now_ms,
                        ))));
                    }
                }
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO usage_runs (class_id, user_id, at_ms, settled, tokens, cost) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(class_id)
            .bind(user_id)
            .bind(now_ms)
            .bind(false)
            .bind(tokens)
            .bind(cost)
            .fetch_one(&mut *tx)
            .await?;
            id
        });
        Ok(Reservation {
            id,
            class_id,
            user_id,
            tokens,
            cost,
        })
    }

    /// Replaces a reservation by what the run really used, and records one
    /// usage event per model call, at `now_ms`.
    pub async fn settle(
        &self,
        reservation: &Reservation,
        usage: &RunUsage,
        now_ms: i64,
    ) -> Result<()> {
        let day = day_of(now_ms);
        write_tx!(self, tx => {
            sqlx::query("UPDATE usage_runs SET settled = $2, tokens = $3, cost = $4 WHERE id = $1")
                .bind(reservation.id)
                .bind(true)
                .bind(usage.tokens())
                .bind(usage.cost())
                .execute(&mut *tx)
                .await?;
            for call in &usage.calls {
                sqlx::query(
                    "INSERT INTO usage_events (run_id, class_id, user_id, session_id, agent_id, \
                     model_name, at_ms, day, prompt_tokens, completion_tokens, error_kind, latency_ms, cost) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(reservation.id)
                .bind(reservation.class_id)
                .bind(reservation.user_id)
                .bind(usage.session_id)
                .bind(usage.agent_id)
                .bind(&call.model_name)
                .bind(now_ms)
                .bind(&day)
                .bind(call.prompt_tokens)
                .bind(call.completion_tokens)
                .bind(&call.error_kind)
                .bind(call.latency_ms)
                .bind(call.cost)
                .execute(&mut *tx)
                .await?;
            }
        });
        Ok(())
    }

    /// The budget of the class as a whole and of every student of it, with
    /// what is used and left at `now_ms`; only `only_user`'s (and the
    /// class's) when given.
    pub async fn budgets(
        &self,
        class_id: i64,
        only_user: Option<i64>,
        now_ms: i64,
    ) -> Result<Vec<BudgetStatus>> {
        self.class(class_id).await?;
        let rows: Vec<LimitRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT user_id, tokens_per_day, tokens_per_week, runs_per_hour, cost_per_month \
             FROM budgets WHERE class_id = $1",
        )
        .bind(class_id)
        .fetch_all(pool)
        .await?);
        let limits = |user_id: i64| {
            rows.iter()
                .find(|r| r.0 == user_id)
                .map(limits_of)
                .unwrap_or_default()
        };
        let mut out = vec![
            self.budget_status(class_id, 0, None, limits(0), now_ms)
                .await?,
        ];
        for member in self.members(class_id).await? {
            let listed = match only_user {
                Some(user) => member.user_id == user,
                None => member.role == super::ClassRole::Student,
            };
            if listed {
                out.push(
                    self.budget_status(
                        class_id,
                        member.user_id,
                        Some(member.user_name),
                        limits(member.user_id),
                        now_ms,
                    )
                    .await?,
                );
            }
        }
        Ok(out)
    }

    async fn budget_status(
        &self,
        class_id: i64,
        user_id: i64,
        user_name: Option<String>,
        limits: Limits,
        now_ms: i64,
    ) -> Result<BudgetStatus> {
        let mut status = Vec::with_capacity(LimitKind::ALL.len());
        for kind in LimitKind::ALL {
            let (start, end) = kind.period(now_ms);
            let used =
                on_pool!(self, pool => used_since!(pool, kind, class_id, user_id, (start, end)));
            let value = limits.get(kind);
            status.push(LimitStatus {
                limit: kind,
                value,
                used,
                remaining: value.map(|v| (v - used).max(0.0)),
                resets_at: rfc3339_ms(end),
            });
        }
        Ok(BudgetStatus {
            scope: if user_id == 0 {
                Scope::Class
            } else {
                Scope::Student
            },
            user_id: (user_id != 0).then_some(user_id),
            user_name,
            limits,
            status,
        })
    }
}
