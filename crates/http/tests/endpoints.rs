//! The endpoints answer the seed examples with the seed shapes, in-process and over
//! a real socket, under every prefix.

use serde_json::{Value, json};
use sluice_core::{Message, Profiles};
use sluice_http::AppState;

use crate::support::*;

/// The request body of the sliding-window page's curl example.
fn seed_sliding_request() -> Value {
    json!({"maxTokens": 200, "messages": [{"role": "user", "content": "hello"}]})
}

/// The sliding-window page's success example.
fn seed_sliding_response() -> Value {
    json!({
        "status": {"code": "20000", "message": "OK"},
        "result": {"messages": [{"role": "user", "content": "hello"}]}
    })
}

#[tokio::test]
async fn seed_sliding_example_returns_the_seed_shape_in_process() {
    let reply = post_json(&default_app(), SLIDING, &seed_sliding_request()).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let mut body = reply.json();
    // Extra fields are allowed; the seed's fields must be there unchanged.
    assert!(body["result"]["report"].is_object());
    body["result"].as_object_mut().unwrap().remove("report");
    assert_eq!(body, seed_sliding_response());
}

#[tokio::test]
async fn seed_examples_work_over_a_socket_with_the_hosted_headers_under_every_prefix() {
    let server = Server::start(AppState::builder().build()).await;
    for prefix in sluice_http::PREFIXES {
        let reply = http(
            server.addr,
            "POST",
            &format!("{prefix}{SLIDING}"),
            &[
                ("Authorization", "Bearer nv-0123456789abcdef"),
                ("X-NCP-CLOVASTUDIO-REQUEST-ID", "seed-request-1"),
                ("Content-Type", "application/json"),
            ],
            // The page's body, formatted as in its curl example.
            b"{\n      \"maxTokens\" : 200,\n      \"messages\" : [ {\n        \"role\" : \"user\",\n        \"content\" : \"hello\"\n      } ]\n}",
        )
        .await;
        assert_eq!(reply.code(), "20000", "{prefix}");
        assert_eq!(
            reply.header("x-ncp-clovastudio-request-id"),
            Some("seed-request-1")
        );
        assert_eq!(
            reply.json()["result"]["messages"],
            seed_sliding_response()["result"]["messages"]
        );

        let reply = http(
            server.addr,
            "POST",
            &format!("{prefix}{TOKENIZE}"),
            &[("Content-Type", "application/json")],
            br#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello"}]}"#,
        )
        .await;
        assert_eq!(reply.code(), "20000", "{prefix}");
        let result = &reply.json()["result"];
        assert_eq!(result["messages"][1]["role"], "user");
        assert_eq!(result["messages"][1]["content"], "hello");
        assert!(result["messages"][1]["count"].as_u64().unwrap() > 0);
    }
    server.stop().await;
}

#[tokio::test]
async fn sliding_trims_oldest_turns_and_keeps_the_system_message() {
    let messages = history(400);
    let reply = post_json(
        &default_app(),
        SLIDING,
        &json!({"maxTokens": 1000, "messages": messages}),
    )
    .await;
    assert_eq!(reply.code(), "20000");
    let result = reply.json()["result"].clone();
    let kept = result["messages"].as_array().unwrap();
    assert_eq!(kept[0], messages[0], "system message kept first");
    assert_eq!(kept.last(), messages.last(), "newest message kept");
    assert!(kept.len() < messages.len());
    // The kept non-system messages are the newest ones, whole turns, in order.
    assert_eq!(&kept[1..], &messages[messages.len() - (kept.len() - 1)..]);
    assert_eq!(kept[1]["role"], "user");
    let report = &result["report"];
    assert!(report["tokensAfter"].as_u64().unwrap() + 1000 <= 4096);
    assert_eq!(
        report["turnsDropped"].as_u64().unwrap() * 2,
        report["messagesDropped"].as_u64().unwrap()
    );
    assert_eq!(
        report["messagesDropped"].as_u64().unwrap() as usize,
        messages.len() - kept.len()
    );

    // The same answer as the library gives.
    let typed: Vec<Message> = serde_json::from_value(Value::Array(messages.clone())).unwrap();
    let trim = Profiles::builtin()
        .model("HCX-003")
        .unwrap()
        .trim(&typed, 1000)
        .unwrap();
    let expected = serde_json::to_value(trim.apply(typed)).unwrap();
    assert_eq!(result["messages"], expected);
}

#[tokio::test]
async fn sliding_returns_a_fitting_history_unchanged_and_defaults_max_tokens_to_100() {
    let messages = history(3);
    let reply = post_json(&default_app(), SLIDING, &json!({"messages": messages})).await;
    assert_eq!(reply.code(), "20000");
    let result = reply.json()["result"].clone();
    assert_eq!(result["messages"], Value::Array(messages));
    assert_eq!(result["report"]["maxTokens"], 100);
    assert_eq!(result["report"]["messagesDropped"], 0);
}

#[tokio::test]
async fn a_larger_max_tokens_deletes_more_history() {
    let app = default_app();
    let messages = history(200);
    let kept = |max: u32| {
        let app = app.clone();
        let messages = messages.clone();
        async move {
            let r = post_json(
                &app,
                SLIDING,
                &json!({"maxTokens": max, "messages": messages}),
            )
            .await;
            r.json()["result"]["messages"].as_array().unwrap().len()
        }
    };
    assert!(kept(3000).await < kept(100).await);
}

