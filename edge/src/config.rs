//! The edge's configuration (`freya edge --config FILE`), overridable by `FREYA_*` environment
//! variables (`FREYA_REGION`, `FREYA_CONTROL__URL`, `FREYA_CONTROL__SHARED_SECRET`, ...).
//!
//! One struct per section, each in a file of its own below `config/`; this file holds the whole
//! and the checks that run once at start, with errors naming the key.

use std::path::PathBuf;

use serde::Deserialize;

use freya_shared::config::{check_at_least, check_socket_addr, ConfigProblem, Validate};
use freya_shared::model::number::is_region_name;

mod control_link;
mod drain;
mod http;
mod http_tls;
mod legs;
mod metrics;
mod rtp;
mod sip;
mod srtp;

pub use crate::cluster::ClusterConfig;
pub use crate::egress::EgressConfig;
pub use crate::mesh::MeshConfig;
pub use control_link::ControlLinkConfig;
pub use drain::DrainConfig;
pub use http::{
    default_http_header_timeout_ms, default_http_idle_timeout_ms, default_http_max_connections,
    http_limits, EdgeHttpConfig, HttpListenerKeys,
};
pub use http_tls::{
    default_hsts_max_age_secs, default_tls_handshake_timeout_ms, AcmeConfig, HttpTlsKeys,
};
pub use legs::LegsConfig;
pub use metrics::MetricsConfig;
pub use rtp::RtpConfig;
pub use sip::SipConfig;
pub use srtp::{SrtpConfig, SrtpMode};

/// Everything `freya edge` needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// Stable id; when absent one is generated on first start and kept in `data_dir/edge-id`.
    #[serde(default)]
    pub id: Option<String>,
    pub region: String,
    /// Where the configuration cache, the event spool and recordings waiting for upload
    /// (`recordings/`) live.
    pub data_dir: PathBuf,
    /// Most concurrent confirmed (acknowledged) calls this edge takes before refusing with 503.
    /// Calls still ringing or waiting for their ACK count against `sip.max_unconfirmed`
    /// instead, so the edge carries at most `capacity + sip.max_unconfirmed` calls.
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    pub control: ControlLinkConfig,
    #[serde(default)]
    pub sip: SipConfig,
    #[serde(default)]
    pub rtp: RtpConfig,
    /// Encrypted media (SRTP with SDES keys): the inbound policy, keys only over TLS.
    #[serde(default)]
    pub srtp: SrtpConfig,
    #[serde(default)]
    pub http: EdgeHttpConfig,
    /// Where customer-supplied URLs (tools, `function` nodes, provider base URLs) may lead.
    #[serde(default)]
    pub egress: EgressConfig,
    /// Gossip with the other edges (membership and health); off unless `cluster.bind` is set.
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// QUIC connections to peers for cross-edge legs (mutual TLS); off unless `mesh.listen`.
    #[serde(default)]
    pub mesh: MeshConfig,

    /// Parties added to a call (a second leg: warm transfer, add participant).
    #[serde(default)]
    pub legs: LegsConfig,

    /// How the edge stops on SIGTERM: new calls go to peers while its calls finish.
    #[serde(default)]
    pub drain: DrainConfig,

    /// What `/metrics` reports: label bounds and the targets behind the headroom gauge.
    #[serde(default)]
    pub metrics: MetricsConfig,
}

