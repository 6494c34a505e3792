//! The cluster with real processes: `freya dev --edges 3` runs a control plane, an edge in its
//! own process and two `freya edge` processes, gossiping over UDP on 127.0.0.1. The fault: one
//! edge carrying a call is killed with SIGKILL. Its peers mark it `down` in `GET /cluster`, the
//! control plane shows it offline with `cluster_state: down` (only peers' reports set that), the
//! call ends as `edge_lost` with one `call.ended` webhook, and the edge restarted from its
//! config file rejoins as alive with a newer generation.

use std::time::Duration;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::support::dev_cluster::{state_of, DevCluster};
use crate::support::eventually;
use crate::support::raw_sip::Call;
use crate::support::webhook_sink::{call_ended_hooks, ended_with, Seen};

/// Hang guard for each wait: far above the 3 s detection budget.
const LIMIT: Duration = Duration::from_secs(30);

/// Waits until the control plane lists edge `id` with `status` and `cluster_state`.
async fn until_listed(cluster: &DevCluster, id: &str, status: &str, cluster_state: &str) {
    let what = format!("the control plane to show {id} {status}, {cluster_state}");
    eventually(LIMIT, &what, || async {
        let edges = cluster.get("/v1/edges").await?;
        let edge = edges.as_array()?.iter().find(|e| e["id"] == id)?.clone();
        (edge["status"] == status && edge["cluster_state"] == cluster_state).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_edge_is_down_everywhere_its_call_ends_as_edge_lost_and_it_rejoins() {
    let mut cluster = DevCluster::start(3).await;
    let key = cluster.api_key().to_owned();

    // Every edge sees all three alive.
    cluster.until_all_alive().await;

    let seen = call_ended_hooks(&cluster.api(), &key, CancellationToken::new()).await;

    // A call on the third edge, answered and in progress.
    let victim = cluster.id(2);
    let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let _call = Call::dial(cluster.sip(2), &rtp, cluster.number(), "cluster-call-1").await;
    let call_id = cluster.call_in_progress_on(2).await;

    // SIGKILL: no goodbye, no call.ended from the edge itself.
    cluster.kill_edge(2);

    for i in 0..2 {
        cluster
            .until_view(i, "the survivors to mark the killed edge down", |view| {
                state_of(view, &victim) == Some("down")
            })
            .await;
    }
    // Offline with `cluster_state: down`, as its peers said.
    until_listed(&cluster, &victim, "offline", "down").await;
    let record = eventually(LIMIT, "the call to end as edge_lost", || async {
        let record = cluster.get(&format!("/v1/calls/{call_id}")).await?;
        record["ended_at"].is_string().then_some(record)
    })
    .await;
    assert_eq!(record["end_reason"], "edge_lost", "{record}");
    let ended_hooks = |seen: &Seen| ended_with(seen, &call_id, "edge_lost");
    eventually(LIMIT, "the call.ended webhook", || {
        let seen = seen.clone();
        async move { (ended_hooks(&seen) > 0).then_some(()) }
    })
    .await;

    // Restarted from its config file: back as alive, a newer generation, online again.
    cluster.restart_edge(2, None);
    for i in 0..2 {
        cluster
            .until_view(i, "the restarted edge to be alive at its peers", |view| {
                state_of(view, &victim) == Some("alive")
            })
            .await;
    }
    until_listed(&cluster, &victim, "online", "alive").await;
    // Two peers reported the death; the call ended once.
    assert_eq!(ended_hooks(&seen), 1, "one call.ended per call");
}
