//! HTTPS and WSS on Freya's own listeners, end to end: the control plane's REST API over HTTPS
//! with a self-signed certificate its client trusts, and a Twilio call whose webhook is HTTPS
//! and whose media stream is WSS on an edge serving `[http] tls_cert`/`tls_key`. The fake
//! Twilio (`freya_edge::twilio::fakes`) trusts the edge's certificate as Twilio trusts a real
//! CA's. A plain-HTTP listener beside the API, and one beside the edge's listener
//! (`http.http_redirect`), answers every request with a redirect to the same path on HTTPS,
//! and refuses hostile `Host` headers. Answers over HTTPS carry `Strict-Transport-Security`
//! (`http.hsts_max_age_secs`), the plain redirects do not.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::support::twilio::{finished_call, webhook_form, NUMBER, SID, TOKEN};
use crate::support::{control_config, until_edge_holds, Backend, TestDb};
use freya_control::config::ControlConfig;
use freya_edge::llm::fakes::FakeReply;
use freya_edge::twilio::fakes::{post_voice_webhook_with, CallerAction, StreamCaller};
use serde_json::json;

/// A self-signed certificate for 127.0.0.1 and localhost in `dir`: (cert file, key file, PEM).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("rcgen");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    (cert, key, certified.cert.pem())
}

/// A control plane's config on a fresh SQLite database, serving its API over HTTPS with a
/// self-signed certificate written to `dir`: the database, the config, and the certificate's
/// PEM for a client to trust.
async fn https_control_config(dir: &Path) -> (TestDb, ControlConfig, String) {
    let (cert, key, pem) = self_signed(dir);
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = control_config(&db.url);
    config.http.tls_cert = Some(cert.to_string_lossy().into_owned());
    config.http.tls_key = Some(key.to_string_lossy().into_owned());
    (db, config, pem)
}

/// A client that trusts the certificate `pem`.
fn trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).expect("PEM"))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_api_answers_over_https_and_plain_http_on_its_port_gets_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_db, mut config, pem) = https_control_config(dir.path()).await;
    let control = freya_control::server::ControlPlane::start(&config)
        .await
        .expect("control starts");
    let port = control.http_addr.port();

    let answer = trusting(&pem)
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .expect("HTTPS request");
    assert_eq!(answer.status(), 200);
    assert_eq!(
        hsts(&answer).as_deref(),
        Some("max-age=31536000"),
        "HTTPS answers tell browsers to stay on HTTPS for a year by default"
    );

    // The same request in plain HTTP is closed, not answered, and not left hanging.
    let plain = tokio::time::timeout(
        Duration::from_secs(10),
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send(),
    )
    .await
    .expect("a plain request must not hang");
    assert!(plain.is_err(), "{plain:?}");

    // A key that does not fit the certificate stops the start, naming the file.
    let other = tempfile::tempdir().expect("temp dir");
    let (_, other_key, _) = self_signed(other.path());
    config.http.tls_key = Some(other_key.to_string_lossy().into_owned());
    config.http.addr = "127.0.0.1:0".into();
    config.grpc.addr = "127.0.0.1:0".into();
    let refused = freya_control::server::ControlPlane::start(&config)
        .await
        .err()
        .expect("a mismatched key is refused");
    let message = format!("{refused:#}");
    assert!(message.contains("http.tls_key"), "{message}");
    assert!(
        message.contains(&other_key.to_string_lossy().into_owned()),
        "{message}"
    );
    control.stop().await;
}

