//! The edge's configuration (`freya edge --config FILE`), overridable by `FREYA_*` environment
//! variables (`FREYA_REGION`, `FREYA_CONTROL__URL`, `FREYA_CONTROL__SHARED_SECRET`, ...).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use freya_shared::config::{check_at_least, check_socket_addr, ConfigProblem, Validate};
use freya_shared::model::number::is_region_name;

pub use crate::cluster::ClusterConfig;
pub use crate::egress::EgressConfig;
pub use crate::mesh::MeshConfig;
use crate::serve::{ConnectionLimits, ConnectionTimeouts};

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

/// `/metrics` settings. A key left out takes its value from `Default` below.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Most agents with a label of their own on `freya_edge_voice_to_voice_seconds`; the
    /// calls of any later agent count as `agent="other"` (keeps the series count bounded).
    pub agent_label_limit: usize,
    /// The voice-to-voice p95 the edge promises: while the last five minutes' p95 is over it,
    /// `freya_edge_headroom_calls` is 0.
    pub target_v2v_ms: u32,
    /// The share of all cores the edge should stay under; the headroom counts the calls that
    /// fit under it at the CPU each current call uses.
    pub target_cpu_percent: u32,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            agent_label_limit: 50,
            target_v2v_ms: 1500,
            target_cpu_percent: 80,
        }
    }
}

/// Draining before a stop. A key left out takes its value from `Default` below.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DrainConfig {
    /// How long calls in progress may continue after SIGTERM (or a drain) before the edge ends
    /// them (`edge_shutdown`) and leaves; new INVITEs meanwhile get 302 to a peer (or 503).
    pub deadline_seconds: u32,
    /// A draining edge that finds no live peer with room for a new INVITE takes the call itself
    /// rather than fail it (503), as long as at least this much of its drain deadline is left;
    /// after that it answers 503 with `Retry-After`. 0 takes such calls up to the deadline.
    pub last_resort_seconds: u32,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self {
            deadline_seconds: 300,
            last_resort_seconds: 60,
        }
    }
}

/// Limits on a call's added parties. A key left out takes its value from `Default` below.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LegsConfig {
    /// Most legs a call has up or dialling at once, its first party included (2-16).
    pub max_per_call: u8,
    /// How long a dialled party may ring before the dial is cancelled (`no_answer`).
    pub dial_timeout_ms: u32,
    /// How long a leg dialled on another edge may send no audio over the mesh before it is
    /// ended (`mesh_lost`): a dropped mesh connection or a dead peer never hangs the call.
    pub remote_silence_ms: u32,
}

impl Default for LegsConfig {
    fn default() -> Self {
        Self {
            max_per_call: 4,
            dial_timeout_ms: 30_000,
            remote_silence_ms: 3_000,
        }
    }
}

/// The media side of calls. A key left out takes its value from `Default` below, the one place
/// each default is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtpConfig {
    /// The IPv4 address RTP sockets bind to for IPv4 calls; defaults to the SIP listener's IP
    /// when it is IPv4, to 0.0.0.0 when SIP listens dual-stack on `[::]`.
    pub ip: Option<String>,
    /// The IPv4 address put in SDP for callers to send media to, when it differs (NAT).
    /// Defaults to `sip.public_addr`'s (or `sip.addr`'s) IP when IPv4.
    pub public_ip: Option<String>,
    /// The IPv6 address RTP sockets bind to for calls offered `c=IN IP6`; defaults to the SIP
    /// listener's IP when it is IPv6. With neither, IPv6 offers are refused (488).
    pub ip_v6: Option<String>,
    /// The IPv6 address put in SDP (`c=IN IP6`) for IPv6 callers; defaults to
    /// `sip.public_addr`'s (or `sip.addr`'s) IP when IPv6, else `rtp.ip_v6` unless it is `::`.
    pub public_ip_v6: Option<String>,
    pub port_min: u16,
    pub port_max: u16,
    /// A call with no RTP from the caller for this long is hung up.
    pub inactivity_timeout_ms: u32,
    /// A call the caller holds (re-INVITE with `a=sendonly`, `a=inactive` or `c=0.0.0.0`) sends
    /// no RTP by design: instead of `inactivity_timeout_ms`, it is hung up only after this long
    /// with neither RTP nor RTCP from the caller (RTCP reports prove a held phone is there).
    pub hold_timeout_ms: u32,
    /// Codecs we answer and offer with, most preferred first: `pcmu`, `pcma`, `opus`.
    pub codecs: Vec<String>,
    /// Nominal time between a call's RTCP reports (RFC 3550 suggests 5 s), randomised 0.5–1.5×.
    pub rtcp_interval_ms: u32,
}

