//! The mesh with real processes: `freya dev --edges 2` gives each edge a QUIC mesh port and a
//! certificate from a dev CA it makes in the data directory. Each edge gossips its mesh address
//! (`GET /cluster` shows the other's, as `dev.json` lists it); a peer holding a certificate from
//! that CA reaches the first edge's mesh, and its join for a call the edge does not host is
//! answered with a hang-up over the same connection; a peer whose certificate comes from
//! another CA is refused in the handshake and gets no answer.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use freya_edge::mesh::tls::dev_pki;
use freya_edge::mesh::{
    ControlMessage, HangupCause, LegKey, Mesh, MeshInbound, MeshSettings, MeshTls, PayloadKind,
};
use serde_json::Value;

use support::eventually;

/// Hang guard for each wait.
const LIMIT: Duration = Duration::from_secs(30);

/// `freya dev` and its edges, stopped on drop (SIGTERM, which stops the child edges, then
/// SIGKILL to whatever is left).
struct Running {
    dev: Child,
    others: Vec<u32>,
}

fn signal(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) on a process this test started.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        signal(self.dev.id(), libc::SIGTERM);
        for _ in 0..100 {
            if matches!(self.dev.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.dev.kill();
        let _ = self.dev.wait();
        for pid in &self.others {
            signal(*pid, libc::SIGKILL);
        }
    }
}

fn free_sip_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn start_dev(data_dir: &Path) -> Running {
    let sip = format!("127.0.0.1:{}", free_sip_port());
    let dev = Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(["dev", "--edges", "2", "--data-dir"])
        .arg(data_dir)
        .args(["--http", "127.0.0.1:0", "--sip", &sip])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start freya dev");
    Running {
        dev,
        others: Vec::new(),
    }
}

fn dev_credentials(dir: &Path, edge: &str) -> MeshTls {
    let mesh = dir.join("mesh");
    MeshTls::load(
        &mesh.join("mesh-ca.pem"),
        &mesh.join(format!("mesh-{edge}.pem")),
        &mesh.join(format!("mesh-{edge}.key")),
    )
    .expect("the dev mesh credentials")
}

/// Joins a leg of a call `target` does not host; returns what came back on the leg (none when
/// nothing did within a few seconds).
async fn join_unknown_call(tls: &MeshTls, target: std::net::SocketAddr) -> Option<ControlMessage> {
    let settings = MeshSettings {
        connect_timeout: Duration::from_secs(3),
        ..MeshSettings::default()
    };
    let (mesh, _) = Mesh::bind("127.0.0.1:0".parse().expect("addr"), tls, settings).expect("bind");
    let key = LegKey {
        call: uuid::Uuid::now_v7(),
        leg: 1,
    };
    let mut leg = mesh.join(key, target).expect("leg");
    let join = ControlMessage::Join {
        key,
        kind: PayloadKind::Pcmu,
        from_edge: "test".into(),
    };
    let _ = mesh.send_control(target, &join).await;
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
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
    .flatten();
    mesh.close();
    answer
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_edges_gossip_their_mesh_and_accept_only_the_cluster_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut running = start_dev(dir.path());
    let info_path = dir.path().join("dev.json");
    let info: Value = eventually(Duration::from_secs(120), "dev.json with two edges", || {
        let path = info_path.clone();
        async move {
            let info: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            (info["edges"].as_array()?.len() == 2).then_some(info)
        }
    })
    .await;
    let edges = info["edges"].as_array().expect("edges").clone();
    running.others.extend(
        edges[1..]
            .iter()
            .filter_map(|e| e["pid"].as_u64())
            .map(|p| p as u32),
    );
    let field = |i: usize, name: &str| edges[i][name].as_str().expect(name).to_owned();
    let mesh_addr =
        |i: usize| -> std::net::SocketAddr { field(i, "mesh_addr").parse().expect("mesh_addr") };

    // Each edge's gossip carries the other's mesh address.
    for (me, other) in [(0, 1), (1, 0)] {
        let url = format!("{}/cluster", field(me, "http_url"));
        let (other_id, want) = (field(other, "id"), mesh_addr(other).to_string());
        eventually(LIMIT, "the peer's mesh address in GET /cluster", || {
            let (url, other_id, want) = (url.clone(), other_id.clone(), want.clone());
            async move {
                let report: Value = reqwest::get(&url).await.ok()?.json().await.ok()?;
                report["members"]
                    .as_array()?
                    .iter()
                    .any(|m| m["id"] == other_id.as_str() && m["mesh_addr"] == want.as_str())
                    .then_some(())
            }
        })
        .await;
    }

    // A member of the cluster (edge 2's certificate) reaches edge 1; its join for a call edge
    // 1 does not host comes back as a hang-up.
    let member = dev_credentials(dir.path(), "dev-edge-2");
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
}
