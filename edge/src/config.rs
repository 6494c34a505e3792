//! The edge's configuration (`freya edge --config FILE`), overridable by `FREYA_*` environment
//! variables (`FREYA_REGION`, `FREYA_CONTROL__URL`, `FREYA_CONTROL__SHARED_SECRET`, ...).

use std::path::PathBuf;

use serde::Deserialize;

use freya_shared::config::{check_socket_addr, ConfigProblem, Validate};
use freya_shared::model::number::is_region_name;

pub use crate::egress::EgressConfig;

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
    /// Most concurrent calls this edge takes before refusing with 503.
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    pub control: ControlLinkConfig,
    #[serde(default)]
    pub sip: SipConfig,
    #[serde(default)]
    pub rtp: RtpConfig,
    #[serde(default)]
    pub http: EdgeHttpConfig,
    /// Where customer-supplied URLs (tools, `function` nodes, provider base URLs) may lead.
    #[serde(default)]
    pub egress: EgressConfig,
}

/// The media side of calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtpConfig {
    /// The IP RTP sockets bind to; defaults to the SIP listener's IP.
    #[serde(default)]
    pub ip: Option<String>,
    /// The IP put in SDP for callers to send media to, when it differs (NAT).
    #[serde(default)]
    pub public_ip: Option<String>,
    #[serde(default = "default_port_min")]
    pub port_min: u16,
    #[serde(default = "default_port_max")]
    pub port_max: u16,
    /// A call with no RTP from the caller for this long is hung up.
    #[serde(default = "default_inactivity_ms")]
    pub inactivity_timeout_ms: u32,
    /// Codecs we answer and offer with, most preferred first: `pcmu`, `pcma`, `opus`.
    #[serde(default = "default_codecs")]
    pub codecs: Vec<String>,
    /// Nominal time between a call's RTCP reports (RFC 3550 suggests 5 s), randomised 0.5–1.5×.
    #[serde(default = "default_rtcp_interval_ms")]
    pub rtcp_interval_ms: u32,
}

impl Default for RtpConfig {
    fn default() -> Self {
        Self {
            ip: None,
            public_ip: None,
            port_min: default_port_min(),
            port_max: default_port_max(),
            inactivity_timeout_ms: default_inactivity_ms(),
            rtcp_interval_ms: default_rtcp_interval_ms(),
            codecs: default_codecs(),
        }
    }
}

fn default_port_min() -> u16 {
    20_000
}

fn default_port_max() -> u16 {
    29_999
}

fn default_inactivity_ms() -> u32 {
    30_000
}

/// G.711 first: what every carrier speaks, and the cheapest per call; Opus when only it is
/// common, or when configured first.
fn default_codecs() -> Vec<String> {
    vec!["pcmu".into(), "pcma".into(), "opus".into()]
}

fn default_rtcp_interval_ms() -> u32 {
    5_000
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
    /// Ring this long (180 Ringing) before answering; 0 answers at once.
    #[serde(default)]
    pub ring_ms: u32,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            addr: default_sip_addr(),
            public_addr: None,
            ring_ms: 0,
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
    /// The base URL providers reach this listener at (`https://edge1.example.com`): Twilio's
    /// webhook signatures cover it and media streams are told to connect to it. Defaults to
    /// `http://` and the bound address (fine on a private network and in tests).
    #[serde(default)]
    pub public_url: Option<String>,
}

impl Default for EdgeHttpConfig {
    fn default() -> Self {
        Self {
            addr: default_http_addr(),
            public_url: None,
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
        if let Some(proxy) = &self.egress.proxy {
            if reqwest::Proxy::all(proxy).is_err() {
                problems.push(ConfigProblem::new(
                    "egress.proxy",
                    "must be a proxy URL such as http://proxy:3128",
                ));
            }
        }
        for (key, ip) in [
            ("rtp.ip", &self.rtp.ip),
            ("rtp.public_ip", &self.rtp.public_ip),
        ] {
            if ip
                .as_ref()
                .is_some_and(|ip| ip.parse::<std::net::IpAddr>().is_err())
            {
                problems.push(ConfigProblem::new(key, "must be an IP address"));
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
        if self.rtp.inactivity_timeout_ms < 1000 {
            problems.push(ConfigProblem::new(
                "rtp.inactivity_timeout_ms",
                "must be at least 1000",
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rtp: serde_json::Value) -> EdgeConfig {
        serde_json::from_value(serde_json::json!({
            "region": "local",
            "data_dir": "/tmp/edge",
            "control": {"url": "http://127.0.0.1:1", "shared_secret": "s"},
            "rtp": rtp,
        }))
        .expect("parses")
    }

    fn keys(config: &EdgeConfig) -> Vec<String> {
        config.validate().into_iter().map(|p| p.key).collect()
    }

    #[test]
    fn codecs_and_rtcp_interval_are_validated_by_key() {
        let ok = config(serde_json::json!({"codecs": ["opus", "PCMU"]}));
        assert!(keys(&ok).is_empty(), "{:?}", keys(&ok));
        assert_eq!(ok.rtp.rtcp_interval_ms, 5_000);
        let bad = config(serde_json::json!({"codecs": ["g729"], "rtcp_interval_ms": 10}));
        assert_eq!(keys(&bad), ["rtp.codecs", "rtp.rtcp_interval_ms"]);
        assert_eq!(
            keys(&config(serde_json::json!({"codecs": []}))),
            ["rtp.codecs"]
        );
    }

    #[test]
    fn egress_defaults_to_public_targets_only_and_a_bad_proxy_is_named() {
        let default = config(serde_json::json!({}));
        assert!(!default.egress.allow_private_targets);
        assert_eq!(default.egress.proxy, None);
        let mut bad: EdgeConfig = serde_json::from_value(serde_json::json!({
            "region": "local",
            "data_dir": "/tmp/edge",
            "control": {"url": "http://127.0.0.1:1", "shared_secret": "s"},
            "egress": {"allow_private_targets": true, "proxy": "not a proxy"},
        }))
        .expect("parses");
        assert!(bad.egress.allow_private_targets);
        assert_eq!(keys(&bad), ["egress.proxy"]);
        bad.egress.proxy = Some("http://proxy.internal:3128".into());
        assert!(keys(&bad).is_empty(), "{:?}", keys(&bad));
    }
}
