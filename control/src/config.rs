//! The control plane's configuration (`freya control --config FILE`), overridable by `FREYA_*`
//! environment variables (`FREYA_DATABASE__URL`, `FREYA_EDGES__SHARED_SECRET`, ...).

use std::path::PathBuf;

use serde::Deserialize;

use freya_edge::config::{
    default_http_header_timeout_ms, default_http_idle_timeout_ms, default_http_max_connections,
    default_tls_handshake_timeout_ms, http_limits, AcmeConfig, HttpTlsKeys,
};
use freya_edge::serve::ConnectionLimits;
use freya_shared::config::{check_socket_addr, ConfigProblem, Validate};

mod auth;
pub use auth::{parse_encryption_key, AuthConfig, MIN_JWT_SECRET_LEN};

/// Everything `freya control` needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub grpc: GrpcConfig,
    pub database: DatabaseConfig,
    /// Optional: a cluster needs none of it (mutual TLS and the default timings).
    #[serde(default)]
    pub edges: EdgesConfig,
    pub auth: AuthConfig,
    #[serde(default)]
    pub rate_limits: RateLimitConfig,
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    #[serde(default)]
    pub recordings: RecordingsConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
}

/// The retention sweep (each workspace's `retention` windows): how often it runs and how much
/// it deletes per workspace and kind in one run, so one run stays a short burst of small
/// transactions; a backlog drains over the following runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Seconds between sweeps (on every replica; they do not conflict).
    #[serde(default = "default_retention_interval_secs")]
    pub interval_secs: u32,
    /// Most recordings, transcript events and call records deleted per workspace per sweep.
    #[serde(default = "default_retention_batch")]
    pub batch: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            interval_secs: default_retention_interval_secs(),
            batch: default_retention_batch(),
        }
    }
}

fn default_retention_interval_secs() -> u32 {
    300
}

fn default_retention_batch() -> u32 {
    500
}

/// Where call recordings uploaded by edges are kept (one folder per workspace below `dir`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingsConfig {
    /// Created at start if missing; relative paths are relative to the working directory.
    #[serde(default = "default_recordings_dir")]
    pub dir: PathBuf,
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        Self {
            dir: default_recordings_dir(),
        }
    }
}

fn default_recordings_dir() -> PathBuf {
    PathBuf::from("recordings")
}

/// The webhook delivery task: how often it looks for due deliveries, how patiently it waits on a
/// receiver, how retries back off, and which targets subscriptions may name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// How often the queue is polled for due deliveries.
    #[serde(default = "default_webhook_poll_ms")]
    pub poll_interval_ms: u32,
    /// How long one attempt may take (connect, send, answer).
    #[serde(default = "default_webhook_timeout_ms")]
    pub timeout_ms: u32,
    /// The pause after the first failed attempt; it doubles with each further failure.
    #[serde(default = "default_webhook_retry_base_ms")]
    pub retry_base_ms: u32,
    /// The longest pause between two attempts.
    #[serde(default = "default_webhook_retry_max_ms")]
    pub retry_max_ms: u32,
    /// Whether subscriptions may target loopback, private and link-local addresses (and
    /// `localhost`). Off by default: a webhook must not become a way into the operator's network.
    #[serde(default)]
    pub allow_private_targets: bool,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: default_webhook_poll_ms(),
            timeout_ms: default_webhook_timeout_ms(),
            retry_base_ms: default_webhook_retry_base_ms(),
            retry_max_ms: default_webhook_retry_max_ms(),
            allow_private_targets: false,
        }
    }
}

fn default_webhook_poll_ms() -> u32 {
    1_000
}

fn default_webhook_timeout_ms() -> u32 {
    10_000
}

fn default_webhook_retry_base_ms() -> u32 {
    30_000
}

fn default_webhook_retry_max_ms() -> u32 {
    3_600_000
}

/// Token buckets in front of the API: a caller may send `burst` requests at once, then
/// `per_minute` a minute. Exceeding either answers 429 with `Retry-After`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests a minute per credential (API key or token).
    #[serde(default = "default_per_key_per_minute")]
    pub per_key_per_minute: u32,
    /// Requests a minute per client IP address, authenticated or not.
    #[serde(default = "default_per_ip_per_minute")]
    pub per_ip_per_minute: u32,
    /// How many requests may arrive at once before the per-minute rate applies.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_key_per_minute: default_per_key_per_minute(),
            per_ip_per_minute: default_per_ip_per_minute(),
            burst: default_burst(),
        }
    }
}

