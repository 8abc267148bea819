//! Every class of bad input gets its documented code, and the server keeps
//! serving afterwards.

use std::time::{Duration, Instant};

use serde_json::json;
use sluice_http::AppState;

use crate::support::*;

const OK_BODY: &str = r#"{"maxTokens":100,"messages":[{"role":"user","content":"hello"}]}"#;

/// Nesting inside a field parsed as a JSON value (tool-call arguments): serde_json
/// stops at its recursion limit.
fn nested(depth: usize) -> String {
    format!(
        r#"{{"maxTokens":100,"messages":[{{"role":"user","content":"x"}},{{"role":"assistant","toolCalls":[{{"id":"c1","function":{{"name":"f","arguments":{}{}}}}}]}}]}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// Nesting inside an unknown field, which serde_json skips without recursing.
fn nested_unknown(depth: usize) -> String {
    format!(
        r#"{{"maxTokens":100,"messages":[{{"role":"user","content":"x","extra":{}{}}}]}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// (what, path, body, expected code, a word the message must contain)
fn cases() -> Vec<(
    &'static str,
    &'static str,
    Vec<u8>,
    &'static str,
    &'static str,
)> {
    let user = r#"[{"role":"user","content":"hello"}]"#;
    let s = |t: String| t.into_bytes();
    vec![
        ("malformed JSON", SLIDING, s(r#"{"maxTokens":100,"messages":["#.into()), "40000", "malformed"),
        ("not JSON at all", SLIDING, s("maxTokens=100".into()), "40000", "malformed"),
        ("empty body", SLIDING, vec![], "40000", "empty"),
        ("trailing data", SLIDING, s(format!("{OK_BODY} {{}}")), "40000", "malformed"),
        ("invalid UTF-8", SLIDING, [&br#"{"maxTokens":100,"messages":[{"role":"user","content":""#[..], &[0xff, 0xfe], &br#""}]}"#[..]].concat(), "40000", "malformed"),
        ("invalid UTF-8 escape", SLIDING, s(r#"{"messages":[{"role":"user","content":"\udc00"}]}"#.into()), "40000", "malformed"),
        ("body is an array", SLIDING, s("[1,2]".into()), "40001", "Invalid parameter"),
        ("a bare array of messages", SLIDING, s(user.into()), "40001", "wrap the array in {\"messages\": [...]}"),
        ("a lone surrogate", SLIDING, s(r#"{"messages":[{"role":"user","content":"\ud800"}]}"#.into()), "40000", "invalid \\u escape"),
        ("cut off", SLIDING, s(r#"{"messages":[{"role":"user""#.into()), "40000", "is it cut off?"),
        ("content parts are numbers", SLIDING, s(r#"{"messages":[{"role":"user","content":[1]}]}"#.into()), "40001", r#"messages[0].content[0]: expected a content part like {"type": "text", "text": "..."}, got a number"#),
        ("an audio part", SLIDING, s(r#"{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x"}}]}]}"#.into()), "40001", "messages[0].content[0]: a content part of type `input_audio` cannot be counted"),
        ("text parts", SLIDING, s(r#"{"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#.into()), "20000", "OK"),
        ("null content", SLIDING, s(r#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null}]}"#.into()), "20000", "OK"),
        ("a string for a message", SLIDING, s(r#"{"messages":["hello"]}"#.into()), "40001", r#"messages[0]: expected a message object like {"role": "user", "content": "..."}, got a string"#),
        ("a byte-order mark", SLIDING, [&b"\xEF\xBB\xBF"[..], OK_BODY.as_bytes()].concat(), "20000", "OK"),
        ("messages is a string", SLIDING, s(r#"{"maxTokens":100,"messages":"hello"}"#.into()), "40001", "messages"),
        ("content is a number", SLIDING, s(r#"{"messages":[{"role":"user","content":5}]}"#.into()), "40001", "messages[0].content"),
        ("role is missing", SLIDING, s(r#"{"messages":[{"content":"x"}]}"#.into()), "40001", "role"),
        ("messages is missing", SLIDING, s(r#"{"maxTokens":100}"#.into()), "40001", "messages"),
        ("maxTokens 0", SLIDING, s(format!(r#"{{"maxTokens":0,"messages":{user}}}"#)), "40001", "maxTokens"),
        ("maxTokens 4097", SLIDING, s(format!(r#"{{"maxTokens":4097,"messages":{user}}}"#)), "40001", "maxTokens"),
        ("maxTokens -1", SLIDING, s(format!(r#"{{"maxTokens":-1,"messages":{user}}}"#)), "40001", "maxTokens"),
        ("maxTokens \"abc\"", SLIDING, s(format!(r#"{{"maxTokens":"abc","messages":{user}}}"#)), "40001", "maxTokens"),
        ("maxTokens 1e10", SLIDING, s(format!(r#"{{"maxTokens":1e10,"messages":{user}}}"#)), "40001", "maxTokens"),
        ("maxTokens 2.5", SLIDING, s(format!(r#"{{"maxTokens":2.5,"messages":{user}}}"#)), "40001", "maxTokens"),
        ("maxTokens 2^70", SLIDING, s(format!(r#"{{"maxTokens":1180591620717411303424,"messages":{user}}}"#)), "40001", "maxTokens"),
        ("maxTokens null", SLIDING, s(format!(r#"{{"maxTokens":null,"messages":{user}}}"#)), "40001", "maxTokens"),
        ("unknown role", SLIDING, s(r#"{"messages":[{"role":"bot","content":"x"}]}"#.into()), "40001", "messages[0].role"),
        ("empty messages", SLIDING, s(r#"{"maxTokens":100,"messages":[]}"#.into()), "40001", "messages"),
        ("empty messages (tokenize)", TOKENIZE, s(r#"{"messages":[]}"#.into()), "40001", "messages"),
        ("unknown role (tokenize)", TOKENIZE, s(r#"{"messages":[{"role":"robot","content":"x"}]}"#.into()), "40001", "role"),
        ("malformed (tokenize)", TOKENIZE, s("{".into()), "40000", "malformed"),
        ("deeply nested JSON", SLIDING, s(nested(100_000)), "40000", "recursion"),
        ("deeply nested JSON, unclosed", SLIDING, s(nested(100_000)[..150_000].to_string()), "40000", "malformed"),
        ("a nested unknown field (kept)", SLIDING, s(nested_unknown(100)), "20000", "OK"),
        ("deeply nested top level", SLIDING, s("[".repeat(200_000)), "4000", ""),
    ]
}

/// An unknown field is written back as it came, whatever its depth: the
/// server never parses it (a client with a recursion limit may not read it back,
/// but that is the client's own data).
#[tokio::test]
async fn a_deeply_nested_unknown_field_comes_back_as_sent() {
    let app = default_app();
    let body = nested_unknown(100_000);
    let reply = call(&app, "POST", SLIDING, &[], body.clone()).await;
    assert_eq!(reply.status, 200);
    let message = &body[body.find(r#"{"role""#).unwrap()..body.rfind("]}").unwrap()];
    let text = String::from_utf8(reply.body).unwrap();
    assert!(
        text.starts_with(r#"{"status":{"code":"20000""#),
        "{}",
        &text[..80]
    );
    assert!(
        text.contains(message),
        "the message comes back byte for byte"
    );
}

/// The table of malformed requests, word for word (the CLI answers the same
/// table in tests/cli.rs).
#[tokio::test]
async fn malformed_requests_get_the_exact_words() {
    let app = default_app();
    for &(request, code, words) in crate::malformed::CASES {
        let reply = call(&app, "POST", SLIDING, &[], request.to_string()).await;
        let prefix = if code == "40000" {
            "Bad request: malformed JSON"
        } else {
            "Invalid parameter"
        };
        assert_eq!(reply.code(), code, "{request}");
        assert_eq!(reply.message(), format!("{prefix}: {words}"), "{request}");
    }
}

async fn still_serving(app: &axum::Router) {
    let reply = call(app, "POST", SLIDING, &[], OK_BODY).await;
    assert_eq!(reply.code(), "20000");
}

#[tokio::test]
async fn each_bad_input_class_gets_its_code_in_process() {
    let app = default_app();
    for (what, path, body, code, word) in cases() {
        let reply = call(
            &app,
            "POST",
            path,
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert!(
            reply.code().starts_with(code),
            "{what}: {} {}",
            reply.code(),
            reply.message()
        );
        assert!(
            reply.message().contains(word),
            "{what}: {}",
            reply.message()
        );
        still_serving(&app).await;
    }
}

#[tokio::test]
async fn each_bad_input_class_gets_its_code_over_a_socket() {
    let server = Server::start(AppState::builder().build()).await;
    for (what, path, body, code, _) in cases() {
        let reply = http(
            server.addr,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            &body,
        )
        .await;
        assert!(reply.code().starts_with(code), "{what}: {}", reply.code());
    }
    let reply = http(server.addr, "POST", SLIDING, &[], OK_BODY.as_bytes()).await;
    assert_eq!(reply.code(), "20000");
    server.stop().await;
}

#[tokio::test]
async fn one_hundred_thousand_messages_are_trimmed_in_bounded_time() {
    let messages = history(50_000);
    assert!(messages.len() > 100_000);
    let body = json!({"maxTokens": 500, "messages": messages}).to_string();
    assert!(
        body.len() < AppState::builder().build().limits().body_limit,
        "fits the default body limit"
    );
    let server = Server::start(AppState::builder().build()).await;
    let started = Instant::now();
    let reply = http(
        server.addr,
        "POST",
        SLIDING,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(reply.code(), "20000");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let result = reply.json()["result"].clone();
    let kept = result["messages"].as_array().unwrap();
    assert!(kept.len() > 2 && kept.len() < 1000, "{}", kept.len());
    assert_eq!(
        result["report"]["messagesDropped"].as_u64().unwrap() as usize,
        messages.len() - kept.len()
    );
    // And the token calculator counts all of them.
    let body = json!({"messages": &messages[..100_001]}).to_string();
    let reply = http(server.addr, "POST", TOKENIZE, &[], body.as_bytes()).await;
    assert_eq!(reply.code(), "20000");
    assert_eq!(
        reply.json()["result"]["messages"].as_array().unwrap().len(),
        100_001
    );
    server.stop().await;
}

/// `tool` messages are accepted by the v1 sliding endpoint, as its OpenAPI
/// schema says (the document is the contract, checked by Schemathesis):
/// with or without `?tools=true`, which is kept as a no-op; any other value
/// of the flag is `40001`.
#[tokio::test]
async fn tool_messages_are_accepted_by_the_sliding_endpoint() {
    let app = default_app();
    let body = r#"{"maxTokens":100,"messages":[{"role":"user","content":"what is 6*7?"},{"role":"assistant","content":"","toolCalls":[{"id":"c1","type":"function","function":{"name":"calc","arguments":{"x":"6*7"}}}]},{"role":"tool","content":"42","toolCallId":"c1"}]}"#;
    for query in ["", "?tools=true", "?tools=false"] {
        let reply = call(
            &app,
            "POST",
            &format!("{SLIDING}{query}"),
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert_eq!(reply.code(), "20000", "{query}: {}", reply.message());
    }
    let reply = call(
        &app,
        "POST",
        &format!("{SLIDING}?tools=yes"),
        &[("content-type", "application/json")],
        body,
    )
    .await;
    assert_eq!(reply.code(), "40001", "{}", reply.message());
}
