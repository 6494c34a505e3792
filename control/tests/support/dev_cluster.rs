//! A cluster of real processes, for what only separate processes show (gossip over UDP, SIGKILL,
//! SIGTERM drains, restarts from a config file, the QUIC mesh and mutual TLS between processes):
//! `freya dev --edges N` in a temp dir, read back from its `dev.json`, and stopped on drop with
//! every edge process it or the test started. Tests say only what differs
//! (`DevCluster::builder(3).capacity(1).start()`), as [`super::world::World`] does for
//! single-edge tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use freya_control::dev::{DevEdge, DevInfo};
use freya_edge::trust::ClusterIdentity;
use serde_json::Value;

use super::eventually;
use super::http::Api;

/// How long `freya dev` may take to write `dev.json` with every edge (debug binaries, a busy
/// machine).
const START_LIMIT: Duration = Duration::from_secs(120);
/// Hang guard for the waits on the cluster's view.
const VIEW_LIMIT: Duration = Duration::from_secs(60);

/// `freya dev` and its edges in a temp dir.
pub struct DevCluster {
    /// What `dev.json` says: the API, its key, the number, each edge.
    pub info: DevInfo,
    /// The processes, stopped on drop.
    pub running: Running,
    /// The data directory (`dev.json`, `edge-K/edge.toml`, logs).
    pub dir: tempfile::TempDir,
}

/// What a test changes in the default `freya dev --edges N`.
pub struct DevClusterBuilder {
    edges: u32,
    args: Vec<String>,
}

/// The processes of a [`DevCluster`], stopped on drop: first the edges the test (re)started
/// (SIGTERM, then SIGKILL), then `freya dev` (SIGTERM, which stops its edges, then SIGKILL),
/// then SIGKILL to whatever of its edges is left.
pub struct Running {
    pub dev: Child,
    /// Edge processes the test started itself ([`DevCluster::restart_edge`]).
    pub children: Vec<Child>,
    /// Pids of the edge processes `freya dev` started.
    pub others: Mutex<Vec<u32>>,
}

/// One member of an edge's `GET /cluster` (a field it lacks or leaves null reads as empty).
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub state: String,
    pub generation: u64,
    pub draining: bool,
    pub active_calls: Option<u64>,
    pub capacity: Option<u64>,
    pub mesh_addr: Option<String>,
}

impl Member {
    fn from_json(m: &Value) -> Self {
        let text = |name: &str| m[name].as_str().unwrap_or_default().to_owned();
        Member {
            id: text("id"),
            state: text("state"),
            generation: m["generation"].as_u64().unwrap_or(0),
            draining: m["draining"].as_bool().unwrap_or(false),
            active_calls: m["active_calls"].as_u64(),
            capacity: m["capacity"].as_u64(),
            mesh_addr: m["mesh_addr"].as_str().map(str::to_owned),
        }
    }
}

