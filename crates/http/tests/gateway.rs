//! What real CLOVA Studio clients send, end to end over 127.0.0.1: the legacy
//! key headers, app-id paths, the access-token flow with expiry and refresh,
//! the v3 token calculator with content parts, and chat completions through
//! the gateway (CLOVA v3 and v1, OpenAI-compatible; blocking and streaming;
//! auto-trim; the router check) to a scripted fake upstream.

use std::time::Duration;

use serde_json::{Value, json};
use sluice_core::{Message, Profiles};
use sluice_http::ApiKeys;
use sluice_practice::provider::ProviderKind;

use crate::fake::{Behavior, Script};
use crate::harness::{PracticeServer, suite_server};

const KEY: &str = "nv-gateway-test-key";
const SLIDING_BODY: &str = r#"{"maxTokens":100,"messages":[{"role":"user","content":"hi"}]}"#;

suite_server!(
    /// The one test server (`crate::harness`) as the gateway tests use it: the
    /// sample router, the key [`KEY`] and access tokens that live 400 ms.
    Env
);

impl Env {
    /// Models: `clova` (CLOVA v3 upstream), `gpt` (OpenAI upstream),
    /// `trimmed` (OpenAI, auto_trim, HCX-003's 4,096 tokens), `checked`
    /// (OpenAI, route_check).
    async fn start(script: Script) -> Env {
        let server = PracticeServer::builder()
            .script(script)
            .models(&[
                ("clova", ProviderKind::Clova),
                ("gpt", ProviderKind::Openai),
                ("trimmed", ProviderKind::Openai),
                ("checked", ProviderKind::Openai),
            ])
            .configure(|name, config| match name {
                "trimmed" => config.auto_trim = true,
                "checked" => config.route_check = true,
                _ => {}
            })
            .sample_router()
            .state(|state| {
                state
                    .api_keys(ApiKeys::new([KEY]))
                    .token_ttl(Duration::from_millis(400))
            })
            .start()
            .await;
        Env(server)
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

/// A system message, `pairs` user/assistant pairs whose turns are a Korean
/// sentence `repeat` times, and a last question: more than HCX-003 holds.
fn long_history(repeat: usize, pairs: usize) -> Vec<Value> {
    let turn =
        "오늘 서울 날씨와 미세먼지, 그리고 내일 부산의 강수 예보를 자세히 알려줘. ".repeat(repeat);
    let mut messages = vec![json!({"role": "system", "content": "Answer briefly."})];
    for i in 0..pairs {
        messages.push(json!({"role": "user", "content": format!("{i}: {turn}")}));
        messages.push(json!({"role": "assistant", "content": turn}));
    }
    messages.push(json!({"role": "user", "content": "마지막 질문"}));
    messages
}

fn code(text: &str) -> String {
    serde_json::from_str::<Value>(text).unwrap()["status"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A path, the key headers sent, and the status and envelope code expected.
type KeyCase<'a> = (&'a str, &'a [(&'a str, &'a str)], (u16, &'a str));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_key_headers_and_app_id_paths_work() {
    let env = Env::start(Script::new()).await;
    let legacy = [
        ("X-NCP-CLOVASTUDIO-API-KEY", KEY),
        ("X-NCP-APIGW-API-KEY", "apigw-anything"),
    ];
    let wrong = [("X-NCP-CLOVASTUDIO-API-KEY", "nv-wrong")];
    let cases: [KeyCase; 5] = [
        (
            "/v1/api-tools/sliding/chat-messages/HCX-003",
            &legacy,
            (200, "20000"),
        ),
        (
            "/testapp/v1/api-tools/sliding/chat-messages/HCX-003/1a2b3c4d",
            &legacy,
            (200, "20000"),
        ),
        (
            "/serviceapp/v1/api-tools/sliding/chat-messages/HCX-003/app-9",
            &legacy,
            (200, "20000"),
        ),
        (
            "/testapp/v1/api-tools/chat-tokenize/HCX-003/xyz",
            &legacy,
            (200, "20000"),
        ),
        (
            "/v1/api-tools/sliding/chat-messages/HCX-003",
            &wrong,
            (401, "40100"),
        ),
    ];
    for (path, headers, expected) in cases {
        let (status, _, text) = env.post(path, headers, SLIDING_BODY).await;
        assert_eq!(
            (status, code(&text).as_str()),
            expected,
            "{path} with {headers:?}: {text}"
        );
    }
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
    // An image counts by the profile's rule (issue 28, point 5) ...
    let image = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"}, {"type": "image_url", "imageUrl": {"url": "data:..."}}]}]});
    let (status, reply) = env
        .post_json("/v3/api-tools/chat-tokenize/HCX-005", &image)
        .await;
    assert_eq!(status, 200, "{reply}");
    let text = model.count_message(&Message::user("what is this?"));
    assert_eq!(
        reply["result"]["messages"][0]["count"],
        json!(text + model.profile().images.tokens as usize)
    );
    // ... and a part of any other type is refused, naming it.
    let audio = json!({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "...", "format": "wav"}}]}]});
    let (status, reply) = env
        .post_json("/v3/api-tools/chat-tokenize/HCX-005", &audio)
        .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["status"]["code"], "40001");
    assert!(
        reply["status"]["message"]
            .as_str()
            .unwrap()
            .contains("`input_audio`"),
        "{reply}"
    );
}

