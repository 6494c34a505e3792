//! What the integration tests share: a fresh database on either engine, configurations on
//! 127.0.0.1 port 0, and polling until a condition holds (with a deadline, never a bare sleep).
//!
//! PostgreSQL tests need `FREYA_TEST_POSTGRES_URL` (a server the test script starts); each test
//! creates its own database there and drops it afterwards.

#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use freya_control::config::{
    AuthConfig, ControlConfig, DatabaseConfig, EdgesConfig, GrpcConfig, HttpConfig,
    RateLimitConfig, RecordingsConfig, WebhooksConfig,
};
use freya_edge::config::{ControlLinkConfig, EdgeHttpConfig, EgressConfig, RtpConfig, SipConfig};
use freya_edge::EdgeConfig;
use sqlx::Connection;

pub mod baresip;
pub mod caller;
pub mod desk;
pub mod dev_cluster;
pub mod flows;
pub mod http;
pub mod kamailio;
pub mod keypad;
pub mod local_http;
pub mod logs;
pub mod mesh_probe;
pub mod party;
pub mod pcap;
pub mod raw_sip;
pub mod recorded;
pub mod retry_cluster;
pub mod route_table;
pub mod scripted_trunk;
pub mod tones;
pub mod twilio;
pub mod two_way_audio;
pub mod voice_call;
pub mod waiting_calls;
pub mod webhook_sink;
pub mod wire_events;
pub mod world;

pub const SECRET: &str = "test-shared-secret-0123456789";
/// The JWT signing secret of test control planes.
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123456789";
/// The credential-encryption key of test control planes (32 bytes in hex).
pub const ENCRYPTION_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// A control plane on loopback over a fresh database of `backend`: how most tests start.
pub async fn control_plane(backend: Backend) -> (TestDb, freya_control::server::ControlPlane) {
    let db = TestDb::new(backend).await;
    let control = freya_control::server::ControlPlane::start(&control_config(&db.url))
        .await
        .expect("control starts");
    (db, control)
}

/// A join token of `control`'s CA valid for `ttl`: what an edge in cluster mode enrols with.
pub async fn join_token(control: &freya_control::server::ControlPlane, ttl: Duration) -> String {
    let maker = freya_control::trust::join::TokenMaker {
        workspace_id: "test",
        actor: "test",
        source_ip: None,
    };
    let (token, _) =
        freya_control::trust::join::make_join_token(&control.store, &control.ca, &maker, ttl)
            .await
            .expect("token");
    token.to_text()
}

/// Registers edge `id` of `region` straight in the store, as a connected edge would: for tests
/// of what the control plane does with edges' records, without running one.
pub async fn register_edge(control: &freya_control::server::ControlPlane, id: &str, region: &str) {
    control
        .store
        .register_edge(&freya_control::store::EdgeRegistration {
            id: id.into(),
            region: region.into(),
            sip_addr: "127.0.0.1:5060".into(),
            rtp_addr: "127.0.0.1".into(),
            http_addr: "127.0.0.1:8081".into(),
            version: "test".into(),
            health: Default::default(),
        })
        .await
        .expect("edge");
}

/// Creates `agent` in the scoped workspace and routes `number` (in every region) to it.
pub async fn agent_on_number(
    control: &freya_control::server::ControlPlane,
    scope: &freya_control::store::WorkspaceScope,
    number: &str,
    agent: &freya_shared::model::AgentSpec,
) -> freya_control::store::Agent {
    agent_on_number_in(control, scope, number, None, agent).await
}

/// [`agent_on_number`] with the number's home `region` (`None`: every region).
pub async fn agent_on_number_in(
    control: &freya_control::server::ControlPlane,
    scope: &freya_control::store::WorkspaceScope,
    number: &str,
    region: Option<&str>,
    agent: &freya_shared::model::AgentSpec,
) -> freya_control::store::Agent {
    let agent = control
        .store
        .create_agent(scope, "test", agent)
        .await
        .expect("agent");
    control
        .store
        .create_number(
            scope,
            "test",
            &freya_shared::model::PhoneNumberSpec {
                number: number.into(),
                region: region.map(Into::into),
                regions: Vec::new(),
                agent_id: Some(agent.id.clone()),
                workflow_id: None,
            },
        )
        .await
        .expect("number");
    agent
}

/// A workspace `name` in `control` whose `agent` answers number `demo`: its scope and the agent.
pub async fn demo_workspace(
    control: &freya_control::server::ControlPlane,
    name: &str,
    agent: &freya_shared::model::AgentSpec,
) -> (
    freya_control::store::WorkspaceScope,
    freya_control::store::Agent,
) {
    let workspace_id = control
        .store
        .create_workspace(name)
        .await
        .expect("workspace");
    let scope = freya_control::store::WorkspaceScope { workspace_id };
    let agent = agent_on_number(control, &scope, "demo", agent).await;
    (scope, agent)
}

