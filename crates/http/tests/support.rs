//! Helpers: in-process calls through `oneshot`, a server on 127.0.0.1:0 and a tiny
//! HTTP/1.1 client over a raw socket.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use serde_json::Value;
use sluice_http::{AppState, app};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tower::ServiceExt;

pub const SLIDING: &str = "/v1/api-tools/sliding/chat-messages/HCX-003";
pub const TOKENIZE: &str = "/v1/api-tools/chat-tokenize/HCX-003";
pub const ROUTE: &str = "/v1/routers/sample/versions/1/route";

/// A response, its body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The envelope code, after checking that the HTTP status is its first three
    /// digits and that an error carries no result.
    pub fn code(&self) -> String {
        let v = self.json();
        let code = v["status"]["code"]
            .as_str()
            .expect("status.code is a string")
            .to_string();
        assert_eq!(code.len(), 5, "{v}");
        if code.starts_with('6') {
            assert_eq!(self.status, 400, "the router's codes are sent as 400: {v}");
        } else {
            assert_eq!(&code[..3], self.status.as_str(), "{v}");
        }
        assert!(v["status"]["message"].is_string(), "{v}");
        if code != "20000" {
            assert!(v.get("result").is_none_or(Value::is_null), "{v}");
        }
        code
    }

    pub fn message(&self) -> String {
        self.json()["status"]["message"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn default_app() -> Router {
    app(AppState::builder().build())
}

/// One request through the router in-process.
pub async fn call(
    app: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let sent = axum::body::to_bytes(body.into(), usize::MAX).await.unwrap();
    let response = app
        .clone()
        .oneshot(req.body(Body::from(sent.clone())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    if status.is_success() {
        accepted_by_the_spec(method, path, &sent);
    }
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn post_json(app: &Router, path: &str, body: &Value) -> Reply {
    call(
        app,
        "POST",
        path,
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

/// A server on 127.0.0.1:0, stopped when dropped.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    pub async fn start(state: AppState) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(sluice_http::serve(listener, app(state), async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Asks for a graceful shutdown and waits (bounded) for the server to stop.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("server stops within 10 s")
            .unwrap()
            .unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A request as raw bytes: the head (with `Content-Length` for `body`) and body.
pub fn raw_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Reads one response with a `Content-Length` body from `stream`.
pub async fn read_response(stream: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut chunk))
            .await
            .expect("response within 30 s")
            .unwrap();
        assert!(
            n > 0,
            "connection closed before the response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).unwrap().to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers = HeaderMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once(':').unwrap();
        headers.append(
            axum::http::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
            v.trim().parse().unwrap(),
        );
    }
    let len: usize = headers
        .get("content-length")
        .map(|v| v.to_str().unwrap().parse().unwrap())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut chunk))
            .await
            .expect("body within 30 s")
            .unwrap();
        assert!(n > 0, "connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Reply {
        status: StatusCode::from_u16(status).unwrap(),
        headers,
        body,
    }
}

/// One request over a fresh connection.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&raw_request(method, path, headers, body))
        .await
        .unwrap();
    read_response(&mut stream).await
}

/// A history of `n` user/assistant pairs after a system message.
pub fn history(pairs: usize) -> Vec<Value> {
    let mut messages =
        vec![serde_json::json!({"role": "system", "content": "Answer briefly, in Korean."})];
    for i in 0..pairs {
        messages.push(serde_json::json!({"role": "user", "content": format!("질문 {i}: 오늘 서울 날씨는 어때요? 미세먼지도 알려 주세요.")}));
        messages.push(serde_json::json!({"role": "assistant", "content": format!("답변 {i}: 맑고 따뜻합니다. 미세먼지는 보통입니다.")}));
    }
    messages
}

/// Panics unless `body`, which the server accepted for `method path`, is valid
/// for the request schema of the OpenAPI document: a client that validates
/// its requests against the document can send whatever the server takes.
/// Every in-process call of the tests goes through this check.
pub fn accepted_by_the_spec(method: &str, path: &str, body: &[u8]) {
    use std::sync::OnceLock;
    static DOC: OnceLock<Value> = OnceLock::new();
    let doc = DOC.get_or_init(sluice_http::openapi_document);
    let path = path.split('?').next().unwrap_or(path);
    let Some(operation) = doc["paths"].as_object().and_then(|paths| {
        paths
            .iter()
            .find(|(template, _)| path_matches(template, path))
            .and_then(|(_, item)| item.get(method.to_ascii_lowercase()))
    }) else {
        return;
    };
    let Some(schema) = operation["requestBody"]["content"]["application/json"]
        .get("schema")
        .filter(|_| !body.is_empty())
    else {
        return;
    };
    // A byte-order mark is forgiven by the server; a client sends none.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let instance: Value = match serde_json::from_slice(body) {
        Ok(instance) => instance,
        // Deeper than serde_json reads (the server passes unknown fields on
        // unread): no validator here can read it either.
        Err(e) if e.to_string().contains("recursion limit") => return,
        Err(e) => panic!(
            "{method} {path} accepted a body that is not JSON ({e}): {:.200}",
            String::from_utf8_lossy(body)
        ),
    };
    // The whole document as the root, so that `#/components/...` resolves.
    let mut root = doc.clone();
    root.as_object_mut()
        .unwrap()
        .insert("$ref".into(), Value::String(reference(schema)));
    let validator = jsonschema::draft202012::new(&root).expect("the document is a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path}: the server accepted a body its OpenAPI schema refuses: {errors:?}\n{:.400}",
        instance.to_string()
    );
}

/// A `$ref` to `schema`, which is either a `$ref` already or inline (then it
/// is found by its position in the document, which is all `$ref` can say).
fn reference(schema: &Value) -> String {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r.to_string(),
        None => panic!("inline request schemas are not supported by this check: {schema}"),
    }
}

fn path_matches(template: &str, path: &str) -> bool {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), Some(ps)) if ts.starts_with('{') && !ps.is_empty() => {}
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return false,
        }
    }
}

/// `(event, data)` of every server-sent event in `text`.
pub fn sse_events(text: &str) -> Vec<(String, String)> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|block| {
            let mut event = String::from("message");
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim_start().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                }
            }
            (!data.is_empty()).then(|| (event, data.join("\n")))
        })
        .collect()
}
