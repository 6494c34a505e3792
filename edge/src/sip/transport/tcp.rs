//! SIP over TCP and TLS (RFC 3261 sections 18 and 26): the TCP listener, one task per
//! connection, and the table of open connections the SIP task writes to.
//!
//! A connection task reads the stream (plain TCP, or TLS once `tls.rs` has shaken hands),
//! cuts it into messages with [`StreamFramer`] and hands each to the SIP task as a
//! [`TcpInput::Message`]; it writes whatever the SIP task queues for it. A stream that cannot
//! be framed is closed with a log line (the next message boundary is lost); nothing here
//! panics on input. Responses go back on the connection the request came on, because the
//! endpoint addresses them to the connection's remote address. A message for a peer with no
//! connection (an outbound trunk) opens one; one that cannot be opened is reported as
//! [`TcpInput::Failed`] so that the transactions waiting on it fail over at once.
//!
//! Keep-alives (RFC 5626 section 4.4.1): a double-CRLF ping from the peer is answered with a
//! single CRLF, and on connections we opened (trunks, registrars) we send a ping when nothing
//! has been read or written for `sip.keepalive_interval_ms`, which keeps NAT bindings and
//! load balancers from forgetting the flow.
//!
//! Slow and idle peers are bounded as on the HTTP listeners (`crate::serve`): `accept` admits
//! a connection only under the per-IP and total caps (over them it is closed at once and
//! counted), and each connection's [`ConnectionClock`] closes it when a message has been
//! arriving for longer than `sip.tcp_message_timeout_ms` from its first byte, or nothing was
//! read or written for `sip.tcp_idle_timeout_ms`. The framer holds at most one message (64 KiB)
//! per connection. Connections we open to trunks are not counted under the caps (we chose to
//! open them) and use the default timeouts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::tls::TlsDialer;
use crate::config::SipConfig;
use crate::serve::{ConnectionClock, ConnectionGate, ConnectionTimeouts, LimitedListener, Permit};
use crate::sip::framing::StreamFramer;
use crate::sip::{Peer, Transport};

#[cfg(test)]
pub(super) mod tests;

/// What connection tasks tell the SIP task.
#[derive(Debug)]
pub(crate) enum TcpInput {
    /// A connection is up; messages for `peer` go to `writer`.
    Opened {
        peer: Peer,
        writer: mpsc::Sender<Vec<u8>>,
    },
    /// One framed message from `peer`.
    Message { peer: Peer, bytes: Vec<u8> },
    /// The connection to `peer` is gone.
    Closed { peer: Peer },
    /// A connection we tried to open to `peer` never came up (refused, timed out, or its TLS
    /// handshake failed): what was queued for it is lost.
    Failed { peer: Peer },
}

/// Messages queued for one connection; a peer that reads slower than this loses messages
/// (whole ones: the stream stays framed), by decision, rather than stalling every call.
pub(super) const WRITE_QUEUE: usize = 64;
/// How long an outbound connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A keep-alive ping (RFC 5626 section 4.4.1) and its pong.
const PING: &[u8] = b"\r\n\r\n";
const PONG: &[u8] = b"\r\n";

/// The open connections, by peer (transport and remote address).
pub(super) struct TcpConnections {
    writers: HashMap<Peer, mpsc::Sender<Vec<u8>>>,
    inputs: mpsc::Sender<TcpInput>,
    shutdown: CancellationToken,
    /// Opens TLS connections to trunks, verifying their certificates.
    tls: Option<Arc<TlsDialer>>,
    /// The name a TLS trunk's certificate must carry, by its address (its configured `host`).
    tls_names: HashMap<SocketAddr, String>,
    /// How long a connection we opened may be quiet before we ping it.
    keepalive: Duration,
}

impl TcpConnections {
    /// An empty table; connection tasks report on `inputs`.
    pub(super) fn new(
        inputs: mpsc::Sender<TcpInput>,
        shutdown: CancellationToken,
        tls: Option<Arc<TlsDialer>>,
        keepalive: Duration,
    ) -> Self {
        Self {
            writers: HashMap::new(),
            inputs,
            shutdown,
            tls,
            tls_names: HashMap::new(),
            keepalive,
        }
    }

