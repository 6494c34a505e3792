//! The HTTP listener of the REST API and of the edge: an accept loop with connection caps and
//! a header and an idle timeout per connection, serving an axum [`Router`] over hyper's HTTP/1.
//!
//! `axum::serve` keeps a connection as long as the client does: a client that trickles a
//! header (slowloris) or opens sockets and sends nothing holds a file descriptor each until the
//! process runs out. Here each accepted connection first takes a slot under
//! [`ConnectionGate`]'s per-IP and total caps — over a cap it is answered `429`/`503` if the
//! socket takes the bytes at once, and closed. Then a [`ConnectionClock`] watches it: reads,
//! writes, request starts and response ends go in, and the connection is dropped when a
//! request head has taken longer than [`ConnectionTimeouts::message`] from its first byte, or
//! nothing has been in flight for [`ConnectionTimeouts::idle`]. hyper's own
//! `header_read_timeout` is not used: it runs from the moment hyper waits for the next head,
//! so it would also cut every keep-alive connection idle longer than the header timeout.
//!
//! An upgraded connection (the Twilio media stream's WebSocket) leaves hyper and this clock
//! with the response `101`; it keeps its cap slot (the [`Permit`] lives in the socket wrapper)
//! and is bounded by the stream's own rules (the `start` timeout, the call's media
//! inactivity). The request's [`ConnectInfo`] carries the peer address, as
//! `into_make_service_with_connect_info` did.
//!
//! With TLS ([`serve_https`], `tls.rs`) the handshake comes first, under its own timeout and
//! after the cap check; then the decrypted stream is served as a plain one, each answer with
//! the listener's `Strict-Transport-Security` header.

pub mod acme;
mod caps;
pub mod certificate;
mod clock;
pub mod redirect;
pub mod tls;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

pub use caps::{ConnectionCaps, ConnectionGate, Permit, Refusal, RefusalCounts};
pub use clock::{ConnectionClock, ConnectionTimeouts, Expiry};
pub use tls::Https;

/// The body length `request` declares in `Content-Length`, when that is over `limit` bytes:
/// both binaries' body-limit layers refuse such a request from its headers alone, before
/// anything reads or waits for the body.
pub fn declared_over_limit(request: &axum::extract::Request, limit: usize) -> Option<u64> {
    request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&length| length > limit as u64)
}

/// The limits of one listener (the `[http]` config sections, and `[sip]`'s `tcp_*` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `message`: longest from a request's first byte to the end of its headers (HTTP) or of
    /// the whole message (SIP); `idle`: longest open with nothing in flight.
    pub timeouts: ConnectionTimeouts,
    /// Most connections one client IP may hold open.
    pub max_per_ip: u32,
    /// Most connections the listener holds open in all.
    pub max_total: u32,
}

/// A bound listener with the limits its connections are held to: what a listener task needs.
#[derive(Debug)]
pub struct LimitedListener {
    /// The bound socket.
    pub listener: TcpListener,
    /// Its caps and timeouts.
    pub limits: ConnectionLimits,
}

/// Serves `router` on `listener` under `limits` until `shutdown`, then lets open requests
/// finish (their connections are closed after the response) and returns when all are gone.
/// `name` labels the log lines (`"REST API"`, `"edge HTTP"`).
pub async fn serve_http(
    listener: LimitedListener,
    router: Router,
    name: &'static str,
    shutdown: CancellationToken,
) {
    serve_https(listener, None, router, name, shutdown).await;
}

