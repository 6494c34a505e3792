//! Bodies and messages over their limit are refused up front: a request announcing a body larger
//! than its route takes gets a 413 problem from its headers alone — to the REST API and to the
//! edge's Twilio webhook — and the Twilio media stream closes on a message over its limit, or on
//! media sent before its `start`. Each attack is performed over a raw socket or a WebSocket
//! client, with short deadlines so a server that waits for the body fails the test rather than
//! hanging it.

use crate::support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{edge_config, Backend, TestDb, SECRET};
use freya_control::server::ControlPlane;
use freya_edge::Edge;

/// How long a refusal may take: it needs no body, so it comes at once.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(3);

/// What came back on a raw connection: the status line's code, the headers (lower-cased) and
/// the body.
struct RawAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `POST path` to `addr` (with `extra` header lines) announcing a 100 MB body and sends
/// none of it, then reads the answer; panics when none is complete within [`REFUSAL_DEADLINE`].
async fn post_announcing_100_mb(addr: &str, path: &str, extra: &str) -> RawAnswer {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{extra}\
         Content-Length: 100000000\r\n\r\n"
    );
    socket
        .write_all(head.as_bytes())
        .await
        .expect("send headers");
    let mut read = Vec::new();
    let deadline = tokio::time::Instant::now() + REFUSAL_DEADLINE;
    loop {
        if let Some(answer) = complete_answer(&read) {
            return answer;
        }
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, socket.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => read.extend_from_slice(&chunk[..n]),
            Err(_) => panic!(
                "no answer to a 100 MB Content-Length within {REFUSAL_DEADLINE:?}: the server \
                 waits for the body (read so far: {:?})",
                String::from_utf8_lossy(&read)
            ),
        }
    }
    complete_answer(&read).unwrap_or_else(|| {
        panic!(
            "the connection ended without a complete answer: {:?}",
            String::from_utf8_lossy(&read)
        )
    })
}

/// The answer in `read`, once its head and `Content-Length` bytes of body have arrived.
fn complete_answer(read: &[u8]) -> Option<RawAnswer> {
    let text = String::from_utf8_lossy(read);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())?;
    (body.len() >= length).then(|| RawAnswer {
        status,
        headers,
        body: body[..length].to_owned(),
    })
}

fn assert_refused_as_too_large(answer: &RawAnswer) {
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json"),
        "{}",
        answer.body
    );
    let problem: serde_json::Value = serde_json::from_str(&answer.body).expect("problem JSON");
    assert_eq!(problem["status"], 413, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Content-Length")),
        "{problem}"
    );
}

/// A control plane and an edge linked to it.
async fn control_and_edge() -> (TestDb, ControlPlane, Edge, tempfile::TempDir) {
    let (db, control) = support::control_plane(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = Edge::start(&edge_config(dir.path(), control.grpc_addr, SECRET))
        .await
        .expect("edge starts");
    (db, control, edge, dir)
}

async fn teardown(db: TestDb, control: ControlPlane, edge: Edge) {
    edge.stop().await;
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn api_refuses_a_100_mb_content_length_from_the_headers() {
    let (db, control) = support::control_plane(Backend::Sqlite).await;
    // With a credential that may create agents: the body would be the next thing read.
    let (_, [owner, ..]) = support::http::workspace_with_keys(&control, "Limits").await;
    let auth = format!("Authorization: Bearer {owner}\r\n");
    let addr = control.http_addr.to_string();
    assert_refused_as_too_large(&post_announcing_100_mb(&addr, "/v1/agents", &auth).await);
    // And before any credential is looked at.
    assert_refused_as_too_large(&post_announcing_100_mb(&addr, "/v1/agents", "").await);
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_webhook_refuses_a_100_mb_content_length_from_the_headers() {
    let (db, control, edge, _dir) = control_and_edge().await;
    let addr = edge.http_addr.to_string();
    assert_refused_as_too_large(&post_announcing_100_mb(&addr, "/twilio/voice", "").await);
    assert_refused_as_too_large(
        &post_announcing_100_mb(&addr, "/twilio/status?ticket=x", "").await,
    );
    teardown(db, control, edge).await;
}

/// How a media stream ended, as its client saw it.
#[derive(Debug, PartialEq)]
enum Ending {
    /// A close frame with this code.
    Closed(CloseCode),
    /// The connection dropped without one.
    Dropped,
}

/// Reads `socket` until the edge ends it; panics when it is still open after
/// [`REFUSAL_DEADLINE`].
async fn ending<S>(mut socket: S) -> Ending
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + REFUSAL_DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                return frame.map_or(Ending::Dropped, |f| Ending::Closed(f.code))
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return Ending::Dropped,
            Err(_) => panic!("the media stream is still open after {REFUSAL_DEADLINE:?}"),
        }
    }
}

fn media_url(edge: &Edge) -> String {
    format!("ws://{}/twilio/media", edge.http_addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_stream_closes_on_a_15_mb_frame() {
    let (db, control, edge, _dir) = control_and_edge().await;
    let (socket, _) = tokio_tungstenite::connect_async(media_url(&edge))
        .await
        .expect("upgrade");
    let (mut sink, stream) = socket.split();
    // Sent while the answer is read: the edge refuses the frame from its header and closes the
    // socket long before 15 MB could have arrived, so the send itself may fail.
    let sending = tokio::spawn(async move {
        let _ = sink.send(Message::text("x".repeat(15 * 1024 * 1024))).await;
        sink
    });
    let ended = ending(stream).await;
    assert!(
        matches!(ended, Ending::Closed(CloseCode::Size) | Ending::Dropped),
        "{ended:?}"
    );
    drop(sending.await);
    teardown(db, control, edge).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_stream_closes_on_media_before_start() {
    let (db, control, edge, _dir) = control_and_edge().await;
    let (mut socket, _) = tokio_tungstenite::connect_async(media_url(&edge))
        .await
        .expect("upgrade");
    let connected = r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#;
    socket.send(Message::text(connected)).await.expect("send");
    let media = r#"{"event":"media","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"5","payload":"//////////8="}}"#;
    socket.send(Message::text(media)).await.expect("send");
    assert_eq!(ending(socket).await, Ending::Closed(CloseCode::Policy));
    teardown(db, control, edge).await;
}
