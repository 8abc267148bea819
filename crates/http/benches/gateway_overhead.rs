//! Sluice's own work per gateway call: chat completions forwarded to a fake
//! upstream on 127.0.0.1 that echoes at once, one call at a time, in each
//! wire format and path the gateway has (the client's own wire passed
//! through, a wire translated, the typed path; blocking and streamed).
//!
//! Sluice runs on its own Tokio runtime whose threads are named `sluice-srv`;
//! the fake upstream and the client run on another. The *CPU per call*
//! column is the CPU time of sluice's threads over the phase
//! (`/proc/self/task/*/schedstat`) divided by its calls: everything sluice
//! does for one call (HTTP in, key check, parsing, the model's switches, the
//! upstream request written and its answer read, the answer out), whatever
//! else the machine runs. *Latency* is the client's wall time per call,
//! upstream included (the echo answers at once, so it is mostly sluice and
//! loopback). Every answer is checked, so a broken path cannot look fast.
//!
//! ```text
//! cargo bench -p sluice-http --bench gateway_overhead
//! GATEWAY_CALLS=2000 GATEWAY_ROUNDS=5 cargo bench -p sluice-http --bench gateway_overhead
//! ```
//!
//! Rounds alternate the scenarios, and medians over rounds are printed, so
//! that two builds run one after the other are compared on like terms (the
//! file compiles against `tests/harness.rs` as it was before the one chat
//! flow of issue 22, so the old tree can run it unchanged). Under
//! `cargo test --benches` it runs a quick check of every scenario.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_http::ApiKeys;
use sluice_practice::provider::ProviderKind;

#[path = "../../practice/tests/support.rs"]
#[allow(dead_code)]
mod fake;
#[path = "../tests/harness.rs"]
#[allow(dead_code)]
mod harness;

use fake::Script;
use harness::PracticeServer;

const KEY: &str = "nv-gateway-bench-key";
/// The thread name of sluice's runtime.
const SERVER_THREADS: &str = "sluice-srv";

