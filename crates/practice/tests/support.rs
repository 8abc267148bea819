//! A fake chat-completions upstream that speaks both wire formats over real
//! sockets, for tests that exercise `sluice_practice::provider` end to end.
//!
//! It is written on a bare `TcpListener` with a minimal HTTP/1.1 parser rather
//! than on axum, because the interesting behaviours are the ones a framework
//! hides: closing a connection without an answer, and writing a stream event by
//! event with pauses in between.
//!
//! ```ignore
//! let fake = FakeUpstream::start(
//!     Script::new()
//!         .on("gpt-x", Behavior::rate_limited("1"))
//!         .on("gpt-x", Behavior::reply("hello")),
//! )
//! .await;
//! // point a provider at fake.openai_base_url() or fake.clova_base_url() ...
//! assert_eq!(fake.requests().len(), 2);
//! ```
//!
//! Each request is answered by the next behaviour queued for its model (the
//! body's `model` for OpenAI, the path's last segment for CLOVA); with none left
//! it echoes: `echo: <last user message>`, with word counts as token usage.
//! Every request is recorded. Every answer carries `Connection: close`, so each
//! request has its own connection and a reset never hits a pooled one. The
//! server stops, connections included, when the [`FakeUpstream`] is dropped.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use sluice_practice::provider::{ProviderKind, TokenUsage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// How many connections are served at once by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;
/// The largest request head read.
const MAX_HEAD: usize = 64 * 1024;

/// How the fake answers one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Behavior {
    /// After `delay`, answer `text` (word by word when a stream is asked for).
    /// `usage` defaults to word counts.
    Reply {
        /// The answer.
        text: String,
        /// The token counts reported.
        usage: Option<TokenUsage>,
        /// A wait before answering.
        delay: Duration,
    },
    /// An error status with the wire format's error body.
    Error {
        /// The HTTP status.
        status: u16,
        /// The error message.
        message: String,
        /// OpenAI's `error.code` and `error.type`, CLOVA's `status.code`
        /// (default: the HTTP status followed by `00`).
        code: Option<String>,
        /// Extra response headers (`Retry-After`, ...).
        headers: Vec<(String, String)>,
    },
    /// An answer written exactly as given.
    Raw {
        /// The HTTP status.
        status: u16,
        /// The response headers besides `Content-Length` and `Connection`.
        headers: Vec<(String, String)>,
        /// The body.
        body: String,
    },
    /// HTTP 200, `application/json`, a body that is not JSON.
    MalformedJson,
    /// Close the connection (with a TCP reset) without answering.
    ResetConnection,
    /// Start the echo answer, then reset the connection halfway: the response
    /// head and half the JSON body, or (when a stream is asked for) the
    /// stream head and the first delta — as an upstream that crashes mid-reply.
    ResetMidReply,
    /// Start the echo answer, then close the connection cleanly before it is
    /// complete: a JSON body shorter than its `Content-Length`, or (when a
    /// stream is asked for) every delta but no finish event and no `[DONE]`,
    /// the chunked body properly ended.
    CutShort,
    /// Echo as by default, but only after `delay`.
    Slow {
        /// The wait before answering.
        delay: Duration,
    },
    /// A streamed answer: one event per chunk with `delay` before each, then
    /// the final event (usage; CLOVA's `result` and `signal`). Sent as SSE even
    /// when the request did not ask for a stream.
    Stream {
        /// The text deltas.
        chunks: Vec<String>,
        /// The wait before each chunk.
        delay: Duration,
        /// The token counts reported at the end (default: word counts).
        usage: Option<TokenUsage>,
    },
    /// An answer built to exhaust the reader (issue 23): `shape`, written in
    /// pieces of `piece` bytes with `pause` after each, until `bytes` are
    /// written or the client hangs up. The bytes written are counted in
    /// [`FakeUpstream::hostile_bytes`].
    Hostile {
        /// What it sends.
        shape: Hostile,
        /// The most bytes written after the response head.
        bytes: u64,
        /// The size of each write.
        piece: usize,
        /// The wait after each write.
        pause: Duration,
    },
    /// The echo answer with a byte that is not UTF-8 (0xFF) in its text: in a
    /// JSON body, or in the second delta of a stream.
    NotUtf8,
    /// A stream that fails after `chunks`: CLOVA's `event:error`, or an
    /// OpenAI-style `{"error": ...}` chunk.
    StreamError {
        /// The deltas sent before the error.
        chunks: Vec<String>,
        /// The HTTP-like status of the error.
        status: u16,
        /// The error message.
        message: String,
    },
}