    /// Records a connection the listener accepted.
    pub(super) fn opened(&mut self, peer: Peer, writer: mpsc::Sender<Vec<u8>>) {
        self.writers.insert(peer, writer);
    }

    /// Forgets a closed connection.
    pub(super) fn closed(&mut self, peer: Peer) {
        self.writers.remove(&peer);
    }

    /// Remembers the name a TLS peer at `addr` must prove (its certificate is checked
    /// against it when we connect).
    pub(super) fn expect_tls_name(&mut self, addr: SocketAddr, name: &str) {
        self.tls_names.insert(addr, name.to_owned());
    }

    /// Queues `bytes` for `dest`, opening a connection if there is none.
    pub(super) fn send(&mut self, dest: Peer, bytes: Vec<u8>) {
        if let Some(writer) = self.writers.get(&dest) {
            match writer.try_send(bytes) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(%dest, "SIP stream peer not reading; SIP message dropped");
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(bytes)) => {
                    self.writers.remove(&dest);
                    return self.connect(dest, bytes);
                }
            }
        }
        self.connect(dest, bytes);
    }

    fn connect(&mut self, dest: Peer, first: Vec<u8>) {
        let (writer, queue) = mpsc::channel(WRITE_QUEUE);
        let _ = writer.try_send(first);
        self.writers.insert(dest, writer);
        let (inputs, shutdown) = (self.inputs.clone(), self.shutdown.clone());
        let connection = Connection {
            peer: dest,
            timeouts: SipConfig::default().tcp_limits().timeouts,
            keepalive: Some(self.keepalive),
            _permit: None,
        };
        let tls = match dest.transport {
            Transport::Tls => match &self.tls {
                Some(dialer) => Some(dialer.clone()),
                None => {
                    tracing::warn!(%dest, "a TLS trunk, but this edge has no TLS client configured");
                    let _ = inputs.try_send(TcpInput::Failed { peer: dest });
                    return;
                }
            },
            _ => None,
        };
        let name = self.tls_names.get(&dest.addr).cloned();
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dest.addr)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::info!(%dest, error = %e, "cannot open a SIP connection");
                        let _ = inputs.send(TcpInput::Failed { peer: dest }).await;
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%dest, "timed out opening a SIP connection");
                        let _ = inputs.send(TcpInput::Failed { peer: dest }).await;
                        return;
                    }
                };
            let _ = stream.set_nodelay(true);
            match tls {
                None => {
                    tracing::debug!(%dest, "SIP TCP connection opened");
                    serve(stream, connection, queue, inputs, shutdown).await;
                }
                Some(dialer) => match dialer.connect(stream, dest.addr, name.as_deref()).await {
                    Ok(stream) => {
                        tracing::debug!(%dest, "SIP TLS connection opened");
                        serve(stream, connection, queue, inputs, shutdown).await;
                    }
                    Err(e) => {
                        tracing::warn!(%dest, error = %e, "TLS handshake with a trunk failed; its calls fail over");
                        let _ = inputs.send(TcpInput::Failed { peer: dest }).await;
                    }
                },
            }
        });
    }
}