/// Issue 28, point 5: image parts go upstream as written, and auto-trim counts
/// each by the profile's rule: a history of pictures that does not fit loses
/// its oldest turns, and what is forwarded fits with its images.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_forwarded_as_parts_and_counted_by_auto_trim() {
    let env = Env::start(Script::new()).await;
    let picture = |i: usize| {
        format!(
            r#"{{"role":"user","content":[{{"type":"text","text":"picture {i}"}},{{"type":"image_url","image_url":{{"url":"https://example.com/{i}.png","detail":"high"}}}}]}}"#
        )
    };
    let mut messages = vec![r#"{"role":"system","content":"Describe pictures."}"#.to_string()];
    for i in 0..4 {
        messages.push(picture(i));
        messages.push(r#"{"role":"assistant","content":"a cat"}"#.to_string());
    }
    messages.push(picture(4));
    let body = format!(
        r#"{{"model":"trimmed","max_tokens":500,"messages":[{}]}}"#,
        messages.join(",")
    );
    let (status, headers, text) = env
        .post(
            "/v1/openai/chat/completions",
            &[("authorization", &format!("Bearer {KEY}"))],
            &body,
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let dropped: usize = headers[sluice_http::TURNS_DROPPED.as_str()]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        dropped >= 2,
        "five images cannot fit 4,096 tokens: {dropped}"
    );
    // The system message and the newest turns, each byte for byte.
    let mut kept = vec![messages[0].clone()];
    kept.extend(messages[1 + 2 * dropped..].iter().cloned());
    let upstream = env.fake.requests().last().unwrap().raw.clone();
    assert!(
        upstream.contains(&format!(r#""messages":[{}]"#, kept.join(","))),
        "{upstream}"
    );
    let model = Profiles::builtin().model("HCX-003").unwrap();
    let parsed: Vec<Message> = kept
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    assert!(model.count(&parsed).total + 500 <= 4096);
    // One more turn would not have fitted.
    let one_more: Vec<Message> = messages[2 * dropped - 1..]
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .chain(std::iter::once(Message::system("Describe pictures.")))
        .collect();
    assert!(model.count(&one_more).total + 500 > 4096);
    // A CLOVA-wire client's image reaches an OpenAI provider in OpenAI's spelling.
    let clova = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "imageUrl": {"url": "https://example.com/x.png"}}]}]});
    let (status, reply) = env.post_json("/v3/chat-completions/gpt", &clova).await;
    assert_eq!(status, 200, "{reply}");
    let sent = env.fake.requests().last().unwrap().body.clone();
    assert_eq!(
        sent["messages"][0]["content"][1],
        json!({"type": "image_url", "image_url": {"url": "https://example.com/x.png"}})
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
    let messages = long_history(20, 40);
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

// Issue 28: the gateway forwards what clients send.

/// An upstream answer written exactly as given: one JSON document.
fn raw_json(body: &str) -> Behavior {
    Behavior::Raw {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.to_string(),
    }
}

/// An upstream answer written exactly as given: an SSE body.
fn raw_sse(body: &str) -> Behavior {
    Behavior::Raw {
        status: 200,
        headers: vec![("Content-Type".into(), "text/event-stream".into())],
        body: body.to_string(),
    }
}

/// The `data:` payloads of an SSE body, each with the `event:` before it.
fn sse_events(text: &str) -> Vec<(Option<String>, String)> {
    let mut events = Vec::new();
    let mut name = None;
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            name = Some(value.trim().to_string());
        } else if let Some(value) = line.strip_prefix("data:") {
            events.push((
                name.take(),
                value.strip_prefix(' ').unwrap_or(value).to_string(),
            ));
        }
    }
    events
}

