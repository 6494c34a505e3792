//! The control plane's configuration (`freya control --config FILE`), overridable by `FREYA_*`
//! environment variables (`FREYA_DATABASE__URL`, `FREYA_EDGES__SHARED_SECRET`, ...).
//!
//! One struct per section, each in a file of its own below `config/`; this file holds the whole
//! and the checks that run once at start, with errors naming the key.

use serde::Deserialize;

use freya_shared::config::{check_socket_addr, ConfigProblem, Validate};

mod auth;
mod database;
mod edges;
mod grpc;
mod http;
mod recordings;
mod retention;
mod webhooks;

pub use auth::{parse_encryption_key, AuthConfig, MIN_JWT_SECRET_LEN};
pub use database::DatabaseConfig;
pub use edges::{EdgesConfig, MIN_SECRET_LEN};
pub use grpc::GrpcConfig;
pub use http::{HttpConfig, RateLimitConfig};
pub use recordings::RecordingsConfig;
pub use retention::RetentionConfig;
pub use webhooks::WebhooksConfig;

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

impl Validate for ControlConfig {
    fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        self.http.listener().problems(&mut problems);
        for (key, value, min) in [
            (
                "grpc.max_connections_per_ip",
                self.grpc.max_connections_per_ip,
                1,
            ),
            ("grpc.max_connections", self.grpc.max_connections, 1),
            ("retention.interval_secs", self.retention.interval_secs, 1),
            ("retention.batch", self.retention.batch, 1),
            ("database.max_connections", self.database.max_connections, 1),
            (
                "edges.certificate_lifetime_seconds",
                self.edges.certificate_lifetime_seconds,
                300,
            ),
            (
                "edges.enrolments_per_minute_per_ip",
                self.edges.enrolments_per_minute_per_ip,
                1,
            ),
            (
                "edges.revocation_poll_ms",
                self.edges.revocation_poll_ms,
                100,
            ),
            (
                "edges.heartbeat_interval_ms",
                self.edges.heartbeat_interval_ms,
                100,
            ),
            ("edges.config_poll_ms", self.edges.config_poll_ms, 50),
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
        if self.edges.offline_after_ms <= self.edges.heartbeat_interval_ms {
            problems.push(ConfigProblem::new(
                "edges.offline_after_ms",
                "must be longer than edges.heartbeat_interval_ms",
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
