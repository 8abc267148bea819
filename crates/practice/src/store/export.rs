//! A class's work as JSONL or CSV, streamed: rows are read from the database
//! one at a time and written in chunks to a bounded channel, so memory stays
//! flat however many results a class has (BENCHMARKS.md, "Export").
//!
//! Every JSONL line is a request that `sluice trim --jsonl` and the Python
//! package read as they are: it carries `messages` and an `id`, and its other
//! fields are metadata they ignore (`id` is echoed in their output). There are
//! three kinds of line, told apart by `kind`:
//!
//! - `result`: one model's answer. `messages` is what the model was really sent
//!   (after prompt assembly and the sliding window), or the prompt alone when no
//!   call was made; with the session, the student, the turn's settings (style,
//!   agent, router domain, blind), the answer, its error, usage
//!   (`token_usage`, `latency_ms`) and the full stored `request`.
//! - `vote`: a blind comparison's verdict, with the models in label order, the
//!   best model, the prompt (as `messages`), agent, style and domain.
//! - `rating`: an answer's up or down with its comment.
//!
//! The field `model` is deliberately absent (logical model names are not
//! profiles, and `sluice trim` would read one per line): the name is in
//! `model_name`. CSV has one header for all three kinds (the columns of a kind
//! that does not have them are empty); a text cell that a spreadsheet would
//! run as a formula (`=`, `+`, `-`, `@`, tab or CR first) is prefixed with `'`.

use futures_util::TryStreamExt as _;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::Row as _;
use tokio::sync::mpsc;

use super::{Store, from_json_text, on_pool};
use crate::error::{PracticeError, Result};

/// Bytes gathered before a chunk is handed on.
const CHUNK: usize = 64 * 1024;

/// The export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object a line.
    Jsonl,
    /// Comma-separated values with a header row (RFC 4180).
    Csv,
}

impl ExportFormat {
    /// `jsonl` or `csv`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "jsonl" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    /// The media type of the export.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Jsonl => "application/jsonl; charset=utf-8",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// Which records go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    /// Results, then votes, then ratings.
    All,
    /// Results only (each a trimmable request).
    Results,
    /// Votes only.
    Votes,
    /// Ratings only.
    Ratings,
}

impl ExportKind {
    /// `all`, `results`, `votes` or `ratings`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "all" => Some(Self::All),
            "results" => Some(Self::Results),
            "votes" => Some(Self::Votes),
            "ratings" => Some(Self::Ratings),
            _ => None,
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExportStats {
    /// Result lines.
    pub results: u64,
    /// Vote lines.
    pub votes: u64,
    /// Rating lines.
    pub ratings: u64,
    /// Bytes written.
    pub bytes: u64,
    /// True when the reader went away before the end (nothing more was read).
    pub cancelled: bool,
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 26] = [
    "kind",
    "id",
    "class_id",
    "session_id",
    "turn_id",
    "user_id",
    "user_name",
    "model_name",
    "is_primary",
    "prompt_text",
    "response_text",
    "error_kind",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "latency_ms",
    "finish_reason",
    "verdict",
    "best_model",
    "models",
    "value",
    "comment",
    "domain",
    "style_preset",
    "agent_id",
    "created_at",
];

const RESULTS_SQL: &str = "SELECT r.id, r.turn_id, t.session_id, t.position, t.prompt_text, t.settings, \
     s.user_id, u.name, s.title, s.project_id, s.agent_id, r.model_name, r.is_primary, \
     r.response_text, r.error, r.token_usage, r.latency_ms, r.generation_params, r.request, \
     r.finish_reason, r.created_at \
     FROM results r JOIN turns t ON t.id = r.turn_id JOIN sessions s ON s.id = t.session_id \
     JOIN users u ON u.id = s.user_id WHERE s.class_id = $1 ORDER BY r.id";

const VOTES_SQL: &str = "SELECT v.id, v.turn_id, v.session_id, v.user_id, u.name, v.verdict, \
     v.best_label, v.best_model, v.models, v.prompt_text, v.agent_id, v.style_preset, v.domain, \
     v.created_at FROM votes v JOIN users u ON u.id = v.user_id WHERE v.class_id = $1 ORDER BY v.id";

const RATINGS_SQL: &str = "SELECT g.id, g.result_id, g.user_id, u.name, g.model_name, g.value, \
     g.comment, g.created_at, t.prompt_text, t.session_id, t.id \
     FROM ratings g JOIN users u ON u.id = g.user_id JOIN results r ON r.id = g.result_id \
     JOIN turns t ON t.id = r.turn_id WHERE g.class_id = $1 ORDER BY g.id";

/// Gathers lines into chunks and hands them to the reader.
struct Writer {
    out: mpsc::Sender<Vec<u8>>,
    buffer: Vec<u8>,
    format: ExportFormat,
    stats: ExportStats,
}

impl Writer {
    /// Adds a record; false when the reader went away.
    async fn record(&mut self, line: &Value) -> bool {
        match self.format {
            ExportFormat::Jsonl => {
                serde_json::to_writer(&mut self.buffer, line).expect("JSON values serialize");
                self.buffer.push(b'\n');
            }
            ExportFormat::Csv => csv_row(&mut self.buffer, line),
        }
        if self.buffer.len() >= CHUNK {
            return self.flush().await;
        }
        true
    }

