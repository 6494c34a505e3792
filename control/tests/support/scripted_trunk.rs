//! A UDP trunk written by hand that answers each INVITE as a test scripts it *by the edge it
//! comes from*: a failure for one edge's address, 200 OK with PCMU for another. It remembers
//! every INVITE it was offered, so a test can count the offers each edge made.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

use crate::support::party::find_header;

/// How the scripted trunk answers an INVITE from an edge: `None` answers 200 OK.
pub type Script = fn(IpAddr) -> Option<(u16, &'static str)>;

/// The trunk's record: each INVITE transaction it was offered, as `(edge address, Call-ID,
/// Via branch)`; retransmissions are one.
#[derive(Clone, Default)]
pub struct Offers(Arc<Mutex<HashSet<(IpAddr, String, String)>>>);

impl Offers {
    /// How many calls (Call-IDs) the edge at `ip` offered.
    pub fn from(&self, ip: &str) -> usize {
        let ip: IpAddr = ip.parse().expect("ip");
        let offers = self.0.lock().expect("offers");
        let calls: HashSet<&String> = offers
            .iter()
            .filter(|(from, _, _)| *from == ip)
            .map(|(_, call_id, _)| call_id)
            .collect();
        calls.len()
    }

    /// How many INVITE transactions the edge at `ip` sent: a call dialled twice counts twice.
    pub fn invites_from(&self, ip: &str) -> usize {
        let ip: IpAddr = ip.parse().expect("ip");
        let offers = self.0.lock().expect("offers");
        offers.iter().filter(|(from, _, _)| *from == ip).count()
    }
}

/// The branch of a request's first Via; empty when absent.
fn via_branch(message: &str) -> String {
    let via = header(message, "Via");
    via.split(';')
        .find_map(|p| p.trim().strip_prefix("branch="))
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// The header `name:` of a SIP message (first occurrence), whole line; empty when absent.
fn header<'a>(message: &'a str, name: &str) -> &'a str {
    find_header(message, name).unwrap_or("")
}

/// A response to `request` with `code`, echoing its Via, From, To (tagged), Call-ID and CSeq.
fn response(request: &str, code: u16, phrase: &str, local: SocketAddr, sdp: &str) -> String {
    let vias: Vec<&str> = request
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("via:"))
        .collect();
    let to = header(request, "To");
    let to = if to.contains("tag=") {
        to.to_owned()
    } else {
        format!("{to};tag=trunk")
    };
    let content = if sdp.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    format!(
        "SIP/2.0 {code} {phrase}\r\n{}\r\n{}\r\n{to}\r\n{}\r\n{}\r\n\
         Contact: <sip:trunk@{local}>\r\n{content}Content-Length: {}\r\n\r\n{sdp}",
        vias.join("\r\n"),
        header(request, "From"),
        header(request, "Call-ID"),
        header(request, "CSeq"),
        sdp.len()
    )
}

/// Serves the trunk on `sip` until aborted: INVITEs as `script` says for their source address,
/// 200 OK to any other request but ACK.
pub fn serve(
    sip: UdpSocket,
    rtp_port: u16,
    script: Script,
) -> (Offers, tokio::task::JoinHandle<()>) {
    let offers = Offers::default();
    let seen = offers.clone();
    let task = tokio::spawn(async move {
        let local = sip.local_addr().expect("addr");
        let sdp = format!(
            "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        );
        let mut buf = vec![0u8; 65_536];
        loop {
            let Ok((n, from)) = sip.recv_from(&mut buf).await else {
                return;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let answer = if text.starts_with("INVITE ") {
                let call_id = header(&text, "Call-ID").to_owned();
                let branch = via_branch(&text);
                let mut offers = seen.0.lock().expect("offers");
                offers.insert((from.ip(), call_id, branch));
                drop(offers);
                match script(from.ip()) {
                    Some((code, phrase)) => response(&text, code, phrase, local, ""),
                    None => response(&text, 200, "OK", local, &sdp),
                }
            } else if text.starts_with("ACK ") || text.starts_with("SIP/2.0") {
                continue;
            } else {
                response(&text, 200, "OK", local, "")
            };
            let _ = sip.send_to(answer.as_bytes(), from).await;
        }
    });
    (offers, task)
}

/// Edge A (127.0.0.1) hears 503; any other edge is answered.
pub fn edge_a_fails_with_503(from: IpAddr) -> Option<(u16, &'static str)> {
    (from == IpAddr::from([127, 0, 0, 1])).then_some((503, "Service Unavailable"))
}

/// Edge A (127.0.0.1) hears the callee is busy; any other edge is answered.
pub fn edge_a_hears_busy(from: IpAddr) -> Option<(u16, &'static str)> {
    (from == IpAddr::from([127, 0, 0, 1])).then_some((486, "Busy Here"))
}

/// Every edge hears 503.
pub fn every_edge_fails_with_503(_: IpAddr) -> Option<(u16, &'static str)> {
    Some((503, "Service Unavailable"))
}
