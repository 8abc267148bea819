//! The one error type of the server and the envelope every response is wrapped in.

use std::borrow::Cow;
use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sluice_core::{BuildError, TrimError};

/// A status code of the envelope: five digits, of which the first three are the
/// HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(pub &'static str);

impl Code {
    /// `20000` OK.
    pub const OK: Code = Code("20000");
    /// `40000` the body is not valid JSON (or not valid UTF-8).
    pub const MALFORMED: Code = Code("40000");
    /// `40001` a field is missing, has the wrong type or is out of range.
    pub const INVALID_PARAMETER: Code = Code("40001");
    /// `40003` the newest turn does not fit the context.
    pub const CONTEXT_EXCEEDED: Code = Code("40003");
    /// `40004` the text to work on is empty (router `query`).
    pub const TEXT_EMPTY: Code = Code("40004");
    /// `40080` no model profile has this name.
    pub const MODEL_NOT_FOUND: Code = Code("40080");
    /// `40100` the API key is missing or wrong.
    pub const UNAUTHORIZED: Code = Code("40100");
    /// `40103` the access token has expired: get a new one from `/v1/auth/token`.
    pub const TOKEN_EXPIRED: Code = Code("40103");
    /// `40300` the request is refused (the gateway's router check blocked it).
    pub const FORBIDDEN: Code = Code("40300");
    /// `40400` no such route, router or router version.
    pub const NOT_FOUND: Code = Code("40400");
    /// `40500` the path exists but not with this method (ours).
    pub const METHOD_NOT_ALLOWED: Code = Code("40500");
    /// `40800` the client did not send its body in time.
    pub const REQUEST_TIMEOUT: Code = Code("40800");
    /// `41300` the body is over the configured limit (ours).
    pub const PAYLOAD_TOO_LARGE: Code = Code("41300");
    /// `40900` the request conflicts with what is stored (ours; practice routes).
    pub const CONFLICT: Code = Code("40900");
    /// `42200` a field failed validation (ours; practice routes, FastAPI's 422).
    pub const UNPROCESSABLE: Code = Code("42200");
    /// `42900` every request slot is busy.
    pub const TOO_MANY_REQUESTS: Code = Code("42900");
    /// `50000` a bug or a broken configuration; details go to the log only.
    pub const INTERNAL: Code = Code("50000");
    /// `50200` the model behind the gateway failed or answered nonsense (ours).
    pub const BAD_GATEWAY: Code = Code("50200");
    /// `50300` the server has too many open connections (ours).
    pub const UNAVAILABLE: Code = Code("50300");
    /// `50400` the request took longer than the configured timeout.
    pub const TIMEOUT: Code = Code("50400");
    /// `65001` a router configuration is invalid.
    pub const ROUTER_INVALID: Code = Code("65001");
    /// `65400` a router query is over the router's token limit.
    pub const ROUTER_TOKEN_LIMIT: Code = Code("65400");

    /// The HTTP status: the first three digits, except that the router's own
    /// `65xxx` codes are sent as 400.
    pub fn http_status(self) -> StatusCode {
        if self.0.starts_with('6') {
            return StatusCode::BAD_REQUEST;
        }
        self.0
            .get(..3)
            .and_then(|s| s.parse().ok())
            .and_then(|n| StatusCode::from_u16(n).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// Everything a request can fail with. The message is shown to the client, so it
/// must never carry secrets or internal details; use [`ApiError::internal`] for
/// those, which logs them and shows a generic message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}", code = .code.0)]
pub struct ApiError {
    /// The envelope code.
    pub code: Code,
    /// The user-facing message.
    pub message: String,
}

impl ApiError {
    /// An error with this code and message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `40001 Invalid parameter: <what>`.
    pub fn invalid(what: impl std::fmt::Display) -> Self {
        Self::new(
            Code::INVALID_PARAMETER,
            format!("Invalid parameter: {what}"),
        )
    }

    /// `50000`: logs `detail` and shows only a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(Code::INTERNAL, "Internal server error")
    }
}

impl From<TrimError> for ApiError {
    fn from(e: TrimError) -> Self {
        match e.code() {
            "40003" => Self::new(Code::CONTEXT_EXCEEDED, capitalize(&e.to_string())),
            _ => Self::new(Code::INVALID_PARAMETER, capitalize(&e.to_string())),
        }
    }
}

impl From<BuildError> for ApiError {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::UnknownModel { name, .. } => {
                Self::new(Code::MODEL_NOT_FOUND, format!("Model not found: {name}"))
            }
            // A profile that names a missing tokenizer file is the operator's
            // problem; the client gets a 500 and the log says which file.
            other => Self::internal(other),
        }
    }
}

