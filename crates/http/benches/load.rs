//! Load benchmark: the sliding-window endpoint against a minimal axum handler that
//! only parses and echoes the same JSON body, side by side in one run.
//!
//! Both servers run in this process on 127.0.0.1:0; a load loop of `LOAD_CONNS`
//! keep-alive HTTP/1.1 connections drives each scenario for `LOAD_SECS` seconds
//! and reports requests/s, p50 and p99.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/tgt-http LOAD_SECS=5 LOAD_CONNS=16 cargo bench -p sluice-http --bench load
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::{Value, json};
use sluice_http::{AppState, Limits, app};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A history of `pairs` user/assistant turns after a system message, with
/// realistic lengths (a sentence or two each).
fn history(pairs: usize) -> Vec<Value> {
    let mut messages = vec![
        json!({"role": "system", "content": "You are a helpful assistant for a Busan travel agency. Answer in Korean, briefly, and ask before booking anything."}),
    ];
    for i in 0..pairs {
        messages.push(json!({"role": "user", "content": format!("질문 {i}: 다음 주 토요일에 해운대에서 광안리까지 가는 가장 빠른 방법이 뭐예요? 비가 오면 어떻게 하나요?")}));
        messages.push(json!({"role": "assistant", "content": format!("답변 {i}: 지하철 2호선을 타면 약 15분 걸립니다. 비가 오면 택시도 좋지만 주말에는 길이 막힐 수 있어요. Bus 1003 also runs every 10 minutes.")}));
    }
    messages
}

/// The echo baseline: parse the body as JSON and write it back.
fn echo_app() -> Router {
    Router::new().route(
        "/echo",
        post(|body: Bytes| async move {
            match serde_json::from_slice::<Value>(&body) {
                Ok(value) => (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    serde_json::to_vec(&value).expect("serializable"),
                )
                    .into_response(),
                Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
            }
        }),
    )
}

async fn start(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn request(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one response; returns its status and body.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, Vec<u8>) {
    let mut chunk = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).unwrap();
    let status: u16 = head[9..12].parse().unwrap();
    let len: usize = head
        .split("\r\n")
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + len].to_vec();
    buf.drain(..head_end + len);
    (status, body)
}

struct Outcome {
    requests: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

/// Makes the `i`-th request of connection `conn`.
type MakeRequest = Arc<dyn Fn(usize, usize) -> Vec<u8> + Send + Sync>;

/// `conns` connections send requests back to back for `secs`.
async fn drive(addr: SocketAddr, make: MakeRequest, conns: usize, secs: u64) -> Outcome {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for conn in 0..conns {
        let make = Arc::clone(&make);
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut buf = Vec::new();
            let mut latencies = Vec::new();
            let mut i = 0;
            while Instant::now() < deadline {
                let req = make(conn, i);
                i += 1;
                let t = Instant::now();
                stream.write_all(&req).await.unwrap();
                let (status, _) = read_response(&mut stream, &mut buf).await;
                assert_eq!(status, 200);
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Outcome {
        requests: all.len(),
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

fn main() {
    let secs = env("LOAD_SECS", 5);
    let conns = env("LOAD_CONNS", 16) as usize;
    let workers = env("LOAD_WORKERS", 2) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let state = AppState::builder()
            .limits(Limits {
                concurrency_limit: 4096,
                ..Limits::default()
            })
            .build();
        let _ = state.warm_up();
        let sluice = start(app(state)).await;
        let echo = start(echo_app()).await;
        println!("load: {conns} connections, {secs} s per scenario, {workers} runtime workers (servers and client share them)");
        println!(
            "{:<48} {:>9} {:>10} {:>10} {:>10}",
            "scenario", "body B", "req/s", "p50 ms", "p99 ms"
        );
        let rps = |o: &Outcome| o.requests as f64 / o.elapsed.as_secs_f64();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let row = |name: &str, bytes: usize, o: &Outcome| {
            println!(
                "{:<48} {:>9} {:>10.0} {:>10.3} {:>10.3}",
                name,
                bytes,
                rps(o),
                ms(o.p50),
                ms(o.p99)
            );
        };
        // (name, turns, maxTokens, every request new)
        let scenarios = [
            ("10 turns, fits (returned unchanged)", 10, 500, false),
            ("10 turns, fits, every message new", 10, 500, true),
            ("60 turns, trimmed to fit HCX-003", 60, 1000, false),
            ("60 turns, trimmed, every message new", 60, 1000, true),
        ];
        for (name, turns, max_tokens, fresh) in scenarios {
            let messages = history(turns);
            let body = move |conn: usize, i: usize| {
                let mut messages = messages.clone();
                if fresh {
                    // A new history each time: no per-message count is cached.
                    for m in &mut messages {
                        let content = format!("[{conn}.{i}] {}", m["content"].as_str().unwrap());
                        m["content"] = Value::String(content);
                    }
                }
                json!({"maxTokens": max_tokens, "messages": messages}).to_string()
            };
            let first = body(usize::MAX, 0);
            // Check the answer once, so that a broken fast path cannot look fast.
            let mut stream = TcpStream::connect(sluice).await.unwrap();
            stream
                .write_all(&request("/v1/api-tools/sliding/chat-messages/HCX-003", &first))
                .await
                .unwrap();
            let (status, out) = read_response(&mut stream, &mut Vec::new()).await;
            assert_eq!(status, 200);
            let v: Value = serde_json::from_slice(&out).unwrap();
            let kept = v["result"]["messages"].as_array().unwrap().len();
            let dropped = v["result"]["report"]["turnsDropped"].as_u64().unwrap();
            if turns == 10 {
                assert_eq!((kept, dropped), (2 * turns + 1, 0));
            } else {
                assert!(dropped > 0 && kept > 2 && kept < 2 * turns + 1, "{kept} {dropped}");
            }
            let body = Arc::new(body);
            let b = Arc::clone(&body);
            let sliding_req: MakeRequest = Arc::new(move |c, i| {
                request("/v1/api-tools/sliding/chat-messages/HCX-003", &b(c, i))
            });
            let b = Arc::clone(&body);
            let echo_req: MakeRequest = Arc::new(move |c, i| request("/echo", &b(c, i)));
            let s = drive(sluice, sliding_req, conns, secs).await;
            let e = drive(echo, echo_req, conns, secs).await;
            row(&format!("sliding: {name}"), first.len(), &s);
            row("echo: same body, parse + serialize only", first.len(), &e);
            println!(
                "  sliding/echo: throughput {:.2}, p50 {:.2}, p99 {:.2} (kept {kept} of {} messages)",
                rps(&s) / rps(&e),
                ms(s.p50) / ms(e.p50),
                ms(s.p99) / ms(e.p99),
                2 * turns + 1
            );
        }
    });
}