/// The answer's `Strict-Transport-Security` header, if any.
fn hsts(answer: &reqwest::Response) -> Option<String> {
    answer
        .headers()
        .get("strict-transport-security")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A client that trusts `pem` and shows redirects instead of following them.
fn not_following(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).expect("PEM"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Checks that a client following redirects from the plain listener `plain` lands on the HTTPS
/// listener on `https_port`, same path and query, and that the redirect of `path` travels in
/// clear with no HSTS (browsers would ignore it there). The followed answer, for its headers.
async fn followed_to_https(
    pem: &str,
    plain: std::net::SocketAddr,
    https_port: u16,
    path: &str,
) -> reqwest::Response {
    let answer = trusting(pem)
        .get(format!("http://localhost:{}/healthz?probe=1", plain.port()))
        .send()
        .await
        .expect("followed to HTTPS");
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.url().as_str(),
        format!("https://localhost:{https_port}/healthz?probe=1")
    );
    let redirect = not_following(pem)
        .get(format!("http://localhost:{}{path}", plain.port()))
        .send()
        .await
        .expect("the redirect");
    assert_eq!((redirect.status().as_u16(), hsts(&redirect)), (308, None));
    answer
}

/// Checks that the raw `request` to the plain listener `plain` is redirected (308) to
/// `location`.
async fn assert_redirected(plain: std::net::SocketAddr, request: &str, location: String) {
    let (status, redirected_to) = raw_request(plain, request).await;
    assert_eq!(status, 308);
    assert_eq!(redirected_to.as_deref(), Some(location.as_str()));
}

/// Checks that the plain listener `plain` redirects nowhere for hostile requests: each of
/// `hosts` as the `Host` header (400), no `Host` at all (400), a very long target (414).
async fn assert_hostile_requests_refused(plain: std::net::SocketAddr, hosts: &[&str]) {
    for host in hosts {
        let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let (status, location) = raw_request(plain, &request).await;
        assert_eq!((status, location), (400, None), "Host: {host}");
    }
    let (status, location) = raw_request(plain, "GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!((status, location), (400, None), "no Host at all");
    let long = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(9 * 1024)
    );
    let (status, location) = raw_request(plain, &long).await;
    assert_eq!((status, location), (414, None), "a very long target");
}

/// One raw HTTP/1.1 exchange with `addr`: the status and the `Location` header, if any.
async fn raw_request(addr: std::net::SocketAddr, request: &str) -> (u16, Option<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    });
    read.await.expect("an answer must not hang");
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let location = text
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .map(str::to_owned);
    (status, location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_redirected_to_the_same_path_on_https_and_never_to_a_host_it_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (db, mut config, pem) = https_control_config(dir.path()).await;
    config.http.http_redirect = Some("127.0.0.1:0".into());
    let control = freya_control::server::ControlPlane::start(&config)
        .await
        .expect("control starts");
    let https_port = control.http_addr.port();
    let plain = control.http_redirect_addr.expect("the redirect listener");

    followed_to_https(&pem, plain, https_port, "/healthz").await;

    // Any method, any path: 308 (the method and body are kept by the client).
    assert_redirected(
        plain,
        "POST /v1/agents?x=%2F HTTP/1.1\r\nHost: LocalHost:80\r\nContent-Length: 2\r\n\r\n{}",
        format!("https://localhost:{https_port}/v1/agents?x=%2F"),
    )
    .await;

    // Hosts that are not plain names: no redirect anywhere.
    assert_hostile_requests_refused(
        plain,
        &[
            "evil.example/phish",
            "user@evil.example",
            "evil.example:http",
            "ev%69l.example",
        ],
    )
    .await;

    // The HTTPS listener still serves, the redirect listener serves nothing else.
    let (status, _) = raw_request(plain, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert_eq!(status, 308, "/healthz is redirected, not answered in clear");
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edges_plain_http_is_redirected_to_its_https_listener_which_sends_hsts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key, pem) = self_signed(dir.path());
    let world = support::world::World::builder()
        .workspace("Redirected")
        .edge_config(move |edge| {
            edge.http.tls_cert = Some(cert.to_string_lossy().into_owned());
            edge.http.tls_key = Some(key.to_string_lossy().into_owned());
            edge.http.http_redirect = Some("127.0.0.1:0".into());
            edge.http.hsts_max_age_secs = 600;
        })
        .start()
        .await;
    let https_port = world.edge.http_addr.port();
    let plain = world
        .edge
        .http_redirect_addr
        .expect("the edge's redirect listener");

    // A client that follows redirects lands on the edge's HTTPS listener, and is told to stay
    // there for the configured time.
    let answer = followed_to_https(&pem, plain, https_port, "/metrics").await;
    assert_eq!(hsts(&answer).as_deref(), Some("max-age=600"));

    // The Twilio webhook's path too, with its method kept: 308, never answered in clear.
    assert_redirected(
        plain,
        "POST /twilio/voice?x=1 HTTP/1.1\r\nHost: 127.0.0.1:80\r\nContent-Length: 2\r\n\r\nab",
        format!("https://127.0.0.1:{https_port}/twilio/voice?x=1"),
    )
    .await;

    // Hosts that are not plain names, no host, a very long target: no redirect anywhere.
    assert_hostile_requests_refused(
        plain,
        &["evil.example/phish", "user@evil.example", "ev%69l.example"],
    )
    .await;
    world.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_call_on_an_https_edge_streams_its_media_over_wss() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key, pem) = self_signed(dir.path());
    let world = support::world::World::builder()
        .workspace("Twilio")
        .voice()
        .agent(json!({"name": "Front desk", "first_message": "Hello, thanks for calling Acme."}))
        .number(NUMBER)
        .edge_config(move |edge| {
            edge.http.tls_cert = Some(cert.to_string_lossy().into_owned());
            edge.http.tls_key = Some(key.to_string_lossy().into_owned());
        })
        .start()
        .await;
    let w = support::twilio::with_account(world).await;
    until_edge_holds(&w.edge, "the edge to learn the account", |s| {
        s.providers.len() == 1
    })
    .await;
    w.llm()
        .respond_with(|_| FakeReply::text("We are open from nine to five."));

    // The webhook is HTTPS (the edge's public URL defaults to https:// with a certificate), and
    // the TwiML sends the media stream to wss://.
    let url = format!("https://{}/twilio/voice", w.edge.http_addr);
    let answer =
        post_voice_webhook_with(&trusting(&pem), &url, TOKEN, &webhook_form("CA900", NUMBER))
            .await
            .expect("HTTPS webhook");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let stream = answer.stream.expect("a <Connect><Stream>");
    assert_eq!(
        stream.url,
        format!("wss://{}/twilio/media", w.edge.http_addr)
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types_der(&pem)).expect("root");
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let report = StreamCaller::new(stream, SID, "CA900")
        .signed_with(TOKEN)
        .trusting(Arc::new(tls))
        .run(&[
            CallerAction::ListenFor {
                voiced_frames: 10,
                limit: Duration::from_secs(8),
            },
            CallerAction::Wait(Duration::from_millis(300)),
        ])
        .await
        .expect("the WSS stream runs");
    assert_eq!(report.junk, 0, "{report:?}");
    assert!(
        report.voiced_samples() > 1600,
        "the caller heard the agent's greeting over WSS: {} voiced samples",
        report.voiced_samples()
    );
    let (call, _) = finished_call(&w, "inbound").await;
    assert_eq!(call.to_number.as_deref(), Some(NUMBER));
    support::twilio::teardown(w).await;
}

