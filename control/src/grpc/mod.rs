//! The gRPC service edges connect to: registration and heartbeats, the configuration watch, the
//! call-event stream, the command stream and recording uploads. Every stream ends when the control plane shuts down,
//! so a graceful stop does not wait on an edge that never hangs up.

mod auth;
mod cluster;
mod commands;
pub(crate) mod edge_version;
mod enrolment;
mod events;
pub(crate) mod recordings;
mod relay;
mod retry;
mod spool_ingest;
mod trunk_health;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::cluster::ClusterBoard;
use crate::metrics::ControlMetrics;
use crate::store::{EdgeProviderRegistration, EdgeRegistration, Store, StoreError};
use freya_proto::v1::edge_control_server::{EdgeControl, EdgeControlServer};
use freya_proto::v1::{
    CallEvent, CertificateRequest, ClusterReport, ClusterReportAck, CommandsRequest, ConfigUpdate,
    EdgeCommand, EventAck, HeartbeatRequest, HeartbeatResponse, IssuedCertificate, RecordingChunk,
    RecordingStored, RegisterRequest, RegisterResponse, TrunkHealthAck, TrunkHealthReport,
    TrunkTestAck, TrunkTestResult, WatchConfigRequest,
};
use freya_shared::model::EdgeHealth;

pub(crate) use auth::{EdgeAuth, EdgeSecret};
pub use commands::CommandHub;
pub(crate) use enrolment::{AttemptLimiter, EnrolmentService, EnrolmentSettings};
pub(crate) use relay::{CommandRelay, Delivery, RelayError};
pub(crate) use retry::CallRetrier;
pub(crate) use trunk_health::check_of;

/// Settings of the edge service, from the `[edges]` config section.
#[derive(Debug, Clone)]
pub(crate) struct EdgeServiceSettings {
    pub heartbeat_interval_ms: u32,
    /// `edges.offline_after_ms`: which edges count as online when a new edge asks for peers.
    pub offline_after_ms: i64,
    /// How often a configuration watch re-reads the version, to see changes committed by other
    /// control-plane processes (changes made by this one arrive at once).
    pub config_poll_interval: Duration,
    /// `recordings.dir`: where uploaded recordings are kept.
    pub recordings_dir: PathBuf,
    /// `edges.min_version`: edges announcing an older release are refused at registration.
    pub min_edge_version: Option<edge_version::Release>,
    /// The cluster CA and certificate lifetime for renewals; `None` in the shared-secret mode.
    pub renewal: Option<Arc<EnrolmentSettings>>,
    /// The revocation list every command stream hands its edge (and again on each change).
    pub revoked: crate::trust::revoked::RevokedSerials,
    /// Where `ReportTrunkHealth` puts what edges say of their trunks (shared with the API).
    pub trunk_health: crate::trunk_health::TrunkHealthBoard,
}

/// The service behind `EdgeControl`.
pub(crate) struct EdgeControlService {
    store: Store,
    settings: EdgeServiceSettings,
    commands: CommandHub,
    metrics: Arc<ControlMetrics>,
    /// What the edges' gossip says about each edge (`ReportCluster`, shown by `GET /v1/edges`).
    cluster: ClusterBoard,
    /// What the edges' OPTIONS pings say about each trunk (`ReportTrunkHealth`).
    trunk_health: crate::trunk_health::TrunkHealthBoard,
    shutdown: CancellationToken,
}

impl EdgeControlService {
    /// A tonic server for this service, guarded by `auth`.
    pub(crate) fn into_server(
        store: Store,
        settings: EdgeServiceSettings,
        commands: CommandHub,
        metrics: Arc<ControlMetrics>,
        auth: EdgeAuth,
        cluster: ClusterBoard,
        shutdown: CancellationToken,
    ) -> tonic::service::interceptor::InterceptedService<EdgeControlServer<Self>, EdgeAuth> {
        let trunk_health = settings.trunk_health.clone();
        let service = Self {
            store,
            settings,
            commands,
            metrics,
            cluster,
            trunk_health,
            shutdown,
        };
        EdgeControlServer::with_interceptor(service, auth)
    }
}

impl EdgeControlService {
    /// What places outbound calls again on another edge, over this process's command streams.
    fn retrier(&self) -> CallRetrier {
        CallRetrier {
            store: self.store.clone(),
            commands: self.commands.clone(),
            offline_after_ms: self.settings.offline_after_ms,
        }
    }

