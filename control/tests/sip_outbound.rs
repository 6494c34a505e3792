//! Outbound calls and SIP over TCP against a foreign SIP peer: sipp plays the trunk (UAS
//! scenarios in `tests/sipp/uas_*.xml`) while the control plane asks the edge to call out
//! through its command stream, and sipp calls the edge over TCP.
//!
//! The providers API is not in the store yet, so the tests give the edge its trunks by writing
//! the edge's configuration snapshot directly (`edge.state.set_snapshot`) after the control
//! plane's first snapshot arrived — the same `providers` field the control plane will fill.
//! Nothing changes the configuration afterwards, so the config watch does not overwrite it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use crate::support::caller::free_udp_port;
use crate::support::eventually;
use crate::support::world::{udp_trunk, World};

/// A port free for TCP (and UDP too, since sipp binds both for its transport): a UDP-free port
/// may be a busy or lingering TCP one.
fn free_tcp_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// A sipp process running `scenario_file` with `args`, in a directory of its own.
struct Sipp {
    child: tokio::process::Child,
    work: tempfile::TempDir,
}

fn spawn_sipp(scenario_file: &str, args: &[&str]) -> Sipp {
    let work = tempfile::tempdir().expect("temp dir");
    let media_port = free_udp_port().to_string();
    let child = tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(scenario(scenario_file))
        .args(args)
        .args(["-m", "1", "-i", "127.0.0.1", "-mp", &media_port])
        .args(["-timeout", "30s", "-nostdin", "-trace_err"])
        .current_dir(work.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs (install sip-tester: deploy/test.sh does)");
    Sipp { child, work }
}

impl Sipp {
    /// Waits for sipp to finish; its exit code (logs printed when it is not 0).
    async fn finish(self) -> i32 {
        let output: Output =
            tokio::time::timeout(Duration::from_secs(45), self.child.wait_with_output())
                .await
                .expect("sipp finishes in time")
                .expect("sipp output");
        let code = output.status.code().unwrap_or(-1);
        if code != 0 {
            for entry in std::fs::read_dir(self.work.path())
                .expect("sipp dir")
                .flatten()
            {
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    eprintln!("--- {}:\n{text}", entry.path().display());
                }
            }
            eprintln!("{}", String::from_utf8_lossy(&output.stdout));
        }
        code
    }
}

/// A sipp trunk (UAS) on a port of its own; returns it and the port.
async fn sipp_trunk(scenario_file: &str, extra: &[&str]) -> (Sipp, u16) {
    let port = free_udp_port();
    let port_text = port.to_string();
    let mut args = vec!["-p", port_text.as_str()];
    args.extend_from_slice(extra);
    let sipp = spawn_sipp(scenario_file, &args);
    // Let sipp bind its socket before the edge calls.
    tokio::time::sleep(Duration::from_millis(400)).await;
    (sipp, port)
}

/// A world whose agent places the calls the tests ask for.
async fn caller_world() -> World {
    World::builder()
        .workspace("Outbound")
        .agent(serde_json::json!({"name": "Caller"}))
        .start()
        .await
}

