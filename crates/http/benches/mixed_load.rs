//! Mixed load (issue 12): every endpoint at once, valid and invalid requests
//! interleaved, bounded in requests and in time, on 127.0.0.1.
//!
//! One process holds the scripted fake upstream (both wire formats, from
//! `crates/practice/tests/support.rs`), sluice with its whole app (the CLOVA
//! routes, the router, the gateway to the fake, practice sessions on an SQLite
//! file in WAL mode) and the client: `MIXED_CONNS` workers (default 16) share
//! `MIXED_REQUESTS` requests (default 12,000), each taking the next case of a
//! fixed rotation over [`cases`], and stop early after `MIXED_SECS` (default
//! 120). Every case says the status it must get; the bench exits non-zero when
//! a valid request gets a 5xx or any request gets another status than its
//! case's, or an invalid one gets a 5xx.
//!
//! It reports, per case, the requests, the statuses seen and p50/p99 latency,
//! and the process's resident memory (VmRSS) after set-up, after one warm-up
//! pass over the cases, after the load, and its peak (VmHWM). The fake stops
//! recording requests after the warm-up, so the memory is sluice's and the
//! client's.
//!
//! ```text
//! cargo bench -p sluice-http --bench mixed_load
//! MIXED_REQUESTS=12000 MIXED_CONNS=16 MIXED_SECS=120 MIXED_WORKERS=2 cargo bench -p sluice-http --bench mixed_load
//! ```
//!
//! Under `cargo test --benches` (no `--bench` argument) it runs 600 requests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use sluice_http::ApiKeys;
use tokio::sync::Mutex;

#[path = "../../practice/tests/support.rs"]
#[allow(dead_code)]
mod fake;
#[path = "../tests/harness.rs"]
#[allow(dead_code)]
mod harness;

use harness::{PracticeServer, StoreKind};

/// The key of the CLOVA routes and the gateway.
const KEY: &str = "mixed-load-key";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One kind of request and the status it must get.
struct Case {
    name: &'static str,
    valid: bool,
    method: Method,
    path: String,
    /// `None`: no key; `Some(true)`: the practice user's key; `Some(false)`: [`KEY`].
    practice_key: Option<bool>,
    stream: bool,
    body: Option<String>,
    expect: u16,
}

impl Case {
    fn new(name: &'static str, valid: bool, method: Method, path: &str, expect: u16) -> Self {
        Case {
            name,
            valid,
            method,
            path: path.to_string(),
            practice_key: Some(false),
            stream: false,
            body: None,
            expect,
        }
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body.to_string());
        self
    }

    fn raw_body(mut self, body: &str) -> Self {
        self.body = Some(body.to_string());
        self
    }

    fn practice(mut self) -> Self {
        self.practice_key = Some(true);
        self
    }

    fn no_key(mut self) -> Self {
        self.practice_key = None;
        self
    }

    fn streamed(mut self) -> Self {
        self.stream = true;
        self
    }
}

/// A history of `pairs` user/assistant turns after a system message.
fn history(pairs: usize) -> Value {
    let mut messages = vec![
        json!({"role": "system", "content": "You are a helpful assistant for a Busan travel agency. Answer briefly."}),
    ];
    for i in 0..pairs {
        messages.push(json!({"role": "user", "content": format!("질문 {i}: 해운대에서 광안리까지 가장 빠른 방법이 뭐예요?")}));
        messages.push(json!({"role": "assistant", "content": format!("답변 {i}: 지하철 2호선으로 약 15분 걸립니다. Bus 1003 also runs.")}));
    }
    Value::Array(messages)
}