    /// Refuses an edge whose release this control plane no longer serves (`edge_version.rs`),
    /// with `FAILED_PRECONDITION` and a message the edge logs as it is.
    fn check_edge_version(&self, edge_id: &str, version: &str) -> Result<(), Status> {
        let Some(control) = edge_version::Release::parse(env!("CARGO_PKG_VERSION")) else {
            return Ok(());
        };
        match edge_version::judge(control, self.settings.min_edge_version, version) {
            edge_version::EdgeVersionVerdict::Served => Ok(()),
            edge_version::EdgeVersionVerdict::Unknown => {
                tracing::warn!(edge = %edge_id, version, "edge announced no release number");
                Ok(())
            }
            edge_version::EdgeVersionVerdict::Refused(message) => {
                tracing::error!(edge = %edge_id, version, "{message}");
                Err(Status::failed_precondition(message))
            }
        }
    }
}

fn health_of(health: Option<freya_proto::v1::EdgeHealth>) -> EdgeHealth {
    let h = health.unwrap_or_default();
    EdgeHealth {
        active_calls: h.active_calls,
        capacity: h.capacity,
        cpu_permille: h.cpu_permille,
        draining: h.draining,
    }
}

/// The most registrations one heartbeat may report (more are dropped: no workspace has that
/// many trunks registering through one edge).
const MAX_REGISTRATIONS: usize = 1_000;
/// The longest `last_error` kept (a registrar's reason phrase is free text).
const MAX_REGISTRATION_ERROR: usize = 512;

/// A heartbeat's registrations as the store keeps them: unknown states and empty ids dropped,
/// lengths capped.
fn registrations_of(
    wire: Vec<freya_proto::v1::ProviderRegistration>,
) -> Vec<EdgeProviderRegistration> {
    wire.into_iter()
        .filter(|r| {
            !r.provider_id.is_empty()
                && r.provider_id.len() <= 64
                && matches!(
                    r.state.as_str(),
                    "registering" | "registered" | "failed" | "stopped"
                )
        })
        .take(MAX_REGISTRATIONS)
        .map(|r| EdgeProviderRegistration {
            provider_id: r.provider_id,
            state: r.state,
            expires_at_ms: (r.expires_at_ms != 0).then_some(r.expires_at_ms),
            last_error: (!r.last_error.is_empty())
                .then(|| r.last_error.chars().take(MAX_REGISTRATION_ERROR).collect()),
        })
        .collect()
}

/// Maps a store failure to a gRPC status, logging what the edge does not need to see.
pub(crate) fn status_of(error: StoreError) -> Status {
    match error {
        StoreError::NotFound => Status::not_found("unknown edge: register first"),
        other => {
            tracing::error!(error = %other, "store failure while serving an edge");
            Status::unavailable("the control plane's database is unavailable")
        }
    }
}

fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!("`{field}` is required")))
    } else {
        Ok(value)
    }
}

