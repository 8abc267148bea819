//! Load benchmark: practice runs (`POST /user/practice/sessions/run`) with
//! three models each against a fake upstream that answers after a fixed delay.
//!
//! The point it measures: many runs at once must each take about one reply
//! delay (the three models are called concurrently, and runs do not queue
//! behind each other), and what sluice adds on top of the slowest model —
//! authentication, validation, prompt assembly, the router, trimming, storing
//! the turn — should stay small.
//!
//! Everything runs in this process on 127.0.0.1: the fake upstream (from
//! `crates/practice/tests/support.rs`) and the client on one Tokio runtime,
//! sluice on another whose threads are named `sluice-srv`, so that sluice's own
//! CPU time can be read per thread (with sqlx's SQLite connection threads)
//! from `/proc/self/task/*/schedstat`: the *CPU per run* column, sluice's own
//! work per run whatever the queueing on a machine with few cores. For each store (an SQLite file in WAL mode, the default of a
//! real deployment, then in-memory SQLite) it warms up, then
//!
//! * **sequential**: a few runs one at a time, the overhead without contention;
//! * **burst**: `PRACTICE_LOAD_RUNS` runs fired at once, right after a
//!   sequential warm-up (so the store's pool holds one connection, as after a
//!   quiet spell; `PRACTICE_LOAD_WARM_BURST=1` warms with a burst instead);
//! * **sustained**: `PRACTICE_LOAD_ROUNDS` rounds of that many concurrent runs,
//!   one round after the other, for runs/s;
//!
//! and reports each run's wall latency, and its overhead: the latency minus the
//! slowest model's `latency_ms` from the response. The overhead is split with
//! the fake's arrival times into *before* (from sending the run until the last
//! model's request reached the upstream) and *after* (from the last reply
//! being written until the client had the answer: reading the replies, storing
//! the turn, writing the response).
//!
//! Every response is checked (201, three results without error, the scripted
//! answers), so a broken path cannot look fast; the process fails when the
//! median run latency exceeds twice the reply delay (runs serialized).
//!
//! ```text
//! cargo bench -p sluice-http --bench practice_load
//! PRACTICE_LOAD_RUNS=50 PRACTICE_LOAD_ROUNDS=5 PRACTICE_LOAD_DELAY_MS=200 PRACTICE_LOAD_WORKERS=2 \
//!     cargo bench -p sluice-http --bench practice_load
//! ```
//!
//! Under `cargo test --benches` (no `--bench` argument) it runs a quick check
//! instead: the in-memory store only (its latency does not hang on the disk),
//! one burst and one sustained round, in about two seconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_http::Limits;
use sluice_practice::Store;
use sluice_practice::provider::ProviderKind;
use tokio::sync::Barrier;

#[path = "../../practice/tests/support.rs"]
#[allow(dead_code)]
mod fake;
#[path = "../tests/harness.rs"]
#[allow(dead_code)]
mod harness;

use fake::{Behavior, Script};
use harness::{PracticeServer, StoreKind, TempDir};

/// The models of every run: two OpenAI-compatible, one CLOVA.
const MODELS: [(&str, ProviderKind); 3] = [
    ("alpha", ProviderKind::Openai),
    ("beta", ProviderKind::Openai),
    ("gamma", ProviderKind::Clova),
];
/// Sequential runs before measuring.
const WARM_UP: usize = 3;
/// Runs one at a time after the warm-up: the overhead without contention.
const SEQUENTIAL: usize = 5;
/// The thread name of sluice's runtime (its workers and blocking threads).
const SERVER_THREADS: &str = "sluice-srv";
/// The thread name of sqlx's SQLite connection workers (`comm` is cut at 15
/// bytes: `sqlx-sqlite-wor`).
const SQLITE_THREADS: &str = "sqlx-sqlite";

