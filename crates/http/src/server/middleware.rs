//! Per-request plumbing: request ids, tracing spans, metrics, rate-limited
//! request logs, auth, reading the body before a request takes a slot, and
//! turning the errors of the tower layers (timeout, load shedding) into
//! envelopes.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::BoxError;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::Body as _;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use tracing::Instrument;

use crate::server::error::{ApiError, Code};
use crate::server::state::AppState;

/// The request id header of CLOVA Studio, echoed on every response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-ncp-clovastudio-request-id");

/// The request id of the current request, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

/// Outermost layer: takes or makes the request id, opens the span every log line
/// of the request is written in, records metrics and echoes the id.
pub(crate) async fn observe(
    State(state): State<AppState>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| (1..=256).contains(&v.len()) && v.to_str().is_ok())
        .cloned()
        .unwrap_or_else(new_request_id);
    let route = matched
        .as_ref()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        method = %req.method(),
        route = %route,
    );
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let code = response
        .extensions()
        .get::<Code>()
        .map_or_else(|| fallback_code(response.status().as_u16()), |c| c.0);
    state.metrics().observe_request(&route, code, elapsed);
    if state.request_logs().admit() {
        span.in_scope(|| {
            tracing::info!(
                status = response.status().as_u16(),
                code,
                latency_us = elapsed.as_micros() as u64,
                "finished"
            );
        });
    }
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// A code for a response that did not come through [`ApiError`] or
/// [`Success`](crate::server::error::Success) (the practice routes' FastAPI answers):
/// its first three digits are the HTTP status, so a client's mistake is never
/// counted as a server error. A status with no code of its own falls back to
/// its class: `40000` or `50000`.
fn fallback_code(status: u16) -> &'static str {
    match status {
        200..=299 => Code::OK.0,
        401 => Code::UNAUTHORIZED.0,
        403 => Code::FORBIDDEN.0,
        404 => Code::NOT_FOUND.0,
        405 => Code::METHOD_NOT_ALLOWED.0,
        408 => Code::REQUEST_TIMEOUT.0,
        409 => Code::CONFLICT.0,
        413 => Code::PAYLOAD_TOO_LARGE.0,
        422 => Code::UNPROCESSABLE.0,
        429 => Code::TOO_MANY_REQUESTS.0,
        502 => Code::BAD_GATEWAY.0,
        503 => Code::UNAVAILABLE.0,
        504 => Code::TIMEOUT.0,
        // 400 itself, and any client error without a code of its own.
        400..=499 => Code::MALFORMED.0,
        _ => Code::INTERNAL.0,
    }
}

/// A random UUID v4. Not for secrets: it only has to be unique.
fn new_request_id() -> HeaderValue {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // `RandomState` carries per-process random SipHash keys; hashing a counter
    // with them gives unpredictable, distinct values without a RNG dependency.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let state = std::hash::RandomState::new();
    let mut h = state.build_hasher();
    h.write_u64(n);
    let a = h.finish();
    h.write_u64(a);
    let b = h.finish();
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let text = format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    );
    HeaderValue::from_str(&text).expect("hex digits and dashes")
}

