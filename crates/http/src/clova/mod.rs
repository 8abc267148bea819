//! The CLOVA Studio-compatible tools: the sliding window
//! (`/v1/api-tools/sliding/chat-messages/{modelName}`), the token calculator
//! (`/v1/api-tools/chat-tokenize/{modelName}`) and the router
//! (`/v1/routers/{router-id}/versions/{version}/route`). Each handler converts a
//! request to a library call and the result (or the library's error) to the
//! envelope. No business logic lives here.

mod router;
pub(crate) mod window;

pub(crate) use router::route;
pub(crate) use window::{sliding, tokenize};

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::Uri;
use sluice_core::Message;

use crate::server::error::{ApiError, Code};

/// Inputs with up to this many bytes of text are counted on the async worker;
/// larger ones go to the blocking pool, so that one huge history cannot stall the
/// other requests on its worker (uncached counting runs at roughly 10-50 MB/s).
const INLINE_TEXT_BYTES: usize = 16 * 1024;

pub(super) fn text_bytes<M: AsRef<Message>>(messages: &[M]) -> usize {
    messages.iter().map(|m| m.as_ref().content.len()).sum()
}

/// The `{modelName}` of a path (with or without the app id the hosted API
/// puts after it).
pub(super) fn path_param(
    params: Result<Path<std::collections::HashMap<String, String>>, PathRejection>,
) -> Result<String, ApiError> {
    let params = params
        .map(|Path(p)| p)
        .map_err(|e| ApiError::new(Code::NOT_FOUND, format!("Not found: {}", e.body_text())))?;
    params
        .get("modelName")
        .cloned()
        .ok_or_else(|| ApiError::new(Code::NOT_FOUND, "Not found: no model name in the path"))
}

/// The boolean query parameter `name` (`false` when absent): `true` or
/// `false`, as the OpenAPI document's `{"type": "boolean"}` says; any other
/// value is `40001`. The last occurrence wins.
pub(super) fn bool_query(uri: &Uri, name: &str) -> Result<bool, ApiError> {
    let mut value = false;
    for pair in uri.query().unwrap_or_default().split('&') {
        let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
        if key != name {
            continue;
        }
        value = match raw {
            "true" => true,
            "false" => false,
            _ => {
                let shown: String = raw.chars().take(32).collect();
                return Err(ApiError::invalid(format!(
                    "query parameter `{name}` must be true or false, got {shown:?}"
                )));
            }
        };
    }
    Ok(value)
}

/// Runs CPU-bound work inline for small inputs (`text_bytes`), on the blocking
/// pool otherwise.
pub(super) async fn cpu<T: Send + 'static>(
    text_bytes: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    if text_bytes <= INLINE_TEXT_BYTES {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(ApiError::internal)
}
