//! The two sides of an INVITE flood against a real edge on loopback: an edge answering from a
//! cached configuration (no control plane: its link retries in the background), a flooder that
//! sends new INVITEs at a fixed rate and never acknowledges anything, and a real caller written
//! by hand (SIP and RTP on its own sockets) that calls, acknowledges, talks and hangs up.
//! Shared by `tests/invite_flood.rs` and `examples/invite_flood_bench.rs`.

#![allow(dead_code)] // each user takes what it needs

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use freya_edge::Edge;
use tokio::net::UdpSocket;

use super::cached_edge::cached_edge_config;

/// The number the edge routes to its one agent.
pub const NUMBER: &str = "demo";

/// The edge's capacity and flood limits for one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub capacity: u32,
    pub invites_per_second_per_source: f64,
    pub invite_burst_per_source: u32,
    pub max_unconfirmed: u32,
    pub max_unconfirmed_per_source: u32,
}

/// Starts an edge on 127.0.0.1 whose cached configuration routes [`NUMBER`] to an agent with
/// the offline defaults (rules replier, espeak-ng) and a greeting. `data_dir` must be fresh.
pub async fn start_edge(data_dir: &Path, limits: Limits, rtp_ports: (u16, u16)) -> Edge {
    let agent = serde_json::json!({"name": "Desk", "first_message": "Hello, thanks for calling."});
    let mut config = cached_edge_config(data_dir, "flood-edge", NUMBER, agent);
    config.capacity = limits.capacity;
    config.sip.invites_per_second_per_source = limits.invites_per_second_per_source;
    config.sip.invite_burst_per_source = limits.invite_burst_per_source;
    config.sip.max_unconfirmed = limits.max_unconfirmed;
    config.sip.max_unconfirmed_per_source = limits.max_unconfirmed_per_source;
    config.rtp.port_min = rtp_ports.0;
    config.rtp.port_max = rtp_ports.1;
    let edge = Edge::start(&config).await.expect("edge starts");
    assert!(
        edge.state.snapshot().route(NUMBER).is_some(),
        "the cached configuration routes {NUMBER}"
    );
    edge
}

/// An SDP offer of PCMU (and telephone events) at `rtp`, as a plain phone makes it.
pub fn pcmu_offer(rtp: SocketAddr) -> String {
    let ip = rtp.ip();
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
        rtp.port()
    )
}

/// An INVITE for [`NUMBER`] from `local`, offering PCMU at `rtp`.
pub fn invite(
    call_id: &str,
    branch: &str,
    local: SocketAddr,
    edge: SocketAddr,
    rtp: SocketAddr,
) -> String {
    let sdp = pcmu_offer(rtp);
    format!(
        "INVITE sip:{NUMBER}@{edge} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:caller@{local}>;tag=t{branch}\r\nTo: <sip:{NUMBER}@{edge}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{local}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

/// A SIP response, as far as these callers read one.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub reason: String,
    pub call_id: String,
    pub cseq: String,
    pub to: String,
    pub retry_after: Option<u32>,
    pub body: String,
}

/// Reads a response; `None` for requests and garbage.
pub fn parse_reply(bytes: &[u8]) -> Option<Reply> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.split("\r\n");
    let status = lines.next()?.strip_prefix("SIP/2.0 ")?;
    let (code, reason) = status.split_once(' ').unwrap_or((status, ""));
    let mut reply = Reply {
        code: code.parse().ok()?,
        reason: reason.to_owned(),
        call_id: String::new(),
        cseq: String::new(),
        to: String::new(),
        retry_after: None,
        body: body.to_owned(),
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "call-id" | "i" => reply.call_id = value.to_owned(),
            "cseq" => reply.cseq = value.to_owned(),
            "to" | "t" => reply.to = value.to_owned(),
            "retry-after" => reply.retry_after = value.split(';').next()?.trim().parse().ok(),
            _ => {}
        }
    }
    Some(reply)
}

/// What the flood got back: the first final response to each of its INVITEs.
#[derive(Debug, Default)]
pub struct FloodOutcome {
    pub sent: usize,
    pub finals: HashMap<String, Reply>,
}

impl FloodOutcome {
    /// Final responses with `code`.
    pub fn count(&self, code: u16) -> usize {
        self.finals.values().filter(|r| r.code == code).count()
    }

    /// 503s that carry `Retry-After`.
    pub fn refused_with_retry_after(&self) -> usize {
        self.finals
            .values()
            .filter(|r| r.code == 503 && r.retry_after.is_some_and(|s| s >= 1))
            .count()
    }
}

