//! Two edges and a scripted trunk, for the tests of an outbound call retried on another edge:
//! the world's control plane and edge A on 127.0.0.1 (twice B's room, so `POST /v1/calls`
//! picks it first), edge B on 127.0.0.2, optionally linked to a second control-plane replica
//! on the same database, the trunk in both edges' configuration, and a webhook subscription.

use std::time::Duration;

use serde_json::json;
use tokio::net::UdpSocket;

use freya_control::server::ControlPlane;
use freya_control::store::{CallRecord, NewOutboundCall, NewWebhook, Role};
use freya_edge::Edge;
use freya_proto::v1::{edge_command::Command, EdgeCommand, PlaceCall};

use crate::support::http::Api;
use crate::support::scripted_trunk::{self, Offers, Script};
use crate::support::waiting_calls::PARTY;
use crate::support::world::{udp_trunk, World};
use crate::support::{control_config, edge_config, eventually, Backend, SECRET};

/// How long a test waits for the cluster to settle or a call to reach a state.
pub const LIMIT: Duration = Duration::from_secs(20);
/// Edge B's id.
pub const EDGE_B: &str = "edge-b";

/// Which control-plane replica edge B's command stream (and heartbeats) go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BLinks {
    /// The world's control plane, like edge A.
    ToTheSameReplica,
    /// A second replica on the same database, which A never talks to.
    ToAnotherReplica,
}

/// The world with edge A, edge B, the scripted trunk and a webhook subscription.
pub struct Cluster {
    pub w: World,
    pub b: Edge,
    /// The replica B links to, when not the world's.
    pub second: Option<ControlPlane>,
    pub offers: Offers,
    trunk: tokio::task::JoinHandle<()>,
    webhook_id: String,
    _rtp: UdpSocket,
    _dir: tempfile::TempDir,
}

/// A cluster on SQLite with both edges linked to the world's control plane.
pub async fn cluster(script: Script) -> Cluster {
    cluster_on(Backend::Sqlite, script, BLinks::ToTheSameReplica).await
}

/// A cluster on `backend`, B linked as `b_links` says, the trunk answering as `script` says.
pub async fn cluster_on(backend: Backend, script: Script, b_links: BLinks) -> Cluster {
    let w = World::builder()
        .backend(backend)
        .edge_config(|config| config.capacity = 20)
        .start()
        .await;
    let second = match b_links {
        BLinks::ToTheSameReplica => None,
        BLinks::ToAnotherReplica => Some(
            ControlPlane::start(&control_config(&w.db.url))
                .await
                .expect("second replica"),
        ),
    };
    let b_control = second.as_ref().unwrap_or(&w.control);
    let dir = tempfile::tempdir().expect("dir");
    let mut b_config = edge_config(dir.path(), b_control.grpc_addr, SECRET);
    b_config.id = Some(EDGE_B.into());
    b_config.sip.addr = "127.0.0.2:0".into();
    let b = Edge::start(&b_config).await.expect("edge B starts");
    let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let rtp_port = rtp.local_addr().expect("addr").port();
    let sip = UdpSocket::bind("127.0.0.1:0").await.expect("trunk");
    let port = sip.local_addr().expect("addr").port();
    let (offers, trunk) = scripted_trunk::serve(sip, rtp_port, script);
    w.set_trunks(vec![udp_trunk("carrier", port, 1)]);
    eventually(LIMIT, "edge B's first configuration", || async {
        (!b.state.snapshot().numbers.is_empty()).then_some(())
    })
    .await;
    b.state.set_snapshot((*w.edge.state.snapshot()).clone());
    let store = &w.control.store;
    eventually(LIMIT, "both edges online", || async {
        let edges = store.edges(60_000).await.ok()?;
        let online = |id: &str| {
            edges.iter().any(|e| {
                e.id == id && e.status == freya_shared::model::EdgeStatus::Online && e.capacity > 0
            })
        };
        (online(&w.edge.id) && online(EDGE_B)).then_some(())
    })
    .await;
    let (hub, a) = (&w.control.commands, w.edge.id.clone());
    let b_hub = &b_control.commands;
    eventually(LIMIT, "both edges' command streams", || async {
        (hub.is_connected(&a) && b_hub.is_connected(EDGE_B)).then_some(())
    })
    .await;
    let hook = NewWebhook {
        url: "http://127.0.0.1:9/hook".into(),
        events: ["call.started", "call.answered", "call.failed", "call.ended"]
            .map(String::from)
            .to_vec(),
        secret: Some("whsec-test-0123456789".into()),
    };
    let webhook_id = store
        .create_webhook(&w.scope, "test", &hook)
        .await
        .expect("webhook")
        .id;
    Cluster {
        w,
        b,
        second,
        offers,
        trunk,
        webhook_id,
        _rtp: rtp,
        _dir: dir,
    }
}

