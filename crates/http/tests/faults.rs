//! Faults survived (issue 12, point 5): what practice runs and the gateway
//! answer when an upstream model or the database misbehaves, that they recover
//! once it stops, and that nothing acknowledged is lost.
//!
//! Everything runs over 127.0.0.1: a real server, a real client, and the
//! scripted fake upstream (`crates/practice/tests/support.rs`), which speaks
//! the OpenAI-compatible and CLOVA v3 wire formats and misbehaves on cue —
//! slower than the model's deadline, a connection reset before or in the
//! middle of a reply (blocking and streamed), HTML error pages and JSON of the
//! wrong shape, bodies cut short and streams that end without `[DONE]`, storms
//! of 503 and 429. The database faults are real ones: SQLite's write lock held
//! by another connection past the busy timeout, and a private PostgreSQL
//! server stopped under in-flight runs and started again.
//!
//! SIGKILL mid-request is `tests/practice.rs`'s
//! `acknowledged_runs_survive_sigkill_on_{sqlite,postgres}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sluice_practice::Store;
use sqlx::Connection as _;

use crate::fake::Behavior;
use crate::harness::{PracticeServer, StoreKind, TempDir, suite_server};

/// The models of every test: `alpha` and `beta` speak the OpenAI-compatible
/// format, `gamma` CLOVA v3.
const MODELS: [&str; 3] = ["alpha", "beta", "gamma"];

suite_server!(
    /// The one test server (`crate::harness`) over `store` with the three
    /// models, and one student in one class that allows them. Stops when dropped.
    Env
);

impl Env {
    /// Every model with a deadline of `timeout_ms` and `max_retries` retries.
    async fn start(store: Store, timeout_ms: u64, max_retries: u32) -> Env {
        let server = PracticeServer::builder()
            .store(StoreKind::Given(store))
            .class("faults")
            .configure(move |_, config| {
                config.timeout_ms = timeout_ms;
                config.max_retries = max_retries;
            })
            .client(|client| client.timeout(Duration::from_secs(30)))
            .start()
            .await;
        Env(server)
    }

    /// Queues `behavior` for each of `models`.
    fn fail(&self, models: &[&str], behavior: &Behavior) {
        for model in models {
            self.fake.push(model, behavior.clone());
        }
    }

