//! `freya dev`: the whole platform on one machine — a control plane on an embedded SQLite file
//! and one edge in the same process, linked over real gRPC on loopback — with a demo workspace,
//! admin, API key, agent and number seeded on first start and reused afterwards. What a newcomer
//! needs to use it is written to `DATA_DIR/dev.json`. With `--edges N`, edges 2..N run as
//! `freya edge` processes (`edges.rs`) and all N gossip as one cluster. Every edge links to the
//! control plane as in production: mutual TLS under the cluster CA, enrolled with a join token
//! `freya dev` makes for it (an edge that kept a valid certificate from an earlier run reuses it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::{
    AuthConfig, ControlConfig, DatabaseConfig, EdgesConfig, GrpcConfig, HttpConfig,
    RateLimitConfig, RecordingsConfig, WebhooksConfig,
};
use crate::server::ControlPlane;

mod demo;
pub mod desk;
mod edges;
use crate::store::{Role, Store, WorkspaceScope};
pub use edges::DevEdge;
use freya_edge::config::{ControlLinkConfig, EdgeHttpConfig, EgressConfig, RtpConfig, SipConfig};
use freya_edge::{Edge, EdgeConfig};
use freya_shared::model::PhoneNumberSpec;

/// Options of `freya dev`, as its command line gives them.
#[derive(Debug, Clone, clap::Args)]
pub struct DevOptions {
    /// Where the database, the edge's state and dev.json live.
    #[arg(long, default_value = "./freya-data")]
    pub data_dir: PathBuf,
    /// REST API and dashboard address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: String,
    /// The edge's SIP address (UDP and TCP); IPv6 in brackets (`[::1]:5060`), and `[::]:5060`
    /// listens on IPv6 and IPv4 alike.
    #[arg(long, default_value = "127.0.0.1:5060")]
    pub sip: String,
    /// The edge's probes and metrics address (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub edge_http: String,
    /// Concurrent calls the edge takes before it answers 503 with Retry-After.
    #[arg(long, default_value_t = 100)]
    pub capacity: u32,
    /// Where the demo agent puts through callers who ask for a person: a phone number
    /// (sent to the caller's own SIP host) or a `sip:` URI.
    #[arg(long, default_value = "+15550100")]
    pub transfer_to: String,
    /// Edges to run: the first in this process, edges 2..N as `freya edge` processes with
    /// their own ports, all in one gossip cluster (listed in dev.json's `edges`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub edges: u32,
}

/// The contents of `dev.json`: everything needed to use the dev setup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevInfo {
    pub api_url: String,
    pub api_key: String,
    pub sip_uri: String,
    pub sip_addr: String,
    pub dashboard_url: String,
    pub edge_http_url: String,
    pub workspace_id: String,
    pub agent_id: String,
    pub phone_number: String,
    pub admin_email: String,
    pub admin_password: String,
    /// Every edge of the setup, the in-process one first (absent from an older `dev.json`).
    #[serde(default)]
    pub edges: Vec<DevEdge>,
}

/// The demo's dialable number.
const DEMO_NUMBER: &str = "demo";
const ADMIN_EMAIL: &str = "admin@freya.local";

impl DevInfo {
    /// The demo's details before its addresses are known ([`DevInfo::reached_at`]).
    fn demo(
        api_key: String,
        workspace_id: String,
        agent_id: String,
        admin_password: String,
    ) -> Self {
        Self {
            api_url: String::new(),
            api_key,
            sip_uri: String::new(),
            sip_addr: String::new(),
            dashboard_url: String::new(),
            edge_http_url: String::new(),
            workspace_id,
            agent_id,
            phone_number: DEMO_NUMBER.into(),
            admin_email: ADMIN_EMAIL.into(),
            admin_password,
            edges: Vec::new(),
        }
    }

    /// The addresses of this run (they change between runs; the key and the demo stay).
    fn reached_at(&mut self, http_addr: SocketAddr, sip_addr: &str, edge_http: SocketAddr) {
        self.api_url = format!("http://{http_addr}");
        self.dashboard_url = format!("{}/", self.api_url);
        self.sip_uri = format!("sip:{}@{sip_addr}", self.phone_number);
        self.sip_addr = sip_addr.to_owned();
        self.edge_http_url = format!("http://{edge_http}");
    }
}