impl Default for RtpConfig {
    fn default() -> Self {
        Self {
            ip: None,
            public_ip: None,
            ip_v6: None,
            public_ip_v6: None,
            port_min: 20_000,
            port_max: 29_999,
            inactivity_timeout_ms: 30_000,
            hold_timeout_ms: 3_600_000,
            rtcp_interval_ms: 5_000,
            // G.711 first: what every carrier speaks, and the cheapest per call; Opus when only
            // it is common, or when configured first.
            codecs: vec!["pcmu".into(), "pcma".into(), "opus".into()],
        }
    }
}

fn default_capacity() -> u32 {
    500
}

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

/// The SIP listener. A key left out takes its value from `Default` below, the one place
/// each default is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    pub addr: String,
    /// The address callers should use, when it differs from `addr` (NAT, 0.0.0.0).
    pub public_addr: Option<String>,
    /// The edge's public IP behind a NAT (a cloud VM's elastic IP): the IP of Contact and Via
    /// on every listener and of the SDP media address, unless `public_addr`,
    /// `tls_public_addr` or `rtp.public_ip` say otherwise. Ports stay the listeners' own.
    pub external_ip: Option<String>,
    /// Ring this long (180 Ringing) before answering; 0 answers at once.
    pub ring_ms: u32,
    /// Longest a SIP message may take over TCP from its first byte to its last (default 10 s):
    /// carriers write a message at once, so only a stalled or hostile peer comes near it.
    pub tcp_message_timeout_ms: u32,
    /// A SIP TCP connection with nothing read or written this long is closed (default 40 min):
    /// carriers keep connections open for hours and may say nothing during a call, and this is
    /// longer than RFC 4028's usual 30 min session interval, so a dialog whose refreshes use
    /// the connection keeps it.
    pub tcp_idle_timeout_ms: u32,
    /// Most SIP TCP connections one IP may hold open (default 64: a carrier's SBC opens a few).
    pub tcp_max_connections_per_ip: u32,
    /// Most SIP TCP connections open in all (default 1024, well under the edge's open-file
    /// limit, which RTP sockets share).
    pub tcp_max_connections: u32,
    /// New INVITEs one source address (an IPv4 address, or an IPv6 /64) may send per second,
    /// on average; beyond it they are answered 503 with `Retry-After`. Retransmissions of an
    /// INVITE already taken do not count. A carrier trunk sends every call from one address:
    /// raise this to its peak call rate.
    pub invites_per_second_per_source: f64,
    /// How many new INVITEs one source may send at once before the per-second rate applies.
    pub invite_burst_per_source: u32,
    /// Calls ringing, or answered but not yet acknowledged (ACK), the edge holds at once. They
    /// have a budget of their own so that INVITEs which never ACK cannot take the slots of
    /// confirmed calls (`capacity`); a call leaves it when its ACK arrives.
    pub max_unconfirmed: u32,
    /// The share of `max_unconfirmed` one source address may hold, so that one flooding
    /// address cannot take the whole budget. A trunk needs about its call rate × (`ring_ms` +
    /// the ACK's round trip).
    pub max_unconfirmed_per_source: u32,
    /// SIP over TLS (RFC 3261 section 26): the address to listen on (`0.0.0.0:5061`; a bare
    /// IP gets port 5061). Off when unset; needs `tls_cert_file` and `tls_key_file`.
    pub tls_listen: Option<String>,
    /// The address callers reach the TLS listener at, when it differs (NAT, 0.0.0.0): Contact
    /// and Via on TLS flows say it. Defaults to `tls_listen` with `public_addr`'s IP.
    pub tls_public_addr: Option<String>,
    /// The TLS listener's certificate chain (PEM, leaf first). Reloaded when the file changes;
    /// connections already up keep their session.
    pub tls_cert_file: Option<String>,
    /// The certificate's private key (PEM). Reloaded with the certificate.
    pub tls_key_file: Option<String>,
    /// CA certificates (PEM) that trunks reached over TLS must chain to. Unset: Mozilla's
    /// roots (webpki-roots), as for any public certificate.
    pub tls_ca_file: Option<String>,
    /// Longest a TLS handshake may take, inbound or outbound (default 5 s): a client that
    /// connects and stalls is closed after it.
    pub tls_handshake_timeout_ms: u32,
    /// Most TLS connections open in all, handshakes included (default 1024). The per-IP cap
    /// is `tcp_max_connections_per_ip`, the timeouts after the handshake the TCP ones.
    pub tls_max_connections: u32,
    /// On TCP and TLS connections the edge opened (trunks, registrars), send a CRLF
    /// keep-alive ping (RFC 5626 section 4.4.1) after this long without traffic (default
    /// 90 s, under common NAT and load-balancer idle timeouts).
    pub keepalive_interval_ms: u32,
    /// The first wait after a failed registration with a PBX or trunk (default 30 s); it
    /// doubles with each failure up to `registration_retry_max_ms` (a `Retry-After` wins).
    pub registration_retry_base_ms: u32,
    /// The longest wait between registration attempts (default 30 min).
    pub registration_retry_max_ms: u32,
    /// How often each UDP trunk the edge may dial out through is pinged with SIP `OPTIONS`
    /// (default 30 s, at least 1 s; 0 pings none, and health shows `unknown`): its health as
    /// the providers API shows it.
    pub options_interval_ms: u32,
    /// How long a ping waits for a final answer before the trunk counts as down (default 5 s,
    /// at least 100 ms, at most the interval).
    pub options_timeout_ms: u32,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:5060".into(),
            public_addr: None,
            external_ip: None,
            ring_ms: 0,
            tcp_message_timeout_ms: 10_000,
            tcp_idle_timeout_ms: 40 * 60 * 1000,
            tcp_max_connections_per_ip: 64,
            tcp_max_connections: 1024,
            invites_per_second_per_source: 10.0,
            invite_burst_per_source: 20,
            max_unconfirmed: 64,
            max_unconfirmed_per_source: 16,
            tls_listen: None,
            tls_public_addr: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_file: None,
            tls_handshake_timeout_ms: 5_000,
            tls_max_connections: 1024,
            keepalive_interval_ms: 90_000,
            registration_retry_base_ms: 30_000,
            registration_retry_max_ms: 30 * 60 * 1000,
            options_interval_ms: 30_000,
            options_timeout_ms: 5_000,
        }
    }
}

