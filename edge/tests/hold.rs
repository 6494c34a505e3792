//! Hold and resume against a real edge, with real sockets on loopback: a caller written by hand
//! (SIP, RTP and RTCP on its own sockets) calls, talks, then puts the call on hold with a
//! re-INVITE offering `a=sendonly`, then `a=inactive`, then the old-style `c=IN IP4 0.0.0.0`,
//! and finally resumes with `a=sendrecv`.
//!
//! Each answer must carry the RFC 3264 direction with a higher `o=` version; no RTP may reach the
//! caller while held; the call must outlive the edge's RTP inactivity timeout (2 s here) while
//! held, kept alive only by the caller's RTCP reports; RTP must flow again after the resume; and
//! the call's record must hold `call.held` and `call.resumed`. Before this, the hold was answered
//! `sendrecv` with the first answer's version, 50 packets a second kept coming, and the held call
//! was hung up with `rtp_timeout`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::support::cached_edge::cached_edge_config;
use crate::support::flood::{parse_reply, Reply, NUMBER};
use freya_edge::control_link::spool::EventSpool;
use freya_edge::Edge;
use tokio::net::UdpSocket;

const CALLER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// An edge on 127.0.0.1 answering [`NUMBER`] with an agent, RTP inactivity timeout 2 s and a
/// hold timeout of 1.5 s: shorter than the RTP one, so only the caller's RTCP (every 0.5 s)
/// keeps a held call.
async fn start_edge(data_dir: &Path) -> Edge {
    let agent = serde_json::json!({"name": "Desk"});
    let mut config = cached_edge_config(data_dir, "hold-edge", NUMBER, agent);
    config.capacity = 4;
    config.rtp.port_min = 37_400;
    config.rtp.port_max = 37_499;
    config.rtp.inactivity_timeout_ms = 2_000;
    config.rtp.hold_timeout_ms = 1_500;
    Edge::start(&config).await.expect("edge starts")
}

/// The caller's side of the call: its sockets and dialog.
struct Caller {
    sip: UdpSocket,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    edge: SocketAddr,
    call_id: String,
    to: String,
    /// The edge's RTP address, from its answer.
    media: SocketAddr,
    seq: u16,
}

impl Caller {
    fn offer(&self, connection: &str, direction: &str) -> String {
        let port = self.rtp.local_addr().expect("rtp").port();
        format!(
            "v=0\r\no=- 1 1 IN IP4 {CALLER}\r\ns=-\r\nc=IN IP4 {connection}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
        )
    }

    fn request(&self, method: &str, cseq: u32, branch: &str, body: &str) -> String {
        let local = self.sip.local_addr().expect("sip");
        let edge = self.edge;
        let to = if self.to.is_empty() {
            format!("<sip:{NUMBER}@{edge}>")
        } else {
            self.to.clone()
        };
        let content_type = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} sip:{NUMBER}@{edge} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:caller@{local}>;tag=holdcaller\r\nTo: {to}\r\n\
             Call-ID: {}\r\nCSeq: {cseq} {method}\r\nContact: <sip:caller@{local}>\r\n\
             {content_type}Content-Length: {}\r\n\r\n{body}",
            self.call_id,
            body.len()
        )
    }

    /// Sends `request` until its final response arrives (retransmitting on UDP).
    async fn transact(&self, request: &str, cseq: u32, method: &str) -> Reply {
        let cseq = format!("{cseq} {method}");
        let mut buf = vec![0u8; 65_536];
        for _ in 0..8 {
            self.sip
                .send_to(request.as_bytes(), self.edge)
                .await
                .expect("request sent");
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            while let Ok(Ok((n, _))) =
                tokio::time::timeout_at(deadline, self.sip.recv_from(&mut buf)).await
            {
                let Some(reply) = buf.get(..n).and_then(parse_reply) else {
                    continue;
                };
                if reply.call_id == self.call_id && reply.cseq == cseq && reply.code >= 200 {
                    return reply;
                }
            }
        }
        panic!("no final response to {method}");
    }

    /// A re-INVITE offering `body`, acknowledged; returns the answer.
    async fn reinvite(&self, cseq: u32, body: &str) -> Reply {
        let request = self.request("INVITE", cseq, &format!("re{cseq}"), body);
        let reply = self.transact(&request, cseq, "INVITE").await;
        assert_eq!(reply.code, 200, "{reply:?}");
        let ack = self.request("ACK", cseq, &format!("ack{cseq}"), "");
        self.sip
            .send_to(ack.as_bytes(), self.edge)
            .await
            .expect("ACK");
        reply
    }

    /// For `length`: sends RTP every 20 ms when `talking`, and an RTCP receiver report every
    /// 500 ms when `reporting`; returns how many RTP packets arrived from the edge.
    async fn run(&mut self, length: Duration, talking: bool, reporting: bool) -> u32 {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut report = tokio::time::interval(Duration::from_millis(500));
        let edge_rtcp = SocketAddr::new(self.media.ip(), self.media.port() + 1);
        let until = tokio::time::Instant::now() + length;
        let mut received = 0;
        let mut buf = vec![0u8; 2048];
        let mut drain = vec![0u8; 2048];
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return received,
                _ = tick.tick(), if talking => {
                    let mut packet = vec![0x80, 0];
                    packet.extend_from_slice(&self.seq.to_be_bytes());
                    packet.extend_from_slice(&(u32::from(self.seq) * 160).to_be_bytes());
                    packet.extend_from_slice(&0x5eed_u32.to_be_bytes());
                    packet.extend_from_slice(&[0xff; 160]);
                    let _ = self.rtp.send_to(&packet, self.media).await;
                    self.seq = self.seq.wrapping_add(1);
                }
                _ = report.tick(), if reporting => {
                    // An empty receiver report (RFC 3550 §6.4.2): V=2, PT=201, length 1.
                    let mut rr = vec![0x80, 201, 0, 1];
                    rr.extend_from_slice(&0x5eed_u32.to_be_bytes());
                    let _ = self.rtcp.send_to(&rr, edge_rtcp).await;
                }
                got = self.rtp.recv_from(&mut buf) => {
                    if let Ok((n, _)) = got {
                        if n > 12 && buf[0] >> 6 == 2 && buf[1] & 0x7f == 0 {
                            received += 1;
                        }
                    }
                }
                // Drain the RTCP socket: the edge's reports are not counted.
                _ = self.rtcp.recv_from(&mut drain) => {}
            }
        }
    }
}

