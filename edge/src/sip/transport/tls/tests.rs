//! SIP over TLS with real sockets on 127.0.0.1: a client served and pinged, junk instead of a
//! ClientHello, a stalled handshake, an oversized message, the connection cap, a certificate
//! replaced on disk while a connection is up, and trunks whose certificates do or do not
//! verify. The certificates are the test-only ones in `testdata/` (see its README).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;

use super::{
    accept, server_config, ReloadingCertificate, TlsDialer, TlsListenerSettings, SIP_TLS_FILES,
};
use crate::serve::ConnectionTimeouts;
use crate::sip::transport::tcp::tests::time_until_closed;
use crate::sip::transport::tcp::{TcpConnections, TcpInput};
use crate::sip::{Peer, Transport};

/// Longest any test waits for something that should happen (a hang guard, not a measure).
const HANG_GUARD: Duration = Duration::from_secs(10);

const OPTIONS: &[u8] = b"OPTIONS sip:edge@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-1;alias\r\n\
From: <sips:probe@127.0.0.1>;tag=1\r\n\
To: <sips:edge@127.0.0.1>\r\n\
Call-ID: tls-test\r\n\
CSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/sip/transport/tls/testdata")
        .join(name)
}

fn der(name: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(testdata(name)).expect("test certificate")
}

/// A client that trusts the test CA.
fn client() -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(der("ca.pem")).expect("CA");
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// Copies the named certificate and key to `dir` as the listener's files.
fn install(dir: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
    let (cert_file, key_file) = (dir.join("sip.pem"), dir.join("sip.key"));
    // Written beside and renamed over, as certificate tools do: never a half-written file.
    std::fs::copy(testdata(cert), dir.join("sip.pem.new")).expect("copy cert");
    std::fs::copy(testdata(key), dir.join("sip.key.new")).expect("copy key");
    std::fs::rename(dir.join("sip.pem.new"), &cert_file).expect("rename cert");
    std::fs::rename(dir.join("sip.key.new"), &key_file).expect("rename key");
    (cert_file, key_file)
}

/// A TLS listener, and what its connections hand over.
struct Listener {
    addr: SocketAddr,
    inputs: mpsc::Receiver<TcpInput>,
    /// The writers of accepted connections, kept alive as the SIP task keeps them.
    writers: Vec<(Peer, mpsc::Sender<Vec<u8>>)>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
    dir: PathBuf,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Listener {
    /// The next message, after recording any connection opened before it.
    async fn next_message(&mut self) -> (Peer, Vec<u8>) {
        loop {
            let input = tokio::time::timeout(HANG_GUARD, self.inputs.recv())
                .await
                .expect("an input in time")
                .expect("the listener is running");
            match input {
                TcpInput::Opened { peer, writer } => self.writers.push((peer, writer)),
                TcpInput::Message { peer, bytes } => return (peer, bytes),
                TcpInput::Closed { .. } | TcpInput::Failed { .. } => {}
            }
        }
    }

    /// Whether any message arrives within `wait`.
    async fn message_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(input)) = tokio::time::timeout_at(deadline, self.inputs.recv()).await {
            if let TcpInput::Message { .. } = input {
                return true;
            }
        }
        false
    }
}

async fn listen(handshake_ms: u64, max_total: u32) -> Listener {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = install(dir.path(), "edge.pem", "edge.key");
    let certificate =
        ReloadingCertificate::load(SIP_TLS_FILES, &cert, &key).expect("certificate loads");
    let config = server_config(Arc::new(certificate)).expect("server config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let settings = TlsListenerSettings {
        handshake_timeout: Duration::from_millis(handshake_ms),
        timeouts: ConnectionTimeouts {
            message: Duration::from_secs(60),
            idle: Duration::from_secs(60),
        },
        max_per_ip: 64,
        max_total,
    };
    let shutdown = CancellationToken::new();
    let (inputs_tx, inputs) = mpsc::channel(1024);
    let acceptor = TlsAcceptor::from(Arc::new(config));
    tokio::spawn(accept(
        listener,
        settings,
        acceptor,
        inputs_tx,
        shutdown.clone(),
    ));
    Listener {
        addr,
        inputs,
        writers: Vec::new(),
        shutdown,
        dir: dir.path().to_owned(),
        _dir: dir,
    }
}

async fn connect(addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(HANG_GUARD, client().connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake")
}

/// The leaf certificate the server presented.
fn presented(stream: &tokio_rustls::client::TlsStream<TcpStream>) -> CertificateDer<'static> {
    let (_, session) = stream.get_ref();
    session.peer_certificates().expect("a certificate")[0]
        .clone()
        .into_owned()
}

