//! The control plane's configuration (`freya control --config FILE`), overridable by `FREYA_*`
//! environment variables (`FREYA_DATABASE__URL`, `FREYA_EDGES__SHARED_SECRET`, ...).

use serde::Deserialize;

use freya_shared::config::{check_socket_addr, ConfigProblem, Validate};

/// Everything `freya control` needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub grpc: GrpcConfig,
    pub database: DatabaseConfig,
    pub edges: EdgesConfig,
}

/// The REST API and dashboard listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_http_addr")]
    pub addr: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: default_http_addr(),
        }
    }
}

fn default_http_addr() -> String {
    "127.0.0.1:8080".into()
}

/// The listener edges connect to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    #[serde(default = "default_grpc_addr")]
    pub addr: String,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            addr: default_grpc_addr(),
        }
    }
}

fn default_grpc_addr() -> String {
    "127.0.0.1:7070".into()
}

/// Where the store lives and how many connections it may hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH?mode=rwc` or `postgres://USER:PASS@HOST:PORT/DB`.
    pub url: String,
    #[serde(default = "default_min_connections")]
    pub min_connections: u32,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
}

fn default_min_connections() -> u32 {
    1
}

fn default_max_connections() -> u32 {
    10
}

/// How edges authenticate and how their liveness is judged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgesConfig {
    /// The secret every edge presents; at least 16 characters.
    pub shared_secret: String,
    #[serde(default = "default_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u32,
    /// An edge silent for this long is offline.
    #[serde(default = "default_offline_after_ms")]
    pub offline_after_ms: u32,
    /// How often configuration watches look for changes made by other control-plane processes.
    #[serde(default = "default_config_poll_ms")]
    pub config_poll_ms: u32,
}

fn default_heartbeat_interval_ms() -> u32 {
    2_000
}

fn default_offline_after_ms() -> u32 {
    10_000
}

fn default_config_poll_ms() -> u32 {
    1_000
}

/// Shortest accepted edge secret.
pub const MIN_SECRET_LEN: usize = 16;

impl Validate for ControlConfig {
    fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        check_socket_addr("http.addr", &self.http.addr, &mut problems);
        check_socket_addr("grpc.addr", &self.grpc.addr, &mut problems);
        if crate::store::Engine::from_url(&self.database.url).is_err() {
            problems.push(ConfigProblem::new(
                "database.url",
                "must start with sqlite:// or postgres://",
            ));
        }
        if self.database.max_connections == 0 {
            problems.push(ConfigProblem::new(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        if self.database.min_connections > self.database.max_connections {
            problems.push(ConfigProblem::new(
                "database.min_connections",
                "must not exceed database.max_connections",
            ));
        }
        if self.edges.shared_secret.len() < MIN_SECRET_LEN {
            problems.push(ConfigProblem::new(
                "edges.shared_secret",
                format!("must be at least {MIN_SECRET_LEN} characters"),
            ));
        }
        if self.edges.heartbeat_interval_ms < 100 {
            problems.push(ConfigProblem::new(
                "edges.heartbeat_interval_ms",
                "must be at least 100",
            ));
        }
        if self.edges.offline_after_ms <= self.edges.heartbeat_interval_ms {
            problems.push(ConfigProblem::new(
                "edges.offline_after_ms",
                "must be longer than edges.heartbeat_interval_ms",
            ));
        }
        if self.edges.config_poll_ms < 50 {
            problems.push(ConfigProblem::new(
                "edges.config_poll_ms",
                "must be at least 50",
            ));
        }
        problems
    }
}
