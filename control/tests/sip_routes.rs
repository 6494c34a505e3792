//! Route sets through proxies (RFC 3261 sections 12.1.1 and 12.2.1.1), end to end: a control
//! plane, an edge, and an agent that ends the call after its `max_call_seconds` (so the edge
//! sends the BYE). sipp alone plays a caller behind a strict and a loose router and checks
//! the shape of the edge's 200 and BYE; then a real kamailio (`record_route()`, `t_relay()`,
//! `loose_route()`, 404 for an in-dialog request that skips it) stands between sipp and the
//! edge, and both hang-ups must go through it; and an outbound call through a trunk whose
//! `outbound_proxy` is that kamailio must pass it both ways. The call record must say whether
//! our BYE was answered.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::caller::free_udp_port;
use crate::support::caller::sipp_scenario;
use crate::support::kamailio::Kamailio;
use crate::support::world::World;
use crate::support::{on_both_engines, Backend};
use freya_control::store::CallRecord;
use freya_shared::model::SipTrunkSpec;

async fn world(backend: Backend, max_call_seconds: u32) -> World {
    World::builder()
        .backend(backend)
        .workspace("Routes")
        .agent(serde_json::json!({"max_call_seconds": max_call_seconds}))
        .start()
        .await
}

/// The call once ended, and the payload of its `call.ended` event.
async fn ended(w: &World) -> (CallRecord, serde_json::Value) {
    let (call, events) = w.ended_call().await;
    let ended = events
        .iter()
        .find(|e| e.kind == "call.ended")
        .map(|e| e.payload.clone())
        .expect("a call.ended event");
    (call, ended)
}

/// sipp dialling `demo` at `target` with `scenario`, its RTP on a socket of ours (the edge
/// sends its audio there; nobody listens to it); sipp's exit code.
async fn sipp_via(target: std::net::SocketAddr, scenario: &str) -> i32 {
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("an RTP port");
    let port = rtp.local_addr().expect("address").port();
    sipp_scenario(target, "demo", port, scenario).await
}

/// The agent ended the call at its time limit, and our BYE was answered 200.
fn assert_the_agents_bye_was_answered(call: &CallRecord, ended: &serde_json::Value) {
    assert_eq!(call.end_reason.as_deref(), Some("max_duration"));
    assert_eq!(
        ended["hangup_by"], "system",
        "the maximum duration: {ended}"
    );
    assert_eq!(ended["bye_outcome"], "200", "{ended}");
}

/// A caller behind a strict router (sipp itself) and a loose one: the edge's 200 echoes both
/// Record-Routes in order, and its BYE goes to the strict router with that router's URI as
/// Request-URI and the loose router then the caller's Contact as Route (sipp checks each).
async fn a_strict_and_a_loose_record_route_shape_our_bye(backend: Backend) {
    let w = world(backend, 2).await;
    let code = sipp_via(w.edge.sip_addr, "uac_record_route_strict.xml").await;
    assert_eq!(code, 0, "sipp's checks of the 200 and the BYE passed");
    let (call, ended) = ended(&w).await;
    assert_the_agents_bye_was_answered(&call, &ended);
    w.stop().await;
}

/// A caller through kamailio: the edge's 200 carries kamailio's Record-Route (sipp checks it),
/// sipp's ACK and BYE go through kamailio along that route, and the BYE is answered 200.
async fn a_caller_through_kamailio_hangs_up_through_it(backend: Backend) {
    let w = world(backend, 60).await;
    let Some(proxy) = Kamailio::start(w.edge.sip_addr) else {
        return w.stop().await;
    };
    let code = sipp_via(proxy.addr, "uac_via_proxy_caller_hangs_up.xml").await;
    assert_eq!(code, 0, "sipp's call through kamailio went as scripted");
    let (call, ended) = ended(&w).await;
    assert_eq!(ended["hangup_by"], "remote", "{ended}");
    assert!(call.answered_at_ms.is_some());
    assert!(ended["bye_outcome"].is_null(), "no BYE of ours: {ended}");
    drop(proxy);
    w.stop().await;
}

