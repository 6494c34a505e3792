//! The gRPC listener for edges is held to connection caps: anyone who reaches the port can open
//! connections before the shared secret is checked, so one IP over `grpc.max_connections_per_ip`
//! or anyone over `grpc.max_connections` is closed at once, while another IP is served; when the
//! attacker lets go, an edge links up as usual. Real sockets on 127.0.0.x.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::support::{
    connect_from, control_config, edge_config, eventually, Backend, TestDb, SECRET,
};
use freya_control::server::ControlPlane;
use freya_edge::Edge;

/// Longest a test waits for the server to act (a hang guard, not a measure).
const HANG_GUARD: Duration = Duration::from_secs(10);

/// What the server does first with a new connection: an admitted one gets HTTP/2's SETTINGS
/// frame, a refused one is closed with nothing sent.
async fn admitted(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(HANG_GUARD, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => false,
        Ok(Ok(_)) => true,
        Err(_) => panic!("the server neither spoke nor closed within {HANG_GUARD:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_grpc_caps_are_closed_and_edges_still_link_up() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = control_config(&db.url);
    config.grpc.max_connections_per_ip = 2;
    config.grpc.max_connections = 3;
    let control = ControlPlane::start(&config).await.expect("control starts");
    let grpc = control.grpc_addr;

    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = connect_from([127, 0, 0, 3], grpc).await;
        assert!(admitted(&mut stream).await, "under the per-IP cap");
        held.push(stream);
    }
    let mut third = connect_from([127, 0, 0, 3], grpc).await;
    assert!(!admitted(&mut third).await, "a third from one IP is closed");
    let mut other_ip = connect_from([127, 0, 0, 4], grpc).await;
    assert!(admitted(&mut other_ip).await, "another IP is served");
    held.push(other_ip);
    let mut over_total = connect_from([127, 0, 0, 5], grpc).await;
    assert!(
        !admitted(&mut over_total).await,
        "a fourth in all is closed"
    );

    // The attacker lets go: the slots are free again, and an edge links up.
    drop(held);
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = Edge::start(&edge_config(dir.path(), grpc, SECRET))
        .await
        .expect("edge starts");
    let store = control.store.clone();
    eventually(HANG_GUARD, "the edge to register", || {
        let store = store.clone();
        async move { (!store.edges(60_000).await.ok()?.is_empty()).then_some(()) }
    })
    .await;
    edge.stop().await;
    control.stop().await;
    db.cleanup().await;
}