    async fn flush(&mut self) -> bool {
        if self.buffer.is_empty() {
            return true;
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK + 4096));
        self.stats.bytes += chunk.len() as u64;
        if self.out.send(chunk).await.is_err() {
            self.stats.cancelled = true;
            return false;
        }
        true
    }
}

/// One CSV row of `line`'s fields, in [`CSV_COLUMNS`] order.
fn csv_row(out: &mut Vec<u8>, line: &Value) {
    for (i, column) in CSV_COLUMNS.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let value = match *column {
            "error_kind" => &line["error"]["kind"],
            "prompt_tokens" | "completion_tokens" | "total_tokens" => &line["token_usage"][column],
            "domain" | "style_preset" if line["kind"] == "result" => &line["settings"][column],
            "models" => {
                let text = line["models"]
                    .as_array()
                    .map(|m| {
                        m.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                csv_cell(out, &text, true);
                continue;
            }
            other => &line[other],
        };
        match value {
            Value::Null => {}
            Value::String(s) => csv_cell(out, s, true),
            other => csv_cell(out, &other.to_string(), false),
        }
    }
    out.extend_from_slice(b"\r\n");
}

fn csv_cell(out: &mut Vec<u8>, text: &str, guard: bool) {
    let formula = guard && text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula || text.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        if formula {
            out.push(b'\'');
        }
        out.extend_from_slice(text.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

/// The prompt as the one user message of a line that has no model request.
fn prompt_messages(prompt: &str) -> Value {
    json!([{"role": "user", "content": prompt}])
}

impl Store {
    /// Streams class `class_id`'s records (see the module docs) into `out`, in
    /// chunks of about 64 KiB, and says how many went out. Stops early, without
    /// error, when `out`'s reader goes away.
    pub async fn export_class(
        &self,
        class_id: i64,
        format: ExportFormat,
        kind: ExportKind,
        out: mpsc::Sender<Vec<u8>>,
    ) -> Result<ExportStats> {
        let mut writer = Writer {
            out,
            buffer: Vec::with_capacity(CHUNK + 4096),
            format,
            stats: ExportStats::default(),
        };
        if format == ExportFormat::Csv {
            writer
                .buffer
                .extend_from_slice(CSV_COLUMNS.join(",").as_bytes());
            writer.buffer.extend_from_slice(b"\r\n");
        }
        if matches!(kind, ExportKind::All | ExportKind::Results) {
            on_pool!(self, pool => {
                let mut rows = sqlx::query(RESULTS_SQL).bind(class_id).fetch(pool);
                while let Some(row) = rows.try_next().await? {
                    let prompt: String = row.try_get(4)?;
                    let settings: String = row.try_get(5)?;
                    let error: Option<String> = row.try_get(14)?;
                    let token_usage: String = row.try_get(15)?;
                    let params: String = row.try_get(17)?;
                    let request: Option<String> = row.try_get(18)?;
                    let request: Value = request
                        .as_deref()
                        .map(from_json_text)
                        .transpose()?
                        .unwrap_or(Value::Null);
                    let messages = match request.get("messages") {
                        Some(Value::Array(m)) if !m.is_empty() => Value::Array(m.clone()),
                        _ => prompt_messages(&prompt),
                    };
                    let id: i64 = row.try_get(0)?;
                    let line = json!({
                        "id": format!("result-{id}"),
                        "kind": "result",
                        "messages": messages,
                        "class_id": class_id,
                        "response_id": id,
                        "turn_id": row.try_get::<i64, _>(1)?,
                        "session_id": row.try_get::<i64, _>(2)?,
                        "position": row.try_get::<i64, _>(3)?,
                        "prompt_text": prompt,
                        "settings": from_json_text::<Value>(&settings)?,
                        "user_id": row.try_get::<i64, _>(6)?,
                        "user_name": row.try_get::<String, _>(7)?,
                        "session_title": row.try_get::<Option<String>, _>(8)?,
                        "project_id": row.try_get::<Option<i64>, _>(9)?,
                        "agent_id": row.try_get::<Option<i64>, _>(10)?,
                        "model_name": row.try_get::<String, _>(11)?,
                        "is_primary": row.try_get::<bool, _>(12)?,
                        "response_text": row.try_get::<Option<String>, _>(13)?,
                        "error": error.as_deref().map(from_json_text::<Value>).transpose()?,
                        "token_usage": from_json_text::<Value>(&token_usage)?,
                        "latency_ms": row.try_get::<i64, _>(16)?,
                        "generation_params": from_json_text::<Value>(&params)?,
                        "request": request,
                        "finish_reason": row.try_get::<Option<String>, _>(19)?,
                        "created_at": row.try_get::<String, _>(20)?,
                    });
                    writer.stats.results += 1;
                    if !writer.record(&line).await {
                        return Ok(writer.stats);
                    }
                }
            });
        }
        if matches!(kind, ExportKind::All | ExportKind::Votes) {
            on_pool!(self, pool => {
                let mut rows = sqlx::query(VOTES_SQL).bind(class_id).fetch(pool);
                while let Some(row) = rows.try_next().await? {
                    let id: i64 = row.try_get(0)?;
                    let prompt: String = row.try_get(9)?;
                    let models: String = row.try_get(8)?;
                    let line = json!({
                        "id": format!("vote-{id}"),
                        "kind": "vote",
                        "messages": prompt_messages(&prompt),
                        "class_id": class_id,
                        "vote_id": id,
                        "turn_id": row.try_get::<Option<i64>, _>(1)?,
                        "session_id": row.try_get::<Option<i64>, _>(2)?,
                        "user_id": row.try_get::<i64, _>(3)?,
                        "user_name": row.try_get::<String, _>(4)?,
                        "verdict": row.try_get::<String, _>(5)?,
                        "best_label": row.try_get::<Option<String>, _>(6)?,
                        "best_model": row.try_get::<Option<String>, _>(7)?,
                        "models": from_json_text::<Value>(&models)?,
                        "prompt_text": prompt,
                        "agent_id": row.try_get::<Option<i64>, _>(10)?,
                        "style_preset": row.try_get::<String, _>(11)?,
                        "domain": row.try_get::<String, _>(12)?,
                        "created_at": row.try_get::<String, _>(13)?,
                    });
                    writer.stats.votes += 1;
                    if !writer.record(&line).await {
                        return Ok(writer.stats);
                    }
                }
            });
        }
        if matches!(kind, ExportKind::All | ExportKind::Ratings) {
            on_pool!(self, pool => {
                let mut rows = sqlx::query(RATINGS_SQL).bind(class_id).fetch(pool);
                while let Some(row) = rows.try_next().await? {
                    let id: i64 = row.try_get(0)?;
                    let prompt: String = row.try_get(8)?;
                    let value: i64 = row.try_get(5)?;
                    let line = json!({
                        "id": format!("rating-{id}"),
                        "kind": "rating",
                        "messages": prompt_messages(&prompt),
                        "class_id": class_id,
                        "rating_id": id,
                        "response_id": row.try_get::<i64, _>(1)?,
                        "user_id": row.try_get::<i64, _>(2)?,
                        "user_name": row.try_get::<String, _>(3)?,
                        "model_name": row.try_get::<String, _>(4)?,
                        "value": if value > 0 { "up" } else { "down" },
                        "comment": row.try_get::<Option<String>, _>(6)?,
                        "created_at": row.try_get::<String, _>(7)?,
                        "prompt_text": prompt,
                        "session_id": row.try_get::<i64, _>(9)?,
                        "turn_id": row.try_get::<i64, _>(10)?,
                    });
                    writer.stats.ratings += 1;
                    if !writer.record(&line).await {
                        return Ok(writer.stats);
                    }
                }
            });
        }
        writer.flush().await;
        Ok(writer.stats)
    }

    /// Fails with 404 unless class `class_id` exists (for callers that check
    /// before they start a stream).
    pub async fn class_exists(&self, class_id: i64) -> Result<()> {
        let found: Option<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT id FROM classes WHERE id = $1",
        )
        .bind(class_id)
        .fetch_optional(pool)
        .await?);
        found.map(|_| ()).ok_or(PracticeError::NotFound("class"))
    }
}