const WEATHER_TOOLS: &str = r#"[{"type":"function","function":{"name":"get_weather","description":"The weather of a city.","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]"#;

/// An OpenAI answer with everything a client may get back: tool calls, a
/// refusal, logprobs, two choices, usage details and fields sluice has never heard of.
const RICH_OPENAI_ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"upstream-name","system_fingerprint":"fp_1","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Seoul\"}"}}]},"logprobs":{"content":[{"token":"x","logprob":-0.25,"bytes":[120],"top_logprobs":[]}]},"finish_reason":"tool_calls"},{"index":1,"message":{"role":"assistant","content":null,"refusal":"I cannot help with that."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":2}},"x_extra":{"k":[1.0e1, -0]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_requests_go_upstream_as_written_and_answers_come_back_whole() {
    let env = Env::start(Script::new().on("gpt", raw_json(RICH_OPENAI_ANSWER))).await;
    let sent = format!(
        r#"{{"model":"gpt","messages":[{{"role":"user","content":"hi", "x_note": {{"a": [1, 2.50, 1e3]}}}}],"tools":{WEATHER_TOOLS},"tool_choice":"required","response_format":{{"type":"json_object"}},"stop":["\n\n"],"n":2,"logprobs":true,"top_logprobs":2,"x_vendor":{{"nested": [true, null, -0.0]}},"max_tokens":100000}}"#
    );
    let (status, headers, text) = env
        .post(
            "/v1/openai/chat/completions",
            &[("authorization", &format!("Bearer {KEY}"))],
            &sent,
        )
        .await;
    assert_eq!(status, 200, "{text}");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    // Only the maximum changed: clamped to HCX-003's 4,096.
    let upstream = env.fake.single_request();
    assert_eq!(
        upstream.raw,
        sent.replace("\"max_tokens\":100000", "\"max_tokens\":4096")
    );
    // The answer comes back whole, the model named as the client named it.
    assert_eq!(text, RICH_OPENAI_ANSWER.replace("upstream-name", "gpt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_tool_call_streams_come_back_chunk_by_chunk() {
    let chunks = [
        r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]}"#,
        r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Seoul\"}"}}]},"finish_reason":null}]}"#,
        r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"x_extra":1e0}"#,
        r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12,"completion_tokens_details":{"reasoning_tokens":2}}}"#,
    ];
    let body: String = chunks
        .iter()
        .map(|c| format!("data: {c}\n\n"))
        .chain(["data: [DONE]\n\n".to_string()])
        .collect();
    let env = Env::start(Script::new().on("gpt", raw_sse(&body))).await;
    let request = format!(
        r#"{{"model":"gpt","stream":true,"stream_options":{{"include_usage":true}},"messages":[{{"role":"user","content":"weather?"}}],"tools":{WEATHER_TOOLS}}}"#
    );
    let (status, _, text) = env
        .post(
            "/v1/openai/chat/completions",
            &[("authorization", &format!("Bearer {KEY}"))],
            &request,
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let data: Vec<String> = sse_events(&text).into_iter().map(|(_, d)| d).collect();
    let mut expected: Vec<String> = chunks
        .iter()
        .map(|c| c.replace("\"model\":\"m\"", "\"model\":\"gpt\""))
        .collect();
    expected.push("[DONE]".into());
    assert_eq!(data, expected);
    let upstream = env.fake.single_request();
    // Appended by sluice: the maximum, as none was named.
    let without_brace = &request[..request.len() - 1];
    assert_eq!(
        upstream.raw,
        format!("{without_brace},\"max_tokens\":512}}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clova_requests_go_upstream_as_written_with_tools_and_thinking() {
    let answer = r#"{"status":{"code":"20000","message":"OK"},"result":{"created":1,"message":{"role":"assistant","content":"","thinkingContent":"They want the weather.","toolCalls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":{"city":"Seoul"}}}]},"finishReason":"tool_calls","usage":{"promptTokens":5,"completionTokens":7,"totalTokens":12,"completionTokensDetails":{"thinkingTokens":4}},"aiFilter":[]}}"#;
    let stream = concat!(
        "event:token\ndata:{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"thinkingContent\":\"They\"}}\n\n",
        "event:result\ndata:{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"toolCalls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Seoul\"}}}]},\"finishReason\":\"tool_calls\",\"usage\":{\"promptTokens\":5,\"completionTokens\":7,\"totalTokens\":12}}\n\n",
        "event:signal\ndata:{\"data\":\"[DONE]\"}\n\n",
    );
    let env = Env::start(
        Script::new()
            .on("clova", raw_json(answer))
            .on("clova", raw_sse(stream)),
    )
    .await;
    let sent = format!(
        r#"{{"messages":[{{"role":"user","content":[{{"type":"text","text":"서울 날씨?"}}]}}],"tools":{WEATHER_TOOLS},"toolChoice":"auto","responseFormat":{{"type":"json","schema":{{"type":"object"}}}},"thinking":{{"effort":"low"}},"stop":["끝"],"topK":0,"repetitionPenalty":1.10,"maxTokens":64,"includeAiFilters":false}}"#
    );
    let bearer = format!("Bearer {KEY}");
    let (status, _, text) = env
        .post(
            "/v3/chat-completions/clova",
            &[("authorization", &bearer)],
            &sent,
        )
        .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, answer, "the answer comes back as written");
    assert_eq!(
        env.fake.requests()[0].raw,
        sent,
        "the request goes as written"
    );
    assert_eq!(env.fake.requests()[0].path, "/v3/chat-completions/clova");
    let (status, _, text) = env
        .post(
            "/v3/chat-completions/clova",
            &[("authorization", &bearer), ("accept", "text/event-stream")],
            &sent,
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let events = sse_events(&text);
    let expected: Vec<(Option<String>, String)> = sse_events(stream);
    assert_eq!(events, expected, "{text}");
}

/// Across wire formats every field with a counterpart is mapped, both ways,
/// and the tool calls come back in the client's shape, whole and streamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_are_mapped_across_wire_formats() {
    let clova_answer = r#"{"status":{"code":"20000","message":"OK"},"result":{"created":1000,"message":{"role":"assistant","content":"","toolCalls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":{"city":"Seoul"}}}]},"finishReason":"tool_calls","usage":{"promptTokens":5,"completionTokens":7,"totalTokens":12}}}"#;
    let clova_stream = concat!(
        "event:token\ndata:{\"message\":{\"role\":\"assistant\",\"content\":\"\"}}\n\n",
        "event:result\ndata:{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"toolCalls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Seoul\"}}}]},\"finishReason\":\"tool_calls\",\"usage\":{\"promptTokens\":5,\"completionTokens\":7,\"totalTokens\":12}}\n\n",
        "event:signal\ndata:{\"data\":\"[DONE]\"}\n\n",
    );
    let openai_stream = concat!(
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\\\"Seoul\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}\n\n",
        "data: [DONE]\n\n",
    );
    let env = Env::start(
        Script::new()
            .on("clova", raw_json(clova_answer))
            .on("clova", raw_sse(clova_stream))
            .on("gpt", raw_json(RICH_OPENAI_ANSWER))
            .on("gpt", raw_sse(openai_stream)),
    )
    .await;
    let tools: Value = serde_json::from_str(WEATHER_TOOLS).unwrap();
    let schema = json!({"type": "object", "properties": {"sky": {"type": "string"}}});
    // An OpenAI client of a CLOVA model.
    let history = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Busan\"}"}}]},
        {"role": "tool", "tool_call_id": "call_0", "content": "rain"},
        {"role": "user", "content": [{"type": "text", "text": "and Seoul?"}]}
    ]);
    let body = json!({"model": "clova", "messages": history, "tools": tools, "tool_choice": "auto",
                      "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
                      "stop": "END", "top_p": 0.5, "seed": 7, "max_tokens": 64, "n": 1});
    let (status, reply) = env.post_json("/v1/openai/chat/completions", &body).await;
    assert_eq!(status, 200, "{reply}");
    let sent = env.fake.requests()[0].body.clone();
    assert_eq!(sent["tools"], tools);
    assert_eq!(sent["toolChoice"], "auto");
    assert_eq!(
        sent["responseFormat"],
        json!({"type": "json", "schema": schema})
    );
    assert_eq!(sent["stop"], json!(["END"]));
    assert_eq!(
        (
            sent["topP"].clone(),
            sent["seed"].clone(),
            sent["maxTokens"].clone()
        ),
        (json!(0.5), json!(7), json!(64))
    );
    assert_eq!(
        sent["messages"][1]["toolCalls"][0]["function"]["arguments"],
        json!({"city": "Busan"})
    );
    assert_eq!(sent["messages"][2]["toolCallId"], "call_0");
    for gone in [
        "model",
        "tool_choice",
        "response_format",
        "top_p",
        "max_tokens",
        "n",
    ] {
        assert!(
            sent.get(gone).is_none(),
            "{gone} went across as written: {sent}"
        );
    }
    let message = &reply["choices"][0]["message"];
    assert_eq!(
        message["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Seoul\"}"
    );
    assert_eq!(message["tool_calls"][0]["id"], "call_1");
    assert_eq!(reply["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(reply["usage"]["total_tokens"], 12);
    assert_eq!(reply["model"], "clova");
    // ... streamed: indexed tool-call deltas.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (status, _, text) = env
        .post(
            "/v1/openai/chat/completions",
            &[("authorization", &format!("Bearer {KEY}"))],
            &streamed.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let chunks: Vec<Value> = sse_events(&text)
        .into_iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(_, d)| serde_json::from_str(&d).unwrap())
        .collect();
    let call = chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array().cloned())
        .expect("a tool call delta");
    assert_eq!(call[0]["index"], 0, "{text}");
    assert_eq!(call[0]["function"]["arguments"], "{\"city\":\"Seoul\"}");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls",
        "{text}"
    );
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");

    // A CLOVA client of an OpenAI model.
    let body = json!({"messages": [{"role": "user", "content": "weather?"}], "tools": tools, "toolChoice": "auto",
                      "responseFormat": {"type": "json", "schema": schema}, "stop": ["END"], "topP": 0.5, "topK": 3,
                      "thinking": {"effort": "low"}, "maxTokens": 64});
    let (status, reply) = env.post_json("/v3/chat-completions/gpt", &body).await;
    assert_eq!(status, 200, "{reply}");
    let sent = env.fake.requests()[2].body.clone();
    assert_eq!(sent["model"], "gpt");
    assert_eq!(sent["tools"], tools);
    assert_eq!(sent["tool_choice"], "auto");
    assert_eq!(sent["response_format"]["json_schema"]["schema"], schema);
    assert_eq!(sent["response_format"]["type"], "json_schema");
    assert_eq!(
        (
            sent["top_p"].clone(),
            sent["top_k"].clone(),
            sent["reasoning_effort"].clone()
        ),
        (json!(0.5), json!(3), json!("low"))
    );
    assert_eq!(sent["max_tokens"], 64);
    let result = &reply["result"];
    assert_eq!(reply["status"]["code"], "20000");
    assert_eq!(
        result["message"]["toolCalls"][0]["function"]["arguments"],
        json!({"city": "Seoul"})
    );
    assert_eq!(result["finishReason"], "tool_calls");
    assert_eq!(
        result["usage"]["completionTokensDetails"]["thinkingTokens"],
        2
    );
    // ... streamed: the tool call in the result event.
    let (status, _, text) = env
        .post(
            "/v3/chat-completions/gpt",
            &[
                ("authorization", &format!("Bearer {KEY}")),
                ("accept", "text/event-stream"),
            ],
            &body.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let events = sse_events(&text);
    let names: Vec<Option<&str>> = events.iter().map(|(n, _)| n.as_deref()).collect();
    assert_eq!(
        names[names.len() - 2..],
        [Some("result"), Some("signal")],
        "{text}"
    );
    let result: Value = serde_json::from_str(&events[events.len() - 2].1).unwrap();
    assert_eq!(
        result["message"]["toolCalls"][0]["function"]["arguments"],
        json!({"city": "Seoul"}),
        "{text}"
    );
    assert_eq!(result["message"]["toolCalls"][0]["id"], "call_1");
    assert_eq!(result["finishReason"], "tool_calls");
    assert_eq!(result["usage"]["totalTokens"], 12);
    assert_eq!(env.fake.requests()[3].body["stream"], true);
}

/// A field the other wire format has no counterpart for is a 400 naming it,
/// before anything is forwarded; so is a field the typed path (the v1 route)
/// cannot carry.
#[tokio::test]
async fn fields_without_a_counterpart_are_refused_by_name() {
    let env = Env::start(Script::new()).await;
    let user = json!([{"role": "user", "content": "hi"}]);
    let openai_to_clova = [
        (json!({"n": 2}), "n"),
        (json!({"logprobs": true}), "logprobs"),
        (json!({"top_logprobs": 3}), "top_logprobs"),
        (json!({"presence_penalty": 0.5}), "presence_penalty"),
        (json!({"frequency_penalty": 0.5}), "frequency_penalty"),
        (json!({"logit_bias": {"50256": -100}}), "logit_bias"),
        (json!({"parallel_tool_calls": true}), "parallel_tool_calls"),
        (
            json!({"tool_choice": "required"}),
            "tool_choice \"required\"",
        ),
        (
            json!({"response_format": {"type": "json_object"}}),
            "response_format type json_object",
        ),
        (json!({"modalities": ["text", "audio"]}), "modalities"),
        (json!({"audio": {"voice": "alloy"}}), "audio"),
        (
            json!({"prediction": {"type": "content", "content": "x"}}),
            "prediction",
        ),
        (json!({"web_search_options": {}}), "web_search_options"),
        (json!({"user": "u-1"}), "user"),
        (json!({"metadata": {"a": "b"}}), "metadata"),
        (json!({"store": true}), "store"),
        (json!({"service_tier": "auto"}), "service_tier"),
        (
            json!({"messages": [{"role": "user", "content": "hi", "name": "kim"}]}),
            "messages[0].name",
        ),
    ];
    for (fields, name) in openai_to_clova {
        let mut body = json!({"model": "clova", "messages": user});
        for (k, v) in fields.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, reply) = env.post_json("/v1/openai/chat/completions", &body).await;
        assert_eq!(status, 400, "{body}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(name) && message.contains("no counterpart"),
            "{name}: {message}"
        );
    }
    let clova_to_openai = [
        (json!({"includeAiFilters": true}), "includeAiFilters"),
        (
            json!({"responseFormat": {"type": "xml"}}),
            "responseFormat type xml",
        ),
    ];
    for (fields, name) in clova_to_openai {
        let mut body = json!({"messages": user});
        for (k, v) in fields.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, reply) = env.post_json("/v3/chat-completions/gpt", &body).await;
        assert_eq!(
            (status, reply["status"]["code"].as_str()),
            (400, Some("40001")),
            "{body}: {reply}"
        );
        let message = reply["status"]["message"].as_str().unwrap();
        assert!(
            message.contains(name) && message.contains("no counterpart"),
            "{name}: {message}"
        );
    }
    let (status, reply) = env
        .post_json(
            "/v1/chat-completions/gpt",
            &json!({"messages": user, "tools": [], "topK": 3}),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    let message = reply["status"]["message"].as_str().unwrap();
    assert!(message.contains("tools, topK"), "{message}");
    assert!(env.fake.requests().is_empty(), "nothing was forwarded");
}