async fn event_kinds(s: &World, call_id: &str) -> Vec<(String, serde_json::Value)> {
    let events = s.events_of(call_id).await;
    events.into_iter().map(|e| (e.kind, e.payload)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_call_is_answered_by_the_trunk_and_hung_up_by_the_callee() {
    let s = caller_world().await;
    let (trunk_sipp, port) = sipp_trunk("uas_answer.xml", &[]).await;
    s.set_trunks(vec![udp_trunk("carrier", port, 1)]);
    let call_id = s.place_call_by_command("+15557770001").await;
    assert_eq!(
        trunk_sipp.finish().await,
        0,
        "the trunk's side went as scripted"
    );
    let call = s.finished_call(&call_id).await;
    assert_eq!(
        (call.status.as_str(), call.end_reason.as_deref()),
        ("ended", Some("remote_hangup"))
    );
    assert_eq!(call.to_number.as_deref(), Some("+15557770001"));
    let kinds: Vec<String> = event_kinds(&s, &call_id)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(kinds.contains(&"call.answered".to_owned()), "{kinds:?}");
    assert_eq!(kinds.first().map(String::as_str), Some("call.started"));
    assert_eq!(kinds.last().map(String::as_str), Some("call.ended"));
    assert_eq!(s.edge.state.active_calls(), 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_challenge_is_answered_with_the_trunk_credentials() {
    let s = caller_world().await;
    let (trunk_sipp, port) = sipp_trunk("uas_digest.xml", &[]).await;
    let mut carrier = udp_trunk("carrier", port, 1);
    carrier.username = Some("freya".into());
    carrier.password = Some("s3cret".into());
    s.set_trunks(vec![carrier]);
    let call_id = s.place_call_by_command("+15557770002").await;
    assert_eq!(
        trunk_sipp.finish().await,
        0,
        "sipp verified our digest and answered"
    );
    let call = s.finished_call(&call_id).await;
    assert_eq!(call.status.as_str(), "ended");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_fails_over_to_the_next_trunk_by_priority() {
    let s = caller_world().await;
    let (down, down_port) = sipp_trunk("uas_unavailable.xml", &[]).await;
    let (up, up_port) = sipp_trunk("uas_answer.xml", &[]).await;
    // Listed out of order: priority decides.
    s.set_trunks(vec![
        udp_trunk("backup", up_port, 2),
        udp_trunk("primary", down_port, 1),
    ]);
    let call_id = s.place_call_by_command("+15557770003").await;
    assert_eq!(
        down.finish().await,
        0,
        "the primary refused with 503 and got its ACK"
    );
    assert_eq!(up.finish().await, 0, "the backup answered");
    let call = s.finished_call(&call_id).await;
    assert_eq!(call.status.as_str(), "ended");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_callee_fails_the_call_without_trying_another_trunk() {
    let s = caller_world().await;
    let (busy, busy_port) = sipp_trunk("uas_busy.xml", &[]).await;
    let backup = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("backup socket");
    let backup_port = backup.local_addr().expect("addr").port();
    s.set_trunks(vec![
        udp_trunk("primary", busy_port, 1),
        udp_trunk("backup", backup_port, 2),
    ]);
    let call_id = s.place_call_by_command("+15557770004").await;
    assert_eq!(busy.finish().await, 0);
    let call = s.finished_call(&call_id).await;
    assert_eq!(
        (call.status.as_str(), call.end_reason.as_deref()),
        ("failed", Some("busy"))
    );
    let mut buf = [0u8; 2048];
    let heard = tokio::time::timeout(Duration::from_millis(500), backup.recv_from(&mut buf)).await;
    assert!(heard.is_err(), "the backup trunk got nothing");
    let events = event_kinds(&s, &call_id).await;
    let failed = events
        .iter()
        .find(|(k, _)| k == "call.failed")
        .expect("call.failed");
    assert_eq!(failed.1["detail"]["code"], 486);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_without_trunks_gets_a_failed_call() {
    let s = caller_world().await;
    let call_id = s.place_call_by_command("+15557770005").await;
    let events = eventually(Duration::from_secs(10), "call.failed", || {
        let (store, scope, call_id) = (s.control.store.clone(), s.scope.clone(), call_id.clone());
        async move {
            let events = store.call_events(&scope, &call_id).await.ok()?;
            events
                .iter()
                .any(|e| e.kind == "call.failed")
                .then_some(events)
        }
    })
    .await;
    assert_eq!(
        events.last().map(|e| e.payload["reason"].clone()),
        Some("no_trunks".into())
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sipp_caller_over_tcp_is_answered_and_hangs_up() {
    let s = caller_world().await;
    let target: SocketAddr = s.edge.sip_addr;
    let port = free_tcp_port().to_string();
    let target_text = target.to_string();
    let sipp = spawn_sipp(
        "uac_tcp.xml",
        &["-t", "t1", "-p", &port, "-s", "demo", &target_text],
    );
    assert_eq!(sipp.finish().await, 0, "the TCP call went as scripted");
    let calls = eventually(
        Duration::from_secs(15),
        "the TCP call to be recorded",
        || {
            let (store, scope) = (s.control.store.clone(), s.scope.clone());
            async move {
                let calls = store.calls(&scope, 10).await.ok()?;
                calls
                    .iter()
                    .any(|c| c.ended_at_ms.is_some())
                    .then_some(calls)
            }
        },
    )
    .await;
    assert_eq!(
        (calls[0].status.as_str(), calls[0].end_reason.as_deref()),
        ("ended", Some("caller_hangup"))
    );
    s.stop().await;
}
