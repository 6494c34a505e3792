//! What SIP over TLS costs on a real edge on 127.0.0.1 (figures in `loadtest/BENCHMARKS.md`):
//! a new connection's TCP + TLS handshake plus one OPTIONS answered, and OPTIONS round trips
//! on a connection already up, over TLS and over plain TCP for comparison. The edge answers
//! from a cached configuration (no control plane) with the test certificates of
//! `edge/src/sip/transport/tls/testdata`.
//!
//! `cargo run --release -p freya-edge --example sip_tls_bench -- [handshakes] [round_trips]`

#[path = "../tests/support/cached_edge.rs"]
mod cached_edge;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use freya_edge::sip::framing::StreamFramer;
use freya_edge::Edge;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/sip/transport/tls/testdata")
        .join(name)
}

fn options(n: usize, transport: &str) -> String {
    format!(
        "OPTIONS sip:edge@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport} 127.0.0.1:9;branch=z9hG4bKb{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:bench@127.0.0.1>;tag=b\r\nTo: <sip:edge@127.0.0.1>\r\n\
         Call-ID: bench-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends one OPTIONS and reads until its response is framed.
async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    framer: &mut StreamFramer,
    n: usize,
    transport: &str,
) {
    stream
        .write_all(options(n, transport).as_bytes())
        .await
        .expect("sent");
    let mut buf = [0u8; 4096];
    loop {
        if framer.next_message().expect("framed").is_some() {
            return;
        }
        let read = stream.read(&mut buf).await.expect("read");
        assert!(read > 0, "closed");
        framer.push(&buf[..read]);
    }
}

fn summary(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: n={} p50={:.3} ms p95={:.3} ms max={:.3} ms",
        times.len(),
        ms(at(0.5)),
        ms(at(0.95)),
        ms(at(1.0))
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let handshakes = args.first().copied().unwrap_or(200);
    let trips = args.get(1).copied().unwrap_or(2000);
    let dir = tempfile::tempdir().expect("temp dir");
    let agent = serde_json::json!({"name": "Desk"});
    let mut config = cached_edge::cached_edge_config(dir.path(), "tls-bench", "demo", agent);
    config.sip.tls_listen = Some("127.0.0.1:0".into());
    config.sip.tls_cert_file = Some(testdata("edge.pem").display().to_string());
    config.sip.tls_key_file = Some(testdata("edge.key").display().to_string());
    let edge = Edge::start(&config).await.expect("edge starts");
    let tls_addr = edge.sip_tls_addr.expect("TLS listener");

    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(testdata("ca.pem")).expect("CA"))
        .expect("root");
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(client));
    let name = ServerName::try_from("localhost").expect("name");

    let mut times = Vec::with_capacity(handshakes);
    for n in 0..handshakes {
        let start = Instant::now();
        let tcp = TcpStream::connect(tls_addr).await.expect("connect");
        let mut tls = connector
            .connect(name.clone(), tcp)
            .await
            .expect("handshake");
        round_trip(&mut tls, &mut StreamFramer::new(), n, "TLS").await;
        times.push(start.elapsed());
    }
    summary("new TLS connection + OPTIONS answered", times);

    let tcp = TcpStream::connect(tls_addr).await.expect("connect");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    let mut framer = StreamFramer::new();
    let mut times = Vec::with_capacity(trips);
    for n in 0..trips {
        let start = Instant::now();
        round_trip(&mut tls, &mut framer, n, "TLS").await;
        times.push(start.elapsed());
    }
    summary("OPTIONS round trip on an open TLS connection", times);

    let mut tcp = TcpStream::connect(edge.sip_addr).await.expect("connect");
    let mut framer = StreamFramer::new();
    let mut times = Vec::with_capacity(trips);
    for n in 0..trips {
        let start = Instant::now();
        round_trip(&mut tcp, &mut framer, n, "TCP").await;
        times.push(start.elapsed());
    }
    summary("OPTIONS round trip on an open TCP connection", times);
    edge.stop().await;
}
