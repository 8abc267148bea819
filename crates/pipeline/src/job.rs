//! The per-request jobs of `sluice trim` and `sluice count`: one request in the
//! sliding-window API's shape in, the JSON object the command prints out.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sluice_core::{BuildError, Model, Profiles, TrimReport, WireMessage};

use crate::stream::{Line, LineError, parse_json, parse_line};

/// Messages each worker thread remembers the count of by default
/// ([`sluice_core::CacheScope::PerThread`]): enough for the recent lines it
/// handled (a history and its continuations are usually neighbours).
pub const COUNTS_PER_THREAD: usize = 32_768;

/// One request: the body of CLOVA's sliding-window API, plus `model` and `id` in
/// batches.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Each message with its JSON text, so that what is kept goes out exactly
    /// as it came.
    messages: Vec<WireMessage>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    id: Option<Value>,
}

impl Request {
    /// The request's `id`, echoed in its output.
    pub fn id(&self) -> Option<&Value> {
        self.id.as_ref()
    }
}

#[derive(Serialize)]
struct Trimmed<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    messages: Vec<&'a WireMessage>,
    report: &'a TrimReport,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Counted<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    /// Each message as it came, with its `count` added.
    messages: Vec<Box<RawValue>>,
    /// Named as in the HTTP token calculator's result.
    #[serde(rename = "reply")]
    reply_tokens: usize,
    total: usize,
}

/// What processed requests add up to, for a batch's summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Requests processed.
    pub lines: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Tokens before trimming, over the requests whose report has them.
    pub tokens_before: u64,
    /// Requests whose report has no `tokensBefore` (dropped turns are not counted).
    pub before_unknown: u64,
    /// Tokens after trimming (the total, for counting).
    pub tokens_after: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Self) {
        self.lines += o.lines;
        self.errors += o.errors;
        self.tokens_before += o.tokens_before;
        self.before_unknown += o.before_unknown;
        self.tokens_after += o.tokens_after;
    }
}

/// What a [`Job`] does with each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Per-message token counts, like the token-calculator API.
    Count,
    /// The sliding window, like the sliding-window API.
    Trim {
        /// `maxTokens` for requests that do not give one.
        max_tokens: i64,
        /// Also count dropped messages, so the report always has `tokensBefore`.
        full_report: bool,
    },
}

/// A resolved job: the profiles that name models, the default model and what to
/// do with each request. It is shared by every worker thread.
///
/// ```
/// use sluice_core::Profiles;
/// use sluice_pipeline::{Job, JobKind};
///
/// let profiles = Profiles::builtin();
/// let job = Job::new(&profiles, "HCX-003", JobKind::Trim { max_tokens: 100, full_report: false })?;
/// let out = job.run_json(r#"{"messages":[{"role":"user","content":"hi"}]}"#)?;
/// assert_eq!(
///     out,
///     r#"{"messages":[{"role":"user","content":"hi"}],"report":{"tokensBefore":9,"tokensAfter":9,"maxTokens":100,"limit":4096,"turnsDropped":0,"messagesDropped":0,"counts":[6]}}"#
/// );
/// let err = job.run_json(r#"{"maxTokens":0,"messages":[{"role":"user","content":"hi"}]}"#).unwrap_err();
/// assert_eq!(err.code, "40001");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Job<'p> {
    profiles: &'p Profiles,
    default_model: Model,
    kind: JobKind,
}

impl<'p> Job<'p> {
    /// A job on `profiles` whose requests without a `model` use `default_model`.
    pub fn new(
        profiles: &'p Profiles,
        default_model: &str,
        kind: JobKind,
    ) -> Result<Self, BuildError> {
        Ok(Self {
            default_model: profiles.model(default_model)?,
            profiles,
            kind,
        })
    }

    fn model_for(&self, request: &Request) -> Result<Model, LineError> {
        match &request.model {
            None => Ok(self.default_model.clone()),
            Some(name) => Ok(self.profiles.model(name)?),
        }
    }

    /// Processes one request given as JSON text; returns the JSON object the
    /// command prints for it, or the error with its code.
    pub fn run_json(&self, text: &str) -> Result<String, LineError> {
        let request: Request = parse_json(text)?;
        self.run(&request).map(|(out, _)| out)
    }

    /// Processes one request; returns the output JSON and its tally.
    pub fn run(&self, request: &Request) -> Result<(String, Tally), LineError> {
        let model = self.model_for(request)?;
        let id = request.id.as_ref();
        match self.kind {
            JobKind::Count => {
                let counts = model.count(&request.messages);
                let out = Counted {
                    id,
                    messages: request
                        .messages
                        .iter()
                        .zip(&counts.per_message)
                        .map(|(m, &count)| m.json_with_count(count))
                        .collect(),
                    reply_tokens: counts.reply,
                    total: counts.total,
                };
                let tally = Tally {
                    tokens_before: counts.total as u64,
                    tokens_after: counts.total as u64,
                    ..Tally::default()
                };
                Ok((serde_json::to_string(&out).expect("serializable"), tally))
            }
            JobKind::Trim {
                max_tokens,
                full_report,
            } => {
                let max_tokens = request.max_tokens.unwrap_or(max_tokens);
                let trim = model
                    .window()
                    .full_report(full_report)
                    .trim(&request.messages, max_tokens)?;
                let report = trim.report();
                let out = Trimmed {
                    id,
                    messages: trim.kept(&request.messages).collect(),
                    report,
                };
                let tally = Tally {
                    tokens_before: report.tokens_before.unwrap_or(0) as u64,
                    before_unknown: u64::from(report.tokens_before.is_none()),
                    tokens_after: report.tokens_after as u64,
                    ..Tally::default()
                };
                Ok((serde_json::to_string(&out).expect("serializable"), tally))
            }
        }
    }

    /// One JSONL line in, one line out; errors become error objects with the
    /// request's `id` and the line number.
    pub fn run_line(&self, line: Line<'_>) -> (String, Tally) {
        let failed = Tally {
            lines: 1,
            errors: 1,
            ..Tally::default()
        };
        let request: Request = match parse_line(&line) {
            Ok(request) => request,
            Err(out) => return (out, failed),
        };
        match self.run(&request) {
            Ok((out, tally)) => (out, Tally { lines: 1, ..tally }),
            Err(error) => (error.into_line(request.id.as_ref(), line.number), failed),
        }
    }
}