fn random_text(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Runs the dev setup until `shutdown` is cancelled (Ctrl-C in the binary).
pub async fn run(options: DevOptions, shutdown: CancellationToken) -> anyhow::Result<()> {
    // `freya doctor`'s checks, before anything here binds a port or creates a file: each
    // problem is logged with its fix, and the setup starts anyway so it is seen in context.
    crate::doctor::warn_at_start(&options).await;
    keep_new_files_private();
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("while creating --data-dir {}", options.data_dir.display()))?;
    let data_dir = options
        .data_dir
        .canonicalize()
        .context("while resolving --data-dir")?;
    let auth = auth_secrets(&data_dir)?;
    let demo_tool_secret = auth.demo_tool_secret.clone();
    let control_config = ControlConfig {
        http: HttpConfig {
            addr: options.http.clone(),
            cors_allowed_origins: Vec::new(),
            ..HttpConfig::default()
        },
        grpc: GrpcConfig {
            addr: "127.0.0.1:0".into(),
            ..GrpcConfig::default()
        },
        database: DatabaseConfig {
            url: format!("sqlite://{}?mode=rwc", data_dir.join("freya.db").display()),
            replica_url: None,
            min_connections: 1,
            max_connections: 8,
        },
        edges: EdgesConfig::cluster(2_000, 10_000, 1_000),
        auth: AuthConfig {
            jwt_secret: auth.jwt_secret,
            token_ttl_seconds: 3_600,
            encryption_key: auth.encryption_key,
            previous_encryption_keys: Vec::new(),
        },
        rate_limits: RateLimitConfig::default(),
        // On one machine, receivers are usually on this machine too.
        webhooks: WebhooksConfig {
            allow_private_targets: true,
            ..WebhooksConfig::default()
        },
        recordings: RecordingsConfig {
            dir: data_dir.join("recordings"),
        },
        retention: Default::default(),
    };
    let desk = desk::DemoDesk::new(data_dir.join("bookings.jsonl"), demo_tool_secret.clone());
    let control = ControlPlane::start_with(&control_config, Some(desk.router())).await?;
    let mut join_tokens = Vec::new();
    for _ in 0..options.edges.max(1) {
        join_tokens.push(dev_join_token(&control).await?);
    }
    let edge_config = EdgeConfig {
        id: None,
        region: "local".into(),
        data_dir: data_dir.join("edge"),
        capacity: options.capacity,
        control: ControlLinkConfig {
            url: format!("https://{}", control.grpc_addr),
            urls: Vec::new(),
            shared_secret: None,
            join_token: Some(join_tokens[0].clone()),
            cert_dir: None,
            connect_timeout_ms: 3_000,
            max_backoff_ms: 5_000,
        },
        sip: SipConfig {
            addr: options.sip.clone(),
            public_addr: None,
            ring_ms: 0,
            // The load tester and `freya call` reach a dev edge from this machine's one
            // address, at load-test rates: the per-source INVITE limits are opened to the
            // capacity (the production defaults would refuse a load test past 10 calls/s).
            invites_per_second_per_source: f64::from(options.capacity.max(1)),
            invite_burst_per_source: options.capacity.max(1),
            max_unconfirmed: options.capacity.max(1),
            max_unconfirmed_per_source: options.capacity.max(1),
            ..SipConfig::default()
        },
        rtp: RtpConfig::default(),
        srtp: Default::default(),
        http: EdgeHttpConfig {
            addr: options.edge_http.clone(),
            public_url: None,
            ..EdgeHttpConfig::default()
        },
        // The demo's tool (the desk) and any local fakes listen on this machine.
        legs: Default::default(),
        drain: Default::default(),
        metrics: Default::default(),
        egress: EgressConfig {
            allow_private_targets: true,
            proxy: None,
        },
        // Gossip on a free port: alone it costs nothing, and `--edges N` joins it.
        cluster: freya_edge::config::ClusterConfig {
            bind: Some("127.0.0.1:0".into()),
            ..Default::default()
        },
        // The QUIC mesh for cross-edge legs, with the certificate each edge enrols for: the
        // cluster CA is the mesh's only root, as in production.
        mesh: freya_edge::config::MeshConfig {
            listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        },
    };
    let edge = Edge::start(&edge_config).await?;
    // The edge adapts the offline recogniser to telephone audio in the background (once per
    // machine); the demo waits for it, so the first call already hears with the adapted model.
    freya_edge::speech::stt::local::adapt::adapt_in_background().await;
    let desk_url = format!("http://{}{}", control.http_addr, desk::PATH);
    let demo = DemoSettings {
        desk_url: &desk_url,
        tool_secret: &demo_tool_secret,
        transfer_to: &options.transfer_to,
    };
    let info = seed_or_reuse(
        &control.store,
        &data_dir,
        control.http_addr,
        &options.sip,
        edge.http_addr,
        &demo,
    )
    .await
    .context("while seeding the demo workspace")?;
    refresh_demo_agent(&control.store, &info, &demo)
        .await
        .context("while updating the demo agent")?;
    // This process's edge holds the configuration with the demo number before dev.json says
    // it can be called; the other edges start only now, so the first configuration each one
    // holds routes it too: a call to any edge listed in dev.json is never answered 404.
    let seeded = control.store.config_version().await.unwrap_or(0);
    let holds_seed = async {
        while edge.state.snapshot().version < seeded {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(std::time::Duration::from_secs(10), holds_seed)
        .await
        .is_err()
    {
        tracing::warn!("the edge has not yet received the demo's configuration");
    }
    let children = match edge.gossip_addr {
        Some(seed) if options.edges > 1 => Some(edges::ChildEdges::start(
            options.edges,
            &edges::ChildSettings {
                data_dir: &data_dir,
                grpc_addr: control.grpc_addr,
                join_tokens: &join_tokens[1..],
                seed,
                capacity: options.capacity,
            },
        )?),
        _ => None,
    };
    let mut info = info;
    info.edges = vec![DevEdge {
        id: edge.id.clone(),
        region: "local".into(),
        pid: std::process::id(),
        sip_addr: edge.sip_addr.to_string(),
        http_url: format!("http://{}", edge.http_addr),
        gossip_addr: edge.gossip_addr.map(|a| a.to_string()),
        mesh_addr: edge.mesh_addr.map(|a| a.to_string()),
        config: None,
    }];
    if let Some(children) = &children {
        children
            .wait_registered(&control.store, std::time::Duration::from_secs(30))
            .await;
        info.edges.extend(children.listed());
    }
    let info_path = data_dir.join("dev.json");
    write_private(&info_path, &serde_json::to_vec_pretty(&info)?)?;
    print_banner(&info, &info_path);

    let stop = control.shutdown_token();
    let edge_stop = edge.shutdown_token();
    let leave = edge.state.leave_requested();
    let drained = tokio::select! {
        _ = shutdown.cancelled() => false,
        _ = stop.cancelled() => false,
        _ = edge_stop.cancelled() => false,
        _ = leave.cancelled() => true,
    };
    let edge = if drained {
        // `POST /v1/edges/{id}/drain` named the in-process edge: it drains and leaves as a
        // `freya edge` process would; the control plane and the other edges keep running.
        edge.drain_and_stop(shutdown.clone()).await;
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = stop.cancelled() => {}
        }
        None
    } else {
        Some(edge)
    };
    tracing::info!("shutting down");
    if let Some(children) = children {
        children.stop().await;
    }
    if let Some(edge) = edge {
        edge.stop().await;
    }
    control.stop().await;
    Ok(())
}

/// A join token for one of the dev setup's edges, valid for an hour.
async fn dev_join_token(control: &ControlPlane) -> anyhow::Result<String> {
    let (token, _) = crate::trust::join::make_join_token(
        &control.store,
        &control.ca,
        &crate::trust::join::TokenMaker {
            workspace_id: "",
            actor: "freya dev",
            source_ip: None,
        },
        std::time::Duration::from_secs(3_600),
    )
    .await
    .context("while making a join token for a dev edge")?;
    Ok(token.to_text())
}

/// The data directory holds secrets (`auth.json`, `dev.json`'s API key and admin password, the
/// database), so whatever this process creates is readable by its owner only (umask 077), as
/// `freya doctor` expects.
fn keep_new_files_private() {
    // SAFETY: umask only swaps the process's file-creation mask; it has no failure mode.
    #[cfg(unix)]
    unsafe {
        libc::umask(0o077);
    }
}

fn print_banner(info: &DevInfo, path: &Path) {
    println!();
    if info.edges.len() > 1 {
        println!(
            "  Freya is running (control plane + {} edges in one cluster, region `local`).",
            info.edges.len()
        );
    } else {
        println!("  Freya is running (control plane + one edge, region `local`).");
    }
    println!(
        "  API        {}/v1   (Authorization: Bearer {})",
        info.api_url, info.api_key
    );
    println!("  Dashboard  {}", info.dashboard_url);
    println!(
        "  Demo agent {}  (number `{}`)",
        info.sip_uri, info.phone_number
    );
    println!(
        "  Admin      {} / {}",
        info.admin_email, info.admin_password
    );
    for extra in info.edges.iter().skip(1) {
        println!(
            "  Edge       {} sip:{}  {}  (pid {})",
            extra.id, extra.sip_addr, extra.http_url, extra.pid
        );
    }
    println!("  Details    {}", path.display());
    println!("  Press Ctrl-C to stop.");
    println!();
}

fn hash_password(password: &str) -> anyhow::Result<String> {
    crate::api::hash_password(password)
        .map_err(|e| anyhow::anyhow!("cannot hash the admin password: {e}"))
}

/// The dev setup's token-signing secret and credential-encryption key, kept in
/// `DATA_DIR/auth.json` (readable by its owner only) so tokens and stored credentials survive a
/// restart.
#[derive(Serialize, Deserialize)]
struct AuthSecrets {
    jwt_secret: String,
    encryption_key: String,
    /// Signs the demo agent's tool requests to the demo desk (added later: generated when an
    /// older `auth.json` lacks it).
    #[serde(default)]
    demo_tool_secret: String,
}

fn auth_secrets(data_dir: &Path) -> anyhow::Result<AuthSecrets> {
    let path = data_dir.join("auth.json");
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(mut secrets) = serde_json::from_slice::<AuthSecrets>(&bytes) {
            if !secrets.demo_tool_secret.is_empty() {
                return Ok(secrets);
            }
            secrets.demo_tool_secret = random_text(32);
            write_private(&path, &serde_json::to_vec_pretty(&secrets)?)?;
            return Ok(secrets);
        }
        tracing::warn!(path = %path.display(), "unreadable auth.json; generating new secrets");
    }
    let secrets = AuthSecrets {
        jwt_secret: random_text(48),
        encryption_key: hex::encode(rand::random::<[u8; 32]>()),
        demo_tool_secret: random_text(32),
    };
    write_private(&path, &serde_json::to_vec_pretty(&secrets)?)?;
    Ok(secrets)
}