/// [`serve_http`], over TLS when `tls` is given: each connection shakes hands (within the
/// handshake timeout) before its first request.
pub async fn serve_https(
    listener: LimitedListener,
    tls: Option<Https>,
    router: Router,
    name: &'static str,
    shutdown: CancellationToken,
) {
    let LimitedListener { listener, limits } = listener;
    let gate = ConnectionGate::new(name, limits.max_per_ip, limits.max_total);
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(listener = name, error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match gate.admit(peer) {
            Ok(permit) => {
                connections.spawn(serve_connection(
                    stream,
                    peer,
                    permit,
                    router.clone(),
                    limits.timeouts,
                    tls.clone(),
                    shutdown.clone(),
                ));
            }
            // Over TLS a plain-text status would be garbage to the client: just close.
            Err(refusal) if tls.is_none() => refuse(&stream, refusal),
            Err(_) => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Answers a refused connection without waiting: the response goes out only if the socket's
/// buffer takes it now, and the stream is closed when the caller drops it.
fn refuse(stream: &TcpStream, refusal: Refusal) {
    let response: &[u8] = match refusal {
        Refusal::PerIp => {
            b"HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n"
        }
        Refusal::Total => {
            b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n"
        }
    };
    let _ = stream.try_write(response);
}

/// One connection: its TLS handshake if any, then [`serve_watched`].
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    permit: Permit,
    router: Router,
    timeouts: ConnectionTimeouts,
    tls: Option<Https>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let Some(tls) = tls else {
        return serve_watched(stream, peer, permit, router, timeouts, None, shutdown).await;
    };
    let stream = tokio::select! {
        shaken = tls.handshake(stream) => match shaken {
            Ok(stream) => stream,
            Err(e) => {
                // Scanners and plain-HTTP clients land here all day: not worth more than debug.
                tracing::debug!(%peer, error = %e, "closing an HTTPS connection");
                return;
            }
        },
        () = shutdown.cancelled() => return,
    };
    let hsts = tls.hsts().cloned();
    serve_watched(stream, peer, permit, router, timeouts, hsts, shutdown).await;
}

/// One connection after any handshake: hyper serving `router`, raced against the connection's
/// deadline and the listener's shutdown. Over HTTPS every answer carries `hsts` as its
/// `Strict-Transport-Security` (unless the route set its own).
async fn serve_watched<S>(
    stream: S,
    peer: SocketAddr,
    permit: Permit,
    router: Router,
    timeouts: ConnectionTimeouts,
    hsts: Option<axum::http::HeaderValue>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let watch = Arc::new(Watch::new(ConnectionClock::new(Instant::now(), timeouts)));
    let io = WatchedIo {
        stream,
        watch: watch.clone(),
        _permit: permit,
    };
    let requests = watch.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let in_flight = InFlight::start(requests.clone());
        let response = router.clone().call(request);
        let hsts = hsts.clone();
        async move {
            let mut response = response.await?;
            if let Some(hsts) = hsts {
                response
                    .headers_mut()
                    .entry(axum::http::header::STRICT_TRANSPORT_SECURITY)
                    .or_insert(hsts);
            }
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(WatchedBody {
                    body,
                    _in_flight: in_flight,
                })
            }))
        }
    });
    let connection = http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        let deadline = watch.deadline();
        let timer = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            () = timer => {
                if let Some(expiry) = watch.expired(Instant::now()) {
                    tracing::debug!(%peer, ?expiry, "closing an HTTP connection that ran out of time");
                    return;
                }
            }
            () = watch.moved.notified() => {}
            () = shutdown.cancelled(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A connection's clock, shared by its socket, its requests and its task; `moved` wakes the
/// task when the deadline changed.
struct Watch {
    clock: Mutex<ConnectionClock>,
    moved: Notify,
}

impl Watch {
    fn new(clock: ConnectionClock) -> Self {
        Self {
            clock: Mutex::new(clock),
            moved: Notify::new(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut ConnectionClock) -> bool) {
        let moved = change(&mut self.lock());
        if moved {
            self.moved.notify_one();
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.lock().poll_timeout()
    }

    fn expired(&self, now: Instant) -> Option<Expiry> {
        self.lock().expired(now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectionClock> {
        // Every update is one call on a plain value: a panic elsewhere leaves it consistent.
        self.clock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A request being answered, from the end of its head until its response body is done.
struct InFlight(Arc<Watch>);

impl InFlight {
    fn start(watch: Arc<Watch>) -> Self {
        watch.update(|clock| clock.handle_request_start());
        Self(watch)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .update(|clock| clock.handle_request_end(Instant::now()));
    }
}

/// A response body that keeps its request [`InFlight`] until hyper has sent or dropped it.
struct WatchedBody {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for WatchedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket, reporting reads and writes to the clock and holding the cap slot for as long
/// as the socket lives (through an upgrade too).
struct WatchedIo<S> {
    stream: S,
    watch: Arc<Watch>,
    _permit: Permit,
}

impl<S: AsyncRead + Unpin> AsyncRead for WatchedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.update(|clock| clock.handle_read(Instant::now()));
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WatchedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.watch
                .update(|clock| clock.handle_written(Instant::now()));
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.watch
                .update(|clock| clock.handle_written(Instant::now()));
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
