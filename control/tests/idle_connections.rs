//! Slow and idle clients cannot hold the HTTP listeners: a request whose headers never end is
//! closed after the header timeout, a connection with nothing in flight after the idle timeout,
//! one IP over its connection cap is refused while another IP is served, and a thousand idle
//! sockets do not stop a real request — on the REST API and on the edge's HTTP listener. The
//! Twilio media stream's WebSocket outlives both timeouts. Every attack is made over real
//! sockets on 127.0.0.x; timeouts are set short, and a hang guard fails a server that waits.

use crate::support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{connect_from, control_config, edge_config, Backend, TestDb, SECRET};
use freya_control::config::ControlConfig;
use freya_control::server::ControlPlane;
use freya_edge::Edge;

/// Longest a test waits for the server to act (a hang guard, not a measure).
const HANG_GUARD: Duration = Duration::from_secs(10);
/// The short timeout the attacks are configured with.
const SHORT_MS: u32 = 1_000;
/// A timeout no test reaches.
const LONG_MS: u32 = 60_000;
/// A close a little before the configured timeout would still be a bug; scheduling slack
/// only ever makes it later.
const NOT_BEFORE: Duration = Duration::from_millis(900);

const HALF_REQUEST: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";

fn with_http(db_url: &str, header_ms: u32, idle_ms: u32, per_ip: u32, total: u32) -> ControlConfig {
    let mut config = control_config(db_url);
    config.http.header_timeout_ms = header_ms;
    config.http.idle_timeout_ms = idle_ms;
    config.http.max_connections_per_ip = per_ip;
    config.http.max_connections = total;
    config
}

async fn control_with(
    header_ms: u32,
    idle_ms: u32,
    per_ip: u32,
    total: u32,
) -> (TestDb, ControlPlane) {
    let db = TestDb::new(Backend::Sqlite).await;
    let control = ControlPlane::start(&with_http(&db.url, header_ms, idle_ms, per_ip, total))
        .await
        .expect("control starts");
    (db, control)
}

async fn control_and_edge_with(
    header_ms: u32,
    idle_ms: u32,
    per_ip: u32,
) -> (TestDb, ControlPlane, Edge, tempfile::TempDir) {
    let (db, control) = support::control_plane(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = edge_config(dir.path(), control.grpc_addr, SECRET);
    config.http.header_timeout_ms = header_ms;
    config.http.idle_timeout_ms = idle_ms;
    config.http.max_connections_per_ip = per_ip;
    let edge = Edge::start(&config).await.expect("edge starts");
    (db, control, edge, dir)
}

/// Reads `stream` until the server closes it, returning how long that took and what it sent.
async fn until_closed(stream: &mut TcpStream) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the server kept the connection open past {HANG_GUARD:?}"));
    (start.elapsed(), seen)
}

/// Sends a keep-alive `GET path` on `stream` and returns the status code of its response
/// (the response is read whole, by its Content-Length).
async fn get(stream: &mut TcpStream, path: &str) -> u16 {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send a request");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            if let Some(status) = complete_response(&seen) {
                return status;
            }
            let n = stream.read(&mut buf).await.expect("read a response");
            assert!(n > 0, "closed before a whole response: {seen:?}");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("a response within the hang guard")
}

fn complete_response(seen: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(seen).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    if body.len() < length {
        return None;
    }
    head.split(' ').nth(1)?.parse().ok()
}

/// Raises the soft open-file limit to `need` when the hard limit allows; false if it cannot.
fn ensure_open_files(need: u64) -> bool {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return false;
        }
        if limit.rlim_cur >= need {
            return true;
        }
        if limit.rlim_max < need {
            return false;
        }
        limit.rlim_cur = need;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
    }
}

async fn assert_half_request_closed_after_the_timeout(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(HALF_REQUEST).await.expect("send half");
    let (took, _) = until_closed(&mut stream).await;
    assert!(took >= NOT_BEFORE, "closed after only {took:?}");
}