/// The agent hangs up a call that came through kamailio: the edge's BYE goes to kamailio with
/// its Route, kamailio relays it to the caller (sipp receives it and answers 200), and the call
/// record says our BYE was answered. Without the Route kamailio answers 404, sipp never hears
/// the BYE, and the record says `"404"`.
async fn the_agents_bye_goes_through_kamailio_and_is_answered(backend: Backend) {
    let w = world(backend, 2).await;
    let Some(proxy) = Kamailio::start(w.edge.sip_addr) else {
        return w.stop().await;
    };
    let code = sipp_via(proxy.addr, "uac_via_proxy_agent_hangs_up.xml").await;
    assert_eq!(code, 0, "sipp received the edge's BYE through kamailio");
    let (call, ended) = ended(&w).await;
    assert_the_agents_bye_was_answered(&call, &ended);
    drop(proxy);
    w.stop().await;
}

/// An outbound call through a trunk whose `outbound_proxy` is kamailio: the INVITE carries it
/// as a preloaded Route and reaches the trunk (sipp) through it, the dialog's route set comes
/// from the 2xx's Record-Route, and the ACK and our BYE (the agent hangs up) go through it too
/// (sipp checks kamailio's Via on each). Without the Route kamailio would send the INVITE back
/// to the edge.
async fn an_outbound_call_goes_through_the_trunks_outbound_proxy(backend: Backend) {
    let w = world(backend, 2).await;
    let Some(proxy) = Kamailio::start(w.edge.sip_addr) else {
        return w.stop().await;
    };
    let trunk_port = free_udp_port();
    let work = tempfile::tempdir().expect("temp dir");
    let trunk = sipp_uas("uas_via_proxy_answer.xml", trunk_port, work.path());
    tokio::time::sleep(Duration::from_millis(400)).await; // sipp binds its socket
    let spec: SipTrunkSpec = serde_json::from_value(serde_json::json!({
        "name": "Carrier", "host": "127.0.0.1", "port": trunk_port,
        "outbound_proxy": format!("sip:{};lr", proxy.addr),
    }))
    .expect("trunk");
    assert!(spec.validate().is_empty());
    w.set_trunks(vec![spec]);
    w.place_call_by_command("+15557770001").await;
    let output = tokio::time::timeout(Duration::from_secs(45), trunk.wait_with_output())
        .await
        .expect("sipp finishes in time")
        .expect("sipp output");
    if !output.status.success() {
        for entry in std::fs::read_dir(work.path()).expect("sipp dir").flatten() {
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                eprintln!("--- {}:\n{text}", entry.path().display());
            }
        }
        eprintln!("{}", String::from_utf8_lossy(&output.stdout));
    }
    assert!(
        output.status.success(),
        "the trunk saw every request come through kamailio"
    );
    let (call, ended) = ended(&w).await;
    assert_eq!(call.direction, "outbound");
    assert_eq!(
        ended["hangup_by"], "system",
        "the maximum duration: {ended}"
    );
    assert_eq!(ended["bye_outcome"], "200", "{ended}");
    drop(proxy);
    w.stop().await;
}

/// sipp as a trunk (UAS) on `port`, its logs in `work`.
fn sipp_uas(scenario_file: &str, port: u16, work: &Path) -> tokio::process::Child {
    let scenario = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(scenario_file);
    let media = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port();
    tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(scenario)
        .args(["-p", &port.to_string(), "-mp", &media.to_string()])
        .args(["-m", "1", "-i", "127.0.0.1", "-timeout", "30s", "-nostdin"])
        .arg("-trace_err")
        .current_dir(work)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs (install sip-tester: deploy/test.sh does)")
}

on_both_engines!(
    multi_thread;
    a_strict_and_a_loose_record_route_shape_our_bye,
    a_caller_through_kamailio_hangs_up_through_it,
    the_agents_bye_goes_through_kamailio_and_is_answered,
    an_outbound_call_goes_through_the_trunks_outbound_proxy,
);
