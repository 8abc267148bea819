//! Arbitrary bytes as request bodies to the API endpoints, through the
//! in-process app with default state: never a 5xx, never a panic, and every
//! CLOVA-style answer is the envelope with a 5-digit code whose first three
//! digits are the HTTP status.
//!
//! Input: the first byte picks the endpoint (low 4 bits), whether a
//! `Content-Type: application/json` header is sent (bit 4) and the `/testapp`
//! prefix (bit 5); the rest is the body.

#![no_main]

use std::sync::LazyLock;

use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use sluice_http::{AppState, app};
use tower::ServiceExt;

/// (path, answers with the CLOVA envelope)
const ENDPOINTS: &[(&str, bool)] = &[
    ("/v1/api-tools/sliding/chat-messages/HCX-003", true),
    ("/v1/api-tools/chat-tokenize/HCX-003", true),
    ("/v3/api-tools/chat-tokenize/HCX-003", true),
    ("/v1/routers/sample/versions/1/route", true),
    ("/v1/routers/sample/versions/2/route", true),
    ("/v3/chat-completions/HCX-003", true),
    ("/v1/chat-completions/HCX-003", true),
    ("/v1/chat/completions", false),
    (
        "/v1/api-tools/sliding/chat-messages/HCX-003?tools=true",
        true,
    ),
    ("/v1/api-tools/sliding/chat-messages/HCX-007/app-1", true),
    ("/v1/openai/chat/completions", false),
];

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

static APP: LazyLock<axum::Router> = LazyLock::new(|| app(AppState::builder().build()));

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let (path, envelope) = ENDPOINTS[usize::from(selector & 0x0f) % ENDPOINTS.len()];
    let prefix = if selector & 0x20 != 0 { "/testapp" } else { "" };
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("{prefix}{path}"));
    if selector & 0x10 == 0 {
        request = request.header("content-type", "application/json");
    }
    let request = request.body(Body::from(body.to_vec())).unwrap();
    let (status, bytes) = RUNTIME.block_on(async {
        let response = APP.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, bytes)
    });
    let text = String::from_utf8_lossy(&bytes);
    assert!(!status.is_server_error(), "{status} for {path}: {text}");
    let json: serde_json::Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{status} {path}: not JSON ({e}): {text}"));
    if envelope {
        let code = json["status"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("{status} {path}: no status.code: {text}"));
        assert!(
            code.len() == 5 && code.bytes().all(|b| b.is_ascii_digit()),
            "{status} {path}: code {code:?}"
        );
        assert_eq!(&code[..3], status.as_str(), "{path}: {text}");
        assert!(
            json["status"]["message"].is_string(),
            "{status} {path}: {text}"
        );
    }
});