#[tokio::test]
async fn a_tls_client_is_framed_answered_on_its_connection_and_its_pings_get_pongs() {
    let mut listener = listen(5_000, 64).await;
    let mut stream = connect(listener.addr).await;
    stream.write_all(b"\r\n\r\n").await.expect("ping");
    let mut pong = [0u8; 2];
    tokio::time::timeout(HANG_GUARD, stream.read_exact(&mut pong))
        .await
        .expect("pong in time")
        .expect("pong");
    assert_eq!(
        &pong, b"\r\n",
        "a double-CRLF ping gets a single CRLF (RFC 5626 4.4.1)"
    );
    stream.write_all(OPTIONS).await.expect("write");
    let (peer, bytes) = listener.next_message().await;
    assert_eq!(peer.transport, Transport::Tls);
    assert_eq!(bytes, OPTIONS);
    let (opened, writer) = listener.writers.last().expect("opened").clone();
    assert_eq!(opened, peer);
    writer
        .send(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec())
        .await
        .expect("queued");
    let mut reply = [0u8; 15];
    tokio::time::timeout(HANG_GUARD, stream.read_exact(&mut reply))
        .await
        .expect("reply in time")
        .expect("reply");
    assert_eq!(&reply, b"SIP/2.0 200 OK\r");
}

#[tokio::test]
async fn junk_instead_of_a_client_hello_is_closed_at_once_and_the_listener_serves_on() {
    let mut listener = listen(30_000, 64).await;
    let mut junk = TcpStream::connect(listener.addr).await.expect("connect");
    junk.write_all(OPTIONS)
        .await
        .expect("plain SIP on the TLS port");
    let took = time_until_closed(&mut junk).await;
    assert!(
        took < Duration::from_secs(5),
        "closed by rustls, not by the 30 s timeout: {took:?}"
    );
    assert!(!listener.message_within(Duration::from_millis(200)).await);
    let mut good = connect(listener.addr).await;
    good.write_all(OPTIONS).await.expect("write");
    assert_eq!(listener.next_message().await.1, OPTIONS);
}

#[tokio::test]
async fn a_client_that_stalls_its_handshake_is_closed_after_the_handshake_timeout() {
    let listener = listen(500, 64).await;
    let start = Instant::now();
    let mut silent = TcpStream::connect(listener.addr).await.expect("connect");
    let mut partial = TcpStream::connect(listener.addr).await.expect("connect");
    // A TLS record header announcing a ClientHello that never comes.
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("write");
    for stream in [&mut silent, &mut partial] {
        time_until_closed(stream).await;
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(400), "closed after {took:?}");
    }
}