/// Every case of the rotation: each endpoint, valid and invalid.
fn cases(class_id: i64, session_id: i64) -> Vec<Case> {
    use Method as M;
    let sliding = "/v1/api-tools/sliding/chat-messages/HCX-003";
    let run = format!("/user/practice/sessions/run?class_id={class_id}");
    let chat = json!([{"role": "user", "content": "부산 날씨 알려줘"}]);
    vec![
        // Valid.
        Case::new("sliding, 10 turns", true, M::POST, sliding, 200)
            .body(json!({"maxTokens": 200, "messages": history(10)})),
        Case::new("sliding, 60 turns, trimmed", true, M::POST, sliding, 200)
            .body(json!({"maxTokens": 1000, "messages": history(60)})),
        Case::new("chat-tokenize v1", true, M::POST, "/v1/api-tools/chat-tokenize/HCX-003", 200)
            .body(json!({"messages": history(5)})),
        Case::new("chat-tokenize v3", true, M::POST, "/v3/api-tools/chat-tokenize/HCX-005", 200)
            .body(json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "미세먼지 정보"}]}]})),
        Case::new("router", true, M::POST, "/v1/routers/sample/versions/1/route", 200)
            .body(json!({"query": "부산 해운대 맛집 추천해줘"})),
        Case::new("auth token", true, M::GET, "/v1/auth/token", 200),
        Case::new("healthz", true, M::GET, "/healthz", 200).no_key(),
        Case::new("metrics", true, M::GET, "/metrics", 200).no_key(),
        Case::new("openapi.json", true, M::GET, "/openapi.json", 200).no_key(),
        Case::new("gateway CLOVA v3", true, M::POST, "/v3/chat-completions/gamma", 200)
            .body(json!({"messages": chat, "maxTokens": 64})),
        Case::new("gateway CLOVA v3, streamed", true, M::POST, "/v3/chat-completions/gamma", 200)
            .body(json!({"messages": chat, "maxTokens": 64}))
            .streamed(),
        Case::new("gateway CLOVA v1", true, M::POST, "/v1/chat-completions/gamma", 200)
            .body(json!({"messages": chat, "maxTokens": 64})),
        Case::new("gateway OpenAI", true, M::POST, "/v1/openai/chat/completions", 200)
            .body(json!({"model": "alpha", "messages": chat, "max_tokens": 64})),
        Case::new("gateway OpenAI, streamed", true, M::POST, "/v1/chat/completions", 200)
            .body(json!({"model": "alpha", "messages": chat, "max_tokens": 64, "stream": true})),
        Case::new("practice run, 3 models", true, M::POST, &run, 201)
            .body(json!({"prompt_text": "해운대 가는 길", "model_names": ["alpha", "beta", "gamma"]}))
            .practice(),
        Case::new("practice run, streamed", true, M::POST, &run, 201)
            .body(json!({"prompt_text": "광안리 가는 길", "model_names": ["alpha", "gamma"]}))
            .practice()
            .streamed(),
        Case::new("practice sessions", true, M::GET, "/user/practice/sessions?size=5", 200)
            .practice(),
        Case::new(
            "practice session",
            true,
            M::GET,
            &format!("/user/practice/sessions/{session_id}"),
            200,
        )
        .practice(),
        Case::new("practice me", true, M::GET, "/user/practice/me", 200).practice(),
        // Invalid.
        Case::new("sliding, malformed JSON", false, M::POST, sliding, 400)
            .raw_body(r#"{"maxTokens": 100, "messages": [{"role": "user""#),
        Case::new("sliding, role not a role", false, M::POST, sliding, 400)
            .body(json!({"maxTokens": 100, "messages": [{"role": "wizard", "content": "hi"}]})),
        Case::new("sliding, unknown model", false, M::POST, "/v1/api-tools/sliding/chat-messages/HCX-999", 400)
            .body(json!({"maxTokens": 100, "messages": chat})),
        Case::new("sliding, no key", false, M::POST, sliding, 401)
            .body(json!({"maxTokens": 100, "messages": chat}))
            .no_key(),
        Case::new("sliding, GET", false, M::GET, sliding, 405),
        Case::new("router, unknown router", false, M::POST, "/v1/routers/nope/versions/1/route", 404)
            .body(json!({"query": "hi"})),
        Case::new("unknown path", false, M::GET, "/v9/nothing/here", 404),
        Case::new("gateway, unknown model", false, M::POST, "/v3/chat-completions/HCX-999", 400)
            .body(json!({"messages": chat})),
        Case::new("gateway OpenAI, messages not a list", false, M::POST, "/v1/openai/chat/completions", 400)
            .body(json!({"model": "alpha", "messages": "hi"})),
        Case::new("practice run, temperature 5", false, M::POST, &run, 422)
            .body(json!({"prompt_text": "hi", "generation_params": {"temperature": 5}}))
            .practice(),
        Case::new("practice run, no key", false, M::POST, &run, 401)
            .body(json!({"prompt_text": "hi"}))
            .no_key(),
        Case::new("practice session, not there", false, M::GET, "/user/practice/sessions/99999999", 404)
            .practice(),
    ]
}

/// What one case got.
#[derive(Default)]
struct Tally {
    statuses: BTreeMap<u16, usize>,
    latencies: Vec<Duration>,
}

/// Resident memory of this process: (VmRSS, VmHWM) in MiB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The one test server (`tests/harness.rs`): the whole app with [`KEY`],
/// practice on an SQLite file (WAL) with the sample router and the three
/// models, 64 calls at once each.
async fn start() -> PracticeServer {
    PracticeServer::builder()
        .configure(|_, config| config.max_concurrency = 64)
        .store(StoreKind::File)
        .class("load")
        .sample_router()
        .state(|state| state.api_keys(ApiKeys::new([KEY])))
        .client(|client| {
            client
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(64)
        })
        .start()
        .await
}

