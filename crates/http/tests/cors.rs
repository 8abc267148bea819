//! CORS: off by default, preflights answered for configured origins only.

use sluice_http::{AppState, Config, app};

use crate::support::{call, default_app};

const ALLOWED: &str = "https://app.example.com";
const PATH: &str = "/v1/api-tools/chat-tokenize/HCX-003";

fn preflight(origin: &str) -> [(&str, &str); 3] {
    [
        ("origin", origin),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization, content-type",
        ),
    ]
}

fn cors_app(origins: &[&str]) -> axum::Router {
    let mut config = Config::default();
    config
        .apply_vars(|name| (name == "SLUICE_CORS_ORIGINS").then(|| origins.join(", ")))
        .unwrap();
    // With keys, so the preflight must be answered before auth.
    config.api_keys = sluice_http::ApiKeys::new(["k"]);
    app(AppState::from_config(&config).unwrap())
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_answered() {
    let app = cors_app(&[ALLOWED, "http://localhost:3000"]);
    let reply = call(&app, "OPTIONS", PATH, &preflight(ALLOWED), "").await;
    assert!(reply.status.is_success(), "{}", reply.status);
    assert_eq!(reply.header("access-control-allow-origin"), Some(ALLOWED));
    let methods = reply.header("access-control-allow-methods").unwrap();
    assert!(methods.contains("POST"), "{methods}");
    let headers = reply.header("access-control-allow-headers").unwrap();
    assert!(headers.contains("authorization"), "{headers}");

    // The real request then carries the header too (and still needs its key).
    let reply = call(&app, "POST", PATH, &[("origin", ALLOWED)], "{}").await;
    assert_eq!(reply.header("access-control-allow-origin"), Some(ALLOWED));
    assert_eq!(reply.status, 401);
}

#[tokio::test]
async fn a_preflight_from_another_origin_gets_no_allow_origin() {
    let app = cors_app(&[ALLOWED]);
    let reply = call(
        &app,
        "OPTIONS",
        PATH,
        &preflight("https://evil.example"),
        "",
    )
    .await;
    assert_eq!(reply.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn without_cors_origins_no_cors_headers_are_sent() {
    let reply = call(&default_app(), "OPTIONS", PATH, &preflight(ALLOWED), "").await;
    assert_eq!(reply.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn a_star_allows_any_origin() {
    let app = cors_app(&["*"]);
    let reply = call(&app, "OPTIONS", PATH, &preflight("https://any.example"), "").await;
    assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
}

#[test]
fn origins_with_paths_are_refused() {
    for bad in [
        "app.example.com",
        "https://app.example.com/",
        "https://a.example/x",
    ] {
        let config = Config {
            cors_origins: vec![bad.into()],
            ..Config::default()
        };
        assert!(config.validate().is_err(), "{bad}");
    }
}
