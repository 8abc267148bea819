//! The connection layer under attack, over 127.0.0.1 with bounded numbers:
//! idle sockets, a full connection table, slow headers, slow uploads, and
//! refusals that close the connection. Every server here stops by itself.
//! The memory these cost is measured on the binary, in `tests/serve.rs`,
//! where no other test shares the process.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_http::{ApiKeys, AppState, ConnectionLimits, Limits, app};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::fake::{Behavior, FakeUpstream, Script};
use crate::support::{SLIDING, raw_request, read_response};

/// A server with chosen connection limits on 127.0.0.1:0.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(state: AppState, limits: ConnectionLimits) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(sluice_http::serve_with(
        listener,
        app(state),
        limits,
        async move {
            let _ = stopped.await;
        },
    ));
    Running { addr, stop, task }
}

impl Running {
    /// Stops the server and returns how long that took.
    async fn stop(self) -> Duration {
        let asked = Instant::now();
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops within 10 s")
            .unwrap()
            .unwrap();
        asked.elapsed()
    }
}

/// `GET /healthz` on a fresh connection answers `20000` within a second.
async fn healthz_within_a_second(addr: SocketAddr) {
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(1), async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(&raw_request("GET", "/healthz", &[], b""))
            .await
            .unwrap();
        read_response(&mut stream).await
    })
    .await
    .unwrap_or_else(|_| panic!("/healthz did not answer within 1 s"));
    assert_eq!(answer.code(), "20000", "after {:?}", started.elapsed());
}

/// Waits (up to `within`) for the server to close `stream`: EOF or a reset.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) {
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server kept the connection open");
}

