//! `POST /v1/providers/{id}/test` through real parts: a control plane and an edge in-process,
//! the trunks real sockets on 127.0.0.1 — a sipp UAS answering OPTIONS, a UDP socket that
//! never answers, a scripted TCP trunk, the same trunk behind TLS with certificates made by
//! rcgen — and the fake Twilio REST API. The edge's periodic pings are off, so every `health`
//! seen here comes from the tests themselves.
//!
//! Attacks: testing a provider again at once (429 with Retry-After, so the endpoint cannot
//! flood a third party); a Twilio base URL at the cloud metadata address (refused before any
//! request); a wrong key (refused, and never echoed); a viewer pressing Test (403); a TLS
//! trunk whose certificate names another host (a failed check that says so).

use crate::support;

use std::sync::{Arc, Mutex};

use crate::support::caller::sipp_uas;
use crate::support::http::Api;
use crate::support::world::World;
use freya_control::store::Role;
use freya_edge::twilio::fakes::FakeTwilio;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-auth-token-right";
const WRONG_TOKEN: &str = "twilio-auth-token-WRONG";

/// A world whose edge does not ping trunks on its own and gives a test 500 ms.
async fn world() -> World {
    World::builder()
        .workspace("Provider tests")
        .edge_config(|config| {
            config.sip.options_interval_ms = 0;
            config.sip.options_timeout_ms = 500;
        })
        .start()
        .await
}

/// A sipp UAS on 127.0.0.1 answering every OPTIONS (`uas_options.xml`).
async fn options_trunk() -> (tokio::process::Child, tempfile::TempDir, u16) {
    sipp_uas("uas_options.xml", &["-m", "100000"], "120s")
}

/// A trunk over TCP that answers each OPTIONS with 100 Trying then 200 OK (same Call-ID);
/// also the trunk of `relayed_provider_test.rs`.
pub(crate) async fn tcp_trunk() -> (tokio::task::JoinHandle<()>, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer_options(stream, Arc::default()));
        }
    });
    (task, port)
}

/// Answers the OPTIONS read from `stream` with 100 Trying then 200 OK (same Call-ID). Its Via
/// is noted in `seen` before the answer leaves, so a test that has the answer has the Via.
async fn answer_options(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    seen: Arc<Mutex<Vec<String>>>,
) {
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let header = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let call_id = header("Call-ID: ");
    seen.lock().expect("vias").push(header("Via: "));
    let answer = format!(
        "SIP/2.0 100 Trying\r\nCall-ID: {call_id}\r\nContent-Length: 0\r\n\r\n\
         SIP/2.0 200 OK\r\nCall-ID: {call_id}\r\nContent-Length: 0\r\n\r\n"
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.read(&mut chunk).await;
}

/// A test CA (its PEM) and two certificates it signed, for 127.0.0.1 and for another host
/// only, each as (certificate, key).
fn test_pki() -> (
    String,
    [(CertificateDer<'static>, PrivateKeyDer<'static>); 2],
) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("CA key");
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let leaf = |name: &str| {
        let params = CertificateParams::new(vec![name.to_owned()]).expect("params");
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &issuer).expect("signed");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key)
    };
    (ca.pem(), [leaf("127.0.0.1"), leaf("sip.elsewhere.example")])
}

/// [`tcp_trunk`] behind TLS with `cert`: its port, and the Via of each OPTIONS it answered.
async fn tls_trunk(
    cert: (CertificateDer<'static>, PrivateKeyDer<'static>),
) -> (tokio::task::JoinHandle<()>, u16, Arc<Mutex<Vec<String>>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.0], cert.1)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let vias: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = vias.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                answer_options(stream, seen).await;
            });
        }
    });
    (task, port, vias)
}

async fn create(api: &Api, admin: &str, body: Value) -> String {
    let created = api.create("/v1/providers", admin, body).await;
    created["id"].as_str().expect("id").to_owned()
}

async fn test_of(api: &Api, key: &str, id: &str) -> support::http::Answer {
    api.call("POST", &format!("/v1/providers/{id}/test"), key, None)
        .await
}

