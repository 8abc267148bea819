//! /healthz, /readyz, /metrics, graceful shutdown and the drain before it.

use std::time::Duration;

use serde_json::json;
use sluice_http::AppState;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::*;

#[tokio::test]
async fn healthz_answers_in_the_envelope() {
    let reply = call(&default_app(), "GET", "/healthz", &[], "").await;
    assert_eq!(reply.code(), "20000");
    assert_eq!(reply.json()["result"]["healthy"], true);
}

#[tokio::test]
async fn readyz_is_ready_with_a_migrated_store_and_not_while_draining() {
    let store = sluice_practice::Store::in_memory().await.unwrap();
    let practice = sluice_practice::Practice::new(store, Default::default(), None);
    let state = AppState::builder().practice(practice).build();
    let app = sluice_http::app(state.clone());
    let reply = call(&app, "GET", "/readyz", &[], "").await;
    assert_eq!(reply.code(), "20000", "{}", reply.message());
    assert_eq!(reply.json()["result"]["ready"], true);
    state.start_draining();
    let reply = call(&app, "GET", "/readyz", &[], "").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.code(), "50300");
    assert!(
        reply.message().contains("shutting down"),
        "{}",
        reply.message()
    );
    // Liveness and the API are unaffected by the drain.
    assert_eq!(call(&app, "GET", "/healthz", &[], "").await.code(), "20000");
    let body = json!({"maxTokens": 100, "messages": history(1)});
    assert_eq!(post_json(&app, SLIDING, &body).await.code(), "20000");
}

#[tokio::test]
async fn readyz_is_not_ready_when_the_database_is_gone() {
    let dir = std::env::temp_dir().join(format!("sluice-readyz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gone.db");
    let _ = std::fs::remove_file(&path);
    let store = sluice_practice::Store::open_file(&path).await.unwrap();
    let practice = sluice_practice::Practice::new(store, Default::default(), None);
    let app = sluice_http::app(AppState::builder().practice(practice).build());
    assert_eq!(call(&app, "GET", "/readyz", &[], "").await.code(), "20000");
    // The migrations table vanishing stands for a database reset under the
    // server: the replica must stop saying it can serve.
    let url = format!("sqlite:{}", path.display());
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("DROP TABLE sluice_migrations")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    let reply = call(&app, "GET", "/readyz", &[], "").await;
    assert_eq!(reply.status, 503, "{}", reply.message());
    assert!(reply.message().contains("database"), "{}", reply.message());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn on_the_signal_readyz_turns_503_while_requests_are_still_served_then_it_stops() {
    let state = AppState::builder().build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (signal, signalled) = tokio::sync::oneshot::channel::<()>();
    let drain = Duration::from_millis(600);
    let shutdown = sluice_http::drained_shutdown(
        state.clone(),
        async move {
            let _ = signalled.await;
        },
        drain,
    );
    let server = tokio::spawn(sluice_http::serve(
        listener,
        sluice_http::app(state),
        shutdown,
    ));
    assert_eq!(http(addr, "GET", "/readyz", &[], b"").await.code(), "20000");
    signal.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Draining: not ready, but new connections and requests are still served.
    assert_eq!(http(addr, "GET", "/readyz", &[], b"").await.status, 503);
    let body = br#"{"maxTokens":100,"messages":[{"role":"user","content":"hello"}]}"#;
    assert_eq!(http(addr, "POST", SLIDING, &[], body).await.code(), "20000");
    assert!(!server.is_finished());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("stops after the drain")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_code_latency_and_tokens() {
    let app = default_app();
    post_json(
        &app,
        SLIDING,
        &json!({"maxTokens": 1000, "messages": history(400)}),
    )
    .await;
    post_json(
        &app,
        SLIDING,
        &json!({"maxTokens": 0, "messages": history(1)}),
    )
    .await;
    post_json(&app, TOKENIZE, &json!({"messages": history(1)})).await;
    call(&app, "GET", "/nope", &[], "").await;
    let reply = call(&app, "GET", "/metrics", &[], "").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = String::from_utf8(reply.body).unwrap();
    let sliding = "route=\"/v1/api-tools/sliding/chat-messages/{modelName}\"";
    assert!(
        text.contains(&format!(
            "sluice_http_requests_total{{{sliding},code=\"20000\"}} 1"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "sluice_http_requests_total{{{sliding},code=\"40001\"}} 1"
        )),
        "{text}"
    );
    assert!(
        text.contains("sluice_http_requests_total{route=\"unmatched\",code=\"40400\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "sluice_http_request_duration_seconds_count{{{sliding}}} 2"
        )),
        "{text}"
    );
    assert!(text.contains("# TYPE sluice_http_request_duration_seconds histogram"));
    let value = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    assert!(value("sluice_tokens_counted_total{endpoint=\"sliding\"}") > 0);
    assert!(value("sluice_tokens_counted_total{endpoint=\"tokenize\"}") > 0);
    assert!(value("sluice_trimmed_messages_total") > 0);
    assert!(value("sluice_trimmed_turns_total") > 0);
    // Every sample line is `name{labels} number` or `name number`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, v) = line.rsplit_once(' ').unwrap();
        assert!(v.parse::<f64>().is_ok(), "{line}");
    }
}

#[tokio::test]
async fn shutdown_waits_for_the_request_in_flight_then_stops() {
    let server = Server::start(AppState::builder().build()).await;
    let body = br#"{"maxTokens":100,"messages":[{"role":"user","content":"hello"}]}"#;
    let request = raw_request("POST", SLIDING, &[], body);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(&request[..request.len() - 5])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let addr = server.addr;
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!stopping.is_finished(), "waits for the request in flight");
    stream
        .write_all(&request[request.len() - 5..])
        .await
        .unwrap();
    assert_eq!(read_response(&mut stream).await.code(), "20000");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .unwrap()
        .unwrap();
    // No longer accepting.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[cfg(unix)]
#[tokio::test]
async fn shutdown_signal_completes_on_sigterm() {
    let signal = tokio::spawn(sluice_http::shutdown_signal());
    // Let it install its handlers (which replace SIGTERM's default action).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!signal.is_finished());
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(10), signal)
        .await
        .expect("SIGTERM ends the wait")
        .unwrap();
}