/// An edge linked to `control`, its configuration changed by `change`, once it routes number
/// `demo`; and its data directory.
pub async fn demo_edge(
    control: &freya_control::server::ControlPlane,
    change: impl FnOnce(&mut EdgeConfig),
) -> (freya_edge::Edge, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = edge_config(dir.path(), control.grpc_addr, SECRET);
    change(&mut config);
    let edge = freya_edge::Edge::start(&config).await.expect("edge starts");
    until_routed(&edge, "demo").await;
    (edge, dir)
}

/// Waits until `edge` routes calls to `number`, i.e. holds a configuration that has it.
pub async fn until_routed(edge: &freya_edge::Edge, number: &str) {
    until_edge_holds(edge, "the edge to learn the number", |snapshot| {
        snapshot.route(number).is_some()
    })
    .await;
}

/// The configuration the control plane gives edges of region `local` (every test edge's)
/// now, as the store builds it: what an edge would run once it has caught up.
pub async fn local_snapshot(
    control: &freya_control::server::ControlPlane,
) -> freya_shared::snapshot::EdgeConfigSnapshot {
    control
        .store
        .edge_snapshot("local")
        .await
        .expect("snapshot")
}

/// Waits (up to 10 s) until the configuration `edge` holds passes `check`: an edge learns what
/// the control plane changed a moment later, and a test must not race it. Panics naming `what`.
pub async fn until_edge_holds(
    edge: &freya_edge::Edge,
    what: &str,
    check: impl Fn(&freya_shared::snapshot::EdgeConfigSnapshot) -> bool,
) {
    let state = &edge.state;
    let check = &check;
    eventually(Duration::from_secs(10), what, || async move {
        check(&state.snapshot()).then_some(())
    })
    .await;
}

/// Which engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    drop_pg: Option<(String, String)>,
}

