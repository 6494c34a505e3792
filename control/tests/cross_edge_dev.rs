//! A leg on another edge through real processes: `freya dev --edges 3`, each child edge a
//! `freya edge` process of its own, meshed over QUIC with certificates from the cluster CA. A
//! hand-written SIP caller dials the demo number on the second edge; the API dials a second
//! party with `"edge"` naming the third, so that process places the INVITE through the
//! workspace's trunk (a hand-written UAS) and carries the party's audio to the second edge over
//! the mesh. Bridged with the agent muted, the caller's 440 Hz reaches the party as RTP from
//! the third edge and the party's 1800 Hz reaches the caller as RTP from the second. When the
//! caller hangs up, the third edge hangs the party up, and the call's record keeps the leg with
//! the edge that carried it. (`cross_edge_legs.rs` runs the same call with both edges in one
//! process, and tries the hostile mesh peers.)

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::dev_cluster::DevCluster;
use crate::support::eventually;
use crate::support::party::Party;
use crate::support::raw_sip::Call;
use crate::support::tones::{assert_tones_cross, send_tone, CALLER_HZ, PARTY_HZ};

const PARTY: &str = "+4733333333";
/// Hang guard for each wait (debug binaries on a busy machine).
const LIMIT: Duration = Duration::from_secs(30);

/// The payloads of the call's events of `kind`, as the API shows them.
fn of_kind(call: &Value, kind: &str) -> Vec<Value> {
    call["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter(|e| e["kind"] == kind)
                .map(|e| e["payload"].clone())
                .collect()
        })
        .unwrap_or_default()
}

/// `GET /v1/calls/{id}` once it has an event of `kind`.
async fn call_with(cluster: &DevCluster, id: &str, kind: &str) -> Value {
    let what = format!("a {kind} event on the call");
    eventually(LIMIT, &what, || async {
        let call = cluster.get(&format!("/v1/calls/{id}")).await?;
        (!of_kind(&call, kind).is_empty()).then_some(call)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leg_dialled_on_another_edge_process_carries_audio_both_ways_and_ends_with_the_call() {
    let cluster = DevCluster::start(3).await;
    let (api, key) = (cluster.api(), cluster.api_key().to_owned());
    let (call_edge, leg_edge) = (cluster.id(1), cluster.id(2));
    cluster.until_all_alive().await;
    // The call's edge must know where the leg's edge meshes before it can join the leg.
    cluster
        .until_view(1, "the call's edge to see the leg's edge mesh", |view| {
            view.iter()
                .any(|m| m.id == leg_edge && m.state == "alive" && m.mesh_addr.is_some())
        })
        .await;

    // The party, behind the workspace's trunk.
    let party = Party::bind().await;
    api.create(
        "/v1/providers",
        &key,
        json!({"name": "party", "host": "127.0.0.1", "port": party.port(),
                    "transport": "udp", "caller_id": "+15550100"}),
    )
    .await;

    // The caller, on the second edge (a process of its own).
    let (call, caller_rtp, caller_tone) = Call::sending_tone(
        cluster.sip(1),
        cluster.number(),
        "xedge-dev-1@caller.test",
        Some(CALLER_HZ),
    )
    .await;
    let id = cluster.call_in_progress_on(1).await;

    // The third edge dials the party.
    let legs = format!("/v1/calls/{id}/legs");
    let body = json!({"to": PARTY, "edge": leg_edge});
    let dialled = api.expect(202, "POST", &legs, &key, Some(body)).await;
    assert_eq!(dialled["edge"], leg_edge.as_str(), "{dialled}");
    let (invite, edge_sip) = party.receives("INVITE").await;
    assert_eq!(
        edge_sip.port(),
        cluster.sip(2).port(),
        "the third edge places the INVITE"
    );
    let (party_rtp, leg_rtp) = party.answer(&invite, edge_sip).await;
    party.receives("ACK").await;
    let answered = call_with(&cluster, &id, "call.leg_answered").await;
    let answered = of_kind(&answered, "call.leg_answered");
    assert_eq!(answered[0]["edge"], leg_edge.as_str(), "{answered:?}");
    let party_tone = send_tone(party_rtp.clone(), leg_rtp, Some(PARTY_HZ));

    // Bridged with the agent muted: each side hears the other's tone, from its own edge.
    let bridge = format!("/v1/calls/{id}/bridge");
    let body = json!({"legs": [0, 1], "agent": "muted"});
    api.expect(202, "POST", &bridge, &key, Some(body)).await;
    call_with(&cluster, &id, "call.bridged").await;
    let edges = ("the third edge", "the second edge");
    let leg_ip = leg_rtp.ip();
    assert_tones_cross(&party_rtp, &caller_rtp, leg_ip, call.edge_rtp, edges, LIMIT).await;

    // The caller hangs up: the third edge hangs the party up; both legs end.
    call.hang_up(2).await;
    let from = party.hung_up().await;
    assert_eq!(
        from.port(),
        cluster.sip(2).port(),
        "the BYE comes from the third edge"
    );
    caller_tone.abort();
    party_tone.abort();
    let record = eventually(LIMIT, "the call's record to end", || async {
        let call = cluster.get(&format!("/v1/calls/{id}")).await?;
        (call["ended_at"].is_string() && !of_kind(&call, "call.leg_ended").is_empty())
            .then_some(call)
    })
    .await;
    assert_eq!(record["edge_id"], call_edge.as_str(), "{record}");
    assert_eq!(
        of_kind(&record, "call.leg_added"),
        [json!({"leg": 1, "to": PARTY, "by": "api", "edge": leg_edge})]
    );
    let ended = of_kind(&record, "call.leg_ended");
    assert_eq!(ended[0]["leg"], 1, "{ended:?}");
    assert_eq!(ended[0]["reason"], "call_ended", "{ended:?}");
}