#[tokio::test]
async fn sliding_context_exceeded_is_40003_with_the_numbers() {
    let huge = "토큰 ".repeat(6000);
    let body = json!({"maxTokens": 100, "messages": [{"role": "user", "content": huge}]});
    let reply = post_json(&default_app(), SLIDING, &body).await;
    assert_eq!(reply.code(), "40003");
    assert!(reply.message().contains("4096"), "{}", reply.message());
}

#[tokio::test]
async fn tokenize_counts_each_message_like_the_library() {
    let messages = history(5);
    let reply = post_json(&default_app(), TOKENIZE, &json!({"messages": messages})).await;
    assert_eq!(reply.code(), "20000");
    let result = reply.json()["result"].clone();
    let typed: Vec<Message> = serde_json::from_value(Value::Array(messages.clone())).unwrap();
    let counts = Profiles::builtin().model("HCX-003").unwrap().count(&typed);
    let out = result["messages"].as_array().unwrap();
    assert_eq!(out.len(), messages.len());
    for ((m, sent), count) in out.iter().zip(&messages).zip(&counts.per_message) {
        assert_eq!(m["role"], sent["role"]);
        assert_eq!(m["content"], sent["content"]);
        assert_eq!(m["count"].as_u64().unwrap() as usize, *count);
    }
    assert_eq!(result["total"].as_u64().unwrap() as usize, counts.total);
    assert_eq!(result["reply"].as_u64().unwrap() as usize, counts.reply);
}

#[tokio::test]
async fn unknown_model_is_40080_on_both_endpoints() {
    let app = default_app();
    for path in [
        "/v1/api-tools/sliding/chat-messages/HCX-999",
        "/v1/api-tools/chat-tokenize/HCX-999",
    ] {
        let reply = post_json(&app, path, &seed_sliding_request()).await;
        assert_eq!(reply.code(), "40080", "{path}");
        assert!(reply.message().contains("HCX-999"));
    }
}

#[tokio::test]
async fn model_names_resolve_case_insensitively_like_the_library() {
    let reply = post_json(
        &default_app(),
        "/v1/api-tools/sliding/chat-messages/hcx-003",
        &seed_sliding_request(),
    )
    .await;
    assert_eq!(reply.code(), "20000");
}

#[tokio::test]
async fn unknown_route_is_40400_and_wrong_method_is_40500_in_the_envelope() {
    let app = default_app();
    let reply = call(&app, "POST", "/v1/api-tools/nothing/HCX-003", &[], "{}").await;
    assert_eq!(reply.code(), "40400");
    // `/` is the web app's page; any other unknown path is the envelope's 404.
    let reply = call(&app, "GET", "/nothing", &[], "").await;
    assert_eq!(reply.code(), "40400");
    let reply = call(&app, "GET", SLIDING, &[], "").await;
    assert_eq!(reply.code(), "40500");
}

#[tokio::test]
async fn request_id_is_echoed_or_generated_on_every_response() {
    let app = default_app();
    let reply = call(
        &app,
        "POST",
        SLIDING,
        &[("x-ncp-clovastudio-request-id", "abc-123")],
        seed_sliding_request().to_string(),
    )
    .await;
    assert_eq!(
        reply.header("x-ncp-clovastudio-request-id"),
        Some("abc-123")
    );
    // Errors too, and the fallback.
    let reply = call(
        &app,
        "GET",
        "/nowhere",
        &[("X-NCP-CLOVASTUDIO-REQUEST-ID", "r-2")],
        "",
    )
    .await;
    assert_eq!(reply.header("x-ncp-clovastudio-request-id"), Some("r-2"));
    let a = call(&app, "POST", SLIDING, &[], "{").await;
    let b = call(&app, "POST", SLIDING, &[], "{").await;
    let (a, b) = (
        a.header("x-ncp-clovastudio-request-id").unwrap(),
        b.header("x-ncp-clovastudio-request-id").unwrap(),
    );
    assert_ne!(a, b);
    assert_eq!(a.len(), 36, "a UUID: {a}");
    assert_eq!(&a[14..15], "4", "version 4: {a}");
}

#[tokio::test]
async fn a_broken_profile_is_50000_without_details() {
    let mut profiles = Profiles::builtin();
    profiles
        .load_str(
            "[profiles.broken]\ntokenizer_file = \"/nonexistent/secret-dir/tokenizer.json\"\ncontext_limit = 4096\n",
            "test.toml",
            std::path::Path::new("."),
        )
        .unwrap();
    let app = sluice_http::app(AppState::builder().profiles(profiles).build());
    let reply = post_json(
        &app,
        "/v1/api-tools/sliding/chat-messages/broken",
        &seed_sliding_request(),
    )
    .await;
    assert_eq!(reply.code(), "50000");
    assert_eq!(reply.message(), "Internal server error");
    assert!(!String::from_utf8_lossy(&reply.body).contains("secret-dir"));
    // Other models are unaffected.
    assert_eq!(
        post_json(&app, SLIDING, &seed_sliding_request())
            .await
            .code(),
        "20000"
    );
}
