//! Errors, split by phase: [`BuildError`] while loading configuration and
//! tokenizers, [`TrimError`] while counting or trimming a given input.

use thiserror::Error;

/// A problem with configuration: a profile file, a tokenizer file, a model name.
///
/// ```
/// use sluice_core::{BuildError, Profiles};
///
/// let err = Profiles::builtin().model("no-such-model").unwrap_err();
/// assert!(matches!(err, BuildError::UnknownModel { .. }));
/// assert_eq!(err.code(), "40080");
/// ```
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
///
/// ```
/// use sluice_core::{Message, Profiles, TrimError};
///
/// let model = Profiles::builtin().model("HCX-003").unwrap();
/// assert_eq!(model.trim(&Vec::<Message>::new(), 100).unwrap_err(), TrimError::EmptyMessages);
/// let err = model.trim(&[Message::user("hi")], 0).unwrap_err();
/// assert!(matches!(err, TrimError::MaxTokens { got: 0, .. }));
/// assert!(err.to_string().starts_with("invalid parameter: maxTokens"));
/// ```
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrimError {
    /// The message list is empty.
    #[error("invalid parameter: messages must not be empty")]
    EmptyMessages,
    /// `maxTokens` is outside `1..=max`.
    #[error("invalid parameter: maxTokens must be between 1 and {max}, got {got}")]
    MaxTokens {
        /// The value given, as it came in (signed, so that `-1` from the wire is
        /// reported as it was sent).
        got: i64,
        /// The largest allowed value ([`crate::Window::max_output`]).
        max: usize,
    },
    /// What must be kept does not fit the context with `maxTokens`.
    ///
    /// The numbers are kept apart so that none is hidden in another: the request
    /// needs `message_tokens + reply_tokens + max_tokens` tokens in all (see
    /// [`TrimError::needed`]) and the limit is `limit`.
    #[error("context length exceeded: {}", exceeded_text(*kind, *message_tokens, *reply_tokens, *max_tokens, *limit))]
    ContextExceeded {
        /// Which part did not fit.
        kind: Exceeded,
        /// Tokens of the messages that must be kept, as the counter counts them:
        /// the system messages for [`Exceeded::SystemMessages`], the system
        /// messages plus the newest turn for [`Exceeded::NewestTurn`], `0` for
        /// [`Exceeded::MaxTokens`]. Neither the reply prefix nor `maxTokens` is
        /// included. Saturates at `usize::MAX` (a counter that cannot give a count).
        message_tokens: usize,
        /// Tokens of the reply prefix, counted once per request
        /// ([`crate::MessageCounter::reply_tokens`]).
        reply_tokens: usize,
        /// `maxTokens` as given.
        max_tokens: usize,
        /// The context limit.
        limit: usize,
    },
}

/// Which part of a request does not fit the context, for
/// [`TrimError::ContextExceeded`].
///
/// ```
/// use sluice_core::{Exceeded, Message, Profiles, TrimError};
///
/// let model = Profiles::builtin().model("HCX-003").unwrap();
/// let long_system = Message::system("word ".repeat(5000));
/// let err = model.trim(&[long_system, Message::user("hi")], 100).unwrap_err();
/// let TrimError::ContextExceeded { kind, .. } = err else { panic!("{err}") };
/// assert_eq!(kind, Exceeded::SystemMessages);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Exceeded {
    /// The reply prefix plus `maxTokens` alone exceed the limit: no message can
    /// fit. A smaller `maxTokens` is the fix.
    MaxTokens,
    /// The system messages alone (with the reply prefix and `maxTokens`) exceed
    /// the limit. System messages are never dropped, so they must be shortened.
    SystemMessages,
    /// The system messages fit, but not together with the newest turn, which is
    /// never dropped.
    NewestTurn,
}

impl Exceeded {
    /// The part, in words (`"the system messages and the newest turn"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Exceeded::MaxTokens => "the reply prefix and maxTokens",
            Exceeded::SystemMessages => "the system messages",
            Exceeded::NewestTurn => "the system messages and the newest turn",
        }
    }
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text of [`TrimError::ContextExceeded`]: every number, and what it is.
fn exceeded_text(
    kind: Exceeded,
    message_tokens: usize,
    reply_tokens: usize,
    max_tokens: usize,
    limit: usize,
) -> String {
    let needed = message_tokens
        .saturating_add(reply_tokens)
        .saturating_add(max_tokens);
    match kind {
        Exceeded::MaxTokens => format!(
            "{kind} need {needed} tokens ({reply_tokens} for the reply prefix, maxTokens \
             {max_tokens}), the limit is {limit}"
        ),
        _ => format!(
            "{kind} need {needed} tokens ({message_tokens} for the messages, {reply_tokens} \
             for the reply prefix, maxTokens {max_tokens}), the limit is {limit}"
        ),
    }
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

    /// For [`TrimError::ContextExceeded`], the tokens the request needs in all:
    /// messages, reply prefix and `maxTokens` (saturating at `usize::MAX`).
    /// `None` for the other errors.
    pub fn needed(&self) -> Option<usize> {
        match *self {
            TrimError::ContextExceeded {
                message_tokens,
                reply_tokens,
                max_tokens,
                ..
            } => Some(
                message_tokens
                    .saturating_add(reply_tokens)
                    .saturating_add(max_tokens),
            ),
            _ => None,
        }
    }
}