/// The shapes of [`Behavior::Hostile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// HTTP 200 `application/json`, chunked: a reply whose text never ends.
    Body,
    /// An SSE stream of text deltas that never ends.
    Stream,
    /// An SSE head, then one `data:` line that never meets its newline.
    Line,
    /// An SSE stream of comment lines (keep-alives): no text at all, no end.
    KeepAlive,
}

impl Behavior {
    /// Answer `text` at once.
    pub fn reply(text: &str) -> Self {
        Behavior::Reply {
            text: text.to_string(),
            usage: None,
            delay: Duration::ZERO,
        }
    }

    /// An error status with `message` in the wire format's error body.
    pub fn error(status: u16, message: &str) -> Self {
        Behavior::Error {
            status,
            message: message.to_string(),
            code: None,
            headers: Vec::new(),
        }
    }

    /// A 429 with `Retry-After: <retry_after>`.
    pub fn rate_limited(retry_after: &str) -> Self {
        Behavior::error(429, "Too many requests").with_header("Retry-After", retry_after)
    }

    /// A stream of `chunks`, `delay` apart.
    pub fn stream(chunks: &[&str], delay: Duration) -> Self {
        Behavior::Stream {
            chunks: chunks.iter().map(|c| c.to_string()).collect(),
            delay,
            usage: None,
        }
    }

    /// Adds a response header to an [`Behavior::Error`] or [`Behavior::Raw`].
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        match &mut self {
            Behavior::Error { headers, .. } | Behavior::Raw { headers, .. } => {
                headers.push((name.to_string(), value.to_string()));
            }
            other => panic!("with_header on {other:?}"),
        }
        self
    }

    /// Sets the error code of an [`Behavior::Error`].
    pub fn with_code(mut self, new_code: &str) -> Self {
        match &mut self {
            Behavior::Error { code, .. } => *code = Some(new_code.to_string()),
            other => panic!("with_code on {other:?}"),
        }
        self
    }

    /// Sets the delay of a [`Behavior::Reply`] or [`Behavior::Stream`].
    pub fn with_delay(mut self, new_delay: Duration) -> Self {
        match &mut self {
            Behavior::Reply { delay, .. } | Behavior::Stream { delay, .. } => *delay = new_delay,
            other => panic!("with_delay on {other:?}"),
        }
        self
    }

    /// Sets the usage of a [`Behavior::Reply`] or [`Behavior::Stream`].
    pub fn with_usage(mut self, new_usage: TokenUsage) -> Self {
        match &mut self {
            Behavior::Reply { usage, .. } | Behavior::Stream { usage, .. } => {
                *usage = Some(new_usage)
            }
            other => panic!("with_usage on {other:?}"),
        }
        self
    }
}

/// The behaviours queued per model before the server starts.
#[derive(Debug, Clone, Default)]
pub struct Script {
    queues: HashMap<String, VecDeque<Behavior>>,
}

impl Script {
    /// An empty script: every request is echoed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `behavior` for the next request to `model` not yet answered by
    /// an earlier queued behaviour.
    pub fn on(mut self, model: &str, behavior: Behavior) -> Self {
        self.queues
            .entry(model.to_string())
            .or_default()
            .push_back(behavior);
        self
    }
}

/// Which wire format a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `.../chat/completions`.
    Openai,
    /// `.../v3/chat-completions/{model}`.
    Clova,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, normally.
    pub method: String,
    /// The request target.
    pub path: String,
    /// The headers, names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`Value::Null` when it was not JSON).
    pub body: Value,
    /// The body as received, byte for byte (lossy only where it is not UTF-8).
    // Used by crates/http/tests/gateway.rs, not by this crate's tests.
    #[allow(dead_code)]
    pub raw: String,
    /// The wire format, from the path (`None` for an unknown path).
    pub wire: Option<Wire>,
    /// The model asked for ("" when none).
    pub model: String,
    /// When the request was complete.
    pub at: Instant,
}

