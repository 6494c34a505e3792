//! SIP transactions as real peers send them, with a hand-written caller over UDP on 127.0.0.1
//! against a real edge and control plane (SQLite and PostgreSQL):
//!
//! - the ACK of a re-INVITE's 2xx stops that 2xx's retransmissions (it used to go to the first
//!   INVITE's transaction, and the 2xx was sent again for 32 s);
//! - the 200 to a CANCEL carries the To tag of the 180 and the 487;
//! - an offer with no codec of ours gets 488 with `Warning: 305`, and leaves a `call.failed`
//!   with reason `no_common_codec` in the number's workspace, and nowhere else;
//! - an INVITE to a number no workspace owns is refused and leaves no record anywhere;
//! - sipp (`tests/sipp/uac_no_common_codec.xml`) checks the 488's `Warning: 305` as a real
//!   SIP stack reads it.

use crate::support;

use std::time::Duration;

use tokio::net::UdpSocket;

use crate::support::caller::sipp_with_media;
use crate::support::http::workspace_with_keys;
use crate::support::on_both_engines;
use crate::support::raw_sip::{recv_sip, to_tag, Call, CALLER_TAG};
use crate::support::{
    agent_on_number, edge_config, eventually, until_routed, Backend, TestDb, SECRET,
};
use freya_control::server::ControlPlane;
use freya_control::store::WorkspaceScope;
use freya_edge::Edge;
use freya_shared::model::AgentSpec;

const WAIT: Duration = Duration::from_secs(10);

struct Setup {
    db: TestDb,
    control: ControlPlane,
    edge: Edge,
    scope_a: WorkspaceScope,
    scope_b: WorkspaceScope,
    _dir: tempfile::TempDir,
}

/// Workspace A owns +15550001, B owns +15550002; the edge rings 300 ms before answering.
async fn setup(backend: Backend) -> Setup {
    let (db, control) = support::control_plane(backend).await;
    let desk: AgentSpec =
        serde_json::from_value(serde_json::json!({"name": "Desk"})).expect("agent");
    let (ws_a, _) = workspace_with_keys(&control, "A").await;
    let (ws_b, _) = workspace_with_keys(&control, "B").await;
    let scope_a = WorkspaceScope { workspace_id: ws_a };
    let scope_b = WorkspaceScope { workspace_id: ws_b };
    agent_on_number(&control, &scope_a, "+15550001", &desk).await;
    agent_on_number(&control, &scope_b, "+15550002", &desk).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = edge_config(dir.path(), control.grpc_addr, SECRET);
    config.sip.ring_ms = 300;
    let edge = Edge::start(&config).await.expect("edge starts");
    until_routed(&edge, "+15550001").await;
    until_routed(&edge, "+15550002").await;
    Setup {
        db,
        control,
        edge,
        scope_a,
        scope_b,
        _dir: dir,
    }
}

async fn teardown(s: Setup) {
    s.edge.stop().await;
    s.control.stop().await;
    s.db.cleanup().await;
}

/// An SDP offer of the one codec `payload` (`rtpmap`).
fn offer(payload: &str, rtpmap: &str) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP {payload}\r\na=rtpmap:{payload} {rtpmap}\r\n"
    )
}

