//! A call over SIP over TLS to a real edge on loopback: a caller written by hand (rustls for
//! the signalling, plain RTP on its own UDP socket) dials the edge's TLS listener, the agent
//! answers and speaks, and the certificate files are replaced during the call. A new
//! handshake must see the new certificate while the established call carries on: its audio
//! keeps flowing and its BYE, on the connection opened before the renewal, is answered.
//!
//! Debian's sipp is built without TLS (`sipp -t l1` is refused), so the caller is ours; its
//! messages are what sipp's `uac` scenario sends, with `Via: SIP/2.0/TLS` and `sips:` URIs.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use freya_edge::sip::framing::StreamFramer;
use freya_edge::Edge;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::support::cached_edge::cached_edge_config;
use crate::support::flood::{parse_reply, pcmu_offer, Reply, NUMBER};

/// Longest any step waits (a hang guard, not a measure).
const HANG_GUARD: Duration = Duration::from_secs(20);

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/sip/transport/tls/testdata")
        .join(name)
}

fn der(name: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(testdata(name)).expect("test certificate")
}

/// Puts `cert` and `key` in place as the edge's files, renamed over the old ones.
fn install(dir: &Path, cert: &str, key: &str) {
    for (from, to) in [(cert, "sip.pem"), (key, "sip.key")] {
        let staged = dir.join(format!("{to}.new"));
        std::fs::copy(testdata(from), &staged).expect("copy");
        std::fs::rename(&staged, dir.join(to)).expect("rename");
    }
}

async fn connect(addr: SocketAddr) -> TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    roots.add(der("ca.pem")).expect("CA");
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let connector = TlsConnector::from(Arc::new(config));
    tokio::time::timeout(HANG_GUARD, connector.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake")
}

fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    let (_, session) = stream.get_ref();
    session.peer_certificates().expect("a certificate")[0]
        .clone()
        .into_owned()
}

/// The SIP side of a caller over one TLS connection.
struct Signalling {
    stream: TlsStream<TcpStream>,
    framer: StreamFramer,
    local: SocketAddr,
}

impl Signalling {
    async fn send(&mut self, message: &str) {
        self.stream
            .write_all(message.as_bytes())
            .await
            .expect("SIP sent");
    }

    /// The next response for `cseq` (e.g. `1 INVITE`) with a final status, skipping others.
    async fn final_response(&mut self, cseq: &str) -> (Reply, String) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while let Some(bytes) = self.framer.next_message().expect("framed") {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                if let Some(reply) = parse_reply(&bytes) {
                    if reply.cseq == cseq && reply.code >= 200 {
                        return (reply, text);
                    }
                }
            }
            let n = tokio::time::timeout(HANG_GUARD, self.stream.read(&mut buf))
                .await
                .expect("a response in time")
                .expect("read");
            assert!(n > 0, "the edge closed the TLS connection");
            self.framer.push(&buf[..n]);
        }
    }
}