fn default_per_key_per_minute() -> u32 {
    1_200
}

fn default_per_ip_per_minute() -> u32 {
    2_400
}

fn default_burst() -> u32 {
    100
}

/// The REST API and dashboard listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_http_addr")]
    pub addr: String,
    /// Origins a browser may call the API from (`https://app.example.com`, or `*` for any);
    /// empty (the default) sends no CORS headers.
    #[serde(default)]
    pub cors_allowed_origins: Vec<String>,
    /// Longest from a request's first byte to the end of its headers (default 10 s: a client
    /// sends a head in one or two packets; slowloris trickles it forever).
    #[serde(default = "default_http_header_timeout_ms")]
    pub header_timeout_ms: u32,
    /// A keep-alive connection with no request in flight closes after this long (default 60 s:
    /// longer than browsers' and HTTP clients' own keep-alive, so they close first).
    #[serde(default = "default_http_idle_timeout_ms")]
    pub idle_timeout_ms: u32,
    /// Most connections one IP may hold open (default 256: an office behind one NAT, or a busy
    /// integration with a connection pool, stays well under it; one attacker cannot take the
    /// whole listener).
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: u32,
    /// Most connections open in all (default 4096, under a typical open-file limit with room
    /// for the database pool, the gRPC listener and recordings).
    #[serde(default = "default_http_max_connections")]
    pub max_connections: u32,
    /// HTTPS on the API and dashboard: the certificate chain (PEM), reloaded when it changes.
    #[serde(default)]
    pub tls_cert: Option<String>,
    /// The certificate's private key (PEM).
    #[serde(default)]
    pub tls_key: Option<String>,
    /// Longest a TLS handshake may take from accept (default 5 s); a client that connects and
    /// sends nothing is closed then.
    #[serde(default = "default_tls_handshake_timeout_ms")]
    pub tls_handshake_timeout_ms: u32,
    /// A certificate from an ACME CA instead of files (`[http.acme]`).
    #[serde(default)]
    pub acme: Option<AcmeConfig>,
    /// A plain-HTTP listener (`0.0.0.0:80`, say) answering every request with `308` to the
    /// same path on HTTPS, at the ACME domain when ACME is on (else the request's own host);
    /// with ACME on the challenge address, one listener does both. Needs HTTPS on. Off by
    /// default.
    #[serde(default)]
    pub http_redirect: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: default_http_addr(),
            cors_allowed_origins: Vec::new(),
            header_timeout_ms: default_http_header_timeout_ms(),
            idle_timeout_ms: default_http_idle_timeout_ms(),
            max_connections_per_ip: default_max_connections_per_ip(),
            max_connections: default_http_max_connections(),
            tls_cert: None,
            tls_key: None,
            tls_handshake_timeout_ms: default_tls_handshake_timeout_ms(),
            acme: None,
            http_redirect: None,
        }
    }
}

impl HttpConfig {
    /// The TLS keys, as both binaries' `[http]` have them.
    pub fn tls(&self) -> HttpTlsKeys<'_> {
        HttpTlsKeys {
            tls_cert: self.tls_cert.as_deref(),
            tls_key: self.tls_key.as_deref(),
            handshake_timeout_ms: self.tls_handshake_timeout_ms,
            acme: self.acme.as_ref(),
            http_redirect: self.http_redirect.as_deref(),
            public_url: None,
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

fn default_max_connections_per_ip() -> u32 {
    256
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
    /// Most connections one IP may hold open: an edge holds one or two; the rest of the slots
    /// are room for restarts and for several edges behind one NAT address.
    #[serde(default = "default_grpc_max_connections_per_ip")]
    pub max_connections_per_ip: u32,
    /// Most connections the listener holds open in all.
    #[serde(default = "default_grpc_max_connections")]
    pub max_connections: u32,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            addr: default_grpc_addr(),
            max_connections_per_ip: default_grpc_max_connections_per_ip(),
            max_connections: default_grpc_max_connections(),
        }
    }
}

