//! The mesh with real processes: `freya dev --edges 2` gives each edge a QUIC mesh port, and
//! each edge's mesh presents the certificate it enrolled for (the cluster CA the only root; no
//! separate dev PKI). Each edge gossips its mesh address (`GET /cluster` shows the other's, as
//! `dev.json` lists it); a peer holding edge 2's cluster certificate reaches the first edge's
//! mesh, and its join for a call the edge does not host is answered with a hang-up over the
//! same connection; a peer whose certificate comes from another CA is refused in the handshake
//! and gets no answer. Each process exports its certificates' expiry.
//!
//! Then edge 2 is revoked through the API: edge 1 learns the list over its command stream and
//! closes the open mesh connection holding edge 2's certificate, refuses a new one, and shows
//! edge 2 down in its gossip view; edge 2's gRPC connection is cut at once, and its reconnect
//! is refused in the handshake with a trust-audit entry.

use std::time::Duration;

use freya_edge::control_link::mtls_client;
use freya_edge::mesh::tls::dev_pki;
use freya_edge::mesh::{ControlMessage, HangupCause, Mesh, MeshTls};
use freya_edge::trust::{mtls_client_config, ControlTls};
use freya_proto::v1::HeartbeatRequest;

use crate::support::dev_cluster::{get_text, DevCluster};
use crate::support::eventually;
use crate::support::mesh_probe;

/// Hang guard for each wait.
const LIMIT: Duration = Duration::from_secs(30);

/// The cluster certificate edge `k` (2..) enrolled for, as its mesh presents it.
fn cluster_credentials(cluster: &DevCluster, k: usize) -> MeshTls {
    MeshTls::from_identity(&cluster.identity(k).expect("edge enrolled"))
}

/// Joins a leg of a call `target` does not host; returns what came back on the leg (none when
/// nothing did within a few seconds).
async fn join_unknown_call(tls: &MeshTls, target: std::net::SocketAddr) -> Option<ControlMessage> {
    let mesh = probe(tls);
    let answer = join_on(&mesh, target).await;
    mesh.close();
    answer
}

fn probe(tls: &MeshTls) -> Mesh {
    mesh_probe::probe(tls, "127.0.0.1")
}

/// [`join_unknown_call`] on an endpoint the caller keeps (its connection stays open).
async fn join_on(mesh: &Mesh, target: std::net::SocketAddr) -> Option<ControlMessage> {
    mesh_probe::join_unknown_call(mesh, target, "dev-edge-2").await
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_edges_mesh_on_the_cluster_ca_and_a_revoked_edge_is_refused_everywhere() {
    let cluster = DevCluster::start(2).await;
    let mesh_addr = |i: usize| cluster.mesh(i);

    // Each edge's gossip carries the other's mesh address.
    for (me, other) in [(0, 1), (1, 0)] {
        let (other_id, want) = (cluster.id(other), mesh_addr(other).to_string());
        cluster
            .until_view(me, "the peer's mesh address in GET /cluster", |view| {
                view.iter()
                    .any(|m| m.id == other_id && m.mesh_addr.as_deref() == Some(want.as_str()))
            })
            .await;
    }

    // A member of the cluster (edge 2's certificate from the control plane) reaches edge 1; its
    // join for a call edge 1 does not host comes back as a hang-up.
    let member = cluster_credentials(&cluster, 2);
    let answer = join_unknown_call(&member, mesh_addr(0)).await;
    assert!(
        matches!(
            answer,
            Some(ControlMessage::Hangup {
                cause: HangupCause::Unavailable,
                ..
            })
        ),
        "edge 1 answered the cluster member with {answer:?}"
    );

    // Another CA's certificate, even beside our CA, is refused: no answer ever comes.
    let foreign = dev_pki("not this cluster", &["intruder"]).expect("foreign pki");
    let intruder = MeshTls {
        ca_cert_pem: member.ca_cert_pem.clone(),
        ..foreign[0].clone()
    };
    let answer = join_unknown_call(&intruder, mesh_addr(0)).await;
    assert_eq!(answer, None, "edge 1 must not answer a foreign certificate");

    // Each process exports its certificates' expiry.
    let api_url = cluster.api_url().to_owned();
    for (url, kinds) in [
        (
            format!("{}/metrics", cluster.http(0)),
            &["cluster", "ca"][..],
        ),
        (
            format!("{}/metrics", cluster.http(1)),
            &["cluster", "ca"][..],
        ),
        (format!("{api_url}/metrics"), &["ca"][..]),
    ] {
        let text = get_text(&url).await;
        for kind in kinds {
            let series = format!("freya_certificate_expiry_timestamp_seconds{{kind=\"{kind}\"}}");
            assert!(text.contains(&series), "{url} lacks {series}:\n{text}");
        }
    }

    // An open mesh connection holding edge 2's certificate, then edge 2 is revoked.
    let open = probe(&member);
    assert!(
        join_on(&open, mesh_addr(0)).await.is_some(),
        "edge 1 answers edge 2 before the revocation"
    );
    assert!(
        open.peer_name(mesh_addr(0)).is_some(),
        "the connection is open"
    );
    let key = cluster.api_key().to_owned();
    let revoked = reqwest::Client::new()
        .post(format!("{api_url}/v1/edges/dev-edge-2/revoke"))
        .bearer_auth(&key)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);

    // Edge 1 hears the list over its command stream and closes the open connection.
    eventually(
        LIMIT,
        "edge 1 closes the revoked edge's mesh connection",
        || {
            let closed = open.peer_name(mesh_addr(0)).is_none();
            async move { closed.then_some(()) }
        },
    )
    .await;
    open.close();
    // A new connection with that certificate is refused: no answer.
    let answer = join_unknown_call(&member, mesh_addr(0)).await;
    assert_eq!(answer, None, "edge 1 must not answer a revoked certificate");
    // Its gossip shows edge 2 down, whatever edge 2 keeps saying.
    cluster
        .until_view(0, "edge 2 down in edge 1's view", |view| {
            view.iter()
                .any(|m| m.id == "dev-edge-2" && m.state == "down")
        })
        .await;
    // Edge 2's certificate no longer links to the control plane: a connection with it is
    // refused in the handshake and audited. (Connecting here rather than waiting for edge 2's
    // own reconnect, which follows its backoff; `edge_trust.rs` shows its stream cut.)
    let control_url = cluster.control_grpc_url();
    let identity = cluster.identity(2).expect("an enrolled edge");
    let tls = ControlTls::new(mtls_client_config(&identity).expect("client config"));
    let mut client =
        mtls_client(&control_url, tls, "dev-edge-2", Duration::from_secs(3)).expect("client");
    let refused = client
        .heartbeat(HeartbeatRequest {
            edge_id: "dev-edge-2".into(),
            health: None,
            registrations: Vec::new(),
        })
        .await;
    assert!(
        refused.is_err(),
        "a revoked certificate linked: {refused:?}"
    );
    eventually(
        LIMIT,
        "edge 2's refused reconnect in the trust audit",
        || async {
            // Polled gently: this is the API, under its rate limits.
            tokio::time::sleep(Duration::from_millis(250)).await;
            let entries = cluster.get("/v1/edges/trust-audit?limit=200").await?;
            entries
                .as_array()?
                .iter()
                .any(|e| {
                    e["action"] == "tls.handshake"
                        && e["outcome"] == "bad_certificate"
                        && e["detail"].to_string().contains("Revoked")
                })
                .then_some(())
        },
    )
    .await;
}