/// How many sockets of both ends this process can hold, at most `wanted`.
fn sockets_allowed(wanted: usize) -> usize {
    let open_files = sluice_http::raise_open_files_limit().unwrap_or(1024);
    let room = usize::try_from(open_files.saturating_sub(256) / 2).unwrap_or(usize::MAX);
    wanted.min(room)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_are_closed_after_the_header_timeout_and_healthz_keeps_answering() {
    let limits = ConnectionLimits {
        header_timeout: Duration::from_secs(2),
        ..ConnectionLimits::default()
    };
    let server = start(AppState::builder().build(), limits).await;
    let sockets = sockets_allowed(2_000);
    assert!(sockets >= 500, "only {sockets} sockets allowed");
    let mut idle = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // A keep-alive connection that has had its answer is idle too.
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(&raw_request("GET", "/healthz", &[], b""))
        .await
        .unwrap();
    assert_eq!(read_response(&mut kept).await.code(), "20000");
    healthz_within_a_second(server.addr).await;
    // The server closes them all once the header timeout has passed.
    let deadline = Duration::from_secs(5);
    let started = Instant::now();
    closed_by_server(&mut kept, deadline).await;
    for stream in &mut idle {
        closed_by_server(stream, deadline.saturating_sub(started.elapsed())).await;
    }
    healthz_within_a_second(server.addr).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_cap_is_refused_with_50300_and_connection_close() {
    let limits = ConnectionLimits {
        max_connections: 20,
        ..ConnectionLimits::default()
    };
    let server = start(AppState::builder().build(), limits).await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // The accept loop has taken the 20 once one more is refused.
    let mut refused = None;
    for _ in 0..50 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(&raw_request("GET", "/healthz", &[], b""))
            .await
            .unwrap();
        let reply = read_response(&mut stream).await;
        if reply.status == 503 {
            closed_by_server(&mut stream, Duration::from_secs(2)).await;
            refused = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = refused.expect("a connection over the cap is refused");
    assert_eq!(refused.code(), "50300");
    assert_eq!(refused.header("connection"), Some("close"));
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert!(refused.message().contains("too many open connections"));
    // Once the idle connections go, the server answers again at once.
    drop(idle);
    let mut answered = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(&raw_request("GET", "/healthz", &[], b""))
            .await
            .unwrap();
        if read_response(&mut stream).await.status == 200 {
            answered = true;
            break;
        }
    }
    assert!(answered, "the slots of closed connections are freed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_and_memory_stays_bounded() {
    let limits = ConnectionLimits {
        header_timeout: Duration::from_secs(2),
        ..ConnectionLimits::default()
    };
    let server = start(AppState::builder().build(), limits).await;
    let connections = sockets_allowed(500);
    // A head of ~30 KB, just under the 32 KiB limit, without its last line.
    let mut head = String::from("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for i in 0..30 {
        head.push_str(&format!("X-Pad-{i}: {}\r\n", "a".repeat(1000)));
    }
    let mut slow = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        slow.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    healthz_within_a_second(server.addr).await;
    let started = Instant::now();
    for stream in &mut slow {
        closed_by_server(
            stream,
            Duration::from_secs(5).saturating_sub(started.elapsed()),
        )
        .await;
    }
    // A head over the limit is answered by hyper: 431, no body, closed.
    let mut big = TcpStream::connect(server.addr).await.unwrap();
    let mut over = head.clone();
    over.push_str(&format!("X-Pad-more: {}\r\n\r\n", "a".repeat(4000)));
    big.write_all(over.as_bytes()).await.unwrap();
    let reply = read_response(&mut big).await;
    assert_eq!(reply.status, 431);
    assert!(reply.body.is_empty());
    closed_by_server(&mut big, Duration::from_secs(2)).await;
    healthz_within_a_second(server.addr).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_uploads_hold_no_request_slot() {
    let limits = Limits {
        concurrency_limit: 4,
        body_timeout: Duration::from_millis(1500),
        ..Limits::default()
    };
    let state = AppState::builder().limits(limits).build();
    let server = start(state, ConnectionLimits::default()).await;
    let body = br#"{"maxTokens":100,"messages":[{"role":"user","content":"hello"}]}"#;
    let request = raw_request("POST", SLIDING, &[], body);
    let head_len = request.len() - body.len();
    // 64 clients send their head and then a byte every 100 ms.
    let mut uploads = Vec::new();
    for _ in 0..64 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(&request[..head_len]).await.unwrap();
        let body = body.to_vec();
        uploads.push(tokio::spawn(async move {
            for byte in body.iter().take(12) {
                if stream.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            read_response(&mut stream).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Normal clients are served meanwhile, every one of them.
    for _ in 0..20 {
        let answer = tokio::time::timeout(Duration::from_secs(1), async {
            let mut stream = TcpStream::connect(server.addr).await.unwrap();
            stream.write_all(&request).await.unwrap();
            read_response(&mut stream).await
        })
        .await
        .expect("a normal request is answered within 1 s");
        assert_eq!(answer.code(), "20000");
    }
    // The slow ones run out of time: 40800, and the connection closes.
    for upload in uploads {
        let reply = upload.await.unwrap();
        assert_eq!(reply.code(), "40800");
        assert_eq!(reply.header("connection"), Some("close"));
    }
    server.stop().await;
}

#[tokio::test]
async fn refusals_before_the_body_say_connection_close() {
    const KEY: &str = "nv-connection-test";
    let limits = Limits {
        body_limit: 1024,
        ..Limits::default()
    };
    let state = AppState::builder()
        .api_keys(ApiKeys::new([KEY]))
        .limits(limits)
        .build();
    let server = start(state, ConnectionLimits::default()).await;
    let auth = ("Authorization", "Bearer nv-connection-test");
    let body = br#"{"maxTokens":100,"messages":[{"role":"user","content":"hello"}]}"#;
    let big = vec![b' '; 4096];
    let with_key: &[(&str, &str)] = &[auth];
    let cases = [
        (SLIDING, &[][..], &body[..], "40100"),
        ("/v1/nowhere", with_key, &body[..], "40400"),
        (SLIDING, with_key, &big[..], "41300"),
    ];
    for (path, headers, body, code) in cases {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(&raw_request("POST", path, headers, body))
            .await
            .unwrap();
        let reply = read_response(&mut stream).await;
        assert_eq!(reply.code(), code);
        assert_eq!(reply.header("connection"), Some("close"), "{code}");
        closed_by_server(&mut stream, Duration::from_secs(2)).await;
    }
    // Without a body to leave unread, the connection stays open.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    for (path, code) in [
        ("/v1/nowhere", "40400"),
        (SLIDING, "40500"),
        ("/healthz", "20000"),
    ] {
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let reply = read_response(&mut stream).await;
        assert_eq!(reply.code(), code, "{path}");
        assert_eq!(reply.header("connection"), None, "{path}");
    }
    // A request whose body was read keeps the connection, even when refused.
    stream
        .write_all(&raw_request("POST", SLIDING, &[auth], b"{"))
        .await
        .unwrap();
    let reply = read_response(&mut stream).await;
    assert_eq!(reply.code(), "40000");
    assert_eq!(reply.header("connection"), None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drops_what_is_still_open_after_the_deadline() {
    let limits = ConnectionLimits {
        shutdown_timeout: Duration::from_millis(500),
        ..ConnectionLimits::default()
    };
    let state = AppState::builder()
        .limits(Limits {
            body_timeout: Duration::from_secs(30),
            ..Limits::default()
        })
        .build();
    let server = start(state, limits).await;
    // One client holds half a head, one an upload that never ends, and one an
    // idle keep-alive connection.
    let mut half_head = TcpStream::connect(server.addr).await.unwrap();
    half_head
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut upload = TcpStream::connect(server.addr).await.unwrap();
    upload
        .write_all(b"POST /v1/api-tools/sliding/chat-messages/HCX-003 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(&raw_request("GET", "/healthz", &[], b""))
        .await
        .unwrap();
    assert_eq!(read_response(&mut kept).await.code(), "20000");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let took = server.stop().await;
    assert!(
        took < Duration::from_millis(1500),
        "shutdown took {took:?} with a 500 ms deadline"
    );
    for stream in [&mut half_head, &mut upload, &mut kept] {
        closed_by_server(stream, Duration::from_secs(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_concurrency_limit_are_shed_with_42900_and_keep_the_connection() {
    let fake = FakeUpstream::start(Script::new().on(
        "slow",
        Behavior::reply("late").with_delay(Duration::from_secs(2)),
    ))
    .await;
    let mut config = sluice_practice::provider::ModelConfig::new(
        sluice_practice::provider::ProviderKind::Openai,
        fake.openai_base_url(),
    );
    config.profile = Some("HCX-003".into());
    config.max_retries = 0;
    let provider = sluice_practice::provider::Provider::with_api_key(
        "slow",
        config,
        sluice_practice::provider::http_client(),
        None,
    )
    .unwrap();
    let models =
        sluice_practice::Practice::models_from(vec![provider], &sluice_core::Profiles::builtin())
            .unwrap();
    let practice = sluice_practice::Practice::new(
        sluice_practice::Store::in_memory().await.unwrap(),
        models,
        None,
    );
    let state = AppState::builder()
        .practice(practice)
        .limits(Limits {
            concurrency_limit: 1,
            ..Limits::default()
        })
        .build();
    let server = start(state, ConnectionLimits::default()).await;
    let chat =
        json!({"model": "slow", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let chat = raw_request(
        "POST",
        "/v1/openai/chat/completions",
        &[("Content-Type", "application/json")],
        chat.as_bytes(),
    );
    // The first request takes the only slot while the model thinks.
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    first.write_all(&chat).await.unwrap();
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    let mut shed = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        second
            .write_all(&raw_request(
                "POST",
                SLIDING,
                &[],
                br#"{"messages":[{"role":"user","content":"hi"}]}"#,
            ))
            .await
            .unwrap();
        let reply = read_response(&mut second).await;
        assert_eq!(reply.header("connection"), None);
        if reply.code() == "42900" {
            shed = true;
            break;
        }
    }
    assert!(shed, "a second request is shed while the slot is taken");
    // Ops endpoints are not limited, and the refused connection is still usable.
    second
        .write_all(&raw_request("GET", "/healthz", &[], b""))
        .await
        .unwrap();
    assert_eq!(read_response(&mut second).await.code(), "20000");
    assert_eq!(read_response(&mut first).await.status, 200);
    server.stop().await;
}