fn default_grpc_max_connections_per_ip() -> u32 {
    16
}

fn default_grpc_max_connections() -> u32 {
    1024
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
    /// A PostgreSQL streaming replica of `url` (`postgres://...`), optional: call lists,
    /// resource lists and analytics read from it, to keep those scans off the primary; they may
    /// trail the primary by the replication delay. Writes and reads by id stay on `url`.
    #[serde(default)]
    pub replica_url: Option<String>,
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
    /// The dev-only shared-secret mode: when set (at least 16 characters), the gRPC listener
    /// runs in the clear and every edge presents this secret instead of a certificate. For
    /// `freya dev` and tests on one machine only; leave it out in a cluster, where edges enrol
    /// with join tokens and every link is mutual TLS.
    #[serde(default)]
    pub shared_secret: Option<String>,
    /// How long an edge's certificate is valid (default 12 h); the edge renews it at two thirds.
    #[serde(default = "default_certificate_lifetime_seconds")]
    pub certificate_lifetime_seconds: u32,
    /// Enrolment attempts one source address may make a minute (default 10), whatever their
    /// outcome: join tokens are 256-bit, so this only keeps floods off the database.
    #[serde(default = "default_enrolments_per_minute_per_ip")]
    pub enrolments_per_minute_per_ip: u32,
    /// How often the list of revoked certificates is read again, to see revocations made through
    /// other control-plane processes (this process's own apply at once).
    #[serde(default = "default_revocation_poll_ms")]
    pub revocation_poll_ms: u32,
    /// After a CA rotation (`POST /v1/edges/ca/rotate`), retire the old CA by itself this long
    /// after the rotation, instead of waiting for `POST /v1/edges/ca/retire`. At least
    /// `certificate_lifetime_seconds`, so that every edge has renewed onto the new CA by then;
    /// unset (the default), the old CA stays trusted until an admin retires it.
    #[serde(default)]
    pub ca_overlap_seconds: Option<u32>,
    #[serde(default = "default_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u32,
    /// An edge silent for this long is offline.
    #[serde(default = "default_offline_after_ms")]
    pub offline_after_ms: u32,
    /// How often configuration watches look for changes made by other control-plane processes.
    #[serde(default = "default_config_poll_ms")]
    pub config_poll_ms: u32,
    /// The oldest edge release served (`MAJOR.MINOR.PATCH`), optional: an edge announcing an
    /// older one is refused at registration. Without it, edges two or more majors behind this
    /// control plane are refused and all others served (see deploy/README.md, "Upgrades").
    #[serde(default)]
    pub min_version: Option<String>,
}

fn default_certificate_lifetime_seconds() -> u32 {
    12 * 3600
}

fn default_enrolments_per_minute_per_ip() -> u32 {
    10
}

fn default_revocation_poll_ms() -> u32 {
    5_000
}

impl Default for EdgesConfig {
    /// Mutual TLS with the default timings: what a cluster runs without an `[edges]` section.
    fn default() -> Self {
        Self::cluster(
            default_heartbeat_interval_ms(),
            default_offline_after_ms(),
            default_config_poll_ms(),
        )
    }
}