/// The `o=` version and the audio direction of an SDP answer.
fn version_and_direction(sdp: &str) -> (u64, String) {
    let version = sdp
        .lines()
        .find_map(|l| l.strip_prefix("o="))
        .and_then(|o| o.split(' ').nth(2))
        .and_then(|v| v.parse().ok())
        .expect("o= version");
    let direction = sdp
        .lines()
        .filter_map(|l| l.trim().strip_prefix("a="))
        .find(|a| matches!(*a, "sendrecv" | "sendonly" | "recvonly" | "inactive"))
        .unwrap_or("sendrecv")
        .to_owned();
    (version, direction)
}

fn media_address(sdp: &str) -> SocketAddr {
    let ip: IpAddr = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))
        .and_then(|a| a.trim().parse().ok())
        .expect("c= address");
    let port: u16 = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .and_then(|m| m.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("m=audio port");
    SocketAddr::new(ip, port)
}

/// Binds an RTP socket and the RTCP socket one port above it on [`CALLER`].
async fn rtp_pair() -> (UdpSocket, UdpSocket) {
    for _ in 0..50 {
        let rtp = UdpSocket::bind(SocketAddr::new(CALLER, 0))
            .await
            .expect("rtp");
        let port = rtp.local_addr().expect("rtp").port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(CALLER, port + 1)).await {
            return (rtp, rtcp);
        }
    }
    panic!("no RTP/RTCP port pair");
}

/// Calls the edge from [`CALLER`] and acknowledges the answer; returns the caller and the
/// answer's body.
async fn call(edge: &Edge, name: &str) -> (Caller, String) {
    let sip = UdpSocket::bind(SocketAddr::new(CALLER, 0))
        .await
        .expect("sip");
    let (rtp, rtcp) = rtp_pair().await;
    let mut caller = Caller {
        sip,
        rtp,
        rtcp,
        edge: edge.sip_addr,
        call_id: format!("{name}-{}", std::process::id()),
        to: String::new(),
        media: edge.sip_addr,
        seq: 1,
    };
    let invite = caller.request(
        "INVITE",
        1,
        "inv",
        &caller.offer(&CALLER.to_string(), "sendrecv"),
    );
    let answer = caller.transact(&invite, 1, "INVITE").await;
    assert_eq!(answer.code, 200, "{answer:?}");
    caller.to = answer.to.clone();
    caller.media = media_address(&answer.body);
    let ack = caller.request("ACK", 1, "ack1", "");
    caller
        .sip
        .send_to(ack.as_bytes(), caller.edge)
        .await
        .expect("ACK");
    (caller, answer.body)
}