impl Recorded {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the request asked for a stream (`"stream": true`, or CLOVA's
    /// `Accept: text/event-stream`).
    pub fn wants_stream(&self) -> bool {
        match self.wire {
            Some(Wire::Openai) => self.body["stream"] == json!(true),
            Some(Wire::Clova) => self
                .header("accept")
                .is_some_and(|a| a.contains("text/event-stream")),
            None => false,
        }
    }
}

#[derive(Default)]
struct Shared {
    queues: Mutex<HashMap<String, VecDeque<Behavior>>>,
    requests: Mutex<Vec<Recorded>>,
    /// Set by [`FakeUpstream::stop_recording`].
    forgetful: AtomicBool,
    connections: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Body bytes written by [`Behavior::Hostile`] answers.
    hostile_bytes: AtomicU64,
}

/// Poisoning only follows a panic in a test that has failed already.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The running fake; stops when dropped.
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet, which aborts every
        // connection still open.
        self.task.abort();
    }
}

impl FakeUpstream {
    /// Starts on `127.0.0.1:0`, serving at most [`DEFAULT_MAX_CONNECTIONS`]
    /// connections at once.
    pub async fn start(script: Script) -> Self {
        Self::start_with_limit(script, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Starts, serving at most `max_connections` connections at once (the rest
    /// wait in the listen backlog).
    pub async fn start_with_limit(script: Script, max_connections: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            queues: Mutex::new(script.queues),
            ..Shared::default()
        });
        let task = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&shared),
            Arc::new(Semaphore::new(max_connections)),
        ));
        FakeUpstream { addr, shared, task }
    }

    /// Body bytes written so far by [`Behavior::Hostile`] answers.
    pub fn hostile_bytes(&self) -> u64 {
        self.shared.hostile_bytes.load(Ordering::SeqCst)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of an OpenAI-compatible provider: `http://<addr>/v1`.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The base URL of a CLOVA Studio provider: `http://<addr>`.
    pub fn clova_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL of a provider speaking `kind`'s wire format.
    pub fn base_url(&self, kind: ProviderKind) -> String {
        match kind {
            ProviderKind::Openai => self.openai_base_url(),
            ProviderKind::Clova => self.clova_base_url(),
            ProviderKind::Local => unreachable!("the fake upstream runs no local model"),
        }
    }

    /// Queues `behavior` for `model`, after those already queued.
    pub fn push(&self, model: &str, behavior: Behavior) {
        lock(&self.shared.queues)
            .entry(model.to_string())
            .or_default()
            .push_back(behavior);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// Stops recording requests (those recorded so far are dropped), so a long
    /// load does not grow the fake's memory.
    // Used by crates/http/benches/mixed_load.rs, not by this crate's tests.
    #[allow(dead_code)]
    pub fn stop_recording(&self) {
        self.shared.forgetful.store(true, Ordering::SeqCst);
        *lock(&self.shared.requests) = Vec::new();
    }

    /// The only request received; panics unless there was exactly one.
    pub fn single_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "requests: {requests:#?}");
        requests.into_iter().next().expect("one request")
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The requests being answered now: a request stops counting when its
    /// answer is written or the client goes away.
    // Used by crates/http/tests/faults.rs, not by this crate's tests.
    #[allow(dead_code)]
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests that were being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, limit: Arc<Semaphore>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            return;
        };
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(&shared);
        connections.spawn(async move {
            serve(socket, &shared).await;
            drop(permit);
        });
        // Reaps finished connections so the set does not grow with the test.
        while connections.try_join_next().is_some() {}
    }
}

/// Counts a request as being answered until dropped (also when the client
/// goes away mid-answer or the server stops).
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Answers the one request of a connection. I/O errors just end it: the
/// client gave up, which some tests intend.
async fn serve(mut socket: TcpStream, shared: &Shared) {
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    let _in_flight = InFlight::enter(shared);
    if !shared.forgetful.load(Ordering::SeqCst) {
        lock(&shared.requests).push(request.clone());
    }
    let behavior = lock(&shared.queues)
        .get_mut(&request.model)
        .and_then(VecDeque::pop_front);
    if let Some(Behavior::Hostile {
        shape,
        bytes,
        piece,
        pause,
    }) = behavior
    {
        let _ = hostile(&mut socket, &request, shape, (bytes, piece, pause), shared).await;
        return;
    }
    let _ = answer(&mut socket, &request, behavior).await;
}