#[tokio::test]
async fn api_closes_a_request_whose_headers_never_end() {
    let (db, control) = control_with(SHORT_MS, LONG_MS, 16, 64).await;
    assert_half_request_closed_after_the_timeout(control.http_addr).await;
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn api_closes_headers_trickled_a_byte_at_a_time() {
    let (db, control) = control_with(SHORT_MS, LONG_MS, 16, 64).await;
    let mut stream = TcpStream::connect(control.http_addr)
        .await
        .expect("connect");
    let start = Instant::now();
    let header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for byte in header {
        if stream.write_all(&[*byte]).await.is_err() || start.elapsed() > HANG_GUARD {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = until_closed(&mut stream).await;
    let took = start.elapsed();
    assert!(
        took >= NOT_BEFORE && took < HANG_GUARD,
        "closed after {took:?}"
    );
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn api_closes_a_connection_that_sends_nothing_after_the_idle_timeout() {
    let (db, control) = control_with(LONG_MS, SHORT_MS, 16, 64).await;
    let mut stream = TcpStream::connect(control.http_addr)
        .await
        .expect("connect");
    let (took, _) = until_closed(&mut stream).await;
    assert!(took >= NOT_BEFORE, "closed after only {took:?}");
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn api_keep_alive_outlives_the_header_timeout_and_closes_after_the_idle_timeout() {
    // Header 1 s, idle 3 s: a keep-alive connection quiet for 1.5 s between requests is fine.
    let (db, control) = control_with(SHORT_MS, 3 * SHORT_MS, 16, 64).await;
    let mut stream = TcpStream::connect(control.http_addr)
        .await
        .expect("connect");
    assert_eq!(get(&mut stream, "/healthz").await, 200);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(get(&mut stream, "/healthz").await, 200);
    let (took, _) = until_closed(&mut stream).await;
    assert!(
        took >= Duration::from_millis(2_900),
        "closed after only {took:?}"
    );
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn api_refuses_one_ip_over_its_cap_and_serves_another_ip() {
    let (db, control) = control_with(LONG_MS, LONG_MS, 3, 64).await;
    let addr = control.http_addr;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from([127, 0, 0, 1], addr).await);
    }
    // The fourth from the same IP is answered 429 and closed at once (the timeouts are a
    // minute, the hang guard ten seconds).
    let mut extra = connect_from([127, 0, 0, 1], addr).await;
    let (_, answer) = until_closed(&mut extra).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 429"),
        "{answer}"
    );
    let mut other = connect_from([127, 0, 0, 2], addr).await;
    assert_eq!(get(&mut other, "/healthz").await, 200);
    // The connections under the cap still work.
    assert_eq!(get(&mut held[0], "/healthz").await, 200);
    // A slot freed is a slot again.
    drop(held.pop());
    let mut again = support::eventually(HANG_GUARD, "a freed slot", move || async move {
        let mut stream = connect_from([127, 0, 0, 1], addr).await;
        let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        stream.write_all(request).await.ok()?;
        let mut buf = [0u8; 12];
        stream.read_exact(&mut buf).await.ok()?;
        (&buf == b"HTTP/1.1 200").then_some(stream)
    })
    .await;
    let _ = again.shutdown().await;
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_serves_a_request_beside_a_thousand_idle_sockets() {
    // Both ends of every socket are in this process.
    if !ensure_open_files(2_400) {
        eprintln!("SKIPPED: the hard open-file limit (ulimit -Hn) is under 2400");
        return;
    }
    let (db, control) = control_with(LONG_MS, LONG_MS, 2_000, 4_000).await;
    let mut idle = Vec::new();
    for n in 0..1_000u32 {
        // Spread over 127.0.0.10-19 so that no one source runs short of ports.
        idle.push(connect_from([127, 0, 0, 10 + (n % 10) as u8], control.http_addr).await);
    }
    // And half-sent requests on some of them.
    for stream in idle.iter_mut().step_by(10) {
        stream.write_all(HALF_REQUEST).await.expect("send half");
    }
    let response = reqwest::Client::new()
        .get(format!("http://{}/healthz", control.http_addr))
        .timeout(HANG_GUARD)
        .send()
        .await
        .expect("a real request is served");
    assert_eq!(response.status(), 200);
    drop(idle);
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_http_closes_a_request_whose_headers_never_end() {
    let (db, control, edge, _dir) = control_and_edge_with(SHORT_MS, LONG_MS, 16).await;
    assert_half_request_closed_after_the_timeout(edge.http_addr).await;
    edge.stop().await;
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_http_refuses_one_ip_over_its_cap_and_serves_another_ip() {
    let (db, control, edge, _dir) = control_and_edge_with(LONG_MS, LONG_MS, 2).await;
    let held = [
        connect_from([127, 0, 0, 1], edge.http_addr).await,
        connect_from([127, 0, 0, 1], edge.http_addr).await,
    ];
    let mut extra = connect_from([127, 0, 0, 1], edge.http_addr).await;
    until_closed(&mut extra).await;
    let mut other = connect_from([127, 0, 0, 2], edge.http_addr).await;
    assert_eq!(get(&mut other, "/healthz").await, 200);
    drop(held);
    edge.stop().await;
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_media_stream_outlives_the_header_and_idle_timeouts() {
    let (db, control, edge, _dir) = control_and_edge_with(SHORT_MS, SHORT_MS, 16).await;
    let url = format!("ws://{}/twilio/media", edge.http_addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the upgrade succeeds");
    // Quiet for three times both timeouts (the stream's own `start` timeout is 10 s).
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    socket
        .send(Message::Ping(b"still there?".to_vec().into()))
        .await
        .expect("the socket is still open");
    let pong = tokio::time::timeout(HANG_GUARD, async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Pong(payload)) => return Some(payload),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("an answer within the hang guard");
    assert_eq!(pong.as_deref(), Some(&b"still there?"[..]));
    edge.stop().await;
    control.stop().await;
    db.cleanup().await;
}
