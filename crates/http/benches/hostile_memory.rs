//! Hostile upstreams against memory (issue 23): every reply shape that used
//! to be buffered whole, through the gateway and practice runs, one at a time
//! and eight at once, with the default reading limits
//! (`max_reply_bytes` 4 MiB, `max_line_bytes` 4 MiB, `max_stream_bytes` 64 MiB).
//!
//! One process on 127.0.0.1 holds the hostile fake upstream (both wire
//! formats, from `crates/practice/tests/support.rs`), sluice's whole app and
//! the clients. Before each scenario the process's peak resident memory is
//! reset (`/proc/self/clear_refs`), so each scenario reports its own peak
//! (`VmHWM`) above the resident memory it started from. Meanwhile a watcher
//! calls `/healthz` and a well-behaved model through the gateway every 50 ms:
//! the scenario fails if any of those fails or takes over a second.
//!
//! Every hostile upstream offers `HOSTILE_OFFER` bytes (default 1 GiB; it
//! stops when sluice hangs up). The bench exits non-zero when a scenario's
//! client does not get the error naming the limit, a watcher call fails, or a
//! peak passes [`BOUND_MIB`] above the start.
//!
//! ```text
//! cargo bench -p sluice-http --bench hostile_memory
//! HOSTILE_OFFER=1073741824 cargo bench -p sluice-http --bench hostile_memory
//! ```
//!
//! Under `cargo test --benches` (no `--bench` argument) each upstream offers 65 MiB,
//! just past the 64 MiB stream limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_practice::provider::ProviderKind;
use tokio::io::AsyncWriteExt;

#[path = "../../practice/tests/support.rs"]
#[allow(dead_code)]
mod fake;
#[path = "../tests/harness.rs"]
#[allow(dead_code)]
mod harness;

use fake::{Behavior, Hostile};
use harness::PracticeServer;

/// The most any scenario may add to resident memory: eight calls at once
/// (`max_concurrency`), each holding at most about three times
/// `max_reply_bytes` (the bytes read, the parsed text, its rendering for the
/// client) — 8 × 3 × 4 MiB = 96 MiB — plus allocator slack.
const BOUND_MIB: f64 = 128.0;

/// (VmRSS, VmHWM) of this process, in MiB.
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

/// Resets VmHWM to the current VmRSS (Linux: `5` in `clear_refs`).
fn reset_peak() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("cannot reset the peak ({e}): peaks are since the start");
    }
}

/// The one test server (`tests/harness.rs`) with `gpt`, `hcx` (CLOVA) and
/// `calm`, all with the default limits: the bound follows from what is
/// documented.
async fn start() -> PracticeServer {
    PracticeServer::builder()
        .models(&[
            ("gpt", ProviderKind::Openai),
            ("hcx", ProviderKind::Clova),
            ("calm", ProviderKind::Openai),
        ])
        .class("hostile")
        .client(|client| client.timeout(Duration::from_secs(60)))
        .start()
        .await
}

