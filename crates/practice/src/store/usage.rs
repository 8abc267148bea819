//! Usage of a class: the raw events (one per model call), and their
//! aggregates per student, per model and per day.
//!
//! The aggregates are computed here from the filtered events, not in SQL, so
//! that percentiles and sums are the same on both databases.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Page, PageRequest, Store, on_pool};
use crate::error::Result;

/// Which events: every field narrows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilter {
    /// Only this student's.
    pub student_id: Option<i64>,
    /// Only this model's.
    pub model_name: Option<String>,
    /// At or after this time (ms since the epoch).
    pub from_ms: Option<i64>,
    /// Before this time.
    pub to_ms: Option<i64>,
}

/// One model call of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageEvent {
    /// Id.
    pub id: i64,
    /// The run it belongs to.
    pub run_id: i64,
    /// Who ran it.
    pub user_id: i64,
    /// Their name.
    pub user_name: String,
    /// The session it was stored in.
    pub session_id: Option<i64>,
    /// The agent of the run.
    pub agent_id: Option<i64>,
    /// The logical model name.
    pub model_name: String,
    /// When it was settled (RFC 3339 UTC).
    pub at: String,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Answer tokens.
    pub completion_tokens: i64,
    /// The error's kind, when the call failed.
    pub error_kind: Option<String>,
    /// Wall time of the call.
    pub latency_ms: i64,
    /// Its cost; `null` when the model has no prices.
    pub cost: Option<f64>,
}

/// Aggregates over a set of events.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UsageStats {
    /// Runs (a new session or a next turn).
    pub runs: i64,
    /// Model calls.
    pub calls: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Answer tokens.
    pub completion_tokens: i64,
    /// Failed calls.
    pub errors: i64,
    /// Median latency of the calls (nearest rank); `null` with no calls.
    pub latency_p50_ms: Option<i64>,
    /// 90th percentile.
    pub latency_p90_ms: Option<i64>,
    /// 99th percentile.
    pub latency_p99_ms: Option<i64>,
    /// The cost of the calls to models with prices; `null` when none had any.
    pub cost: Option<f64>,
}

/// Usage of a class per student and per model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageSummary {
    /// Every event.
    pub totals: UsageStats,
    /// Per student, by name.
    pub by_student: Vec<StudentUsage>,
    /// Per model, by name.
    pub by_model: Vec<ModelUsage>,
}

/// One student's usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudentUsage {
    /// The student.
    pub user_id: i64,
    /// Their name.
    pub user_name: String,
    /// Their usage.
    #[serde(flatten)]
    pub stats: UsageStats,
}

/// One model's usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelUsage {
    /// The logical model name.
    pub model_name: String,
    /// Its usage.
    #[serde(flatten)]
    pub stats: UsageStats,
}

/// One UTC day's usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyUsage {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// The day's usage.
    #[serde(flatten)]
    pub stats: UsageStats,
}

const EVENT_COLUMNS: &str = "e.id, e.run_id, e.user_id, COALESCE(u.name, ''), e.session_id, \
     e.agent_id, e.model_name, e.at_ms, e.prompt_tokens, e.completion_tokens, e.error_kind, \
     e.latency_ms, e.cost, e.day";
const EVENTS: &str = "FROM usage_events e LEFT JOIN users u ON u.id = e.user_id \
     WHERE e.class_id = $1 AND ($2 IS NULL OR e.user_id = $2) AND ($3 IS NULL OR e.model_name = $3) \
     AND ($4 IS NULL OR e.at_ms >= $4) AND ($5 IS NULL OR e.at_ms < $5)";

type EventRow = (
    i64,
    i64,
    i64,
    String,
    Option<i64>,
    Option<i64>,
    String,
    i64,
    i64,
    i64,
    Option<String>,
    i64,
    Option<f64>,
    String,
);

fn event(row: &EventRow) -> UsageEvent {
    UsageEvent {
        id: row.0,
        run_id: row.1,
        user_id: row.2,
        user_name: row.3.clone(),
        session_id: row.4,
        agent_id: row.5,
        model_name: row.6.clone(),
        at: crate::budget::rfc3339_ms(row.7),
        prompt_tokens: row.8,
        completion_tokens: row.9,
        error_kind: row.10.clone(),
        latency_ms: row.11,
        cost: row.12,
    }
}