/// Sends `signal` to process `pid` (one this test started, or one `freya dev` started for it).
pub fn signal(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) on a process this test started.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// SIGTERM, up to `tries` × 100 ms for it to exit, then SIGKILL.
fn stop(child: &mut Child, tries: u32) {
    signal(child.id(), libc::SIGTERM);
    for _ in 0..tries {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// How much of each log a failed test prints.
const LOG_TAIL_LINES: usize = 60;

impl Drop for DevCluster {
    /// A test that failed prints the end of every process's log: the cluster's own view of
    /// what went wrong, which is otherwise deleted with the data directory.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut logs = vec![self.log_path()];
        logs.extend(
            (2..=self.info.edges.len()).map(|k| self.path().join(format!("edge-{k}/edge.log"))),
        );
        for path in logs {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "--- the last {} lines of {} ---\n{}",
                tail.len(),
                path.display(),
                tail.join("\n")
            );
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.children {
            stop(child, 50);
        }
        stop(&mut self.dev, 100);
        for pid in self.others.lock().map(|p| p.clone()).unwrap_or_default() {
            signal(pid, libc::SIGKILL);
        }
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (an edge's SIP listens on both).
pub fn free_sip_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl DevClusterBuilder {
    /// `--capacity`: calls each edge takes.
    pub fn capacity(self, calls: u32) -> Self {
        self.arg("--capacity").arg(&calls.to_string())
    }

    /// Any other argument of `freya dev` (`--transfer-to NUMBER`).
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Starts `freya dev` and waits for `dev.json` to list every edge.
    pub async fn start(self) -> DevCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let sip = format!("127.0.0.1:{}", free_sip_port());
        let log = std::fs::File::create(dir.path().join("dev.log")).expect("log file");
        let (stdout, stderr): (Stdio, Stdio) =
            (log.try_clone().expect("log file").into(), log.into());
        let dev = Command::new(env!("CARGO_BIN_EXE_freya"))
            .args(["dev", "--edges", &self.edges.to_string()])
            .args(&self.args)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--http", "127.0.0.1:0", "--sip", &sip])
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start freya dev");
        let running = Running {
            dev,
            children: Vec::new(),
            others: Mutex::default(),
        };
        let info_path = dir.path().join("dev.json");
        let edges = self.edges as usize;
        let what = format!("dev.json with {edges} edges");
        let info: DevInfo = eventually(START_LIMIT, &what, || {
            let path = info_path.clone();
            async move {
                let info: DevInfo = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
                (info.edges.len() == edges).then_some(info)
            }
        })
        .await;
        // Every edge takes calls: it holds a configuration (its `/readyz` says so), so a
        // test's first INVITE is not refused by an edge still starting on a busy machine.
        for edge in &info.edges {
            let readyz = format!("{}/readyz", edge.http_url);
            let what = format!("{} to be ready", edge.id);
            eventually(START_LIMIT, &what, || async {
                let answer = reqwest::get(&readyz).await.ok()?;
                answer.status().is_success().then_some(())
            })
            .await;
        }
        running
            .others
            .lock()
            .expect("lock")
            .extend(info.edges[1..].iter().map(|e| e.pid));
        DevCluster { info, running, dir }
    }
}

impl DevCluster {
    /// `freya dev --edges edges`, to be changed before [`DevClusterBuilder::start`].
    pub fn builder(edges: u32) -> DevClusterBuilder {
        DevClusterBuilder {
            edges,
            args: Vec::new(),
        }
    }

    /// `freya dev --edges edges` as it is.
    pub async fn start(edges: u32) -> Self {
        Self::builder(edges).start().await
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `dev.json`, for the tools that read it (`freya loadtest --dev-json`).
    pub fn info_path(&self) -> PathBuf {
        self.path().join("dev.json")
    }

    /// Where `freya dev`'s output goes (its child edges write `edge-K/edge.log` beside it).
    pub fn log_path(&self) -> PathBuf {
        self.path().join("dev.log")
    }

    /// The control plane's REST base URL.
    pub fn api_url(&self) -> &str {
        self.info.api_url.trim_end_matches('/')
    }

    /// The demo workspace owner's API key.
    pub fn api_key(&self) -> &str {
        &self.info.api_key
    }

    /// A client for the control plane's REST API.
    pub fn api(&self) -> Api {
        Api {
            base: self.api_url().to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// `GET path` of the API with the dev key; `None` on any failure (for polling a cluster
    /// whose members come and go).
    pub async fn get(&self, path: &str) -> Option<Value> {
        get_json(&format!("{}{path}", self.api_url()), Some(self.api_key())).await
    }

    /// The id of a call in progress on edge `i`, once the control plane lists one.
    pub async fn call_in_progress_on(&self, i: usize) -> String {
        let edge = self.id(i);
        let what = format!("a call in progress on {edge}");
        eventually(VIEW_LIMIT, &what, || async {
            let calls = self.get("/v1/calls").await?;
            let live = calls["data"]
                .as_array()?
                .iter()
                .find(|c| c["edge_id"] == edge.as_str() && c["status"] == "in_progress")?;
            live["id"].as_str().map(str::to_owned)
        })
        .await
    }

    /// The demo number.
    pub fn number(&self) -> &str {
        &self.info.phone_number
    }

    /// Edge `i` (0: the one in the dev process) as `dev.json` lists it.
    pub fn edge(&self, i: usize) -> &DevEdge {
        &self.info.edges[i]
    }

    /// Edge `i`'s id.
    pub fn id(&self, i: usize) -> String {
        self.edge(i).id.clone()
    }

    /// Edge `i`'s HTTP base URL (`/cluster`, `/metrics`).
    pub fn http(&self, i: usize) -> String {
        self.edge(i).http_url.clone()
    }

    /// Edge `i`'s SIP address.
    pub fn sip(&self, i: usize) -> SocketAddr {
        self.edge(i).sip_addr.parse().expect("sip_addr")
    }

    /// Edge `i`'s QUIC mesh address.
    pub fn mesh(&self, i: usize) -> SocketAddr {
        let addr = self.edge(i).mesh_addr.as_deref().expect("mesh_addr");
        addr.parse().expect("mesh_addr")
    }

    /// Every edge's SIP address, in order (`freya loadtest --target`).
    pub fn sip_targets(&self) -> Vec<String> {
        self.info.edges.iter().map(|e| e.sip_addr.clone()).collect()
    }

    /// Kills edge `i` (a process of its own) with SIGKILL: no goodbye.
    pub fn kill_edge(&self, i: usize) {
        signal(self.edge(i).pid, libc::SIGKILL);
    }

    /// Starts edge `i` again from its config file as a process of this test (its output to
    /// `log`, or nowhere); its index in [`Running::children`].
    pub fn restart_edge(&mut self, i: usize, log: Option<&Path>) -> usize {
        let config = self.edge(i).config.clone().expect("a child edge's config");
        let (stdout, stderr) = match log {
            Some(path) => {
                let log = std::fs::File::create(path).expect("log file");
                (log.try_clone().expect("log file").into(), log.into())
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let edge = Command::new(env!("CARGO_BIN_EXE_freya"))
            .arg("edge")
            .arg("--config")
            .arg(&config)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("restart the edge");
        self.running.children.push(edge);
        self.running.children.len() - 1
    }

    /// The control plane's gRPC URL, as the child edges' configuration names it.
    pub fn control_grpc_url(&self) -> String {
        let toml = std::fs::read_to_string(self.path().join("edge-2/edge.toml")).expect("toml");
        toml.lines()
            .find_map(|l| l.strip_prefix("url = \""))
            .and_then(|l| l.strip_suffix('"'))
            .expect("control url")
            .to_owned()
    }

    /// The cluster identity edge `k` (1-based, as its directory is named) enrolled for, once
    /// it has one that reads whole (`None` while it is being written).
    pub fn identity(&self, k: usize) -> Option<ClusterIdentity> {
        let dir = match k {
            1 => "edge".to_owned(),
            k => format!("edge-{k}"),
        };
        ClusterIdentity::load(&self.path().join(dir).join("trust"))
            .ok()
            .flatten()
    }

    /// Each member of edge `i`'s `GET /cluster`.
    pub async fn members(&self, i: usize) -> Option<Vec<Member>> {
        members_at(&self.http(i)).await
    }

    /// Waits until edge `i`'s view (every member it lists, each run of an edge apart)
    /// satisfies `check`.
    pub async fn until_view(&self, i: usize, what: &str, check: impl Fn(&[Member]) -> bool) {
        let url = self.http(i);
        eventually(VIEW_LIMIT, what, || async {
            check(&members_at(&url).await?).then_some(())
        })
        .await;
    }

    /// Waits until every edge sees every edge alive.
    pub async fn until_all_alive(&self) {
        let ids: Vec<String> = (0..self.info.edges.len()).map(|i| self.id(i)).collect();
        for i in 0..ids.len() {
            self.until_view(i, "every edge to see every edge alive", |view| {
                ids.iter().all(|id| state_of(view, id) == Some("alive"))
            })
            .await;
        }
    }
}

/// Each member of `GET /cluster` at `http_url`.
pub async fn members_at(http_url: &str) -> Option<Vec<Member>> {
    let report = get_json(&format!("{http_url}/cluster"), None).await?;
    Some(
        report["members"]
            .as_array()?
            .iter()
            .map(Member::from_json)
            .collect(),
    )
}

/// `members` with only the newest generation of each id.
pub fn newest(members: Vec<Member>) -> Vec<Member> {
    let mut out: Vec<Member> = Vec::new();
    for m in members {
        match out.iter_mut().find(|o| o.id == m.id) {
            Some(o) if o.generation < m.generation => *o = m,
            Some(_) => {}
            None => out.push(m),
        }
    }
    out
}

/// The state of `id`'s newest run in `view`.
pub fn state_of<'a>(view: &'a [Member], id: &str) -> Option<&'a str> {
    view.iter()
        .filter(|m| m.id == id)
        .max_by_key(|m| m.generation)
        .map(|m| m.state.as_str())
}

/// `GET url` as JSON (with `bearer`), within 5 s; `None` on any failure.
pub async fn get_json(url: &str, bearer: Option<&str>) -> Option<Value> {
    let mut request = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    request.send().await.ok()?.json().await.ok()
}

/// `GET url` as text; empty on any failure.
pub async fn get_text(url: &str) -> String {
    match reqwest::get(url).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}
