//! Starting and stopping a control plane: the store (migrated), the REST API and the gRPC service
//! for edges, each on its own listener, and the webhook delivery task, all stopped by one
//! cancellation token. The REST API is served by the edge's listener (`freya_edge::serve`),
//! which holds connections to `[http]`'s caps and header and idle timeouts. The cluster CA is
//! loaded (made on the first start); the gRPC listener is mutual TLS under it, unless
//! `edges.shared_secret` asks for `freya dev`'s plaintext shared-secret mode.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use freya_edge::serve::{serve_https, ConnectionGate, LimitedListener};
use freya_shared::private_files;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState, RateLimiter, TokenIssuer};
use crate::cluster::ClusterBoard;
use crate::config::ControlConfig;
use crate::grpc::{
    AttemptLimiter, CommandHub, EdgeAuth, EdgeControlService, EdgeSecret, EdgeServiceSettings,
    EnrolmentService, EnrolmentSettings,
};
use crate::grpc_listener;
use crate::metrics::ControlMetrics;
use crate::store::TrustEvent;
use crate::store::{PoolSize, Store};
use crate::trust::anchors::ClusterTrust;
use crate::trust::revoked::RevokedSerials;
use crate::webhooks::DeliveryWorker;

/// How often the database is probed for `freya_control_database_up`.
const DATABASE_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// A running control plane.
pub struct ControlPlane {
    pub http_addr: SocketAddr,
    /// Where the plain-HTTP listener redirecting to HTTPS is bound (`http.http_redirect`).
    pub http_redirect_addr: Option<SocketAddr>,
    pub grpc_addr: SocketAddr,
    pub store: Store,
    pub commands: CommandHub,
    /// The cluster's certificate authority (tests issue certificates with it).
    pub ca: ClusterTrust,
    shutdown: CancellationToken,
    tasks: JoinSet<anyhow::Result<()>>,
}

/// Writes a handshake refused for its certificate to the trust audit, at most
/// [`REFUSAL_AUDITS_PER_MINUTE`] a minute (a flood of bad handshakes is logged, not stored).
fn refused_handshake(store: &Store, peer: SocketAddr, reason: String) {
    static WINDOW: std::sync::Mutex<Option<(std::time::Instant, u32)>> =
        std::sync::Mutex::new(None);
    let now = std::time::Instant::now();
    let admitted = WINDOW.lock().is_ok_and(|mut window| {
        let (start, count) = window.get_or_insert((now, 0));
        if now.duration_since(*start) >= Duration::from_secs(60) {
            *start = now;
            *count = 0;
        }
        *count += 1;
        *count <= REFUSAL_AUDITS_PER_MINUTE
    });
    tracing::warn!(%peer, %reason, "refused an edge's TLS handshake for its certificate");
    if !admitted {
        return;
    }
    let store = store.clone();
    tokio::spawn(async move {
        let event = TrustEvent {
            action: "tls.handshake",
            outcome: "bad_certificate",
            source_ip: Some(peer.ip().to_string()),
            detail: serde_json::json!({ "reason": reason }),
            ..TrustEvent::default()
        };
        if let Err(e) = store.record_trust_event(event).await {
            tracing::error!(error = %e, "could not write the trust audit");
        }
    });
}

/// Refused handshakes written to the trust audit per minute, at most.
const REFUSAL_AUDITS_PER_MINUTE: u32 = 30;