/// Writes a file that holds secrets, readable by its owner only: created 0600 (never briefly
/// readable by others, whatever the umask), and an existing, looser file is corrected.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    freya_shared::private_files::write(path, bytes)
        .with_context(|| format!("while writing {}", path.display()))
}

/// What the demo agent depends on in this run.
struct DemoSettings<'a> {
    /// The demo desk's booking endpoint.
    desk_url: &'a str,
    /// The secret its tool requests are signed with.
    tool_secret: &'a str,
    /// `--transfer-to`.
    transfer_to: &'a str,
}

/// Keeps a reused demo agent in step with this run: an agent seeded before the demo had its
/// rules gets the whole current demo; otherwise only what this run decides changes (the desk's
/// address, the tool secret, `--transfer-to`), so edits made through the API are kept.
async fn refresh_demo_agent(
    store: &Store,
    info: &DevInfo,
    demo: &DemoSettings<'_>,
) -> anyhow::Result<()> {
    let scope = WorkspaceScope {
        workspace_id: info.workspace_id.clone(),
    };
    let Ok(agent) = store.agent(&scope, &info.agent_id).await else {
        return Ok(());
    };
    if agent.spec.name != demo::NAME {
        return Ok(());
    }
    let mut spec = agent.spec.clone();
    match &mut spec.rules {
        None => spec = demo::agent(demo.desk_url, demo.tool_secret, demo.transfer_to),
        Some(rules) => {
            spec.tool_secret = Some(demo.tool_secret.to_owned());
            for tool in spec
                .tools
                .iter_mut()
                .filter(|t| t.name == demo::BOOKING_TOOL)
            {
                tool.url = demo.desk_url.to_owned();
            }
            let old = spec.transfer_destinations.clone();
            if old.len() == 1 && old[0] != demo.transfer_to {
                spec.transfer_destinations = vec![demo.transfer_to.to_owned()];
                for rule in &mut rules.rules {
                    if let Some(freya_shared::model::RuleAction::Transfer { destination }) =
                        &mut rule.action
                    {
                        if *destination == old[0] {
                            *destination = demo.transfer_to.to_owned();
                        }
                    }
                }
            }
        }
    }
    if spec != agent.spec {
        store
            .update_agent(&scope, "freya dev", &info.agent_id, &spec)
            .await?;
    }
    Ok(())
}