impl Cluster {
    /// `POST /v1/calls` from the world's number to the party; the call's id.
    pub async fn place(&self) -> String {
        let key = self.w.key(Role::Editor).await;
        let body = json!({"from": self.w.number, "to": PARTY});
        let answer = Api::of(&self.w.control)
            .call("POST", "/v1/calls", &key, Some(body))
            .await;
        assert_eq!(answer.status.as_u16(), 202, "{}", answer.body);
        assert_eq!(
            answer.body["edge_id"],
            self.w.edge.id.as_str(),
            "A is tried first"
        );
        answer.body["id"].as_str().expect("id").to_owned()
    }

    /// Stores an outbound call from the world's number to the party, sent to edge A and not
    /// yet reported on, as a replica that is gone left it; its id.
    pub async fn stored_call(&self) -> String {
        let call_id = uuid::Uuid::now_v7().to_string();
        let call = NewOutboundCall {
            id: call_id.clone(),
            edge_id: self.w.edge.id.clone(),
            from_number: self.w.number.clone(),
            to_number: PARTY.into(),
            agent_id: self.w.agent_id.clone(),
        };
        self.w
            .control
            .store
            .create_outbound_call(&self.w.scope, "test", &call)
            .await
            .expect("call");
        call_id
    }

    /// The command, with id `command_id`, that places `call_id` (a [`Cluster::stored_call`]) as a
    /// replica sends it to an edge.
    pub fn placement(&self, command_id: String, call_id: &str) -> EdgeCommand {
        EdgeCommand {
            id: command_id,
            command: Some(Command::PlaceCall(PlaceCall {
                call_id: call_id.into(),
                workspace_id: self.w.scope.workspace_id.clone(),
                from: self.w.number.clone(),
                to: PARTY.into(),
                agent_id: self.w.agent_id.clone(),
            })),
        }
    }

    /// The call `id` once it is in progress (answered), waiting for `what`.
    pub async fn answered(&self, id: &str, what: &str) -> CallRecord {
        let store = &self.w.control.store;
        eventually(LIMIT, what, || async {
            let call = store.call(&self.w.scope, id).await.ok()?;
            (call.status == "in_progress").then_some(call)
        })
        .await
    }

    /// Hangs up the call `id` through `POST /v1/calls/{id}/hangup` on `replica`.
    pub async fn hang_up(&self, replica: &ControlPlane, id: &str) {
        let editor = self.w.key(Role::Editor).await;
        Api::of(replica)
            .expect(
                202,
                "POST",
                &format!("/v1/calls/{id}/hangup"),
                &editor,
                None,
            )
            .await;
    }

    /// How many webhook deliveries of `kind` were queued.
    pub async fn deliveries(&self, kind: &str) -> usize {
        let (deliveries, _) = self
            .w
            .control
            .store
            .webhook_deliveries(&self.w.scope, &self.webhook_id, None, 500)
            .await
            .expect("deliveries");
        deliveries.iter().filter(|d| d.event_kind == kind).count()
    }

    /// The kinds of the call's stored events, in order.
    pub async fn kinds(&self, call_id: &str) -> Vec<String> {
        let events = self.w.events_of(call_id).await;
        events.into_iter().map(|e| e.kind).collect()
    }

    /// Stops the trunk, both edges, the second replica and the world.
    pub async fn stop(self) {
        self.trunk.abort();
        self.b.stop().await;
        if let Some(second) = self.second {
            second.stop().await;
        }
        self.w.stop().await;
    }
}