impl From<sluice_router::NotFound> for ApiError {
    fn from(e: sluice_router::NotFound) -> Self {
        Self::new(
            Code::NOT_FOUND,
            format!("Not found: router {} version {}", e.router_id, e.version),
        )
    }
}

impl From<sluice_router::RouteError> for ApiError {
    fn from(e: sluice_router::RouteError) -> Self {
        Self::new(Code(e.code()), capitalize(&e.to_string()))
    }
}

impl From<sluice_router::BuildError> for ApiError {
    fn from(e: sluice_router::BuildError) -> Self {
        match e.code() {
            "65001" => Self::new(Code::ROUTER_INVALID, format!("Invalid router: {e}")),
            _ => Self::internal(e),
        }
    }
}

/// The core's messages are lowercase (`invalid parameter: ...`); the hosted API
/// writes `Invalid parameter: ...`.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[derive(Serialize)]
struct Status<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct Envelope<'a, T> {
    status: Status<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<T>,
}

/// A successful response: `{"status":{"code":"20000","message":"OK"},"result":...}`.
#[derive(Debug, Clone)]
pub struct Success<T>(pub T);

impl<T: Serialize> IntoResponse for Success<T> {
    fn into_response(self) -> Response {
        let mut response = json_response(
            StatusCode::OK,
            &Envelope {
                status: Status {
                    code: Code::OK.0,
                    message: "OK",
                },
                result: Some(self.0),
            },
        );
        response.extensions_mut().insert(Code::OK);
        response
    }
}

impl ApiError {
    /// The envelope of this error as JSON bytes, its message cut by
    /// [`bounded_message`].
    pub(crate) fn envelope(&self) -> Vec<u8> {
        let message = bounded_message(&self.message);
        let body = Envelope::<()> {
            status: Status {
                code: self.code.0,
                message: &message,
            },
            result: None,
        };
        serde_json::to_vec(&body).expect("an envelope of strings serializes")
    }
}

/// Quoted text (in `"` or `` ` ``) longer than this many characters is cut.
const QUOTED_CHARS: usize = 64;

/// A message longer than this many characters is cut.
const MESSAGE_CHARS: usize = 1024;

/// `message` with every quoted piece over [`QUOTED_CHARS`] cut to its first
/// characters, an ellipsis and its length (`` `aaaa…` (1048576 characters) ``),
/// and the whole cut to [`MESSAGE_CHARS`] the same way: an error never echoes
/// a large input back.
pub(crate) fn bounded_message(message: &str) -> Cow<'_, str> {
    if message.len() <= QUOTED_CHARS {
        return message.into();
    }
    let mut out = String::with_capacity(message.len().min(2 * MESSAGE_CHARS));
    let mut rest = message;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = &rest[open..=open];
        let start = open + 1;
        let Some(len) = rest[start..].find(quote) else {
            break;
        };
        let end = start + len;
        out.push_str(&rest[..start]);
        match shortened(&rest[start..end], QUOTED_CHARS) {
            Some((prefix, total)) => {
                let _ = write!(out, "{prefix}…{quote} ({total} characters)");
            }
            None => out.push_str(&rest[start..=end]),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    if let Some((prefix, total)) = shortened(&out, MESSAGE_CHARS) {
        out = format!("{prefix}… ({total} characters in all)");
    }
    out.into()
}

/// The first `max` characters of `text` and its length in characters, if it
/// is longer.
fn shortened(text: &str, max: usize) -> Option<(&str, usize)> {
    let (end, _) = text.char_indices().nth(max)?;
    Some((&text[..end], text.chars().count()))
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.code.http_status(),
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.envelope(),
        )
            .into_response();
        if self.code == Code::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        // The metrics layer labels requests with the envelope code.
        response.extensions_mut().insert(self.code);
        response
    }
}

/// `value` as an `application/json` response.
pub(crate) fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => ApiError::internal(format!("cannot serialize a response: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_quoted_input_is_cut_with_its_length() {
        let long = "é".repeat(100);
        let message = format!("messages[0].role: unknown variant `{long}`, expected `user`");
        let cut = bounded_message(&message);
        assert_eq!(
            cut,
            format!(
                "messages[0].role: unknown variant `{}…` (100 characters), expected `user`",
                "é".repeat(64)
            )
        );
        let short = "model not found: \"HCX-003\" and more words to pass sixty-four bytes";
        assert_eq!(bounded_message(short), short);
    }

    #[test]
    fn long_messages_are_cut_whole() {
        let message = "word ".repeat(1000);
        let cut = bounded_message(&message);
        assert!(cut.chars().count() < 1100, "{cut}");
        assert!(cut.ends_with("… (5000 characters in all)"), "{cut}");
        // An unclosed quote is left alone, and the whole is still cut.
        let open = format!("got \"{}", "x".repeat(5000));
        assert!(bounded_message(&open).chars().count() < 1100);
    }
}
