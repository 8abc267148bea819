//! The providers against the fake upstream of `support`, over real sockets.

use std::time::Duration;

use serde_json::json;
use sluice_core::Message;
use sluice_practice::provider::{
    ChatReply, ChatRequest, ConfigError, ModelConfig, Provider, ProviderError, ProviderKind,
    TokenUsage, http_client,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::support::{Behavior, FakeUpstream, Hostile, Script, Wire};

fn request(prompt: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::system("Be brief."), Message::user(prompt)],
        temperature: 0.3,
        top_p: 0.8,
        max_tokens: 64,
        seed: Some(7),
        request_id: Some("req-1".into()),
    }
}

fn config(kind: ProviderKind, fake: &FakeUpstream) -> ModelConfig {
    ModelConfig {
        timeout_ms: 5_000,
        ..ModelConfig::new(kind, fake.base_url(kind))
    }
}

fn provider(name: &str, config: ModelConfig, key: Option<&str>) -> Provider {
    Provider::with_api_key(name, config, http_client(), key.map(str::to_string))
        .expect("a valid configuration")
}

fn openai(fake: &FakeUpstream, name: &str) -> Provider {
    provider(name, config(ProviderKind::Openai, fake), Some("sk-test"))
}

fn clova(fake: &FakeUpstream, name: &str) -> Provider {
    provider(name, config(ProviderKind::Clova, fake), Some("nv-test"))
}

/// Streams a call, returning the deltas in the order received and the result.
async fn stream(
    provider: &Provider,
    request: &ChatRequest,
) -> (Vec<String>, Result<ChatReply, ProviderError>) {
    // A small channel: the call must wait for room, never drop a delta.
    let (tx, mut rx) = mpsc::channel(2);
    let call = provider.chat_stream(request, tx);
    let receive = async {
        let mut tokens = Vec::new();
        while let Some(token) = rx.recv().await {
            tokens.push(token);
        }
        tokens
    };
    let (result, tokens) = tokio::join!(call, receive);
    (tokens, result)
}

#[tokio::test]
async fn openai_happy_path_sends_the_documented_body() {
    let fake = FakeUpstream::start(Script::new()).await;
    let reply = openai(&fake, "gpt-x")
        .chat(&request("hello there"))
        .await
        .unwrap();

    assert_eq!(
        reply,
        ChatReply {
            text: "echo: hello there".into(),
            // Word counts: "Be brief." + "hello there", then the echo.
            usage: TokenUsage {
                prompt_tokens: 4,
                completion_tokens: 3,
                total_tokens: 7
            },
            finish_reason: Some("stop".into()),
            upstream_id: Some("chatcmpl-fake-gpt-x".into()),
            attempts: 1,
        }
    );
    let sent = fake.single_request();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.wire, Some(Wire::Openai));
    assert_eq!(
        sent.body,
        json!({
            "model": "gpt-x",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "hello there"},
            ],
            "temperature": 0.3,
            "top_p": 0.8,
            "max_tokens": 64,
            "seed": 7,
            "stream": false,
        })
    );
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(sent.header("host"), Some(fake.addr().to_string().as_str()));
    assert!(
        sent.header("user-agent")
            .is_some_and(|ua| ua.starts_with("sluice/"))
    );
    // The request id is a CLOVA header only.
    assert_eq!(sent.header("x-ncp-clovastudio-request-id"), None);
}

#[tokio::test]
async fn openai_without_a_key_seed_or_trailing_slash() {
    let fake = FakeUpstream::start(Script::new()).await;
    let config = ModelConfig {
        base_url: format!("{}/", fake.openai_base_url()),
        model: Some("qwen2.5-7b".into()),
        ..config(ProviderKind::Openai, &fake)
    };
    let local = provider("local", config, None);
    assert_eq!(local.name(), "local");
    assert_eq!(local.upstream_model(), "qwen2.5-7b");
    let request = ChatRequest {
        seed: None,
        ..request("hi")
    };
    local.chat(&request).await.unwrap();

    let sent = fake.single_request();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.model, "qwen2.5-7b");
    assert_eq!(sent.header("authorization"), None);
    assert!(sent.body.get("seed").is_none(), "{}", sent.body);
}

#[tokio::test]
async fn clova_happy_path_sends_the_documented_body() {
    let fake = FakeUpstream::start(Script::new()).await;
    let reply = clova(&fake, "HCX-005")
        .chat(&request("안녕 하세요"))
        .await
        .unwrap();

    assert_eq!(reply.text, "echo: 안녕 하세요");
    assert_eq!(
        reply.usage,
        TokenUsage {
            prompt_tokens: 4,
            completion_tokens: 3,
            total_tokens: 7
        }
    );
    assert_eq!(reply.finish_reason.as_deref(), Some("stop"));
    assert_eq!(reply.attempts, 1);
    let sent = fake.single_request();
    assert_eq!(sent.path, "/v3/chat-completions/HCX-005");
    assert_eq!(sent.wire, Some(Wire::Clova));
    assert_eq!(
        sent.body,
        json!({
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "안녕 하세요"},
            ],
            "temperature": 0.3,
            "topP": 0.8,
            "maxTokens": 64,
            "seed": 7,
        })
    );
    assert_eq!(sent.header("authorization"), Some("Bearer nv-test"));
    assert_eq!(sent.header("x-ncp-clovastudio-request-id"), Some("req-1"));
}

