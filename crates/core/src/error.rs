//! Errors, split by phase: [`BuildError`] while loading configuration and
//! tokenizers, [`TrimError`] while counting or trimming a given input.

use thiserror::Error;

/// A problem with configuration: a profile file, a tokenizer file, a model name.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A tokenizer file could not be loaded.
    #[error("cannot load tokenizer {name}: {message}")]
    Tokenizer {
        /// The file or name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// A profile file is invalid.
    #[error("{path}: {message}")]
    Profile {
        /// The file (or `<builtin>`).
        path: String,
        /// What is wrong, with the line where known.
        message: String,
    },
    /// No profile has this name.
    #[error("model not found: {name} (known: {known})")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The known names, comma separated.
        known: String,
    },
}

impl BuildError {
    /// The CLOVA-style status code for this error (`40080` for an unknown model).
    pub fn code(&self) -> &'static str {
        match self {
            BuildError::UnknownModel { .. } => "40080",
            _ => "50000",
        }
    }
}

/// Why a list of messages cannot be counted or trimmed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrimError {
    /// The message list is empty.
    #[error("invalid parameter: messages must not be empty")]
    EmptyMessages,
    /// `maxTokens` is outside `1..=max`.
    #[error("invalid parameter: maxTokens must be between 1 and {max}, got {got}")]
    MaxTokens {
        /// The value given.
        got: i64,
        /// The profile's largest allowed value.
        max: u32,
    },
    /// The system messages and the newest turn do not fit with `maxTokens`.
    #[error(
        "context length exceeded: {what} need {needed} tokens with maxTokens {max_tokens}, \
         over the limit of {limit}"
    )]
    ContextExceeded {
        /// Which part did not fit.
        what: &'static str,
        /// Tokens needed: the part's tokens plus `maxTokens` (a lower bound when the
        /// part was so large that counting stopped early).
        needed: usize,
        /// `maxTokens` as given.
        max_tokens: u32,
        /// The profile's context limit.
        limit: u32,
    },
}

impl TrimError {
    /// The CLOVA-style status code: `40001` invalid parameter, `40003` context
    /// length exceeded.
    pub fn code(&self) -> &'static str {
        match self {
            TrimError::ContextExceeded { .. } => "40003",
            _ => "40001",
        }
    }
}