/// The call events the edge spooled (its control plane was never reachable), oldest first.
fn spooled(data_dir: &Path) -> Vec<freya_shared::model::CallEvent> {
    let spool = EventSpool::open(&data_dir.join("spool")).expect("spool");
    spool
        .pending_ids()
        .filter_map(|id| spool.get(id).cloned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_call_gets_no_rtp_outlives_the_rtp_timeout_on_rtcp_and_resumes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = start_edge(dir.path()).await;
    let (mut caller, answer) = call(&edge, "hold").await;
    let (mut version, direction) = version_and_direction(&answer);
    assert_eq!(direction, "sendrecv");

    let talking = caller.run(Duration::from_secs(1), true, true).await;
    assert!(talking >= 20, "RTP flows before the hold: {talking}");

    // Hold three ways; each answer says so with a higher version, and no RTP comes.
    let caller_ip = CALLER.to_string();
    let holds = [
        (caller.offer(&caller_ip, "sendonly"), "recvonly"),
        (caller.offer(&caller_ip, "inactive"), "inactive"),
        (caller.offer("0.0.0.0", "sendrecv"), "recvonly"),
    ];
    for (cseq, (offer, expected)) in (2..).zip(holds) {
        let reply = caller.reinvite(cseq, &offer).await;
        let (v, direction) = version_and_direction(&reply.body);
        assert_eq!(direction, expected, "answer to {offer}");
        assert!(v > version, "the o= version goes up: {v} after {version}");
        version = v;
        // Packets already in flight when the answer left are not the edge's fault.
        caller.run(Duration::from_millis(200), false, true).await;
        // Longer than both timeouts in all: only RTCP keeps the call.
        let held = caller.run(Duration::from_millis(2_000), false, true).await;
        assert_eq!(held, 0, "no RTP from the edge while held ({expected})");
    }

    let reply = caller
        .reinvite(5, &caller.offer(&caller_ip, "sendrecv"))
        .await;
    let (v, direction) = version_and_direction(&reply.body);
    assert_eq!(direction, "sendrecv");
    assert!(v > version);
    let resumed = caller.run(Duration::from_secs(1), true, true).await;
    assert!(resumed >= 20, "RTP flows again after the resume: {resumed}");
    // A refresh that changes nothing keeps the version.
    let refresh = caller
        .reinvite(6, &caller.offer(&caller_ip, "sendrecv"))
        .await;
    assert_eq!(version_and_direction(&refresh.body).0, v);

    let bye = caller.request("BYE", 7, "bye", "");
    let reply = caller.transact(&bye, 7, "BYE").await;
    assert_eq!(
        reply.code, 200,
        "the call was still up for our BYE: {reply:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    edge.stop().await;

    let events = spooled(dir.path());
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "call.held").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "call.resumed").count(),
        1,
        "{kinds:?}"
    );
    let held_at = kinds.iter().position(|k| *k == "call.held");
    let resumed_at = kinds.iter().position(|k| *k == "call.resumed");
    assert!(held_at < resumed_at, "{kinds:?}");
    let ended = events
        .iter()
        .find(|e| e.kind == "call.ended")
        .expect("call.ended");
    assert_eq!(
        ended.payload["reason"], "caller_hangup",
        "{}",
        ended.payload
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_call_that_goes_silent_is_hung_up_at_the_hold_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = start_edge(dir.path()).await;
    let (mut caller, _) = call(&edge, "gone").await;
    caller.run(Duration::from_millis(500), true, true).await;
    let offer = caller.offer(&CALLER.to_string(), "inactive");
    caller.reinvite(2, &offer).await;
    // Neither RTP nor RTCP: the edge hangs up after the 1.5 s hold timeout.
    let mut buf = vec![0u8; 65_536];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let bye = loop {
        let Ok(Ok((n, from))) =
            tokio::time::timeout_at(deadline, caller.sip.recv_from(&mut buf)).await
        else {
            break None;
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.starts_with("BYE ") {
            // Answered, as a caller does: the edge records the call once its BYE is answered.
            let copied = ["Via:", "From:", "To:", "Call-ID:", "CSeq:"];
            let headers: String = (text.lines())
                .filter(|l| copied.iter().any(|h| l.starts_with(h)))
                .map(|l| format!("{l}\r\n"))
                .collect();
            let ok = format!("SIP/2.0 200 OK\r\n{headers}Content-Length: 0\r\n\r\n");
            let _ = caller.sip.send_to(ok.as_bytes(), from).await;
            break Some(text);
        }
    };
    assert!(
        bye.is_some(),
        "the edge hangs up a held call that went silent"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    edge.stop().await;
    let events = spooled(dir.path());
    let ended = events
        .iter()
        .find(|e| e.kind == "call.ended")
        .expect("call.ended");
    assert_eq!(ended.payload["reason"], "hold_timeout", "{}", ended.payload);
}