/// Everything that reaches `socket` within `window`.
async fn everything_within(socket: &UdpSocket, window: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

async fn a_reinvite_2xx_acknowledged_once_is_not_sent_again(backend: Backend) {
    let s = setup(backend).await;
    let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let call = Call::dial(s.edge.sip_addr, &rtp, "+15550001", "reinvite-ack@test").await;
    let port = rtp.local_addr().expect("addr").port();
    let sdp = offer("0", "PCMU/8000").replace("40000", &port.to_string());
    let tag = call.tag.clone();
    let reinvite = call.request(
        "INVITE",
        2,
        call.sip_addr,
        CALLER_TAG,
        Some(&tag),
        "application/sdp",
        &sdp,
    );
    call.sip
        .send_to(reinvite.as_bytes(), call.edge_sip)
        .await
        .expect("re-INVITE");
    let ok = recv_sip(&call.sip, "SIP/2.0 200", WAIT).await;
    assert!(ok.contains("CSeq: 2 INVITE"), "{ok}");
    let ack = call.request("ACK", 2, call.sip_addr, CALLER_TAG, Some(&tag), "", "");
    call.sip
        .send_to(ack.as_bytes(), call.edge_sip)
        .await
        .expect("ACK");
    // Unacknowledged, the 2xx would come again at 0.5, 1.5 and 3.5 s.
    let later = everything_within(&call.sip, Duration::from_millis(2_500)).await;
    assert!(
        !later.iter().any(|m| m.contains("CSeq: 2 INVITE")),
        "the acknowledged 2xx was sent again: {later:?}"
    );
    call.hang_up(3).await;
    teardown(s).await;
}

async fn the_200_to_a_cancel_has_the_tag_of_the_180_and_the_487(backend: Backend) {
    let s = setup(backend).await;
    let call = Call::new(s.edge.sip_addr, "+15550001", "cancel-tag@test").await;
    call.send_invite(&offer("0", "PCMU/8000")).await;
    let ringing = recv_sip(&call.sip, "SIP/2.0 180", WAIT).await;
    // A CANCEL has the INVITE's branch.
    let cancel = call
        .request("CANCEL", 1, call.sip_addr, CALLER_TAG, None, "", "")
        .replace("z9hG4bKCANCEL1", "z9hG4bKINVITE1");
    call.sip
        .send_to(cancel.as_bytes(), call.edge_sip)
        .await
        .expect("CANCEL");
    let answers = everything_within(&call.sip, Duration::from_secs(1)).await;
    let ok = answers
        .iter()
        .find(|m| m.starts_with("SIP/2.0 200") && m.contains("CSeq: 1 CANCEL"))
        .unwrap_or_else(|| panic!("a 200 to the CANCEL: {answers:?}"));
    let terminated = answers
        .iter()
        .find(|m| m.starts_with("SIP/2.0 487"))
        .unwrap_or_else(|| panic!("a 487: {answers:?}"));
    assert_eq!(to_tag(ok), to_tag(&ringing));
    assert_eq!(to_tag(terminated), to_tag(&ringing));
    teardown(s).await;
}

async fn a_refused_call_is_recorded_in_its_numbers_workspace_and_an_unknown_one_nowhere(
    backend: Backend,
) {
    let s = setup(backend).await;
    // To a number nobody owns: 404, no record.
    let stranger = Call::new(s.edge.sip_addr, "+15559999", "unknown@test").await;
    stranger.send_invite(&offer("0", "PCMU/8000")).await;
    recv_sip(&stranger.sip, "SIP/2.0 404", WAIT).await;
    // To A's number with G.729 only: 488 with Warning 305, and a record in A.
    let call = Call::new(s.edge.sip_addr, "+15550001", "no-codec@test").await;
    call.send_invite(&offer("18", "G729/8000")).await;
    let refusal = recv_sip(&call.sip, "SIP/2.0 488", WAIT).await;
    let warning = refusal
        .lines()
        .find(|l| l.starts_with("Warning:"))
        .unwrap_or_else(|| panic!("a Warning: {refusal}"));
    assert!(
        warning.starts_with("Warning: 305 ") && warning.ends_with("\"Incompatible media format\""),
        "{warning}"
    );
    let store = s.control.store.clone();
    let scope_a = s.scope_a.clone();
    eventually(WAIT, "the refusal to be recorded in A", || {
        let (store, scope) = (store.clone(), scope_a.clone());
        async move { (store.count_call_events(&scope).await.ok()? == 1).then_some(()) }
    })
    .await;
    let payload =
        s.db.read_text(
            "SELECT payload FROM call_events WHERE workspace_id = $1 AND kind = 'call.failed'",
            &s.scope_a.workspace_id,
        )
        .await;
    let payload: serde_json::Value = serde_json::from_str(&payload).expect("JSON payload");
    assert_eq!(payload["reason"], "no_common_codec", "{payload}");
    assert_eq!(payload["sip_call_id"], "no-codec@test");
    assert_eq!(payload["code"], 488);
    assert_eq!(payload["direction"], "inbound");
    assert_eq!(payload["to"], "+15550001");
    // The 404 went first on the same path: had it been recorded, it would be stored by now.
    let elsewhere =
        s.db.read_text(
            "SELECT CAST(COUNT(*) AS TEXT) FROM call_events WHERE workspace_id <> $1",
            &s.scope_a.workspace_id,
        )
        .await;
    assert_eq!(elsewhere, "0", "no record outside A");
    assert_eq!(
        s.control
            .store
            .count_call_events(&s.scope_b)
            .await
            .expect("count"),
        0
    );
    teardown(s).await;
}

async fn sipp_reads_warning_305_on_the_488_and_the_refusal_is_recorded(backend: Backend) {
    let s = setup(backend).await;
    assert_eq!(
        sipp_with_media(s.edge.sip_addr, "+15550002", "uac_no_common_codec.xml", &[]).await,
        0,
        "sipp got its 488 with Warning: 305"
    );
    let store = s.control.store.clone();
    let scope_b = s.scope_b.clone();
    eventually(WAIT, "the refusal to be recorded in B", || {
        let (store, scope) = (store.clone(), scope_b.clone());
        async move { (store.count_call_events(&scope).await.ok()? == 1).then_some(()) }
    })
    .await;
    assert_eq!(
        s.control
            .store
            .count_call_events(&s.scope_a)
            .await
            .expect("count"),
        0
    );
    teardown(s).await;
}

on_both_engines!(multi_thread;
    a_reinvite_2xx_acknowledged_once_is_not_sent_again,
    the_200_to_a_cancel_has_the_tag_of_the_180_and_the_487,
    a_refused_call_is_recorded_in_its_numbers_workspace_and_an_unknown_one_nowhere,
    sipp_reads_warning_305_on_the_488_and_the_refusal_is_recorded,
);