/// The CPU time sluice's threads have run so far, in nanoseconds: the server
/// runtime's threads and the store's SQLite connection threads, summed from
/// `/proc/self/task/*/schedstat` (nanoseconds, where `stat` counts 10 ms
/// ticks). `None` where there is no `/proc` (not Linux). A thread that exits
/// between two readings takes its time with it, so a phase's figure can only
/// be too low by what such threads ran; none exit within a phase here (the
/// pool keeps its connections, the runtime its workers).
fn sluice_cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue; // the thread exited meanwhile
        };
        if comm.starts_with(SERVER_THREADS) || comm.starts_with(SQLITE_THREADS) {
            let Ok(stat) = std::fs::read_to_string(dir.join("schedstat")) else {
                continue;
            };
            total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

/// Each provider's `max_concurrency`: above the runs in flight, so that the
/// semaphore never queues a call.
const MAX_CONCURRENCY: usize = 64;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The answer the fake gives `model`.
fn answer(model: &str) -> String {
    format!("{model} answers: TCP is a phone call, UDP is a postcard.")
}

/// A prompt a student might send, tagged so that the fake's requests can be
/// matched to the run.
fn prompt(tag: &str) -> String {
    format!(
        "[run {tag}] Explain the difference between TCP and UDP in simple words, \
         with one everyday example of each and when a game would pick UDP."
    )
}

/// The tag of a request the fake received (`[run TAG]` in its messages).
fn tag_of(body: &Value) -> Option<String> {
    let text = body.to_string();
    let start = text.find("[run ")? + "[run ".len();
    let end = start + text[start..].find(']')?;
    Some(text[start..end].to_string())
}

/// The one test server (`tests/harness.rs`) on `server_runtime` over `store`,
/// with the three models each answering `replies_per_model` times after
/// `delay`, and room for `runs` runs at once.
async fn start(
    server_runtime: &tokio::runtime::Handle,
    store: Store,
    replies_per_model: usize,
    delay: Duration,
    runs: usize,
) -> PracticeServer {
    let mut script = Script::new();
    for (model, _) in MODELS {
        for _ in 0..replies_per_model {
            script = script.on(model, Behavior::reply(&answer(model)).with_delay(delay));
        }
    }
    let defaults = Limits::default();
    PracticeServer::builder()
        .script(script)
        // Every call of every run in flight at once has its own connection.
        .fake_connections(4 * MODELS.len() * runs.max(16))
        .models(&MODELS)
        .configure(move |_, config| {
            config.max_concurrency = MAX_CONCURRENCY.max(runs);
            // A failed call shows as an error result, not as a hidden retry.
            config.max_retries = 0;
            config.timeout_ms = 20_000;
        })
        .store(StoreKind::Given(store))
        .class("load")
        .sample_router()
        .state(move |state| {
            state.limits(Limits {
                concurrency_limit: defaults.concurrency_limit.max(2 * runs),
                ..defaults
            })
        })
        .warm_up()
        .runtime(server_runtime.clone())
        .start()
        .await
}

/// One run as the client saw it.
struct Run {
    tag: String,
    started: Instant,
    latency: Duration,
    /// The slowest model's `latency_ms`.
    slowest_model_ms: i64,
}

/// Sends one run and checks the answer.
async fn run_once(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    tag: String,
    barrier: Option<&Barrier>,
) -> Run {
    let body = json!({
        "prompt_text": prompt(&tag),
        "model_names": MODELS.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
    })
    .to_string();
    let request = http
        .post(url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body);
    if let Some(barrier) = barrier {
        barrier.wait().await;
    }
    let started = Instant::now();
    let response = request.send().await.expect("send the run");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("read the answer");
    let latency = started.elapsed();
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert_eq!(
        status,
        201,
        "run {tag}: {}",
        String::from_utf8_lossy(&bytes)
    );
    let results = value["results"].as_array().expect("results");
    assert_eq!(results.len(), MODELS.len(), "run {tag}: {value}");
    let mut slowest_model_ms = 0;
    for (result, (model, _)) in results.iter().zip(MODELS) {
        assert_eq!(result["model_name"], model, "run {tag}: {result}");
        assert!(result["error"].is_null(), "run {tag}: {result}");
        assert_eq!(
            result["response_text"],
            answer(model),
            "run {tag}: {result}"
        );
        let ms = result["latency_ms"].as_i64().expect("latency_ms");
        slowest_model_ms = slowest_model_ms.max(ms);
    }
    Run {
        tag,
        started,
        latency,
        slowest_model_ms,
    }
}

/// `n` runs at once, released together; returns them and the wall time from
/// the first send to the last answer.
async fn burst(
    env: &PracticeServer,
    http: &reqwest::Client,
    n: usize,
    phase: &str,
) -> (Vec<Run>, Duration) {
    let url = Arc::new(format!(
        "http://{}/user/practice/sessions/run?class_id={}",
        env.addr, env.class_id
    ));
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let http = http.clone();
            let url = Arc::clone(&url);
            let key = env.key.clone();
            let barrier = Arc::clone(&barrier);
            let tag = format!("{phase}-{i}");
            tokio::spawn(async move { run_once(&http, &url, &key, tag, Some(&barrier)).await })
        })
        .collect();
    let mut runs = Vec::with_capacity(n);
    for task in tasks {
        runs.push(task.await.expect("a run panicked"));
    }
    let first = runs.iter().map(|r| r.started).min().expect("runs");
    let last = runs
        .iter()
        .map(|r| r.started + r.latency)
        .max()
        .expect("runs");
    (runs, last - first)
}