/// Sends one case and reads the whole answer: the status and the latency.
async fn send(env: &PracticeServer, case: &Case) -> (u16, Duration) {
    let mut request = env.http.request(
        case.method.clone(),
        format!("http://{}{}", env.addr, case.path),
    );
    match case.practice_key {
        Some(true) => request = request.bearer_auth(&env.key),
        Some(false) => request = request.bearer_auth(KEY),
        None => {}
    }
    if case.stream {
        request = request.header("accept", "text/event-stream");
    }
    if let Some(body) = &case.body {
        request = request
            .header("content-type", "application/json")
            .body(body.clone());
    }
    let started = Instant::now();
    let status = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            match response.bytes().await {
                Ok(body) if case.stream && status < 300 => {
                    // A stream that ends in an error event (practice, CLOVA)
                    // or an error chunk (OpenAI) is a failure too.
                    let text = String::from_utf8_lossy(&body);
                    if text.contains("event: error") || text.contains("data: {\"error\"") {
                        599
                    } else {
                        status
                    }
                }
                Ok(_) => status,
                Err(_) => 598,
            }
        }
        // No answer at all: counted as a server failure.
        Err(_) => 597,
    };
    (status, started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not.
    let full = std::env::args().any(|a| a == "--bench");
    let total = env("MIXED_REQUESTS", if full { 12_000 } else { 600 }) as usize;
    let conns = env("MIXED_CONNS", 16).max(1) as usize;
    let limit = Duration::from_secs(env("MIXED_SECS", 120));
    let workers = env("MIXED_WORKERS", 2).max(1) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    let ok = runtime.block_on(async move {
        let env = Arc::new(start().await);
        let set_up = memory();
        // One session to read back, then a warm-up pass over every case.
        let (status, _) = send(
            &env,
            &Case::new("", true, Method::POST, &format!("/user/practice/sessions/run?class_id={}", env.class_id), 201)
                .body(json!({"prompt_text": "first"}))
                .practice(),
        )
        .await;
        assert_eq!(status, 201);
        let list: Value = env
            .http
            .get(format!("http://{}/user/practice/sessions", env.addr))
            .bearer_auth(&env.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session_id = list["items"][0]["session_id"]
            .as_i64()
            .or_else(|| list["items"][0]["id"].as_i64())
            .expect("a session id");
        let cases = Arc::new(cases(env.class_id, session_id));
        for case in cases.iter() {
            let (status, _) = send(&env, case).await;
            assert_eq!(status, case.expect, "warm-up: {}", case.name);
        }
        env.fake.stop_recording();
        let warmed = memory();

        let next = Arc::new(AtomicUsize::new(0));
        let tallies: Arc<Vec<Mutex<Tally>>> =
            Arc::new(cases.iter().map(|_| Mutex::new(Tally::default())).collect());
        let started = Instant::now();
        let tasks: Vec<_> = (0..conns)
            .map(|_| {
                let (env, cases, next, tallies) = (
                    Arc::clone(&env),
                    Arc::clone(&cases),
                    Arc::clone(&next),
                    Arc::clone(&tallies),
                );
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total || started.elapsed() > limit {
                            return;
                        }
                        let which = i % cases.len();
                        let (status, latency) = send(&env, &cases[which]).await;
                        let mut tally = tallies[which].lock().await;
                        *tally.statuses.entry(status).or_default() += 1;
                        tally.latencies.push(latency);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let wall = started.elapsed();
        let after = memory();

        println!(
            "| case | valid | expected | requests | statuses | p50 ms | p99 ms |\n|---|---|--:|--:|---|--:|--:|"
        );
        let (mut sent, mut valid_sent, mut valid_5xx, mut invalid_5xx, mut unexpected) = (0, 0, 0, 0, 0);
        for (case, tally) in cases.iter().zip(tallies.iter()) {
            let mut tally = tally.lock().await;
            tally.latencies.sort();
            let n = tally.latencies.len();
            sent += n;
            let fives: usize = tally.statuses.range(500..).map(|(_, c)| c).sum();
            let wrong: usize = tally
                .statuses
                .iter()
                .filter(|(s, _)| **s != case.expect)
                .map(|(_, c)| c)
                .sum();
            unexpected += wrong;
            if case.valid {
                valid_sent += n;
                valid_5xx += fives;
            } else {
                invalid_5xx += fives;
            }
            let statuses: Vec<String> =
                tally.statuses.iter().map(|(s, c)| format!("{s}×{c}")).collect();
            println!(
                "| {} | {} | {} | {n} | {} | {:.1} | {:.1} |",
                case.name,
                if case.valid { "yes" } else { "no" },
                case.expect,
                statuses.join(" "),
                percentile(&tally.latencies, 0.5),
                percentile(&tally.latencies, 0.99),
            );
        }
        println!(
            "\n{sent} requests ({valid_sent} valid, {} invalid) in {:.1} s ({:.0} req/s) on {conns} connections; \
             5xx: {valid_5xx} valid, {invalid_5xx} invalid; other status than expected: {unexpected}",
            sent - valid_sent,
            wall.as_secs_f64(),
            sent as f64 / wall.as_secs_f64(),
        );
        println!(
            "RSS: {:.1} MiB after set-up, {:.1} MiB after warm-up, {:.1} MiB after the load; peak {:.1} MiB",
            set_up.0, warmed.0, after.0, after.1
        );
        valid_5xx == 0 && invalid_5xx == 0 && unexpected == 0
    });
    if !ok {
        eprintln!("mixed_load: FAILED: a 5xx or an unexpected status (see the table)");
        std::process::exit(1);
    }
}