/// Accepts connections under the listener's caps until `shutdown`, each served by a task of
/// its own.
pub(super) async fn accept(
    listener: LimitedListener,
    inputs: mpsc::Sender<TcpInput>,
    shutdown: CancellationToken,
) {
    let LimitedListener { listener, limits } = listener;
    let gate = ConnectionGate::new("SIP TCP", limits.max_per_ip, limits.max_total);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, addr)) => {
                // Over a cap the stream is dropped (closed) here; the gate counts and logs it.
                let Ok(permit) = gate.admit(addr) else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let peer = Peer::tcp(addr);
                let Some(queue) = register(&inputs, peer).await else {
                    return;
                };
                let connection = Connection {
                    peer,
                    timeouts: limits.timeouts,
                    keepalive: None,
                    _permit: Some(permit),
                };
                tokio::spawn(serve(
                    stream,
                    connection,
                    queue,
                    inputs.clone(),
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(error = %e, "SIP TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Registers an accepted connection of `peer` with the SIP task and returns its write queue;
/// `None` when the task is gone. Registered before the first message can arrive: same
/// channel, in order.
pub(super) async fn register(
    inputs: &mpsc::Sender<TcpInput>,
    peer: Peer,
) -> Option<mpsc::Receiver<Vec<u8>>> {
    let (writer, queue) = mpsc::channel(WRITE_QUEUE);
    inputs.send(TcpInput::Opened { peer, writer }).await.ok()?;
    Some(queue)
}

/// Who is at the other end of a connection and how long it may take.
pub(super) struct Connection {
    pub(super) peer: Peer,
    pub(super) timeouts: ConnectionTimeouts,
    /// Ping the peer after this long without traffic (connections we opened).
    pub(super) keepalive: Option<Duration>,
    /// The accepted connection's slot under the caps, freed when the task ends.
    pub(super) _permit: Option<Permit>,
}

/// Hands every whole message in `framer` to the SIP task: `Some(completed)` says whether there
/// was one, `None` that the connection must close (the SIP task is gone, or the stream cannot
/// be framed).
async fn forward_messages(
    framer: &mut StreamFramer,
    peer: Peer,
    inputs: &mpsc::Sender<TcpInput>,
) -> Option<bool> {
    let mut completed = false;
    loop {
        match framer.next_message() {
            Ok(Some(bytes)) => {
                completed = true;
                inputs.send(TcpInput::Message { peer, bytes }).await.ok()?;
            }
            Ok(None) => return Some(completed),
            Err(e) => {
                tracing::info!(%peer, error = %e, "closing a SIP connection whose stream cannot be framed");
                return None;
            }
        }
    }
}

/// Reads and writes one connection (TCP, or TLS over it) until either side closes it, its
/// stream breaks, or its clock runs out.
pub(super) async fn serve<S>(
    stream: S,
    connection: Connection,
    mut queue: mpsc::Receiver<Vec<u8>>,
    inputs: mpsc::Sender<TcpInput>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let peer = connection.peer;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut framer = StreamFramer::new();
    let mut clock = ConnectionClock::new(Instant::now(), connection.timeouts);
    let mut last_traffic = Instant::now();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let deadline = clock.poll_timeout();
        let timer = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                None => std::future::pending().await,
            }
        };
        let ping_at = connection.keepalive.map(|every| last_traffic + every);
        let ping = async {
            match ping_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) => break,
                Ok(n) => {
                    let now = Instant::now();
                    last_traffic = now;
                    clock.handle_read(now);
                    framer.push(buf.get(..n).unwrap_or_default());
                    let Some(mut completed) = forward_messages(&mut framer, peer, &inputs).await else {
                        break;
                    };
                    // One pong answers the pings of one read: a pong is shorter than a ping,
                    // so answering cannot amplify anything.
                    if framer.take_pings() > 0 {
                        if let Err(e) = writer.write_all(PONG).await {
                            tracing::debug!(%peer, error = %e, "SIP keep-alive pong failed");
                            break;
                        }
                        completed = true;
                    }
                    clock.handle_framed(now, completed, framer.buffered() > 0);
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "SIP stream read failed");
                    break;
                }
            },
            queued = queue.recv() => match queued {
                Some(bytes) => {
                    if let Err(e) = writer.write_all(&bytes).await {
                        tracing::debug!(%peer, error = %e, "SIP stream write failed");
                        break;
                    }
                    last_traffic = Instant::now();
                    clock.handle_written(last_traffic);
                }
                None => break,
            },
            () = ping => {
                if let Err(e) = writer.write_all(PING).await {
                    tracing::debug!(%peer, error = %e, "SIP keep-alive ping failed");
                    break;
                }
                last_traffic = Instant::now();
                clock.handle_written(last_traffic);
            }
            () = timer => {
                if let Some(expiry) = clock.expired(Instant::now()) {
                    tracing::debug!(%peer, ?expiry, "closing a SIP connection that ran out of time");
                    break;
                }
            }
            _ = shutdown.cancelled() => {
                // Let queued messages (BYEs of the shutdown) go out first.
                while let Ok(bytes) = queue.try_recv() {
                    let _ = writer.write_all(&bytes).await;
                }
                break;
            }
        }
    }
    let _ = writer.shutdown().await;
    let _ = inputs.send(TcpInput::Closed { peer }).await;
}
