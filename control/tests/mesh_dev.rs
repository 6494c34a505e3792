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

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use freya_edge::control_link::mtls_client;
use freya_edge::mesh::tls::dev_pki;
use freya_edge::mesh::{
    ControlMessage, HangupCause, LegKey, Mesh, MeshInbound, MeshSettings, MeshTls, PayloadKind,
};
use freya_edge::trust::{mtls_client_config, ClusterIdentity, ControlTls};
use freya_proto::v1::HeartbeatRequest;
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

/// The cluster certificate edge `k` (2..) enrolled for, as its mesh presents it.
fn cluster_credentials(dir: &Path, k: u32) -> MeshTls {
    let identity = ClusterIdentity::load(&dir.join(format!("edge-{k}")).join("trust"))
        .expect("readable")
        .expect("edge enrolled");
    MeshTls::from_identity(&identity)
}

async fn get_json(url: &str, bearer: Option<&str>) -> Option<Value> {
    let mut request = reqwest::Client::new().get(url);
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    request.send().await.ok()?.json().await.ok()
}

async fn get_text(url: &str) -> Option<String> {
    reqwest::get(url).await.ok()?.text().await.ok()
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
    let settings = MeshSettings {
        connect_timeout: Duration::from_secs(3),
        ..MeshSettings::default()
    };
    Mesh::bind("127.0.0.1:0".parse().expect("addr"), tls, settings)
        .expect("bind")
        .0
}

/// [`join_unknown_call`] on an endpoint the caller keeps (its connection stays open).
async fn join_on(mesh: &Mesh, target: std::net::SocketAddr) -> Option<ControlMessage> {
    let key = LegKey {
        call: uuid::Uuid::now_v7(),
        leg: 1,
    };
    let mut leg = mesh.join(key, target).expect("leg");
    let join = ControlMessage::Join {
        key,
        kind: PayloadKind::Pcmu,
        from_edge: "dev-edge-2".into(),
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
    mesh.leave(key, target);
    answer
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_edges_mesh_on_the_cluster_ca_and_a_revoked_edge_is_refused_everywhere() {
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

    // A member of the cluster (edge 2's certificate from the control plane) reaches edge 1; its
    // join for a call edge 1 does not host comes back as a hang-up.
    let member = cluster_credentials(dir.path(), 2);
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
    let api_url = info["api_url"].as_str().expect("api_url").to_owned();
    for (url, kinds) in [
        (
            format!("{}/metrics", field(0, "http_url")),
            &["cluster", "ca"][..],
        ),
        (
            format!("{}/metrics", field(1, "http_url")),
            &["cluster", "ca"][..],
        ),
        (format!("{api_url}/metrics"), &["ca"][..]),
    ] {
        let text = get_text(&url).await.unwrap_or_default();
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
    let key = info["api_key"].as_str().expect("api_key").to_owned();
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
    let cluster_url = format!("{}/cluster", field(0, "http_url"));
    eventually(LIMIT, "edge 2 down in edge 1's view", || {
        let url = cluster_url.clone();
        async move {
            let report = get_json(&url, None).await?;
            report["members"]
                .as_array()?
                .iter()
                .any(|m| m["id"] == "dev-edge-2" && m["state"] == "down")
                .then_some(())
        }
    })
    .await;
    // Edge 2's certificate no longer links to the control plane: a connection with it is
    // refused in the handshake and audited. (Connecting here rather than waiting for edge 2's
    // own reconnect, which follows its backoff; `edge_trust.rs` shows its stream cut.)
    let toml = std::fs::read_to_string(dir.path().join("edge-2/edge.toml")).expect("edge.toml");
    let control_url = toml
        .lines()
        .find_map(|l| l.strip_prefix("url = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("control url")
        .to_owned();
    let identity = ClusterIdentity::load(&dir.path().join("edge-2").join("trust"))
        .expect("readable identity")
        .expect("an enrolled edge");
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
    let audit_url = format!("{api_url}/v1/edges/trust-audit?limit=200");
    eventually(
        LIMIT,
        "edge 2's refused reconnect in the trust audit",
        || {
            let (url, key) = (audit_url.clone(), key.clone());
            async move {
                // Polled gently: this is the API, under its rate limits.
                tokio::time::sleep(Duration::from_millis(250)).await;
                let entries = get_json(&url, Some(&key)).await?;
                entries
                    .as_array()?
                    .iter()
                    .any(|e| {
                        e["action"] == "tls.handshake"
                            && e["outcome"] == "bad_certificate"
                            && e["detail"].to_string().contains("Revoked")
                    })
                    .then_some(())
            }
        },
    )
    .await;
}