#[tokio::test]
async fn an_oversized_sip_message_over_tls_closes_the_connection_without_passing_it_on() {
    let mut listener = listen(5_000, 64).await;
    let mut declared = connect(listener.addr).await;
    declared
        .write_all(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n")
        .await
        .expect("write");
    time_until_closed(&mut declared).await;
    let mut endless = connect(listener.addr).await;
    let line = format!("X-Filler: {}\r\n", "a".repeat(1_000));
    let mut closed = false;
    for _ in 0..100 {
        if endless.write_all(line.as_bytes()).await.is_err() {
            closed = true;
            break;
        }
    }
    if !closed {
        time_until_closed(&mut endless).await;
    }
    assert!(!listener.message_within(Duration::from_millis(200)).await);
}

#[tokio::test]
async fn connections_over_the_tls_cap_are_refused_while_handshakes_hold_theirs() {
    let mut listener = listen(60_000, 2).await;
    let _held = [
        TcpStream::connect(listener.addr).await.expect("connect"),
        TcpStream::connect(listener.addr).await.expect("connect"),
    ];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(listener.addr).await.expect("connect");
    let took = time_until_closed(&mut extra).await;
    assert!(
        took < Duration::from_secs(5),
        "refused at once, not timed out: {took:?}"
    );
    drop(_held);
    // Once the held ones are gone, a real client gets in again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut good = connect(listener.addr).await;
    good.write_all(OPTIONS).await.expect("write");
    assert_eq!(listener.next_message().await.1, OPTIONS);
}

#[tokio::test]
async fn a_replaced_certificate_is_served_to_the_next_handshake_and_open_connections_carry_on() {
    let mut listener = listen(5_000, 64).await;
    let mut before = connect(listener.addr).await;
    assert_eq!(presented(&before), der("edge.pem"));
    install(&listener.dir, "edge2.pem", "edge2.key");
    let after = connect(listener.addr).await;
    assert_eq!(
        presented(&after),
        der("edge2.pem"),
        "the new files are served"
    );
    // The connection made before the renewal still carries messages both ways.
    before.write_all(OPTIONS).await.expect("write");
    let (peer, bytes) = listener.next_message().await;
    assert_eq!(bytes, OPTIONS);
    let writer = listener
        .writers
        .iter()
        .find(|(p, _)| *p == peer)
        .map(|(_, w)| w.clone())
        .expect("the old connection's writer");
    writer
        .send(b"SIP/2.0 200 OK\r\n".to_vec())
        .await
        .expect("queued");
    let mut reply = [0u8; 16];
    tokio::time::timeout(HANG_GUARD, before.read_exact(&mut reply))
        .await
        .expect("reply in time")
        .expect("reply on the old connection");
    // A broken renewal (a key that does not match) keeps the last good certificate.
    std::fs::copy(testdata("edge.key"), listener.dir.join("sip.key")).expect("mismatched key");
    let still = connect(listener.addr).await;
    assert_eq!(presented(&still), der("edge2.pem"));
}

/// A trunk listening with `cert` (TLS) on 127.0.0.1; the bytes its first connection sends.
async fn trunk(cert: &str, key: &str) -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let certificate =
        ReloadingCertificate::load(SIP_TLS_FILES, &testdata(cert), &testdata(key)).expect("loads");
    let acceptor = TlsAcceptor::from(Arc::new(
        server_config(Arc::new(certificate)).expect("config"),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 || tx.send(buf[..n].to_vec()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

fn connections(
    keepalive: Duration,
) -> (TcpConnections, mpsc::Receiver<TcpInput>, CancellationToken) {
    let (tx, rx) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let dialer = TlsDialer::new(Some(&testdata("ca.pem")), Duration::from_secs(5)).expect("dialer");
    let table = TcpConnections::new(tx, shutdown.clone(), Some(Arc::new(dialer)), keepalive);
    (table, rx, shutdown)
}

async fn next_failure(inputs: &mut mpsc::Receiver<TcpInput>) -> Peer {
    loop {
        match tokio::time::timeout(HANG_GUARD, inputs.recv()).await {
            Ok(Some(TcpInput::Failed { peer })) => return peer,
            Ok(Some(_)) => {}
            other => panic!("no failure reported: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_trunk_whose_certificate_does_not_verify_is_refused_and_reported_failed() {
    let (rogue, mut rogue_rx) = trunk("rogue.pem", "rogue.key").await;
    let (good, _good_rx) = trunk("edge.pem", "edge.key").await;
    let (mut table, mut inputs, shutdown) = connections(Duration::from_secs(60));
    table.expect_tls_name(rogue, "localhost");
    table.send(Peer::tls(rogue), OPTIONS.to_vec());
    assert_eq!(
        next_failure(&mut inputs).await,
        Peer::tls(rogue),
        "a self-signed trunk"
    );
    // A certificate from the trusted CA, but for another name than the trunk's host.
    table.expect_tls_name(good, "carrier.example");
    table.send(Peer::tls(good), OPTIONS.to_vec());
    assert_eq!(
        next_failure(&mut inputs).await,
        Peer::tls(good),
        "a name mismatch"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rogue_rx.recv())
            .await
            .is_err(),
        "nothing was sent to the rogue trunk"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn a_verified_trunk_gets_its_message_and_is_pinged_when_the_flow_is_idle() {
    let (good, mut received) = trunk("edge.pem", "edge.key").await;
    let (mut table, _inputs, shutdown) = connections(Duration::from_millis(300));
    table.expect_tls_name(good, "localhost");
    table.send(Peer::tls(good), OPTIONS.to_vec());
    let mut bytes = Vec::new();
    while bytes.len() < OPTIONS.len() {
        let chunk = tokio::time::timeout(HANG_GUARD, received.recv())
            .await
            .expect("in time");
        bytes.extend(chunk.expect("bytes"));
    }
    assert_eq!(bytes, OPTIONS);
    let ping = tokio::time::timeout(HANG_GUARD, received.recv())
        .await
        .expect("a ping in time");
    assert_eq!(
        ping.expect("bytes"),
        b"\r\n\r\n",
        "RFC 5626 keep-alive on an idle flow"
    );
    shutdown.cancel();
}