async fn health_of(api: &Api, admin: &str, id: &str) -> Value {
    let provider = api
        .expect(200, "GET", &format!("/v1/providers/{id}"), admin, None)
        .await;
    provider["health"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_answering_options_tests_ok_once_per_interval_and_shows_up() {
    let s = world().await;
    let api = Api::of(&s.control);
    let admin = s.key(Role::Admin).await;
    let editor = s.key(Role::Editor).await;
    let viewer = s.key(Role::Viewer).await;
    let (_sipp, _work, port) = options_trunk().await;
    let id = create(
        &api,
        &admin,
        json!({"kind": "sip_trunk", "name": "sipp", "host": "127.0.0.1", "port": port}),
    )
    .await;
    assert_eq!(health_of(&api, &admin, &id).await["state"], "unknown");

    // A viewer may not make the control plane send anything.
    let refused = test_of(&api, &viewer, &id).await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    let tested = test_of(&api, &editor, &id).await;
    assert_eq!(tested.status, 200, "{}", tested.body);
    let body = &tested.body;
    assert_eq!(body["ok"], true, "{body}");
    assert!(body["latency_ms"].is_u64(), "{body}");
    assert!(body["checked_at"].is_string(), "{body}");
    assert_eq!(body["detail"], "OPTIONS answered 200", "{body}");
    let check = &body["checks"][0];
    assert_eq!(check["name"], "sip_options", "{body}");
    assert_eq!(check["edge"], s.edge.id.as_str(), "{body}");
    assert_eq!(check["status"], 200, "{body}");

    let health = health_of(&api, &admin, &id).await;
    assert_eq!(health["state"], "up", "{health}");
    assert_eq!(health["last_test"]["ok"], true, "{health}");
    assert_eq!(health["edges"][0]["last_status"], 200, "{health}");

    // At once again: refused, with how long to wait.
    let again = test_of(&api, &editor, &id).await;
    assert_eq!(again.status, 429, "{}", again.body);
    let retry: u64 = again
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_trunk_tests_not_ok_and_shows_down() {
    let s = world().await;
    let api = Api::of(&s.control);
    let admin = s.key(Role::Admin).await;
    // Bound, so nothing answers with ICMP: the OPTIONS is simply never answered.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let id = create(
        &api,
        &admin,
        json!({"kind": "sip_trunk", "name": "silent", "host": "127.0.0.1", "port": port}),
    )
    .await;
    let tested = test_of(&api, &admin, &id).await;
    assert_eq!(tested.status, 200, "{}", tested.body);
    assert_eq!(tested.body["ok"], false, "{}", tested.body);
    assert_eq!(
        tested.body["detail"], "no answer to OPTIONS within 500 ms",
        "{}",
        tested.body
    );
    let health = health_of(&api, &admin, &id).await;
    assert_eq!(health["state"], "down", "{health}");
    assert_eq!(
        health["last_error"], "no answer to OPTIONS within 500 ms",
        "{health}"
    );
    drop(silent);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_trunk_is_sent_options_on_a_connection() {
    let s = world().await;
    let api = Api::of(&s.control);
    let admin = s.key(Role::Admin).await;
    let (_trunk, port) = tcp_trunk().await;
    let id = create(
        &api,
        &admin,
        json!({"kind": "sip_trunk", "name": "tcp", "host": "127.0.0.1", "port": port, "transport": "tcp"}),
    )
    .await;
    let tested = test_of(&api, &admin, &id).await;
    assert_eq!(tested.status, 200, "{}", tested.body);
    assert_eq!(tested.body["ok"], true, "{}", tested.body);
    assert_eq!(tested.body["checks"][0]["status"], 200, "{}", tested.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_trunk_is_tested_by_handshake_and_options_and_a_wrong_name_is_said() {
    let (ca_pem, [good, wrong]) = test_pki();
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_file = dir.path().join("trunks-ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("CA file");
    let s = World::builder()
        .workspace("Provider tests")
        .edge_config(move |config| {
            config.sip.options_interval_ms = 0;
            config.sip.options_timeout_ms = 2_000;
            config.sip.tls_ca_file = Some(ca_file.display().to_string());
        })
        .start()
        .await;
    let api = Api::of(&s.control);
    let admin = s.key(Role::Admin).await;
    let trunk = |name: &str, port: u16| {
        json!({"kind": "sip_trunk", "name": name, "host": "127.0.0.1", "port": port,
               "transport": "tls"})
    };

    let (_good, port, vias) = tls_trunk(good).await;
    let id = create(&api, &admin, trunk("tls", port)).await;
    let tested = test_of(&api, &admin, &id).await;
    assert_eq!(tested.status, 200, "{}", tested.body);
    assert_eq!(tested.body["ok"], true, "{}", tested.body);
    let check = &tested.body["checks"][0];
    assert_eq!(check["status"], 200, "{}", tested.body);
    assert_eq!(
        check["detail"], "OPTIONS over TLS answered 200 OK",
        "{check}"
    );
    let vias = vias.lock().expect("vias").clone();
    assert!(
        vias.len() == 1 && vias[0].starts_with("SIP/2.0/TLS "),
        "one OPTIONS, sent over the TLS connection: {vias:?}"
    );

    let (_wrong, port, vias) = tls_trunk(wrong).await;
    let id = create(&api, &admin, trunk("tls-wrong-name", port)).await;
    let tested = test_of(&api, &admin, &id).await;
    assert_eq!(tested.status, 200, "{}", tested.body);
    assert_eq!(tested.body["ok"], false, "{}", tested.body);
    let check = &tested.body["checks"][0];
    assert_eq!(check["ok"], false, "{check}");
    assert_eq!(check["status"], Value::Null, "{check}");
    let detail = check["detail"].as_str().unwrap_or_default();
    assert!(
        detail.starts_with(
            "TLS handshake failed: the trunk's certificate is not valid for `127.0.0.1`"
        ),
        "{detail}"
    );
    assert!(vias.lock().expect("vias").is_empty(), "no OPTIONS sent");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_edge_in_the_trunks_regions_is_a_503_and_an_unknown_id_a_404() {
    let s = world().await;
    let api = Api::of(&s.control);
    let admin = s.key(Role::Admin).await;
    let id = create(
        &api,
        &admin,
        json!({"kind": "sip_trunk", "name": "far", "host": "127.0.0.1", "port": 5060, "regions": ["nowhere"]}),
    )
    .await;
    let tested = test_of(&api, &admin, &id).await;
    assert_eq!(tested.status, 503, "{}", tested.body);
    let detail = tested.body["detail"].as_str().expect("detail");
    assert!(detail.contains("no edge is online"), "{detail}");
    assert_eq!(
        tested.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/problem+json"[..])
    );
    let unknown = test_of(&api, &admin, "0190a5e6-0000-7000-8000-000000000000").await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let junk = test_of(&api, &admin, &"x".repeat(300)).await;
    assert_eq!(junk.status, 404, "{}", junk.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_account_is_fetched_and_a_wrong_key_is_refused_without_echoing_it() {
    let s = world().await;
    let api = Api::of(&s.control);
    let admin = s.key(Role::Admin).await;
    let twilio = FakeTwilio::start(SID, TOKEN).await.expect("fake twilio");
    let account = |name: &str, token: &str, base: String| json!({"kind": "twilio", "name": name, "account_sid": SID, "auth_token": token, "api_base_url": base});
    let good = create(&api, &admin, account("good", TOKEN, twilio.base_url())).await;
    let bad = create(&api, &admin, account("bad", WRONG_TOKEN, twilio.base_url())).await;
    assert_eq!(health_of(&api, &admin, &good).await["state"], "unknown");

    let tested = test_of(&api, &admin, &good).await;
    assert_eq!(tested.status, 200, "{}", tested.body);
    assert_eq!(tested.body["ok"], true, "{}", tested.body);
    assert_eq!(
        tested.body["checks"][0]["name"], "twilio_account",
        "{}",
        tested.body
    );
    assert_eq!(tested.body["checks"][0]["status"], 200, "{}", tested.body);
    let health = health_of(&api, &admin, &good).await;
    assert_eq!(health["state"], "up", "{health}");
    assert!(health["rtt_ms"].is_u64(), "{health}");

    let unauthorized_before = twilio.unauthorized();
    let refused = test_of(&api, &admin, &bad).await;
    assert_eq!(refused.status, 200, "{}", refused.body);
    assert_eq!(refused.body["ok"], false, "{}", refused.body);
    assert_eq!(
        refused.body["detail"], "the key was refused (401)",
        "{}",
        refused.body
    );
    assert_eq!(twilio.unauthorized(), unauthorized_before + 1);
    let health = health_of(&api, &admin, &bad).await;
    assert_eq!(health["state"], "down", "{health}");
    let shown = format!("{} {health}", refused.body);
    assert!(!shown.contains(WRONG_TOKEN), "the key leaked: {shown}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_url_at_the_metadata_address_is_never_requested() {
    let s = world().await;
    let api = Api::of(&s.control);
    let admin = s.key(Role::Admin).await;
    // This world allows private targets (its fakes live on 127.0.0.1): metadata stays refused.
    for base in [
        "http://169.254.169.254",
        "http://[fe80::1]:8080",
        "http://metadata.google.internal",
    ] {
        let id = create(
            &api,
            &admin,
            json!({"kind": "twilio", "name": base, "account_sid": SID, "auth_token": TOKEN, "api_base_url": base}),
        )
        .await;
        let tested = test_of(&api, &admin, &id).await;
        assert_eq!(tested.status, 422, "{base}: {}", tested.body);
        assert_eq!(
            tested.body["errors"][0]["field"], "api_base_url",
            "{}",
            tested.body
        );
        assert_eq!(health_of(&api, &admin, &id).await["state"], "unknown");
    }
    s.stop().await;
}