impl TestDb {
    /// A fresh, empty database. Panics (failing the test) when PostgreSQL is asked for and no
    /// server is configured: a skipped engine must never look like a pass.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("freya.db").display()
                );
                Self {
                    url,
                    _dir: Some(dir),
                    drop_pg: None,
                }
            }
            Backend::Postgres => {
                let admin = std::env::var("FREYA_TEST_POSTGRES_URL").expect(
                    "FREYA_TEST_POSTGRES_URL is not set: run the suite with deploy/test.sh, which starts PostgreSQL",
                );
                let name = format!("freya_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("connect to the test PostgreSQL server");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create a test database");
                conn.close().await.ok();
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                Self {
                    url: format!("{base}/{name}"),
                    _dir: None,
                    drop_pg: Some((admin, name)),
                }
            }
        }
    }

    /// The store on this database, migrated, with a pool of at most three connections: for
    /// tests of the store alone, with no control plane around it.
    pub async fn migrated_store(&self) -> freya_control::store::Store {
        let pool = freya_control::store::PoolSize {
            min_connections: 0,
            max_connections: 3,
        };
        let store = freya_control::store::Store::connect(&self.url, pool)
            .await
            .expect("store");
        store.migrate().await.expect("migrate");
        store
    }

    /// One text column of one row, read straight from the database (what is really stored).
    pub async fn read_text(&self, sql: &str, id: &str) -> String {
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&self.url)
            .await
            .expect("connect to the test database");
        sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .expect("read the row")
    }

    /// Drops a PostgreSQL test database (SQLite's goes with its temp dir).
    pub async fn cleanup(self) {
        if let Some((admin, name)) = &self.drop_pg {
            if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
}

/// A control plane on loopback with fast heartbeats and polling.
pub fn control_config(db_url: &str) -> ControlConfig {
    ControlConfig {
        http: HttpConfig {
            addr: "127.0.0.1:0".into(),
            cors_allowed_origins: Vec::new(),
            ..HttpConfig::default()
        },
        grpc: GrpcConfig {
            addr: "127.0.0.1:0".into(),
            ..GrpcConfig::default()
        },
        database: DatabaseConfig {
            url: db_url.into(),
            replica_url: None,
            min_connections: 1,
            max_connections: 5,
        },
        edges: EdgesConfig {
            shared_secret: Some(SECRET.into()),
            ..EdgesConfig::cluster(200, 2_000, 200)
        },
        auth: AuthConfig {
            jwt_secret: JWT_SECRET.into(),
            token_ttl_seconds: 600,
            encryption_key: ENCRYPTION_KEY.into(),
            previous_encryption_keys: Vec::new(),
        },
        // Generous: tests that exercise the limits set their own.
        rate_limits: RateLimitConfig {
            per_key_per_minute: 60_000,
            per_ip_per_minute: 60_000,
            burst: 10_000,
        },
        // Fast retries and loopback receivers, for the webhook tests.
        webhooks: WebhooksConfig {
            poll_interval_ms: 50,
            timeout_ms: 2_000,
            retry_base_ms: 100,
            retry_max_ms: 400,
            allow_private_targets: true,
        },
        // Each control plane keeps its recordings apart; tests that read them set their own.
        recordings: RecordingsConfig {
            dir: std::env::temp_dir().join(format!(
                "freya-test-recordings-{}",
                uuid::Uuid::now_v7().simple()
            )),
        },
        retention: Default::default(),
    }
}

/// An edge in region `local` linked to the control plane at `grpc_addr`.
pub fn edge_config(data_dir: &Path, grpc_addr: std::net::SocketAddr, secret: &str) -> EdgeConfig {
    EdgeConfig {
        id: Some(format!("edge-{}", uuid::Uuid::now_v7().simple())),
        region: "local".into(),
        data_dir: data_dir.to_owned(),
        capacity: 10,
        control: ControlLinkConfig {
            url: format!("http://{grpc_addr}"),
            urls: Vec::new(),
            shared_secret: Some(secret.into()),
            join_token: None,
            cert_dir: None,
            connect_timeout_ms: 1_000,
            max_backoff_ms: 400,
        },
        sip: SipConfig {
            addr: "127.0.0.1:0".into(),
            public_addr: None,
            ring_ms: 0,
            // The tests' scripted trunks answer the INVITEs they expect, not pings: a test of
            // trunk health (`trunk_health.rs`) turns them on.
            options_interval_ms: 0,
            ..SipConfig::default()
        },
        rtp: RtpConfig {
            ip: None,
            public_ip: None,
            ip_v6: None,
            public_ip_v6: None,
            port_min: 30_000,
            port_max: 39_999,
            inactivity_timeout_ms: 5_000,
            hold_timeout_ms: 60_000,
            rtcp_interval_ms: 500,
            codecs: vec!["pcmu".into(), "pcma".into(), "opus".into()],
        },
        srtp: Default::default(),
        http: EdgeHttpConfig {
            addr: "127.0.0.1:0".into(),
            public_url: None,
            ..EdgeHttpConfig::default()
        },
        // The tests' fake providers, tools and functions listen on 127.0.0.1.
        legs: Default::default(),
        drain: Default::default(),
        metrics: Default::default(),
        egress: EgressConfig {
            allow_private_targets: true,
            proxy: None,
        },
        cluster: Default::default(),
        mesh: Default::default(),
    }
}

/// Polls `check` every 20 ms until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs each named `async fn(Backend)` of a test file as two tests, one on SQLite and one on
/// PostgreSQL. Starting the list with `multi_thread;` gives each a two-thread runtime (tests that
/// run an edge in-process need one).
#[allow(unused_macros)]
macro_rules! on_both_engines {
    (multi_thread; $($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Sqlite).await })*
        }
        mod on_postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::Postgres).await })*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test]
            async fn $name() { super::$name(super::Backend::Sqlite).await })*
        }
        mod on_postgres {
            $(#[tokio::test]
            async fn $name() { super::$name(super::Backend::Postgres).await })*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_engines;

/// The workspace's one call, once it has ended, and its events (tests that place one call).
pub async fn the_ended_call(
    store: &freya_control::store::Store,
    scope: &freya_control::store::WorkspaceScope,
) -> (
    freya_control::store::CallRecord,
    Vec<freya_control::store::StoredEvent>,
) {
    let calls = eventually(Duration::from_secs(15), "the call to end", || {
        let (store, scope) = (store.clone(), scope.clone());
        async move {
            let calls = store.calls(&scope, 10).await.ok()?;
            (calls.len() == 1 && calls[0].ended_at_ms.is_some()).then_some(calls)
        }
    })
    .await;
    let events = store
        .call_events(scope, &calls[0].id)
        .await
        .expect("events");
    (calls[0].clone(), events)
}

/// The agent's lines of a call's transcript (`call.transcript` events with the agent's role),
/// as their payloads, in order.
pub fn agent_lines(events: &[freya_control::store::StoredEvent]) -> Vec<&serde_json::Value> {
    events
        .iter()
        .filter(|e| e.kind == "call.transcript" && e.payload["role"] == "agent")
        .map(|e| &e.payload)
        .collect()
}

/// A TCP connection to `to` from the loopback address `ip` (any of 127.0.0.0/8): a test can be
/// several clients, each from an address of its own, as per-address limits see them.
pub async fn connect_from(ip: [u8; 4], to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(std::net::SocketAddr::new(std::net::IpAddr::from(ip), 0))
        .expect("bind a loopback address");
    socket.connect(to).await.expect("connect")
}

/// An analytics query of hourly buckets from `at_ms - reach_ms` to `at_ms + reach_ms`, grouped
/// by `group`: the window a test's calls fall in.
pub fn hourly_analytics(
    at_ms: i64,
    reach_ms: i64,
    group: freya_control::store::AnalyticsGroup,
) -> freya_control::store::AnalyticsQuery {
    freya_control::store::AnalyticsQuery {
        from_ms: at_ms - reach_ms,
        to_ms: at_ms + reach_ms,
        interval_ms: 3_600_000,
        group,
    }
}
