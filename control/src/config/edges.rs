//! `[edges]`: how edges authenticate (mutual TLS, or the dev-only shared secret), their
//! certificates' lifetime and the CA rotation's overlap, and how their liveness is judged.

use serde::Deserialize;

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