#[tonic::async_trait]
impl EdgeControl for EdgeControlService {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        auth::check_named_edge(&request, &request.get_ref().edge_id)?;
        let r = request.into_inner();
        required("edge_id", &r.edge_id)?;
        self.check_edge_version(&r.edge_id, &r.version)?;
        if !freya_shared::model::number::is_region_name(&r.region) {
            return Err(Status::invalid_argument(
                "`region` must be 1-64 lowercase letters, digits or `-`",
            ));
        }
        let mut health = health_of(r.health);
        health.capacity = r.capacity;
        self.cluster
            .registered(&r.edge_id, r.generation, &r.gossip_addr);
        let registration = EdgeRegistration {
            id: r.edge_id,
            region: r.region,
            sip_addr: r.sip_addr,
            rtp_addr: r.rtp_addr,
            http_addr: r.http_addr,
            version: r.version,
            health,
        };
        self.store
            .register_edge(&registration)
            .await
            .map_err(status_of)?;
        self.metrics.edge_registrations.inc();
        tracing::info!(edge = %registration.id, region = %registration.region, "edge registered");
        let gossip_addr = r.gossip_addr.clone();
        self.store
            .set_edge_gossip_addr(&registration.id, &gossip_addr)
            .await
            .map_err(status_of)?;
        // From the database, not this process's memory: edges registered with another replica
        // (another region's control plane) are peers too.
        let cluster_peers = match self
            .store
            .edge_gossip_addrs(self.settings.offline_after_ms)
            .await
        {
            Ok(candidates) => self.cluster.gossip_addrs(&candidates, &registration.id),
            // The list only speeds up joining; configured seeds still work without it.
            Err(_) => Vec::new(),
        };
        Ok(Response::new(RegisterResponse {
            heartbeat_interval_ms: self.settings.heartbeat_interval_ms,
            cluster_peers,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        auth::check_named_edge(&request, &request.get_ref().edge_id)?;
        let r = request.into_inner();
        required("edge_id", &r.edge_id)?;
        let registrations = registrations_of(r.registrations);
        self.store
            .edge_heartbeat(&r.edge_id, &health_of(r.health), &registrations)
            .await
            .map_err(status_of)?;
        Ok(Response::new(HeartbeatResponse {}))
    }

    type WatchConfigStream = ReceiverStream<Result<ConfigUpdate, Status>>;

    async fn watch_config(
        &self,
        request: Request<WatchConfigRequest>,
    ) -> Result<Response<Self::WatchConfigStream>, Status> {
        auth::check_named_edge(&request, &request.get_ref().edge_id)?;
        let r = request.into_inner();
        required("edge_id", &r.edge_id)?;
        let stream = watch::spawn(
            self.store.clone(),
            r,
            self.settings.config_poll_interval,
            self.metrics.clone(),
            self.shutdown.clone(),
        );
        Ok(Response::new(stream))
    }

    type PublishEventsStream = ReceiverStream<Result<EventAck, Status>>;

    async fn publish_events(
        &self,
        request: Request<Streaming<CallEvent>>,
    ) -> Result<Response<Self::PublishEventsStream>, Status> {
        let edge_id = auth::edge_id_of(&request)?;
        let stream = events::spawn(
            self.retrier(),
            edge_id,
            request.into_inner(),
            self.metrics.clone(),
            self.shutdown.clone(),
        );
        Ok(Response::new(stream))
    }

    type CommandsStream = ReceiverStream<Result<EdgeCommand, Status>>;

    async fn commands(
        &self,
        request: Request<CommandsRequest>,
    ) -> Result<Response<Self::CommandsStream>, Status> {
        auth::check_named_edge(&request, &request.get_ref().edge_id)?;
        let r = request.into_inner();
        required("edge_id", &r.edge_id)?;
        Ok(Response::new(self.commands.attach(
            &r.edge_id,
            Some(self.settings.revoked.clone()),
            self.shutdown.clone(),
        )))
    }

    async fn upload_recording(
        &self,
        request: Request<Streaming<RecordingChunk>>,
    ) -> Result<Response<RecordingStored>, Status> {
        let edge_id = auth::edge_id_of(&request)?;
        recordings::receive(
            &self.store,
            &self.settings.recordings_dir,
            &edge_id,
            request.into_inner(),
            &self.shutdown,
        )
        .await
        .map(Response::new)
    }

    async fn report_cluster(
        &self,
        request: Request<ClusterReport>,
    ) -> Result<Response<ClusterReportAck>, Status> {
        let caller = auth::edge_id_of(&request)?;
        let (retrier, board, report) = (self.retrier(), self.cluster.clone(), request.into_inner());
        // A task of its own, run to the end even when the edge stops waiting (its report
        // deadline) and sends the report again: a down edge's calls are ended by whichever
        // attempt gets there first, never by none because each was cancelled half-way.
        tokio::spawn(async move { cluster::apply(&retrier, &board, &caller, report).await })
            .await
            .map_err(|e| Status::internal(format!("the cluster report was not applied: {e}")))??;
        Ok(Response::new(ClusterReportAck {}))
    }

    async fn report_trunk_health(
        &self,
        request: Request<TrunkHealthReport>,
    ) -> Result<Response<TrunkHealthAck>, Status> {
        let caller = auth::edge_id_of(&request)?;
        trunk_health::apply(&self.trunk_health, &caller, request.into_inner())?;
        Ok(Response::new(TrunkHealthAck {}))
    }

    async fn report_trunk_test(
        &self,
        request: Request<TrunkTestResult>,
    ) -> Result<Response<TrunkTestAck>, Status> {
        let caller = auth::edge_id_of(&request)?;
        trunk_health::finish_test(
            &self.trunk_health,
            &self.store,
            &caller,
            request.into_inner(),
        )
        .await?;
        Ok(Response::new(TrunkTestAck {}))
    }

    async fn renew_certificate(
        &self,
        request: Request<CertificateRequest>,
    ) -> Result<Response<IssuedCertificate>, Status> {
        let Some(renewal) = &self.settings.renewal else {
            return Err(Status::failed_precondition(
                "this control plane runs the shared-secret mode: there are no certificates",
            ));
        };
        let caller = auth::edge_id_of(&request)?;
        let remote = request
            .extensions()
            .get::<crate::grpc_listener::EdgePeer>()
            .and_then(|p| p.remote);
        enrolment::renew(
            &self.store,
            renewal,
            &caller,
            remote,
            &request.get_ref().csr_der,
        )
        .await
        .map(Response::new)
    }
}