/// Sends `per_second` new INVITEs a second (each its own Call-ID) from `from` to `edge` for
/// `length`, acknowledging nothing, and collects the final responses until `linger` after the
/// last one.
pub async fn flood(
    edge: SocketAddr,
    from: IpAddr,
    per_second: u32,
    length: Duration,
    linger: Duration,
) -> FloodOutcome {
    let socket = Arc::new(
        UdpSocket::bind(SocketAddr::new(from, 0))
            .await
            .expect("flood socket"),
    );
    let local = socket.local_addr().expect("flood address");
    let finals: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
    let receiver = {
        let (socket, finals) = (socket.clone(), finals.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, _)) = socket.recv_from(&mut buf).await {
                let Some(reply) = buf.get(..n).and_then(parse_reply) else {
                    continue; // RTP from an answered flood call, or a request
                };
                if reply.code >= 200 {
                    let mut finals = finals.lock().expect("finals");
                    finals.entry(reply.call_id.clone()).or_insert(reply);
                }
            }
        })
    };
    let run = format!("{:x}", rand_tag());
    let total = (f64::from(per_second) * length.as_secs_f64()).round() as usize;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(per_second)));
    for n in 0..total {
        tick.tick().await;
        let call_id = format!("flood-{run}-{n}");
        let message = invite(&call_id, &format!("{run}f{n}"), local, edge, local);
        let _ = socket.send_to(message.as_bytes(), edge).await;
    }
    tokio::time::sleep(linger).await;
    receiver.abort();
    let finals = std::mem::take(&mut *finals.lock().expect("finals"));
    FloodOutcome {
        sent: total,
        finals,
    }
}

/// How one real call went.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    /// The final response to the INVITE; 0 when none came in 32 s (RFC 3261 Timer B).
    pub code: u16,
    pub retry_after: Option<u32>,
    /// INVITE sent → final response received.
    pub setup: Duration,
    /// INVITE sent → the first RTP packet from the edge with sound in it (the agent speaking).
    pub first_audio: Option<Duration>,
    /// RTP packets the edge sent us.
    pub rtp_received: usize,
    /// RTP packets we sent.
    pub rtp_sent: usize,
    /// Whether our BYE got its 200 OK.
    pub bye_answered: bool,
}

