//! SIP over TCP (RFC 3261 section 18): the listener, one task per connection, and the table of
//! open connections the SIP task writes to.
//!
//! A connection task reads the stream, cuts it into messages with [`StreamFramer`] and hands
//! each to the SIP task as a [`TcpInput::Message`]; it writes whatever the SIP task queues for
//! it. A stream that cannot be framed is closed with a log line (the next message boundary is
//! lost); nothing here panics on input. Responses go back on the connection the request came
//! on, because the endpoint addresses them to the connection's remote address. A message for a
//! TCP peer with no connection (an outbound trunk) opens one.
//!
//! Slow and idle peers are bounded as on the HTTP listeners (`crate::serve`): `accept` admits
//! a connection only under the per-IP and total caps (over them it is closed at once and
//! counted), and each connection's [`ConnectionClock`] closes it when a message has been
//! arriving for longer than `sip.tcp_message_timeout_ms` from its first byte, or nothing was
//! read or written for `sip.tcp_idle_timeout_ms`. Connections we open to trunks are not
//! counted under the caps (we chose to open them) and use the default timeouts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::SipConfig;
use crate::serve::{ConnectionClock, ConnectionGate, ConnectionTimeouts, LimitedListener, Permit};
use crate::sip::framing::StreamFramer;

#[cfg(test)]
mod tests;

/// What connection tasks tell the SIP task.
#[derive(Debug)]
pub enum TcpInput {
    /// A connection is up; messages for `peer` go to `writer`.
    Opened {
        peer: SocketAddr,
        writer: mpsc::Sender<Vec<u8>>,
    },
    /// One framed message from `peer`.
    Message { peer: SocketAddr, bytes: Vec<u8> },
    /// The connection to `peer` is gone.
    Closed { peer: SocketAddr },
}

/// Messages queued for one connection; a peer that reads slower than this loses messages
/// (whole ones: the stream stays framed), by decision, rather than stalling every call.
const WRITE_QUEUE: usize = 64;
/// How long an outbound connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The open connections, by remote address.
pub struct TcpConnections {
    writers: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    inputs: mpsc::Sender<TcpInput>,
    shutdown: CancellationToken,
}

impl TcpConnections {
    /// An empty table; connection tasks report on `inputs`.
    pub fn new(inputs: mpsc::Sender<TcpInput>, shutdown: CancellationToken) -> Self {
        Self {
            writers: HashMap::new(),
            inputs,
            shutdown,
        }
    }

    /// Records a connection the listener accepted.
    pub fn opened(&mut self, peer: SocketAddr, writer: mpsc::Sender<Vec<u8>>) {
        self.writers.insert(peer, writer);
    }

    /// Forgets a closed connection.
    pub fn closed(&mut self, peer: SocketAddr) {
        self.writers.remove(&peer);
    }

    /// Queues `bytes` for `dest`, opening a connection if there is none.
    pub fn send(&mut self, dest: SocketAddr, bytes: Vec<u8>) {
        if let Some(writer) = self.writers.get(&dest) {
            match writer.try_send(bytes) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(%dest, "TCP peer not reading; SIP message dropped");
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

    fn connect(&mut self, dest: SocketAddr, first: Vec<u8>) {
        let (writer, queue) = mpsc::channel(WRITE_QUEUE);
        let _ = writer.try_send(first);
        self.writers.insert(dest, writer);
        let (inputs, shutdown) = (self.inputs.clone(), self.shutdown.clone());
        let timeouts = SipConfig::default().tcp_limits().timeouts;
        tokio::spawn(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dest)).await {
                Ok(Ok(stream)) => {
                    tracing::debug!(%dest, "SIP TCP connection opened");
                    let connection = Connection {
                        peer: dest,
                        timeouts,
                        _permit: None,
                    };
                    serve(stream, connection, queue, inputs, shutdown).await;
                }
                Ok(Err(e)) => {
                    tracing::info!(%dest, error = %e, "cannot open a SIP TCP connection");
                    let _ = inputs.send(TcpInput::Closed { peer: dest }).await;
                }
                Err(_) => {
                    tracing::info!(%dest, "timed out opening a SIP TCP connection");
                    let _ = inputs.send(TcpInput::Closed { peer: dest }).await;
                }
            }
        });
    }
}

/// Accepts connections under the listener's caps until `shutdown`, each served by a task of
/// its own.
pub async fn accept(
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
            Ok((stream, peer)) => {
                // Over a cap the stream is dropped (closed) here; the gate counts and logs it.
                let Ok(permit) = gate.admit(peer) else {
                    continue;
                };
                let (writer, queue) = mpsc::channel(WRITE_QUEUE);
                // Registered before the first message can arrive: same channel, in order.
                if inputs
                    .send(TcpInput::Opened { peer, writer })
                    .await
                    .is_err()
                {
                    return;
                }
                let connection = Connection {
                    peer,
                    timeouts: limits.timeouts,
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

/// Who is at the other end of a connection and how long it may take.
struct Connection {
    peer: SocketAddr,
    timeouts: ConnectionTimeouts,
    /// The accepted connection's slot under the caps, freed when the task ends.
    _permit: Option<Permit>,
}

/// Reads and writes one connection until either side closes it, its stream breaks, or its
/// clock runs out.
async fn serve(
    stream: TcpStream,
    connection: Connection,
    mut queue: mpsc::Receiver<Vec<u8>>,
    inputs: mpsc::Sender<TcpInput>,
    shutdown: CancellationToken,
) {
    let peer = connection.peer;
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let mut framer = StreamFramer::new();
    let mut clock = ConnectionClock::new(Instant::now(), connection.timeouts);
    let mut buf = vec![0u8; 16 * 1024];
    'connection: loop {
        let deadline = clock.poll_timeout();
        let timer = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) => break,
                Ok(n) => {
                    let now = Instant::now();
                    clock.handle_read(now);
                    framer.push(buf.get(..n).unwrap_or_default());
                    let mut completed = false;
                    loop {
                        match framer.next_message() {
                            Ok(Some(bytes)) => {
                                completed = true;
                                if inputs.send(TcpInput::Message { peer, bytes }).await.is_err() {
                                    break 'connection;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::info!(%peer, error = %e, "closing a SIP TCP connection whose stream cannot be framed");
                                break 'connection;
                            }
                        }
                    }
                    clock.handle_framed(now, completed, framer.buffered() > 0);
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "SIP TCP read failed");
                    break;
                }
            },
            queued = queue.recv() => match queued {
                Some(bytes) => {
                    if let Err(e) = writer.write_all(&bytes).await {
                        tracing::debug!(%peer, error = %e, "SIP TCP write failed");
                        break;
                    }
                    clock.handle_written(Instant::now());
                }
                None => break,
            },
            () = timer => {
                if let Some(expiry) = clock.expired(Instant::now()) {
                    tracing::debug!(%peer, ?expiry, "closing a SIP TCP connection that ran out of time");
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
    let _ = inputs.send(TcpInput::Closed { peer }).await;
}