    /// A blocking run on every model: status, headers, body.
    async fn run(&self, prompt: &str) -> (u16, HeaderMap, Value) {
        let response = self
            .http
            .post(self.url(&format!(
                "/user/practice/sessions/run?class_id={}",
                self.class_id
            )))
            .bearer_auth(&self.key)
            .json(&json!({"prompt_text": prompt, "model_names": MODELS}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// A streamed run on every model, read to the end: status and events.
    async fn run_streamed(&self, prompt: &str) -> (u16, Vec<(String, Value)>) {
        let response = self.start_stream(prompt).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, sse_events(&text))
    }

    async fn start_stream(&self, prompt: &str) -> reqwest::Response {
        self.http
            .post(self.url(&format!(
                "/user/practice/sessions/run?class_id={}",
                self.class_id
            )))
            .bearer_auth(&self.key)
            .header("accept", "text/event-stream")
            .json(&json!({"prompt_text": prompt, "model_names": MODELS}))
            .send()
            .await
            .unwrap()
    }

    /// A chat completion through the gateway: CLOVA v3 to `gamma`, or
    /// OpenAI's format to `alpha`. Status and body text.
    async fn gateway(&self, clova: bool, stream: bool) -> (u16, String) {
        let response = self
            .gateway_request(clova, stream, "hello gateway")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// A chat request to the gateway: CLOVA v3 to `gamma`, or OpenAI to `alpha`.
    fn gateway_request(&self, clova: bool, stream: bool, content: &str) -> reqwest::RequestBuilder {
        let messages = json!([{"role": "user", "content": content}]);
        let mut request = if clova {
            self.http
                .post(self.url("/v3/chat-completions/gamma"))
                .json(&json!({"messages": messages, "maxTokens": 64}))
        } else {
            self.http
                .post(self.url("/v1/openai/chat/completions"))
                .json(&json!({"model": "alpha", "messages": messages, "max_tokens": 64, "stream": stream}))
        };
        if stream {
            request = request.header("accept", "text/event-stream");
        }
        request.bearer_auth(&self.key)
    }

    /// The student's sessions, each as stored: id to its detail.
    async fn sessions(&self) -> BTreeMap<i64, Value> {
        let mut all = BTreeMap::new();
        let mut page = 1;
        loop {
            let response = self
                .http
                .get(self.url(&format!("/user/practice/sessions?page={page}&size=200")))
                .bearer_auth(&self.key)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let list: Value = response.json().await.unwrap();
            let items = list["items"].as_array().unwrap().clone();
            for item in &items {
                let id = item["session_id"]
                    .as_i64()
                    .or_else(|| item["id"].as_i64())
                    .unwrap_or_else(|| panic!("no id in {item}"));
                let detail = self
                    .http
                    .get(self.url(&format!("/user/practice/sessions/{id}")))
                    .bearer_auth(&self.key)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(detail.status(), 200);
                all.insert(id, detail.json().await.unwrap());
            }
            if items.len() < 200 {
                return all;
            }
            page += 1;
        }
    }
}

/// `(event, data as JSON)` of every server-sent event with data
/// (`Value::String` for data that is not JSON, such as `[DONE]`).
fn sse_events(text: &str) -> Vec<(String, Value)> {
    crate::support::sse_events(text)
        .into_iter()
        .filter(|(_, data)| !data.is_empty())
        .map(|(event, data)| {
            let value = serde_json::from_str(&data).unwrap_or(Value::String(data));
            (event, value)
        })
        .collect()
}

/// One way an upstream misbehaves, and what each client is told.
struct Fault {
    name: &'static str,
    behavior: Behavior,
    /// The stored `error.kind` of a blocking run, and of a streamed one.
    kind: (&'static str, &'static str),
    /// The gateway's blocking answer: HTTP status and envelope code.
    gateway: (u16, &'static str),
    /// Whether a streamed gateway call has begun (200, deltas sent) when the
    /// fault strikes, so that it ends with an error event instead.
    late_in_stream: bool,
}

/// A deadline short enough to keep the timeout fault quick.
const TIMEOUT_MS: u64 = 500;

fn faults() -> Vec<Fault> {
    let raw = |status: u16, content_type: &str, body: &str| Behavior::Raw {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        body: body.into(),
    };
    let nginx_502 = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
                     <center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n\
                     </body>\r\n</html>\r\n";
    vec![
        Fault {
            name: "slower than timeout_ms",
            behavior: Behavior::Slow {
                delay: Duration::from_millis(TIMEOUT_MS * 4),
            },
            kind: ("timeout", "timeout"),
            gateway: (504, "50400"),
            late_in_stream: false,
        },
        Fault {
            name: "reset before the answer",
            behavior: Behavior::ResetConnection,
            kind: ("transport", "transport"),
            gateway: (502, "50200"),
            late_in_stream: false,
        },
        Fault {
            name: "reset mid-reply",
            behavior: Behavior::ResetMidReply,
            kind: ("transport", "transport"),
            gateway: (502, "50200"),
            late_in_stream: true,
        },
        Fault {
            name: "cut short (body under its length; stream without [DONE])",
            behavior: Behavior::CutShort,
            kind: ("transport", "bad_response"),
            gateway: (502, "50200"),
            late_in_stream: true,
        },
        Fault {
            name: "an HTML page with 200",
            behavior: raw(
                200,
                "text/html",
                "<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>",
            ),
            kind: ("bad_response", "bad_response"),
            gateway: (502, "50200"),
            late_in_stream: false,
        },
        Fault {
            name: "JSON of the wrong shape",
            behavior: raw(200, "application/json", r#"{"object":"list","data":[]}"#),
            kind: ("bad_response", "bad_response"),
            gateway: (502, "50200"),
            late_in_stream: false,
        },
        Fault {
            name: "a proxy's HTML 502 page",
            behavior: raw(502, "text/html", nginx_502),
            kind: ("upstream_5xx", "upstream_5xx"),
            gateway: (502, "50200"),
            late_in_stream: false,
        },
        Fault {
            name: "429",
            behavior: Behavior::error(429, "slow down"),
            kind: ("rate_limited", "rate_limited"),
            gateway: (429, "42900"),
            late_in_stream: false,
        },
    ]
}

/// Asserts that a run's results are alpha's echo and the fault on beta and
/// gamma, and returns the session id.
fn check_partial(fault: &str, body: &Value, kind: &str, prompt: &str) -> i64 {
    let results = body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{fault}: {body}"));
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["model_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, MODELS, "{fault}: {body}");
    assert_eq!(
        results[0]["response_text"],
        format!("echo: {prompt}"),
        "{fault}: {body}"
    );
    assert!(results[0]["error"].is_null(), "{fault}: {body}");
    for failed in &results[1..] {
        assert!(failed["response_text"].is_null(), "{fault}: {failed}");
        assert_eq!(failed["error"]["kind"], kind, "{fault}: {failed}");
        assert!(failed["error"]["message"].is_string(), "{fault}: {failed}");
    }
    body["session_id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn practice_runs_store_the_models_that_answered_and_mark_each_upstream_fault() {
    let env = Env::start(Store::in_memory().await.unwrap(), TIMEOUT_MS, 0).await;
    let mut acknowledged = BTreeMap::new();
    for (i, fault) in faults().iter().enumerate() {
        let name = fault.name;
        // Blocking: beta and gamma fail, alpha answers; the turn is stored.
        env.fail(&["beta", "gamma"], &fault.behavior);
        let prompt = format!("blocking run {i}");
        let (status, _, body) = env.run(&prompt).await;
        assert_eq!(status, 201, "{name}: {body}");
        let id = check_partial(name, &body, fault.kind.0, &prompt);
        acknowledged.insert(id, body["results"].clone());

        // Streamed: the same, with alpha's tokens and a model_done per model.
        env.fail(&["beta", "gamma"], &fault.behavior);
        let prompt = format!("streamed run {i}");
        let (status, events) = env.run_streamed(&prompt).await;
        assert_eq!(status, 201, "{name}");
        let (last, result) = events.last().unwrap_or_else(|| panic!("{name}: no events"));
        assert_eq!(last, "result", "{name}: {events:?}");
        let id = check_partial(name, result, fault.kind.1, &prompt);
        let done: BTreeMap<String, Value> = events
            .iter()
            .filter(|(e, _)| e == "model_done")
            .map(|(_, d)| (d["model_name"].as_str().unwrap().into(), d["error"].clone()))
            .collect();
        assert_eq!(done.len(), 3, "{name}: {events:?}");
        assert!(done["alpha"].is_null(), "{name}: {events:?}");
        assert_eq!(done["beta"]["kind"], fault.kind.1, "{name}: {events:?}");
        let alpha: String = events
            .iter()
            .filter(|(e, d)| e == "token" && d["model_name"] == "alpha")
            .map(|(_, d)| d["text"].as_str().unwrap())
            .collect();
        assert_eq!(alpha, format!("echo: {prompt}"), "{name}");
        acknowledged.insert(id, result["results"].clone());

        // Every model failing: 502 with each model's error, nothing stored.
        env.fail(&MODELS, &fault.behavior);
        let (status, _, body) = env.run("all failing").await;
        assert_eq!(status, 502, "{name}: {body}");
        let errors = body["detail"]["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 3, "{name}: {body}");
        for e in errors {
            assert_eq!(e["error"]["kind"], fault.kind.0, "{name}: {e}");
        }
        env.fail(&MODELS, &fault.behavior);
        let (status, events) = env.run_streamed("all failing, streamed").await;
        assert_eq!(
            status, 201,
            "{name}: the stream began before the models answered"
        );
        let (last, error) = events.last().unwrap();
        assert_eq!(last, "error", "{name}: {events:?}");
        assert_eq!(error["status"], 502, "{name}: {error}");

        // Recovered: the next run is whole.
        let (status, _, body) = env.run(&format!("after {i}")).await;
        assert_eq!(status, 201, "{name}: {body}");
        for result in body["results"].as_array().unwrap() {
            assert!(result["error"].is_null(), "{name}: {result}");
        }
        acknowledged.insert(
            body["session_id"].as_i64().unwrap(),
            body["results"].clone(),
        );
    }
    // Every acknowledged run is stored exactly as it was answered, and the
    // failed ones are not stored at all.
    let stored = env.sessions().await;
    assert_eq!(stored.len(), acknowledged.len());
    for (id, results) in &acknowledged {
        let history = stored[id]["history"].as_array().unwrap();
        assert_eq!(history.len(), 1, "session {id}");
        assert_eq!(&history[0]["results"], results, "session {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storms_of_503_and_429_are_retried_then_reported_and_the_next_run_recovers() {
    // Two retries: three attempts per model, with back-off (or the upstream's
    // Retry-After) in between, all within the 10 s deadline.
    let env = Env::start(Store::in_memory().await.unwrap(), 10_000, 2).await;
    let storm_503 = Behavior::error(503, "overloaded");
    let storm_429 = Behavior::rate_limited("0");
    for _ in 0..3 {
        env.fail(&["beta"], &storm_503);
        env.fail(&["gamma"], &storm_429);
    }
    let started = Instant::now();
    let (status, _, body) = env.run("in the storm").await;
    assert_eq!(status, 201, "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(body["results"][0]["response_text"], "echo: in the storm");
    assert_eq!(
        body["results"][1]["error"]["kind"], "upstream_5xx",
        "{body}"
    );
    assert_eq!(body["results"][1]["error"]["status"], 503, "{body}");
    assert_eq!(
        body["results"][2]["error"]["kind"], "rate_limited",
        "{body}"
    );
    let asked = |model: &str| {
        env.fake
            .requests()
            .iter()
            .filter(|r| r.model == model)
            .count()
    };
    assert_eq!((asked("alpha"), asked("beta"), asked("gamma")), (1, 3, 3));

    // The whole fleet in a storm: 502, nothing stored.
    for _ in 0..3 {
        env.fail(&MODELS, &storm_503);
    }
    let (status, _, body) = env.run("everything down").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(env.sessions().await.len(), 1);

    // The storm passes after one more 503 each: the retry gets through.
    env.fail(&MODELS, &storm_503);
    let (status, _, body) = env.run("after the storm").await;
    assert_eq!(status, 201, "{body}");
    for result in body["results"].as_array().unwrap() {
        assert_eq!(result["response_text"], "echo: after the storm", "{result}");
    }
    assert_eq!(env.sessions().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_answers_each_upstream_fault_with_its_code_and_recovers() {
    let env = Env::start(Store::in_memory().await.unwrap(), TIMEOUT_MS, 0).await;
    for fault in faults() {
        let name = fault.name;
        let (status, code) = fault.gateway;
        for clova in [true, false] {
            let model = if clova { "gamma" } else { "alpha" };
            let format = if clova { "CLOVA v3" } else { "OpenAI" };
            // Blocking: the status and code in the client's format.
            env.fail(&[model], &fault.behavior);
            let (got, text) = env.gateway(clova, false).await;
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let got_code = if clova {
                &body["status"]["code"]
            } else {
                &body["error"]["code"]
            };
            assert_eq!(
                (got, got_code.as_str()),
                (status, Some(code)),
                "{name}, {format}: {text}"
            );

            // Streamed: before the first delta, the same answer; after it, a
            // 200 stream that ends with the error.
            env.fail(&[model], &fault.behavior);
            let (got, text) = env.gateway(clova, true).await;
            if fault.late_in_stream {
                assert_eq!(got, 200, "{name}, {format}: {text}");
                let events = sse_events(&text);
                let error = if clova {
                    let (event, data) = events.last().unwrap();
                    assert_eq!(event, "error", "{name}, {format}: {text}");
                    data["status"]["code"].clone()
                } else {
                    assert_eq!(events.last().unwrap().1, "[DONE]", "{name}: {text}");
                    events[events.len() - 2].1["error"]["code"].clone()
                };
                assert_eq!(error, code, "{name}, {format}: {text}");
                assert!(text.contains("echo"), "the first delta went out: {text}");
            } else {
                let body: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|_| panic!("{name}, {format}: not JSON: {text}"));
                let got_code = if clova {
                    &body["status"]["code"]
                } else {
                    &body["error"]["code"]
                };
                assert_eq!(
                    (got, got_code.as_str()),
                    (status, Some(code)),
                    "{name}, {format}"
                );
            }

            // Recovered: the next call is answered.
            let (got, text) = env.gateway(clova, false).await;
            assert_eq!(got, 200, "{name}, {format}: {text}");
            assert!(text.contains("echo: hello gateway"), "{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_mid_stream_still_gets_its_run_stored() {
    let env = Env::start(Store::in_memory().await.unwrap(), 10_000, 0).await;
    let slow = Behavior::stream(
        &["one ", "two ", "three ", "four"],
        Duration::from_millis(150),
    );
    env.fail(&MODELS, &slow);
    let mut response = env.start_stream("leaving early").await;
    assert_eq!(response.status(), 201);
    // The first token, then the client hangs up.
    let mut seen = String::new();
    while !seen.contains("event: token") {
        let chunk = response
            .chunk()
            .await
            .unwrap()
            .expect("a token before the end");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);
    let deadline = Instant::now() + Duration::from_secs(10);
    let sessions = loop {
        let sessions = env.sessions().await;
        if !sessions.is_empty() || Instant::now() > deadline {
            break sessions;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        sessions.len(),
        1,
        "the run was stored after the client left"
    );
    let results = &sessions.values().next().unwrap()["history"][0]["results"];
    for result in results.as_array().unwrap() {
        assert_eq!(result["response_text"], "one two three four", "{result}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_client_that_leaves_mid_stream_stops_the_upstream_call() {
    let env = Env::start(Store::in_memory().await.unwrap(), 30_000, 0).await;
    // Thirty deltas 100 ms apart: three seconds of answer, if read to the end.
    let words: Vec<String> = (0..30).map(|i| format!("w{i} ")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    for clova in [true, false] {
        let model = if clova { "gamma" } else { "alpha" };
        env.fail(
            &[model],
            &Behavior::stream(&words, Duration::from_millis(100)),
        );
        let mut response = env
            .gateway_request(clova, true, "leave early")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let mut seen = String::new();
        while !seen.contains("w0") {
            let chunk = response.chunk().await.unwrap().expect("a delta");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert_eq!(env.fake.in_flight(), 1, "the upstream is answering");
        let left = Instant::now();
        drop(response);
        // The gateway notices at its next delta, drops the upstream call, and
        // the upstream's next write fails: well before the three seconds.
        while env.fake.in_flight() > 0 {
            assert!(
                left.elapsed() < Duration::from_millis(1500),
                "the upstream call went on after the client left ({})",
                if clova { "CLOVA v3" } else { "OpenAI" }
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_past_the_busy_timeout_is_503_then_the_next_run_succeeds() {
    let dir = TempDir::new("sqlite");
    let path = dir.path().join("practice.db");
    let store = Store::open_file(&path).await.unwrap();
    let env = Env::start(store, 10_000, 0).await;
    let (status, _, before) = env.run("before the lock").await;
    assert_eq!(status, 201, "{before}");

    // Another connection (another process would do the same) takes the write
    // lock and keeps it past the store's 10 s busy timeout.
    let mut holder = sqlx::SqliteConnection::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let started = Instant::now();
    let (status, headers, body) = env.run("while locked").await;
    let waited = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_eq!(
        body["detail"], "the database is busy or unavailable; try again",
        "{body}"
    );
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(25)).contains(&waited),
        "waited the busy timeout: {waited:?}"
    );
    // Reads go on beside the lock (WAL): the session list still answers.
    assert_eq!(env.sessions().await.len(), 1);
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    drop(holder);

    let (status, _, after) = env.run("after the lock").await;
    assert_eq!(status, 201, "{after}");
    // No half turns: two sessions, one whole turn each.
    let sessions = env.sessions().await;
    assert_eq!(sessions.len(), 2);
    for (id, body) in [(&before, "before the lock"), (&after, "after the lock")]
        .map(|(b, p)| (b["session_id"].as_i64().unwrap(), (b, p)))
    {
        let history = sessions[&id]["history"].as_array().unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0]["prompt_text"], body.1);
        assert_eq!(history[0]["results"], body.0["results"]);
    }
    let counted = env
        .store
        .list_sessions(env.user_id, Default::default(), Default::default())
        .await
        .unwrap();
    assert_eq!(counted.total, 2);
}

/// A private PostgreSQL server in a temporary directory, so that it can be
/// stopped and started without touching the one other tests share.
struct Postgres {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
}

impl Postgres {
    /// Starts one, or `None` where PostgreSQL is not installed (outside CI;
    /// `.ci/postgres.sh` installs it, and under `CI=true` it must be there).
    fn start() -> Option<Postgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("postgres").is_file())
            .max_by_key(|b| {
                b.parent()
                    .and_then(|v| v.file_name())
                    .and_then(|v| v.to_str())
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0)
            });
        let Some(bin) = bin else {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the PostgreSQL restart test: no /usr/lib/postgresql/*/bin (.ci/postgres.sh installs it)"
            );
            return None;
        };
        let dir = TempDir::new("pg");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Postgres { bin, dir, port };
        let data = pg.data();
        if is_root() {
            // PostgreSQL refuses to run as root: the package's user runs it.
            chown_postgres(pg.dir.path());
        }
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "sluice",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        );
        pg.start_server();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://sluice@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs one of PostgreSQL's programs (as `postgres` when we are root).
    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command.args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{} {args:?}: {}{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn start_server(&self) {
        let options = format!(
            "-h 127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }

    fn stop_server(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        };
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn chown_postgres(dir: &Path) {
    let status = Command::new("chown")
        .args(["-R", "postgres"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_run_is_503_then_the_pool_reconnects() {
    let Some(pg) = Postgres::start() else {
        eprintln!("PostgreSQL is not installed: skipping the restart test");
        return;
    };
    let store = Store::connect(&pg.url()).await.unwrap();
    let env = Env::start(store, 20_000, 0).await;
    let mut acknowledged: BTreeMap<i64, Value> = BTreeMap::new();
    for i in 0..3 {
        let (status, _, body) = env.run(&format!("before {i}")).await;
        assert_eq!(status, 201, "{body}");
        acknowledged.insert(
            body["session_id"].as_i64().unwrap(),
            body["results"].clone(),
        );
    }

    // Runs in flight: past the store's reads, waiting on slow models, when
    // the server goes down. They reach the store during the outage.
    let slow = Behavior::Slow {
        delay: Duration::from_millis(1500),
    };
    const IN_FLIGHT: usize = 6;
    for _ in 0..IN_FLIGHT {
        env.fail(&MODELS, &slow);
    }
    let env = std::sync::Arc::new(env);
    let runs: Vec<_> = (0..IN_FLIGHT)
        .map(|i| {
            let env = std::sync::Arc::clone(&env);
            tokio::spawn(async move { env.run(&format!("in flight {i}")).await })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.fake.requests().len() < 3 * (3 + IN_FLIGHT) {
        assert!(
            Instant::now() < deadline,
            "the runs never reached the models"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopped = Instant::now();
    pg.stop_server();

    // During the outage: the in-flight runs and a new one are 503 with
    // Retry-After, in the store's bounded wait.
    let (status, headers, body) = env.run("during the outage").await;
    assert_eq!(status, 503, "{body}");
    assert!(headers.contains_key("retry-after"));
    let mut unavailable = 0;
    for run in runs {
        let (status, headers, body) = run.await.unwrap();
        match status {
            201 => {
                acknowledged.insert(
                    body["session_id"].as_i64().unwrap(),
                    body["results"].clone(),
                );
            }
            503 => {
                assert!(headers.contains_key("retry-after"));
                unavailable += 1;
            }
            other => panic!("an in-flight run got {other}: {body}"),
        }
    }
    assert!(unavailable > 0, "no run met the outage");
    assert!(stopped.elapsed() < Duration::from_secs(30));

    // Back up: the pool reconnects by itself and runs succeed again.
    pg.start_server();
    let (status, _, body) = env.run("after the restart").await;
    assert_eq!(status, 201, "{body}");
    acknowledged.insert(
        body["session_id"].as_i64().unwrap(),
        body["results"].clone(),
    );

    // Every acknowledged run is intact; nothing else was stored.
    let stored = env.sessions().await;
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        acknowledged.keys().collect::<Vec<_>>()
    );
    for (id, results) in &acknowledged {
        let history = stored[id]["history"].as_array().unwrap();
        assert_eq!(history.len(), 1, "session {id}");
        assert_eq!(&history[0]["results"], results, "session {id}");
    }
}
