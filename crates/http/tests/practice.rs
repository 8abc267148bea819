//! The practice API end to end: a real server on 127.0.0.1:0, a real HTTP
//! client, an in-memory store, the sample router, and a scripted fake upstream
//! that speaks the OpenAI-compatible and CLOVA v3 wire formats over its own
//! socket. Each test checks what the client gets back *and* what the models
//! were sent.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use sluice_core::{Message, Profiles};
use sluice_practice::ClassRole;
use sluice_practice::provider::{ModelConfig, ProviderKind};

use crate::fake::{Behavior, Recorded, Script, Wire};
use crate::harness::{PracticeServer, THREE, suite_server};
use crate::support::sse_events;

/// `alpha` and `gamma`: one model of each wire format.
const TWO: [(&str, ProviderKind); 2] = [
    ("alpha", ProviderKind::Openai),
    ("gamma", ProviderKind::Clova),
];

suite_server!(
    /// The one test server (`crate::harness`) as these tests use it: the sample
    /// router, and models that retry twice within a 10 s deadline.
    Env
);

impl Env {
    async fn start(script: Script, models: &[(&'static str, ProviderKind)]) -> Env {
        Self::start_with(script, models, |_, _| {}).await
    }

    /// With `configure` applied to each model after the defaults above.
    async fn start_with(
        script: Script,
        models: &[(&'static str, ProviderKind)],
        configure: impl Fn(&str, &mut ModelConfig) + 'static,
    ) -> Env {
        let server = PracticeServer::builder()
            .script(script)
            .models(models)
            .sample_router()
            .configure(move |name, config| {
                config.timeout_ms = 10_000;
                config.max_retries = 2;
                configure(name, config);
            })
            .start()
            .await;
        Env(server)
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.send_json(Some(&self.key), method, path, body).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send(Method::PATCH, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(Method::DELETE, path, None).await
    }

    /// `POST /user/practice/sessions/run?class_id=<the class>`.
    async fn run(&self, body: &Value) -> (u16, Value) {
        self.post(&self.run_path(), body).await
    }

    fn run_path(&self) -> String {
        format!("/user/practice/sessions/run?class_id={}", self.class_id)
    }

    /// Creates a library object and returns its id.
    async fn create(&self, path: &str, body: &Value) -> i64 {
        let (status, created) = self.post(path, body).await;
        assert_eq!(status, 201, "{path}: {created}");
        created["id"].as_i64().unwrap()
    }

    /// How many sessions the student has.
    async fn session_count(&self) -> i64 {
        let (status, list) = self.get("/user/practice/sessions").await;
        assert_eq!(status, 200, "{list}");
        list["total"].as_i64().unwrap()
    }

    /// Every request the fake received for `model`, in order.
    fn requests_for(&self, model: &str) -> Vec<Recorded> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| r.model == model)
            .collect()
    }

    /// The last request the fake received for `model`.
    fn last_for(&self, model: &str) -> Recorded {
        self.requests_for(model)
            .pop()
            .unwrap_or_else(|| panic!("no request for {model}"))
    }
}

/// `(role, content)` of every message a request carried.
fn messages(request: &Recorded) -> Vec<(String, String)> {
    request.body["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages: {}", request.body))
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The system message of a request ("" when there is none).
fn system_of(request: &Recorded) -> String {
    messages(request)
        .into_iter()
        .find(|(role, _)| role == "system")
        .map(|(_, content)| content)
        .unwrap_or_default()
}

/// The content of the last user message of a request.
fn last_user(request: &Recorded) -> String {
    messages(request)
        .into_iter()
        .rev()
        .find(|(role, _)| role == "user")
        .map(|(_, content)| content)
        .unwrap()
}

/// `max_tokens` as each wire format names it.
fn sent_max_tokens(request: &Recorded) -> Value {
    match request.wire {
        Some(Wire::Openai) => request.body["max_tokens"].clone(),
        Some(Wire::Clova) => request.body["maxTokens"].clone(),
        None => panic!("unknown wire"),
    }
}

/// `top_p` as each wire format names it.
fn sent_top_p(request: &Recorded) -> Value {
    match request.wire {
        Some(Wire::Openai) => request.body["top_p"].clone(),
        Some(Wire::Clova) => request.body["topP"].clone(),
        None => panic!("unknown wire"),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
fn is_rfc3339_utc(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| range.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() >= 20
        && text.ends_with('Z')
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && (b.len() == 20 || (b[19] == b'.' && digits(20..b.len() - 1)))
}

/// The FastAPI 422 shape: a list of `{loc, msg, type}`; returns the entry at `loc`.
fn field_error<'a>(body: &'a Value, loc: &Value) -> &'a Value {
    let errors = body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("detail is not a list: {body}"));
    for e in errors {
        assert!(e["msg"].is_string() && e["type"].is_string(), "{e}");
        assert!(e["loc"].is_array(), "{e}");
    }
    errors
        .iter()
        .find(|e| &e["loc"] == loc)
        .unwrap_or_else(|| panic!("no error at {loc}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_to_three_models_returns_every_result_in_order_and_stores_the_turn() {
    let script = Script::new()
        .on("alpha", Behavior::reply("alpha answers"))
        .on("beta", Behavior::reply("beta answers"))
        .on("gamma", Behavior::reply("gamma answers"));
    let env = Env::start(script, &THREE).await;
    let prompt = "Explain the difference between TCP and UDP in simple words";
    let (status, body) = env
        .run(&json!({"prompt_text": prompt, "model_names": ["beta", "gamma", "alpha"]}))
        .await;
    assert_eq!(status, 201, "{body}");
    let session_id = body["session_id"].as_i64().expect("session_id");
    assert!(session_id >= 1);
    assert_eq!(body["prompt_text"], prompt);
    let title = body["session_title"].as_str().expect("a title at once");
    assert!(!title.is_empty() && title.chars().count() <= 30, "{title}");
    assert!(title.starts_with("Explain the"), "{title}");

    let results = body["results"].as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["model_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["beta", "gamma", "alpha"], "model_names order");
    let primaries: Vec<bool> = results
        .iter()
        .map(|r| r["is_primary"].as_bool().unwrap())
        .collect();
    assert_eq!(primaries, [true, false, false]);
    for r in results {
        let name = r["model_name"].as_str().unwrap();
        assert!(r["session_model_id"].as_i64().unwrap() >= 1, "{r}");
        assert!(r["response_id"].as_i64().unwrap() >= 1, "{r}");
        assert_eq!(r["prompt_text"], prompt);
        assert_eq!(r["response_text"], format!("{name} answers"));
        let created = r["created_at"].as_str().unwrap();
        assert!(is_rfc3339_utc(created), "created_at {created}");
        let usage = &r["token_usage"];
        let prompt_tokens = usage["prompt_tokens"].as_u64().expect("prompt_tokens");
        let completion = usage["completion_tokens"].as_u64().expect("completion");
        assert_eq!(completion, 2, "the fake counts words: {usage}");
        assert_eq!(usage["total_tokens"], prompt_tokens + completion);
        assert!(r["latency_ms"].as_i64().unwrap() >= 0, "{r}");
        let params = &r["generation_params"];
        assert_eq!(params["temperature"], 0.7, "{params}");
        assert_eq!(params["top_p"], 0.9, "{params}");
        assert_eq!(params["max_tokens"], 512, "{params}");
        assert!(r.get("error").is_none_or(Value::is_null), "{r}");
    }
    let ids: std::collections::BTreeSet<i64> = results
        .iter()
        .map(|r| r["response_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "distinct response ids");

    // Each wire format was used, once per model, with the prompt as the user message.
    assert_eq!(env.fake.requests().len(), 3);
    for name in ["alpha", "beta", "gamma"] {
        let request = env.last_for(name);
        let wire = if name == "gamma" {
            Wire::Clova
        } else {
            Wire::Openai
        };
        assert_eq!(request.wire, Some(wire), "{name}");
        assert_eq!(last_user(&request), prompt);
    }

    // The stored session is the same turn.
    let (status, session) = env
        .get(&format!("/user/practice/sessions/{session_id}"))
        .await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["session_id"], session_id);
    assert_eq!(session["session_title"], title);
    let history = session["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["prompt_text"], prompt);
    assert_eq!(history[0]["results"], body["results"], "stored = returned");
    assert_eq!(env.session_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_model_gives_an_error_entry_while_the_others_answer() {
    let script = Script::new()
        .on("alpha", Behavior::reply("fine"))
        .on("beta", Behavior::error(500, "the model crashed"))
        .on("gamma", Behavior::reply("also fine"));
    let env = Env::start(script, &THREE).await;
    let (status, body) = env
        .run(&json!({"prompt_text": "What is a closure?", "model_names": ["alpha", "beta", "gamma"]}))
        .await;
    assert_eq!(status, 201, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    let answered: Vec<&Value> = results
        .iter()
        .filter(|r| r["response_text"].is_string())
        .collect();
    assert_eq!(answered.len(), 2, "{body}");
    let failed = &results[1];
    assert_eq!(failed["model_name"], "beta");
    assert!(failed["response_text"].is_null(), "{failed}");
    assert_eq!(failed["error"]["kind"], "upstream_5xx", "{failed}");
    assert_eq!(failed["error"]["status"], 500, "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the model crashed"),
        "{failed}"
    );
    assert_eq!(env.requests_for("beta").len(), 1, "a 500 is not retried");
    // The failure is stored with the turn.
    let session_id = body["session_id"].as_i64().unwrap();
    let (_, session) = env
        .get(&format!("/user/practice/sessions/{session_id}"))
        .await;
    assert_eq!(session["history"][0]["results"], body["results"]);
    // Every call is in /metrics: latency by model, outcomes by kind, tokens.
    let metrics = reqwest::get(env.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "sluice_practice_model_calls_total{model=\"alpha\",outcome=\"ok\"} 1",
        "sluice_practice_model_calls_total{model=\"beta\",outcome=\"upstream_5xx\"} 1",
        "sluice_practice_model_duration_seconds_count{model=\"gamma\"} 1",
        "sluice_practice_model_tokens_total{model=\"alpha\",direction=\"out\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_model_times_out_on_its_own_deadline_without_holding_up_the_others() {
    let script = Script::new()
        .on("alpha", Behavior::reply("quick"))
        .on("beta", Behavior::reply("quick too"))
        .on(
            "gamma",
            Behavior::Slow {
                delay: Duration::from_secs(2),
            },
        );
    let env = Env::start_with(script, &THREE, |name, config| {
        if name == "gamma" {
            config.timeout_ms = 300;
        }
    })
    .await;
    let started = Instant::now();
    let (status, body) = env
        .run(
            &json!({"prompt_text": "Name three rivers", "model_names": ["alpha", "beta", "gamma"]}),
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(status, 201, "{body}");
    assert!(
        elapsed < Duration::from_millis(1500),
        "the turn waited {elapsed:?}: not the slow model's 2 s"
    );
    let slow = &body["results"][2];
    assert_eq!(slow["model_name"], "gamma");
    assert_eq!(slow["error"]["kind"], "timeout", "{slow}");
    assert!(slow["response_text"].is_null());
    let latency = slow["latency_ms"].as_i64().unwrap();
    assert!((250..1200).contains(&latency), "latency {latency}");
    assert_eq!(body["results"][0]["response_text"], "quick");
    assert_eq!(body["results"][1]["response_text"], "quick too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_model_is_retried_after_retry_after() {
    let script = Script::new()
        .on("alpha", Behavior::rate_limited("1"))
        .on("alpha", Behavior::reply("after the wait"))
        .on("beta", Behavior::reply("at once"));
    let env = Env::start(script, &THREE[..2]).await;
    let started = Instant::now();
    let (status, body) = env
        .run(&json!({"prompt_text": "Hello there", "model_names": ["alpha", "beta"]}))
        .await;
    let elapsed = started.elapsed();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["results"][0]["response_text"], "after the wait");
    assert_eq!(body["results"][1]["response_text"], "at once");
    let alpha = env.requests_for("alpha");
    assert_eq!(alpha.len(), 2, "one 429, one retry");
    let gap = alpha[1].at.duration_since(alpha[0].at);
    assert!(
        gap >= Duration::from_millis(900),
        "Retry-After honoured: {gap:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(env.requests_for("beta").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_model_failing_is_502_and_stores_nothing() {
    let script = Script::new()
        .on("alpha", Behavior::error(500, "alpha is down"))
        .on("beta", Behavior::error(500, "beta is down"))
        .on("gamma", Behavior::error(500, "gamma is down"));
    let env = Env::start(script, &THREE).await;
    let (status, body) = env
        .run(&json!({"prompt_text": "Anyone there?", "model_names": ["alpha", "beta", "gamma"]}))
        .await;
    assert_eq!(status, 502, "{body}");
    let errors = body["detail"]["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    let names: Vec<&str> = errors
        .iter()
        .map(|e| e["model_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
    for e in errors {
        assert_eq!(e["error"]["kind"], "upstream_5xx", "{e}");
        assert_eq!(e["error"]["status"], 500, "{e}");
    }
    assert_eq!(env.session_count().await, 0, "nothing stored");
    assert_eq!(env.fake.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_prompt_is_400_and_calls_no_model() {
    let env = Env::start(Script::new(), &THREE).await;
    // The sample router serves Busan and Gyeongnam only: Seoul is filtered out.
    let (status, body) = env
        .run(&json!({"prompt_text": "서울 근처 맛집 추천해줘", "model_names": ["alpha", "gamma"]}))
        .await;
    assert_eq!(status, 400, "{body}");
    let blocked = &body["detail"]["blocked"];
    assert_eq!(
        blocked["content_filters"],
        json!(["UnsupportedRegion"]),
        "{body}"
    );
    assert_eq!(blocked["domain"], "지역 검색", "{body}");
    assert!(body["detail"]["msg"].is_string(), "{body}");

    // A safety category.
    let (status, body) = env
        .run(&json!({"prompt_text": "계정 거래 하고 싶어요, 로그인 정보 팔게요"}))
        .await;
    assert_eq!(status, 400, "{body}");
    let safety = body["detail"]["blocked"]["safety"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(safety.contains(&json!("Unethical")), "{body}");

    assert!(env.fake.requests().is_empty(), "no model was called");
    assert_eq!(env.session_count().await, 0);
}

const BUSAN_MD: &str = "# 부산 안내\n\n\
부산은 한국 남동쪽의 항구 도시이다. 해운대 해수욕장이 유명하다.\n\n\
## 음식\n\n\
돼지국밥과 밀면은 부산의 대표 음식이다. 국밥집은 서면에 많다.\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_passages_go_after_the_prompt_under_context_and_are_listed_as_sources() {
    let env = Env::start(Script::new(), &THREE).await;
    let kb = env
        .create("/user/practice/knowledge", &json!({"name": "부산 안내"}))
        .await;
    let response = env
        .http
        .post(env.url(&format!(
            "/user/practice/knowledge/{kb}/documents?file_name=busan.md"
        )))
        .bearer_auth(&env.key)
        .body(BUSAN_MD)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let uploaded: Value = response.json().await.unwrap();
    let doc = &uploaded["items"][0];
    assert_eq!(doc["knowledge_id"], kb, "{uploaded}");
    assert!(doc["passages"].as_i64().unwrap() >= 1, "{uploaded}");
    let (status, docs) = env
        .get(&format!("/user/practice/knowledge/{kb}/documents"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(docs["total"], 1, "{docs}");

    let prompt = "부산의 대표 음식은 무엇인가요?";
    let (status, body) = env
        .run(&json!({"prompt_text": prompt, "model_names": ["alpha", "gamma"], "knowledge_ids": [kb]}))
        .await;
    assert_eq!(status, 201, "{body}");
    for name in ["alpha", "gamma"] {
        let user = last_user(&env.last_for(name));
        assert!(user.starts_with(prompt), "{name}: {user}");
        let context = user.find("[Context]").unwrap_or_else(|| panic!("{user}"));
        assert!(context > prompt.len(), "the context comes after the prompt");
        assert!(user[context..].contains("돼지국밥"), "{name}: {user}");
    }
    for result in body["results"].as_array().unwrap() {
        let sources = result["token_usage"]["sources"]
            .as_array()
            .unwrap_or_else(|| panic!("{result}"));
        assert!(!sources.is_empty(), "{result}");
        assert!(sources.iter().all(|s| s["knowledge_id"] == kb), "{result}");
        assert!(
            sources
                .iter()
                .any(|s| s["preview"].as_str().unwrap().contains("돼지국밥")),
            "{result}"
        );
        for s in sources {
            assert!(s["passage_id"].as_i64().unwrap() >= 1, "{s}");
            assert!(s["score"].as_f64().unwrap() > 0.0, "{s}");
        }
    }
    // The session keeps its knowledge bases.
    let session_id = body["session_id"].as_i64().unwrap();
    let (_, session) = env
        .get(&format!("/user/practice/sessions/{session_id}"))
        .await;
    assert_eq!(session["knowledge_ids"], json!([kb]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn few_shot_pairs_follow_the_system_message_in_the_requested_order() {
    let env = Env::start(Script::new(), &THREE).await;
    let a = env
        .create(
            "/user/practice/few-shot-examples",
            &json!({"input": "Q-A", "output": "A-A", "note": "first"}),
        )
        .await;
    let b = env
        .create(
            "/user/practice/few-shot-examples",
            &json!({"input": "Q-B", "output": "A-B"}),
        )
        .await;
    let (status, body) = env
        .run(&json!({
            "prompt_text": "And now yours",
            "model_names": ["beta", "gamma"],
            "style_preset": "accurate",
            "few_shot_example_ids": [b, a],
        }))
        .await;
    assert_eq!(status, 201, "{body}");
    for name in ["beta", "gamma"] {
        let sent = messages(&env.last_for(name));
        let roles: Vec<&str> = sent.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(
            roles,
            ["system", "user", "assistant", "user", "assistant", "user"],
            "{name}: {sent:?}"
        );
        let contents: Vec<&str> = sent[1..].iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(
            contents,
            ["Q-B", "A-B", "Q-A", "A-A", "And now yours"],
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn style_presets_custom_style_params_and_agents_shape_what_is_sent() {
    let env = Env::start(Script::new(), &THREE).await;
    let models = json!(["alpha", "gamma"]);

    // accurate
    let (status, body) = env
        .run(&json!({"prompt_text": "Define entropy", "model_names": models, "style_preset": "accurate"}))
        .await;
    assert_eq!(status, 201, "{body}");
    for name in ["alpha", "gamma"] {
        let request = env.last_for(name);
        assert_eq!(request.body["temperature"], 0.2, "{name}: {}", request.body);
        assert_eq!(sent_top_p(&request), 0.8, "{name}: {}", request.body);
        assert!(system_of(&request).contains("precisely"), "{name}");
    }
    assert_eq!(body["results"][0]["generation_params"]["temperature"], 0.2);
    assert_eq!(body["results"][0]["generation_params"]["top_p"], 0.8);
    assert_eq!(
        body["results"][0]["generation_params"]["style_preset"],
        "accurate"
    );

    // creative
    let (status, body) = env
        .run(&json!({"prompt_text": "Write a haiku", "model_names": models, "style_preset": "creative"}))
        .await;
    assert_eq!(status, 201, "{body}");
    for name in ["alpha", "gamma"] {
        let request = env.last_for(name);
        assert_eq!(request.body["temperature"], 1.0, "{name}: {}", request.body);
        assert_eq!(sent_top_p(&request), 0.95, "{name}: {}", request.body);
        assert!(system_of(&request).contains("imaginatively"), "{name}");
    }

    // balanced (the default): no system message at all.
    let (status, body) = env
        .run(&json!({"prompt_text": "Plain question", "model_names": models}))
        .await;
    assert_eq!(status, 201, "{body}");
    for name in ["alpha", "gamma"] {
        let request = env.last_for(name);
        assert_eq!(request.body["temperature"], 0.7);
        assert_eq!(sent_top_p(&request), 0.9);
        assert_eq!(system_of(&request), "", "{name}");
    }

    // custom, every style parameter, an agent, and max_tokens.
    let agent = env
        .create(
            "/user/practice/agents",
            &json!({"name": "tutor", "instructions": "AGENT-INSTRUCTIONS"}),
        )
        .await;
    let (status, body) = env
        .run(&json!({
            "prompt_text": "Explain recursion",
            "model_names": models,
            "agent_id": agent,
            "style_preset": "custom",
            "style_params": {
                "format": "bullets", "persona": "a pirate", "hint_mode": true,
                "self_check": true, "system_prompt": "SYS"
            },
            "generation_params": {"max_tokens": 123},
        }))
        .await;
    assert_eq!(status, 201, "{body}");
    for name in ["alpha", "gamma"] {
        let request = env.last_for(name);
        let system = system_of(&request);
        assert!(system.contains("bulleted list"), "format: {system}");
        assert!(system.contains("a pirate"), "persona: {system}");
        assert!(system.contains("hints"), "hint_mode: {system}");
        assert!(system.contains("check your answer"), "self_check: {system}");
        let sys = system.find("SYS").expect("system_prompt");
        let agent_at = system.find("AGENT-INSTRUCTIONS").expect("agent");
        assert!(sys < agent_at, "system_prompt before the agent: {system}");
        assert_eq!(sent_max_tokens(&request), 123, "{name}: {}", request.body);
        assert_eq!(request.body["temperature"], 0.7, "custom uses the defaults");
    }
    let gamma = env.last_for("gamma");
    assert!(
        gamma.body.get("max_tokens").is_none(),
        "CLOVA is camelCase: {}",
        gamma.body
    );
    assert_eq!(body["results"][0]["generation_params"]["max_tokens"], 123);
    assert_eq!(
        body["results"][0]["generation_params"]["max_completion_tokens"],
        123
    );

    // The request's own temperature beats the preset; max_completion_tokens alone.
    let (status, body) = env
        .run(&json!({
            "prompt_text": "Override",
            "model_names": models,
            "style_preset": "accurate",
            "generation_params": {"temperature": 1.3, "max_completion_tokens": 77},
        }))
        .await;
    assert_eq!(status, 201, "{body}");
    for name in ["alpha", "gamma"] {
        let request = env.last_for(name);
        assert_eq!(request.body["temperature"], 1.3, "{name}");
        assert_eq!(
            sent_top_p(&request),
            0.8,
            "{name}: the preset's top_p stays"
        );
        assert_eq!(sent_max_tokens(&request), 77, "{name}");
    }
    assert_eq!(body["results"][1]["generation_params"]["temperature"], 1.3);

    // A length preset gives the maximum when none is set.
    let (status, _) = env
        .run(&json!({
            "prompt_text": "Short one",
            "model_names": ["alpha"],
            "generation_params": {"response_length_preset": "short"},
        }))
        .await;
    assert_eq!(status, 201);
    assert_eq!(sent_max_tokens(&env.last_for("alpha")), 256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_trims_each_models_own_history_to_its_profile() {
    const MAX_TOKENS: usize = 1000;
    const TURNS: usize = 4;
    let filler = "hello ".repeat(1400);
    let mut script = Script::new();
    for turn in 1..=TURNS {
        script = script
            .on("alpha", Behavior::reply(&format!("ALPHA{turn} {filler}")))
            .on("gamma", Behavior::reply(&format!("GAMMA{turn} {filler}")));
    }
    let env = Env::start(script, &TWO).await;
    let prompt = |turn: usize| format!("PROMPT{turn} {}", "world ".repeat(400));
    let params = json!({"max_tokens": MAX_TOKENS});

    let (status, body) = env
        .run(&json!({"prompt_text": prompt(1), "model_names": ["alpha", "gamma"], "generation_params": params}))
        .await;
    assert_eq!(status, 201, "{body}");
    let session_id = body["session_id"].as_i64().unwrap();
    let chat = format!("/user/practice/sessions/{session_id}/chat");
    let model = Profiles::builtin().model("HCX-003").unwrap();

    for turn in 2..=TURNS {
        let (status, body) = env
            .post(
                &chat,
                &json!({"prompt_text": prompt(turn), "generation_params": params}),
            )
            .await;
        assert_eq!(status, 201, "turn {turn}: {body}");
        assert_eq!(body["session_id"], session_id);
        let names: Vec<&str> = body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["model_name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["alpha", "gamma"], "the session's models by default");
        for (name, own, other) in [("alpha", "ALPHA", "GAMMA"), ("gamma", "GAMMA", "ALPHA")] {
            let sent = messages(&env.last_for(name));
            let (last_role, last) = sent.last().unwrap();
            assert_eq!(last_role, "user");
            assert!(last.starts_with(&format!("PROMPT{turn} ")), "{name}");
            let answers: Vec<&str> = sent
                .iter()
                .filter(|(role, _)| role == "assistant")
                .map(|(_, c)| c.as_str())
                .collect();
            assert!(
                answers.iter().all(|a| a.starts_with(own)),
                "turn {turn}: {name} saw another model's answer"
            );
            assert!(
                sent.iter().all(|(_, c)| !c.starts_with(other)),
                "turn {turn}: {name}"
            );
            let as_messages: Vec<Message> = sent
                .iter()
                .map(|(role, content)| match role.as_str() {
                    "system" => Message::system(content.as_str()),
                    "assistant" => Message::assistant(content.as_str()),
                    _ => Message::user(content.as_str()),
                })
                .collect();
            let total = model.count(&as_messages).total;
            assert!(
                total + MAX_TOKENS <= 4096,
                "turn {turn}: {name} was sent {total} tokens + {MAX_TOKENS}"
            );
            if turn == 2 {
                // Everything fits: the first turn is there, whole.
                assert_eq!(answers.len(), 1, "turn 2: {name}");
                assert!(answers[0].starts_with(&format!("{own}1 ")), "{name}");
                assert!(sent[0].1.starts_with("PROMPT1 "), "{name}");
            } else {
                // turn - 1 earlier turns exist; they do not all fit.
                assert!(
                    answers.len() < turn - 1,
                    "turn {turn}: {name} got {} earlier answers, untrimmed",
                    answers.len()
                );
                // The most recent turn still fits, and is what is kept.
                assert_eq!(answers.len(), 1, "turn {turn}: {name}");
                assert!(
                    answers[0].starts_with(&format!("{own}{} ", turn - 1)),
                    "{name}"
                );
            }
        }
    }
    let (_, session) = env
        .get(&format!("/user/practice/sessions/{session_id}"))
        .await;
    assert_eq!(session["history"].as_array().unwrap().len(), TURNS);
    assert_eq!(session["turns"], TURNS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_runs_are_422_in_fastapi_shape_and_store_nothing() {
    let env = Env::start(Script::new(), &THREE).await;
    let ok = json!({"prompt_text": "hi"});
    let cases: Vec<(String, Value, Value, &str)> = vec![
        (
            "/user/practice/sessions/run".into(),
            ok.clone(),
            json!(["query", "class_id"]),
            "missing",
        ),
        (
            "/user/practice/sessions/run?class_id=0".into(),
            ok.clone(),
            json!(["query", "class_id"]),
            "greater_than_equal",
        ),
        (
            "/user/practice/sessions/run?class_id=x".into(),
            ok.clone(),
            json!(["query", "class_id"]),
            "int_parsing",
        ),
        (
            env.run_path(),
            json!({"model_names": ["alpha"]}),
            json!(["body", "prompt_text"]),
            "missing",
        ),
        (
            env.run_path(),
            json!({"prompt_text": "hi", "colour": "red"}),
            json!(["body", "colour"]),
            "extra_forbidden",
        ),
        (
            env.run_path(),
            json!({"prompt_text": "hi", "generation_params": {"temperature": 3}}),
            json!(["body", "generation_params", "temperature"]),
            "less_than_equal",
        ),
        (
            env.run_path(),
            json!({"prompt_text": "hi", "style_preset": "fast"}),
            json!(["body", "style_preset"]),
            "enum",
        ),
        (
            env.run_path(),
            json!({"prompt_text": "hi", "knowledge_ids": [0]}),
            json!(["body", "knowledge_ids", 0]),
            "greater_than_equal",
        ),
        (
            env.run_path(),
            json!({"prompt_text": "hi", "generation_params": {"response_length_preset": "custom"}}),
            json!(["body", "generation_params", "response_length_preset"]),
            "value_error",
        ),
        (
            env.run_path(),
            json!({"prompt_text": "hi", "style_params": {"tone": "warm"}}),
            json!(["body", "style_params", "tone"]),
            "extra_forbidden",
        ),
    ];
    for (path, body, loc, kind) in &cases {
        let (status, answer) = env.post(path, body).await;
        assert_eq!(status, 422, "{path} {body}: {answer}");
        let error = field_error(&answer, loc);
        assert_eq!(error["type"], *kind, "{path} {body}: {answer}");
    }
    // Query and body errors are reported together.
    let (status, answer) = env
        .post("/user/practice/sessions/run", &json!({"colour": 1}))
        .await;
    assert_eq!(status, 422);
    field_error(&answer, &json!(["query", "class_id"]));
    field_error(&answer, &json!(["body", "prompt_text"]));
    field_error(&answer, &json!(["body", "colour"]));
    // Not JSON at all.
    let response = env
        .http
        .post(env.url(&env.run_path()))
        .bearer_auth(&env.key)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["detail"][0]["type"], "json_invalid", "{answer}");

    assert_eq!(env.session_count().await, 0);
    assert!(env.fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_classes_and_ownership_are_enforced() {
    let env = Env::start(Script::new(), &THREE).await;
    let sessions = "/user/practice/sessions";

    // No key, a wrong key, a revoked key.
    let response = env.http.get(env.url(sessions)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let body: Value = response.json().await.unwrap();
    assert!(body["detail"].is_string(), "{body}");
    let (status, _) = env
        .send_json(
            None,
            Method::POST,
            &env.run_path(),
            Some(&json!({"prompt_text": "hi"})),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = env
        .send_json(Some("sk-sluice-not-a-key"), Method::GET, sessions, None)
        .await;
    assert_eq!(status, 401);
    let second = env
        .store
        .create_key(env.user_id, Some("laptop"))
        .await
        .unwrap();
    let (status, _) = env
        .send_json(Some(&second.key), Method::GET, sessions, None)
        .await;
    assert_eq!(status, 200, "a fresh key works");
    env.store.revoke_key(second.id).await.unwrap();
    let (status, _) = env
        .send_json(Some(&second.key), Method::GET, sessions, None)
        .await;
    assert_eq!(status, 401, "a revoked key does not");
    let (status, _) = env.get(sessions).await;
    assert_eq!(status, 200, "the other key still works");

    // Another user's objects are 404, to read and to use.
    let (other, other_key) = env.store.create_user("other").await.unwrap();
    let other_key = other_key.key;
    let mine = |path: &'static str, body: Value| {
        let env = &env;
        let other_key = other_key.clone();
        async move {
            let (status, created) = env
                .send_json(Some(&other_key), Method::POST, path, Some(&body))
                .await;
            assert_eq!(status, 201, "{created}");
            created["id"].as_i64().unwrap()
        }
    };
    let agent = mine(
        "/user/practice/agents",
        json!({"name": "secret agent", "instructions": "x"}),
    )
    .await;
    let project = mine("/user/practice/projects", json!({"name": "secret project"})).await;
    let knowledge = mine("/user/practice/knowledge", json!({"name": "secret kb"})).await;
    let shot = mine(
        "/user/practice/few-shot-examples",
        json!({"input": "q", "output": "a"}),
    )
    .await;
    for path in [
        format!("/user/practice/agents/{agent}"),
        format!("/user/practice/projects/{project}"),
        format!("/user/practice/knowledge/{knowledge}"),
        format!("/user/practice/few-shot-examples/{shot}"),
    ] {
        let (status, body) = env.get(&path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body["detail"].is_string(), "{body}");
        let (status, _) = env.delete(&path).await;
        assert_eq!(status, 404, "delete {path}");
        let (status, _) = env.patch(&path, &json!({"name": "mine now"})).await;
        assert_eq!(status, 404, "patch {path}");
        // ... while the owner still sees it.
        let (status, _) = env
            .send_json(Some(&other_key), Method::GET, &path, None)
            .await;
        assert_eq!(status, 200, "{path}");
    }
    for body in [
        json!({"prompt_text": "hi", "agent_id": agent}),
        json!({"prompt_text": "hi", "project_id": project}),
        json!({"prompt_text": "hi", "knowledge_ids": [knowledge]}),
        json!({"prompt_text": "hi", "few_shot_example_ids": [shot]}),
    ] {
        let (status, answer) = env.run(&body).await;
        assert_eq!(status, 404, "{body}: {answer}");
    }
    let (status, _) = env
        .post(
            "/user/practice/knowledge/search",
            &json!({"knowledge_ids": [knowledge], "query": "x"}),
        )
        .await;
    assert_eq!(status, 404, "search in another user's base");

    // A class the student is not in, a class that does not exist.
    let names = vec!["alpha".to_string()];
    let closed = env
        .store
        .create_class("closed", other.id, &names, "alpha")
        .await
        .unwrap();
    let (status, body) = env
        .post(
            &format!("/user/practice/sessions/run?class_id={}", closed.id),
            &json!({"prompt_text": "hi"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = env
        .post(
            "/user/practice/sessions/run?class_id=9999",
            &json!({"prompt_text": "hi"}),
        )
        .await;
    assert_eq!(status, 404);

    // A model the class does not allow, and one the server does not have.
    let narrow = env
        .store
        .create_class(
            "narrow",
            env.teacher_id,
            &["alpha".to_string(), "ghost".to_string()],
            "alpha",
        )
        .await
        .unwrap();
    env.store
        .add_member(narrow.id, env.user_id, ClassRole::Student)
        .await
        .unwrap();
    let narrow_run = format!("/user/practice/sessions/run?class_id={}", narrow.id);
    for names in [json!(["alpha", "beta"]), json!(["ghost"])] {
        let (status, body) = env
            .post(
                &narrow_run,
                &json!({"prompt_text": "hi", "model_names": names}),
            )
            .await;
        assert_eq!(status, 400, "{names}: {body}");
        assert!(body["detail"].is_string(), "{body}");
    }

    // Another user's session.
    let (status, body) = env
        .post(&narrow_run, &json!({"prompt_text": "hello"}))
        .await;
    assert_eq!(status, 201, "the class's primary model: {body}");
    assert_eq!(body["results"][0]["model_name"], "alpha");
    let session_id = body["session_id"].as_i64().unwrap();
    let theirs = format!("/user/practice/sessions/{session_id}");
    let (status, _) = env
        .send_json(Some(&other_key), Method::GET, &theirs, None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = env
        .send_json(
            Some(&other_key),
            Method::POST,
            &format!("{theirs}/chat"),
            Some(&json!({"prompt_text": "hi"})),
        )
        .await;
    assert_eq!(status, 404);

    assert_eq!(
        env.fake.requests().len(),
        1,
        "only the allowed run called a model"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_run_sends_tagged_tokens_then_the_stored_result() {
    let delay = Duration::from_millis(10);
    let script = Script::new()
        .on("alpha", Behavior::stream(&["Hel", "lo ", "world"], delay))
        .on("gamma", Behavior::stream(&["Gam", "ma ", "here"], delay));
    let env = Env::start(script, &TWO).await;
    let response = env
        .http
        .post(env.url(&env.run_path()))
        .bearer_auth(&env.key)
        .header("accept", "text/event-stream")
        .header("content-type", "application/json")
        .body(
            json!({"prompt_text": "Stream please", "model_names": ["alpha", "gamma"]}).to_string(),
        )
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(status, 201);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let events = sse_events(&text);
    let mut tokens: std::collections::BTreeMap<String, String> = Default::default();
    for (event, data) in &events {
        if event == "token" {
            let token: Value = serde_json::from_str(data).unwrap();
            tokens
                .entry(token["model_name"].as_str().unwrap().to_string())
                .or_default()
                .push_str(token["text"].as_str().unwrap());
        }
    }
    assert_eq!(
        tokens.get("alpha").map(String::as_str),
        Some("Hello world"),
        "{text}"
    );
    assert_eq!(
        tokens.get("gamma").map(String::as_str),
        Some("Gamma here"),
        "{text}"
    );
    let done: Vec<&String> = events
        .iter()
        .filter(|(e, _)| e == "model_done")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(done.len(), 2, "{text}");
    let (last_event, last_data) = events.last().unwrap();
    assert_eq!(last_event, "result", "{text}");
    let result: Value = serde_json::from_str(last_data).unwrap();
    let session_id = result["session_id"].as_i64().expect("session_id");
    assert_eq!(result["results"][0]["response_text"], "Hello world");
    assert_eq!(result["results"][1]["response_text"], "Gamma here");
    assert_eq!(result["results"][0]["is_primary"], true);
    // Both models were asked for a stream.
    assert!(env.last_for("alpha").wants_stream());
    assert!(env.last_for("gamma").wants_stream());

    let (status, session) = env
        .get(&format!("/user/practice/sessions/{session_id}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(session["history"][0]["results"], result["results"]);
}

/// `POST path` with `body`, asking for a stream: status, content type, body text.
async fn post_streamed(env: &Env, key: &str, path: &str, body: &Value) -> (u16, String, String) {
    let response = env
        .http
        .post(env.url(path))
        .bearer_auth(key)
        .header("accept", "text/event-stream")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, response.text().await.unwrap())
}

/// Issue 24, point 8: a streamed run or chat that fails before the models are
/// called (it created nothing) answers like the blocking request: its real
/// status and the same JSON body, not a 201 with an `error` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_run_that_fails_before_its_first_token_answers_with_the_real_status() {
    let env = Env::start(Script::new(), &THREE).await;
    let (status, created) = env
        .run(&json!({"prompt_text": "First", "model_names": ["alpha"]}))
        .await;
    assert_eq!(status, 201, "{created}");
    let session = created["session_id"].as_i64().unwrap();
    let (stranger, stranger_key) = env.store.create_user("stranger").await.unwrap();
    let other_class = env
        .store
        .create_class("other", env.teacher_id, &["alpha".to_string()], "alpha")
        .await
        .unwrap();
    let _ = stranger;
    let calls_before = env.fake.requests().len();
    let run = env.run_path();
    let chat = format!("/user/practice/sessions/{session}/chat");
    let cases: Vec<(&str, String, String, Value)> = vec![
        (
            "blocked prompt",
            env.key.clone(),
            run.clone(),
            json!({"prompt_text": "서울 근처 맛집 추천해줘"}),
        ),
        (
            "model not allowed",
            env.key.clone(),
            run.clone(),
            json!({"prompt_text": "hi", "model_names": ["delta"]}),
        ),
        (
            "unknown agent",
            env.key.clone(),
            run.clone(),
            json!({"prompt_text": "hi", "agent_id": 999}),
        ),
        (
            "not a member",
            env.key.clone(),
            format!("/user/practice/sessions/run?class_id={}", other_class.id),
            json!({"prompt_text": "hi"}),
        ),
        (
            "session not found",
            env.key.clone(),
            "/user/practice/sessions/999999/chat".to_string(),
            json!({"prompt_text": "hi"}),
        ),
        (
            "another user's session",
            stranger_key.key.clone(),
            chat.clone(),
            json!({"prompt_text": "hi"}),
        ),
        (
            "blocked continuation",
            env.key.clone(),
            chat.clone(),
            json!({"prompt_text": "서울 근처 맛집 추천해줘"}),
        ),
    ];
    for (name, key, path, body) in cases {
        let (blocking_status, blocking_body) = env
            .send_json(Some(&key), Method::POST, &path, Some(&body))
            .await;
        assert!(
            blocking_status >= 400,
            "{name}: {blocking_status} {blocking_body}"
        );
        let (status, content_type, text) = post_streamed(&env, &key, &path, &body).await;
        assert_eq!(status, blocking_status, "{name}: {text}");
        assert!(
            content_type.starts_with("application/json"),
            "{name}: {content_type} {text}"
        );
        let streamed: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {text}"));
        assert_eq!(streamed, blocking_body, "{name}");
    }
    assert_eq!(
        env.fake.requests().len(),
        calls_before,
        "no failing request called a model"
    );
    assert_eq!(env.session_count().await, 1, "nothing was created");
}

/// A run whose every model fails did call the models: it has started, so it
/// stays a stream and ends with an `error` event carrying the 502 detail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_run_whose_models_all_fail_ends_with_an_error_event() {
    let script = Script::new().on("alpha", Behavior::error(400, "bad request"));
    let env = Env::start(script, &THREE).await;
    let (status, content_type, text) = post_streamed(
        &env,
        &env.key,
        &env.run_path(),
        &json!({"prompt_text": "hello", "model_names": ["alpha"]}),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let events = sse_events(&text);
    assert_eq!(events[0].0, "started", "{text}");
    let (event, data) = events.last().unwrap();
    assert_eq!(event, "error", "{text}");
    let error: Value = serde_json::from_str(data).unwrap();
    assert_eq!(error["status"], 502, "{error}");
    assert_eq!(env.session_count().await, 0);
}

/// Stopping one model of a streamed run closes its upstream call and stores
/// what it had generated, marked `stopped`; the other model goes on. Only the
/// run's owner can stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_model_closes_its_call_and_stores_what_it_generated() {
    let slow: Vec<String> = (0..200).map(|i| format!("w{i} ")).collect();
    let slow: Vec<&str> = slow.iter().map(String::as_str).collect();
    let script = Script::new()
        .on("alpha", Behavior::stream(&slow, Duration::from_millis(50)))
        .on(
            "gamma",
            Behavior::stream(&["Gam", "ma ", "done"], Duration::from_millis(20)),
        );
    let env = Env::start(script, &TWO).await;
    let (_, stranger_key) = env.store.create_user("stranger").await.unwrap();
    let started = Instant::now();
    let mut response = env
        .http
        .post(env.url(&env.run_path()))
        .bearer_auth(&env.key)
        .header("accept", "text/event-stream")
        .header("content-type", "application/json")
        .body(json!({"prompt_text": "Go", "model_names": ["alpha", "gamma"]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let mut text = String::new();
    let mut run_id = None;
    let mut alpha_tokens = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        let events = sse_events(&text);
        if run_id.is_none() {
            if let Some((_, data)) = events.iter().find(|(e, _)| e == "started") {
                let started: Value = serde_json::from_str(data).unwrap();
                run_id = started["run_id"].as_i64();
            }
        }
        alpha_tokens = events
            .iter()
            .filter(|(e, d)| e == "token" && d.contains("\"alpha\""))
            .count();
        if alpha_tokens >= 3 {
            break;
        }
    }
    let run_id = run_id.expect("a started event with the run id");
    let stop = format!("/user/practice/runs/{run_id}/stop?model_name=alpha");
    let (status, _) = env
        .send_json(Some(&stranger_key.key), Method::POST, &stop, None)
        .await;
    assert_eq!(status, 404, "only the owner stops a run");
    let (status, body) = env.send(Method::POST, &stop, None).await;
    assert_eq!(status, 204, "{body}");
    while let Some(chunk) = response.chunk().await.unwrap() {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the stopped model did not run its 10 s to the end"
    );
    let events = sse_events(&text);
    let streamed: String = events
        .iter()
        .filter(|(e, d)| e == "token" && d.contains("\"alpha\""))
        .map(|(_, d)| {
            serde_json::from_str::<Value>(d).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(streamed.len() >= alpha_tokens, "{text}");
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "result", "{text}");
    let result: Value = serde_json::from_str(data).unwrap();
    assert_eq!(result["results"][0]["finish_reason"], "stopped", "{result}");
    assert_eq!(result["results"][0]["response_text"], streamed.as_str());
    assert!(result["results"][0]["error"].is_null(), "{result}");
    assert!(
        result["results"][0]["token_usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(result["results"][1]["response_text"], "Gamma done");
    // The upstream call was closed, not left running.
    let deadline = Instant::now() + Duration::from_secs(2);
    while env.fake.in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.fake.in_flight(), 0, "the stopped call was closed");
    // Stored as streamed; the run is gone, so stopping again is 404.
    let session = result["session_id"].as_i64().unwrap();
    let (_, stored) = env.get(&format!("/user/practice/sessions/{session}")).await;
    assert_eq!(
        stored["history"][0]["results"][0]["finish_reason"],
        "stopped"
    );
    assert_eq!(
        stored["history"][0]["results"][0]["response_text"],
        streamed.as_str()
    );
    let (status, _) = env.send(Method::POST, &stop, None).await;
    assert_eq!(status, 404);
}

/// Create three, page through them, patch one, delete it.
async fn crud(env: &Env, path: &str, bodies: [Value; 3], patch: Value, changed: (&str, Value)) {
    let mut ids = Vec::new();
    for body in &bodies {
        let (status, created) = env.post(path, body).await;
        assert_eq!(status, 201, "{path}: {created}");
        assert_eq!(created["owner_id"], env.user_id, "{path}: {created}");
        ids.push(created["id"].as_i64().unwrap());
    }
    let (status, page) = env.get(&format!("{path}?page=1&size=2")).await;
    assert_eq!(status, 200, "{path}: {page}");
    assert_eq!(page["total"], 3, "{path}: {page}");
    assert_eq!(page["page"], 1, "{path}");
    assert_eq!(page["size"], 2, "{path}");
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{path}: {page}");
    let (_, second) = env.get(&format!("{path}?page=2&size=2")).await;
    assert_eq!(
        second["items"].as_array().unwrap().len(),
        1,
        "{path}: {second}"
    );
    let mut seen: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, ids, "{path}: every item once across pages");
    let (_, beyond) = env.get(&format!("{path}?page=3&size=2")).await;
    assert_eq!(beyond["items"], json!([]), "{path}: {beyond}");
    let (_, default) = env.get(path).await;
    assert_eq!(default["size"], 50, "{path}: {default}");
    assert_eq!(default["page"], 1, "{path}: {default}");

    for (query, loc) in [("size=0", "size"), ("page=0", "page"), ("size=201", "size")] {
        let (status, body) = env.get(&format!("{path}?{query}")).await;
        assert_eq!(status, 422, "{path}?{query}: {body}");
        field_error(&body, &json!(["query", loc]));
    }

    let one = format!("{path}/{}", ids[0]);
    let (status, patched) = env.patch(&one, &patch).await;
    assert_eq!(status, 200, "{path}: {one}: {patched}");
    assert_eq!(patched[changed.0], changed.1, "{path}: {patched}");
    let (status, read) = env.get(&one).await;
    assert_eq!(status, 200, "{path}");
    assert_eq!(read[changed.0], changed.1, "{path}: {read}");
    // Untouched fields survive a partial update.
    for (k, v) in bodies[0].as_object().unwrap() {
        if k != changed.0 {
            assert_eq!(&read[k], v, "{path}: {one}: {k}");
        }
    }
    let (status, body) = env.patch(&one, &json!({"bogus": 1})).await;
    assert_eq!(status, 422, "{path}: {body}");

    let (status, body) = env.delete(&one).await;
    assert_eq!(status, 204, "{path}: {body}");
    assert!(body.is_null(), "{path}");
    let (status, _) = env.get(&one).await;
    assert_eq!(status, 404, "{path}");
    let (status, _) = env.delete(&one).await;
    assert_eq!(status, 404, "{path}");
    let (_, page) = env.get(path).await;
    assert_eq!(page["total"], 2, "{path}: {page}");
    let (status, body) = env.get(&format!("{path}/0")).await;
    assert_eq!(status, 422, "{path}: {body}");
    assert_eq!(body["detail"][0]["loc"][0], "path", "{path}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_objects_have_crud_and_pagination() {
    let env = Env::start(Script::new(), &THREE).await;
    // (collection, three objects to create, a patch, the field it changes and
    // to what); `crud` names the collection in every failure.
    let collections = [
        (
            "/user/practice/agents",
            [
                json!({"name": "a1", "instructions": "i1"}),
                json!({"name": "a2", "instructions": "i2"}),
                json!({"name": "a3", "instructions": "i3"}),
            ],
            json!({"instructions": "changed"}),
            ("instructions", json!("changed")),
        ),
        (
            "/user/practice/projects",
            [
                json!({"name": "p1", "description": "d1"}),
                json!({"name": "p2"}),
                json!({"name": "p3"}),
            ],
            json!({"name": "renamed"}),
            ("name", json!("renamed")),
        ),
        (
            "/user/practice/few-shot-examples",
            [
                json!({"input": "q1", "output": "o1"}),
                json!({"input": "q2", "output": "o2"}),
                json!({"input": "q3", "output": "o3"}),
            ],
            json!({"output": "changed"}),
            ("output", json!("changed")),
        ),
        (
            "/user/practice/knowledge",
            [
                json!({"name": "k1", "description": "d1"}),
                json!({"name": "k2"}),
                json!({"name": "k3"}),
            ],
            json!({"description": "changed"}),
            ("description", json!("changed")),
        ),
    ];
    for (path, objects, patch, changed) in collections {
        crud(&env, path, objects, patch, changed).await;
    }
    // Sessions: list, patch the title, delete.
    let (status, body) = env
        .run(&json!({"prompt_text": "A session to rename"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["session_id"].as_i64().unwrap();
    let path = format!("/user/practice/sessions/{id}");
    let (status, patched) = env.patch(&path, &json!({"title": "Renamed"})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["session_title"], "Renamed");
    let (_, list) = env.get("/user/practice/sessions?page=1&size=1").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["session_title"], "Renamed");
    let (status, _) = env.delete(&path).await;
    assert_eq!(status, 204);
    let (status, _) = env.get(&path).await;
    assert_eq!(status, 404);
    let (status, _) = env
        .post(&format!("{path}/chat"), &json!({"prompt_text": "more"}))
        .await;
    assert_eq!(status, 404);
    assert_eq!(env.session_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_supply_defaults_and_duplicates_are_dropped() {
    let env = Env::start(Script::new(), &THREE).await;
    // An agent's model is the default model, its preset the default preset.
    let agent = env
        .create(
            "/user/practice/agents",
            &json!({"name": "poet", "instructions": "Rhyme.", "model_name": "beta",
                    "style_preset": "creative", "generation_params": {"max_tokens": 64}}),
        )
        .await;
    let (status, body) = env
        .run(&json!({"prompt_text": "Ode to Rust", "agent_id": agent}))
        .await;
    assert_eq!(status, 201, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["model_name"], "beta", "the agent's model");
    let beta = env.last_for("beta");
    assert_eq!(beta.body["temperature"], 1.0, "the agent's preset");
    assert_eq!(beta.body["max_tokens"], 64, "the agent's max_tokens");
    let system = system_of(&beta);
    assert!(
        system.contains("imaginatively") && system.ends_with("Rhyme."),
        "{system}"
    );
    assert_eq!(
        body["results"][0]["generation_params"]["style_preset"],
        "creative"
    );

    // Duplicated names are dropped, keeping the first; [] means the primary model.
    let (status, body) = env
        .run(&json!({"prompt_text": "Twice", "model_names": ["gamma", "alpha", "gamma"]}))
        .await;
    assert_eq!(status, 201, "{body}");
    let names: Vec<&str> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["model_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gamma", "alpha"]);
    assert_eq!(env.requests_for("gamma").len(), 1, "called once");
    let (status, body) = env
        .run(&json!({"prompt_text": "Default", "model_names": []}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["results"][0]["model_name"], "alpha",
        "the class's primary"
    );
    // A whitespace-only prompt is 422.
    let (status, body) = env.run(&json!({"prompt_text": "   "})).await;
    assert_eq!(status, 422, "{body}");
    field_error(&body, &json!(["body", "prompt_text"]));
}

/// practice-notes.md: "Precedence, lowest first: server defaults → agent →
/// style preset → request". An agent's own temperature must therefore win over
/// the server default when neither the request nor the agent names a preset.
/// (Regression: an implicit `balanced` preset once put its 0.7/0.9 above the
/// agent's values.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_temperature_applies_when_no_preset_is_chosen() {
    let env = Env::start(Script::new(), &THREE).await;
    let agent = env
        .create(
            "/user/practice/agents",
            &json!({"name": "careful", "instructions": "Be careful.",
                    "generation_params": {"temperature": 0.1, "top_p": 0.5}}),
        )
        .await;
    let (status, body) = env
        .run(&json!({"prompt_text": "Be exact", "agent_id": agent}))
        .await;
    assert_eq!(status, 201, "{body}");
    let alpha = env.last_for("alpha");
    assert_eq!(alpha.body["temperature"], 0.1, "{}", alpha.body);
    assert_eq!(alpha.body["top_p"], 0.5, "{}", alpha.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_upstreams_give_typed_errors() {
    let script = Script::new()
        .on("alpha", Behavior::MalformedJson)
        .on("beta", Behavior::ResetConnection)
        .on("beta", Behavior::ResetConnection)
        .on("beta", Behavior::ResetConnection)
        .on("gamma", Behavior::reply("ok"));
    let env = Env::start(script, &THREE).await;
    let (status, body) = env
        .run(&json!({"prompt_text": "Hello", "model_names": ["alpha", "beta", "gamma"]}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["results"][0]["error"]["kind"], "bad_response",
        "{body}"
    );
    assert_eq!(body["results"][1]["error"]["kind"], "transport", "{body}");
    assert!(body["results"][1]["error"]["status"].is_null(), "{body}");
    assert_eq!(
        env.requests_for("beta").len(),
        3,
        "two retries after resets"
    );
    assert_eq!(body["results"][2]["response_text"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_that_cannot_fit_the_profile_calls_no_model() {
    let env = Env::start(Script::new(), &TWO).await;
    // ~3,500 tokens of prompt and 1,000 of answer do not fit HCX-003's 4,096.
    let prompt = "hello ".repeat(3500);
    let (status, body) = env
        .run(
            &json!({"prompt_text": prompt, "model_names": ["alpha", "gamma"],
                     "generation_params": {"max_tokens": 1000}}),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    for e in body["detail"]["errors"].as_array().unwrap() {
        assert_eq!(e["error"]["kind"], "context_exceeded", "{e}");
    }
    assert!(env.fake.requests().is_empty());
    assert_eq!(env.session_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuations_are_checked_streamed_and_filtered_like_runs() {
    let env = Env::start(Script::new(), &TWO).await;
    let project = env
        .create("/user/practice/projects", &json!({"name": "homework"}))
        .await;
    let (status, body) = env
        .run(&json!({"prompt_text": "First", "model_names": ["alpha", "gamma"], "project_id": project}))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["session_id"].as_i64().unwrap();
    let chat = format!("/user/practice/sessions/{id}/chat");
    let (status, other) = env.run(&json!({"prompt_text": "Elsewhere"})).await;
    assert_eq!(status, 201, "{other}");

    // Filtering by project.
    let (_, list) = env
        .get(&format!("/user/practice/sessions?project_id={project}"))
        .await;
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["items"][0]["session_id"], id);
    let (_, list) = env
        .get(&format!(
            "/user/practice/sessions?class_id={}",
            env.class_id
        ))
        .await;
    assert_eq!(list["total"], 2, "{list}");

    // A blocked continuation calls nothing and adds no turn.
    let before = env.fake.requests().len();
    let (status, body) = env
        .post(&chat, &json!({"prompt_text": "서울 근처 맛집 추천해줘"}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"]["blocked"].is_object(), "{body}");
    assert_eq!(env.fake.requests().len(), before);
    // Session-level fields are refused on a continuation.
    let (status, body) = env
        .post(&chat, &json!({"prompt_text": "x", "knowledge_ids": [1]}))
        .await;
    assert_eq!(status, 422, "{body}");
    field_error(&body, &json!(["body", "knowledge_ids"]));
    let (status, body) = env
        .post(
            "/user/practice/sessions/0/chat",
            &json!({"prompt_text": "x"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    field_error(&body, &json!(["path", "session_id"]));

    // A streamed continuation, one model only.
    let response = env
        .http
        .post(env.url(&chat))
        .bearer_auth(&env.key)
        .header("accept", "text/event-stream")
        .body(json!({"prompt_text": "Second", "model_names": ["gamma"]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let text = response.text().await.unwrap();
    let events = sse_events(&text);
    assert!(
        events
            .iter()
            .any(|(e, d)| e == "token" && d.contains("\"gamma\"")),
        "{text}"
    );
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "result", "{text}");
    let result: Value = serde_json::from_str(data).unwrap();
    assert_eq!(result["session_id"], id);
    assert_eq!(result["results"][0]["response_text"], "echo: Second");
    let sent = messages(&env.last_for("gamma"));
    assert_eq!(
        sent.iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>(),
        ["First", "echo: First", "Second"],
        "gamma saw its own first answer"
    );
    let (_, session) = env.get(&format!("/user/practice/sessions/{id}")).await;
    assert_eq!(session["turns"], 2, "{session}");

    // Deleting the project keeps the session, out of the project.
    let (status, _) = env
        .delete(&format!("/user/practice/projects/{project}"))
        .await;
    assert_eq!(status, 204);
    let (status, session) = env.get(&format!("/user/practice/sessions/{id}")).await;
    assert_eq!(status, 200);
    assert!(session["project_id"].is_null(), "{session}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_shared_knowledge_is_usable_but_not_writable_by_students() {
    let env = Env::start(Script::new(), &THREE).await;
    let teacher = env
        .store
        .create_key(env.teacher_id, None)
        .await
        .unwrap()
        .key;
    let (status, kb) = env
        .send_json(
            Some(&teacher),
            Method::POST,
            "/user/practice/knowledge",
            Some(&json!({"name": "class notes", "class_id": env.class_id})),
        )
        .await;
    assert_eq!(status, 201, "{kb}");
    let kb = kb["id"].as_i64().unwrap();
    let upload = |key: String| {
        let env = &env;
        async move {
            env.http
                .post(env.url(&format!(
                    "/user/practice/knowledge/{kb}/documents?file_name=busan.md"
                )))
                .bearer_auth(key)
                .body(BUSAN_MD)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(upload(teacher.clone()).await, 201);
    assert_eq!(upload(env.key.clone()).await, 403, "a student cannot write");
    let (status, _) = env.get(&format!("/user/practice/knowledge/{kb}")).await;
    assert_eq!(status, 200, "a student reads the class's base");
    let (status, hits) = env
        .post(
            "/user/practice/knowledge/search",
            &json!({"knowledge_ids": [kb], "query": "돼지국밥", "k": 2}),
        )
        .await;
    assert_eq!(status, 200, "{hits}");
    assert!(
        hits["items"][0]["passage"]["text"]
            .as_str()
            .unwrap()
            .contains("돼지국밥"),
        "{hits}"
    );
    // A query that is null, missing or blank is refused in pydantic's words.
    for (body, kind) in [
        (json!({"knowledge_ids": [kb], "query": null}), "string_type"),
        (json!({"knowledge_ids": [kb]}), "missing"),
        (
            json!({"knowledge_ids": [kb], "query": "  "}),
            "string_too_short",
        ),
    ] {
        let (status, error) = env.post("/user/practice/knowledge/search", &body).await;
        assert_eq!(status, 422, "{body}: {error}");
        assert_eq!(error["detail"][0]["type"], kind, "{body}: {error}");
        assert_eq!(
            error["detail"][0]["loc"],
            json!(["body", "query"]),
            "{error}"
        );
    }
    let (status, body) = env
        .run(&json!({"prompt_text": "밀면은 어디 음식인가요?", "knowledge_ids": [kb]}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(last_user(&env.last_for("alpha")).contains("[Context]"));
    // Upload errors.
    let response = env
        .http
        .post(env.url(&format!("/user/practice/knowledge/{kb}/documents")))
        .bearer_auth(&teacher)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422, "file_name is required");
}

/// Uploads that cannot be stored are refused with a clear message, and
/// nothing of them is kept: invalid UTF-8 (400, with the byte offset), a bad
/// JSONL line (400, with the line), an unknown format (400), no file name
/// (422), more than 8 MiB (413).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_store_nothing() {
    let env = Env::start(Script::new(), &THREE).await;
    let kb = env
        .create("/user/practice/knowledge", &json!({"name": "notes"}))
        .await;
    let upload = |query: String, bytes: Vec<u8>| {
        let request = env
            .http
            .post(env.url(&format!("/user/practice/knowledge/{kb}/documents{query}")))
            .bearer_auth(&env.key)
            .body(bytes);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, body) = upload("?file_name=a.txt".into(), b"ok \xff bad".to_vec()).await;
    assert_eq!(status, 400, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("UTF-8") && detail.contains('3'), "{detail}");
    let (status, body) = upload(
        "?file_name=a.jsonl".into(),
        b"{\"text\":\"fine\"}\n{\"title\":\"no text\"}\n".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains('2'), "{body}");
    let (status, body) = upload("?file_name=a.pdf".into(), b"%PDF".to_vec()).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = upload(String::new(), b"text".to_vec()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["query", "file_name"]));
    let (status, body) = upload(
        "?file_name=big.txt".into(),
        vec![b'a'; sluice_practice::MAX_DOCUMENT_BYTES + 1],
    )
    .await;
    assert_eq!(status, 413, "{body}");
    let (_, listed) = env
        .get(&format!("/user/practice/knowledge/{kb}/documents"))
        .await;
    assert_eq!(listed["total"], 0, "{listed}");
    let (status, body) = upload(
        "?file_name=ok.md".into(),
        "# 제목\n\n본문이다.".as_bytes().to_vec(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["items"][0]["format"], "markdown");
}

/// Issue 23, item 1: a mutation that moves a library object between classes
/// is refused unless its owner belongs to the target class and the caller may
/// write there. Table over every route that sets `class_id`, each case from a
/// fresh object shared with class A; a refusal leaves the class as it was.
///
/// Classes: A (teacher instructs, student and classmate belong), B (teacher is
/// only a member, the student is not: the reported hole), C (teacher
/// instructs, student absent), D (student belongs, teacher absent), E (teacher
/// instructs, student belongs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_an_object_between_classes_needs_the_owner_there_and_a_writer() {
    let env = Env::start(Script::new(), &THREE).await;
    let store = &env.store;
    let models = &["alpha".to_string()];
    let (other, _) = store.create_user("other teacher").await.unwrap();
    let (mate, mate_key) = store.create_user("classmate").await.unwrap();
    let class = |name: &'static str, instructor: i64| async move {
        store
            .create_class(name, instructor, models, "alpha")
            .await
            .unwrap()
            .id
    };
    let a = env.class_id;
    let b = class("B", other.id).await;
    let c = class("C", env.teacher_id).await;
    let d = class("D", other.id).await;
    let e = class("E", env.teacher_id).await;
    for (class, user, role) in [
        (a, mate.id, ClassRole::Student),
        (b, env.teacher_id, ClassRole::Student),
        (d, env.user_id, ClassRole::Student),
        (e, env.user_id, ClassRole::Student),
    ] {
        store.add_member(class, user, role).await.unwrap();
    }
    let teacher = store.create_key(env.teacher_id, None).await.unwrap().key;
    let student = env.key.clone();
    let mate = mate_key.key;

    let routes = [
        (
            "/user/practice/agents",
            json!({"name": "tutor", "instructions": "secret instructions"}),
        ),
        ("/user/practice/projects", json!({"name": "project"})),
        ("/user/practice/knowledge", json!({"name": "notes"})),
        (
            "/user/practice/few-shot-examples",
            json!({"input": "q", "output": "a"}),
        ),
    ];
    // (who, target class, expected status)
    let cases: [(&str, &String, Option<i64>, u16); 9] = [
        (
            "teacher to B, where the owner is not",
            &teacher,
            Some(b),
            403,
        ),
        (
            "teacher to C, which they teach, owner absent",
            &teacher,
            Some(c),
            403,
        ),
        (
            "teacher to D, owner's class they cannot write",
            &teacher,
            Some(d),
            403,
        ),
        ("teacher unshares a student's object", &teacher, None, 403),
        ("classmate to D", &mate, Some(d), 403),
        ("student to C, not a member", &student, Some(c), 403),
        ("student to D, a member", &student, Some(d), 200),
        ("student unshares", &student, None, 200),
        (
            "teacher to E, owner belongs and they teach",
            &teacher,
            Some(e),
            200,
        ),
    ];
    for (path, body) in &routes {
        for (what, key, target, expected) in &cases {
            let mut shared = body.clone();
            shared["class_id"] = json!(a);
            let id = env.create(path, &shared).await;
            let item = format!("{path}/{id}");
            let (status, answer) = env
                .send_json(
                    Some(key),
                    Method::PATCH,
                    &item,
                    Some(&json!({"class_id": target})),
                )
                .await;
            assert_eq!(status, *expected, "{path}: {what}: {answer}");
            let (_, now) = env.get(&item).await;
            let stays = if *expected == 200 {
                json!(target)
            } else {
                json!(a)
            };
            assert_eq!(now["class_id"], stays, "{path}: {what}: {now}");
        }
        // Creating in a class one does not belong to is refused too.
        let mut elsewhere = body.clone();
        elsewhere["class_id"] = json!(c);
        let (status, answer) = env.post(path, &elsewhere).await;
        assert_eq!(status, 403, "{path}: create in C: {answer}");
    }
}

/// `words` words of varied Hangul (2 to 4 random syllables each, a fixed
/// seed), in sentences and paragraphs: text with many distinct terms, as a
/// real Korean document has, so indexing it writes many posting rows.
pub(crate) fn varied_hangul(words: usize, seed: u64) -> String {
    let mut state = seed | 1;
    let mut next = move || {
        // xorshift64: deterministic and dependency-free.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut text = String::with_capacity(words * 10);
    for i in 0..words {
        for _ in 0..2 + next() % 3 {
            let syllable = 0xAC00 + (next() % 11_172) as u32;
            text.push(char::from_u32(syllable).expect("a Hangul syllable"));
        }
        text.push(match i % 97 {
            96 => '\n',
            n if n % 12 == 11 => '.',
            _ => ' ',
        });
        if i % 97 == 96 {
            text.push('\n');
        }
    }
    text
}

/// Issue 23, item 3: a big upload does not hold the write lock for its whole
/// indexing. While one user's ~1.5 MB of varied Hangul is indexed, another
/// user's writes keep completing (none waits anywhere near the whole
/// indexing), searches see none of the upload until all of it is stored, and
/// then find it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_upload_lets_other_writers_through_and_appears_whole() {
    let env = Env::start(Script::new(), &THREE).await;
    let teacher = env
        .store
        .create_key(env.teacher_id, None)
        .await
        .unwrap()
        .key;
    let kb = env
        .create("/user/practice/knowledge", &json!({"name": "big"}))
        .await;
    let text = varied_hangul(160_000, 23);
    let probe: String = text.split_whitespace().nth(1234).unwrap().to_string();
    let upload = {
        let request = env
            .http
            .post(env.url(&format!(
                "/user/practice/knowledge/{kb}/documents?file_name=big.txt"
            )))
            .bearer_auth(&env.key)
            .timeout(Duration::from_secs(120))
            .body(text.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let response = request.send().await.unwrap();
            (response.status().as_u16(), started.elapsed())
        })
    };
    let search = json!({"knowledge_ids": [kb], "query": probe, "k": 3});
    let mut slowest = Duration::ZERO;
    let mut writes = 0;
    let mut seen_during = Vec::new();
    while !upload.is_finished() {
        let started = Instant::now();
        let (status, _) = env
            .send_json(
                Some(&teacher),
                Method::POST,
                "/user/practice/projects",
                Some(&json!({"name": format!("p{writes}")})),
            )
            .await;
        assert_eq!(status, 201, "another user's write");
        slowest = slowest.max(started.elapsed());
        writes += 1;
        // Search, list, search: the upload may commit between any two of
        // these (its response can still be on the wire), so each check only
        // compares reads in the order they happened.
        let (status, before) = env.post("/user/practice/knowledge/search", &search).await;
        assert_eq!(status, 200, "{before}");
        let (_, listed) = env
            .get(&format!("/user/practice/knowledge/{kb}/documents"))
            .await;
        let (status, after) = env.post("/user/practice/knowledge/search", &search).await;
        assert_eq!(status, 200, "{after}");
        let hits = |found: &Value| found["items"].as_array().unwrap().len();
        seen_during.push((
            hits(&before),
            listed["total"].as_u64().unwrap(),
            hits(&after),
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, took) = upload.await.unwrap();
    assert_eq!(status, 201, "the upload is stored");
    // All or nothing while it is indexed: no passage is found before its
    // document is listed, and a listed document is found whole.
    for &(before, total, after) in &seen_during {
        assert!(
            (total == 0 || after > 0) && (before == 0 || total == 1),
            "half an upload seen (hits before, listed, hits after): {seen_during:?}"
        );
    }
    // Relative, so that a loaded machine does not fail it: one transaction
    // for the whole upload made a write wait for nearly all of it.
    assert!(
        slowest * 3 < took,
        "a write waited {slowest:?} behind an upload that took {took:?} ({writes} writes)"
    );
    let (status, hits) = env.post("/user/practice/knowledge/search", &search).await;
    assert_eq!(status, 200, "{hits}");
    assert!(
        hits["items"][0]["passage"]["text"]
            .as_str()
            .is_some_and(|t| t.contains(&probe)),
        "{hits}"
    );
}

/// Issue 26: listing by a class one is not in was 200 with an empty page.
#[tokio::test]
async fn listing_sessions_of_a_class_one_is_not_in_is_403_and_of_no_class_404() {
    let env = Env::start(Script::new(), &THREE).await;
    let (outsider, outsider_key) = env.store.create_user("outsider").await.unwrap();
    let path = format!("/user/practice/sessions?class_id={}", env.class_id);
    let (status, body) = env
        .send_json(Some(&outsider_key.key), Method::GET, &path, None)
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("not a member"),
        "{body}"
    );
    let (status, body) = env.get(&path).await;
    assert_eq!(status, 200, "a member still lists: {body}");
    let (status, _) = env.get("/user/practice/sessions?class_id=999999").await;
    assert_eq!(status, 404);
    // Without the filter an outsider sees their own (none), as before.
    let (status, body) = env
        .send_json(
            Some(&outsider_key.key),
            Method::GET,
            "/user/practice/sessions",
            None,
        )
        .await;
    assert_eq!((status, body["total"].as_i64()), (200, Some(0)), "{body}");
    let _ = outsider;
}

/// Issue 26: a model the class allows but the server lacks said only "is not
/// configured on this server"; it now says what is configured and where
/// models come from.
#[tokio::test]
async fn a_class_model_missing_from_the_server_is_explained() {
    let env = Env::start(Script::new(), &THREE).await;
    let teacher = env.store.user(env.teacher_id).await.unwrap();
    let class = env
        .store
        .create_class("other", teacher.id, &["HCX-005".to_string()], "HCX-005")
        .await
        .unwrap();
    env.store
        .add_member(class.id, env.user_id, ClassRole::Student)
        .await
        .unwrap();
    let (status, body) = env
        .post(
            &format!("/user/practice/sessions/run?class_id={}", class.id),
            &json!({"prompt_text": "hi"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    for part in [
        "\"HCX-005\" is not configured",
        "configured: ",
        "[models.NAME]",
        "--config",
    ] {
        assert!(detail.contains(part), "{part} missing in {detail}");
    }
}