impl EdgesConfig {
    /// The settings every process shares, with the shared-secret mode off (mutual TLS) and the
    /// given liveness timings.
    pub fn cluster(heartbeat_interval_ms: u32, offline_after_ms: u32, config_poll_ms: u32) -> Self {
        Self {
            shared_secret: None,
            certificate_lifetime_seconds: default_certificate_lifetime_seconds(),
            enrolments_per_minute_per_ip: default_enrolments_per_minute_per_ip(),
            revocation_poll_ms: default_revocation_poll_ms(),
            ca_overlap_seconds: None,
            heartbeat_interval_ms,
            offline_after_ms,
            config_poll_ms,
            min_version: None,
        }
    }
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
        self.http.tls().problems(&mut problems);
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
                "grpc.max_connections_per_ip",
                self.grpc.max_connections_per_ip,
                1,
            ),
            ("grpc.max_connections", self.grpc.max_connections, 1),
            ("retention.interval_secs", self.retention.interval_secs, 1),
            ("retention.batch", self.retention.batch, 1),
        ] {
            if value < min {
                problems.push(ConfigProblem::new(key, format!("must be at least {min}")));
            }
        }
        check_socket_addr("grpc.addr", &self.grpc.addr, &mut problems);
        if crate::store::Engine::from_url(&self.database.url).is_err() {
            problems.push(ConfigProblem::new(
                "database.url",
                "must start with sqlite:// or postgres://",
            ));
        }
        if let Some(floor) = &self.edges.min_version {
            if crate::grpc::edge_version::Release::parse(floor).is_none() {
                problems.push(ConfigProblem::new(
                    "edges.min_version",
                    "must be a release number, MAJOR.MINOR.PATCH",
                ));
            }
        }
        if let Some(replica) = &self.database.replica_url {
            let postgres = |url: &str| {
                matches!(
                    crate::store::Engine::from_url(url),
                    Ok(crate::store::Engine::Postgres)
                )
            };
            if !postgres(replica) || !postgres(&self.database.url) {
                problems.push(ConfigProblem::new(
                    "database.replica_url",
                    "a replica needs postgres:// URLs, for it and for database.url",
                ));
            }
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
        if self
            .edges
            .shared_secret
            .as_ref()
            .is_some_and(|s| s.len() < MIN_SECRET_LEN)
        {
            problems.push(ConfigProblem::new(
                "edges.shared_secret",
                format!("must be at least {MIN_SECRET_LEN} characters"),
            ));
        }
        if self.edges.certificate_lifetime_seconds < 300 {
            problems.push(ConfigProblem::new(
                "edges.certificate_lifetime_seconds",
                "must be at least 300",
            ));
        }
        if self
            .edges
            .ca_overlap_seconds
            .is_some_and(|overlap| overlap < self.edges.certificate_lifetime_seconds)
        {
            problems.push(ConfigProblem::new(
                "edges.ca_overlap_seconds",
                "must be at least edges.certificate_lifetime_seconds, or edges still on the old \
                 CA are cut off",
            ));
        }
        if self.edges.enrolments_per_minute_per_ip == 0 {
            problems.push(ConfigProblem::new(
                "edges.enrolments_per_minute_per_ip",
                "must be at least 1",
            ));
        }
        if self.edges.revocation_poll_ms < 100 {
            problems.push(ConfigProblem::new(
                "edges.revocation_poll_ms",
                "must be at least 100",
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
        auth::check_auth(&self.auth, &mut problems);
        for (n, origin) in self.http.cors_allowed_origins.iter().enumerate() {
            let ok = origin == "*"
                || ((origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.ends_with('/')
                    && axum::http::HeaderValue::from_str(origin).is_ok());
            if !ok {
                problems.push(ConfigProblem::new(
                    format!("http.cors_allowed_origins[{n}]"),
                    "must be `*` or an origin like `https://app.example.com` (no path)",
                ));
            }
        }
        for (key, value) in [
            (
                "rate_limits.per_key_per_minute",
                self.rate_limits.per_key_per_minute,
            ),
            (
                "rate_limits.per_ip_per_minute",
                self.rate_limits.per_ip_per_minute,
            ),
            ("rate_limits.burst", self.rate_limits.burst),
        ] {
            if value == 0 {
                problems.push(ConfigProblem::new(key, "must be at least 1"));
            }
        }
        let hooks = &self.webhooks;
        for (key, value, least) in [
            ("webhooks.poll_interval_ms", hooks.poll_interval_ms, 10),
            ("webhooks.timeout_ms", hooks.timeout_ms, 100),
            ("webhooks.retry_base_ms", hooks.retry_base_ms, 10),
        ] {
            if value < least {
                problems.push(ConfigProblem::new(key, format!("must be at least {least}")));
            }
        }
        if self.recordings.dir.as_os_str().is_empty() {
            problems.push(ConfigProblem::new(
                "recordings.dir",
                "must name a directory",
            ));
        }
        if hooks.retry_max_ms < hooks.retry_base_ms {
            problems.push(ConfigProblem::new(
                "webhooks.retry_max_ms",
                "must not be less than webhooks.retry_base_ms",
            ));
        }
        problems
    }
}
