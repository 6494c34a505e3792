//! A leg on another edge, over real sockets: a control plane and two edges in this process,
//! gossiping (UDP) and meshed (QUIC, certificates from one dev CA). A hand-written SIP caller
//! dials the number on edge A; the API dials a second party with `"edge": "edge-b"`, so edge B
//! places the INVITE through the workspace's trunk (a hand-written UAS) and carries the party's
//! audio to A over the mesh. Bridged with the agent muted, the caller's 440 Hz reaches the
//! party as RTP from B and the party's 1800 Hz reaches the caller as RTP from A. Hostile mesh
//! peers are refused by B and counted: a cluster member that is not the call's edge using the
//! call's grant, a dial for a call nobody granted, and a flood of dial requests. When the
//! caller hangs up, B hangs the party up. Then a warm transfer across the edges: the party
//! behind B hears the summary alone before it is bridged with the caller.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::caller::free_udp_port;
use crate::support::http::{Answer, Api};
use crate::support::mesh_probe::{ask, probe};
use crate::support::party::Party;
use crate::support::raw_sip::{Call, Offer};
use crate::support::tones::{
    assert_tones_cross, loud, packets_where, packets_with, send_tone, CALLER_HZ, PARTY_HZ,
};
use crate::support::world::{udp_trunk, World};
use crate::support::{edge_config, eventually, SECRET};
use freya_control::store::Role;
use freya_edge::mesh::tls::{write_dev_pki, MeshTls};
use freya_edge::mesh::{ControlMessage, HangupCause, LegKey, Mesh, MeshSettings};
use freya_edge::Edge;

const PARTY: &str = "+4733333333";
const LIMIT: Duration = Duration::from_secs(20);