/// Writes a [`Behavior::Hostile`] answer until its bytes are spent or a write
/// fails (the client hung up).
async fn hostile(
    socket: &mut TcpStream,
    request: &Recorded,
    shape: Hostile,
    (bytes, piece, pause): (u64, usize, Duration),
    shared: &Shared,
) -> std::io::Result<()> {
    let Some(wire) = request.wire else {
        return Ok(());
    };
    let filler = "x".repeat(piece);
    let (head, start, each) = match shape {
        Hostile::Body => {
            let start = match wire {
                Wire::Openai => {
                    r#"{"choices":[{"index":0,"message":{"role":"assistant","content":""#
                }
                Wire::Clova => {
                    r#"{"status":{"code":"20000"},"result":{"message":{"role":"assistant","content":""#
                }
            };
            ("application/json", start.to_string(), filler)
        }
        Hostile::Stream => (
            "text/event-stream",
            String::new(),
            token_event(wire, request, &filler),
        ),
        Hostile::Line => ("text/event-stream", "data: ".to_string(), filler),
        Hostile::KeepAlive => {
            let line = format!(":{}\n\n", &filler[..piece.saturating_sub(3)]);
            ("text/event-stream", String::new(), line)
        }
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {head}\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await?;
    let mut written = 0u64;
    let mut next = start;
    while written < bytes {
        if next.is_empty() {
            next.clone_from(&each);
        }
        write_event(socket, &next).await?;
        written += next.len() as u64;
        shared
            .hostile_bytes
            .fetch_add(next.len() as u64, Ordering::SeqCst);
        next.clear();
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    end_stream(socket).await
}

async fn read_request(socket: &mut TcpStream) -> Option<Recorded> {
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let mut chunk = [0; 4096];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let path = request_line.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf.split_off(head_end + 4);
    while body.len() < length {
        let mut chunk = vec![0; length - body.len()];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let raw = String::from_utf8_lossy(&body).into_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (wire, model) = route(&path, &body);
    Some(Recorded {
        method,
        path,
        headers,
        body,
        raw,
        wire,
        model,
        at: Instant::now(),
    })
}

/// The wire format and model of a request.
fn route(path: &str, body: &Value) -> (Option<Wire>, String) {
    let path = path.split('?').next().unwrap_or(path);
    if path.ends_with("/chat/completions") {
        let model = body["model"].as_str().unwrap_or_default().to_string();
        (Some(Wire::Openai), model)
    } else if let Some((_, model)) = path.split_once("/v3/chat-completions/") {
        (Some(Wire::Clova), model.to_string())
    } else {
        (None, String::new())
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The default answer to a request.
fn echo_text(request: &Recorded) -> String {
    let last_user = request.body["messages"]
        .as_array()
        .and_then(|messages| messages.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    format!("echo: {last_user}")
}

/// Word counts: the prompt's over every message, the completion's over `text`.
fn word_usage(request: &Recorded, text: &str) -> TokenUsage {
    let prompt_tokens = request.body["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .map(|m| words(m["content"].as_str().unwrap_or_default()))
                .sum()
        })
        .unwrap_or(0);
    let completion_tokens = words(text);
    TokenUsage {
        prompt_tokens,
        completion_tokens,
        total_tokens: prompt_tokens + completion_tokens,
    }
}

/// Splits an answer into word-sized deltas that join back into it.
fn word_chunks(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(str::to_string).collect()
}

async fn answer(
    socket: &mut TcpStream,
    request: &Recorded,
    behavior: Option<Behavior>,
) -> std::io::Result<()> {
    let Some(wire) = request.wire else {
        let body = json!({"error": {"message": format!("no route for {}", request.path)}});
        return write_json(socket, 404, &[], &body.to_string()).await;
    };
    let behavior = behavior.unwrap_or(Behavior::Slow {
        delay: Duration::ZERO,
    });
    match behavior {
        Behavior::Reply { text, usage, delay } => {
            tokio::time::sleep(delay).await;
            let usage = usage.unwrap_or_else(|| word_usage(request, &text));
            if request.wants_stream() {
                write_stream(
                    socket,
                    wire,
                    request,
                    &word_chunks(&text),
                    Duration::ZERO,
                    usage,
                )
                .await
            } else {
                write_reply(socket, wire, request, &text, usage).await
            }
        }
        Behavior::Slow { delay } => {
            tokio::time::sleep(delay).await;
            let text = echo_text(request);
            let usage = word_usage(request, &text);
            if request.wants_stream() {
                write_stream(
                    socket,
                    wire,
                    request,
                    &word_chunks(&text),
                    Duration::ZERO,
                    usage,
                )
                .await
            } else {
                write_reply(socket, wire, request, &text, usage).await
            }
        }
        Behavior::Error {
            status,
            message,
            code,
            headers,
        } => {
            let body = error_body(wire, status, &message, code.as_deref());
            write_json(socket, status, &headers, &body.to_string()).await
        }
        Behavior::Raw {
            status,
            headers,
            body,
        } => write_response(socket, status, &headers, body.as_bytes()).await,
        Behavior::MalformedJson => {
            write_json(
                socket,
                200,
                &[],
                r#"{"choices": [{"message": {"content": "unfinis"#,
            )
            .await
        }
        Behavior::ResetConnection => {
            // SO_LINGER 0: the close sends RST, as a crashed server would.
            let _ = socket.set_zero_linger();
            Ok(())
        }
        Behavior::ResetMidReply => {
            let text = echo_text(request);
            if request.wants_stream() {
                write_stream_head(socket).await?;
                let first = word_chunks(&text).swap_remove(0);
                write_event(socket, &token_event(wire, request, &first)).await?;
            } else {
                let body = reply_body(wire, request, &text, word_usage(request, &text));
                write_partial(socket, &body.to_string()).await?;
            }
            // Lets the client read what was written before the reset arrives.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = socket.set_zero_linger();
            Ok(())
        }
        Behavior::CutShort => {
            let text = echo_text(request);
            if request.wants_stream() {
                write_stream_head(socket).await?;
                for chunk in word_chunks(&text) {
                    write_event(socket, &token_event(wire, request, &chunk)).await?;
                }
                end_stream(socket).await
            } else {
                let body = reply_body(wire, request, &text, word_usage(request, &text));
                write_partial(socket, &body.to_string()).await?;
                socket.shutdown().await
            }
        }
        Behavior::Stream {
            chunks,
            delay,
            usage,
        } => {
            let usage = usage.unwrap_or_else(|| word_usage(request, &chunks.concat()));
            write_stream(socket, wire, request, &chunks, delay, usage).await
        }
        Behavior::Hostile { .. } => unreachable!("answered by `hostile`"),
        Behavior::NotUtf8 => {
            let text = echo_text(request);
            if request.wants_stream() {
                write_stream_head(socket).await?;
                write_event(socket, &token_event(wire, request, &text)).await?;
                let event = token_event(wire, request, "BAD");
                let mut bytes = event.into_bytes();
                let at = bytes.windows(3).position(|w| w == b"BAD").expect("marker");
                bytes[at + 1] = 0xFF;
                socket
                    .write_all(format!("{:x}\r\n", bytes.len()).as_bytes())
                    .await?;
                socket.write_all(&bytes).await?;
                socket.write_all(b"\r\n").await?;
                end_stream(socket).await
            } else {
                let body = reply_body(
                    wire,
                    request,
                    &format!("{text}BAD"),
                    word_usage(request, &text),
                );
                let mut bytes = body.to_string().into_bytes();
                let at = bytes.windows(3).position(|w| w == b"BAD").expect("marker");
                bytes[at + 1] = 0xFF;
                let all = [("content-type".to_string(), "application/json".to_string())];
                write_response(socket, 200, &all, &bytes).await
            }
        }
        Behavior::StreamError {
            chunks,
            status,
            message,
        } => {
            write_stream_head(socket).await?;
            for chunk in &chunks {
                write_event(socket, &token_event(wire, request, chunk)).await?;
            }
            let event = match wire {
                Wire::Openai => format!(
                    "data: {}\n\n",
                    json!({"error": {"message": message, "type": "server_error", "code": status}})
                ),
                Wire::Clova => format!(
                    "event:error\ndata:{}\n\n",
                    json!({"status": {"code": format!("{status}00"), "message": message}})
                ),
            };
            write_event(socket, &event).await?;
            end_stream(socket).await
        }
    }
}

fn error_body(wire: Wire, status: u16, message: &str, code: Option<&str>) -> Value {
    match wire {
        Wire::Openai => json!({
            "error": {
                "message": message,
                "type": code.unwrap_or("invalid_request_error"),
                "code": code,
            }
        }),
        Wire::Clova => json!({
            "status": {
                "code": code.map_or_else(|| format!("{status}00"), str::to_string),
                "message": message,
            },
            "result": null,
        }),
    }
}

fn openai_usage(usage: TokenUsage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    })
}

fn clova_usage(usage: TokenUsage) -> Value {
    json!({
        "promptTokens": usage.prompt_tokens,
        "completionTokens": usage.completion_tokens,
        "totalTokens": usage.total_tokens,
    })
}

fn completion_id(request: &Recorded) -> String {
    format!("chatcmpl-fake-{}", request.model)
}

async fn write_reply(
    socket: &mut TcpStream,
    wire: Wire,
    request: &Recorded,
    text: &str,
    usage: TokenUsage,
) -> std::io::Result<()> {
    let body = reply_body(wire, request, text, usage);
    write_json(socket, 200, &[], &body.to_string()).await
}

/// A whole (non-streamed) answer in the wire format.
fn reply_body(wire: Wire, request: &Recorded, text: &str, usage: TokenUsage) -> Value {
    match wire {
        Wire::Openai => json!({
            "id": completion_id(request),
            "object": "chat.completion",
            "created": 0,
            "model": request.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }],
            "usage": openai_usage(usage),
        }),
        Wire::Clova => json!({
            "status": {"code": "20000", "message": "OK"},
            "result": {
                "created": 0,
                "message": {"role": "assistant", "content": text},
                "finishReason": "stop",
                "seed": request.body["seed"],
                "usage": clova_usage(usage),
            },
        }),
    }
}

/// A 200 head announcing all of `body`, then only its first half (cut on a
/// byte, not a character: the client must not care).
async fn write_partial(socket: &mut TcpStream, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(&body.as_bytes()[..body.len() / 2]).await?;
    socket.flush().await
}

/// One delta, as each format writes it: OpenAI with a space after `data:`,
/// CLOVA without any (as CLOVA Studio does).
fn token_event(wire: Wire, request: &Recorded, chunk: &str) -> String {
    match wire {
        Wire::Openai => format!(
            "data: {}\n\n",
            json!({
                "id": completion_id(request),
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": chunk}, "finish_reason": null}],
                "usage": null,
            })
        ),
        Wire::Clova => format!(
            "id:{}\nevent:token\ndata:{}\n\n",
            request.model,
            json!({
                "message": {"role": "assistant", "content": chunk},
                "finishReason": null,
                "usage": null,
            })
        ),
    }
}

async fn write_stream(
    socket: &mut TcpStream,
    wire: Wire,
    request: &Recorded,
    chunks: &[String],
    delay: Duration,
    usage: TokenUsage,
) -> std::io::Result<()> {
    write_stream_head(socket).await?;
    if wire == Wire::Openai {
        // OpenAI opens with a role-only delta.
        let role = json!({
            "id": completion_id(request),
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}],
        });
        write_event(socket, &format!("data: {role}\n\n")).await?;
    }
    for chunk in chunks {
        tokio::time::sleep(delay).await;
        write_event(socket, &token_event(wire, request, chunk)).await?;
    }
    let tail = match wire {
        Wire::Openai => {
            let id = completion_id(request);
            let finish = json!({
                "id": id,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            });
            let mut tail = format!("data: {finish}\n\n");
            if request.body["stream_options"]["include_usage"] == json!(true) {
                let usage = json!({"id": id, "choices": [], "usage": openai_usage(usage)});
                tail.push_str(&format!("data: {usage}\n\n"));
            }
            tail.push_str("data: [DONE]\n\n");
            tail
        }
        Wire::Clova => {
            let result = json!({
                "message": {"role": "assistant", "content": chunks.concat()},
                "finishReason": "stop",
                "usage": clova_usage(usage),
            });
            format!(
                "event:result\ndata:{result}\n\nevent:signal\ndata:{}\n\n",
                json!({"data": "[DONE]"})
            )
        }
    };
    write_event(socket, &tail).await?;
    end_stream(socket).await
}

async fn write_stream_head(socket: &mut TcpStream) -> std::io::Result<()> {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\
                connection: close\r\n\r\n";
    socket.write_all(head.as_bytes()).await?;
    socket.flush().await
}

/// Writes one chunk of a chunked body and flushes it, so the client sees each
/// event when it is written.
async fn write_event(socket: &mut TcpStream, event: &str) -> std::io::Result<()> {
    socket
        .write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())
        .await?;
    socket.flush().await
}

async fn end_stream(socket: &mut TcpStream) -> std::io::Result<()> {
    socket.write_all(b"0\r\n\r\n").await?;
    socket.shutdown().await
}

async fn write_json(
    socket: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &str,
) -> std::io::Result<()> {
    let mut all = vec![("content-type".to_string(), "application/json".to_string())];
    all.extend_from_slice(headers);
    write_response(socket, status, &all, body.as_bytes()).await
}

async fn write_response(
    socket: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} Fake\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body).await?;
    socket.shutdown().await
}
