//! IPv6 callers against a real edge and control plane, with a hand-written SIP caller:
//!
//! - an edge listening on `[::1]` takes a call from a caller on `::1` offering `c=IN IP6 ::1`:
//!   the answer is `c=IN IP6 ::1`, Contact carries `sip:[::1]:port`, and RTP flows both ways
//!   over IPv6 (packets counted at the caller's socket and in the call's record); its TCP
//!   listener is on `[::1]` too;
//! - the same v6-only edge refuses an offer of IPv4 media, which it could not receive, with 488
//!   (RFC 3264 section 6 would allow answering in IPv6, but a caller that offers IPv4 may have
//!   no IPv6 at all);
//! - a dual-stack edge (`[::]`) answers an IPv4 caller's IPv4 offer in IPv4 and an IPv6
//!   caller's IPv6 offer in IPv6.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;

use crate::support::raw_sip::recv_sip;
use crate::support::world::World;
use freya_edge::rtp::packet::RtpPacket;
use freya_edge::sip::sdp::SessionDescription;

/// A control plane and an edge whose SIP listens on `sip` with the given advertised media
/// addresses.
async fn world(sip: &str, public_ip: Option<&str>, public_ip_v6: Option<&str>) -> World {
    let sip = sip.to_owned();
    let public_ip = public_ip.map(str::to_owned);
    let public_ip_v6 = public_ip_v6.map(str::to_owned);
    World::builder()
        .workspace("IPv6")
        .edge_config(move |config| {
            config.sip.addr = sip;
            config.rtp.public_ip = public_ip;
            config.rtp.public_ip_v6 = public_ip_v6;
        })
        .start()
        .await
}

/// A caller on `ip` (either family) with its SIP and RTP sockets.
struct Caller {
    sip: UdpSocket,
    rtp: UdpSocket,
    edge: SocketAddr,
    call_id: String,
    edge_tag: String,
}

impl Caller {
    async fn new(ip: &str, edge: SocketAddr) -> Self {
        let ip: std::net::IpAddr = ip.parse().expect("ip");
        Caller {
            sip: UdpSocket::bind((ip, 0)).await.expect("sip"),
            rtp: UdpSocket::bind((ip, 0)).await.expect("rtp"),
            edge,
            call_id: uuid::Uuid::now_v7().to_string(),
            edge_tag: String::new(),
        }
    }

    fn request(&self, method: &str, cseq: u32, body: &str) -> String {
        let (me, edge, call_id) = (
            self.sip.local_addr().expect("addr"),
            self.edge,
            &self.call_id,
        );
        let to_tag = if self.edge_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={}", self.edge_tag)
        };
        let content_type = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        // SocketAddr prints IPv6 in brackets, as SIP URIs and Via sent-by want it.
        format!(
            "{method} sip:demo@{edge} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK{method}{cseq}x;rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:+15550009@{me}>;tag=v6caller\r\n\
             To: <sip:demo@{edge}>{to_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:caller@{me}>\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    /// Sends an INVITE offering media at our RTP socket as `c=IN <family> <addr>`; the final
    /// response.
    async fn invite(&mut self, family: &str, addr: &str) -> String {
        let port = self.rtp.local_addr().expect("addr").port();
        let offer = format!(
            "v=0\r\no=- 1 1 IN {family} {addr}\r\ns=-\r\nc=IN {family} {addr}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
        );
        let invite = self.request("INVITE", 1, &offer);
        self.sip
            .send_to(invite.as_bytes(), self.edge)
            .await
            .expect("INVITE");
        loop {
            let response = recv_sip(&self.sip, "SIP/2.0", Duration::from_secs(10)).await;
            if !response.starts_with("SIP/2.0 1") {
                return response;
            }
        }
    }

    /// Acknowledges the edge's 200 and returns its SDP answer.
    async fn ack(&mut self, ok: &str) -> SessionDescription {
        self.edge_tag = header(ok, "To")
            .split(";tag=")
            .nth(1)
            .expect("To tag")
            .to_owned();
        let ack = self.request("ACK", 1, "");
        self.sip
            .send_to(ack.as_bytes(), self.edge)
            .await
            .expect("ACK");
        let body = ok.split("\r\n\r\n").nth(1).expect("SDP");
        SessionDescription::parse(body.as_bytes()).expect("SDP answer")
    }

    async fn hang_up(&self) {
        let bye = self.request("BYE", 2, "");
        self.sip
            .send_to(bye.as_bytes(), self.edge)
            .await
            .expect("BYE");
        recv_sip(&self.sip, "SIP/2.0 200", Duration::from_secs(10)).await;
    }

    /// Talks for `packets` × 20 ms to `edge_rtp`; the edge's RTP packets heard meanwhile.
    async fn talk(&self, edge_rtp: SocketAddr, packets: u16) -> usize {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut heard = 0;
        let mut buf = [0u8; 2048];
        for n in 0..packets {
            tick.tick().await;
            self.rtp
                .send_to(&rtp(n), edge_rtp)
                .await
                .expect("caller RTP");
            while let Ok((len, from)) = self.rtp.try_recv_from(&mut buf) {
                if RtpPacket::parse(&buf[..len]).is_ok() && from.ip() == edge_rtp.ip() {
                    heard += 1;
                }
            }
        }
        heard
    }
}

/// 20 ms of µ-law silence.
fn rtp(seq: u16) -> Vec<u8> {
    let mut packet = vec![0x80, 0];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    packet.extend_from_slice(&0x00c0_ffee_u32.to_be_bytes());
    packet.extend_from_slice(&[0xff; 160]);
    packet
}

fn header<'a>(message: &'a str, name: &str) -> &'a str {
    message
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} in {message}"))
}

