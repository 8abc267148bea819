//! [`ApiJson`]: a JSON body extractor whose every failure is an [`ApiError`] in
//! the envelope, never axum's plain-text rejection.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::server::error::{ApiError, Code};
use crate::server::state::AppState;

/// A request body parsed as JSON into `T`.
///
/// - over the body limit (by `Content-Length` or while reading): `41300`;
/// - not sent in time (`body_timeout`): `40800`;
/// - not JSON, not UTF-8, nested deeper than serde_json's recursion limit, or
///   followed by trailing data: `40000`;
/// - JSON of the wrong shape (missing field, wrong type, unknown role): `40001`
///   with the path of the offending field.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// Bodies up to this size are parsed on the async worker; larger ones (up to the
/// body limit, 16 MiB by default) on the blocking pool.
const INLINE_PARSE_BYTES: usize = 256 * 1024;

impl<T: DeserializeOwned + Send + 'static> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.limits().body_limit;
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let read = Bytes::from_request(req, state);
        let bytes = match tokio::time::timeout(state.limits().body_timeout, read).await {
            Err(_) => {
                return Err(ApiError::new(
                    Code::REQUEST_TIMEOUT,
                    "Request timeout: the body was not received in time",
                ));
            }
            Ok(Err(rejection)) if rejection.status().as_u16() == 413 => {
                return Err(too_large(limit));
            }
            Ok(Err(rejection)) => {
                return Err(ApiError::new(
                    Code::MALFORMED,
                    format!(
                        "Bad request: cannot read the body: {}",
                        rejection.body_text()
                    ),
                ));
            }
            Ok(Ok(bytes)) => bytes,
        };
        if bytes.len() <= INLINE_PARSE_BYTES {
            return parse(&bytes).map(ApiJson);
        }
        tokio::task::spawn_blocking(move || parse(&bytes))
            .await
            .map_err(ApiError::internal)?
            .map(ApiJson)
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        Code::PAYLOAD_TOO_LARGE,
        format!("Payload too large: the body limit is {limit} bytes"),
    )
}

/// Parses a JSON body, sorting failures into `40000` (not JSON) and `40001` (JSON of
/// the wrong shape).
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // A byte-order mark is what some editors save; it is not an error.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            Code::MALFORMED,
            "Bad request: the body is empty: send a JSON object like {\"messages\": [...]}",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        classify(bytes, e.into_inner(), &path)
    })?;
    de.end().map_err(|e| classify(bytes, e, "."))?;
    Ok(value)
}

/// `40001` for JSON of the wrong shape, `40000` for anything that is not JSON;
/// both in the plain words of [`sluice_core::describe_json_error`].
fn classify(bytes: &[u8], e: serde_json::Error, path: &str) -> ApiError {
    let text = String::from_utf8_lossy(bytes);
    let words = sluice_core::describe_json_error(&text, &e, path);
    if sluice_core::is_malformed_json(&e) {
        ApiError::new(
            Code::MALFORMED,
            format!("Bad request: malformed JSON: {words}"),
        )
    } else {
        ApiError::invalid(words)
    }
}
