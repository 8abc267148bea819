//! `Authorization: Bearer <key>` against the configured keys; keys never logged.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::json;
use sluice_http::{ApiKeys, AppState, app};

use crate::support::*;

const KEY: &str = "nv-4f1c0ffee0ddba11";

fn keyed() -> axum::Router {
    app(AppState::builder()
        .api_keys(ApiKeys::new([KEY, "nv-second"]))
        .build())
}

fn body() -> String {
    json!({"maxTokens": 200, "messages": [{"role": "user", "content": "hello"}]}).to_string()
}

#[tokio::test]
async fn missing_or_wrong_keys_are_40100_and_the_right_key_passes() {
    let app = keyed();
    let reply = call(&app, "POST", SLIDING, &[], body()).await;
    assert_eq!(reply.code(), "40100");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    for wrong in [
        "Bearer nv-wrong",
        "Bearer nv-4f1c0ffee0ddba1",
        "Basic bnYtNGYx",
        KEY,
        "Bearer",
    ] {
        let reply = call(&app, "POST", TOKENIZE, &[("authorization", wrong)], body()).await;
        assert_eq!(reply.code(), "40100", "{wrong}");
    }
    for right in [
        format!("Bearer {KEY}"),
        format!("bearer {KEY}"),
        "Bearer nv-second".into(),
    ] {
        let reply = call(&app, "POST", SLIDING, &[("authorization", &right)], body()).await;
        assert_eq!(reply.code(), "20000", "{right}");
    }
    // Auth comes before the body is looked at.
    let reply = call(&app, "POST", SLIDING, &[], "{not json").await;
    assert_eq!(reply.code(), "40100");
    // Operational endpoints need no key.
    assert_eq!(call(&app, "GET", "/healthz", &[], "").await.code(), "20000");
}

#[tokio::test]
async fn a_client_sending_the_hosted_api_headers_works_unchanged() {
    let server = Server::start(AppState::builder().api_keys(ApiKeys::new([KEY])).build()).await;
    let auth = format!("Bearer {KEY}");
    let reply = http(
        server.addr,
        "POST",
        &format!("/testapp{SLIDING}"),
        &[
            ("Authorization", &auth),
            (
                "X-NCP-CLOVASTUDIO-REQUEST-ID",
                "d4b4a3b2-2f35-4c56-9a0d-3c5d1c9e8f70",
            ),
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
            ("User-Agent", "curl/8.5.0"),
        ],
        body().as_bytes(),
    )
    .await;
    assert_eq!(reply.code(), "20000");
    assert_eq!(
        reply.header("x-ncp-clovastudio-request-id"),
        Some("d4b4a3b2-2f35-4c56-9a0d-3c5d1c9e8f70")
    );
    server.stop().await;
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines of this test binary. A global subscriber: thread-scoped ones
/// miss callsites that other test threads registered first.
fn captured_logs() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        captured
    })
}

#[tokio::test]
async fn logs_carry_the_request_id_and_never_the_key() {
    let captured = captured_logs();
    let app = keyed();
    let right = format!("Bearer {KEY}");
    let wrong = "Bearer nv-guessed-key-123";
    call(
        &app,
        "POST",
        SLIDING,
        &[
            ("authorization", &right),
            ("x-ncp-clovastudio-request-id", "req-right"),
        ],
        body(),
    )
    .await;
    call(
        &app,
        "POST",
        SLIDING,
        &[
            ("authorization", wrong),
            ("x-ncp-clovastudio-request-id", "req-wrong"),
        ],
        body(),
    )
    .await;
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = |id: &str| {
        logs.lines()
            .find(|l| l.contains(id) && l.contains("finished"))
            .map(str::to_string)
    };
    let right_line = line("req-right").unwrap_or_else(|| panic!("{logs}"));
    assert!(right_line.contains("code=\"20000\""), "{right_line}");
    let wrong_line = line("req-wrong").unwrap_or_else(|| panic!("{logs}"));
    assert!(wrong_line.contains("code=\"40100\""), "{wrong_line}");
    assert!(
        logs.lines()
            .any(|l| l.contains("req-wrong") && l.contains("invalid API key")),
        "{logs}"
    );
    assert!(!logs.contains(KEY), "{logs}");
    assert!(!logs.contains("nv-guessed-key-123"), "{logs}");
}