/// The nearest-rank percentile `p` (0..=100) of sorted values.
fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

fn stats<'a>(rows: impl IntoIterator<Item = &'a EventRow>) -> UsageStats {
    let mut out = UsageStats::default();
    let mut runs = std::collections::BTreeSet::new();
    let mut latencies = Vec::new();
    for r in rows {
        runs.insert(r.1);
        out.calls += 1;
        out.prompt_tokens += r.8;
        out.completion_tokens += r.9;
        out.errors += i64::from(r.10.is_some());
        latencies.push(r.11);
        if let Some(cost) = r.12 {
            *out.cost.get_or_insert(0.0) += cost;
        }
    }
    out.runs = runs.len() as i64;
    latencies.sort_unstable();
    out.latency_p50_ms = percentile(&latencies, 50);
    out.latency_p90_ms = percentile(&latencies, 90);
    out.latency_p99_ms = percentile(&latencies, 99);
    out
}

impl Store {
    async fn usage_rows(
        &self,
        class_id: i64,
        filter: &UsageFilter,
        page: Option<PageRequest>,
    ) -> Result<Vec<EventRow>> {
        let (limit, offset) = page.map_or((i64::MAX, 0), |p| (p.size, p.offset()));
        let sql = format!("SELECT {EVENT_COLUMNS} {EVENTS} ORDER BY e.id DESC LIMIT $6 OFFSET $7");
        Ok(on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(class_id)
            .bind(filter.student_id)
            .bind(&filter.model_name)
            .bind(filter.from_ms)
            .bind(filter.to_ms)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?))
    }

    /// One page of a class's usage events, newest first.
    pub async fn usage_events(
        &self,
        class_id: i64,
        filter: &UsageFilter,
        page: PageRequest,
    ) -> Result<Page<UsageEvent>> {
        let rows = self.usage_rows(class_id, filter, Some(page)).await?;
        let count = format!("SELECT COUNT(*) {EVENTS}");
        let total: i64 = on_pool!(self, pool => sqlx::query_scalar(&count)
            .bind(class_id)
            .bind(filter.student_id)
            .bind(&filter.model_name)
            .bind(filter.from_ms)
            .bind(filter.to_ms)
            .fetch_one(pool)
            .await?);
        Ok(Page {
            items: rows.iter().map(event).collect(),
            total,
            page: page.page,
            size: page.size,
        })
    }

    /// A class's usage in all, per student and per model.
    pub async fn usage_summary(&self, class_id: i64, filter: &UsageFilter) -> Result<UsageSummary> {
        let rows = self.usage_rows(class_id, filter, None).await?;
        let mut students: BTreeMap<(String, i64), Vec<&EventRow>> = BTreeMap::new();
        let mut models: BTreeMap<&str, Vec<&EventRow>> = BTreeMap::new();
        for r in &rows {
            students.entry((r.3.clone(), r.2)).or_default().push(r);
            models.entry(r.6.as_str()).or_default().push(r);
        }
        Ok(UsageSummary {
            totals: stats(&rows),
            by_student: students
                .into_iter()
                .map(|((user_name, user_id), rows)| StudentUsage {
                    user_id,
                    user_name,
                    stats: stats(rows),
                })
                .collect(),
            by_model: models
                .into_iter()
                .map(|(model_name, rows)| ModelUsage {
                    model_name: model_name.to_string(),
                    stats: stats(rows),
                })
                .collect(),
        })
    }

    /// A class's usage per UTC day, oldest first (days without usage left out).
    pub async fn usage_daily(
        &self,
        class_id: i64,
        filter: &UsageFilter,
    ) -> Result<Vec<DailyUsage>> {
        let rows = self.usage_rows(class_id, filter, None).await?;
        let mut days: BTreeMap<&str, Vec<&EventRow>> = BTreeMap::new();
        for r in &rows {
            days.entry(r.13.as_str()).or_default().push(r);
        }
        Ok(days
            .into_iter()
            .map(|(day, rows)| DailyUsage {
                day: day.to_string(),
                stats: stats(rows),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 90), Some(90));
        assert_eq!(percentile(&v, 99), Some(99));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[1, 2, 3], 50), Some(2));
    }
}