#[tokio::test]
async fn clova_hcx_007_takes_max_completion_tokens() {
    let fake = FakeUpstream::start(Script::new()).await;
    let config = ModelConfig {
        model: Some("HCX-007".into()),
        ..config(ProviderKind::Clova, &fake)
    };
    let think = provider("think", config, None);
    let request = ChatRequest {
        request_id: None,
        ..request("why")
    };
    think.chat(&request).await.unwrap();

    let sent = fake.single_request();
    assert_eq!(sent.path, "/v3/chat-completions/HCX-007");
    assert_eq!(sent.body["maxCompletionTokens"], 64);
    assert!(sent.body.get("maxTokens").is_none(), "{}", sent.body);
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(sent.header("x-ncp-clovastudio-request-id"), None);
}

/// A refusal the provider waits out and retries: the model, what it answers
/// first, how long the retry must wait, and the answer after it.
struct RetryCase {
    case: &'static str,
    kind: ProviderKind,
    model: &'static str,
    first: Behavior,
    wait: Duration,
    answer: &'static str,
}

#[tokio::test]
async fn retry_headers_are_waited_out() {
    let cases = [
        RetryCase {
            case: "a 429 with retry-after",
            kind: ProviderKind::Openai,
            model: "gpt-x",
            first: Behavior::rate_limited("1"),
            wait: Duration::from_secs(1),
            answer: "at last",
        },
        RetryCase {
            case: "retry-after-ms",
            kind: ProviderKind::Clova,
            model: "HCX-005",
            first: Behavior::error(429, "Too many requests")
                .with_code("42900")
                .with_header("retry-after-ms", "300"),
            wait: Duration::from_millis(300),
            answer: "ok",
        },
    ];
    for c in cases {
        let case = c.case;
        let fake = FakeUpstream::start(
            Script::new()
                .on(c.model, c.first)
                .on(c.model, Behavior::reply(c.answer)),
        )
        .await;
        let started = Instant::now();
        let reply = provider(c.model, config(c.kind, &fake), None)
            .chat(&request("hi"))
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));

        assert_eq!(
            (reply.text.as_str(), reply.attempts),
            (c.answer, 2),
            "{case}"
        );
        let requests = fake.requests();
        assert_eq!(requests.len(), 2, "{case}");
        assert!(requests[1].at - requests[0].at >= c.wait, "{case}");
        assert!(started.elapsed() >= c.wait, "{case}");
    }
}

/// An error answer that is returned at once: what the model answers and
/// the error it becomes.
struct NotRetriedCase {
    case: &'static str,
    answer: Behavior,
    error: ProviderError,
    kind: &'static str,
}

#[tokio::test]
async fn errors_that_are_not_retried() {
    let cases = [
        NotRetriedCase {
            case: "a 429 for an exhausted quota",
            answer: Behavior::error(
                429,
                "You exceeded your current quota, please check your plan",
            )
            .with_code("insufficient_quota")
            .with_header("Retry-After", "0"),
            error: ProviderError::RateLimited {
                status: 429,
                message: "You exceeded your current quota, please check your plan".into(),
            },
            kind: "rate_limited",
        },
        NotRetriedCase {
            case: "a 500",
            answer: Behavior::error(500, "The model crashed"),
            error: ProviderError::Upstream5xx {
                status: 500,
                message: "The model crashed".into(),
            },
            kind: "upstream_5xx",
        },
        NotRetriedCase {
            case: "a 400 carries the upstream message",
            answer: Behavior::error(400, "max_tokens is too large: 99999")
                .with_code("invalid_value"),
            error: ProviderError::Upstream4xx {
                status: 400,
                message: "max_tokens is too large: 99999".into(),
            },
            kind: "upstream_4xx",
        },
    ];
    for c in cases {
        let case = c.case;
        let fake = FakeUpstream::start(Script::new().on("gpt-x", c.answer)).await;
        let error = openai(&fake, "gpt-x")
            .chat(&request("hi"))
            .await
            .unwrap_err();

        assert_eq!(error, c.error, "{case}");
        assert_eq!(
            (error.kind(), error.status()),
            (c.kind, c.error.status()),
            "{case}"
        );
        assert_eq!(fake.requests().len(), 1, "{case}: not retried");
    }
}