/// CPU nanoseconds run so far by the threads whose name starts with `prefix`.
fn cpu_ns(prefix: &str) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten() {
        let dir = task.expect("a task").path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if !comm.starts_with(prefix) {
            continue;
        }
        if let Ok(stat) = std::fs::read_to_string(dir.join("schedstat")) {
            total += stat
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One way through the gateway.
struct Scenario {
    name: &'static str,
    path: &'static str,
    body: Value,
    stream: bool,
}

fn history() -> Vec<Value> {
    let mut messages =
        vec![json!({"role": "system", "content": "You are a patient networking tutor."})];
    for i in 0..4 {
        messages.push(json!({"role": "user", "content": format!("Question {i}: how does TCP retransmit a lost segment, and what does UDP do instead?")}));
        messages.push(json!({"role": "assistant", "content": format!("Answer {i}: TCP waits for an acknowledgement and resends after a timeout or three duplicate ACKs; UDP does nothing.")}));
    }
    messages.push(json!({"role": "user", "content": "And why would a game pick UDP?"}));
    messages
}

fn scenarios() -> Vec<Scenario> {
    let messages = history();
    let openai = |model: &str, stream: bool| json!({"model": model, "messages": messages, "max_tokens": 128, "temperature": 0.5, "stream": stream});
    // CLOVA asks for a stream with its Accept header, not in the body.
    let clova = || json!({"messages": messages, "maxTokens": 128, "temperature": 0.5});
    vec![
        Scenario {
            name: "OpenAI wire to an OpenAI model",
            path: "/v1/chat/completions",
            body: openai("gpt", false),
            stream: false,
        },
        Scenario {
            name: "OpenAI wire to an OpenAI model, streamed",
            path: "/v1/chat/completions",
            body: openai("gpt", true),
            stream: true,
        },
        Scenario {
            name: "CLOVA v3 to a CLOVA model",
            path: "/v3/chat-completions/clova",
            body: clova(),
            stream: false,
        },
        Scenario {
            name: "CLOVA v3 to a CLOVA model, streamed",
            path: "/v3/chat-completions/clova",
            body: clova(),
            stream: true,
        },
        Scenario {
            name: "OpenAI wire to a CLOVA model (translated)",
            path: "/v1/chat/completions",
            body: openai("clova", false),
            stream: false,
        },
        Scenario {
            name: "CLOVA v1 to an OpenAI model (typed path)",
            path: "/v1/chat-completions/gpt",
            body: clova(),
            stream: false,
        },
        Scenario {
            name: "OpenAI wire, auto_trim and route_check",
            path: "/v1/chat/completions",
            body: openai("checked", false),
            stream: false,
        },
    ]
}

/// Sends one call and checks that an answer came back.
async fn call(server: &PracticeServer, scenario: &Scenario) {
    let mut request = server
        .http
        .post(server.url(scenario.path))
        .bearer_auth(KEY)
        .header("content-type", "application/json");
    if scenario.stream {
        request = request.header("accept", "text/event-stream");
    }
    let response = request
        .body(scenario.body.to_string())
        .send()
        .await
        .expect("sent");
    let status = response.status();
    let text = response.text().await.expect("read");
    assert!(status.is_success(), "{}: {status} {text}", scenario.name);
    let done = if scenario.stream {
        text.contains("[DONE]")
    } else {
        text.contains("\"content\"")
    };
    assert!(done, "{}: an incomplete answer: {text}", scenario.name);
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let calls = if quick {
        20
    } else {
        env("GATEWAY_CALLS", 1000)
    };
    let rounds = if quick { 1 } else { env("GATEWAY_ROUNDS", 5) };
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVER_THREADS)
        .enable_all()
        .build()
        .expect("server runtime");
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .expect("client runtime");
    client_runtime.block_on(async {
        let server = PracticeServer::builder()
            .script(Script::new())
            .models(&[
                ("gpt", ProviderKind::Openai),
                ("clova", ProviderKind::Clova),
                ("checked", ProviderKind::Openai),
            ])
            .configure(|name, config| {
                config.max_retries = 0;
                if name == "checked" {
                    config.auto_trim = true;
                    config.route_check = true;
                }
            })
            .sample_router()
            .state(|state| state.api_keys(ApiKeys::new([KEY])))
            .warm_up()
            .runtime(server_runtime.handle().clone())
            .start()
            .await;
        server.fake.stop_recording();
        let scenarios = scenarios();
        for scenario in &scenarios {
            for _ in 0..20.min(calls) {
                call(&server, scenario).await;
            }
        }
        // Per scenario, one (CPU µs per call, latency µs per call) per round.
        let mut figures = vec![Vec::new(); scenarios.len()];
        for _ in 0..rounds {
            for (i, scenario) in scenarios.iter().enumerate() {
                let cpu = cpu_ns(SERVER_THREADS);
                let started = Instant::now();
                for _ in 0..calls {
                    call(&server, scenario).await;
                }
                let wall = started.elapsed();
                let cpu = Duration::from_nanos(cpu_ns(SERVER_THREADS) - cpu);
                figures[i].push((
                    cpu.as_secs_f64() * 1e6 / calls as f64,
                    wall.as_secs_f64() * 1e6 / calls as f64,
                ));
            }
        }
        println!("{calls} calls per scenario and round, {rounds} rounds, medians over rounds");
        println!("| scenario | sluice CPU µs/call | latency µs/call |");
        println!("|---|--:|--:|");
        for (scenario, rows) in scenarios.iter().zip(&mut figures) {
            let median = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let cpu = median(rows.iter().map(|r| r.0).collect());
            let latency = median(rows.iter().map(|r| r.1).collect());
            println!("| {} | {cpu:.1} | {latency:.1} |", scenario.name);
        }
    });
}
