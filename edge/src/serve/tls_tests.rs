//! The HTTPS listener against real sockets: a trusted request, the handshake timeout, plain
//! HTTP to the TLS port, and certificate reloads (good and bad) with open connections.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use super::{CertificateKeys, Https, ReloadingCertificate};
use crate::serve::{serve_https, ConnectionLimits, ConnectionTimeouts, LimitedListener};

/// Longest any step may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(10);

const NAMES: CertificateKeys = CertificateKeys {
    listener: "test HTTPS",
    cert: "http.tls_cert",
    key: "http.tls_key",
};

/// A self-signed certificate for localhost and 127.0.0.1: (chain PEM, key PEM).
fn self_signed() -> (String, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("rcgen");
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

/// Writes the pair beside and renames it over `cert.pem`/`key.pem`, as certificate tools do.
fn install(dir: &Path, (cert, key): &(String, String)) -> (PathBuf, PathBuf) {
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(dir.join("key.new"), key).expect("write key");
    std::fs::write(dir.join("cert.new"), cert).expect("write cert");
    std::fs::rename(dir.join("key.new"), &key_file).expect("rename key");
    std::fs::rename(dir.join("cert.new"), &cert_file).expect("rename cert");
    (cert_file, key_file)
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("certificate PEM")
}

/// A TLS client trusting `roots` (self-signed certificates as their own anchors).
fn connector(roots: &[&str]) -> TlsConnector {
    let mut store = RootCertStore::empty();
    for pem in roots {
        store.add(der(pem)).expect("root");
    }
    let config = ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(store)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

struct Server {
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn serve(cert_file: &Path, key_file: &Path, handshake: Duration) -> Server {
    let certificate = ReloadingCertificate::load(NAMES, cert_file, key_file).expect("loads");
    let https = Https::new(Arc::new(certificate), handshake).expect("TLS config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let limits = ConnectionLimits {
        // Long enough that only the handshake timeout can close a silent connection in a test.
        timeouts: ConnectionTimeouts {
            message: Duration::from_secs(60),
            idle: Duration::from_secs(60),
        },
        max_per_ip: 64,
        max_total: 64,
    };
    let router = Router::new().route("/hello", get(|| async { "hello over TLS" }));
    let shutdown = CancellationToken::new();
    tokio::spawn(serve_https(
        LimitedListener { listener, limits },
        Some(https),
        router,
        "test HTTPS",
        shutdown.clone(),
    ));
    Server { addr, shutdown }
}

type Client = tokio_rustls::client::TlsStream<TcpStream>;

async fn connect(addr: std::net::SocketAddr, roots: &[&str]) -> std::io::Result<Client> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(HANG, connector(roots).connect(name, tcp))
        .await
        .expect("handshake hung")
}

fn served_certificate(client: &Client) -> CertificateDer<'static> {
    client
        .get_ref()
        .1
        .peer_certificates()
        .expect("peer certificates")[0]
        .clone()
}

/// One keep-alive GET on an open connection; the response's text.
async fn get_hello(client: &mut Client) -> String {
    client
        .write_all(b"GET /hello HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .expect("write request");
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&response).contains("hello over TLS") {
        let n = tokio::time::timeout(HANG, client.read(&mut buf))
            .await
            .expect("response hung")
            .expect("read response");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&response));
        response.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&response).into_owned()
}

/// Reads until the server closes; `None` if it kept the connection open past [`HANG`].
async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(HANG, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_trusting_the_certificate_gets_an_answer_and_others_do_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pair = self_signed();
    let (cert, key) = install(dir.path(), &pair);
    let server = serve(&cert, &key, HANG).await;

    // reqwest, as any HTTPS client, trusting the self-signed certificate.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pair.0.as_bytes()).expect("pem"))
        .build()
        .expect("client");
    let url = format!("https://localhost:{}/hello", server.addr.port());
    let response = client.get(&url).send().await.expect("HTTPS request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "hello over TLS");

    // A client that does not trust it refuses the server.
    let (stranger, _) = self_signed();
    assert!(connect(server.addr, &[&stranger]).await.is_err());
}

#[tokio::test]
async fn a_client_that_connects_and_sends_nothing_is_closed_after_the_handshake_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = install(dir.path(), &self_signed());
    let server = serve(&cert, &key, Duration::from_millis(300)).await;
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    // The header and idle timeouts are a minute: only the handshake timeout can close it.
    let got = read_until_closed(&mut silent).await;
    assert_eq!(
        got,
        Some(Vec::new()),
        "a silent client must be closed, not held"
    );
}

#[tokio::test]
async fn plain_http_to_the_tls_port_is_closed_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = install(dir.path(), &self_signed());
    // A handshake timeout longer than the hang guard: only the refusal can close it.
    let server = serve(&cert, &key, Duration::from_secs(120)).await;
    let mut plain = TcpStream::connect(server.addr).await.expect("connect");
    plain
        .write_all(b"GET /hello HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .expect("write");
    let got = read_until_closed(&mut plain)
        .await
        .expect("a plain request to the TLS port must be closed, not left hanging");
    assert!(!String::from_utf8_lossy(&got).contains("hello over TLS"));
}

#[tokio::test]
async fn a_renewed_certificate_reaches_new_connections_and_open_ones_keep_theirs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (first, second) = (self_signed(), self_signed());
    let (cert, key) = install(dir.path(), &first);
    let server = serve(&cert, &key, HANG).await;
    let roots = [first.0.as_str(), second.0.as_str()];

    let mut open = connect(server.addr, &roots).await.expect("connect");
    assert_eq!(served_certificate(&open), der(&first.0));
    get_hello(&mut open).await;

    install(dir.path(), &second);
    let renewed = connect(server.addr, &roots).await.expect("connect");
    assert_eq!(served_certificate(&renewed), der(&second.0));
    // The connection opened before the renewal is still served.
    assert!(get_hello(&mut open).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_certificate_that_does_not_load_on_reload_leaves_the_old_one_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = self_signed();
    let (cert, key) = install(dir.path(), &first);
    let server = serve(&cert, &key, HANG).await;

    // A chain whose key is another's: refused, and the old pair keeps serving.
    let (other_cert, _) = self_signed();
    std::fs::write(&cert, other_cert).expect("write mismatched cert");
    let mut client = connect(server.addr, &[&first.0]).await.expect("connect");
    assert_eq!(served_certificate(&client), der(&first.0));
    get_hello(&mut client).await;

    // A half-written file likewise.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nMIIB").expect("write junk");
    let client = connect(server.addr, &[&first.0]).await.expect("connect");
    assert_eq!(served_certificate(&client), der(&first.0));
}

#[test]
fn a_key_that_does_not_fit_or_cannot_be_read_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, _) = install(dir.path(), &self_signed());
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, self_signed().1).expect("write key");
    let mismatch = ReloadingCertificate::load(NAMES, &cert, &other_key)
        .expect_err("a key of another certificate")
        .to_string();
    assert!(mismatch.contains("http.tls_key"), "{mismatch}");
    assert!(mismatch.contains("other.key"), "{mismatch}");
    assert!(mismatch.contains("http.tls_cert"), "{mismatch}");

    let missing = dir.path().join("missing.key");
    let unreadable = ReloadingCertificate::load(NAMES, &cert, &missing)
        .expect_err("no key file")
        .to_string();
    assert!(unreadable.contains("http.tls_key"), "{unreadable}");
    assert!(unreadable.contains("missing.key"), "{unreadable}");
}
