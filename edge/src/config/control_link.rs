//! `[control]`: how the edge reaches the control plane — its gRPC URLs, the dev-only shared
//! secret or the join token it enrols with, and the link's timings.

use std::path::PathBuf;

use serde::Deserialize;

/// How to reach the control plane.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlLinkConfig {
    /// The control plane's gRPC address: `https://10.0.0.5:7070` in a cluster (mutual TLS),
    /// `http://...` in the dev-only shared-secret mode. With replicas, list them in `urls`
    /// instead (both may be given: `url` is then tried first).
    #[serde(default)]
    pub url: String,
    /// Control-plane replicas' gRPC addresses, tried in order: the edge stays on one until it
    /// fails at the transport, then moves to the next (with the link's backoff).
    #[serde(default)]
    pub urls: Vec<String>,
    /// The dev-only shared-secret mode: the control plane's `edges.shared_secret`, sent in the
    /// clear. Leave it out in a cluster.
    #[serde(default)]
    pub shared_secret: Option<String>,
    /// A one-time join token (`POST /v1/edges/join-tokens`): spent on the edge's first start,
    /// or whenever it has no valid certificate, to enrol with the control plane.
    #[serde(default)]
    pub join_token: Option<String>,
    /// Where the edge keeps its key, its certificate and the cluster CA's (owner-only files);
    /// defaults to `data_dir/trust`.
    #[serde(default)]
    pub cert_dir: Option<PathBuf>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u32,
    /// Longest pause between reconnection attempts.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u32,
}

impl ControlLinkConfig {
    /// Every control-plane URL in the order tried: `url` (when set), then `urls`, each once.
    pub fn all_urls(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::with_capacity(self.urls.len() + 1);
        for url in std::iter::once(&self.url).chain(&self.urls) {
            if !url.is_empty() && !all.contains(url) {
                all.push(url.clone());
            }
        }
        all
    }
}

fn default_connect_timeout_ms() -> u32 {
    3_000
}

fn default_max_backoff_ms() -> u32 {
    10_000
}
