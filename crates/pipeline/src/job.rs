//! The per-request jobs of `sluice trim` and `sluice count`: one request in the
//! sliding-window API's shape in, the JSON object the command prints out.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use sluice_core::{
    BuildError, Model, Profiles, TrimReport, WindowMessage, WireMessage, WireMessageRef,
};

use crate::stream::{Line, LineError, parse_json, parse_line};

/// Messages each worker thread remembers the count of by default
/// ([`sluice_core::CacheScope::PerThread`]): enough for the recent lines it
/// handled (a history and its continuations are usually neighbours).
pub const COUNTS_PER_THREAD: usize = 32_768;

/// One request: the body of CLOVA's sliding-window API, plus `model` and `id` in
/// batches.
///
/// Its messages are [`WireMessage`]s by default; a `Request<WireMessageRef<'a>>`
/// borrows them from the text it was read from (see [`Job::run_json`]).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request<M = WireMessage> {
    /// Each message with its JSON text, so that what is kept goes out exactly
    /// as it came.
    messages: Vec<M>,
    #[serde(default)]
    max_tokens: Option<i64>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    id: Option<Value>,
}

/// A request whose messages borrow their text from the line it was read from.
type BorrowedRequest<'a> = Request<WireMessageRef<'a>>;

impl<M> Request<M> {
    /// The request's `id`, echoed in its output.
    pub fn id(&self) -> Option<&Value> {
        self.id.as_ref()
    }
}

#[derive(Serialize)]
struct Trimmed<'a, M> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    messages: Vec<&'a M>,
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
        Ok(Self::with_model(
            profiles,
            profiles.model(default_model)?,
            kind,
        ))
    }

    /// A job on `profiles` whose requests without a `model` use
    /// `default_model`, a model already built (from another set of profiles,
    /// say).
    pub fn with_model(profiles: &'p Profiles, default_model: Model, kind: JobKind) -> Self {
        Self {
            profiles,
            default_model,
            kind,
        }
    }

    fn model_for<M>(&self, request: &Request<M>) -> Result<Model, LineError> {
        self.model_named(request.model.as_deref())
    }

    /// The model a request naming `name` uses: that profile, or the default
    /// when it names none.
    pub(crate) fn model_named(&self, name: Option<&str>) -> Result<Model, LineError> {
        match name {
            None => Ok(self.default_model.clone()),
            Some(name) => Ok(self.profiles.model(name)?),
        }
    }

    /// What the job does with each request.
    #[cfg(feature = "arrow")]
    pub(crate) fn kind(&self) -> JobKind {
        self.kind
    }

    /// Processes one request given as JSON text; returns the JSON object the
    /// command prints for it, or the error with its code.
    ///
    /// Performance: a trim reads the request's messages borrowed from `text`
    /// ([`WireMessageRef`]): no message text is copied, whether the message is
    /// kept or dropped. Every message is still read in full, so a malformed one
    /// is refused wherever it is; the error is then made by reading the text
    /// again as a [`Request`], which tracks the field path, so it is word for
    /// word the error of [`parse_json`].
    pub fn run_json(&self, text: &str) -> Result<String, LineError> {
        match self.read_borrowed(text) {
            Some(request) => self.run_borrowed(&request),
            None => self.run(&parse_json::<Request>(text)?),
        }
        .map(|(out, _)| out)
    }

    /// `text` as a request with borrowed messages, for a trim; `None` for a
    /// count, or when the text is not a valid request (then the caller reads it
    /// as a [`Request`], which says what is wrong).
    fn read_borrowed<'a>(&self, text: &'a str) -> Option<BorrowedRequest<'a>> {
        match self.kind {
            JobKind::Trim { .. } => serde_json::from_str(text).ok(),
            JobKind::Count => None,
        }
    }

    /// [`Job::run`] of a request with borrowed messages (a trim).
    fn run_borrowed(&self, request: &BorrowedRequest<'_>) -> Result<(String, Tally), LineError> {
        match self.kind {
            JobKind::Trim {
                max_tokens,
                full_report,
            } => self.trim(request, max_tokens, full_report),
            JobKind::Count => unreachable!("a count reads its request as a `Request`"),
        }
    }

    /// Processes one request; returns the output JSON and its tally.
    pub fn run(&self, request: &Request) -> Result<(String, Tally), LineError> {
        match self.kind {
            JobKind::Count => {
                let model = self.model_for(request)?;
                let id = request.id.as_ref();
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
            } => self.trim(request, max_tokens, full_report),
        }
    }

    /// The sliding window over `request`'s messages, owned or borrowed.
    fn trim<M: WindowMessage + Serialize>(
        &self,
        request: &Request<M>,
        max_tokens: i64,
        full_report: bool,
    ) -> Result<(String, Tally), LineError> {
        let model = self.model_for(request)?;
        let max_tokens = request.max_tokens.unwrap_or(max_tokens);
        let trim = model
            .window()
            .full_report(full_report)
            .trim(&request.messages, max_tokens)?;
        let report = trim.report();
        let out = Trimmed {
            id: request.id.as_ref(),
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

    /// One JSONL line in, one line out; errors become error objects with the
    /// request's `id` and the line number.
    ///
    /// A trim reads the line's messages borrowed from it, as
    /// [`Job::run_json`] does, with the same errors.
    pub fn run_line(&self, line: Line<'_>) -> (String, Tally) {
        let failed = Tally {
            lines: 1,
            errors: 1,
            ..Tally::default()
        };
        let borrowed = line
            .text
            .as_ref()
            .ok()
            .and_then(|text| self.read_borrowed(text));
        let owned: Request;
        let (done, id) = match &borrowed {
            Some(request) => (self.run_borrowed(request), request.id()),
            None => match parse_line(&line) {
                Ok(request) => {
                    owned = request;
                    (self.run(&owned), owned.id())
                }
                Err(out) => return (out, failed),
            },
        };
        match done {
            Ok((out, tally)) => (out, Tally { lines: 1, ..tally }),
            Err(error) => (error.into_line(id, line.number), failed),
        }
    }
}