/// JSON text as clients write it: odd spacing, numbers spelled every way JSON
/// allows, escapes, nesting.
fn json_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let space = || prop::sample::select(vec!["", " ", "\n", "\t", "  \r\n "]);
    let number = prop::sample::select(vec![
        "0",
        "-0",
        "1e2",
        "1E+02",
        "-0.0",
        "10.50",
        "0.1e-3",
        "12345678901234567890",
        "3.0000000000000001",
        "1.5E300",
        "-7",
    ]);
    let string = prop::sample::select(vec![
        r#""""#,
        r#""\u00e9\n""#,
        r#""한국어""#,
        r#""\"q\"""#,
        r#""\ud83d\ude00""#,
        r#""a/b\/c""#,
    ]);
    let leaf = prop_oneof![number, string, Just("true"), Just("false"), Just("null")]
        .prop_map(String::from);
    leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec((inner.clone(), space(), space()), 0..4).prop_map(|items| {
                let items: Vec<String> = items
                    .into_iter()
                    .map(|(v, a, b)| format!("{a}{v}{b}"))
                    .collect();
                format!("[{}]", items.join(","))
            }),
            prop::collection::btree_map("[a-z]{1,6}", (inner, space(), space()), 0..4).prop_map(
                |fields| {
                    let fields: Vec<String> = fields
                        .into_iter()
                        .map(|(k, (v, a, b))| format!("{a}\"{k}\"{b}:{a}{v}{b}"))
                        .collect();
                    format!("{{{}}}", fields.join(","))
                }
            ),
        ]
    })
}

