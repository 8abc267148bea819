//! The router endpoint: the seed example, explanations, and every router error.

use std::path::PathBuf;

use serde_json::{Value, json};
use sluice_http::{AppState, Config, app};

use crate::support::*;

/// The router page's curl example body.
fn seed_request() -> Value {
    json!({"query": "미세먼지 정보 알려줘", "chatHistory": [{"role": "user", "content": "내일 서울의 강수 예보 알려줘"}]})
}

/// The keys of every object in `v`, recursively: the response's shape.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(_) => json!("array"),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

#[tokio::test]
async fn seed_router_example_returns_the_seed_shape_over_a_socket() {
    // The page's success example.
    let seed = json!({
        "status": {"code": "20000", "message": "OK"},
        "result": {
            "domain": {"result": "지역 검색", "called": true},
            "blockedContent": {"result": ["UnsupportedRegion"], "called": true},
            "safety": {"result": [], "called": true},
            "usage": {"promptTokens": 425, "completionTokens": 62, "totalTokens": 487}
        }
    });
    let server = Server::start(AppState::builder().build()).await;
    let reply = http(
        server.addr,
        "POST",
        &format!("/testapp{ROUTE}"),
        &[
            ("Authorization", "Bearer nv-anything"),
            ("X-NCP-CLOVASTUDIO-REQUEST-ID", "router-seed"),
            ("Content-Type", "application/json"),
        ],
        seed_request().to_string().as_bytes(),
    )
    .await;
    assert_eq!(reply.code(), "20000");
    assert_eq!(
        reply.header("x-ncp-clovastudio-request-id"),
        Some("router-seed")
    );
    let body = reply.json();
    assert_eq!(shape(&body), shape(&seed));
    let result = &body["result"];
    assert_eq!(result["domain"], seed["result"]["domain"]);
    assert_eq!(result["blockedContent"], seed["result"]["blockedContent"]);
    assert_eq!(result["safety"], seed["result"]["safety"]);
    let usage = &result["usage"];
    assert_eq!(usage["completionTokens"], 0, "nothing is generated");
    assert!(usage["promptTokens"].as_u64().unwrap() > 0);
    assert_eq!(usage["totalTokens"], usage["promptTokens"]);
    server.stop().await;
}

#[tokio::test]
async fn explain_adds_the_explanation_and_nothing_else_changes() {
    let app = default_app();
    let plain = post_json(&app, ROUTE, &seed_request()).await;
    let explained = post_json(&app, &format!("{ROUTE}?explain=true"), &seed_request()).await;
    assert_eq!(plain.code(), "20000");
    assert_eq!(explained.code(), "20000");
    let mut result = explained.json()["result"].clone();
    let explanation = result
        .as_object_mut()
        .unwrap()
        .remove("explanation")
        .expect("explanation");
    assert!(explanation["scores"].is_array(), "{explanation}");
    assert!(
        explanation["fired"]
            .as_array()
            .is_some_and(|f| !f.is_empty()),
        "{explanation}"
    );
    assert_eq!(result, plain.json()["result"]);
    assert!(plain.json()["result"].get("explanation").is_none());
}

#[tokio::test]
async fn router_errors_have_their_codes() {
    let app = default_app();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/v1/routers/nope/versions/1/route", seed_request(), "40400"),
        (
            "/v1/routers/sample/versions/99/route",
            seed_request(),
            "40400",
        ),
        ("/v1/routers/../versions/1/route", seed_request(), "40400"),
        (
            "/v1/routers/sample/versions/abc/route",
            seed_request(),
            "40001",
        ),
        (
            "/v1/routers/sample/versions/0/route",
            seed_request(),
            "40001",
        ),
        (ROUTE, json!({"chatHistory": []}), "40001"),
        (ROUTE, json!({"query": 5}), "40001"),
        (ROUTE, json!({"query": ""}), "40004"),
        (ROUTE, json!({"query": "날씨 ".repeat(5000)}), "65400"),
        (
            ROUTE,
            json!({"query": "hi", "chatHistory": [{"role": "robot", "content": "x"}]}),
            "40001",
        ),
    ];
    for (path, body, code) in cases {
        let reply = post_json(&app, path, &body).await;
        assert_eq!(
            reply.code(),
            code,
            "{path} {}: {}",
            body.to_string().chars().take(60).collect::<String>(),
            reply.message()
        );
    }
    let reply = call(&app, "POST", ROUTE, &[], "{\"query\":").await;
    assert_eq!(reply.code(), "40000");
}

const VALID: &str = r#"
[[domain]]
name = "shopping"
keywords = ["price", "가격"]

[[domain.filter]]
name = "Counterfeit"
keywords = ["replica"]
"#;

const INVALID: &str = r#"
[[domain]]
name = "shopping"
keywords = ["price"]

[[domain.filter]]
name = "나쁜 필터"
keywords = ["replica"]
"#;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-http-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("shop")).unwrap();
    dir
}

#[tokio::test]
async fn routers_come_from_a_directory_new_versions_load_on_first_use_and_invalid_ones_are_65001() {
    let dir = temp_dir("routers");
    std::fs::write(dir.join("shop/1.toml"), VALID).unwrap();
    let config = Config {
        routers: Some(dir.clone()),
        ..Config::default()
    };
    let app = app(AppState::from_config(&config).unwrap());
    let path = |v: u32| format!("/v1/routers/shop/versions/{v}/route");
    let reply = post_json(&app, &path(1), &json!({"query": "replica 가방 가격"})).await;
    assert_eq!(reply.code(), "20000");
    assert_eq!(reply.json()["result"]["domain"]["result"], "shopping");
    assert_eq!(
        reply.json()["result"]["blockedContent"]["result"],
        json!(["Counterfeit"])
    );
    // The embedded sample is not served when a directory is configured.
    assert_eq!(
        post_json(&app, ROUTE, &seed_request()).await.code(),
        "40400"
    );
    assert_eq!(
        post_json(&app, &path(2), &json!({"query": "가격"}))
            .await
            .code(),
        "40400"
    );

    // Versions added later: an invalid one says which file, line and why.
    std::fs::write(dir.join("shop/2.toml"), INVALID).unwrap();
    let reply = post_json(&app, &path(2), &json!({"query": "가격"})).await;
    assert_eq!(reply.code(), "65001");
    assert!(reply.message().contains("2.toml"), "{}", reply.message());
    std::fs::write(dir.join("shop/3.toml"), VALID).unwrap();
    assert_eq!(
        post_json(&app, &path(3), &json!({"query": "가격"}))
            .await
            .code(),
        "20000"
    );
    // Loaded versions are immutable: editing the file changes nothing.
    std::fs::write(dir.join("shop/3.toml"), INVALID).unwrap();
    assert_eq!(
        post_json(&app, &path(3), &json!({"query": "가격"}))
            .await
            .code(),
        "20000"
    );

    // An invalid file at start-up is refused with its location.
    std::fs::write(dir.join("shop/1.toml"), INVALID).unwrap();
    std::fs::remove_file(dir.join("shop/2.toml")).unwrap();
    std::fs::remove_file(dir.join("shop/3.toml")).unwrap();
    let err = AppState::from_config(&config).unwrap_err().to_string();
    assert!(err.contains("1.toml"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
