//! Who may speak on the mesh, over real QUIC on 127.0.0.x: a connection is bound to the edge its
//! certificate names, so a join naming another edge is refused; a revoked certificate is refused
//! in the handshake and an open connection carrying one is closed; and a renewed certificate is
//! used for the next connection without rebinding.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use freya_edge::mesh::tls::dev_pki;
use freya_edge::mesh::{
    ControlMessage, Mesh, MeshInbound, MeshSettings, MeshTls, PayloadKind, PeerName,
};
use tokio::sync::mpsc;

use crate::support::mesh_peer::{key, next_join, start_with, until, LIMIT};

fn start(ip: &str, tls: &MeshTls) -> (Mesh, mpsc::Receiver<(SocketAddr, ControlMessage)>) {
    let settings = MeshSettings {
        connect_timeout: Duration::from_secs(2),
        ..MeshSettings::default()
    };
    start_with(ip, tls, settings)
}

fn serial(tls: &MeshTls) -> String {
    PeerName::of_pem(&tls.cert_pem)
        .expect("names an edge")
        .serial
}

fn join(from_edge: &str) -> ControlMessage {
    ControlMessage::Join {
        key: key(),
        kind: PayloadKind::Pcmu,
        from_edge: from_edge.into(),
    }
}

#[tokio::test]
async fn a_join_naming_another_edge_than_the_certificate_is_refused() {
    let pki = dev_pki("test cluster", &["edge-a", "edge-b"]).expect("pki");
    let (a, mut a_joins) = start("127.0.0.1", &pki[0]);
    let (b, _) = start("127.0.0.2", &pki[1]);
    let a_addr = a.local_addr().expect("a");
    let b_addr = b.local_addr().expect("b");

    // Edge B, holding B's certificate, claims to be edge C: refused and counted.
    b.send_control(a_addr, &join("edge-c")).await.expect("sent");
    until("the impersonation counted", || {
        a.counters().impersonations.load(Ordering::Relaxed) == 1
    })
    .await;
    assert!(
        a_joins.try_recv().is_err(),
        "the forged join reached no one"
    );

    // The same connection naming itself truthfully gets through, bound to B.
    b.send_control(a_addr, &join("edge-b")).await.expect("sent");
    let (from, message) = next_join(&mut a_joins).await;
    assert!(matches!(message, ControlMessage::Join { ref from_edge, .. } if from_edge == "edge-b"));
    assert_eq!(from, b_addr);
    assert_eq!(
        a.peer_name(b_addr).map(|p| p.edge_id),
        Some("edge-b".into())
    );
    a.close();
    b.close();
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_in_the_handshake() {
    let pki = dev_pki("test cluster", &["edge-a", "edge-r"]).expect("pki");
    let (a, mut a_joins) = start("127.0.0.1", &pki[0]);
    let (r, _) = start("127.0.0.3", &pki[1]);
    let (a_addr, r_addr) = (a.local_addr().expect("a"), r.local_addr().expect("r"));
    a.set_revoked([serial(&pki[1])]);

    let _ = r.send_control(a_addr, &join("edge-r")).await;
    until("the refusal counted", || {
        a.counters().refused.load(Ordering::Relaxed) >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a_joins.try_recv().is_err(), "nothing from the revoked edge");
    assert_eq!(a.peer_name(r_addr), None);

    // Dialling the revoked edge fails too: its certificate is not accepted as a server's.
    assert!(a.send_control(r_addr, &join("edge-a")).await.is_err());
    a.close();
    r.close();
}

#[tokio::test]
async fn revocation_closes_the_open_connection_and_a_renewed_certificate_serves_the_next() {
    // Two certificates for edge B from one CA: the first, then its renewal.
    let pki = dev_pki("test cluster", &["edge-a", "edge-b", "edge-b"]).expect("pki");
    let (a, mut a_joins) = start("127.0.0.1", &pki[0]);
    let (b, _) = start("127.0.0.2", &pki[1]);
    let (a_addr, b_addr) = (a.local_addr().expect("a"), b.local_addr().expect("b"));
    let key = key();
    let mut at_b = b.join(key, a_addr).expect("leg");
    b.send_control(a_addr, &join("edge-b")).await.expect("sent");
    next_join(&mut a_joins).await;
    let first = a.peer_name(b_addr).expect("connected");
    assert_eq!(first.serial, serial(&pki[1]));

    // B renews; the open connection keeps the old certificate until A revokes it.
    b.replace_tls(&pki[2]).expect("renewed credentials");
    let closed = a.set_revoked([first.serial.clone()]);
    assert_eq!(closed, vec!["edge-b".to_owned()]);
    assert_eq!(a.counters().revoked_closed.load(Ordering::Relaxed), 1);
    until("B sees the connection closed", || {
        b.peer_name(a_addr).is_none()
    })
    .await;

    // B's next connection presents the renewed certificate, which is not revoked.
    let deadline = Instant::now() + LIMIT;
    loop {
        if b.send_control(a_addr, &join("edge-b")).await.is_ok() {
            if let Ok(Some(_)) = tokio::time::timeout(Duration::from_secs(1), a_joins.recv()).await
            {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "B never got through with its renewed certificate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = a.peer_name(b_addr).expect("reconnected");
    assert_eq!(second.edge_id, "edge-b");
    assert_eq!(second.serial, serial(&pki[2]));
    // A's answer reaches the leg at B over the new connection.
    a.send_control(b_addr, &ControlMessage::Mute { key, muted: true })
        .await
        .expect("sent");
    // The old connection's close may reach the leg first (`Lost`): wait past it.
    let got = tokio::time::timeout(LIMIT, async {
        loop {
            match at_b.recv().await {
                Some(MeshInbound::Lost) => continue,
                other => break other,
            }
        }
    })
    .await
    .expect("in time");
    assert_eq!(
        got,
        Some(MeshInbound::Control(ControlMessage::Mute {
            key,
            muted: true
        }))
    );
    a.close();
    b.close();
}
