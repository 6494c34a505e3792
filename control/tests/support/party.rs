//! The second party of a call, written by hand: a SIP user agent on 127.0.0.1 behind the
//! workspace's trunk that waits for the edge's INVITE, answers it with PCMU on a port of the
//! test's choosing, answers OPTIONS pings while it waits (as a trunk does), and confirms the
//! edge's BYE.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use freya_edge::sip::sdp::SessionDescription;
use tokio::net::UdpSocket;

/// How long the party waits for each request.
const LIMIT: Duration = Duration::from_secs(20);

/// A party's SIP socket.
pub struct Party {
    pub sip: UdpSocket,
}

/// The header `name:` of a SIP message (first occurrence), whole line.
pub fn header<'a>(message: &'a str, name: &str) -> &'a str {
    find_header(message, name).unwrap_or_else(|| panic!("no {name} in {message}"))
}

/// [`header`], or `None` when the message has no such header.
pub fn find_header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find(|l| {
        l.len() > name.len()
            && l[..name.len()].eq_ignore_ascii_case(name)
            && l[name.len()..].starts_with(':')
    })
}

/// `200 OK` to `request`, echoing its transaction's headers.
fn ok_to(request: &str) -> String {
    format!(
        "SIP/2.0 200 OK\r\n{}\r\n{}\r\n{}\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
        header(request, "Via"),
        header(request, "From"),
        header(request, "To"),
        header(request, "Call-ID"),
        header(request, "CSeq"),
    )
}

impl Party {
    /// A party listening on 127.0.0.1.
    pub async fn bind() -> Self {
        let sip = UdpSocket::bind("127.0.0.1:0").await.expect("party sip");
        Self { sip }
    }

    /// The party's SIP port, for its trunk.
    pub fn port(&self) -> u16 {
        self.sip.local_addr().expect("addr").port()
    }

    /// Waits for a request starting with `prefix`: its text and its source.
    pub async fn receives(&self, prefix: &str) -> (String, SocketAddr) {
        let mut buf = vec![0u8; 65_536];
        tokio::time::timeout(LIMIT, async {
            loop {
                let (n, from) = self.sip.recv_from(&mut buf).await.expect("recv");
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.starts_with(prefix) {
                    return (text, from);
                }
                if text.starts_with("OPTIONS ") {
                    let _ = self.sip.send_to(ok_to(&text).as_bytes(), from).await;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the party got no {prefix}"))
    }

    /// Answers `invite` (from `from`) 200 OK with PCMU on an RTP socket of its own: that
    /// socket, and where the edge wants the party's RTP.
    pub async fn answer(&self, invite: &str, from: SocketAddr) -> (Arc<UdpSocket>, SocketAddr) {
        let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("party rtp");
        let rtp_port = rtp.local_addr().expect("addr").port();
        let vias: Vec<&str> = invite
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("via:"))
            .collect();
        let sdp = format!(
            "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        );
        let local = self.sip.local_addr().expect("addr");
        let ok = format!(
            "SIP/2.0 200 OK\r\n{}\r\n{}\r\n{};tag=party\r\n{}\r\n{}\r\n\
             Contact: <sip:party@{local}>\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{sdp}",
            vias.join("\r\n"),
            header(invite, "From"),
            header(invite, "To"),
            header(invite, "Call-ID"),
            header(invite, "CSeq"),
            sdp.len()
        );
        self.sip.send_to(ok.as_bytes(), from).await.expect("200");
        let offer = invite.split("\r\n\r\n").nth(1).expect("offer");
        let offer = SessionDescription::parse(offer.as_bytes()).expect("SDP offer");
        let edge_rtp = SocketAddr::new("127.0.0.1".parse().expect("ip"), offer.media[0].port);
        (Arc::new(rtp), edge_rtp)
    }

    /// Waits for the edge's BYE and confirms it; where it came from.
    pub async fn hung_up(&self) -> SocketAddr {
        let (bye, from) = self.receives("BYE").await;
        self.sip
            .send_to(ok_to(&bye).as_bytes(), from)
            .await
            .expect("200");
        from
    }
}