/// Two edges' cluster and mesh settings: gossip seeded with each other, mesh certificates from
/// one dev CA in `dir` (a third certificate, `edge-c`, for the hostile peer), and each edge's
/// region.
struct Pair {
    gossip: [u16; 2],
    pki: Vec<[std::path::PathBuf; 3]>,
    regions: [&'static str; 2],
}

impl Pair {
    fn new(dir: &std::path::Path, regions: [&'static str; 2]) -> Self {
        let pki = write_dev_pki(dir, &["edge-a", "edge-b", "edge-c"]).expect("dev PKI");
        Self {
            gossip: [free_udp_port(), free_udp_port()],
            pki,
            regions,
        }
    }

    fn configure(&self, i: usize, config: &mut freya_edge::config::EdgeConfig) {
        let [ca, cert, key] = self.pki[i].clone();
        config.id = Some(["edge-a", "edge-b"][i].into());
        config.region = self.regions[i].into();
        config.cluster.bind = Some(format!("127.0.0.1:{}", self.gossip[i]));
        config.cluster.seeds = vec![format!("127.0.0.1:{}", self.gossip[1 - i])];
        config.mesh.listen = Some("127.0.0.1:0".into());
        config.mesh.ca_file = Some(ca);
        config.mesh.cert_file = Some(cert);
        config.mesh.key_file = Some(key);
    }

    fn tls(&self, i: usize) -> MeshTls {
        let [ca, cert, key] = &self.pki[i];
        MeshTls::load(ca, cert, key).expect("mesh credentials")
    }
}

/// Edge B's count of refused dial requests for `reason`.
async fn refused(b: &Edge, reason: &str) -> u64 {
    let url = format!("http://{}/metrics", b.http_addr);
    let text = reqwest::get(url)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let series = format!("freya_edge_mesh_dials_refused_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Sends `dial` to B from a peer with `tls`; the answer B gives on the leg, if any.
async fn dial_as(tls: &MeshTls, b: SocketAddr, dial: &ControlMessage) -> Option<ControlMessage> {
    let mesh = probe(tls, "127.0.0.3");
    let answer = ask(&mesh, b, dial.key(), dial).await;
    mesh.close();
    answer
}

/// Where the two edges are, and a further number of the workspace with its home region.
struct Layout {
    regions: [&'static str; 2],
    homed: Option<(&'static str, &'static str)>,
}

/// Both edges in one region, and no further number.
const ONE_REGION: Layout = Layout {
    regions: ["local", "local"],
    homed: None,
};

/// A world on edge A, edge B beside it in the same cluster and mesh, the party's trunk in the
/// workspace, and B serving it.
async fn two_edges(agent: serde_json::Value, voice: bool) -> (World, Edge, Pair, Party) {
    two_edges_in(agent, voice, ONE_REGION).await
}

/// [`two_edges`] laid out as `layout` says.
async fn two_edges_in(
    agent: serde_json::Value,
    voice: bool,
    layout: Layout,
) -> (World, Edge, Pair, Party) {
    let pki_dir = tempfile::tempdir().expect("dir");
    let pair = Pair::new(pki_dir.path(), layout.regions);
    let a_config = {
        let (pki, gossip, regions) = (pair.pki.clone(), pair.gossip, pair.regions);
        move |config: &mut freya_edge::config::EdgeConfig| {
            Pair {
                gossip,
                pki,
                regions,
            }
            .configure(0, config)
        }
    };
    let mut builder = World::builder().agent(agent).edge_config(a_config);
    if voice {
        builder = builder.voice();
    }
    let w = builder.start().await;
    if let Some((number, region)) = layout.homed {
        let agent = serde_json::from_value(json!({"name": "Elsewhere"})).expect("agent");
        support::agent_on_number_in(&w.control, &w.scope, number, Some(region), &agent).await;
        // A's configuration after this change (which A, of another region, does not route)
        // before the trunk is set on it: a later configuration would drop the trunk.
        let wanted = w.control.store.config_version().await.expect("version");
        let state = w.edge.state.clone();
        eventually(LIMIT, "edge A's configuration after the number", || async {
            (state.snapshot().version >= wanted).then_some(())
        })
        .await;
    }
    let b_dir = tempfile::tempdir().expect("dir");
    let mut b_config = edge_config(b_dir.path(), w.control.grpc_addr, SECRET);
    pair.configure(1, &mut b_config);
    let b = Edge::start(&b_config).await.expect("edge B starts");
    let party = Party::bind().await;
    w.set_trunks(vec![udp_trunk("party", party.port(), 1)]);
    // B's first configuration, then the same trunk as A's (as the world sets it on A).
    eventually(LIMIT, "edge B's first configuration", || async {
        (!b.state.snapshot().numbers.is_empty()).then_some(())
    })
    .await;
    b.state.set_snapshot((*w.edge.state.snapshot()).clone());
    let a_http = w.edge.http_addr;
    eventually(
        LIMIT,
        "edge A to see edge B's mesh in gossip",
        || async move {
            let cluster: serde_json::Value = reqwest::get(format!("http://{a_http}/cluster"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let members = cluster["members"].as_array()?;
            members
                .iter()
                .any(|m| m["id"] == "edge-b" && m["state"] == "alive" && m["mesh_addr"].is_string())
                .then_some(())
        },
    )
    .await;
    // Keep the PKI directory for the test's length.
    std::mem::forget(pki_dir);
    std::mem::forget(b_dir);
    (w, b, pair, party)
}

/// `POST /v1/calls/{id}/legs` dialling the party through edge `edge`.
async fn add_leg(api: &Api, key: &str, id: &str, edge: &str) -> Answer {
    let body = json!({"to": PARTY, "edge": edge});
    api.call("POST", &format!("/v1/calls/{id}/legs"), key, Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_dialled_on_another_edge_carries_audio_both_ways_and_strangers_are_refused() {
    let (w, b, pair, party) = two_edges(json!({"transfer_destinations": [PARTY]}), false).await;
    let (api, key) = (Api::of(&w.control), w.key(Role::Editor).await);
    let (call, caller_rtp, caller_tone) = Call::sending_tone(
        w.edge.sip_addr,
        &w.number,
        "xedge-1@caller.test",
        Some(CALLER_HZ),
    )
    .await;
    let id = w.call_in_status("in_progress").await.id;
    let path = |tail: &str| format!("/v1/calls/{id}{tail}");

    let nowhere = add_leg(&api, &key, &id, "edge-x").await;
    assert_eq!(
        nowhere.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        nowhere.body
    );
    assert_eq!(nowhere.body["errors"][0]["field"], "edge");

    let dialled = add_leg(&api, &key, &id, "edge-b").await;
    assert_eq!(dialled.status, StatusCode::ACCEPTED, "{}", dialled.body);
    assert_eq!(dialled.body["edge"], "edge-b");
    let (invite, edge_sip) = party.receives("INVITE").await;
    assert_eq!(
        edge_sip.port(),
        b.sip_addr.port(),
        "edge B places the INVITE"
    );
    let added = w.event("call.leg_added").await;
    assert_eq!(added.payload["edge"], "edge-b", "{}", added.payload);

    let (party_rtp, b_leg_rtp) = party.answer(&invite, edge_sip).await;
    party.receives("ACK").await;
    let answered = w.event("call.leg_answered").await;
    assert_eq!(answered.payload["edge"], "edge-b", "{}", answered.payload);
    let party_tone = send_tone(party_rtp.clone(), b_leg_rtp, Some(PARTY_HZ));

    let bridged = api
        .call(
            "POST",
            &path("/bridge"),
            &key,
            Some(json!({"legs": [0, 1], "agent": "muted"})),
        )
        .await;
    assert_eq!(bridged.status, StatusCode::ACCEPTED, "{}", bridged.body);
    w.event("call.bridged").await;
    let b_ip = b_leg_rtp.ip();
    let edges = ("edge B", "edge A");
    assert_tones_cross(&party_rtp, &caller_rtp, b_ip, call.edge_rtp, edges, LIMIT).await;

    // Hostile peers, each refused by B and counted.
    let b_mesh = b.mesh_addr.expect("B's mesh");
    let call_uuid = uuid::Uuid::parse_str(&id).expect("call id");
    let workspace = w.scope.workspace_id.clone();
    let dial = |call: uuid::Uuid, leg: u16, from_edge: &str| ControlMessage::Dial {
        key: LegKey { call, leg },
        workspace: workspace.clone(),
        to: PARTY.into(),
        from_edge: from_edge.into(),
    };
    let stranger = pair.tls(2);
    let refusal = Some(ControlMessage::Hangup {
        key: LegKey {
            call: call_uuid,
            leg: 2,
        },
        cause: HangupCause::Refused,
    });
    // A cluster member that is not the call's edge, claiming to be it, for a leg never granted.
    assert_eq!(
        dial_as(&stranger, b_mesh, &dial(call_uuid, 2, "edge-a")).await,
        refusal
    );
    assert!(refused(&b, "no_grant").await >= 1);
    // A grant exists for leg 3 of this call (the control plane's), but not for this peer.
    let grant = add_leg(&api, &key, &id, "edge-b").await;
    assert_eq!(grant.status, StatusCode::ACCEPTED, "{}", grant.body);
    let stolen = dial_as(&stranger, b_mesh, &dial(call_uuid, 2, "edge-a")).await;
    assert!(matches!(
        stolen,
        Some(ControlMessage::Hangup {
            cause: HangupCause::Refused,
            ..
        })
    ));
    // A flood of dial requests from one peer: past its rate, refused as such.
    let (flood, _requests) = Mesh::bind(
        "127.0.0.3:0".parse().expect("addr"),
        &stranger,
        MeshSettings::default(),
    )
    .expect("flooding mesh");
    for n in 0..60u16 {
        let _ = flood
            .send_control(b_mesh, &dial(uuid::Uuid::now_v7(), n, "edge-c"))
            .await;
    }
    eventually(LIMIT, "the flood to be refused as rate-limited", || async {
        (refused(&b, "rate_limited").await >= 20).then_some(())
    })
    .await;
    flood.close();

    // The caller hangs up: edge B hangs the party up.
    call.hang_up(2).await;
    let from = party.hung_up().await;
    assert_eq!(from.port(), b.sip_addr.port(), "the BYE comes from edge B");
    caller_tone.abort();
    party_tone.abort();
    b.stop().await;
    w.teardown().await;
}

/// A warm transfer across edges: the API asks for one on edge B with a summary; the party
/// behind B hears the summary (RTP from B, before any bridge with the caller), then is
/// bridged with the caller, the agent gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_transfer_across_edges_whispers_the_summary_to_the_party_before_the_bridge() {
    let (w, b, _pair, party) = two_edges(
        json!({"name": "Switchboard", "transfer_destinations": [PARTY]}),
        true,
    )
    .await;
    let (api, key) = (Api::of(&w.control), w.key(Role::Editor).await);
    // The caller stays quiet (no barge-in on the greeting), then speaks 440 Hz once bridged.
    let (call, caller_rtp, caller_line) =
        Call::sending_tone(w.edge.sip_addr, &w.number, "xedge-2@caller.test", None).await;
    let id = w.call_in_status("in_progress").await.id;
    let dialled = api
        .call(
            "POST",
            &format!("/v1/calls/{id}/legs"),
            &key,
            Some(json!({"to": PARTY, "edge": "edge-b",
                        "whisper": "A caller about a refund, calm, account verified."})),
        )
        .await;
    assert_eq!(dialled.status, StatusCode::ACCEPTED, "{}", dialled.body);
    let (invite, edge_sip) = party.receives("INVITE").await;
    assert_eq!(
        edge_sip.port(),
        b.sip_addr.port(),
        "edge B places the INVITE"
    );
    let (party_rtp, b_leg_rtp) = party.answer(&invite, edge_sip).await;
    let party_line = send_tone(party_rtp.clone(), b_leg_rtp, None);
    let (whispered, from) = packets_where(&party_rtp, 10, LIMIT, loud).await;
    assert_eq!(whispered, 10, "the party behind edge B hears the summary");
    assert_eq!(from.map(|a| a.ip()), Some(b_leg_rtp.ip()));
    let events = eventually(LIMIT, "the warm transfer to succeed", || async {
        let events = w.events_of(&id).await;
        let done = events
            .iter()
            .any(|e| e.kind == "call.transfer" && e.payload["status"] == "succeeded");
        done.then_some(events)
    })
    .await;
    let of_kind = |kind: &str| -> Vec<serde_json::Value> {
        events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.payload.clone())
            .collect()
    };
    assert_eq!(
        of_kind("call.bridged"),
        [
            json!({"legs": [1], "agent": "whisper", "whisper_to": 1}),
            json!({"legs": [0, 1], "agent": "muted"})
        ]
    );
    assert_eq!(
        of_kind("call.leg_added"),
        [json!({"leg": 1, "to": PARTY, "by": "api", "edge": "edge-b"})]
    );
    // Bridged: the caller's voice now reaches the party through both edges.
    caller_line.abort();
    let caller_tone = send_tone(caller_rtp.clone(), call.edge_rtp, Some(CALLER_HZ));
    let (to_party, _) = packets_with(&party_rtp, CALLER_HZ, 25, LIMIT).await;
    assert_eq!(
        to_party, 25,
        "after the summary, the party hears the caller"
    );
    caller_tone.abort();
    party_line.abort();
    call.hang_up(2).await;
    party.hung_up().await;
    b.stop().await;
    w.teardown().await;
}

/// A leg to a number homed in another region is dialled, unasked, by an edge of that region:
/// the call is on edge A (region `us`), the party's number is one of the workspace's, homed in
/// `eu`, where only edge B is. The API answers with B, B's SIP socket sends the INVITE, and
/// the call's record names B on the leg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_to_a_number_homed_in_another_region_is_dialled_by_an_edge_of_that_region() {
    let layout = Layout {
        regions: ["us", "eu"],
        homed: Some((PARTY, "eu")),
    };
    let agent = json!({"transfer_destinations": [PARTY]});
    let (w, b, _pair, party) = two_edges_in(agent, false, layout).await;
    let (api, key) = (Api::of(&w.control), w.key(Role::Editor).await);
    let (call, _rtp) = Call::dialled(
        w.edge.sip_addr,
        &w.number,
        "region-leg-1@caller.test",
        Offer::PcmuWithEvents,
    )
    .await;
    let record = w.call_in_status("in_progress").await;
    assert_eq!(
        record.region.as_deref(),
        Some("us"),
        "the call is on A, in us"
    );
    let dialled = api
        .call(
            "POST",
            &format!("/v1/calls/{}/legs", record.id),
            &key,
            Some(json!({"to": PARTY})),
        )
        .await;
    assert_eq!(dialled.status, StatusCode::ACCEPTED, "{}", dialled.body);
    assert_eq!(dialled.body["edge"], "edge-b", "the control plane chose B");
    let (invite, edge_sip) = party.receives("INVITE").await;
    assert_eq!(
        edge_sip.port(),
        b.sip_addr.port(),
        "edge B, in eu, places the INVITE"
    );
    let added = w.event("call.leg_added").await;
    assert_eq!(added.payload["edge"], "edge-b", "{}", added.payload);
    let (_party_rtp, _b_leg_rtp) = party.answer(&invite, edge_sip).await;
    party.receives("ACK").await;
    let answered = w.event("call.leg_answered").await;
    assert_eq!(answered.payload["edge"], "edge-b", "{}", answered.payload);
    call.hang_up(2).await;
    let from = party.hung_up().await;
    assert_eq!(from.port(), b.sip_addr.port(), "the BYE comes from edge B");
    b.stop().await;
    w.teardown().await;
}