/// What one hostile call sends and must get back.
#[derive(Clone, Copy)]
enum Call {
    /// A gateway call (OpenAI route, or CLOVA's when `clova`).
    Gateway { model: &'static str, stream: bool },
    /// A practice run on the model, blocking or streamed.
    Run { model: &'static str, stream: bool },
    /// A streamed gateway call whose client sends the request and never reads.
    NeverReads { hold: Duration },
}

/// Makes `call` once; `Ok` when the client got the error naming `limit`
/// (or, for [`Call::NeverReads`], held the connection for its time).
async fn call(env: &PracticeServer, call: Call, limit: &str) -> Result<(), String> {
    let (status, body) = match call {
        Call::NeverReads { hold } => {
            let mut client = tokio::net::TcpStream::connect(env.addr).await.unwrap();
            let body = json!({"model": "gpt", "stream": true, "messages": [{"role": "user", "content": "hi"}]})
                .to_string();
            let request = format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: sluice\r\n\
                 content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            client.write_all(request.as_bytes()).await.unwrap();
            tokio::time::sleep(hold).await;
            return Ok(());
        }
        Call::Gateway { model, stream } => {
            let request = if model == "hcx" {
                let mut r = env
                    .http
                    .post(format!("http://{}/v3/chat-completions/hcx", env.addr))
                    .json(&json!({"messages": [{"role": "user", "content": "hi"}]}));
                if stream {
                    r = r.header("accept", "text/event-stream");
                }
                r
            } else {
                env.http
                    .post(format!("http://{}/v1/chat/completions", env.addr))
                    .json(&json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
            };
            let response = request.send().await.map_err(|e| e.to_string())?;
            (
                response.status().as_u16(),
                response.text().await.map_err(|e| e.to_string())?,
            )
        }
        Call::Run { model, stream } => {
            let mut request = env
                .http
                .post(format!(
                    "http://{}/user/practice/sessions/run?class_id={}",
                    env.addr, env.class_id
                ))
                .bearer_auth(&env.key)
                .json(&json!({"prompt_text": "hi", "model_names": [model]}));
            if stream {
                request = request.header("accept", "text/event-stream");
            }
            let response = request.send().await.map_err(|e| e.to_string())?;
            (
                response.status().as_u16(),
                response.text().await.map_err(|e| e.to_string())?,
            )
        }
    };
    if body.contains(limit) && body.contains("too_large") {
        Ok(())
    } else {
        let cut: String = body.chars().take(300).collect();
        Err(format!("HTTP {status} without {limit}: {cut}"))
    }
}

/// Calls `/healthz` and the well-behaved model every 50 ms until `stop`:
/// (calls, failures, slowest).
async fn watch(env: &PracticeServer, stop: &AtomicBool) -> (u64, u64, Duration) {
    let (mut calls, mut failures, mut slowest) = (0, 0, Duration::ZERO);
    while !stop.load(Ordering::SeqCst) {
        for path in ["/healthz", "/v1/chat/completions"] {
            let started = Instant::now();
            let request = if path == "/healthz" {
                env.http.get(format!("http://{}{path}", env.addr))
            } else {
                env.http.post(format!("http://{}{path}", env.addr)).json(
                    &json!({"model": "calm", "messages": [{"role": "user", "content": "hi"}]}),
                )
            };
            let ok = match request.timeout(Duration::from_secs(5)).send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            let took = started.elapsed();
            calls += 1;
            if !ok || took > Duration::from_secs(1) {
                failures += 1;
            }
            slowest = slowest.max(took);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (calls, failures, slowest)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let offer: u64 = std::env::var("HOSTILE_OFFER")
        .ok()
        .and_then(|v| v.parse().ok())
        // Quick: just past the largest default limit (`max_stream_bytes`,
        // 64 MiB), so that every scenario reaches the limit it names.
        .unwrap_or(if quick { 65 << 20 } else { 1 << 30 });
    let env = Arc::new(start().await);
    let drip = Behavior::Hostile {
        shape: Hostile::Stream,
        bytes: offer,
        piece: 16 << 10,
        pause: Duration::from_millis(1),
    };
    let hostile = |shape| Behavior::Hostile {
        shape,
        bytes: offer,
        piece: 64 << 10,
        pause: Duration::ZERO,
    };
    // (name, model queued, behavior, call, limit named, at once)
    let scenarios: Vec<(&str, &str, Behavior, Call, &str, usize)> = vec![
        (
            "gateway: JSON body",
            "gpt",
            hostile(Hostile::Body),
            Call::Gateway {
                model: "gpt",
                stream: false,
            },
            "max_reply_bytes",
            1,
        ),
        (
            "gateway: CLOVA JSON body",
            "hcx",
            hostile(Hostile::Body),
            Call::Gateway {
                model: "hcx",
                stream: false,
            },
            "max_reply_bytes",
            1,
        ),
        (
            "gateway: endless stream",
            "gpt",
            hostile(Hostile::Stream),
            Call::Gateway {
                model: "gpt",
                stream: true,
            },
            "max_reply_bytes",
            1,
        ),
        (
            "gateway: line without newline",
            "gpt",
            hostile(Hostile::Line),
            Call::Gateway {
                model: "gpt",
                stream: true,
            },
            "max_line_bytes",
            1,
        ),
        (
            "gateway: keep-alives, no text",
            "gpt",
            hostile(Hostile::KeepAlive),
            Call::Gateway {
                model: "gpt",
                stream: true,
            },
            "max_stream_bytes",
            1,
        ),
        (
            "gateway: slow drip (16 KiB/ms)",
            "gpt",
            drip.clone(),
            Call::Gateway {
                model: "gpt",
                stream: true,
            },
            "max_reply_bytes",
            1,
        ),
        (
            "gateway: client never reads (5 s)",
            "gpt",
            hostile(Hostile::Stream),
            Call::NeverReads {
                hold: Duration::from_secs(5),
            },
            "",
            1,
        ),
        (
            "practice run: JSON body",
            "gpt",
            hostile(Hostile::Body),
            Call::Run {
                model: "gpt",
                stream: false,
            },
            "max_reply_bytes",
            1,
        ),
        (
            "practice run streamed: endless stream",
            "gpt",
            hostile(Hostile::Stream),
            Call::Run {
                model: "gpt",
                stream: true,
            },
            "max_reply_bytes",
            1,
        ),
        (
            "8 at once, gateway: JSON body",
            "gpt",
            hostile(Hostile::Body),
            Call::Gateway {
                model: "gpt",
                stream: false,
            },
            "max_reply_bytes",
            8,
        ),
        (
            "8 at once, gateway: endless stream",
            "gpt",
            hostile(Hostile::Stream),
            Call::Gateway {
                model: "gpt",
                stream: true,
            },
            "max_reply_bytes",
            8,
        ),
        (
            "8 at once, gateway: line without newline",
            "gpt",
            hostile(Hostile::Line),
            Call::Gateway {
                model: "gpt",
                stream: true,
            },
            "max_line_bytes",
            8,
        ),
        (
            "8 at once, client never reads (5 s)",
            "gpt",
            hostile(Hostile::Stream),
            Call::NeverReads {
                hold: Duration::from_secs(5),
            },
            "",
            8,
        ),
        (
            "8 at once, practice run: JSON body",
            "gpt",
            hostile(Hostile::Body),
            Call::Run {
                model: "gpt",
                stream: false,
            },
            "max_reply_bytes",
            8,
        ),
    ];
    println!(
        "hostile upstreams, {} MiB offered each; default limits; peak = VmHWM since the scenario began",
        offer >> 20
    );
    println!(
        "| scenario | calls | limit named | upstream bytes read (MiB) | wall (s) | RSS before (MiB) | peak (MiB) | peak - before | watcher calls / failed / slowest |"
    );
    println!("|---|--:|---|--:|--:|--:|--:|--:|---|");
    let mut failed = false;
    for (name, model, behavior, kind, limit, at_once) in scenarios {
        for _ in 0..at_once {
            env.fake.push(model, behavior.clone());
        }
        // Let the allocator return what the last scenario freed.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (before, _) = memory();
        reset_peak();
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (env, stop) = (Arc::clone(&env), Arc::clone(&stop));
            tokio::spawn(async move { watch(&env, &stop).await })
        };
        let read_before = env.fake.hostile_bytes();
        let started = Instant::now();
        let calls: Vec<_> = (0..at_once)
            .map(|_| {
                let env = Arc::clone(&env);
                let limit = limit.to_string();
                tokio::spawn(async move { call(&env, kind, &limit).await })
            })
            .collect();
        let mut errors = Vec::new();
        for c in calls {
            if let Err(e) = c.await.unwrap() {
                errors.push(e);
            }
        }
        let wall = started.elapsed();
        // A never-reading client's call ends when the client goes away.
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::SeqCst);
        let (watched, watch_failed, slowest) = watcher.await.unwrap();
        let (_, peak) = memory();
        let read = (env.fake.hostile_bytes() - read_before) as f64 / (1 << 20) as f64;
        let growth = peak - before;
        println!(
            "| {name} | {at_once} | {} | {read:.1} | {:.2} | {before:.1} | {peak:.1} | {growth:.1} | {watched} / {watch_failed} / {} ms |",
            if limit.is_empty() {
                "(none: held)"
            } else {
                limit
            },
            wall.as_secs_f64(),
            slowest.as_millis()
        );
        if !errors.is_empty() {
            eprintln!(
                "{name}: {} calls without the error: {}",
                errors.len(),
                errors[0]
            );
            failed = true;
        }
        if watch_failed > 0 {
            eprintln!("{name}: {watch_failed} of {watched} watcher calls failed or took over 1 s");
            failed = true;
        }
        if growth > BOUND_MIB {
            eprintln!(
                "{name}: peak {growth:.1} MiB above the start, over the bound of {BOUND_MIB} MiB"
            );
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
