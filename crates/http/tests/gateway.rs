//! What real CLOVA Studio clients send, end to end over 127.0.0.1: the legacy
//! key headers, app-id paths, the access-token flow with expiry and refresh,
//! the v3 token calculator with content parts, and chat completions through
//! the gateway (CLOVA v3 and v1, OpenAI-compatible; blocking and streaming;
//! auto-trim; the router check) to a scripted fake upstream.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_core::{Message, Profiles};
use sluice_http::{ApiKeys, AppState, app};
use sluice_practice::provider::{ModelConfig, Provider, ProviderKind, http_client};
use sluice_practice::{Practice, Store};
use tokio::sync::oneshot;

use crate::fake::{Behavior, FakeUpstream, Script};

const KEY: &str = "nv-gateway-test-key";
const SLIDING_BODY: &str = r#"{"maxTokens":100,"messages":[{"role":"user","content":"hi"}]}"#;

struct Env {
    fake: FakeUpstream,
    addr: std::net::SocketAddr,
    http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

impl Env {
    /// Models: `clova` (CLOVA v3 upstream), `gpt` (OpenAI upstream),
    /// `trimmed` (OpenAI, auto_trim, HCX-003's 4,096 tokens), `checked`
    /// (OpenAI, route_check).
    async fn start(script: Script) -> Env {
        let fake = FakeUpstream::start(script).await;
        let spec = |name: &str, kind: ProviderKind, tweak: fn(&mut ModelConfig)| {
            let base = match kind {
                ProviderKind::Openai => fake.openai_base_url(),
                ProviderKind::Clova => fake.clova_base_url(),
                ProviderKind::Local => unreachable!("these tests run no local model"),
            };
            let mut config = ModelConfig::new(kind, base);
            config.profile = Some("HCX-003".into());
            config.max_retries = 0;
            tweak(&mut config);
            Provider::with_api_key(name, config, http_client(), None).unwrap()
        };
        let providers = vec![
            spec("clova", ProviderKind::Clova, |_| {}),
            spec("gpt", ProviderKind::Openai, |_| {}),
            spec("trimmed", ProviderKind::Openai, |c| c.auto_trim = true),
            spec("checked", ProviderKind::Openai, |c| c.route_check = true),
        ];
        let models = Practice::models_from(providers, &Profiles::builtin()).unwrap();
        let router = sluice_router::RouterStore::embedded_sample()
            .get("sample", 1)
            .unwrap();
        let practice = Practice::new(Store::in_memory().await.unwrap(), models, Some(router));
        let state = AppState::builder()
            .api_keys(ApiKeys::new([KEY]))
            .practice(practice)
            .token_ttl(Duration::from_millis(400))
            .build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(sluice_http::serve(listener, app(state), async move {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Env {
            fake,
            addr,
            http,
            _stop: stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.body(body.to_string()).send().await.unwrap();
        let status = response.status().as_u16();
        if response.status().is_success() {
            crate::support::accepted_by_the_spec("POST", path, body.as_bytes());
        }
        let headers = response.headers().clone();
        (status, headers, response.text().await.unwrap())
    }

    async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, _, text) = self
            .post(
                path,
                &[("authorization", &format!("Bearer {KEY}"))],
                &body.to_string(),
            )
            .await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn code(text: &str) -> String {
    serde_json::from_str::<Value>(text).unwrap()["status"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_key_headers_and_app_id_paths_work() {
    let env = Env::start(Script::new()).await;
    let legacy = [
        ("X-NCP-CLOVASTUDIO-API-KEY", KEY),
        ("X-NCP-APIGW-API-KEY", "apigw-anything"),
    ];
    for path in [
        "/v1/api-tools/sliding/chat-messages/HCX-003",
        "/testapp/v1/api-tools/sliding/chat-messages/HCX-003/1a2b3c4d",
        "/serviceapp/v1/api-tools/sliding/chat-messages/HCX-003/app-9",
    ] {
        let (status, _, text) = env.post(path, &legacy, SLIDING_BODY).await;
        assert_eq!(
            (status, code(&text).as_str()),
            (200, "20000"),
            "{path}: {text}"
        );
    }
    let (status, _, text) = env
        .post(
            "/testapp/v1/api-tools/chat-tokenize/HCX-003/xyz",
            &legacy,
            SLIDING_BODY,
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let wrong = [("X-NCP-CLOVASTUDIO-API-KEY", "nv-wrong")];
    let (status, _, text) = env
        .post(
            "/v1/api-tools/sliding/chat-messages/HCX-003",
            &wrong,
            SLIDING_BODY,
        )
        .await;
    assert_eq!((status, code(&text).as_str()), (401, "40100"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_expire_with_40103_and_refresh() {
    let env = Env::start(Script::new()).await;
    let get_token = |existing: bool| {
        let request = env
            .http
            .get(env.url(&format!("/v1/auth/token?existingToken={existing}")))
            .bearer_auth(KEY);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["status"]["code"], "20000", "{body}");
            assert!(
                body["result"]["expiresAt"].as_str().unwrap().ends_with('Z'),
                "{body}"
            );
            body["result"]["accessToken"].as_str().unwrap().to_string()
        }
    };
    let token = get_token(true).await;
    assert_eq!(get_token(true).await, token, "existingToken=true reuses it");
    let bearer = format!("Bearer {token}");
    let path = "/v1/api-tools/sliding/chat-messages/HCX-003";
    let (status, _, text) = env
        .post(path, &[("authorization", &bearer)], SLIDING_BODY)
        .await;
    assert_eq!(status, 200, "{text}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, _, text) = env
        .post(path, &[("authorization", &bearer)], SLIDING_BODY)
        .await;
    assert_eq!((status, code(&text).as_str()), (401, "40103"), "{text}");
    let fresh = get_token(true).await;
    assert_ne!(fresh, token, "an expired token is not reused");
    let (status, _, _) = env
        .post(
            path,
            &[("authorization", &format!("Bearer {fresh}"))],
            SLIDING_BODY,
        )
        .await;
    assert_eq!(status, 200);
    // A token is issued for a key only.
    let response = env
        .http
        .get(env.url("/v1/auth/token"))
        .bearer_auth("nv-not-a-key")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let (status, _, text) = env
        .post(
            path,
            &[("authorization", "Bearer sluice-at-forged")],
            SLIDING_BODY,
        )
        .await;
    assert_eq!((status, code(&text).as_str()), (401, "40100"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v3_token_calculator_counts_text_parts_and_refuses_others() {
    let env = Env::start(Script::new()).await;
    let model = Profiles::builtin().model("HCX-005").unwrap();
    let body = json!({"messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": [{"type": "text", "text": "미세먼지"}, {"type": "text", "text": "정보 알려줘"}]}
    ]});
    let (status, reply) = env
        .post_json("/v3/api-tools/chat-tokenize/HCX-005", &body)
        .await;
    assert_eq!(status, 200, "{reply}");
    let expected = model.count(&[
        Message::system("Answer briefly."),
        Message::user("미세먼지\n정보 알려줘"),
    ]);
    assert_eq!(
        reply["result"]["messages"][1]["count"],
        json!(expected.per_message[1])
    );
    assert_eq!(reply["result"]["total"], json!(expected.total));
    assert!(
        reply["result"]["messages"][1]["content"].is_array(),
        "the parts are echoed"
    );
    let image = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "data:..."}}]}]});
    let (status, reply) = env
        .post_json("/v3/api-tools/chat-tokenize/HCX-005", &image)
        .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["status"]["code"], "40001");
    assert!(
        reply["status"]["message"]
            .as_str()
            .unwrap()
            .contains("`image_url`"),
        "{reply}"
    );
}

/// Every sampling field is type-checked, also one that another field
/// overrides (`maxCompletionTokens` wins over `maxTokens`, found by
/// Schemathesis), and `stream` must be a boolean; all before any upstream call.
#[tokio::test]
async fn chat_requests_with_a_field_of_the_wrong_type_are_refused() {
    let env = Env::start(Script::new()).await;
    let user = json!([{"role": "user", "content": "hi"}]);
    let cases = [
        (
            "/v3/chat-completions/clova",
            json!({"messages": user, "maxCompletionTokens": 16, "maxTokens": "many"}),
            "maxTokens",
        ),
        (
            "/v1/chat-completions/clova",
            json!({"messages": user, "maxCompletionTokens": 16, "maxTokens": -1}),
            "maxTokens",
        ),
        (
            "/v1/openai/chat/completions",
            json!({"model": "gpt", "messages": user, "max_completion_tokens": 16, "max_tokens": [1]}),
            "max_tokens",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "gpt", "messages": user, "stream": "yes"}),
            "stream",
        ),
        (
            "/v1/openai/chat/completions",
            json!({"model": "gpt", "messages": user, "stream": 1}),
            "stream",
        ),
    ];
    for (path, body, field) in cases {
        let (status, reply) = env.post_json(path, &body).await;
        assert_eq!(status, 400, "{path} {body}: {reply}");
        assert!(reply.to_string().contains(field), "{path} {body}: {reply}");
    }
    assert!(env.fake.requests().is_empty(), "nothing was forwarded");
    // `null` is no value, as OpenAI's clients send it.
    let body = json!({"model": "gpt", "messages": user, "stream": null, "max_tokens": null});
    let (status, reply) = env.post_json("/v1/openai/chat/completions", &body).await;
    assert_eq!(status, 200, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clova_chat_completions_are_forwarded_blocking_and_streaming() {
    // The fake upstream echoes: "echo: <last user message>", usage in words.
    let env = Env::start(Script::new()).await;
    let body = json!({"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "안녕"}],
                      "temperature": 0.3, "topP": 0.6, "maxTokens": 64});
    let (status, reply) = env
        .post_json("/testapp/v3/chat-completions/clova", &body)
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["status"]["code"], "20000");
    assert_eq!(reply["result"]["message"]["content"], "echo: 안녕");
    assert_eq!(reply["result"]["usage"]["completionTokens"], 2);
    let sent = env.fake.requests().last().unwrap().clone();
    assert_eq!(sent.body["topP"], 0.6);
    assert_eq!(sent.body["maxTokens"], 64);
    assert_eq!(sent.body["messages"][1]["content"], "안녕");
    // v1: the HCX-003-era response shape.
    let (status, reply) = env.post_json("/v1/chat-completions/clova", &body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["result"]["outputLength"], 2);
    assert!(reply["result"]["stopReason"].is_string());
    // Streaming: token events, then the result, then the signal.
    let response = env
        .http
        .post(env.url("/v3/chat-completions/clova"))
        .bearer_auth(KEY)
        .header("accept", "text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert!(
        events.iter().filter(|e| **e == "token").count() >= 2,
        "{text}"
    );
    assert_eq!(&events[events.len() - 2..], ["result", "signal"], "{text}");
    let result = text
        .split("event: result\ndata: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .expect("a result event");
    assert_eq!(result["message"]["content"], "echo: 안녕", "{text}");
    // Unknown model.
    let (status, reply) = env.post_json("/v3/chat-completions/HCX-999", &body).await;
    assert_eq!(
        (status, reply["status"]["code"].as_str()),
        (400, Some("40080")),
        "{reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_chat_completions_are_forwarded_blocking_and_streaming() {
    let script = Script::new()
        .on("gpt", Behavior::reply("hello there friend"))
        .on("gpt", Behavior::reply("hello there friend"));
    let env = Env::start(script).await;
    for path in ["/v1/openai/chat/completions", "/v1/chat/completions"] {
        let body = json!({"model": "gpt", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                          "max_tokens": 32, "temperature": 0});
        let (status, reply) = env.post_json(path, &body).await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["object"], "chat.completion");
        assert_eq!(
            reply["choices"][0]["message"]["content"],
            "hello there friend"
        );
        assert_eq!(reply["usage"]["completion_tokens"], 3);
    }
    let body =
        json!({"model": "gpt", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let response = env
        .http
        .post(env.url("/v1/openai/chat/completions"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    let content: String = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(content, "echo: hi", "{text}");
    // OpenAI-shaped errors.
    let (status, reply) = env
        .post_json(
            "/v1/openai/chat/completions",
            &json!({"model": "nope", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    // Issue 23, item 9: as OpenAI answers an unknown model.
    assert_eq!(status, 404, "{reply}");
    assert_eq!(reply["error"]["code"], "model_not_found");
    assert_eq!(reply["error"]["type"], "invalid_request_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_trim_forwards_a_history_that_fits_and_says_what_it_dropped() {
    let env = Env::start(Script::new()).await;
    let turn =
        "오늘 서울 날씨와 미세먼지, 그리고 내일 부산의 강수 예보를 자세히 알려줘. ".repeat(20);
    let mut messages = vec![json!({"role": "system", "content": "Answer briefly."})];
    for i in 0..40 {
        messages.push(json!({"role": "user", "content": format!("{i}: {turn}")}));
        messages.push(json!({"role": "assistant", "content": turn}));
    }
    messages.push(json!({"role": "user", "content": "마지막 질문"}));
    let body = json!({"model": "trimmed", "max_tokens": 1000, "messages": messages});
    let (status, headers, text) = env
        .post(
            "/v1/openai/chat/completions",
            &[("authorization", &format!("Bearer {KEY}"))],
            &body.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let dropped: usize = headers[sluice_http::TURNS_DROPPED.as_str()]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(dropped > 0, "turns were dropped");
    let sent = env.fake.requests().last().unwrap().clone();
    let forwarded: Vec<Message> = sent.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            Message::new(
                m["role"].as_str().unwrap().parse().unwrap(),
                m["content"].as_str().unwrap(),
            )
        })
        .collect();
    let model = Profiles::builtin().model("HCX-003").unwrap();
    assert!(
        model.count(&forwarded).total + 1000 <= 4096,
        "the forwarded history fits"
    );
    assert_eq!(
        forwarded[0].content, "Answer briefly.",
        "the system message stays"
    );
    assert_eq!(forwarded.last().unwrap().content, "마지막 질문");
    assert_eq!(forwarded.len(), messages.len() - 2 * dropped);
    // Without auto_trim the same history goes through untouched.
    let body = json!({"model": "gpt", "max_tokens": 1000, "messages": messages});
    let (status, headers, _) = env
        .post(
            "/v1/openai/chat/completions",
            &[("authorization", &format!("Bearer {KEY}"))],
            &body.to_string(),
        )
        .await;
    assert_eq!(status, 200);
    assert!(headers.get(sluice_http::TURNS_DROPPED.as_str()).is_none());
    assert_eq!(
        env.fake.requests().last().unwrap().body["messages"]
            .as_array()
            .unwrap()
            .len(),
        messages.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_check_blocks_before_anything_is_forwarded() {
    let env = Env::start(Script::new()).await;
    let body = json!({"model": "checked", "messages": [{"role": "user", "content": "서울 근처 맛집 추천해줘"}]});
    let (status, reply) = env.post_json("/v1/openai/chat/completions", &body).await;
    assert_eq!(status, 403, "{reply}");
    assert_eq!(reply["error"]["code"], "40300");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("UnsupportedRegion"),
        "{reply}"
    );
    assert!(env.fake.requests().is_empty(), "nothing was forwarded");
    let body = json!({"model": "checked", "messages": [{"role": "user", "content": "내일 서울 날씨 어때?"}]});
    let (status, reply) = env.post_json("/v1/openai/chat/completions", &body).await;
    assert_eq!(status, 200, "{reply}");
}