fn default_capacity() -> u32 {
    500
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
        if !(2..=16).contains(&self.legs.max_per_call) {
            problems.push(ConfigProblem::new("legs.max_per_call", "must be 2-16"));
        }
        if !(1_000..=300_000).contains(&self.legs.dial_timeout_ms) {
            problems.push(ConfigProblem::new(
                "legs.dial_timeout_ms",
                "must be 1000-300000 (1 s to 5 minutes)",
            ));
        }
        if !(500..=60_000).contains(&self.legs.remote_silence_ms) {
            problems.push(ConfigProblem::new(
                "legs.remote_silence_ms",
                "must be 500-60000",
            ));
        }
        if !(1..=1000).contains(&self.metrics.agent_label_limit) {
            problems.push(ConfigProblem::new(
                "metrics.agent_label_limit",
                "must be 1-1000 (each agent label is a set of series on every scrape)",
            ));
        }
        if !(100..=60_000).contains(&self.metrics.target_v2v_ms) {
            problems.push(ConfigProblem::new(
                "metrics.target_v2v_ms",
                "must be 100-60000",
            ));
        }
        if !(1..=100).contains(&self.metrics.target_cpu_percent) {
            problems.push(ConfigProblem::new(
                "metrics.target_cpu_percent",
                "must be 1-100",
            ));
        }
        if !is_region_name(&self.region) {
            problems.push(ConfigProblem::new(
                "region",
                "must be 1-64 lowercase letters, digits or `-`",
            ));
        }
        if let Some(url) = &self.http.public_url {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && !url.trim_end_matches('/').ends_with(':')
                && !url.contains(['?', '#', ' ']);
            if !ok {
                problems.push(ConfigProblem::new(
                    "http.public_url",
                    "must be an http:// or https:// base URL, without query or fragment",
                ));
            }
        }
        check_at_least("capacity", self.capacity.into(), 1, &mut problems);
        if self.control.url.is_empty() && self.control.urls.is_empty() {
            problems.push(ConfigProblem::new(
                "control.url",
                "must be set (or control.urls): the control plane's gRPC listener",
            ));
        }
        let listed = self.control.urls.iter().enumerate();
        let urls: Vec<(String, &String)> =
            std::iter::once(("control.url".to_owned(), &self.control.url))
                .filter(|(_, url)| !url.is_empty())
                .chain(listed.map(|(i, url)| (format!("control.urls[{i}]"), url)))
                .collect();
        for (key, url) in &urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(ConfigProblem::new(
                    key.clone(),
                    "must be an http:// or https:// URL of the control plane's gRPC listener",
                ));
                continue;
            }
            match &self.control.shared_secret {
                Some(_) if url.starts_with("https://") => {
                    problems.push(ConfigProblem::new(
                        key.clone(),
                        "the shared-secret mode speaks plaintext: use http://, or leave \
                         control.shared_secret out and enrol with control.join_token",
                    ));
                }
                None if !url.starts_with("https://") => {
                    problems.push(ConfigProblem::new(
                        key.clone(),
                        "must be https:// (mutual TLS); plaintext http:// is only for the \
                         dev-only control.shared_secret mode",
                    ));
                }
                _ => {}
            }
        }
        match &self.control.shared_secret {
            Some(secret) if secret.is_empty() => {
                problems.push(ConfigProblem::new(
                    "control.shared_secret",
                    "must not be empty",
                ));
            }
            Some(_) => {}
            None => {
                if let Some(token) = &self.control.join_token {
                    if let Err(e) = freya_shared::join_token::JoinToken::parse(token) {
                        problems.push(ConfigProblem::new("control.join_token", e.to_string()));
                    }
                }
            }
        }
        let max_backoff_ms = self.control.max_backoff_ms.into();
        check_at_least("control.max_backoff_ms", max_backoff_ms, 100, &mut problems);
        check_socket_addr("sip.addr", &self.sip.addr, &mut problems);
        if let Some(public) = &self.sip.public_addr {
            check_socket_addr("sip.public_addr", public, &mut problems);
        }
        self.tls_problems(&mut problems);
        self.srtp_problems(&mut problems);
        self.http.listener().problems(&mut problems);
        self.cluster.problems(&mut problems);
        self.mesh.problems(&mut problems);
        for (key, value, min) in [
            (
                "sip.tcp_message_timeout_ms",
                self.sip.tcp_message_timeout_ms,
                100,
            ),
            ("sip.tcp_idle_timeout_ms", self.sip.tcp_idle_timeout_ms, 100),
            (
                "sip.tcp_max_connections_per_ip",
                self.sip.tcp_max_connections_per_ip,
                1,
            ),
            ("sip.tcp_max_connections", self.sip.tcp_max_connections, 1),
            (
                "sip.tls_handshake_timeout_ms",
                self.sip.tls_handshake_timeout_ms,
                100,
            ),
            ("sip.tls_max_connections", self.sip.tls_max_connections, 1),
            (
                "sip.keepalive_interval_ms",
                self.sip.keepalive_interval_ms,
                1_000,
            ),
            ("sip.options_timeout_ms", self.sip.options_timeout_ms, 100),
            (
                "sip.registration_retry_base_ms",
                self.sip.registration_retry_base_ms,
                100,
            ),
            (
                "sip.registration_retry_max_ms",
                self.sip.registration_retry_max_ms,
                1_000,
            ),
        ] {
            check_at_least(key, value.into(), min, &mut problems);
        }
        if self.sip.options_interval_ms != 0 {
            check_at_least(
                "sip.options_interval_ms",
                self.sip.options_interval_ms.into(),
                1_000,
                &mut problems,
            );
        }
        if let Some(proxy) = &self.egress.proxy {
            if reqwest::Proxy::all(proxy).is_err() {
                problems.push(ConfigProblem::new(
                    "egress.proxy",
                    "must be a proxy URL such as http://proxy:3128",
                ));
            }
        }
        for (key, ip, v6) in [
            ("rtp.ip", &self.rtp.ip, false),
            ("rtp.public_ip", &self.rtp.public_ip, false),
            ("rtp.ip_v6", &self.rtp.ip_v6, true),
            ("rtp.public_ip_v6", &self.rtp.public_ip_v6, true),
        ] {
            match ip.as_ref().map(|ip| ip.parse::<std::net::IpAddr>()) {
                Some(Err(_)) => problems.push(ConfigProblem::new(key, "must be an IP address")),
                Some(Ok(ip)) if ip.is_ipv6() != v6 => {
                    let family = if v6 { "IPv6" } else { "IPv4" };
                    problems.push(ConfigProblem::new(
                        key,
                        format!("must be an {family} address"),
                    ));
                }
                _ => {}
            }
        }
        if self.rtp.port_min < 1024 || self.rtp.port_max <= self.rtp.port_min {
            problems.push(ConfigProblem::new(
                "rtp.port_min",
                "rtp.port_min must be at least 1024 and below rtp.port_max",
            ));
        }
        if self.sip.ring_ms > 60_000 {
            problems.push(ConfigProblem::new("sip.ring_ms", "must be at most 60000"));
        }
        let rate = self.sip.invites_per_second_per_source;
        if !(rate.is_finite() && rate > 0.0) {
            problems.push(ConfigProblem::new(
                "sip.invites_per_second_per_source",
                "must be a number above 0",
            ));
        }
        let burst = self.sip.invite_burst_per_source.into();
        check_at_least("sip.invite_burst_per_source", burst, 1, &mut problems);
        let unconfirmed = self.sip.max_unconfirmed.into();
        check_at_least("sip.max_unconfirmed", unconfirmed, 1, &mut problems);
        if self.sip.max_unconfirmed_per_source == 0
            || self.sip.max_unconfirmed_per_source > self.sip.max_unconfirmed
        {
            problems.push(ConfigProblem::new(
                "sip.max_unconfirmed_per_source",
                "must be at least 1 and at most sip.max_unconfirmed",
            ));
        }
        if self.rtp.codecs.is_empty() {
            problems.push(ConfigProblem::new("rtp.codecs", "name at least one codec"));
        }
        for name in &self.rtp.codecs {
            if crate::sip::sdp::Codec::from_name(name).is_none() {
                problems.push(ConfigProblem::new(
                    "rtp.codecs",
                    format!("unknown codec `{name}` (expected pcmu, pcma or opus)"),
                ));
            }
        }
        if !(100..=60_000).contains(&self.rtp.rtcp_interval_ms) {
            problems.push(ConfigProblem::new(
                "rtp.rtcp_interval_ms",
                "must be between 100 and 60000",
            ));
        }
        let inactivity = self.rtp.inactivity_timeout_ms.into();
        check_at_least("rtp.inactivity_timeout_ms", inactivity, 1000, &mut problems);
        let hold = self.rtp.hold_timeout_ms.into();
        check_at_least("rtp.hold_timeout_ms", hold, 1000, &mut problems);
        problems
    }
}

#[cfg(test)]
mod tests;
