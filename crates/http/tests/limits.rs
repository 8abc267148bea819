//! The limit layers answer in the envelope: 41300, 40800, 50400 (42900: connection.rs).

use std::time::Duration;

use serde_json::json;
use sluice_http::{AppState, Limits, app};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::*;

fn state(limits: Limits) -> AppState {
    AppState::builder().limits(limits).build()
}

#[tokio::test]
async fn body_over_the_limit_is_41300_in_the_envelope() {
    let limits = Limits {
        body_limit: 1024,
        ..Limits::default()
    };
    let big = json!({"maxTokens": 100, "messages": history(40)}).to_string();
    assert!(big.len() > 1024);
    // In-process the body has no Content-Length header: the limit trips while reading.
    let app = app(state(limits));
    let reply = call(&app, "POST", SLIDING, &[], big.clone()).await;
    assert_eq!(reply.code(), "41300");
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert!(reply.message().contains("1024"));
    // Over a socket the declared Content-Length is refused before reading.
    let server = Server::start(state(limits)).await;
    let reply = http(server.addr, "POST", TOKENIZE, &[], big.as_bytes()).await;
    assert_eq!(reply.code(), "41300");
    assert!(reply.header("x-ncp-clovastudio-request-id").is_some());
    // A chunked body with no length trips while reading.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!("POST {SLIDING} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in big.as_bytes().chunks(500) {
        let _ = stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await;
        let _ = stream.write_all(chunk).await;
        let _ = stream.write_all(b"\r\n").await;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    assert_eq!(read_response(&mut stream).await.code(), "41300");
    // A body just under the limit is fine.
    let small = json!({"messages": history(2)}).to_string();
    assert!(small.len() < 1024);
    assert_eq!(
        http(server.addr, "POST", SLIDING, &[], small.as_bytes())
            .await
            .code(),
        "20000"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_body_not_sent_in_time_is_40800() {
    let limits = Limits {
        body_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let server = Server::start(state(limits)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let body = br#"{"maxTokens":100,"messages":[{"role":"user","content":"hello"}]}"#;
    let request = raw_request("POST", SLIDING, &[], body);
    // Everything but the last 10 bytes, then silence.
    stream
        .write_all(&request[..request.len() - 10])
        .await
        .unwrap();
    let reply = read_response(&mut stream).await;
    assert_eq!(reply.code(), "40800");
    // Still serving.
    assert_eq!(
        http(server.addr, "POST", SLIDING, &[], body).await.code(),
        "20000"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_request_over_the_timeout_is_50400() {
    let limits = Limits {
        request_timeout: Duration::from_millis(5),
        ..Limits::default()
    };
    let app = app(state(limits));
    // 20,000 distinct messages take far longer than 5 ms to count.
    let messages: Vec<_> = (0..20_000)
        .map(|i| json!({"role": "user", "content": format!("message {i} with some words to count, 안녕하세요 {i}")}))
        .collect();
    let reply = post_json(&app, TOKENIZE, &json!({"messages": messages})).await;
    assert_eq!(reply.code(), "50400");
    // Still serving (the ops routes have no timeout, so this cannot flake).
    assert_eq!(call(&app, "GET", "/healthz", &[], "").await.code(), "20000");
}
