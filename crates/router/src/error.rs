//! Errors, split by phase: [`BuildError`] while loading router files,
//! [`NotFound`] while looking a router up, [`RouteError`] while routing a request.

use std::fmt;
use std::path::Path;

use thiserror::Error;

/// One thing wrong in a router file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The file (or the origin name given to [`crate::Router::from_toml`]).
    pub file: String,
    /// The 1-based line, 0 when the problem belongs to no line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// A router file or directory that cannot be loaded.
///
/// ```
/// use sluice_router::Router;
///
/// let err = Router::from_toml("domains = 3", "routers/x/1.toml").unwrap_err();
/// assert!(err.to_string().contains("routers/x/1.toml"), "{err}");
/// ```
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration is invalid: labels, limits or rules (`65001`).
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
    /// A file or directory could not be read (`50000`).
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file or directory.
        path: String,
        /// What went wrong.
        message: String,
    },
}

fn list(problems: &[Problem]) -> String {
    match problems {
        [] => "invalid router".to_string(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more problems)", rest.len()),
    }
}

impl BuildError {
    /// The CLOVA-style status code: `65001` (invalid labels) for an invalid
    /// configuration, `50000` for an unreadable file.
    pub fn code(&self) -> &'static str {
        match self {
            BuildError::Invalid(_) => "65001",
            BuildError::Io { .. } => "50000",
        }
    }

    /// The same error with the files under `base` named relative to it, so
    /// that a message shown to a client does not reveal where the server
    /// keeps its files.
    ///
    /// ```
    /// use std::path::Path;
    /// use sluice_router::Router;
    ///
    /// let err = Router::from_toml("domains = 3", "/srv/routers/x/1.toml").unwrap_err();
    /// let err = err.relative_to(Path::new("/srv/routers"));
    /// assert!(err.to_string().starts_with("x/1.toml:"), "{err}");
    /// ```
    pub fn relative_to(mut self, base: &Path) -> Self {
        let relative = |file: &mut String| {
            if let Ok(rest) = Path::new(file.as_str()).strip_prefix(base) {
                *file = rest.display().to_string();
            }
        };
        match &mut self {
            BuildError::Invalid(problems) => {
                problems.iter_mut().for_each(|p| relative(&mut p.file));
            }
            BuildError::Io { path, .. } => relative(path),
        }
        self
    }

    /// Every problem found, in file and line order (empty for an I/O error).
    pub fn problems(&self) -> &[Problem] {
        match self {
            BuildError::Invalid(p) => p,
            BuildError::Io { .. } => &[],
        }
    }
}

/// No router with this id and version (`40400`).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("router not found: {router_id} version {version}")]
#[non_exhaustive]
pub struct NotFound {
    /// The id asked for.
    pub router_id: String,
    /// The version asked for.
    pub version: u32,
}

impl NotFound {
    /// No router `router_id` at `version`.
    pub fn new(router_id: impl Into<String>, version: u32) -> Self {
        Self {
            router_id: router_id.into(),
            version,
        }
    }

    /// The CLOVA-style status code, `40400`.
    pub fn code(&self) -> &'static str {
        "40400"
    }
}

/// Why a request cannot be routed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteError {
    /// The query is empty or only whitespace (`40004`).
    #[error("text empty: query must not be empty")]
    EmptyQuery,
    /// The query and history exceed the router's token limit (`65400`).
    #[error("token limit exceeded: the request has {tokens} tokens, the router allows {limit}")]
    TokenLimit {
        /// Prompt tokens of the request.
        tokens: usize,
        /// The router's limit.
        limit: usize,
    },
}

impl RouteError {
    /// The CLOVA-style status code: `40004` (text empty) or `65400` (token limit).
    pub fn code(&self) -> &'static str {
        match self {
            RouteError::EmptyQuery => "40004",
            RouteError::TokenLimit { .. } => "65400",
        }
    }
}
