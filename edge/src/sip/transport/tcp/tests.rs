//! Attacks on the SIP TCP listener over real sockets: a message that never ends, a connection
//! that says nothing, one IP over its cap, and a thousand idle sockets beside a real message.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{accept, TcpInput};
use crate::serve::{ConnectionLimits, ConnectionTimeouts, LimitedListener};

/// Longest any test waits for something that should happen (a hang guard, not a measure).
const HANG_GUARD: Duration = Duration::from_secs(10);

const OPTIONS: &[u8] = b"OPTIONS sip:edge@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-1\r\n\
From: <sip:probe@127.0.0.1>;tag=1\r\n\
To: <sip:edge@127.0.0.1>\r\n\
Call-ID: idle-test\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

/// A listener under `limits`, and the messages its connections hand over.
struct Listener {
    addr: SocketAddr,
    messages: mpsc::UnboundedReceiver<(SocketAddr, Vec<u8>)>,
    shutdown: CancellationToken,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Listener {
    /// The next message the listener passed on, and who sent it; a hang guard fails the test.
    async fn next_message(&mut self) -> (SocketAddr, Vec<u8>) {
        tokio::time::timeout(HANG_GUARD, self.messages.recv())
            .await
            .expect("a message in time")
            .expect("the listener is running")
    }
}

async fn listen(limits: ConnectionLimits) -> Listener {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let (inputs, mut inputs_rx) = mpsc::channel(1024);
    let (messages_tx, messages) = mpsc::unbounded_channel();
    tokio::spawn(accept(
        LimitedListener { listener, limits },
        inputs,
        shutdown.clone(),
    ));
    // Stands in for the SIP task: keeps the writers alive and passes messages on.
    tokio::spawn(async move {
        let mut writers = Vec::new();
        while let Some(input) = inputs_rx.recv().await {
            match input {
                TcpInput::Opened { writer, .. } => writers.push(writer),
                TcpInput::Message { peer, bytes } => {
                    let _ = messages_tx.send((peer.addr, bytes));
                }
                TcpInput::Closed { .. } | TcpInput::Failed { .. } => {}
            }
        }
    });
    Listener {
        addr,
        messages,
        shutdown,
    }
}

fn limits(message_ms: u64, idle_ms: u64, max_per_ip: u32, max_total: u32) -> ConnectionLimits {
    ConnectionLimits {
        timeouts: ConnectionTimeouts {
            message: Duration::from_millis(message_ms),
            idle: Duration::from_millis(idle_ms),
        },
        max_per_ip,
        max_total,
    }
}

async fn connect_from(ip: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::from(ip), 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// Waits until the server closes `stream` (EOF, reset or another error) and says how long that
/// took; the TLS listener's tests use it too.
pub(in crate::sip::transport) async fn time_until_closed<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server never closed the connection");
    start.elapsed()
}

#[tokio::test]
async fn a_message_that_never_ends_is_closed_after_the_message_timeout() {
    let listener = listen(limits(1_000, 60_000, 16, 64)).await;
    let mut stream = TcpStream::connect(listener.addr).await.unwrap();
    stream
        .write_all(b"OPTIONS sip:edge@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n")
        .await
        .unwrap();
    let took = time_until_closed(&mut stream).await;
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
}

#[tokio::test]
async fn a_trickled_message_is_closed_although_bytes_keep_arriving() {
    let listener = listen(limits(1_000, 60_000, 16, 64)).await;
    let mut stream = TcpStream::connect(listener.addr).await.unwrap();
    let start = Instant::now();
    let mut closed = false;
    for byte in b"OPTIONS sip:edge@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n".iter() {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if start.elapsed() > HANG_GUARD {
            break;
        }
    }
    if !closed {
        time_until_closed(&mut stream).await;
    }
    assert!(start.elapsed() < HANG_GUARD);
    assert!(start.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn a_connection_that_says_nothing_is_closed_after_the_idle_timeout() {
    let listener = listen(limits(60_000, 1_000, 16, 64)).await;
    let mut stream = TcpStream::connect(listener.addr).await.unwrap();
    let took = time_until_closed(&mut stream).await;
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
}

#[tokio::test]
async fn whole_messages_and_keepalives_keep_a_connection_open_past_the_message_timeout() {
    let mut listener = listen(limits(500, 1_500, 16, 64)).await;
    let mut stream = TcpStream::connect(listener.addr).await.unwrap();
    for _ in 0..4 {
        stream.write_all(OPTIONS).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        stream.write_all(b"\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    stream.write_all(OPTIONS).await.unwrap();
    for _ in 0..5 {
        let (_, bytes) = listener.next_message().await;
        assert_eq!(bytes, OPTIONS);
    }
}

#[tokio::test]
async fn one_ip_over_its_cap_is_refused_while_another_ip_is_served() {
    let mut listener = listen(limits(60_000, 60_000, 3, 64)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from([127, 0, 0, 1], listener.addr).await);
    }
    let mut extra = connect_from([127, 0, 0, 1], listener.addr).await;
    // Closed at once, not by a timeout (both are a minute).
    time_until_closed(&mut extra).await;

    let mut other = connect_from([127, 0, 0, 2], listener.addr).await;
    other.write_all(OPTIONS).await.unwrap();
    let (peer, bytes) = listener.next_message().await;
    assert_eq!(peer.ip(), IpAddr::from([127, 0, 0, 2]));
    assert_eq!(bytes, OPTIONS);

    // A connection held under the cap still works too.
    held[0].write_all(OPTIONS).await.unwrap();
    let (peer, _) = listener.next_message().await;
    assert_eq!(peer.ip(), IpAddr::from([127, 0, 0, 1]));
}

/// Raises the soft open-file limit to `need` if the hard limit allows; false if it cannot.
fn ensure_open_files(need: u64) -> bool {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return false;
    };
    soft >= need || (hard >= need && setrlimit(Resource::RLIMIT_NOFILE, need, hard).is_ok())
}

#[tokio::test]
async fn a_thousand_idle_connections_do_not_stop_a_real_message() {
    // Both ends of every socket are in this process.
    if !ensure_open_files(2_300) {
        eprintln!("SKIPPED: the hard open-file limit (ulimit -Hn) is under 2300");
        return;
    }
    let mut listener = listen(limits(60_000, 60_000, 2_000, 2_000)).await;
    let mut idle = Vec::new();
    for n in 0..1_000u32 {
        // Spread over 127.0.0.10-19 so that no one source runs out of ports.
        let ip = [127, 0, 0, 10 + (n % 10) as u8];
        idle.push(connect_from(ip, listener.addr).await);
    }
    let mut caller = connect_from([127, 0, 0, 2], listener.addr).await;
    caller.write_all(OPTIONS).await.unwrap();
    let (peer, bytes) = listener.next_message().await;
    assert_eq!(peer.ip(), IpAddr::from([127, 0, 0, 2]));
    assert_eq!(bytes, OPTIONS);
    drop(idle);
}
