//! A QUIC mesh peer of the test's own, with whatever certificate the test gives it: how the
//! mesh tests knock on an edge's mesh as a member, a stranger or an impersonator, and read the
//! first answer the edge sends on the leg.

use std::net::SocketAddr;
use std::time::Duration;

use freya_edge::mesh::{
    ControlMessage, LegKey, Mesh, MeshInbound, MeshSettings, MeshTls, PayloadKind,
};
use tokio::sync::mpsc;

/// A mesh endpoint bound on `ip` (port 0) presenting `tls`, giving up a connection after 3 s.
pub fn probe(tls: &MeshTls, ip: &str) -> Mesh {
    let settings = MeshSettings {
        connect_timeout: Duration::from_secs(3),
        ..MeshSettings::default()
    };
    let addr = SocketAddr::new(ip.parse().expect("ip"), 0);
    Mesh::bind(addr, tls, settings).expect("bind").0
}

/// The first control message the peer sends on `leg` within 5 s; `None` when the leg is lost
/// first or nothing comes.
pub async fn first_answer(leg: &mut mpsc::Receiver<MeshInbound>) -> Option<ControlMessage> {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match leg.recv().await {
                Some(MeshInbound::Control(message)) => break Some(message),
                Some(MeshInbound::Audio { .. }) => continue,
                Some(MeshInbound::Lost) | None => break None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// Opens leg `key` to `target` on `mesh`, sends `message` and reads [`first_answer`]; the leg
/// is left afterwards.
pub async fn ask(
    mesh: &Mesh,
    target: SocketAddr,
    key: LegKey,
    message: &ControlMessage,
) -> Option<ControlMessage> {
    let mut leg = mesh.join(key, target).expect("leg");
    let _ = mesh.send_control(target, message).await;
    let answer = first_answer(&mut leg).await;
    mesh.leave(key, target);
    answer
}

/// Asks `target`, as edge `from_edge`, to join a leg of a call it does not host, over `mesh`
/// (its connection stays open): what came back on the leg, none when nothing did in time.
pub async fn join_unknown_call(
    mesh: &Mesh,
    target: SocketAddr,
    from_edge: &str,
) -> Option<ControlMessage> {
    let key = LegKey {
        call: uuid::Uuid::now_v7(),
        leg: 1,
    };
    let join = ControlMessage::Join {
        key,
        kind: PayloadKind::Pcmu,
        from_edge: from_edge.into(),
    };
    ask(mesh, target, key, &join).await
}
