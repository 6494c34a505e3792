//! The control plane the benchmark examples start: loopback on free ports, a database of the
//! run's own, fixed secrets, rate limits out of the way (a benchmark measures the server, not the
//! limiter) and recordings inside the run's temporary directory.

use std::path::Path;

use freya_control::config::{
    AuthConfig, ControlConfig, DatabaseConfig, EdgesConfig, GrpcConfig, HttpConfig,
    RateLimitConfig, RecordingsConfig, WebhooksConfig,
};

/// A control plane on `database_url` with `max_connections` pooled connections, keeping
/// recordings under `dir`.
pub fn bench_config(database_url: &str, max_connections: u32, dir: &Path) -> ControlConfig {
    ControlConfig {
        http: HttpConfig {
            addr: "127.0.0.1:0".into(),
            ..HttpConfig::default()
        },
        grpc: GrpcConfig {
            addr: "127.0.0.1:0".into(),
            ..GrpcConfig::default()
        },
        database: DatabaseConfig {
            url: database_url.into(),
            replica_url: None,
            min_connections: max_connections.min(4),
            max_connections,
        },
        edges: EdgesConfig {
            shared_secret: Some("bench-shared-secret-0123456789".into()),
            ..EdgesConfig::cluster(2_000, 10_000, 1_000)
        },
        auth: AuthConfig {
            jwt_secret: "bench-jwt-secret-0123456789abcdef0123456789".into(),
            token_ttl_seconds: 600,
            encryption_key: "00".repeat(32),
            previous_encryption_keys: Vec::new(),
        },
        rate_limits: RateLimitConfig {
            per_key_per_minute: u32::MAX / 2,
            per_ip_per_minute: u32::MAX / 2,
            burst: u32::MAX / 2,
        },
        webhooks: WebhooksConfig::default(),
        recordings: RecordingsConfig {
            dir: dir.join("recordings"),
        },
        retention: Default::default(),
    }
}