/// Places one call from `from` to `edge`: INVITE (retransmitted on the RFC 3261 schedule until a
/// response), ACK, `talk` of µ-law silence each 20 ms while counting the edge's RTP (waiting for
/// the agent's first audio up to `talk`, when `until_audio`), then BYE.
pub async fn real_call(
    edge: SocketAddr,
    from: IpAddr,
    talk: Duration,
    until_audio: bool,
) -> CallOutcome {
    let sip = UdpSocket::bind(SocketAddr::new(from, 0))
        .await
        .expect("caller SIP socket");
    let rtp = UdpSocket::bind(SocketAddr::new(from, 0))
        .await
        .expect("caller RTP socket");
    let local = sip.local_addr().expect("caller address");
    let tag = format!("{:x}", rand_tag());
    let call_id = format!("real-{tag}");
    let message = invite(
        &call_id,
        &format!("{tag}i"),
        local,
        edge,
        rtp.local_addr().expect("rtp address"),
    );
    let started = Instant::now();
    let mut buf = vec![0u8; 65_536];
    let mut retransmit = Duration::from_millis(500);
    let mut next_send = tokio::time::Instant::now();
    let answer = loop {
        let now = tokio::time::Instant::now();
        if now >= next_send {
            sip.send_to(message.as_bytes(), edge)
                .await
                .expect("INVITE sent");
            next_send = now + retransmit;
            retransmit = (retransmit * 2).min(Duration::from_secs(4));
        }
        if started.elapsed() > Duration::from_secs(32) {
            // Timer B: the call failed without an answer.
            return CallOutcome {
                code: 0,
                retry_after: None,
                setup: started.elapsed(),
                first_audio: None,
                rtp_received: 0,
                rtp_sent: 0,
                bye_answered: false,
            };
        }
        let Ok(Ok((n, _))) = tokio::time::timeout_at(next_send, sip.recv_from(&mut buf)).await
        else {
            continue;
        };
        let Some(reply) = buf.get(..n).and_then(parse_reply) else {
            continue;
        };
        if reply.call_id == call_id && reply.code >= 200 && reply.cseq.ends_with("INVITE") {
            break reply;
        }
        if reply.call_id == call_id {
            retransmit = Duration::from_secs(4); // a provisional response: stop retransmitting soon
            next_send = now + retransmit;
        }
    };
    let setup = started.elapsed();
    let mut outcome = CallOutcome {
        code: answer.code,
        retry_after: answer.retry_after,
        setup,
        first_audio: None,
        rtp_received: 0,
        rtp_sent: 0,
        bye_answered: false,
    };
    let in_dialog = |method: &str, cseq: u32, branch: &str| {
        format!(
            "{method} sip:{NUMBER}@{edge} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:caller@{local}>;tag=t{tag}i\r\nTo: {}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            answer.to
        )
    };
    if answer.code != 200 {
        // A final non-2xx is acknowledged within its transaction (same branch).
        let ack = in_dialog("ACK", 1, &format!("{tag}i"));
        let _ = sip.send_to(ack.as_bytes(), edge).await;
        return outcome;
    }
    let ack = in_dialog("ACK", 1, &format!("{tag}a"));
    sip.send_to(ack.as_bytes(), edge).await.expect("ACK sent");
    let media = media_address(&answer.body).expect("the 200 OK carries an SDP answer");
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let (mut seq, mut ts) = (1u16, 0u32);
    let mut sip_buf = vec![0u8; 65_536];
    let talking = tokio::time::Instant::now();
    loop {
        let done = talking.elapsed() >= talk || (until_audio && outcome.first_audio.is_some());
        if done {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {
                let mut packet = vec![0x80, 0];
                packet.extend_from_slice(&seq.to_be_bytes());
                packet.extend_from_slice(&ts.to_be_bytes());
                packet.extend_from_slice(&0x5eed_u32.to_be_bytes());
                packet.extend_from_slice(&[0xff; 160]);
                let _ = rtp.send_to(&packet, media).await;
                outcome.rtp_sent += 1;
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
            }
            received = rtp.recv_from(&mut buf) => {
                let Ok((n, _)) = received else { continue };
                if n > 12 && buf[0] >> 6 == 2 && buf[1] & 0x7f == 0 {
                    outcome.rtp_received += 1;
                    let payload = &buf[12..n];
                    let level = payload.iter().map(|b| ulaw(*b).abs()).sum::<i32>() / payload.len().max(1) as i32;
                    if level > 300 && outcome.first_audio.is_none() {
                        outcome.first_audio = Some(started.elapsed());
                    }
                }
            }
            received = sip.recv_from(&mut sip_buf) => {
                // The 200 OK again (our ACK crossed a retransmission): acknowledge it again.
                if let Ok((n, _)) = received {
                    if sip_buf.get(..n).and_then(parse_reply).is_some_and(|r| r.code == 200 && r.cseq.ends_with("INVITE")) {
                        let _ = sip.send_to(ack.as_bytes(), edge).await;
                    }
                }
            }
        }
    }
    let bye = in_dialog("BYE", 2, &format!("{tag}b"));
    for _ in 0..6 {
        sip.send_to(bye.as_bytes(), edge).await.expect("BYE sent");
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, sip.recv_from(&mut buf)).await
        {
            if buf
                .get(..n)
                .and_then(parse_reply)
                .is_some_and(|r| r.call_id == call_id && r.cseq.ends_with("BYE") && r.code == 200)
            {
                outcome.bye_answered = true;
                return outcome;
            }
        }
    }
    outcome
}

/// The `c=` address and `m=audio` port of an SDP body.
fn media_address(sdp: &str) -> Option<SocketAddr> {
    let ip: IpAddr = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))?
        .trim()
        .parse()
        .ok()?;
    let port: u16 = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    Some(SocketAddr::new(ip, port))
}

/// G.711 µ-law to linear.
fn ulaw(byte: u8) -> i32 {
    let b = !byte;
    let magnitude = ((i32::from(b & 0x0f) << 3) + 0x84) << ((b >> 4) & 7);
    if b & 0x80 != 0 {
        0x84 - magnitude
    } else {
        magnitude - 0x84
    }
}

/// A tag unique enough for Call-IDs and branches within one machine's runs.
fn rand_tag() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// The edge's `/metrics` text.
pub async fn metrics(edge: &Edge) -> String {
    reqwest::get(format!("http://{}/metrics", edge.http_addr))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text")
}

/// The value of the `freya_edge_sip_invites_refused_total` series with `reason`, or 0.
pub fn refused(metrics: &str, reason: &str) -> u64 {
    let series = format!("freya_edge_sip_invites_refused_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0)
}