/// The `p`-quantile of `values` (sorted here).
fn pct(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 * p) as usize).min(values.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Where the overhead of each run went, from the fake's arrival times.
struct Split {
    /// Send → the last model's request complete at the upstream.
    before: Vec<f64>,
    /// The last reply written → the answer at the client.
    after: Vec<f64>,
}

fn split(env: &PracticeServer, runs: &[Run], delay: Duration) -> Split {
    let mut arrivals: HashMap<String, Vec<Instant>> = HashMap::new();
    for request in env.fake.requests() {
        if let Some(tag) = tag_of(&request.body) {
            arrivals.entry(tag).or_default().push(request.at.into_std());
        }
    }
    let mut split = Split {
        before: Vec::new(),
        after: Vec::new(),
    };
    for run in runs {
        let at = &arrivals[&run.tag];
        assert_eq!(at.len(), MODELS.len(), "run {}: upstream calls", run.tag);
        let last = *at.iter().max().expect("arrivals");
        let before = last.saturating_duration_since(run.started);
        split.before.push(ms(before));
        split
            .after
            .push(ms(run.latency.saturating_sub(before + delay)));
    }
    split
}

/// One line of the results table.
struct Row {
    store: &'static str,
    phase: String,
    runs: usize,
    wall: Duration,
    latencies: Vec<f64>,
    overheads: Vec<f64>,
    split: Split,
    /// Sluice's CPU time per run in this phase, in milliseconds.
    cpu_per_run: Option<f64>,
}

impl Row {
    fn new(
        store: &'static str,
        phase: String,
        runs: &[Run],
        wall: Duration,
        split: Split,
        cpu: Cpu,
    ) -> Row {
        Row {
            cpu_per_run: cpu.per_run(runs.len()),
            store,
            phase,
            runs: runs.len(),
            wall,
            latencies: runs.iter().map(|r| ms(r.latency)).collect(),
            overheads: runs
                .iter()
                .map(|r| ms(r.latency) - r.slowest_model_ms as f64)
                .collect(),
            split,
        }
    }
}

/// Sluice's CPU time from the start of a phase.
struct Cpu(Option<u64>);

impl Cpu {
    fn start() -> Cpu {
        Cpu(sluice_cpu_ns())
    }

    /// Milliseconds of sluice's CPU time per run since [`Cpu::start`].
    fn per_run(&self, runs: usize) -> Option<f64> {
        let spent = sluice_cpu_ns()?.checked_sub(self.0?)?;
        Some(spent as f64 / 1e6 / runs.max(1) as f64)
    }
}

/// Warms up, then measures the burst and the sustained phase on `store`.
async fn measure(
    server_runtime: &tokio::runtime::Handle,
    name: &'static str,
    store: Store,
    runs: usize,
    rounds: usize,
    delay: Duration,
    warm_pool: bool,
) -> Vec<Row> {
    let warm_burst = if warm_pool { runs } else { 0 };
    let total = WARM_UP + warm_burst + SEQUENTIAL + runs * (1 + rounds);
    let env = start(server_runtime, store, total, delay, runs).await;
    let http = env.http.clone();
    let url = format!(
        "http://{}/user/practice/sessions/run?class_id={}",
        env.addr, env.class_id
    );
    for i in 0..WARM_UP {
        run_once(&http, &url, &env.key, format!("warm-{i}"), None).await;
    }
    if warm_pool {
        // Opens the store's pooled connections before the measured burst.
        burst(&env, &http, runs, "warm-burst").await;
    }
    let mut rows = Vec::new();

    let cpu = Cpu::start();
    let started = Instant::now();
    let mut sequential = Vec::with_capacity(SEQUENTIAL);
    for i in 0..SEQUENTIAL {
        sequential.push(run_once(&http, &url, &env.key, format!("seq-{i}"), None).await);
    }
    let wall = started.elapsed();
    let split_sequential = split(&env, &sequential, delay);
    rows.push(Row::new(
        name,
        format!("sequential: {SEQUENTIAL}, one at a time"),
        &sequential,
        wall,
        split_sequential,
        cpu,
    ));

    let cpu = Cpu::start();
    let (burst_runs, wall) = burst(&env, &http, runs, "burst").await;
    let split_burst = split(&env, &burst_runs, delay);
    rows.push(Row::new(
        name,
        format!("burst: {runs} at once"),
        &burst_runs,
        wall,
        split_burst,
        cpu,
    ));

    let cpu = Cpu::start();
    let started = Instant::now();
    let mut sustained = Vec::with_capacity(runs * rounds);
    for round in 0..rounds {
        let (round_runs, _) = burst(&env, &http, runs, &format!("r{round}")).await;
        sustained.extend(round_runs);
    }
    let wall = started.elapsed();
    let split_sustained = split(&env, &sustained, delay);
    rows.push(Row::new(
        name,
        format!("sustained: {rounds} × {runs}"),
        &sustained,
        wall,
        split_sustained,
        cpu,
    ));

    let calls = env.fake.requests().len();
    assert_eq!(
        calls,
        MODELS.len() * total,
        "one upstream call per model and run"
    );
    println!(
        "{name}: {calls} upstream calls, at most {} answered at once",
        env.fake.max_in_flight()
    );
    rows
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not.
    let full = std::env::args().any(|a| a == "--bench");
    let runs = env("PRACTICE_LOAD_RUNS", 50).max(1) as usize;
    let rounds = env("PRACTICE_LOAD_ROUNDS", if full { 5 } else { 1 }).max(1) as usize;
    let delay = Duration::from_millis(env("PRACTICE_LOAD_DELAY_MS", 200));
    let workers = env("PRACTICE_LOAD_WORKERS", 2).max(1) as usize;
    let warm_pool = env("PRACTICE_LOAD_WARM_BURST", 0) != 0;
    let runtime = |name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name(name)
            .enable_all()
            .build()
            .unwrap()
    };
    let client = runtime("load-client");
    let server = runtime(SERVER_THREADS);
    let handle = server.handle().clone();
    let started = Instant::now();
    let rows = client.block_on(async move {
        let mut rows = Vec::new();
        if full {
            let dir = TempDir::new("practice-load");
            let file = Store::open_file(dir.path().join("practice.db"))
                .await
                .unwrap();
            let name = "sqlite file (WAL)";
            rows.extend(measure(&handle, name, file, runs, rounds, delay, warm_pool).await);
        }
        let memory = Store::in_memory().await.unwrap();
        let name = "sqlite in-memory";
        rows.extend(measure(&handle, name, memory, runs, rounds, delay, warm_pool).await);
        rows
    });
    drop(client);
    drop(server);

    println!();
    println!(
        "practice runs: {} models per run, replies after {} ms, {workers} runtime workers \
         for sluice and {workers} for the fake and the client{}",
        MODELS.len(),
        ms(delay),
        if full { "" } else { "; quick mode" }
    );
    println!();
    println!(
        "| store | phase | runs | wall s | runs/s | p50 ms | p90 ms | max ms | overhead p50 ms | overhead p90 ms | before upstream p50/p90 ms | after reply p50/p90 ms | sluice CPU ms/run |"
    );
    println!("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let mut serialized = Vec::new();
    for mut row in rows {
        let p50 = pct(&mut row.latencies, 0.5);
        let p90 = pct(&mut row.latencies, 0.9);
        let max = pct(&mut row.latencies, 1.0);
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {} |",
            row.store,
            row.phase,
            row.runs,
            row.wall.as_secs_f64(),
            row.runs as f64 / row.wall.as_secs_f64(),
            p50,
            p90,
            max,
            pct(&mut row.overheads, 0.5),
            pct(&mut row.overheads, 0.9),
            pct(&mut row.split.before, 0.5),
            pct(&mut row.split.before, 0.9),
            pct(&mut row.split.after, 0.5),
            pct(&mut row.split.after, 0.9),
            row.cpu_per_run
                .map_or_else(|| "n/a".to_string(), |ms| format!("{ms:.2}")),
        );
        if p50 > 2.0 * ms(delay) {
            serialized.push(format!(
                "{} / {}: median run {p50:.0} ms > 2 × {} ms (median {:.0} ms before the \
                 upstream, {:.0} ms after the last reply)",
                row.store,
                row.phase,
                ms(delay),
                pct(&mut row.split.before, 0.5),
                pct(&mut row.split.after, 0.5),
            ));
        }
    }
    println!();
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    if !serialized.is_empty() {
        eprintln!(
            "runs took more than twice the reply delay (the models or the runs were \
             serialized, or sluice's own work queued):"
        );
        for line in &serialized {
            eprintln!("  {line}");
        }
        std::process::exit(1);
    }
}
