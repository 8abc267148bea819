//! One big upload while everyone else works (issue 23): a student uploads
//! `UPLOAD_MIB` (default 8) MiB of varied Hangul to a knowledge base while
//! `UPLOAD_USERS` (default 8) other students run practice turns (one model,
//! the scripted fake answering at once) and write (create and change agents),
//! each in a loop, until the upload has been answered.
//!
//! One process on 127.0.0.1 holds the fake upstream, sluice's whole app with
//! the practice store on an SQLite file in WAL mode (as `sluice serve` opens
//! it) and the clients. It reports the upload's status, size, passages and
//! time; the other users' requests made while it was indexed, by kind: count,
//! statuses, p50 / p99 / max latency; the first search after it (time,
//! whether the probe word is found), on the server that took the upload and
//! on a second store opened on the same file, as another replica would, whose
//! index is rebuilt from the database. It exits non-zero when another user's
//! request gets a 5xx, the p99 is 1 s or more, the upload fails, or a search
//! does not find it.
//!
//! ```text
//! cargo bench -p sluice-http --bench upload_load
//! UPLOAD_MIB=8 UPLOAD_USERS=8 cargo bench -p sluice-http --bench upload_load
//! ```
//!
//! Under `cargo test --benches` (no `--bench` argument) it uploads 1 MiB.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_practice::Store;
use sluice_practice::provider::ProviderKind;
use tokio::sync::Mutex;

#[path = "../../practice/tests/support.rs"]
#[allow(dead_code)]
mod fake;
#[path = "../tests/harness.rs"]
#[allow(dead_code)]
mod harness;

use harness::{PracticeServer, StoreKind};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// About `bytes` of varied Hangul: words of 2 to 4 random syllables (a fixed
/// seed), in sentences and paragraphs, so that it has as many distinct terms
/// as a real Korean document.
fn varied_hangul(bytes: usize) -> String {
    let mut state: u64 = 0x2300_0023;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut text = String::with_capacity(bytes + 16);
    let mut i = 0u64;
    while text.len() < bytes {
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
        i += 1;
    }
    text
}

/// The one test server (`tests/harness.rs`) with `alpha` only, on an SQLite
/// file, and `users + 1` students in one class: the first uploads.
struct Env {
    server: PracticeServer,
    db: PathBuf,
    uploader: String,
    uploader_id: i64,
    others: Vec<String>,
    class_id: i64,
}

async fn start(users: usize) -> Env {
    let server = PracticeServer::builder()
        .models(&[("alpha", ProviderKind::Openai)])
        .configure(|_, config| config.max_concurrency = 64)
        .store(StoreKind::File)
        .class("upload")
        .students((0..=users).map(|i| format!("student{i}")))
        .client(|client| {
            client
                .timeout(Duration::from_secs(300))
                .pool_max_idle_per_host(64)
        })
        .start()
        .await;
    let others = server.students[1..]
        .iter()
        .map(|(_, key)| key.clone())
        .collect();
    Env {
        db: server.db_path(),
        uploader: server.key.clone(),
        uploader_id: server.user_id,
        others,
        class_id: server.class_id,
        server,
    }
}

impl Env {
    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// One request as `key`: status, latency, body.
    async fn send(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Duration, Value) {
        let mut request = self
            .server
            .http
            .request(method, self.url(path))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let started = Instant::now();
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.json().await.unwrap_or(Value::Null);
                (status, started.elapsed(), body)
            }
            Err(_) => (0, started.elapsed(), Value::Null),
        }
    }
}

/// Latencies and statuses of one kind of request.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, usize>,
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// One user's loop until `done`: a run, an agent created, the agent changed.
async fn work(
    env: &Env,
    key: &str,
    done: &AtomicBool,
    tallies: &Mutex<BTreeMap<&'static str, Tally>>,
) {
    let run_path = format!("/user/practice/sessions/run?class_id={}", env.class_id);
    let mut n = 0;
    while !done.load(Ordering::SeqCst) {
        let (status, took, _) = env
            .send(
                key,
                reqwest::Method::POST,
                &run_path,
                Some(json!({"prompt_text": format!("질문 {n}")})),
            )
            .await;
        record(tallies, "practice run", status, took).await;
        let (status, took, agent) = env
            .send(
                key,
                reqwest::Method::POST,
                "/user/practice/agents",
                Some(json!({"name": format!("agent {n}"), "instructions": "짧게 답하세요."})),
            )
            .await;
        record(tallies, "create agent", status, took).await;
        if let Some(id) = agent["id"].as_i64() {
            let (status, took, _) = env
                .send(
                    key,
                    reqwest::Method::PATCH,
                    &format!("/user/practice/agents/{id}"),
                    Some(json!({"instructions": "자세히 답하세요."})),
                )
                .await;
            record(tallies, "change agent", status, took).await;
        }
        n += 1;
    }
}

