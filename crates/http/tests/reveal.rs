//! What errors reveal: no large echoes of input, no server paths, no keys.

use serde_json::json;
use sluice_http::{AppState, Config, app};

use crate::support::*;

#[tokio::test]
async fn error_messages_echo_a_short_prefix_of_bad_input() {
    let app = default_app();
    let role = "x".repeat(1 << 20);
    let body = json!({"messages": [{"role": role, "content": "hi"}]});
    let reply = post_json(&app, SLIDING, &body).await;
    assert_eq!(reply.code(), "40001");
    assert!(reply.body.len() < 2048, "{} bytes", reply.body.len());
    let message = reply.message();
    assert!(
        message.contains(&format!("{}…", "x".repeat(64))),
        "{message}"
    );
    assert!(message.contains("(1048576 characters)"), "{message}");
    // A long model name in the path is cut as well.
    let model = "m".repeat(4000);
    let path = format!("/v1/api-tools/chat-tokenize/{model}");
    let reply = post_json(&app, &path, &json!({"messages": []})).await;
    assert!(reply.body.len() < 2048, "{} bytes", reply.body.len());
}

#[tokio::test]
async fn router_errors_name_files_relative_to_the_router_directory() {
    let dir = std::env::temp_dir().join(format!("sluice-reveal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = Config {
        routers: Some(dir.clone()),
        ..Config::default()
    };
    let app = app(AppState::from_config(&config).unwrap());
    // A version added after the start, and invalid.
    std::fs::create_dir_all(dir.join("shop")).unwrap();
    std::fs::write(dir.join("shop/1.toml"), "domains = 3").unwrap();
    let reply = post_json(
        &app,
        "/v1/routers/shop/versions/1/route",
        &json!({"query": "가격"}),
    )
    .await;
    assert_eq!(reply.code(), "65001");
    let message = reply.message();
    assert!(message.contains("shop/1.toml"), "{message}");
    assert!(!message.contains(dir.to_str().unwrap()), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_malformed_api_keys_entry_is_not_printed() {
    let dir = std::env::temp_dir().join(format!("sluice-reveal-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sluice.toml");
    for text in [
        "api_keys = \"nv-super-secret-key\"\n",
        "api_keys = [\"nv-super-secret-key\", 5]\n",
        "api_keys = [\"nv-super-secret-key]\n",
        "api_keys = [\n  \"nv-super-secret-key\",\n  { key = \"nv-super-secret-key\" },\n]\n",
    ] {
        std::fs::write(&path, text).unwrap();
        let err = Config::from_file(&path).unwrap_err().to_string();
        assert!(!err.contains("super-secret"), "{err}");
        assert!(err.contains("line "), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