impl SipConfig {
    /// The TLS listener's address, `tls_listen` with port 5061 when it names none; `None`
    /// when TLS is off or the value is not an address.
    pub fn tls_listen_addr(&self) -> Option<SocketAddr> {
        let value = self.tls_listen.as_deref()?.trim();
        value.parse::<SocketAddr>().ok().or_else(|| {
            let ip = value
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .ok()?;
            Some(SocketAddr::new(ip, 5061))
        })
    }

    /// The SIP TCP listener's caps and timeouts.
    pub fn tcp_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            timeouts: ConnectionTimeouts {
                message: Duration::from_millis(u64::from(self.tcp_message_timeout_ms)),
                idle: Duration::from_millis(u64::from(self.tcp_idle_timeout_ms)),
            },
            max_per_ip: self.tcp_max_connections_per_ip,
            max_total: self.tcp_max_connections,
        }
    }
}

/// The edge's own probes and metrics listener. A key left out takes its value from `Default`
/// below, the one place each default is written.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeHttpConfig {
    pub addr: String,
    /// The base URL providers reach this listener at (`https://edge1.example.com`): Twilio's
    /// webhook signatures cover it and media streams are told to connect to it. Defaults to
    /// `http://` and the bound address (fine on a private network and in tests); `https://`
    /// with `tls_cert`, and `https://` and the ACME domain with `[http.acme]`.
    pub public_url: Option<String>,
    /// Longest from a request's first byte to the end of its headers (default 10 s: Twilio and
    /// probes send a head in one packet; slowloris trickles it forever).
    pub header_timeout_ms: u32,
    /// A keep-alive connection with no request in flight closes after this long (default 60 s,
    /// longer than the keep-alive of common clients, so they close first). A media stream's
    /// WebSocket is not bound by it.
    pub idle_timeout_ms: u32,
    /// Most connections one IP may hold open (default 1024: every media stream of the edge's
    /// calls may come from a handful of Twilio addresses).
    pub max_connections_per_ip: u32,
    /// Most connections open in all (default 4096, under a typical open-file limit of 20 000
    /// with room for RTP and SIP sockets).
    pub max_connections: u32,
    /// HTTPS and WSS on this listener: the certificate chain (PEM), reloaded when it changes.
    /// With it, `public_url` defaults to `https://` and media streams to `wss://`.
    pub tls_cert: Option<String>,
    /// The certificate's private key (PEM).
    pub tls_key: Option<String>,
    /// Longest a TLS handshake may take from accept (default 5 s); a client that connects and
    /// sends nothing is closed then.
    pub tls_handshake_timeout_ms: u32,
    /// A certificate from an ACME CA instead of files (see [`AcmeConfig`]).
    pub acme: Option<AcmeConfig>,
    /// A plain-HTTP listener (`0.0.0.0:80`, say) answering every request with `308` to the
    /// same path on HTTPS, at `public_url`'s host when that is `https://` (else the ACME
    /// domain, else the request's own host); with ACME on the challenge address, one listener
    /// does both. Needs HTTPS on. Off by default.
    pub http_redirect: Option<String>,
}