fn rustls_pki_types_der(pem: &str) -> rustls::pki_types::CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freya_doctor_names_a_key_that_does_not_fit_its_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    std::fs::create_dir(&first).expect("dir");
    std::fs::create_dir(&second).expect("dir");
    let (cert, key, _) = self_signed(&first);
    let (_, other_key, _) = self_signed(&second);
    let doctor = |key: &Path| freya_control::doctor::DoctorOptions {
        data_dir: dir.path().join("data"),
        database_url: None,
        http: "127.0.0.1:0".into(),
        sip: "127.0.0.1:0".into(),
        online: false,
        environment: Vec::new(),
        tls_cert: Some(cert.clone()),
        tls_key: Some(key.to_owned()),
    };
    let line = |report: freya_control::doctor::Report| {
        report
            .checks
            .into_iter()
            .find(|c| c.name == "HTTPS certificate")
            .expect("an HTTPS certificate line")
    };

    let mismatched = line(freya_control::doctor::examine(&doctor(&other_key)).await);
    assert!(mismatched.is_failed(), "{mismatched}");
    let text = mismatched.to_string();
    assert!(text.contains("http.tls_key"), "{text}");
    assert!(
        text.contains(&other_key.to_string_lossy().into_owned()),
        "{text}"
    );

    let fitting = line(freya_control::doctor::examine(&doctor(&key)).await);
    assert!(!fitting.is_failed(), "{fitting}");
}