async fn seed_or_reuse(
    store: &Store,
    data_dir: &Path,
    http_addr: SocketAddr,
    sip_addr: &str,
    edge_http: SocketAddr,
    demo: &DemoSettings<'_>,
) -> anyhow::Result<DevInfo> {
    let previous: Option<DevInfo> = std::fs::read(data_dir.join("dev.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    if let Some(mut info) = previous {
        if store.authenticate_api_key(&info.api_key).await?.is_some() {
            info.reached_at(http_addr, sip_addr, edge_http);
            return Ok(info);
        }
    }
    if let Some(demo) = store.find_routed_number(DEMO_NUMBER).await? {
        // dev.json is gone or stale but the demo exists: issue a new key and admin password.
        let scope = WorkspaceScope {
            workspace_id: demo.workspace_id.clone(),
        };
        let key = store.create_api_key(&scope, "dev", Role::Owner).await?;
        let admin_password = random_text(16);
        store
            .set_user_password(ADMIN_EMAIL, &hash_password(&admin_password)?)
            .await?;
        tracing::info!("dev.json was missing; issued a new API key for the existing demo");
        let mut info = DevInfo::demo(
            key.key,
            demo.workspace_id,
            demo.spec.agent_id.unwrap_or_default(),
            admin_password,
        );
        info.reached_at(http_addr, sip_addr, edge_http);
        return Ok(info);
    }
    let workspace_id = store.create_workspace("Demo").await?;
    let scope = WorkspaceScope {
        workspace_id: workspace_id.clone(),
    };
    let admin_password = random_text(16);
    let user_id = store
        .create_user(ADMIN_EMAIL, "Admin", &hash_password(&admin_password)?)
        .await?;
    store.add_member(&scope, &user_id, Role::Owner).await?;
    let key = store.create_api_key(&scope, "dev", Role::Owner).await?;
    let agent = store
        .create_agent(
            &scope,
            "freya dev",
            &demo::agent(demo.desk_url, demo.tool_secret, demo.transfer_to),
        )
        .await?;
    store
        .create_number(
            &scope,
            "freya dev",
            &PhoneNumberSpec {
                number: DEMO_NUMBER.into(),
                region: None,
                regions: Vec::new(),
                agent_id: Some(agent.id.clone()),
                workflow_id: None,
            },
        )
        .await?;
    let mut info = DevInfo::demo(key.key, workspace_id, agent.id, admin_password);
    info.reached_at(http_addr, sip_addr, edge_http);
    Ok(info)
}