#[tokio::test]
async fn a_503_is_retried_until_it_clears_or_retries_run_out() {
    let fake = FakeUpstream::start(
        Script::new()
            .on("gpt-x", Behavior::error(503, "Loading model"))
            .on("gpt-x", Behavior::reply("warm now"))
            .on("gpt-y", Behavior::error(503, "Loading model"))
            .on("gpt-y", Behavior::error(502, "Bad gateway"))
            .on("gpt-y", Behavior::error(504, "Gateway timeout")),
    )
    .await;
    let reply = openai(&fake, "gpt-x").chat(&request("hi")).await.unwrap();
    assert_eq!((reply.text.as_str(), reply.attempts), ("warm now", 2));

    // max_retries 2: three attempts, and the last error is the one returned.
    let error = openai(&fake, "gpt-y")
        .chat(&request("hi"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        ProviderError::Upstream5xx {
            status: 504,
            message: "Gateway timeout".into()
        }
    );
    assert_eq!(fake.requests().len(), 5);
}

#[tokio::test]
async fn clova_error_envelopes_map_to_their_status() {
    let fake = FakeUpstream::start(
        Script::new()
            .on(
                "HCX-005",
                Behavior::error(400, "Invalid parameter: maxTokens").with_code("40001"),
            )
            .on(
                "HCX-005",
                Behavior::error(401, "Unauthorized").with_code("40101"),
            )
            .on("HCX-005", Behavior::error(500, "Internal server error")),
    )
    .await;
    let model = clova(&fake, "HCX-005");

    let error = model.chat(&request("hi")).await.unwrap_err();
    assert_eq!(error.kind(), "upstream_4xx");
    assert_eq!(error.status(), Some(400));
    assert!(
        error.to_string().contains("Invalid parameter: maxTokens"),
        "{error}"
    );
    let error = model.chat(&request("hi")).await.unwrap_err();
    assert_eq!(error.status(), Some(401));
    let error = model.chat(&request("hi")).await.unwrap_err();
    assert_eq!(
        error,
        ProviderError::Upstream5xx {
            status: 500,
            message: "Internal server error".into()
        }
    );
    assert_eq!(fake.requests().len(), 3);

    // A failure envelope under HTTP 200 is a failure all the same.
    fake.push(
        "HCX-005",
        Behavior::Raw {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: json!({"status": {"code": "40003", "message": "Context length exceeded"}})
                .to_string(),
        },
    );
    let error = model.chat(&request("hi")).await.unwrap_err();
    assert_eq!(error.status(), Some(400));
    assert!(error.to_string().contains("Context length exceeded"));
}

#[tokio::test]
async fn malformed_json_is_a_bad_response() {
    let fake = FakeUpstream::start(
        Script::new()
            .on("gpt-x", Behavior::MalformedJson)
            .on("HCX-005", Behavior::MalformedJson)
            .on(
                "gpt-y",
                Behavior::Raw {
                    status: 200,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: json!({"id": "x", "choices": []}).to_string(),
                },
            ),
    )
    .await;
    for model in [
        openai(&fake, "gpt-x"),
        clova(&fake, "HCX-005"),
        openai(&fake, "gpt-y"),
    ] {
        let error = model.chat(&request("hi")).await.unwrap_err();
        assert_eq!(error.kind(), "bad_response", "{}: {error}", model.name());
        assert_eq!(error.status(), None);
    }
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn an_upstream_slower_than_the_deadline_times_out_at_the_deadline() {
    let fake = FakeUpstream::start(Script::new().on(
        "gpt-x",
        Behavior::Slow {
            delay: Duration::from_secs(5),
        },
    ))
    .await;
    let config = ModelConfig {
        timeout_ms: 400,
        ..config(ProviderKind::Openai, &fake)
    };
    let started = Instant::now();
    let error = provider("gpt-x", config, None)
        .chat(&request("hi"))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();

    assert_eq!(error, ProviderError::Timeout { after_ms: 400 });
    assert_eq!(error.kind(), "timeout");
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(700), "{elapsed:?}");
}

#[tokio::test]
async fn a_reset_connection_is_retried_then_reported_as_transport() {
    let fake = FakeUpstream::start(
        Script::new()
            .on("gpt-x", Behavior::ResetConnection)
            .on("gpt-x", Behavior::reply("second time lucky"))
            .on("gpt-y", Behavior::ResetConnection)
            .on("gpt-y", Behavior::ResetConnection),
    )
    .await;
    let reply = openai(&fake, "gpt-x").chat(&request("hi")).await.unwrap();
    assert_eq!(
        (reply.text.as_str(), reply.attempts),
        ("second time lucky", 2)
    );

    let config = ModelConfig {
        max_retries: 1,
        ..config(ProviderKind::Openai, &fake)
    };
    let error = provider("gpt-y", config, None)
        .chat(&request("hi"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "transport", "{error}");
    assert_eq!(fake.requests().len(), 4);
    // Every attempt opened a connection of its own.
    assert_eq!(fake.connections(), 4);
}

/// For `gpt-x` and `HCX-005` each: a reset halfway through the body, then a
/// body shorter than its length.
fn breaking_off() -> Script {
    let mut script = Script::new();
    for model in ["gpt-x", "HCX-005"] {
        script = script
            .on(model, Behavior::ResetMidReply)
            .on(model, Behavior::CutShort);
    }
    script
}

#[tokio::test]
async fn a_reply_that_breaks_off_after_its_head_is_transport_and_not_retried() {
    let fake = FakeUpstream::start(breaking_off()).await;
    for model in [openai(&fake, "gpt-x"), clova(&fake, "HCX-005")] {
        for _ in 0..2 {
            let error = model.chat(&request("hi")).await.unwrap_err();
            assert_eq!(error.kind(), "transport", "{}: {error}", model.name());
        }
    }
    assert_eq!(fake.requests().len(), 4, "nothing after a head is retried");
}

#[tokio::test]
async fn a_stream_that_breaks_off_keeps_its_deltas_and_reports_why() {
    let fake = FakeUpstream::start(breaking_off()).await;
    for model in [openai(&fake, "gpt-x"), clova(&fake, "HCX-005")] {
        // Reset after the first delta: that delta went out, then the error.
        let (tokens, result) = stream(&model, &request("two words")).await;
        assert_eq!(tokens, ["echo: "], "{}", model.name());
        assert_eq!(result.unwrap_err().kind(), "transport", "{}", model.name());
        // Every delta, then the end without [DONE] or CLOVA's result event.
        let (tokens, result) = stream(&model, &request("two words")).await;
        assert_eq!(tokens.concat(), "echo: two words", "{}", model.name());
        let error = result.unwrap_err();
        assert_eq!(error.kind(), "bad_response", "{}: {error}", model.name());
    }
    assert_eq!(fake.requests().len(), 4, "nothing after a head is retried");
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported_as_transport() {
    // A port that was just free: nothing listens there.
    let addr = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let config = ModelConfig {
        max_retries: 1,
        timeout_ms: 5_000,
        ..ModelConfig::new(ProviderKind::Openai, format!("http://{addr}/v1"))
    };
    let error = provider("gpt-x", config, None)
        .chat(&request("hi"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "transport", "{error}");
}

#[tokio::test]
async fn openai_streams_deltas_in_order() {
    let fake = FakeUpstream::start(Script::new().on(
        "gpt-x",
        Behavior::stream(&["Hel", "lo", ", wor", "ld"], Duration::from_millis(100)).with_usage(
            TokenUsage {
                prompt_tokens: 11,
                completion_tokens: 4,
                total_tokens: 15,
            },
        ),
    ))
    .await;
    let model = openai(&fake, "gpt-x");
    let request = request("greet");
    let (tx, mut rx) = mpsc::channel(16);
    let call = async { model.chat_stream(&request, tx).await };
    let receive = async {
        let mut tokens = Vec::new();
        let mut first_at = None;
        while let Some(token) = rx.recv().await {
            first_at.get_or_insert_with(Instant::now);
            tokens.push(token);
        }
        (tokens, first_at.expect("some token"))
    };
    let (result, (tokens, first_at)) = tokio::join!(call, receive);
    let reply = result.unwrap();
    let done_at = Instant::now();

    assert_eq!(tokens, ["Hel", "lo", ", wor", "ld"]);
    // Deltas are forwarded as they arrive, not all at the end.
    assert!(done_at - first_at >= Duration::from_millis(250));
    assert_eq!(reply.text, "Hello, world");
    assert_eq!(
        reply.usage,
        TokenUsage {
            prompt_tokens: 11,
            completion_tokens: 4,
            total_tokens: 15
        }
    );
    assert_eq!(reply.finish_reason.as_deref(), Some("stop"));
    assert_eq!(reply.attempts, 1);
    let sent = fake.single_request();
    assert_eq!(sent.body["stream"], true);
    assert_eq!(sent.body["stream_options"], json!({"include_usage": true}));
    assert_eq!(sent.header("accept"), Some("text/event-stream"));
}

#[tokio::test]
async fn clova_streams_deltas_in_order() {
    let fake = FakeUpstream::start(Script::new().on(
        "HCX-005",
        Behavior::stream(&["안녕", "하세", "요!"], Duration::from_millis(20)),
    ))
    .await;
    let (tokens, result) = stream(&clova(&fake, "HCX-005"), &request("인사")).await;
    let reply = result.unwrap();

    assert_eq!(tokens, ["안녕", "하세", "요!"]);
    assert_eq!(reply.text, "안녕하세요!");
    // Usage comes from the result event: 3 prompt words, 1 answer word.
    assert_eq!(
        reply.usage,
        TokenUsage {
            prompt_tokens: 3,
            completion_tokens: 1,
            total_tokens: 4
        }
    );
    assert_eq!(reply.finish_reason.as_deref(), Some("stop"));
    let sent = fake.single_request();
    assert_eq!(sent.header("accept"), Some("text/event-stream"));
    // v3 has no `stream` field: the Accept header asks for the stream.
    assert!(sent.body.get("stream").is_none(), "{}", sent.body);
}

#[tokio::test]
async fn a_default_reply_streams_word_by_word() {
    let fake = FakeUpstream::start(Script::new()).await;
    for model in [openai(&fake, "gpt-x"), clova(&fake, "HCX-005")] {
        let (tokens, result) = stream(&model, &request("one two")).await;
        let reply = result.unwrap();
        assert_eq!(tokens, ["echo: ", "one ", "two"], "{}", model.name());
        assert_eq!(reply.text, "echo: one two");
        assert_eq!(reply.usage.total_tokens, 7);
    }
}

#[tokio::test]
async fn a_stream_error_event_maps_to_its_status() {
    let fake = FakeUpstream::start(
        Script::new()
            .on(
                "HCX-005",
                Behavior::StreamError {
                    chunks: vec!["par".into()],
                    status: 500,
                    message: "Internal server error".into(),
                },
            )
            .on(
                "gpt-x",
                Behavior::StreamError {
                    chunks: vec![],
                    status: 503,
                    message: "overloaded".into(),
                },
            ),
    )
    .await;
    let (tokens, result) = stream(&clova(&fake, "HCX-005"), &request("hi")).await;
    assert_eq!(tokens, ["par"]);
    let error = result.unwrap_err();
    assert_eq!(error.kind(), "upstream_5xx");
    assert_eq!(error.status(), Some(500));

    // Not retried even when the status would be: the stream had begun.
    let (_, result) = stream(&openai(&fake, "gpt-x"), &request("hi")).await;
    assert_eq!(
        result.unwrap_err(),
        ProviderError::Upstream5xx {
            status: 503,
            message: "overloaded".into()
        }
    );
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn a_json_answer_to_a_stream_request_is_one_delta() {
    let fake = FakeUpstream::start(
        Script::new().on(
            "gpt-x",
            Behavior::Raw {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: json!({
                    "id": "c9",
                    "choices": [{"message": {"content": "whole"}, "finish_reason": "length"}],
                    "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
                })
                .to_string(),
            },
        ),
    )
    .await;
    let (tokens, result) = stream(&openai(&fake, "gpt-x"), &request("hi")).await;
    let reply = result.unwrap();
    assert_eq!(tokens, ["whole"]);
    assert_eq!(reply.text, "whole");
    assert_eq!(reply.finish_reason.as_deref(), Some("length"));
}

#[tokio::test]
async fn a_retry_after_past_the_deadline_returns_rate_limited_at_once() {
    let fake = FakeUpstream::start(Script::new().on("gpt-x", Behavior::rate_limited("30"))).await;
    let config = ModelConfig {
        timeout_ms: 2_000,
        ..config(ProviderKind::Openai, &fake)
    };
    let started = Instant::now();
    let error = provider("gpt-x", config, None)
        .chat(&request("hi"))
        .await
        .unwrap_err();

    assert_eq!(
        error,
        ProviderError::RateLimited {
            status: 429,
            message: "Too many requests".into()
        }
    );
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn max_concurrency_serializes_calls() {
    let slow = || Behavior::reply("done").with_delay(Duration::from_millis(200));
    let fake = FakeUpstream::start(
        Script::new()
            .on("one", slow())
            .on("one", slow())
            .on("two", slow())
            .on("two", slow()),
    )
    .await;
    let single = provider(
        "one",
        ModelConfig {
            max_concurrency: 1,
            ..config(ProviderKind::Openai, &fake)
        },
        None,
    );
    let started = Instant::now();
    let (ra, rb) = (request("a"), request("b"));
    let (a, b) = tokio::join!(single.chat(&ra), single.chat(&rb));
    assert_eq!(
        (a.unwrap().text, b.unwrap().text),
        ("done".into(), "done".into())
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(fake.max_in_flight(), 1);

    // The same calls with two slots overlap, so the fake does see concurrency.
    let double = provider(
        "two",
        ModelConfig {
            max_concurrency: 2,
            ..config(ProviderKind::Openai, &fake)
        },
        None,
    );
    let (a, b) = tokio::join!(double.chat(&ra), double.chat(&rb));
    assert!(a.is_ok() && b.is_ok());
    assert_eq!(fake.max_in_flight(), 2);
}

#[tokio::test]
async fn waiting_for_a_slot_counts_against_the_deadline() {
    let slow = || Behavior::Slow {
        delay: Duration::from_millis(300),
    };
    let fake = FakeUpstream::start(Script::new().on("gpt-x", slow()).on("gpt-x", slow())).await;
    let model = provider(
        "gpt-x",
        ModelConfig {
            max_concurrency: 1,
            timeout_ms: 500,
            ..config(ProviderKind::Openai, &fake)
        },
        None,
    );
    let (ra, rb) = (request("a"), request("b"));
    let started = Instant::now();
    let (first, second) = tokio::join!(model.chat(&ra), model.chat(&rb));
    let elapsed = started.elapsed();

    assert_eq!(first.unwrap().text, "echo: a");
    // The second waited 300 ms for the slot, and 300 ms more upstream would pass
    // its 500 ms deadline, which started before the wait.
    assert_eq!(
        second.unwrap_err(),
        ProviderError::Timeout { after_ms: 500 }
    );
    assert!(elapsed < Duration::from_millis(750), "{elapsed:?}");
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn the_key_never_shows_in_debug_output() {
    let fake = FakeUpstream::start(Script::new()).await;
    let secret = "sk-very-secret-0123456789";
    let with_key = provider("gpt-x", config(ProviderKind::Openai, &fake), Some(secret));
    let debug = format!("{with_key:?} {:?}", with_key.config());
    assert!(!debug.contains(secret), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");

    // A key read from the environment: any variable that is set will do.
    let path = std::env::var("PATH").expect("PATH is set");
    let config = ModelConfig {
        api_key_env: Some("PATH".into()),
        ..config(ProviderKind::Openai, &fake)
    };
    let from_env = Provider::new("gpt-x", config, http_client()).unwrap();
    let debug = format!("{from_env:?}");
    assert!(!debug.contains(&path), "{debug}");
    assert!(debug.contains("\"PATH\""), "{debug}");
    from_env.chat(&request("hi")).await.unwrap();
    let expected = format!("Bearer {path}");
    assert_eq!(
        fake.single_request().header("authorization"),
        Some(expected.as_str())
    );
}

#[test]
fn a_missing_key_variable_is_an_error_naming_it() {
    let config = ModelConfig {
        api_key_env: Some("SLUICE_TEST_SURELY_UNSET_KEY".into()),
        ..ModelConfig::new(ProviderKind::Clova, "https://clovastudio.example")
    };
    let error = Provider::new("HCX-005", config, http_client()).unwrap_err();
    assert_eq!(
        error,
        ConfigError::MissingApiKey {
            model: "HCX-005".into(),
            var: "SLUICE_TEST_SURELY_UNSET_KEY".into()
        }
    );
    assert!(error.to_string().contains("SLUICE_TEST_SURELY_UNSET_KEY"));
}

#[test]
fn invalid_settings_are_rejected() {
    let client = http_client();
    let bad = |config: ModelConfig| {
        Provider::with_api_key("m", config, client.clone(), None).unwrap_err()
    };
    let base = ModelConfig::new(ProviderKind::Openai, "http://127.0.0.1:1/v1");
    assert!(matches!(
        bad(ModelConfig {
            base_url: "localhost:8000".into(),
            ..base.clone()
        }),
        ConfigError::InvalidBaseUrl { .. }
    ));
    assert!(matches!(
        bad(ModelConfig {
            max_concurrency: 0,
            ..base.clone()
        }),
        ConfigError::InvalidSetting { .. }
    ));
    for timeout_ms in [0, u64::MAX] {
        assert!(matches!(
            bad(ModelConfig {
                timeout_ms,
                ..base.clone()
            }),
            ConfigError::InvalidSetting { .. }
        ));
    }
    // Re-quantizing is a local model's switch; on an HTTP model it would be
    // silently ignored, so it is refused.
    match bad(ModelConfig {
        requantize_q8_0: true,
        ..base.clone()
    }) {
        ConfigError::InvalidSetting { message, .. } => {
            assert!(message.contains("requantize_q8_0"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Provider::with_api_key("m", base, client.clone(), Some("bad\nkey".into())).unwrap_err(),
        ConfigError::InvalidApiKey { .. }
    ));
}

#[test]
fn model_config_from_toml() {
    #[derive(serde::Deserialize)]
    struct File {
        models: std::collections::BTreeMap<String, ModelConfig>,
    }
    let file: File = toml::from_str(
        r#"
        [models.HCX-007]
        provider = "clova"
        base_url = "https://clovastudio.stream.ntruss.com"
        api_key_env = "CLOVA_KEY"
        timeout_ms = 60000

        [models.local]
        provider = "openai"
        base_url = "http://127.0.0.1:8000/v1"
        model = "qwen2.5-7b-instruct"
        profile = "o200k"
        max_concurrency = 2
        max_retries = 0
        "#,
    )
    .unwrap();
    let hcx = &file.models["HCX-007"];
    assert_eq!(hcx.provider, ProviderKind::Clova);
    assert_eq!(hcx.api_key_env.as_deref(), Some("CLOVA_KEY"));
    assert_eq!(
        (hcx.timeout_ms, hcx.max_concurrency, hcx.max_retries),
        (60_000, 8, 2)
    );
    assert_eq!((hcx.model.as_ref(), hcx.profile.as_ref()), (None, None));
    let local = &file.models["local"];
    assert_eq!(local.provider, ProviderKind::Openai);
    assert_eq!(local.model.as_deref(), Some("qwen2.5-7b-instruct"));
    assert_eq!(local.profile.as_deref(), Some("o200k"));
    assert_eq!(
        (local.timeout_ms, local.max_concurrency, local.max_retries),
        (30_000, 2, 0)
    );

    let unknown = toml::from_str::<ModelConfig>(
        "provider = \"openai\"\nbase_url = \"http://x\"\napi_key = \"sk-inline\"\n",
    );
    assert!(unknown.is_err());
    let kind = toml::from_str::<ModelConfig>("provider = \"anthropic\"\nbase_url = \"http://x\"\n");
    assert!(kind.is_err());
}

#[test]
fn error_kinds_and_statuses() {
    let cases = [
        (ProviderError::Timeout { after_ms: 1 }, "timeout", None),
        (
            ProviderError::RateLimited {
                status: 429,
                message: String::new(),
            },
            "rate_limited",
            Some(429),
        ),
        (
            ProviderError::Upstream4xx {
                status: 404,
                message: String::new(),
            },
            "upstream_4xx",
            Some(404),
        ),
        (
            ProviderError::Upstream5xx {
                status: 502,
                message: String::new(),
            },
            "upstream_5xx",
            Some(502),
        ),
        (
            ProviderError::Transport {
                message: String::new(),
            },
            "transport",
            None,
        ),
        (
            ProviderError::BadResponse {
                message: String::new(),
            },
            "bad_response",
            None,
        ),
    ];
    for (error, kind, status) in cases {
        assert_eq!((error.kind(), error.status()), (kind, status), "{error}");
    }
}

/// Issue 23: every reply shape past a limit fails as `too_large` naming the
/// limit, blocking and streamed, without being read to its end; a reply that
/// is not UTF-8 is the same `bad_response` blocking and streamed.
#[tokio::test]
async fn replies_past_the_reading_limits_are_cut_and_named() {
    let fake = FakeUpstream::start(Script::new()).await;
    let model = provider(
        "gpt-x",
        ModelConfig {
            max_reply_bytes: 100 << 10,
            max_line_bytes: 32 << 10,
            max_stream_bytes: 512 << 10,
            max_retries: 0,
            ..config(ProviderKind::Openai, &fake)
        },
        None,
    );
    let offered = 256 << 20;
    for (shape, streamed, limit) in [
        (Hostile::Body, false, "max_reply_bytes"),
        (Hostile::Body, true, "max_reply_bytes"),
        (Hostile::Stream, true, "max_reply_bytes"),
        (Hostile::Line, true, "max_line_bytes"),
        (Hostile::KeepAlive, true, "max_stream_bytes"),
    ] {
        let before = fake.hostile_bytes();
        // Pieces under the line limit, so the limit reached is the one meant.
        fake.push(
            "gpt-x",
            Behavior::Hostile {
                shape,
                bytes: offered,
                piece: 8 << 10,
                pause: Duration::ZERO,
            },
        );
        let error = if streamed {
            stream(&model, &request("hi")).await.1
        } else {
            model.chat(&request("hi")).await
        }
        .unwrap_err();
        assert_eq!(error.kind(), "too_large", "{shape:?}: {error}");
        assert!(error.to_string().contains(limit), "{shape:?}: {error}");
        let read = fake.hostile_bytes() - before;
        assert!(
            read < 32 << 20,
            "{shape:?}: {read} bytes written of {offered}"
        );
    }
    for streamed in [false, true] {
        fake.push("gpt-x", Behavior::NotUtf8);
        let result = if streamed {
            stream(&model, &request("hi")).await.1
        } else {
            model.chat(&request("hi")).await
        };
        let error = result.unwrap_err();
        assert_eq!(error.kind(), "bad_response", "streamed {streamed}: {error}");
        assert!(error.to_string().contains("not valid UTF-8"), "{error}");
    }
}

/// Issue 26: replicas whose providers share a database. Each replica's
/// provider for `name` may have `local` calls in flight, and all of them
/// together `global`.
fn replica_provider(
    fake: &FakeUpstream,
    store: &sluice_practice::Store,
    name: &str,
    local: usize,
    global: Option<usize>,
    lease_ms: u64,
) -> Provider {
    let provider = provider(
        name,
        ModelConfig {
            max_concurrency: local,
            global_max_concurrency: global,
            global_lease_ms: lease_ms,
            ..config(ProviderKind::Openai, fake)
        },
        None,
    );
    provider.attach_store(store);
    provider
}

/// `calls` calls spread over `providers`, all at once; every one must succeed.
async fn all_at_once(providers: &[Provider], calls: usize) {
    let requests: Vec<ChatRequest> = (0..calls).map(|i| request(&format!("q{i}"))).collect();
    let results = futures_util::future::join_all(
        requests
            .iter()
            .enumerate()
            .map(|(i, r)| providers[i % providers.len()].chat(r)),
    )
    .await;
    for result in results {
        result.expect("every call is answered");
    }
}

#[tokio::test]
async fn global_max_concurrency_holds_across_replicas_on_one_database() {
    let (pairs, _dir) = crate::backends::replica_pairs().await;
    for (one, two) in pairs {
        let slow = Behavior::Slow {
            delay: Duration::from_millis(150),
        };
        let mut script = Script::new();
        for _ in 0..24 {
            script = script.on("shared", slow.clone()).on("free", slow.clone());
        }
        let fake = FakeUpstream::start(script).await;
        // Without the global limit the two replicas together go past 3 ...
        let free = [
            replica_provider(&fake, &one, "free", 8, None, 10_000),
            replica_provider(&fake, &two, "free", 8, None, 10_000),
        ];
        all_at_once(&free, 12).await;
        assert!(fake.max_in_flight() > 3, "{}", fake.max_in_flight());
        // ... and with it they never do, on either backend.
        let fake = FakeUpstream::start(Script::new().on("shared", slow.clone())).await;
        for _ in 0..11 {
            fake.push("shared", slow.clone());
        }
        let shared = [
            replica_provider(&fake, &one, "shared", 8, Some(3), 10_000),
            replica_provider(&fake, &two, "shared", 8, Some(3), 10_000),
        ];
        all_at_once(&shared, 12).await;
        let most = fake.max_in_flight();
        assert!((2..=3).contains(&most), "{most} calls in flight at once");
        assert_eq!(fake.requests().len(), 12);
        // Every slot is given back once the calls end.
        let freed = async {
            while one.model_slots_held("shared").await.unwrap() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), freed)
            .await
            .expect("the slots are released");
    }
}

#[tokio::test]
async fn a_global_slot_outlives_its_lease_while_the_call_runs() {
    let (pairs, _dir) = crate::backends::replica_pairs().await;
    for (one, two) in pairs {
        // Calls of 700 ms on leases of 300 ms: only renewal keeps the slot.
        let long = Behavior::Slow {
            delay: Duration::from_millis(700),
        };
        let fake = FakeUpstream::start(
            Script::new()
                .on("renewed", long.clone())
                .on("renewed", long.clone())
                .on("renewed", long),
        )
        .await;
        let providers = [
            replica_provider(&fake, &one, "renewed", 4, Some(1), 300),
            replica_provider(&fake, &two, "renewed", 4, Some(1), 300),
        ];
        all_at_once(&providers, 3).await;
        assert_eq!(fake.max_in_flight(), 1);
    }
}

#[tokio::test]
async fn a_crashed_holders_global_slot_frees_itself() {
    let (pairs, _dir) = crate::backends::replica_pairs().await;
    for (one, two) in pairs {
        // A replica took the only slot for 300 ms and was killed: it never
        // renews and never releases.
        let lease = Duration::from_millis(300);
        assert_eq!(
            one.take_model_slot("crash", 1, "killed", lease)
                .await
                .unwrap(),
            Some(0)
        );
        assert_eq!(
            two.take_model_slot("crash", 1, "probe", lease)
                .await
                .unwrap(),
            None,
            "held until the lease runs out"
        );
        // The other replica's call waits for it, then goes through.
        let fake = FakeUpstream::start(Script::new()).await;
        let survivor = replica_provider(&fake, &two, "crash", 4, Some(1), 10_000);
        let started = Instant::now();
        survivor.chat(&request("after the crash")).await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "it waited for the lease: {:?}",
            started.elapsed()
        );
        assert!(
            !one.renew_model_slot("crash", 0, "killed", lease)
                .await
                .unwrap(),
            "the dead holder's lease is gone"
        );
    }
}

#[test]
fn global_limits_are_checked_when_the_provider_is_built() {
    let base = ModelConfig::new(ProviderKind::Openai, "http://127.0.0.1:9/v1");
    for (global, lease, field) in [
        (Some(0), 10_000, "global_max_concurrency"),
        (Some(10_001), 10_000, "global_max_concurrency"),
        (Some(2), 50, "global_lease_ms"),
    ] {
        let config = ModelConfig {
            global_max_concurrency: global,
            global_lease_ms: lease,
            ..base.clone()
        };
        match Provider::with_api_key("m", config, http_client(), None) {
            Err(ConfigError::InvalidSetting { message, .. }) => {
                assert!(message.contains(field), "{message}")
            }
            other => panic!("{field}: {other:?}"),
        }
    }
}

/// A provider whose store was never attached refuses to ignore its limit.
#[tokio::test]
async fn a_global_limit_without_a_store_fails_the_call() {
    let fake = FakeUpstream::start(Script::new()).await;
    let lonely = provider(
        "lonely",
        ModelConfig {
            global_max_concurrency: Some(1),
            ..config(ProviderKind::Openai, &fake)
        },
        None,
    );
    let error = lonely.chat(&request("hi")).await.unwrap_err();
    assert!(error.to_string().contains("no store"), "{error}");
    assert!(fake.requests().is_empty());
}
