//! What can go wrong, split the way a client has to react: bad input (422 with
//! the field's location, or 400), who you are (401), what you may use (403),
//! what does not exist or is not yours (404, the same for both), and failures of
//! the store itself, which are never the client's fault: 503 when they pass
//! (SQLite busy or locked past its busy timeout, PostgreSQL restarting or out
//! of reach; see [`PracticeError::is_unavailable`]), 500 otherwise.

use serde::Serialize;
use serde_json::Value;

use crate::contract::{Blocked, ModelFailure};

/// One invalid field, in the shape FastAPI (pydantic) reports it:
/// `{"loc":["body","generation_params","temperature"],"msg":"...","type":"less_than_equal"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// Where: `"body"`/`"query"`/`"path"`, then keys and list indices.
    pub loc: Vec<Value>,
    /// What is wrong, in words.
    pub msg: String,
    /// pydantic's error type (`missing`, `int_type`, `greater_than_equal`, ...).
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl FieldError {
    /// An error at `loc`.
    pub fn new(loc: Vec<Value>, kind: &'static str, msg: impl Into<String>) -> Self {
        Self {
            loc,
            msg: msg.into(),
            kind,
        }
    }
}

/// `generation_params.temperature: Input should be ...` (the location without
/// its `body`/`query`/`path` head).
impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path: Vec<String> = self
            .loc
            .iter()
            .skip(1)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect();
        if path.is_empty() {
            f.write_str(&self.msg)
        } else {
            write!(f, "{}: {}", path.join("."), self.msg)
        }
    }
}

/// An error of a practice operation.
#[derive(Debug, thiserror::Error)]
pub enum PracticeError {
    /// The request is malformed: every invalid field (422).
    #[error("invalid request: {}", .0.iter().map(FieldError::to_string).collect::<Vec<_>>().join("; "))]
    Validation(Vec<FieldError>),
    /// Well-formed but cannot be served, e.g. a model the class does not allow (400).
    #[error("{0}")]
    BadRequest(String),
    /// No key, an unknown key or a revoked one (401).
    #[error("invalid or missing API key")]
    Unauthorized,
    /// The user may not use this class or object (403).
    #[error("{0}")]
    Forbidden(String),
    /// The object does not exist or the user may not see it: never said which (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A name that must be unique is taken (409).
    #[error("{0}")]
    Conflict(String),
    /// An upload or field is larger than allowed (413).
    #[error("{0}")]
    TooLarge(String),
    /// The router blocked the prompt; no model was called (400). The report
    /// says which domain, content filters and safety categories.
    #[error("the prompt was blocked by the router")]
    Blocked(Blocked),
    /// A budget limit would be passed: the run was refused before any model
    /// was called (429, with `Retry-After`).
    #[error("{}", .0.msg)]
    OverBudget(Box<crate::budget::Refusal>),
    /// Every model of a run failed; each one's error is in the list (502).
    #[error("every model failed")]
    AllModelsFailed(Vec<ModelFailure>),
    /// The database failed. Internal: logged, not shown to clients. 503 when
    /// it [is unavailable](PracticeError::is_unavailable) for now, else 500.
    #[error("store: {0}")]
    Store(#[from] sqlx::Error),
    /// Stored data that cannot be read back (a bug or a hand-edited database).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

impl PracticeError {
    /// The HTTP status the original API answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Validation(_) => 422,
            Self::BadRequest(_) | Self::Blocked(_) => 400,
            Self::Unauthorized => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::TooLarge(_) => 413,
            Self::OverBudget(_) => 429,
            Self::AllModelsFailed(_) => 502,
            Self::Store(_) if self.is_unavailable() => 503,
            Self::Store(_) | Self::Corrupt(_) => 500,
        }
    }

    /// Whether the store failed in a way that passes, so the same request may
    /// succeed if sent again: SQLite busy or locked beyond its busy timeout
    /// (another process holds the write lock), PostgreSQL shutting down,
    /// restarting, refusing connections or out of connection slots, the
    /// connection lost, or no pooled connection free in time. Nothing of the
    /// failed operation was stored: every write is one transaction.
    pub fn is_unavailable(&self) -> bool {
        let Self::Store(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
            sqlx::Error::Database(db) => {
                let Some(code) = db.code() else {
                    return false;
                };
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                    // The extended result code; its low byte is the primary
                    // code: SQLITE_BUSY (5) or SQLITE_LOCKED (6).
                    code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
                } else {
                    // SQLSTATE: class 08 connection exceptions, 57P01-57P03
                    // (admin shutdown, crash shutdown, cannot connect now),
                    // 53300 too many connections.
                    code.starts_with("08")
                        || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
                }
            }
            _ => false,
        }
    }

    /// A validation error for one field.
    pub fn field(loc: Vec<Value>, kind: &'static str, msg: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(loc, kind, msg)])
    }
}

/// A result of a practice operation.
pub type Result<T, E = PracticeError> = std::result::Result<T, E>;
