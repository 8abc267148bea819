//! Why a call to a model failed.

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The model's deadline passed (queueing, attempts and back-off included).
    #[error("no answer within {after_ms} ms")]
    Timeout {
        /// The deadline, in milliseconds from the start of the call.
        after_ms: u64,
    },
    /// The upstream answered 429 (and retrying did not help, or the quota is
    /// exhausted, or its `Retry-After` lies past the deadline).
    #[error("rate limited by the upstream (HTTP {status}): {message}")]
    RateLimited {
        /// The HTTP status.
        status: u16,
        /// The upstream's message.
        message: String,
    },
    /// The upstream rejected the request (a 4xx other than 429).
    #[error("the upstream rejected the request (HTTP {status}): {message}")]
    Upstream4xx {
        /// The HTTP status.
        status: u16,
        /// The upstream's message.
        message: String,
    },
    /// The upstream failed (a 5xx).
    #[error("the upstream failed (HTTP {status}): {message}")]
    Upstream5xx {
        /// The HTTP status.
        status: u16,
        /// The upstream's message.
        message: String,
    },
    /// No HTTP answer: connection refused or reset, TLS failure, a body cut short.
    #[error("transport error: {message}")]
    Transport {
        /// What went wrong.
        message: String,
    },
    /// An answer that is not what the wire format promises.
    #[error("bad response from the upstream: {message}")]
    BadResponse {
        /// What is wrong with it.
        message: String,
    },
    /// An answer past one of the model's reading limits; the rest was not read.
    #[error("the reply is larger than {limit} ({bytes} bytes) allows")]
    TooLarge {
        /// The [`ModelConfig`](super::ModelConfig) field that bounds it: `max_reply_bytes`,
        /// `max_line_bytes` or `max_stream_bytes`.
        limit: &'static str,
        /// Its value.
        bytes: u64,
    },
}

impl ProviderError {
    /// A stable, machine-readable name of the variant, for API responses and
    /// metrics: `timeout`, `rate_limited`, `upstream_4xx`, `upstream_5xx`,
    /// `transport`, `bad_response` or `too_large`.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::Timeout { .. } => "timeout",
            ProviderError::RateLimited { .. } => "rate_limited",
            ProviderError::Upstream4xx { .. } => "upstream_4xx",
            ProviderError::Upstream5xx { .. } => "upstream_5xx",
            ProviderError::Transport { .. } => "transport",
            ProviderError::BadResponse { .. } => "bad_response",
            ProviderError::TooLarge { .. } => "too_large",
        }
    }

    /// The upstream's HTTP status, when it answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::RateLimited { status, .. }
            | ProviderError::Upstream4xx { status, .. }
            | ProviderError::Upstream5xx { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error for an upstream error status and its message.
    pub(super) fn from_status(status: u16, message: String) -> Self {
        match status {
            429 => ProviderError::RateLimited { status, message },
            400..=499 => ProviderError::Upstream4xx { status, message },
            500..=599 => ProviderError::Upstream5xx { status, message },
            _ => ProviderError::BadResponse {
                message: format!("unexpected HTTP status {status}: {message}"),
            },
        }
    }

    pub(super) fn bad_response(message: impl Into<String>) -> Self {
        ProviderError::BadResponse {
            message: message.into(),
        }
    }
}
