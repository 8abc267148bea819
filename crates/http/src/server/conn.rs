//! The connection layer: the accept loop, HTTP/1 connections with hyper, and
//! what the server does with connections it cannot or will not serve.
//!
//! - At most [`ConnectionLimits::max_connections`] connections are open at
//!   once; one more is answered `503` (`50300` in the envelope) with
//!   `Connection: close` before its request is read, and closed.
//! - A connection must deliver a complete request head within
//!   [`ConnectionLimits::header_timeout`] of opening or of its previous
//!   response (hyper's header read timeout), so slow headers and idle
//!   keep-alive connections are both closed after it, without an answer.
//! - A request head over [`ConnectionLimits::max_header_bytes`] is answered
//!   `431` by hyper itself (see [`ConnectionLimits`] for what hyper answers
//!   without a body).
//! - A response to a request whose body was not read to its end (a refusal
//!   before the body: `40100`, `40400`, `41300`, ...) carries
//!   `Connection: close`, since hyper then closes the connection.
//! - On shutdown the connections already waiting in the accept queue are
//!   taken in, the listener closes, idle connections close at once, requests
//!   in flight get [`ConnectionLimits::shutdown_timeout`] to finish, and what is
//!   still open after it is dropped.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, header};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::server::error::{ApiError, Code};

/// Limits on connections, enforced by [`serve_with`].
///
/// What hyper answers itself, before any request reaches the application,
/// with an empty body (no envelope: hyper has no hook for a body) and then
/// closes the connection: `431` for a head over `max_header_bytes` or with
/// more than 100 header fields, `400` for a head that does not parse (bad
/// method, URI, version or header syntax), `414` for a URI over 65,534 bytes
/// (only reachable with `max_header_bytes` above that). A head not complete
/// within `header_timeout` is closed without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once; one more is refused with `50300`.
    pub max_connections: usize,
    /// Time to receive a complete request head, from the connection's start or
    /// its previous response; also how long an idle keep-alive connection stays.
    pub header_timeout: Duration,
    /// Largest request head (request line and header fields) in bytes.
    pub max_header_bytes: usize,
    /// After shutdown begins, how long requests in flight may take before
    /// their connections are dropped.
    pub shutdown_timeout: Duration,
}

/// Refusals being written at once; a connection over the cap beyond these is
/// closed without an answer.
const REFUSALS_AT_ONCE: usize = 256;

/// How long a connection that is being closed is read (and the bytes thrown
/// away) after its last answer, so that the answer is not lost to a reset
/// caused by unread request bytes.
const LINGER: Duration = Duration::from_secs(1);

/// At most this many bytes are read while lingering.
const LINGER_BYTES: usize = 1 << 20;

/// Pause after an accept error that is not the client's (such as running out
/// of file descriptors), so that the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` with the default [`ConnectionLimits`] until
/// `shutdown` completes; see [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, ConnectionLimits::default(), shutdown).await
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting,
/// closes idle connections, lets requests in flight finish within
/// [`ConnectionLimits::shutdown_timeout`] and drops the connections still open.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let (stop, stopping) = watch::channel(());
    let mut tasks = JoinSet::new();
    let admit_into =
        |tasks: &mut JoinSet<()>, stream: TcpStream| match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => {
                let connection = Connection {
                    app: app.clone(),
                    stopping: stopping.clone(),
                    _slot: slot,
                };
                tasks.spawn(connection.run(http.clone(), stream));
            }
            Err(_) => {
                if let Ok(permit) = Arc::clone(&refusals).try_acquire_owned() {
                    tasks.spawn(refuse(stream, permit));
                }
            }
        };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => admit_into(&mut tasks, stream),
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    // Connections the kernel completed but this loop has not accepted yet
    // would be reset when the listener closes, possibly after the client sent
    // its request, which a load balancer cannot safely retry elsewhere for a
    // POST. Take them in and serve them like the others; then close.
    for stream in pending_connections(listener) {
        admit_into(&mut tasks, stream);
    }
    drop(stop);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = tasks.len(),
            "shutdown deadline passed: dropping the connections still open"
        );
        tasks.shutdown().await;
    }
    Ok(())
}

