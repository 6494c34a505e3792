//! What HTTPS costs on the HTTP listener (`serve_https`) on 127.0.0.1 (figures in
//! `loadtest/BENCHMARKS.md`): a new connection's TCP + TLS handshake plus one GET answered, and
//! GET round trips on a keep-alive connection already up, over HTTPS and over plain HTTP for
//! comparison. A self-signed P-256 certificate from rcgen, looked up per handshake from its
//! files as in production.
//!
//! `cargo run -p freya-edge --example https_bench -- [new_connections] [round_trips]`

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use freya_edge::serve::certificate::{CertificateKeys, ReloadingCertificate};
use freya_edge::serve::{
    serve_https, ConnectionLimits, ConnectionTimeouts, Https, LimitedListener,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

const REQUEST: &[u8] = b"GET /hello HTTP/1.1\r\nhost: localhost\r\n\r\n";
const BODY: &str = "hello";

/// Sends one GET and reads until its whole response is in.
async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, buf: &mut Vec<u8>) {
    stream.write_all(REQUEST).await.expect("write");
    buf.clear();
    let mut chunk = [0u8; 1024];
    while !buf.ends_with(BODY.as_bytes()) {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn listener(tls: Option<Https>, shutdown: &CancellationToken) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let limits = ConnectionLimits {
        timeouts: ConnectionTimeouts {
            message: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        },
        max_per_ip: 100_000,
        max_total: 100_000,
    };
    let router = Router::new().route("/hello", get(|| async { BODY }));
    tokio::spawn(serve_https(
        LimitedListener { listener, limits },
        tls,
        router,
        "bench",
        shutdown.clone(),
    ));
    addr
}

/// p50 / p95 / max in milliseconds.
fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    format!("{:.3} / {:.3} / {:.3}", at(0.5), at(0.95), at(1.0))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let connections: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let trips: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);

    let dir = tempfile::tempdir().expect("temp dir");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("rcgen");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write");
    let names = CertificateKeys {
        listener: "bench",
        cert: "http.tls_cert",
        key: "http.tls_key",
    };
    let reloading =
        ReloadingCertificate::load(names, Path::new(&cert), Path::new(&key)).expect("loads");
    let https = Https::new(Arc::new(reloading), Duration::from_secs(5)).expect("TLS");
    let shutdown = CancellationToken::new();
    let tls_addr = listener(Some(https), &shutdown).await;
    let plain_addr = listener(None, &shutdown).await;

    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(certified.cert.pem().as_bytes()).expect("PEM"))
        .expect("root");
    let config = ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").expect("name");
    let mut buf = Vec::with_capacity(1024);

    let (mut new_tls, mut new_plain) = (Vec::new(), Vec::new());
    for _ in 0..connections {
        let start = Instant::now();
        let tcp = TcpStream::connect(tls_addr).await.expect("connect");
        let mut stream = connector
            .connect(name.clone(), tcp)
            .await
            .expect("handshake");
        round_trip(&mut stream, &mut buf).await;
        new_tls.push(start.elapsed());
        let start = Instant::now();
        let mut stream = TcpStream::connect(plain_addr).await.expect("connect");
        round_trip(&mut stream, &mut buf).await;
        new_plain.push(start.elapsed());
    }

    let tcp = TcpStream::connect(tls_addr).await.expect("connect");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    let mut plain = TcpStream::connect(plain_addr).await.expect("connect");
    let (mut open_tls, mut open_plain) = (Vec::new(), Vec::new());
    for _ in 0..trips {
        let start = Instant::now();
        round_trip(&mut tls, &mut buf).await;
        open_tls.push(start.elapsed());
        let start = Instant::now();
        round_trip(&mut plain, &mut buf).await;
        open_plain.push(start.elapsed());
    }
    println!("times in ms, p50 / p95 / max");
    println!(
        "new HTTPS connection + GET (n={connections}): {}",
        summary(new_tls)
    );
    println!(
        "new HTTP connection + GET (n={connections}):  {}",
        summary(new_plain)
    );
    println!("GET on open HTTPS (n={trips}): {}", summary(open_tls));
    println!("GET on open HTTP (n={trips}):  {}", summary(open_plain));
    shutdown.cancel();
}