impl Default for EdgeHttpConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8081".into(),
            public_url: None,
            header_timeout_ms: default_http_header_timeout_ms(),
            idle_timeout_ms: default_http_idle_timeout_ms(),
            max_connections_per_ip: 1024,
            max_connections: default_http_max_connections(),
            tls_cert: None,
            tls_key: None,
            tls_handshake_timeout_ms: default_tls_handshake_timeout_ms(),
            acme: None,
            http_redirect: None,
        }
    }
}

impl EdgeHttpConfig {
    /// The TLS keys, as both binaries' `[http]` have them.
    pub fn tls(&self) -> HttpTlsKeys<'_> {
        HttpTlsKeys {
            tls_cert: self.tls_cert.as_deref(),
            tls_key: self.tls_key.as_deref(),
            handshake_timeout_ms: self.tls_handshake_timeout_ms,
            acme: self.acme.as_ref(),
            http_redirect: self.http_redirect.as_deref(),
            public_url: self.public_url.as_deref(),
        }
    }

    /// The listener's caps and timeouts.
    pub fn limits(&self) -> ConnectionLimits {
        http_limits(
            self.header_timeout_ms,
            self.idle_timeout_ms,
            self.max_connections_per_ip,
            self.max_connections,
        )
    }
}

/// An HTTP listener's [`ConnectionLimits`] from its config keys (milliseconds), for the edge's
/// and the control plane's `[http]`.
pub fn http_limits(
    header_timeout_ms: u32,
    idle_timeout_ms: u32,
    max_per_ip: u32,
    max_total: u32,
) -> ConnectionLimits {
    ConnectionLimits {
        timeouts: ConnectionTimeouts {
            message: Duration::from_millis(u64::from(header_timeout_ms)),
            idle: Duration::from_millis(u64::from(idle_timeout_ms)),
        },
        max_per_ip,
        max_total,
    }
}

/// The default header timeout of an HTTP listener, edge or control plane.
pub fn default_http_header_timeout_ms() -> u32 {
    10_000
}

/// The default keep-alive idle timeout of an HTTP listener, edge or control plane.
pub fn default_http_idle_timeout_ms() -> u32 {
    60_000
}

/// The default total connection cap of an HTTP listener, edge or control plane.
pub fn default_http_max_connections() -> u32 {
    4096
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
        check_socket_addr("http.addr", &self.http.addr, &mut problems);
        self.http.tls().problems(&mut problems);
        self.cluster.problems(&mut problems);
        self.mesh.problems(&mut problems);
        for (key, value, min) in [
            ("http.header_timeout_ms", self.http.header_timeout_ms, 100),
            ("http.idle_timeout_ms", self.http.idle_timeout_ms, 100),
            (
                "http.max_connections_per_ip",
                self.http.max_connections_per_ip,
                1,
            ),
            ("http.max_connections", self.http.max_connections, 1),
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

#[path = "config_sip.rs"]
mod sip_checks;

#[path = "config_http.rs"]
mod http_tls;
pub use http_tls::{default_tls_handshake_timeout_ms, AcmeConfig, HttpTlsKeys};

#[path = "config_srtp.rs"]
mod srtp;
pub use srtp::{SrtpConfig, SrtpMode};

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
