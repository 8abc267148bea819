//! Issue 23 over 127.0.0.1: hostile upstreams (replies past every reading
//! limit, invalid UTF-8, a client that never reads) through the gateway and
//! practice runs, and what a heavy or careless tenant costs the others (bad
//! keys in the log, client errors in the metrics).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_practice::provider::ProviderKind;
use tokio::io::AsyncWriteExt;

use crate::fake::{Behavior, Hostile};
use crate::harness::{PracticeServer, suite_server};

/// The small limits of the `gpt` and `hcx` models.
const REPLY: u64 = 256 << 10;
const LINE: u64 = 64 << 10;
const STREAM: u64 = 1 << 20;

/// How much each hostile upstream offers: far past every limit.
const OFFERED: u64 = 64 << 20;

/// `shape`, [`OFFERED`] bytes of it, in 16 KiB pieces: each event of a
/// stream stays under the line limit, so the limit reached is the one meant.
fn offer(shape: Hostile) -> Behavior {
    Behavior::Hostile {
        shape,
        bytes: OFFERED,
        piece: 16 << 10,
        pause: Duration::ZERO,
    }
}

suite_server!(
    /// The one test server (`crate::harness`) with the models below.
    Env
);

impl Env {
    /// Models `gpt` (OpenAI) and `hcx` (CLOVA) with the small limits above,
    /// and `big` (OpenAI) with limits no test reaches; one student in one
    /// class that has all three.
    async fn start(logs_per_sec: Option<u32>) -> Env {
        let server = PracticeServer::builder()
            .models(&[
                ("gpt", ProviderKind::Openai),
                ("hcx", ProviderKind::Clova),
                ("big", ProviderKind::Openai),
            ])
            .configure(|name, config| {
                config.timeout_ms = 15_000;
                if name == "big" {
                    config.max_reply_bytes = 4 << 30;
                    config.max_stream_bytes = 16 << 30;
                } else {
                    config.max_reply_bytes = REPLY;
                    config.max_line_bytes = LINE;
                    config.max_stream_bytes = STREAM;
                }
            })
            .state(move |state| match logs_per_sec {
                Some(rate) => state.request_logs_per_sec(rate),
                None => state,
            })
            .class("hostile")
            .client(|client| client.timeout(Duration::from_secs(30)))
            .start()
            .await;
        Env(server)
    }

    /// A gateway call on `wire`'s route for `model`: the status and the body as text.
    async fn chat(&self, model: &str, clova: bool, stream: bool) -> (u16, String) {
        let request = if clova {
            let mut request = self
                .http
                .post(self.url(&format!("/v3/chat-completions/{model}")))
                .json(&json!({"messages": [{"role": "user", "content": "hi"}]}));
            if stream {
                request = request.header("accept", "text/event-stream");
            }
            request
        } else {
            self.http.post(self.url("/v1/chat/completions")).json(
                &json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}),
            )
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// A practice run with `key` (the student's when `None`).
    async fn run(&self, key: Option<&str>, body: &Value) -> (u16, String) {
        let response = self
            .http
            .post(self.url(&format!(
                "/user/practice/sessions/run?class_id={}",
                self.class_id
            )))
            .bearer_auth(key.unwrap_or(&self.key))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }
}

/// Every reply shape past a limit is cut there, on both wire formats, through
/// the gateway (blocking and streamed) and a practice run: the client gets
/// an error naming the limit, and the upstream is not read to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reply_past_a_limit_is_cut_there_and_named() {
    let env = Env::start(None).await;
    // (model, CLOVA route, stream, shape, the limit named, a 200 stream first)
    let cases = [
        ("gpt", false, false, Hostile::Body, "max_reply_bytes", false),
        ("hcx", true, false, Hostile::Body, "max_reply_bytes", false),
        ("gpt", false, true, Hostile::Body, "max_reply_bytes", false),
        ("gpt", false, true, Hostile::Stream, "max_reply_bytes", true),
        ("hcx", true, true, Hostile::Stream, "max_reply_bytes", true),
        ("gpt", false, true, Hostile::Line, "max_line_bytes", false),
        ("hcx", true, true, Hostile::Line, "max_line_bytes", false),
        (
            "gpt",
            false,
            true,
            Hostile::KeepAlive,
            "max_stream_bytes",
            false,
        ),
    ];
    for (model, clova, stream, shape, limit, streamed) in cases {
        let what = format!("{model} {shape:?} stream={stream}");
        let before = env.fake.hostile_bytes();
        env.fake.push(model, offer(shape));
        let started = Instant::now();
        let (status, body) = env.chat(model, clova, stream).await;
        let read = env.fake.hostile_bytes() - before;
        if streamed {
            assert_eq!(status, 200, "{what}: {body}");
            let last_error = body
                .lines()
                .rfind(|l| l.contains("error") || l.contains("status"))
                .unwrap_or_default();
            assert!(last_error.contains(limit), "{what}: ends {last_error}");
        } else {
            assert_eq!(status, 502, "{what}: {body}");
            assert!(body.contains(limit), "{what}: {body}");
            assert!(body.contains("too_large"), "{what}: {body}");
        }
        // Cut short: far less than offered was written (sockets buffer some).
        assert!(read < 16 << 20, "{what}: the upstream wrote {read} bytes");
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
    }

    // A practice run: each model's error names its limit, none is stored as text.
    env.fake.push("gpt", offer(Hostile::Body));
    env.fake.push("hcx", offer(Hostile::Stream));
    let (status, body) = env
        .run(
            None,
            &json!({"prompt_text": "hi", "model_names": ["gpt", "hcx"]}),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    let detail: Value = serde_json::from_str(&body).unwrap();
    let errors = detail["detail"]["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "{body}");
    for entry in errors {
        let error = &entry["error"];
        assert_eq!(error["kind"], "too_large", "{body}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("max_reply_bytes"),
            "{body}"
        );
    }
}

/// A streaming client that never reads, against an upstream that never
/// stops: sluice reads the upstream no faster than the client takes it, so
/// what the upstream manages to write stays at what sockets and the bounded
/// channels hold, not the gigabyte it offers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_holds_the_upstream_back() {
    let env = Env::start(None).await;
    env.fake.push(
        "big",
        Behavior::Hostile {
            shape: Hostile::Stream,
            bytes: 1 << 30,
            piece: 16 << 10,
            pause: Duration::ZERO,
        },
    );
    let mut client = tokio::net::TcpStream::connect(env.addr).await.unwrap();
    let body =
        json!({"model": "big", "stream": true, "messages": [{"role": "user", "content": "hi"}]})
            .to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: sluice\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    client.write_all(request.as_bytes()).await.unwrap();
    // Long enough for an unbounded reader to take hundreds of megabytes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let written = env.fake.hostile_bytes();
    assert!(written > 0, "the upstream was called");
    assert!(
        written < 64 << 20,
        "the upstream wrote {written} bytes to a client that reads nothing"
    );
    // Others are served meanwhile.
    let started = Instant::now();
    let (status, _) = env.chat("gpt", false, false).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(client);
}

