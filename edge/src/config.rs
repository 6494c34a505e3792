//! The edge's configuration (`freya edge --config FILE`), overridable by `FREYA_*` environment
//! variables (`FREYA_REGION`, `FREYA_CONTROL__URL`, `FREYA_CONTROL__SHARED_SECRET`, ...).

use std::path::PathBuf;

use serde::Deserialize;

use freya_shared::config::{check_socket_addr, ConfigProblem, Validate};
use freya_shared::model::number::is_region_name;

/// Everything `freya edge` needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Stable id; when absent one is generated on first start and kept in `data_dir/edge-id`.
    #[serde(default)]
    pub id: Option<String>,
    pub region: String,
    /// Where the configuration cache and the event spool live.
    pub data_dir: PathBuf,
    /// Most concurrent calls this edge takes before refusing with 503.
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    pub control: ControlLinkConfig,
    #[serde(default)]
    pub sip: SipConfig,
    #[serde(default)]
    pub http: EdgeHttpConfig,
}

fn default_capacity() -> u32 {
    500
}

/// How to reach the control plane.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlLinkConfig {
    /// The control plane's gRPC address, e.g. `http://10.0.0.5:7070`.
    pub url: String,
    /// The control plane's `edges.shared_secret`.
    pub shared_secret: String,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u32,
    /// Longest pause between reconnection attempts.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u32,
}

fn default_connect_timeout_ms() -> u32 {
    3_000
}

fn default_max_backoff_ms() -> u32 {
    10_000
}

/// The SIP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipConfig {
    #[serde(default = "default_sip_addr")]
    pub addr: String,
    /// The address callers should use, when it differs from `addr` (NAT, 0.0.0.0).
    #[serde(default)]
    pub public_addr: Option<String>,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            addr: default_sip_addr(),
            public_addr: None,
        }
    }
}

fn default_sip_addr() -> String {
    "127.0.0.1:5060".into()
}

/// The edge's own probes and metrics listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeHttpConfig {
    #[serde(default = "default_http_addr")]
    pub addr: String,
}

impl Default for EdgeHttpConfig {
    fn default() -> Self {
        Self {
            addr: default_http_addr(),
        }
    }
}

fn default_http_addr() -> String {
    "127.0.0.1:8081".into()
}

impl Validate for EdgeConfig {
    fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        if let Some(id) = &self.id {
            if id.is_empty() || id.len() > 64 || id.chars().any(|c| c.is_whitespace()) {
                problems.push(ConfigProblem::new(
                    "id",
                    "must be 1-64 characters without spaces",
                ));
            }
        }
        if !is_region_name(&self.region) {
            problems.push(ConfigProblem::new(
                "region",
                "must be 1-64 lowercase letters, digits or `-`",
            ));
        }
        if self.capacity == 0 {
            problems.push(ConfigProblem::new("capacity", "must be at least 1"));
        }
        let url = &self.control.url;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            problems.push(ConfigProblem::new(
                "control.url",
                "must be an http:// or https:// URL of the control plane's gRPC listener",
            ));
        }
        if self.control.shared_secret.is_empty() {
            problems.push(ConfigProblem::new(
                "control.shared_secret",
                "must not be empty",
            ));
        }
        if self.control.max_backoff_ms < 100 {
            problems.push(ConfigProblem::new(
                "control.max_backoff_ms",
                "must be at least 100",
            ));
        }
        check_socket_addr("sip.addr", &self.sip.addr, &mut problems);
        if let Some(public) = &self.sip.public_addr {
            check_socket_addr("sip.public_addr", public, &mut problems);
        }
        check_socket_addr("http.addr", &self.http.addr, &mut problems);
        problems
    }
}