fn invite(local: SocketAddr, edge: SocketAddr, rtp: SocketAddr, call_id: &str) -> String {
    let sdp = pcmu_offer(rtp);
    format!(
        "INVITE sips:{NUMBER}@{edge} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bKtls1;alias\r\n\
         Max-Forwards: 70\r\nFrom: <sips:caller@{local}>;tag=tlscaller\r\nTo: <sips:{NUMBER}@{edge}>\r\n\
         Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sips:caller@{local}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn in_dialog(
    method: &str,
    cseq: u32,
    branch: &str,
    s: &Signalling,
    edge: SocketAddr,
    to: &str,
    call_id: &str,
) -> String {
    let local = s.local;
    format!(
        "{method} sips:{NUMBER}@{edge} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bK{branch};alias\r\n\
         Max-Forwards: 70\r\nFrom: <sips:caller@{local}>;tag=tlscaller\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The `c=` address and `m=audio` port of an SDP body.
fn media_address(sdp: &str) -> SocketAddr {
    let ip: IpAddr = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))
        .and_then(|ip| ip.trim().parse().ok())
        .expect("c= line");
    let port: u16 = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .and_then(|m| m.split(' ').next()?.parse().ok())
        .expect("m= line");
    SocketAddr::new(ip, port)
}

/// Sends µ-law silence for `talk` and counts the edge's RTP packets, and those with sound.
async fn talk(rtp: &UdpSocket, media: SocketAddr, talk: Duration, seq: &mut u16) -> (usize, usize) {
    let (mut received, mut loud) = (0, 0);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut buf = vec![0u8; 2048];
    let until = tokio::time::Instant::now() + talk;
    while tokio::time::Instant::now() < until {
        tokio::select! {
            _ = tick.tick() => {
                let mut packet = vec![0x80, 0];
                packet.extend_from_slice(&seq.to_be_bytes());
                packet.extend_from_slice(&(u32::from(*seq) * 160).to_be_bytes());
                packet.extend_from_slice(&0x7e5_u32.to_be_bytes());
                packet.extend_from_slice(&[0xff; 160]);
                let _ = rtp.send_to(&packet, media).await;
                *seq = seq.wrapping_add(1);
            }
            got = rtp.recv_from(&mut buf) => {
                let Ok((n, _)) = got else { continue };
                if n > 12 && buf[0] >> 6 == 2 {
                    received += 1;
                    if buf[12..n].iter().any(|b| *b != 0xff && *b != 0x7f) {
                        loud += 1;
                    }
                }
            }
        }
    }
    (received, loud)
}

#[tokio::test]
async fn a_call_over_tls_is_answered_and_survives_a_certificate_renewal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = tempfile::tempdir().expect("cert dir");
    install(certs.path(), "edge.pem", "edge.key");
    let agent = serde_json::json!({"name": "Desk", "first_message": "Hello, thanks for calling."});
    let mut config = cached_edge_config(dir.path(), "tls-edge", NUMBER, agent);
    config.sip.tls_listen = Some("127.0.0.1:0".into());
    config.sip.tls_cert_file = Some(certs.path().join("sip.pem").display().to_string());
    config.sip.tls_key_file = Some(certs.path().join("sip.key").display().to_string());
    config.rtp.port_min = 47_100;
    config.rtp.port_max = 47_199;
    let edge = Edge::start(&config).await.expect("edge starts");
    let tls_addr = edge.sip_tls_addr.expect("the TLS listener is up");

    let stream = connect(tls_addr).await;
    assert_eq!(presented(&stream), der("edge.pem"));
    let local = stream.get_ref().0.local_addr().expect("local address");
    let mut sip = Signalling {
        stream,
        framer: StreamFramer::new(),
        local,
    };
    let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("RTP socket");
    let call_id = "tls-call-1";
    sip.send(&invite(
        local,
        tls_addr,
        rtp.local_addr().expect("rtp"),
        call_id,
    ))
    .await;
    let (answer, text) = sip.final_response("1 INVITE").await;
    assert_eq!(answer.code, 200, "the agent answers: {text}");
    assert!(
        text.contains(&format!("<sips:{tls_addr}>")),
        "the 200's Contact is the TLS listener, as sips: {text}"
    );
    let ack = in_dialog("ACK", 1, "tlsack", &sip, tls_addr, &answer.to, call_id);
    sip.send(&ack).await;
    let media = media_address(&answer.body);
    let mut seq = 1;
    let (received, loud) = talk(&rtp, media, Duration::from_secs(3), &mut seq).await;
    assert!(received > 50, "the edge sends RTP: {received} packets");
    assert!(loud > 0, "the agent speaks its greeting");

    // Renewal: new files; the next handshake sees them.
    install(certs.path(), "edge2.pem", "edge2.key");
    let renewed = connect(tls_addr).await;
    assert_eq!(presented(&renewed), der("edge2.pem"));
    drop(renewed);

    // The call goes on: media still flows and its BYE, on the old connection, is answered.
    let (after, _) = talk(&rtp, media, Duration::from_secs(1), &mut seq).await;
    assert!(
        after > 20,
        "media continues after the renewal: {after} packets"
    );
    let bye = in_dialog("BYE", 2, "tlsbye", &sip, tls_addr, &answer.to, call_id);
    sip.send(&bye).await;
    let (bye_reply, text) = sip.final_response("2 BYE").await;
    assert_eq!(bye_reply.code, 200, "{text}");
    edge.stop().await;
}