/// Invalid UTF-8 from an upstream is the same error blocking and streamed
/// (no U+FFFD smuggled into a 200), and upstream text quoted in an error is
/// escaped once, by JSON, not three times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_one_error_blocking_and_streamed() {
    let env = Env::start(None).await;
    for clova in [false, true] {
        let model = if clova { "hcx" } else { "gpt" };
        env.fake.push(model, Behavior::NotUtf8);
        let (status, body) = env.chat(model, clova, false).await;
        assert_eq!(status, 502, "{model}: {body}");
        assert!(body.contains("not valid UTF-8"), "{model}: {body}");
        env.fake.push(model, Behavior::NotUtf8);
        let (status, body) = env.chat(model, clova, true).await;
        assert_eq!(status, 200, "{model}: the first delta was good: {body}");
        assert!(!body.contains('\u{FFFD}'), "{model}: {body}");
        assert!(body.contains("not valid UTF-8"), "{model}: {body}");
    }
    env.fake.push("gpt", Behavior::MalformedJson);
    let (status, body) = env.chat("gpt", false, false).await;
    assert_eq!(status, 502, "{body}");
    let message = serde_json::from_str::<Value>(&body).unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains(r#"{"choices""#),
        "quoted as sent: {message}"
    );
    assert!(!body.contains(r#"\\\""#), "escaped three times: {body}");
}

/// Practice answers that are the client's fault are counted with their own
/// codes, not `50000`; a model failing is `50200`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn practice_client_errors_are_counted_with_their_own_codes() {
    let env = Env::start(None).await;
    let (status, _) = env.run(None, &json!({"prompt_text": ""})).await;
    assert_eq!(status, 422);
    let (status, _) = env
        .run(None, &json!({"prompt_text": "hi", "model_names": ["nope"]}))
        .await;
    assert!((400..500).contains(&status), "{status}");
    env.fake.push("gpt", Behavior::error(500, "boom"));
    let (status, _) = env
        .run(None, &json!({"prompt_text": "hi", "model_names": ["gpt"]}))
        .await;
    assert_eq!(status, 502);
    let (status, _) = env
        .run(Some("sk-sluice-not-a-key"), &json!({"prompt_text": "hi"}))
        .await;
    assert_eq!(status, 401);
    // A run in a class the student does not belong to: 403.
    let (other, _) = env.store.create_user("other teacher").await.unwrap();
    let elsewhere = env
        .store
        .create_class("elsewhere", other.id, &["gpt".to_string()], "gpt")
        .await
        .unwrap();
    let status = env
        .http
        .post(env.url(&format!(
            "/user/practice/sessions/run?class_id={}",
            elsewhere.id
        )))
        .bearer_auth(&env.key)
        .json(&json!({"prompt_text": "hi", "model_names": ["gpt"]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 403);
    let metrics = env
        .http
        .get(env.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let run = |code: &str| {
        format!(
            "sluice_http_requests_total{{route=\"/user/practice/sessions/run\",code=\"{code}\"}}"
        )
    };
    for code in ["42200", "50200", "40100", "40300"] {
        assert!(metrics.contains(&run(code)), "{code}: {metrics}");
    }
    assert!(!metrics.contains(&run("50000")), "{metrics}");
}

/// A writer the test reads back: what the log said.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bad keys on the practice routes are logged under the same cap as every
/// other route's rejections: 200 bad keys in well under a second give about
/// `log_requests_per_sec` lines, not 200.
#[tokio::test]
async fn bad_practice_keys_are_logged_under_the_cap() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    // A current-thread runtime: the server's tasks log on this thread.
    let _guard = tracing::subscriber::set_default(subscriber);
    let env = Env::start(Some(5)).await;
    let started = Instant::now();
    for _ in 0..200 {
        let response = env
            .http
            .get(env.url("/user/practice/sessions"))
            .bearer_auth("sk-sluice-not-a-key")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines = log
        .lines()
        .filter(|l| l.contains("invalid or revoked practice key"))
        .count();
    // The bucket holds 5 and refills 5 a second (shared with the request lines).
    let allowed = 5 + (5.0 * started.elapsed().as_secs_f64()).ceil() as usize;
    assert!(
        (1..=allowed.min(50)).contains(&lines),
        "{lines} lines (at most {allowed}):\n{log}"
    );
}