/// Rejects API requests without a configured key or a practice user's key
/// (`40100`). With no keys configured (loopback only) every request passes. The
/// key is never logged.
pub(crate) async fn auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let keys = state.api_keys();
    if keys.is_empty() {
        return next.run(req).await;
    }
    // `Authorization: Bearer <key or token>`, or the legacy header pair's
    // `X-NCP-CLOVASTUDIO-API-KEY` (its `X-NCP-APIGW-API-KEY` companion is not
    // a secret of ours and is ignored).
    let presented = crate::server::auth::presented_key(req.headers());
    let accepted = match presented {
        None => None,
        Some(token) if token.starts_with(crate::server::tokens::TOKEN_PREFIX) => {
            match state.tokens().check(token).await {
                Ok(crate::server::tokens::TokenState::Valid) => Some(true),
                Ok(crate::server::tokens::TokenState::Expired) => {
                    return ApiError::new(
                        Code::TOKEN_EXPIRED,
                        "Unauthorized: the access token has expired; get a new one from GET /v1/auth/token",
                    )
                    .into_response();
                }
                Ok(crate::server::tokens::TokenState::Unknown) => Some(false),
                Err(e) => {
                    tracing::error!(error = %e, "cannot look up an access token");
                    return ApiError::new(Code::UNAVAILABLE, "the token store is unavailable")
                        .into_response();
                }
            }
        }
        Some(key) if keys.verify(key) => Some(true),
        Some(key) => Some(match state.practice() {
            Some(practice) => matches!(practice.store().authenticate(key).await, Ok(Some(_))),
            None => false,
        }),
    };
    match accepted {
        Some(true) => next.run(req).await,
        Some(false) => {
            if state.request_logs().admit() {
                tracing::warn!("rejected: invalid API key");
            }
            ApiError::new(Code::UNAUTHORIZED, "Unauthorized: invalid API key").into_response()
        }
        None => ApiError::new(
            Code::UNAUTHORIZED,
            "Unauthorized: send the API key as `Authorization: Bearer <key>` (or `X-NCP-CLOVASTUDIO-API-KEY`)",
        )
        .into_response(),
    }
}

/// Reads the whole request body, within the body limit and `body_timeout`,
/// before the request goes on to take a request slot: a slow upload holds
/// its connection, never a slot. Failures answer in the envelope: `41300`,
/// `40800`, or `40000` for a body that cannot be read.
pub(crate) async fn read_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match buffered(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// [`read_body`] for the practice routes, which answer in FastAPI's shape,
/// `{"detail": "..."}`.
pub(crate) async fn read_body_practice(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    match buffered(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => {
            let message = crate::server::error::bounded_message(&e.message).into_owned();
            let mut response = crate::server::error::json_response(
                e.code.http_status(),
                &serde_json::json!({ "detail": message }),
            );
            response.extensions_mut().insert(e.code);
            response
        }
    }
}

/// `req` with its body read into memory.
async fn buffered(state: &AppState, req: Request) -> Result<Request, ApiError> {
    if req.body().is_end_stream() {
        return Ok(req);
    }
    let limits = state.limits();
    let too_large = || {
        ApiError::new(
            Code::PAYLOAD_TOO_LARGE,
            format!(
                "Payload too large: the body limit is {} bytes",
                limits.body_limit
            ),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.body_limit as u64) {
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    let read = Limited::new(body, limits.body_limit).collect();
    match tokio::time::timeout(limits.body_timeout, read).await {
        Err(_) => Err(ApiError::new(
            Code::REQUEST_TIMEOUT,
            "Request timeout: the body was not received in time",
        )),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::new(
            Code::MALFORMED,
            format!("Bad request: cannot read the body: {e}"),
        )),
        Ok(Ok(collected)) => Ok(Request::from_parts(parts, Body::from(collected.to_bytes()))),
    }
}

/// Maps the errors of the tower layers to envelopes: load shedding to `42900`,
/// the request timeout to `50400`.
pub(crate) async fn layer_error(err: BoxError) -> ApiError {
    if err.is::<tower::load_shed::error::Overloaded>() {
        ApiError::new(
            Code::TOO_MANY_REQUESTS,
            "Too many requests: every request slot is busy, retry later",
        )
    } else if err.is::<tower::timeout::error::Elapsed>() {
        ApiError::new(
            Code::TIMEOUT,
            "Timeout: the request took longer than the server's limit",
        )
    } else {
        ApiError::internal(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuid_v4_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| new_request_id().to_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(20) {
            let parts: Vec<_> = id.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(parts[2].starts_with('4'), "{id}");
            assert!("89ab".contains(&parts[3][..1]), "{id}");
        }
    }
}