/// The SDP's connection line and its audio port.
fn connection(answer: &SessionDescription) -> (String, u16) {
    let audio = &answer.media[0];
    let ip = audio.connection.or(answer.connection).expect("c= line");
    let family = if ip.is_ipv6() { "IP6" } else { "IP4" };
    (format!("IN {family} {ip}"), audio.port)
}

/// The `rtp.received` count of the ended call's record.
async fn received_rtp(w: &World) -> u64 {
    let (_, events) = support::the_ended_call(&w.control.store, &w.scope).await;
    let ended = events
        .iter()
        .find(|e| e.kind == "call.ended")
        .expect("call.ended");
    ended.payload["rtp"]["received"]
        .as_u64()
        .expect("rtp.received")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_caller_is_answered_in_ipv6_and_media_flows_both_ways_over_ipv6() {
    let w = world("[::1]:0", None, None).await;
    let edge_sip = w.edge.sip_addr;
    assert!(edge_sip.is_ipv6(), "{edge_sip}");
    let mut caller = Caller::new("::1", edge_sip).await;
    let ok = caller.invite("IP6", "::1").await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert_eq!(
        header(&ok, "Contact"),
        format!("<sip:{edge_sip}>"),
        "bracketed IPv6"
    );
    let via = header(&ok, "Via");
    let me = caller.sip.local_addr().expect("addr");
    assert!(
        via.contains(&format!("rport={}", me.port())) && via.contains("received=::1"),
        "{via}"
    );
    let answer = caller.ack(&ok).await;
    assert!(answer.origin.ends_with("IN IP6 ::1"), "{}", answer.origin);
    let (line, port) = connection(&answer);
    assert_eq!(line, "IN IP6 ::1");
    let edge_rtp = SocketAddr::new("::1".parse().expect("ip"), port);
    let heard = caller.talk(edge_rtp, 100).await;
    caller.hang_up().await;
    assert!(
        heard >= 50,
        "the edge's audio reached the caller over IPv6: {heard}"
    );
    let received = received_rtp(&w).await;
    assert!(
        received >= 50,
        "the caller's audio reached the call: {received}"
    );

    // SIP over TCP listens on the same IPv6 address.
    let mut tcp = tokio::net::TcpStream::connect(edge_sip)
        .await
        .expect("TCP over IPv6");
    let me = tcp.local_addr().expect("addr");
    let options = format!(
        "OPTIONS sip:demo@{edge_sip} SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bKv6tcp\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag=p\r\nTo: <sip:demo@{edge_sip}>\r\n\
         Call-ID: v6-tcp-probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    tcp.write_all(options.as_bytes()).await.expect("OPTIONS");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("a response in time")
        .expect("read");
    let response = String::from_utf8_lossy(&buf[..n]);
    assert!(response.starts_with("SIP/2.0 200"), "{response}");
    w.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v6_only_edge_refuses_an_ipv4_offer_it_could_not_receive() {
    let w = world("[::1]:0", None, None).await;
    let mut caller = Caller::new("::1", w.edge.sip_addr).await;
    let refused = caller.invite("IP4", "127.0.0.1").await;
    assert!(
        refused.starts_with("SIP/2.0 488 Not Acceptable Here (no IPv4 media address)"),
        "{refused}"
    );
    assert!(header(&refused, "Warning").starts_with("305 "), "{refused}");
    let payload = w.refusal_record().await;
    assert_eq!(payload["reason"], "no_media_address_family", "{payload}");
    assert_eq!(payload["code"], 488);
    w.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_edge_answers_each_caller_in_the_family_it_offered() {
    let w = world("[::]:0", Some("127.0.0.1"), Some("::1")).await;
    let port = w.edge.sip_addr.port();

    let v4_edge = SocketAddr::from(([127, 0, 0, 1], port));
    let mut v4 = Caller::new("127.0.0.1", v4_edge).await;
    let ok = v4.invite("IP4", "127.0.0.1").await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let answer = v4.ack(&ok).await;
    let (line, rtp_port) = connection(&answer);
    assert_eq!(line, "IN IP4 127.0.0.1");
    let heard = v4.talk(SocketAddr::new(v4_edge.ip(), rtp_port), 50).await;
    assert!(heard >= 25, "IPv4 media from a dual-stack edge: {heard}");
    v4.hang_up().await;

    let v6_edge = SocketAddr::new("::1".parse().expect("ip"), port);
    let mut v6 = Caller::new("::1", v6_edge).await;
    let ok = v6.invite("IP6", "::1").await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let answer = v6.ack(&ok).await;
    let (line, rtp_port) = connection(&answer);
    assert_eq!(line, "IN IP6 ::1");
    let heard = v6.talk(SocketAddr::new(v6_edge.ip(), rtp_port), 50).await;
    assert!(heard >= 25, "IPv6 media from a dual-stack edge: {heard}");
    v6.hang_up().await;
    w.teardown().await;
}
