//! Attacks on cluster gossip, over real UDP on 127.0.0.1. Two real edges gossip (from their
//! cached configurations, no control plane); a member run by this test with the cluster's key
//! joins, then falls silent and is marked down. From plain sockets: an announce sealed with a
//! guessed key (a would-be member), a forged report that a real edge is down, a datagram over
//! the size limit, and a replay of the silent member's captured announce. None adds a member,
//! marks anyone down or revives the dead one; each is dropped and counted by reason in
//! `/metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::cached_edge::cached_edge_config;
use freya_edge::cluster::report::ClusterReport;
use freya_edge::cluster::seal::{seal, GossipKey};
use freya_edge::cluster::{Membership, MembershipSettings, Peer};
use freya_edge::{Edge, EdgeConfig};
use tokio::net::UdpSocket;

/// Hang guard for each wait.
const LIMIT: Duration = Duration::from_secs(20);

fn config(dir: &std::path::Path, id: &str, seeds: Vec<String>) -> EdgeConfig {
    let mut config = cached_edge_config(dir, id, "100", serde_json::json!({"name": "Desk"}));
    config.cluster.bind = Some("127.0.0.1:0".into());
    config.cluster.seeds = seeds;
    config
}

async fn report(edge: &Edge) -> ClusterReport {
    reqwest::get(format!("http://{}/cluster", edge.http_addr))
        .await
        .expect("GET /cluster")
        .json()
        .await
        .expect("cluster JSON")
}

fn state(report: &ClusterReport, id: &str) -> Option<String> {
    report
        .members
        .iter()
        .filter(|m| m.id == id)
        .max_by_key(|m| m.generation)
        .map(|m| m.state.clone())
}

/// A sample of `/metrics`, by its full name with labels (0 when absent).
async fn metric(edge: &Edge, series: &str) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", edge.http_addr))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics");
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

async fn dropped(edge: &Edge, reason: &str) -> u64 {
    metric(
        edge,
        &format!("freya_edge_cluster_datagrams_dropped_total{{reason=\"{reason}\"}}"),
    )
    .await
}

async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_oversized_and_replayed_gossip_adds_no_one_and_downs_no_one() {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let a = Edge::start(&config(dir_a.path(), "edge-a", Vec::new()))
        .await
        .expect("edge a");
    let a_gossip = a.gossip_addr.expect("a gossips");
    let b = Edge::start(&config(dir_b.path(), "edge-b", vec![a_gossip.to_string()]))
        .await
        .expect("edge b");
    until("a and b to see each other", || async {
        state(&report(&a).await, "edge-b").as_deref() == Some("alive")
            && state(&report(&b).await, "edge-a").as_deref() == Some("alive")
    })
    .await;

    // A member of our own, with the cluster's key (the edges' shared secret is "secret"): its
    // first datagram to `a` is captured for the replay below.
    let insider_socket = UdpSocket::bind("127.0.0.1:0").await.expect("insider");
    let insider_addr = insider_socket.local_addr().expect("addr");
    let started = Instant::now();
    let mut insider = Membership::new(
        Peer {
            id: Arc::from("insider"),
            addr: insider_addr,
            generation: 1,
        },
        GossipKey::derive("secret"),
        MembershipSettings::default(),
        started,
        wall_ms(),
        42,
    );
    insider.add_seeds(started, [a_gossip]);
    insider.handle_timeout(started);
    let announce = insider.poll_transmit().expect("an announce to a");
    assert_eq!(announce.to, a_gossip);
    insider_socket
        .send_to(&announce.bytes, a_gossip)
        .await
        .expect("send");
    until("a to take the insider in", || async {
        state(&report(&a).await, "insider").is_some()
    })
    .await;
    // The insider answers nothing from now on: a and b declare it down.
    drop(insider_socket);
    until("the silent insider to be down at a", || async {
        state(&report(&a).await, "insider").as_deref() == Some("down")
    })
    .await;

    let attacker = UdpSocket::bind("127.0.0.1:0").await.expect("attacker");
    // 1. An announce sealed with a guessed key, from a would-be member.
    let mut outsider = Membership::new(
        Peer {
            id: Arc::from("intruder"),
            addr: attacker.local_addr().expect("addr"),
            generation: 1,
        },
        GossipKey::derive("a guess"),
        MembershipSettings::default(),
        Instant::now(),
        wall_ms(),
        7,
    );
    outsider.add_seeds(Instant::now(), [a_gossip]);
    outsider.handle_timeout(Instant::now());
    let forged = outsider.poll_transmit().expect("a forged announce");
    // 2. "b is down", sealed with the guessed key: foca's bytes would be fine, the tag is not.
    let mut body = b"edge-b is down".to_vec();
    body.resize(200, 0);
    let forged_down = seal(&GossipKey::derive("a guess"), wall_ms(), 99, &body);
    // 3. Over the 1,400-byte limit, whatever it holds.
    let oversized = seal(&GossipKey::derive("secret"), wall_ms(), 100, &[0u8; 2_000]);
    let before = [
        dropped(&a, "bad_tag").await,
        dropped(&a, "oversized").await,
        dropped(&a, "replayed").await,
    ];
    for datagram in [&forged.bytes, &forged_down, &oversized, &announce.bytes] {
        attacker.send_to(datagram, a_gossip).await.expect("send");
    }
    until("a to count every drop", || async {
        dropped(&a, "bad_tag").await >= before[0] + 2
            && dropped(&a, "oversized").await > before[1]
            && dropped(&a, "replayed").await > before[2]
    })
    .await;
    // Give anything that got through time to show: a probe period and more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seen = report(&a).await;
    assert_eq!(state(&seen, "intruder"), None, "no member added: {seen:?}");
    assert_eq!(state(&seen, "edge-b").as_deref(), Some("alive"), "{seen:?}");
    assert_eq!(
        state(&seen, "insider").as_deref(),
        Some("down"),
        "the replayed announce revives no one: {seen:?}"
    );
    assert_eq!(state(&report(&b).await, "edge-a").as_deref(), Some("alive"));
    until(
        "a's gauge to count a and b alive, the insider down",
        || async {
            metric(&a, "freya_edge_cluster_members{state=\"alive\"}").await == 2
                && metric(&a, "freya_edge_cluster_members{state=\"down\"}").await == 1
        },
    )
    .await;
    b.stop().await;
    a.stop().await;
}