/// Extra fields, each `(name, value as written)`, and the same as an object's
/// tail with odd spacing around them.
fn extra_fields() -> impl proptest::strategy::Strategy<Value = Vec<(String, String, String)>> {
    use proptest::prelude::*;
    prop::collection::btree_map("x_[a-z]{1,8}", (json_text(), "[ \n\t]{0,3}"), 1..5)
        .prop_map(|fields| fields.into_iter().map(|(k, (v, s))| (k, v, s)).collect())
}

/// Issue 28: arbitrary extra request fields reach an OpenAI-compatible
/// upstream byte for byte, and arbitrary extra answer fields reach the client.
#[test]
fn extra_fields_pass_through_both_ways_byte_for_byte() {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let env = runtime.block_on(Env::start(Script::new()));
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let written = |fields: &[(String, String, String)]| -> (String, String) {
        let spaced: String = fields
            .iter()
            .map(|(k, v, s)| format!(",{s}\"{k}\"{s}:{s}{v}{s}"))
            .collect();
        let compact: String = fields
            .iter()
            .map(|(k, v, _)| format!(",\"{k}\":{v}"))
            .collect();
        (spaced, compact)
    };
    runner
        .run(&(extra_fields(), extra_fields()), |(request_extra, answer_extra)| {
            let (request_spaced, request_compact) = written(&request_extra);
            let (answer_spaced, answer_compact) = written(&answer_extra);
            let answer = |extra: &str, model: &str| {
                format!(
                    r#"{{"id":"c","object":"chat.completion","created":1,"model":"{model}","choices":[{{"index":0,"message":{{"role":"assistant","content":"ok"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}{extra}}}"#
                )
            };
            env.fake.push("gpt", raw_json(&answer(&answer_spaced, "upstream")));
            let body = format!(
                "{{ \"model\" : \"gpt\" ,\n\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]{request_spaced}}}"
            );
            let (status, _, text) = runtime.block_on(env.post(
                "/v1/openai/chat/completions",
                &[("authorization", &format!("Bearer {KEY}"))],
                &body,
            ));
            if status != 200 {
                return Err(TestCaseError::fail(format!("{status}: {text} for {body}")));
            }
            let upstream = env.fake.requests().last().unwrap().raw.clone();
            let expected = format!(
                r#"{{"model":"gpt","messages":[{{"role":"user","content":"hi"}}]{request_compact},"max_tokens":512}}"#
            );
            proptest::prop_assert_eq!(upstream, expected);
            proptest::prop_assert_eq!(text, answer(&answer_compact, "gpt"));
            Ok(())
        })
        .unwrap();
}