/// Longest a graceful stop waits for open requests before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl ControlPlane {
    /// Connects to and migrates the store, binds both listeners and starts serving.
    pub async fn start(config: &ControlConfig) -> anyhow::Result<Self> {
        Self::start_with(config, None).await
    }

    /// [`start`](Self::start), serving `extra` routes beside the API (`freya dev`'s demo desk).
    pub async fn start_with(
        config: &ControlConfig,
        extra: Option<axum::Router>,
    ) -> anyhow::Result<Self> {
        let size = PoolSize {
            min_connections: config.database.min_connections,
            max_connections: config.database.max_connections,
        };
        let store = Store::connect(&config.database.url, size)
            .await
            .context("while connecting to the database (database.url)")?;
        let store = match &config.database.replica_url {
            Some(replica) => store
                .with_replica(replica, size)
                .await
                .context("while connecting to the read replica (database.replica_url)")?,
            None => store,
        };
        let (key, previous) = config.auth.encryption_keys().context(
            "auth.encryption_key and auth.previous_encryption_keys must be 64 hex characters each",
        )?;
        let store = store.with_encryption_keys(&key, &previous);
        store
            .migrate()
            .await
            .context("while migrating the database")?;
        // Recordings are customer data: owner-only, and corrected if an earlier run left them
        // looser.
        private_files::create_dir(&config.recordings.dir)
            .and_then(|()| private_files::restrict_tree(&config.recordings.dir))
            .with_context(|| {
                format!(
                    "while creating recordings.dir {}",
                    config.recordings.dir.display()
                )
            })?;
        let http = TcpListener::bind(&config.http.addr)
            .await
            .with_context(|| format!("while binding http.addr {}", config.http.addr))?;
        let grpc = TcpListener::bind(&config.grpc.addr)
            .await
            .with_context(|| format!("while binding grpc.addr {}", config.grpc.addr))?;
        let http_addr = http.local_addr()?;
        let grpc_addr = grpc.local_addr()?;
        let ca = ClusterTrust::load_or_create(&store)
            .await
            .context("while loading the cluster's certificate authority")?;
        store
            .ensure_recording_key()
            .await
            .context("while loading the recording key edges seal recordings to")?;
        let revoked = RevokedSerials::default();
        revoked
            .refresh(&store)
            .await
            .context("while reading the revoked certificates")?;
        let shutdown = CancellationToken::new();
        let https = freya_edge::serve::tls::from_config(
            &config.http.listener().tls,
            "REST API",
            http_addr,
            &shutdown,
        )
        .await?;
        let http_redirect_addr = https.as_ref().and_then(|h| h.redirect_addr());
        let metrics = Arc::new(ControlMetrics::new(store.storage_health()));
        metrics.certificates.watch(
            "ca",
            freya_edge::metrics::certificates::CertificateSource::Pem(
                ca.certificate_pem().to_owned(),
            ),
        );
        let commands = CommandHub::default();
        let relay = crate::grpc::CommandRelay::new(store.clone(), commands.clone());
        let cluster = ClusterBoard::default();
        let trunk_health = crate::trunk_health::TrunkHealthBoard::default();
        let mut tasks = JoinSet::new();

        let app = api::router(AppState {
            store: store.clone(),
            metrics: metrics.clone(),
            offline_after_ms: i64::from(config.edges.offline_after_ms),
            tokens: Arc::new(TokenIssuer::new(
                &config.auth.jwt_secret,
                config.auth.token_ttl_seconds,
            )),
            commands: commands.clone(),
            relay: relay.clone(),
            limiter: Arc::new(RateLimiter::new(&config.rate_limits)),
            login_limits: Arc::default(),
            cors_allowed_origins: config.http.cors_allowed_origins.clone(),
            allow_private_webhook_targets: config.webhooks.allow_private_targets,
            recordings_dir: config.recordings.dir.clone(),
            cluster: cluster.clone(),
            trunk_health: trunk_health.clone(),
            ca: ca.clone(),
            revoked: revoked.clone(),
            provider_tests: Arc::new(
                api::ProviderTests::new(config.webhooks.allow_private_targets)
                    .context("while building the provider tests' HTTP client")?,
            ),
        });
        let app = match extra {
            Some(extra) => extra.merge(app),
            None => app,
        };
        let http = LimitedListener {
            listener: http,
            limits: config.http.listener().limits(),
        };
        let stop = shutdown.clone();
        tasks.spawn(async move {
            serve_https(http, https, app, "REST API", stop).await;
            Ok(())
        });

        let enrolment = Arc::new(EnrolmentSettings {
            ca: ca.clone(),
            certificate_lifetime: Duration::from_secs(u64::from(
                config.edges.certificate_lifetime_seconds,
            )),
            limiter: AttemptLimiter::new(config.edges.enrolments_per_minute_per_ip),
        });
        let secret = config.edges.shared_secret.as_deref();
        let service = EdgeControlService::into_server(
            store.clone(),
            EdgeServiceSettings {
                heartbeat_interval_ms: config.edges.heartbeat_interval_ms,
                offline_after_ms: i64::from(config.edges.offline_after_ms),
                config_poll_interval: Duration::from_millis(u64::from(config.edges.config_poll_ms)),
                recordings_dir: config.recordings.dir.clone(),
                min_edge_version: config
                    .edges
                    .min_version
                    .as_deref()
                    .and_then(crate::grpc::edge_version::Release::parse),
                renewal: secret.is_none().then(|| enrolment.clone()),
                revoked: revoked.clone(),
                trunk_health,
            },
            commands.clone(),
            metrics.clone(),
            match secret {
                Some(secret) => EdgeAuth::Secret(EdgeSecret::new(secret)),
                None => EdgeAuth::Certificate(revoked.clone()),
            },
            cluster,
            shutdown.clone(),
        );
        let grpc_gate = ConnectionGate::new(
            "edge gRPC",
            config.grpc.max_connections_per_ip,
            config.grpc.max_connections,
        );
        let stop = shutdown.clone();
        let server = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(grpc_listener::KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(grpc_listener::KEEPALIVE_TIMEOUT));
        if secret.is_some() {
            tracing::warn!(
                "edges.shared_secret is set: the edge gRPC link runs the dev-only shared-secret mode \
                 (plaintext, one secret for every edge); a cluster leaves it out and uses mutual TLS"
            );
            let mut server = server;
            tasks.spawn(async move {
                server
                    .add_service(service)
                    .serve_with_incoming_shutdown(
                        grpc_listener::gated(grpc, grpc_gate),
                        stop.cancelled_owned(),
                    )
                    .await
                    .context("gRPC server for edges failed")
            });
        } else {
            let tls = crate::trust::tls::server_config(&ca, revoked.clone())
                .context("while setting up the edge gRPC listener's TLS")?;
            let refresh = revoked.clone().run(
                store.clone(),
                Duration::from_millis(u64::from(config.edges.revocation_poll_ms)),
                shutdown.clone(),
            );
            tasks.spawn(async move {
                refresh.await;
                Ok(())
            });
            // Another replica's CA rotation is seen at the same pace as its revocations.
            let anchors = ca.clone().run(
                store.clone(),
                Duration::from_millis(u64::from(config.edges.revocation_poll_ms)),
                config
                    .edges
                    .ca_overlap_seconds
                    .map(|s| Duration::from_secs(u64::from(s))),
                shutdown.clone(),
            );
            tasks.spawn(async move {
                anchors.await;
                Ok(())
            });
            let audit_store = store.clone();
            let incoming = grpc_listener::gated_tls(
                grpc,
                grpc_gate,
                tokio_rustls::TlsAcceptor::from(tls),
                Arc::new(move |peer, reason| refused_handshake(&audit_store, peer, reason)),
                revoked.clone(),
            );
            let enrol = freya_proto::v1::edge_enrolment_server::EdgeEnrolmentServer::new(
                EnrolmentService {
                    store: store.clone(),
                    settings: enrolment,
                },
            )
            .max_decoding_message_size(crate::trust::MAX_CSR_BYTES + 1024);
            let mut server = server;
            tasks.spawn(async move {
                server
                    .add_service(service)
                    .add_service(enrol)
                    .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                    .await
                    .context("gRPC server for edges failed")
            });
            tracing::info!(cluster = %ca.cluster_id(), fingerprint = %ca.fingerprint(), "edges connect over mutual TLS under the cluster CA");
        }
        let worker = DeliveryWorker::new(
            store.clone(),
            config.webhooks.clone(),
            metrics.webhooks.clone(),
        )
        .context("while starting the webhook delivery task")?;
        tasks.spawn(worker.run(shutdown.clone()));
        let (watched, stop) = (store.clone(), shutdown.clone());
        tasks.spawn(async move {
            metrics
                .watch_database(watched, DATABASE_PROBE_INTERVAL, stop)
                .await;
            Ok(())
        });
        let retrier = crate::grpc::CallRetrier {
            store: store.clone(),
            commands: commands.clone(),
            offline_after_ms: i64::from(config.edges.offline_after_ms),
        };
        // Commands queued for this process's edges by requests another replica served.
        tasks.spawn(relay.run(shutdown.clone()));
        // Outbound calls waiting to be handed to an edge, whichever replica claimed them.
        tasks.spawn(retrier.clone().run(shutdown.clone()));
        tasks.spawn(crate::edge_watch::run(
            retrier,
            config.edges.offline_after_ms,
            shutdown.clone(),
        ));
        tasks.spawn(crate::retention::run(
            store.clone(),
            config.recordings.dir.clone(),
            config.retention.clone(),
            shutdown.clone(),
        ));
        tracing::info!(%http_addr, %grpc_addr, "control plane serving");
        Ok(Self {
            http_addr,
            http_redirect_addr,
            grpc_addr,
            store,
            commands,
            ca,
            shutdown,
            tasks,
        })
    }

    /// A token that stops this control plane when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until a server fails or the token is cancelled, then stops everything.
    pub async fn run_until_stopped(mut self) -> anyhow::Result<()> {
        let outcome = tokio::select! {
            _ = self.shutdown.cancelled() => Ok(()),
            Some(done) = self.tasks.join_next() => match done {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(anyhow::anyhow!("a control-plane task panicked: {e}")),
            },
        };
        self.stop().await;
        outcome
    }

    /// Stops serving (gracefully, within a grace period) and closes the store.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
            tracing::warn!("open connections outlived the shutdown grace period; dropping them");
            self.tasks.abort_all();
        }
        self.store.close().await;
    }
}
