//! The batch work on Arrow record batches (the `arrow` feature): a [`Job`]
//! trims or counts, and a [`RouteJob`] routes, every row of a batch on all
//! cores, in row order. A bad row gets an `error` entry (the API's code and
//! message, as a bad JSONL line does) while the others go on; a batch that
//! cannot be read at all (a column missing or of the wrong type) is a
//! [`BatchError`].
//!
//! Rows use the same per-request rules as the JSONL commands: a `model` column
//! picks the row's profile ([`Job`]'s default where it is null or absent), a
//! `max_tokens` column its `maxTokens`. The output batch reuses every input
//! column but the one it replaces (the trimmed `messages`), so nothing is
//! copied that the work did not change.
//!
//! Input columns:
//! - `messages`: a list (or large list) of structs with `role` and `content`
//!   strings (any Arrow string type) and optionally `name`, `tool_call_id` (or
//!   `toolCallId`) and `tool_calls` (or `toolCalls`: a list of structs with
//!   `id`, optionally `type`, and `function`, a struct of `name` and
//!   `arguments`, a string holding JSON);
//! - for routing, `query` and optionally `chatHistory` (or `chat_history`).
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{ArrayRef, RecordBatch, StringArray, StructArray, ListArray};
//! use arrow_array::cast::AsArray;
//! use arrow_buffer::OffsetBuffer;
//! use arrow_schema::{DataType, Field, Fields};
//! use sluice_core::Profiles;
//! use sluice_pipeline::{Job, JobKind};
//!
//! let fields = Fields::from(vec![
//!     Field::new("role", DataType::Utf8, true),
//!     Field::new("content", DataType::Utf8, true),
//! ]);
//! let messages = StructArray::new(
//!     fields.clone(),
//!     vec![
//!         Arc::new(StringArray::from(vec!["user"])) as ArrayRef,
//!         Arc::new(StringArray::from(vec!["hello"])),
//!     ],
//!     None,
//! );
//! let list = ListArray::new(
//!     Arc::new(Field::new("item", DataType::Struct(fields), true)),
//!     OffsetBuffer::from_lengths([1]),
//!     Arc::new(messages),
//!     None,
//! );
//! let batch = RecordBatch::try_from_iter([("messages", Arc::new(list) as ArrayRef)])?;
//!
//! let profiles = Profiles::builtin();
//! let job = Job::new(&profiles, "HCX-003", JobKind::Count)?;
//! let counted = job.run_batch(&batch)?;
//! let total = counted.column_by_name("total").unwrap().as_primitive::<arrow_array::types::Int64Type>();
//! assert_eq!(total.value(0), 9); // "hello" and the reply prefix
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod read;
mod write;

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{DataType, Field};
use rayon::prelude::*;
use sluice_core::{Counts, Trim, TrimReport};
use sluice_router::{FilterResult, RouteRequest, RouteResult, Usage};

use crate::route::RouteJob;
use crate::{Job, JobKind, LineError};
use read::{Integers, Lists, MessageFields, Strings, read_rows};
use write::{
    assemble, error_column, int64, int64_lists, string_lists, strings, structure, validity,
};

/// A batch that cannot be processed as a whole: a column is missing or has the
/// wrong type, or the output would clash with an input column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BatchError(String);

impl BatchError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl Job<'_> {
    /// Trims or counts (as the job's [`JobKind`] says) every row of `batch`.
    ///
    /// A trim replaces `messages` with the kept ones and appends `report` (the
    /// sliding-window API's report, `counts` included) and `error`; a count
    /// appends `counts` (per message), `reply`, `total` and `error`. A failed
    /// row's results are null and its `error` is `{code, message}`.
    pub fn run_batch(&self, batch: &RecordBatch) -> Result<RecordBatch, BatchError> {
        let models = batch
            .column_by_name("model")
            .map(|c| Strings::of(c.as_ref(), "model"))
            .transpose()?;
        let model = |row: usize| self.model_named(models.as_ref().and_then(|m| m.get(row)));
        match self.kind() {
            JobKind::Trim {
                max_tokens,
                full_report,
            } => {
                let limits = Integers::of(batch, "max_tokens")?;
                let (lists, rows) = read_rows(batch, |row, messages| {
                    let max_tokens = limits.get(row).unwrap_or(max_tokens);
                    let trim: Trim = model(row)?
                        .window()
                        .full_report(full_report)
                        .trim(&messages, max_tokens)?;
                    Ok(trim)
                })?;
                trimmed(batch, &lists, &rows)
            }
            JobKind::Count => {
                let (_, rows) = read_rows(batch, |row, messages| Ok(model(row)?.count(&messages)))?;
                counted(batch, &rows)
            }
        }
    }
}