/// Issue 28, point 6: with auto_trim the tool definitions count toward the
/// prompt (as one more system message holding their JSON), so a request with
/// large tools keeps less history, and what goes upstream fits with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_trim_counts_the_tool_definitions() {
    let env = Env::start(Script::new()).await;
    let messages = long_history(10, 30);
    let description = "Looks up the weather forecast of a city, hour by hour. ".repeat(60);
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": description,
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let forwarded = |body: &Value| -> Vec<Message> {
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                Message::new(
                    m["role"].as_str().unwrap().parse().unwrap(),
                    m["content"].as_str().unwrap(),
                )
            })
            .collect()
    };
    let without = json!({"model": "trimmed", "max_tokens": 500, "messages": messages});
    let (status, reply) = env.post_json("/v1/openai/chat/completions", &without).await;
    assert_eq!(status, 200, "{reply}");
    let plain = forwarded(&env.fake.requests()[0].body);
    let mut with = without.clone();
    with["tools"] = tools.clone();
    let (status, reply) = env.post_json("/v1/openai/chat/completions", &with).await;
    assert_eq!(status, 200, "{reply}");
    let sent = env.fake.requests()[1].body.clone();
    assert_eq!(sent["tools"], tools, "the tools go as written");
    let kept = forwarded(&sent);
    let model = Profiles::builtin().model("HCX-003").unwrap();
    let tool_tokens = model.count_message(&Message::system(tools.to_string()));
    assert!(tool_tokens > 500, "the tools are large: {tool_tokens}");
    assert!(
        kept.len() < plain.len(),
        "less history with the tools: {} vs {}",
        kept.len(),
        plain.len()
    );
    assert!(
        model.count(&kept).total + tool_tokens + 500 <= 4096,
        "the history fits beside the tools"
    );
    assert!(
        model.count(&plain).total + tool_tokens + 500 > 4096,
        "without counting them it would not have"
    );
}