/// Closes `listener` and returns the connections waiting in its accept queue.
fn pending_connections(listener: TcpListener) -> Vec<TcpStream> {
    // The std listener makes the accept calls themselves, not a readiness
    // cache that may not have seen the last arrivals yet; it is non-blocking,
    // so the loop ends at the first `WouldBlock`.
    let Ok(listener) = listener.into_std() else {
        return Vec::new();
    };
    let mut pending = Vec::new();
    while let Ok((stream, _)) = listener.accept() {
        if stream.set_nonblocking(true).is_ok() {
            if let Ok(stream) = TcpStream::from_std(stream) {
                pending.push(stream);
            }
        }
    }
    pending
}

/// Errors of one connection that say nothing about the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Answers a connection over the cap with `50300` and closes it.
async fn refuse(mut stream: TcpStream, _permit: OwnedSemaphorePermit) {
    let error = ApiError::new(
        Code::UNAVAILABLE,
        "Service unavailable: the server has too many open connections, retry later",
    );
    let body = error.envelope();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n",
        body.len()
    );
    let mut answer = head.into_bytes();
    answer.extend_from_slice(&body);
    if stream.write_all(&answer).await.is_ok() {
        linger(stream).await;
    }
}

/// Half-closes `stream` and reads what the client still sends, for at most
/// [`LINGER`] or [`LINGER_BYTES`], then closes it.
async fn linger(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut buf = [0u8; 8192];
        let mut read = 0;
        while read < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// One accepted connection and the slot it holds.
struct Connection {
    app: Router,
    stopping: watch::Receiver<()>,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn run(mut self, http: http1::Builder, stream: TcpStream) {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let service = ConnectionService {
            app: self.app.clone(),
            in_flight: Arc::clone(&in_flight),
        };
        let mut conn = http.serve_connection(TokioIo::new(stream), service);
        let mut shutting_down = false;
        let result = loop {
            tokio::select! {
                result = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => break result,
                _ = self.stopping.changed(), if !shutting_down => {
                    if in_flight.load(Ordering::Acquire) == 0 {
                        return; // nothing asked yet: close at once
                    }
                    Pin::new(&mut conn).graceful_shutdown();
                    shutting_down = true;
                }
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection closed on an error");
        }
        linger(conn.into_parts().io.into_inner()).await;
    }
}

/// The per-connection service: the app, counting requests in flight, and
/// saying `Connection: close` when the request body was left unread.
#[derive(Clone)]
struct ConnectionService {
    app: Router,
    in_flight: Arc<AtomicUsize>,
}

type ServiceFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let guard = InFlight::enter(&self.in_flight);
        let finished = Arc::new(AtomicBool::new(req.body().is_end_stream()));
        let req = req.map(|body| {
            Body::new(RequestBody {
                inner: body,
                finished: Arc::clone(&finished),
            })
        });
        let response = self.app.clone().oneshot(req);
        Box::pin(async move {
            let mut response = response.await?;
            // hyper closes a connection whose request body was not read to
            // its end; say so, so that the client does not reuse it.
            if !finished.load(Ordering::Acquire) {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|body| {
                Body::new(ResponseBody {
                    inner: body,
                    _in_flight: guard,
                })
            }))
        })
    }
}

/// Counts a request in flight until its response body is sent or dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A request body that records when it has been read to its end.
struct RequestBody {
    inner: Incoming,
    finished: Arc<AtomicBool>,
}

impl http_body::Body for RequestBody {
    type Data = hyper::body::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted in flight.
struct ResponseBody {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for ResponseBody {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Raises this process's soft limit on open files to its hard limit and
/// returns the new soft limit (`None` where there is no such limit or it
/// cannot be read). A server needs a descriptor per connection.
pub fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::increase_nofile_limit(u64::MAX).ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_waiting_in_the_accept_queue_are_taken_in_before_the_listener_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // The kernel completes these handshakes; nothing has accepted them.
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        let pending = pending_connections(listener);
        assert_eq!(pending.len(), 3);
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the listener is closed"
        );
    }
}