async fn record(
    tallies: &Mutex<BTreeMap<&'static str, Tally>>,
    kind: &'static str,
    status: u16,
    took: Duration,
) {
    let mut tallies = tallies.lock().await;
    let tally = tallies.entry(kind).or_default();
    tally.latencies.push(took);
    *tally.statuses.entry(status).or_default() += 1;
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let mib = env_u64("UPLOAD_MIB", if quick { 1 } else { 8 }) as usize;
    let users = env_u64("UPLOAD_USERS", 8) as usize;
    let env = Arc::new(start(users).await);
    // The limit is 8 MiB exactly: leave room for the last word.
    let text = varied_hangul((mib << 20).min(sluice_practice::MAX_DOCUMENT_BYTES) - 16);
    let probe = text
        .split_whitespace()
        .nth(text.split_whitespace().count() * 3 / 4)
        .unwrap()
        .trim_end_matches('.')
        .to_string();
    let (status, _, kb) = env
        .send(
            &env.uploader,
            reqwest::Method::POST,
            "/user/practice/knowledge",
            Some(json!({"name": "big"})),
        )
        .await;
    assert_eq!(status, 201, "{kb}");
    let kb = kb["id"].as_i64().unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let tallies = Arc::new(Mutex::new(BTreeMap::new()));
    let workers: Vec<_> = (0..users)
        .map(|i| {
            let (env, done, tallies) = (Arc::clone(&env), Arc::clone(&done), Arc::clone(&tallies));
            tokio::spawn(async move {
                let key = env.others[i].clone();
                work(&env, &key, &done, &tallies).await;
            })
        })
        .collect();
    // The others warm up first, so the upload lands in the middle of their work.
    tokio::time::sleep(Duration::from_secs(1)).await;
    tallies.lock().await.clear();
    let started = Instant::now();
    let upload = env
        .server
        .http
        .post(env.url(&format!(
            "/user/practice/knowledge/{kb}/documents?file_name=big.txt"
        )))
        .bearer_auth(&env.uploader)
        .body(text.clone())
        .send()
        .await
        .unwrap();
    let upload_status = upload.status().as_u16();
    let uploaded: Value = upload.json().await.unwrap_or(Value::Null);
    let upload_took = started.elapsed();
    done.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let search_started = Instant::now();
    let (search_status, _, hits) = env
        .send(
            &env.uploader,
            reqwest::Method::POST,
            "/user/practice/knowledge/search",
            Some(json!({"knowledge_ids": [kb], "query": probe, "k": 3})),
        )
        .await;
    let search_took = search_started.elapsed();
    let found = hits["items"][0]["passage"]["text"]
        .as_str()
        .is_some_and(|t| t.contains(&probe));
    let (_, second_took, _) = env
        .send(
            &env.uploader,
            reqwest::Method::POST,
            "/user/practice/knowledge/search",
            Some(json!({"knowledge_ids": [kb], "query": probe, "k": 3})),
        )
        .await;
    // Another replica: its own store on the same file, nothing cached.
    let replica = Store::open_file(&env.db).await.unwrap();
    let replica_started = Instant::now();
    let replica_hits = replica
        .search(env.uploader_id, &[kb], &probe, 3)
        .await
        .unwrap();
    let replica_took = replica_started.elapsed();
    let replica_found = replica_hits
        .first()
        .is_some_and(|h| h.passage.text.contains(&probe));

    println!(
        "upload: {} bytes of varied Hangul, HTTP {upload_status}, {} passages, {:.1} s; {users} other users meanwhile",
        text.len(),
        uploaded["items"][0]["passages"],
        upload_took.as_secs_f64()
    );
    println!(
        "| request (other users, during the upload) | count | statuses | p50 ms | p99 ms | max ms |"
    );
    println!("|---|--:|---|--:|--:|--:|");
    let mut failed = upload_status != 201 || !found || !replica_found || search_status != 200;
    let tallies = tallies.lock().await;
    let mut all: Vec<Duration> = Vec::new();
    for (kind, tally) in tallies.iter() {
        let mut sorted = tally.latencies.clone();
        sorted.sort();
        all.extend_from_slice(&sorted);
        let statuses: Vec<String> = tally
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}×{n}"))
            .collect();
        println!(
            "| {kind} | {} | {} | {:.1} | {:.1} | {:.1} |",
            sorted.len(),
            statuses.join(", "),
            quantile(&sorted, 0.5).as_secs_f64() * 1e3,
            quantile(&sorted, 0.99).as_secs_f64() * 1e3,
            sorted.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
        if tally.statuses.keys().any(|s| *s >= 500 || *s == 0) {
            failed = true;
        }
    }
    all.sort();
    let p99 = quantile(&all, 0.99);
    println!(
        "all other users' requests: {}, p99 {:.1} ms; first search after the upload: HTTP {search_status}, {:.1} ms, probe found: {found}; second search {:.1} ms",
        all.len(),
        p99.as_secs_f64() * 1e3,
        search_took.as_secs_f64() * 1e3,
        second_took.as_secs_f64() * 1e3
    );
    println!(
        "first search on another replica (index rebuilt from the database): {:.1} ms, probe found: {replica_found}",
        replica_took.as_secs_f64() * 1e3
    );
    if p99 >= Duration::from_secs(1) {
        failed = true;
    }
    if failed {
        eprintln!(
            "upload_load: FAILED (a 5xx, p99 >= 1 s, a failed upload or a search that does not find it)"
        );
        std::process::exit(1);
    }
}
