//! The connection loop: hyper's HTTP/1.1 server driven here rather than by `axum::serve`, which
//! runs it without a timer and without a cap. Owns what happens below the router: the cap on
//! open connections, the header, idle and body deadlines, the header-size limit (431), and
//! framing a proxy could read differently (a missing or repeated `Host`, `Content-Length`
//! together with `Transfer-Encoding`: 400, RFC 9112 §3.2 and §6.3). Parameters are
//! `params.rs`'s; the password queue is `password.rs`'s.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Json, Router};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use grantd_wire::ErrorBody;

/// The HTTP protections of README "Security", each a `[http]` setting of `grantd serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// The request line and headers together, in bytes; beyond, 431 and the connection closed.
    pub max_header_bytes: usize,
    /// From accepting a connection, or from the first byte of a later request on it, until
    /// that request's headers are complete; then the connection is closed.
    pub header_read_timeout: Duration,
    /// From the end of the headers until the last byte of the body; then reading the body
    /// fails and the endpoint answers 400 in its own format.
    pub body_read_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request, and how long a client
    /// may take to read an answer.
    pub idle_timeout: Duration,
    /// Connections open at once; beyond, new ones wait in the listen backlog.
    pub max_connections: usize,
    /// Requests that check or set a password, admitted at once (hashing or waiting to); beyond,
    /// 503 with `Retry-After`.
    pub password_queue: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_header_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            password_queue: 64,
        }
    }
}

/// After a failed `accept` (out of file descriptors, say), before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight (idle connections close at once) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = Arc::new(limits);
    // Every connection holds one permit until it ends, so getting all of them back means every
    // connection has finished.
    let cap = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let open = Arc::new(Semaphore::new(cap as usize));
    let (stop, stopped) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut saturated = false;
    loop {
        if open.available_permits() == 0 && !saturated {
            tracing::warn!(
                max_connections = cap,
                "connection cap reached; new connections wait"
            );
        }
        saturated = open.available_permits() == 0;
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = open.clone().acquire_owned() => permit,
        };
        // The semaphore is never closed.
        let Ok(permit) = permit else { break };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Answers are written whole; Nagle would only delay them.
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            limits.clone(),
            stopped.clone(),
            permit,
        ));
    }
    // New connections are refused from here on; the open ones finish what they are doing.
    drop(listener);
    let _ = stop.send(true);
    let _ = open.acquire_many(cap).await;
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Arc<HttpLimits>,
    mut stopped: watch::Receiver<bool>,
    _open: OwnedSemaphorePermit,
) {
    let state = Arc::new(ConnState::new(limits.clone()));
    let io = TokioIo::new(Watched {
        stream,
        state: state.clone(),
        head: Some(Vec::new()),
    });
    let service = {
        let state = state.clone();
        service_fn(move |request: Request<Incoming>| {
            let router = router.clone();
            let state = state.clone();
            async move { Ok::<_, Infallible>(answer(router, request, peer, &state).await) }
        })
    };
    let mut builder = http1::Builder::new();
    // The deadlines are this module's (below), so hyper needs no timer of its own.
    builder
        .max_header_size(limits.max_header_bytes)
        .header_read_timeout(None::<Duration>);
    let mut connection = pin!(builder.serve_connection(io, service));
    let mut stopping = false;
    loop {
        let deadline = state.deadline();
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stopped.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            () = state.changed.notified() => {}
            () = tokio::time::sleep_until(deadline) => {
                if state.deadline() <= Instant::now() {
                    // Dropping the connection closes the socket.
                    tracing::debug!(%peer, "connection closed: too slow, or idle too long");
                    return;
                }
            }
        }
    }
}

/// One request: framing checks, then the router, with the peer address (`ConnectInfo`) and a
/// deadline on the body.
async fn answer(
    router: Router,
    mut request: Request<Incoming>,
    peer: SocketAddr,
    state: &ConnState,
) -> Response {
    state.enter(Phase::Handling);
    let response = match framing_problem(&request, state) {
        Some(problem) => refuse(problem),
        None => {
            request.extensions_mut().insert(ConnectInfo(peer));
            let deadline = Instant::now() + state.limits.body_read_timeout;
            let request = request.map(|body| Body::new(Deadline::new(body, deadline)));
            match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    };
    state.enter(Phase::Idle);
    response
}

/// RFC 9112 §3.2: exactly one `Host` in HTTP/1.1; §6.3: `Content-Length` with
/// `Transfer-Encoding` "ought to be handled as an error" (hyper would drop the length and
/// read the body chunked; a proxy in front might not).
fn framing_problem(request: &Request<Incoming>, state: &ConnState) -> Option<&'static str> {
    let both_lengths = state.both_lengths.swap(false, Ordering::Relaxed);
    let hosts = request.headers().get_all(header::HOST).iter().count();
    if hosts > 1 {
        Some("the Host header is repeated")
    } else if hosts == 0 && request.version() == Version::HTTP_11 {
        Some("the Host header is missing")
    } else if both_lengths {
        Some("Content-Length and Transfer-Encoding must not be sent together")
    } else {
        None
    }
}