fn trimmed(
    batch: &RecordBatch,
    lists: &Lists<'_>,
    rows: &[Result<Trim, LineError>],
) -> Result<RecordBatch, BatchError> {
    let kept: Vec<Option<Vec<usize>>> = rows
        .iter()
        .enumerate()
        .map(|(row, r)| {
            let start = lists.range(row).map_or(0, |r| r.start);
            r.as_ref()
                .ok()
                .map(|t| t.kept_indices().map(|i| start + i).collect())
        })
        .collect();
    let reports: Vec<Option<&TrimReport>> = rows
        .iter()
        .map(|r| r.as_ref().ok().map(Trim::report))
        .collect();
    let field = |f: fn(&TrimReport) -> Option<usize>| {
        int64(reports.iter().map(|r| r.and_then(f).map(|n| n as i64)))
    };
    let report = structure(
        "report",
        vec![
            ("tokensBefore", field(|r| r.tokens_before)),
            ("tokensAfter", field(|r| Some(r.tokens_after))),
            ("maxTokens", field(|r| Some(r.max_tokens))),
            ("limit", field(|r| Some(r.limit))),
            ("turnsDropped", field(|r| Some(r.turns_dropped))),
            ("messagesDropped", field(|r| Some(r.messages_dropped))),
            (
                "counts",
                int64_lists(reports.iter().map(|r| r.map(|r| r.counts.as_slice()))),
            ),
        ],
        Some(validity(rows)),
    )?;
    assemble(
        batch,
        vec![("messages", lists.take(&kept)?)],
        vec![report, error_column(rows)?],
    )
}

fn counted(
    batch: &RecordBatch,
    rows: &[Result<Counts, LineError>],
) -> Result<RecordBatch, BatchError> {
    let counts: Vec<Option<&Counts>> = rows.iter().map(|r| r.as_ref().ok()).collect();
    let columns = vec![
        (
            Field::new("counts", DataType::new_list(DataType::Int64, true), true),
            int64_lists(counts.iter().map(|c| c.map(|c| c.per_message.as_slice()))),
        ),
        (
            Field::new("reply", DataType::Int64, true),
            int64(counts.iter().map(|c| c.map(|c| c.reply as i64))),
        ),
        (
            Field::new("total", DataType::Int64, true),
            int64(counts.iter().map(|c| c.map(|c| c.total as i64))),
        ),
        error_column(rows)?,
    ];
    assemble(batch, Vec::new(), columns)
}

impl RouteJob<'_> {
    /// Routes every row of `batch`: its `query` column, with the row's
    /// `chatHistory` (or `chat_history`) when the batch has one. Appends
    /// `domain`, `blockedContent`, `safety` and `usage` (the router API's
    /// result; the explanation is not part of a batch) and `error`.
    pub fn run_batch(&self, batch: &RecordBatch) -> Result<RecordBatch, BatchError> {
        let query = batch
            .column_by_name("query")
            .ok_or_else(|| BatchError::new("the batch has no query column"))?;
        let queries = Strings::of(query.as_ref(), "query")?;
        let history = match Lists::of(batch, "chatHistory")? {
            Some(h) => Some(h),
            None => Lists::of(batch, "chat_history")?,
        };
        let history_fields = history
            .as_ref()
            .map(|h| MessageFields::of(h.values(), "chatHistory"))
            .transpose()?;
        let rows: Vec<Result<RouteResult, LineError>> = (0..batch.num_rows())
            .into_par_iter()
            .map(|row| {
                let mut request = RouteRequest::new(queries.get(row).unwrap_or_default());
                if let (Some(lists), Some(fields)) = (&history, &history_fields)
                    && let Some(range) = lists.range(row)
                {
                    request.chat_history = fields.messages(range)?;
                }
                Ok(self.router().route(&request)?)
            })
            .collect();
        routed(batch, &rows)
    }
}

fn routed(
    batch: &RecordBatch,
    rows: &[Result<RouteResult, LineError>],
) -> Result<RecordBatch, BatchError> {
    let results: Vec<Option<&RouteResult>> = rows.iter().map(|r| r.as_ref().ok()).collect();
    let nulls = validity(rows);
    let booleans = |f: &dyn Fn(&RouteResult) -> bool| -> ArrayRef {
        Arc::new(results.iter().map(|r| r.map(f)).collect::<BooleanArray>())
    };
    let domain = structure(
        "domain",
        vec![
            (
                "result",
                strings(results.iter().map(|r| r.map(|r| r.domain.result.clone()))),
            ),
            ("called", booleans(&|r| r.domain.called)),
        ],
        Some(nulls.clone()),
    )?;
    let filter = |name: &str, f: fn(&RouteResult) -> &FilterResult| {
        structure(
            name,
            vec![
                (
                    "result",
                    string_lists(results.iter().map(|r| r.map(|r| f(r).result.as_slice()))),
                ),
                ("called", booleans(&|r| f(r).called)),
            ],
            Some(nulls.clone()),
        )
    };
    let usage =
        |f: fn(&Usage) -> usize| int64(results.iter().map(|r| r.map(|r| f(&r.usage) as i64)));
    let usage = structure(
        "usage",
        vec![
            ("promptTokens", usage(|u| u.prompt_tokens)),
            ("completionTokens", usage(|u| u.completion_tokens)),
            ("totalTokens", usage(|u| u.total_tokens)),
        ],
        Some(nulls.clone()),
    )?;
    assemble(
        batch,
        Vec::new(),
        vec![
            domain,
            filter("blockedContent", |r| &r.blocked_content)?,
            filter("safety", |r| &r.safety)?,
            usage,
            error_column(rows)?,
        ],
    )
}
