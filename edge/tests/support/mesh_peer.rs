//! Edges' mesh endpoints for the mesh tests: bound on a loopback address with the test's
//! certificates, legs keyed afresh, and waits with a hang guard.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use freya_edge::mesh::{ControlMessage, LegKey, Mesh, MeshSettings, MeshTls};
use tokio::sync::mpsc;

/// Hang guard for each wait.
pub const LIMIT: Duration = Duration::from_secs(10);

/// A leg of a new call.
pub fn key() -> LegKey {
    LegKey {
        call: uuid::Uuid::now_v7(),
        leg: 1,
    }
}

/// A mesh endpoint on `ip` (port 0) presenting `tls`, with `settings`: the endpoint and the
/// joins it receives.
pub fn start_with(
    ip: &str,
    tls: &MeshTls,
    settings: MeshSettings,
) -> (Mesh, mpsc::Receiver<(SocketAddr, ControlMessage)>) {
    Mesh::bind(format!("{ip}:0").parse().expect("addr"), tls, settings).expect("mesh binds")
}

/// The next join `joins` receives (within [`LIMIT`]), and where it came from.
pub async fn next_join(
    joins: &mut mpsc::Receiver<(SocketAddr, ControlMessage)>,
) -> (SocketAddr, ControlMessage) {
    tokio::time::timeout(LIMIT, joins.recv())
        .await
        .expect("join in time")
        .expect("join")
}

/// Waits until `done` (checked every 20 ms); fails naming `what` after [`LIMIT`].
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
