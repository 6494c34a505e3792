//! `[http.acme]` against a real ACME server: pebble (Let's Encrypt's test CA, Debian package
//! `pebble`) validates the HTTP-01 challenge by connecting to the edge's challenge listener —
//! its DNS answers come from `pebble-challtestsrv`, which resolves every name to 127.0.0.1 —
//! and issues a certificate; the HTTPS listener then serves it to a client that trusts
//! pebble's root and asks for the domain.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use freya_edge::config::{AcmeConfig, HttpTlsKeys};
use freya_edge::serve::acme::{held_validity, AcmeFiles};
use freya_edge::serve::{serve_https, ConnectionLimits, ConnectionTimeouts, LimitedListener};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

const DOMAIN: &str = "edge1.example.com";

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_tcp_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("address").port()
}

fn require(program: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{program} is missing: install the test packages (source deploy/packages.sh; ensure_packages --test)"
    );
}

/// pebble and its DNS on free loopback ports; the directory URL, its management address and the
/// certificate its own HTTPS serves (trusted by the ACME client through `directory_ca_file`).
struct Pebble {
    directory: String,
    management: SocketAddr,
    _pebble: Running,
    _dns: Running,
}

async fn start_pebble(dir: &Path, challenge_port: u16) -> Pebble {
    require("pebble");
    require("pebble-challtestsrv");
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("rcgen");
    std::fs::write(dir.join("pebble.pem"), certified.cert.pem()).expect("write");
    std::fs::write(
        dir.join("pebble.key"),
        certified.signing_key.serialize_pem(),
    )
    .expect("write");
    let (listen, management, dns) = (free_tcp_port(), free_tcp_port(), free_udp_port());
    let config = serde_json::json!({
        "pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("pebble.pem"),
            "privateKey": dir.join("pebble.key"),
            "httpPort": challenge_port,
            "tlsPort": free_tcp_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false
        }
    });
    std::fs::write(dir.join("pebble.json"), config.to_string()).expect("write");
    let dns_child = Command::new("pebble-challtestsrv")
        .args([
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
            "-dns01",
            &format!("127.0.0.1:{dns}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{}", free_tcp_port()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pebble-challtestsrv");
    let pebble_child = Command::new("pebble")
        .args(["-config"])
        .arg(dir.join("pebble.json"))
        .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
        // No sleeps before validation, no nonces rejected at random, no authorization reuse:
        // every run validates for real.
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .env("PEBBLE_AUTHZREUSE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pebble");
    let pebble = Pebble {
        directory: format!("https://127.0.0.1:{listen}/dir"),
        management: SocketAddr::from(([127, 0, 0, 1], management)),
        _pebble: Running(pebble_child),
        _dns: Running(dns_child),
    };
    // Up when the directory answers.
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(&pebble.directory).send().await.is_err() {
        assert!(Instant::now() < deadline, "pebble did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pebble
}

/// The root pebble issues under (generated at its start; fetched from its management API).
async fn pebble_root(pebble: &Pebble) -> CertificateDer<'static> {
    let pem = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client")
        .get(format!("https://{}/roots/0", pebble.management))
        .send()
        .await
        .expect("pebble root")
        .text()
        .await
        .expect("pebble root");
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("root PEM")
}

fn connector(root: CertificateDer<'static>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(root).expect("root");
    let config = ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_pebble_is_served_over_https_after_a_real_http01_validation() {
    let dir = tempfile::tempdir().expect("temp dir");
    let challenge_port = free_tcp_port();
    let pebble = start_pebble(dir.path(), challenge_port).await;
    let acme = AcmeConfig {
        domain: DOMAIN.into(),
        email: Some("ops@example.com".into()),
        directory_url: pebble.directory.clone(),
        cache_dir: dir.path().join("acme").to_string_lossy().into_owned(),
        challenge_addr: format!("127.0.0.1:{challenge_port}"),
        directory_ca_file: Some(dir.path().join("pebble.pem").to_string_lossy().into_owned()),
    };
    let keys = HttpTlsKeys {
        tls_cert: None,
        tls_key: None,
        handshake_timeout_ms: 5_000,
        acme: Some(&acme),
        http_redirect: None,
        public_url: None,
        hsts_max_age_secs: freya_edge::config::default_hsts_max_age_secs(),
    };
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let https = freya_edge::serve::tls::from_config(&keys, "test HTTPS", addr, &shutdown)
        .await
        .expect("ACME set up")
        .expect("HTTPS on");
    let limits = ConnectionLimits {
        timeouts: ConnectionTimeouts {
            message: Duration::from_secs(10),
            idle: Duration::from_secs(10),
        },
        max_per_ip: 64,
        max_total: 64,
    };
    let router = Router::new().route("/hello", get(|| async { "hello" }));
    tokio::spawn(serve_https(
        LimitedListener { listener, limits },
        Some(https),
        router,
        "test HTTPS",
        shutdown.clone(),
    ));

    // Handshakes fail until the order completes; then the domain's certificate is served,
    // chained to pebble's root.
    let connector = connector(pebble_root(&pebble).await);
    let name = ServerName::try_from(DOMAIN).expect("name");
    let deadline = Instant::now() + Duration::from_secs(60);
    let stream = loop {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        match tokio::time::timeout(
            Duration::from_secs(10),
            connector.connect(name.clone(), tcp),
        )
        .await
        {
            Ok(Ok(stream)) => break stream,
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "no certificate from pebble within a minute"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let leaf = &stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("certificates")[0];
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).expect("leaf parses");
    let names: Vec<String> = parsed
        .subject_alternative_name()
        .expect("SAN")
        .expect("SAN present")
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert!(names.iter().any(|n| n.contains(DOMAIN)), "{names:?}");

    // Kept on disk, owner-only, with a renewal time inside the lifetime.
    let files = AcmeFiles::of(&acme);
    for file in [&files.cert, &files.key, &files.account] {
        assert_eq!(mode(file), 0o600, "{file:?}");
    }
    let validity = held_validity(&files.cert).expect("cached certificate parses");
    assert!(validity.not_before < validity.renew_at() && validity.renew_at() < validity.not_after);
}