/// 400 in JSON, the connection closed after it (the endpoint is not known yet).
fn refuse(problem: &'static str) -> Response {
    let mut response = (
        StatusCode::BAD_REQUEST,
        Json(ErrorBody::described("invalid_request", problem)),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Where a connection is, for its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request's headers: `header_read_timeout` from the start.
    Head,
    /// The router has the request (its body has a deadline of its own).
    Handling,
    /// Writing the answer and waiting for the next request: `idle_timeout`.
    Idle,
}

struct ConnState {
    limits: Arc<HttpLimits>,
    phase: Mutex<(Phase, Instant)>,
    /// Woken on every change of phase, so the connection's deadline is taken again.
    changed: Notify,
    /// The request whose headers were just read had both `Content-Length` and
    /// `Transfer-Encoding` (hyper keeps only one of them, so the raw bytes tell).
    both_lengths: AtomicBool,
}

impl ConnState {
    fn new(limits: Arc<HttpLimits>) -> Self {
        Self {
            limits,
            phase: Mutex::new((Phase::Head, Instant::now())),
            changed: Notify::new(),
            both_lengths: AtomicBool::new(false),
        }
    }

    fn enter(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner) = (phase, Instant::now());
        self.changed.notify_one();
    }

    /// Bytes arrived: if the connection was idle, a new request's headers start now.
    fn received(&self) -> bool {
        let mut current = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if current.0 != Phase::Idle {
            return false;
        }
        *current = (Phase::Head, Instant::now());
        drop(current);
        self.changed.notify_one();
        true
    }

    /// When the connection is to be closed unless its phase changes first.
    fn deadline(&self) -> Instant {
        let (phase, since) = *self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        match phase {
            Phase::Head => since + self.limits.header_read_timeout,
            Phase::Idle => since + self.limits.idle_timeout,
            // No deadline while the router works; a change of phase wakes the loop.
            Phase::Handling => Instant::now() + Duration::from_secs(3600),
        }
    }
}

/// The socket, noticing when a request begins and reading along its head for the framing
/// check hyper does not make.
struct Watched {
    stream: TcpStream,
    state: Arc<ConnState>,
    /// The current request's head so far, while it is being read.
    head: Option<Vec<u8>>,
}

impl Watched {
    fn read_along(&mut self, bytes: &[u8]) {
        if self.state.received() {
            self.head = Some(Vec::new());
        }
        let Some(head) = self.head.as_mut() else {
            return;
        };
        // Only the new bytes (and the three before them) can complete the blank line, so a head
        // sent a byte at a time is not searched again from its start each time.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(bytes);
        let end = head_end(&head[from..]).map(|end| from + end);
        if end.is_none() && head.len() <= self.state.limits.max_header_bytes {
            return;
        }
        let head = &head[..end.unwrap_or(head.len())];
        if has_both_lengths(head) {
            self.state.both_lengths.store(true, Ordering::Relaxed);
        }
        self.head = None;
    }
}

/// Where the blank line that ends a head begins (hyper accepts a bare LF too).
fn head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = bytes.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn has_both_lengths(head: &[u8]) -> bool {
    let (mut length, mut encoding) = (false, false);
    for line in head.split(|b| *b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        length |= name.eq_ignore_ascii_case(b"content-length");
        encoding |= name.eq_ignore_ascii_case(b"transfer-encoding");
    }
    length && encoding
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                this.read_along(new);
            }
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A request body that fails once its deadline has passed: a body sent a byte at a time
/// cannot hold a request open for longer than `body_read_timeout`.
struct Deadline {
    body: Incoming,
    deadline: Instant,
    /// Made at the first read, so bodies nobody reads cost no timer.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    fn new(body: Incoming, deadline: Instant) -> Self {
        Self {
            body,
            deadline,
            sleep: None,
        }
    }
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(BoxError::from)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err("the request body took too long".into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_lengths_are_found_in_any_case_and_order() {
        let both =
            b"POST / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\nContent-Length : 5";
        assert!(has_both_lengths(both));
        let one = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-Transfer-Encoding: no";
        assert!(!has_both_lengths(one));
        // The request line is not a header, whatever it contains.
        let target = b"GET /content-length:1 HTTP/1.1\r\nTransfer-Encoding: chunked";
        assert!(!has_both_lengths(target));
    }
}
