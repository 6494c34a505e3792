//! Registration with a PBX against sipp registrars (`control/tests/sipp/registrar_*.xml`): a
//! real edge, configured with a trunk that registers, is challenged (401, MD5 digest checked
//! by sipp), registered, refreshes before its 2 s binding lapses, loses its registrar, shows
//! the failure, and registers again when a registrar is back on the same port; a call to the
//! registered contact then reaches the agent bound to the registration's number. A registrar
//! that answers 403 stops the registration with a clear error and gets no more REGISTERs.
//! The status is read where the edge shows it (`GET /registrations`).

use std::path::PathBuf;
use std::time::Duration;

use freya_edge::Edge;
use freya_shared::model::provider::RegistrationSpec;
use freya_shared::model::{ProviderSpec, SipTransport, SipTrunkSpec};
use freya_shared::snapshot::ProviderConfig;

use crate::support::cached_edge::cached_edge_config;
use crate::support::flood::NUMBER;

/// Longest any step waits (a hang guard, not a measure).
const HANG_GUARD: Duration = Duration::from_secs(60);

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../control/tests/sipp")
        .join(name)
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// sipp running the registrar `scenario` once on 127.0.0.1:`port`.
fn registrar(name: &str, port: u16, work: &tempfile::TempDir) -> tokio::process::Child {
    tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(scenario(name))
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1"])
        .args(["-timeout", "40s", "-nostdin", "-trace_err"])
        .current_dir(work.path())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs (deploy/test.sh installs it)")
}

async fn exit_code(mut sipp: tokio::process::Child, work: &tempfile::TempDir) -> i32 {
    let status = tokio::time::timeout(HANG_GUARD, sipp.wait())
        .await
        .expect("sipp finishes in time")
        .expect("sipp status");
    let code = status.code().unwrap_or(-1);
    if code != 0 {
        for entry in std::fs::read_dir(work.path()).expect("sipp dir").flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                eprintln!("--- {}:\n{text}", entry.path().display());
            }
        }
    }
    code
}

async fn start_edge(dir: &std::path::Path) -> Edge {
    let agent = serde_json::json!({"name": "Desk", "first_message": "Hello, thanks for calling."});
    let mut config = cached_edge_config(dir, "register-edge", NUMBER, agent);
    config.sip.registration_retry_base_ms = 300;
    config.sip.registration_retry_max_ms = 1_000;
    // The sipp registrars answer REGISTER only; trunk health pings are not what this tests.
    config.sip.options_interval_ms = 0;
    config.rtp.port_min = 47_200;
    config.rtp.port_max = 47_299;
    Edge::start(&config).await.expect("edge starts")
}

/// Configures the edge with one trunk at 127.0.0.1:`port` that registers as 1001.
fn register_with(edge: &Edge, port: u16, expires_seconds: u32) {
    let mut snapshot = (*edge.state.snapshot()).clone();
    snapshot.providers = vec![ProviderConfig {
        id: "pbx".into(),
        workspace_id: "w".into(),
        spec: ProviderSpec::SipTrunk(SipTrunkSpec {
            name: "PBX".into(),
            host: "127.0.0.1".into(),
            port,
            transport: SipTransport::Udp,
            username: Some("1001".into()),
            password: Some("secret".into()),
            caller_id: None,
            priority: 1,
            regions: Vec::new(),
            invite_timeout_ms: 10_000,
            outbound_proxy: None,
            registration: Some(RegistrationSpec {
                registrar: None,
                expires_seconds,
                number: Some(NUMBER.into()),
            }),
            srtp: Default::default(),
            srtp_allow_without_tls: false,
        }),
    }];
    edge.state.set_snapshot(snapshot);
}

/// The edge's report of the `pbx` registration.
async fn registration(edge: &Edge) -> serde_json::Value {
    let url = format!("http://{}/registrations", edge.http_addr);
    let all: serde_json::Value = reqwest::get(url)
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    all["pbx"].clone()
}

/// Waits until the registration's state is `state`, and returns the report.
async fn until_state(edge: &Edge, state: &str) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        let report = registration(edge).await;
        if report["state"] == state {
            return report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {state}; last {report}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn registers_through_a_challenge_refreshes_recovers_from_an_outage_and_takes_calls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = start_edge(dir.path()).await;
    let port = free_udp_port();
    let work = tempfile::tempdir().expect("sipp dir");
    let first = registrar("registrar_challenge.xml", port, &work);
    tokio::time::sleep(Duration::from_millis(300)).await; // sipp binds its port
    register_with(&edge, port, 2);
    let report = until_state(&edge, "registered").await;
    assert!(report["expires_at"].as_u64().is_some(), "{report}");
    assert!(report["last_error"].is_null(), "{report}");
    // The registrar took the refresh (with credentials) before the binding lapsed.
    assert_eq!(
        exit_code(first, &work).await,
        0,
        "the challenge and refresh went as scripted"
    );

    // The registrar is gone: the next refresh fails, and the API says why.
    let report = until_state(&edge, "failed").await;
    assert!(
        report["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{report}"
    );

    // It comes back on the same port: the back-off's next attempt registers again.
    let back = tempfile::tempdir().expect("sipp dir");
    let second = registrar("registrar_accept.xml", port, &back);
    until_state(&edge, "registered").await;
    assert_eq!(exit_code(second, &back).await, 0);

    // The PBX calls the contact we registered (sip:1001@edge): the agent of the number the
    // registration is bound to answers, and the call ends normally.
    let caller = tempfile::tempdir().expect("sipp dir");
    let call = tokio::process::Command::new("sipp")
        .args(["-sn", "uac", "-s", "1001", &edge.sip_addr.to_string()])
        .args(["-i", "127.0.0.1", "-p", &free_udp_port().to_string()])
        .args([
            "-m",
            "1",
            "-d",
            "1000",
            "-timeout",
            "30s",
            "-nostdin",
            "-trace_err",
        ])
        .current_dir(caller.path())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs");
    assert_eq!(
        exit_code(call, &caller).await,
        0,
        "the call to 1001 was answered"
    );
    edge.stop().await;
}

#[tokio::test]
async fn a_registrar_that_answers_403_stops_the_registration_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = start_edge(dir.path()).await;
    let port = free_udp_port();
    let work = tempfile::tempdir().expect("sipp dir");
    let sipp = registrar("registrar_forbidden.xml", port, &work);
    tokio::time::sleep(Duration::from_millis(300)).await;
    register_with(&edge, port, 60);
    let report = until_state(&edge, "stopped").await;
    let error = report["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.starts_with("403") && error.contains("not retrying"),
        "{report}"
    );
    // sipp fails on any REGISTER in the 3 s after its 403 (the retry base is 300 ms).
    assert_eq!(exit_code(sipp, &work).await, 0, "no REGISTER after the 403");
    edge.stop().await;
}
