//! `freya dev --edges N`: edges 2..N as real `freya edge` processes beside the in-process
//! first one, each with its own data directory, SIP, HTTP, gossip and mesh ports (reserved when dev
//! starts and written into `DATA_DIR/edge-K/edge.toml`, so a killed edge restarted with
//! `freya edge --config` comes back on the same addresses), all seeded with the first edge's
//! gossip address. Each enrols with its own join token (kept in its `edge.toml`, owner-only),
//! then links over mutual TLS, and its QUIC mesh presents the same cluster certificate. A process that dies is left dead: that is what the cluster is for.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::store::Store;

/// One edge of the dev cluster, as `dev.json` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevEdge {
    pub id: String,
    pub region: String,
    /// Its process (the dev process itself for the first edge).
    pub pid: u32,
    pub sip_addr: String,
    pub http_url: String,
    /// Where its cluster gossip listens.
    pub gossip_addr: Option<String>,
    /// Where its QUIC mesh listens (cross-edge legs).
    #[serde(default)]
    pub mesh_addr: Option<String>,
    /// The config file to restart it with (`freya edge --config`); none for the first edge.
    pub config: Option<PathBuf>,
}

/// What the child edges share with the first.
pub(super) struct ChildSettings<'a> {
    pub data_dir: &'a Path,
    pub grpc_addr: SocketAddr,
    /// One join token per child edge, in order.
    pub join_tokens: &'a [String],
    pub seed: SocketAddr,
    pub capacity: u32,
}

/// The child edge processes.
pub(super) struct ChildEdges {
    children: Vec<(DevEdge, tokio::process::Child)>,
}

/// A port free on 127.0.0.1 for both UDP and TCP right now (SIP needs both).
fn free_port() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no port free for both UDP and TCP on 127.0.0.1")
}

fn edge_toml(
    id: &str,
    dir: &Path,
    s: &ChildSettings<'_>,
    join_token: &str,
    ports: [u16; 4],
) -> String {
    let [sip, http, gossip, mesh] = ports;
    let capacity = s.capacity.max(1);
    format!(
        "id = \"{id}\"\nregion = \"local\"\ndata_dir = \"{dir}\"\ncapacity = {capacity}\n\n\
         [control]\nurl = \"https://{grpc}\"\njoin_token = \"{join_token}\"\nmax_backoff_ms = 2000\n\n\
         [sip]\naddr = \"127.0.0.1:{sip}\"\nring_ms = 0\ninvites_per_second_per_source = {capacity}.0\n\
         invite_burst_per_source = {capacity}\nmax_unconfirmed = {capacity}\n\
         max_unconfirmed_per_source = {capacity}\n\n\
         [http]\naddr = \"127.0.0.1:{http}\"\n\n\
         [egress]\nallow_private_targets = true\n\n\
         [cluster]\nbind = \"127.0.0.1:{gossip}\"\nseeds = [\"{seed}\"]\n\n\
         [mesh]\nlisten = \"127.0.0.1:{mesh}\"\n",
        dir = dir.display(),
        grpc = s.grpc_addr,
        seed = s.seed,
    )
}

impl ChildEdges {
    /// Starts edges 2..=`count` as `freya edge` processes.
    pub(super) fn start(count: u32, s: &ChildSettings<'_>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("while finding the freya binary")?;
        let mut children = Vec::new();
        for (k, join_token) in (2..=count).zip(s.join_tokens) {
            let id = format!("dev-edge-{k}");
            let dir = s.data_dir.join(format!("edge-{k}"));
            freya_shared::private_files::create_dir(&dir)
                .with_context(|| format!("while creating {}", dir.display()))?;
            let ports = [free_port()?, free_port()?, free_port()?, free_port()?];
            let config = dir.join("edge.toml");
            // The file holds a join token: owner-only.
            let toml = edge_toml(&id, &dir, s, join_token, ports);
            freya_shared::private_files::write(&config, toml.as_bytes())
                .with_context(|| format!("while writing {}", config.display()))?;
            let log = std::fs::File::create(dir.join("edge.log"))
                .with_context(|| format!("while creating {}/edge.log", dir.display()))?;
            let child = tokio::process::Command::new(&exe)
                .arg("edge")
                .arg("--config")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("while starting {id}"))?;
            let edge = DevEdge {
                pid: child.id().unwrap_or(0),
                region: "local".into(),
                sip_addr: format!("127.0.0.1:{}", ports[0]),
                http_url: format!("http://127.0.0.1:{}", ports[1]),
                gossip_addr: Some(format!("127.0.0.1:{}", ports[2])),
                mesh_addr: Some(format!("127.0.0.1:{}", ports[3])),
                config: Some(config),
                id,
            };
            tracing::info!(edge = %edge.id, pid = edge.pid, sip = %edge.sip_addr, "started an edge process");
            children.push((edge, child));
        }
        Ok(Self { children })
    }

    /// The child edges as `dev.json` lists them.
    pub(super) fn listed(&self) -> Vec<DevEdge> {
        self.children.iter().map(|(e, _)| e.clone()).collect()
    }

    /// Waits (up to `limit`) until every child has registered with the control plane.
    pub(super) async fn wait_registered(&self, store: &Store, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let known = store.edges(i64::MAX).await.unwrap_or_default();
            let all = self
                .children
                .iter()
                .all(|(e, _)| known.iter().any(|k| k.id == e.id));
            if all || tokio::time::Instant::now() >= deadline {
                if !all {
                    tracing::warn!(
                        "not every edge process registered in time; see DATA_DIR/edge-K/edge.log"
                    );
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asks every child to stop (SIGTERM), then kills those still running after a grace period.
    pub(super) async fn stop(mut self) {
        for (edge, child) in &self.children {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) on our own child's pid has no memory effects.
                #[cfg(unix)]
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
                tracing::debug!(edge = %edge.id, pid, "asked the edge process to stop");
            }
        }
        for (_, child) in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(6), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}
