//! The edge's link to the control plane: independent tasks over one lazily connected gRPC
//! channel per control-plane replica, used in turn (`failover.rs`) — registration and heartbeats,
//! the configuration watch, the call-event publisher, the command stream, the recording uploader,
//! (with a cluster) the cluster reporter and (over mutual TLS) the certificate renewal. Each
//! reconnects on its own with backoff and jitter; none of them is needed to answer a call. The
//! channels are mutual TLS under the cluster CA (`crate::trust`), or, in `freya dev`'s
//! shared-secret mode, plaintext with the secret in every request.

mod backoff;
mod cluster_report;
pub(crate) mod commands;
mod config_watch;
mod failover;
mod followed;
mod placement;
mod publisher;
mod recent_ids;
mod recording_upload;
mod registration;
/// The last snapshot on disk: `freya-control`'s tests read what an edge would restart from.
pub mod snapshot_cache;
/// The durable event spool: `freya-control`'s tests fill one as an edge would.
pub mod spool;
mod trunk_health_report;
mod trunk_test;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use freya_proto::v1::edge_control_client::EdgeControlClient;

pub use backoff::Backoff;
pub(crate) use cluster_report::run as run_cluster_report;
pub(crate) use commands::run as run_commands;
pub(crate) use config_watch::run as run_config_watch;
pub use failover::FailoverChannel;
use followed::Followed;
pub(crate) use publisher::{run as run_publisher, PublisherMetrics};
pub(crate) use recording_upload::run as run_recording_upload;
pub(crate) use registration::{run as run_registration, Registration};
pub(crate) use trunk_health_report::{run as run_trunk_health, PingSettings};
pub(crate) use trunk_test::TrunkProbe;

/// Metadata key naming the edge (the control plane reads it on the event stream).
const EDGE_ID_HEADER: &str = "x-freya-edge-id";

/// Adds the edge id (and, in the shared-secret mode, the secret) to every request.
#[derive(Clone)]
pub struct EdgeCredentials {
    authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
    edge_id: MetadataValue<tonic::metadata::Ascii>,
}

impl tonic::service::Interceptor for EdgeCredentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let metadata = request.metadata_mut();
        if let Some(authorization) = &self.authorization {
            metadata.insert("authorization", authorization.clone());
        }
        metadata.insert(EDGE_ID_HEADER, self.edge_id.clone());
        Ok(request)
    }
}

/// The client every link task uses.
pub type ControlClient = EdgeControlClient<InterceptedService<FailoverChannel, EdgeCredentials>>;

/// Why the link could not be set up (bad URL or credentials that are not valid header values).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("control.url `{0}` is not a valid URL")]
    BadUrl(String),
    #[error("no control-plane URL: set control.url or control.urls")]
    NoUrl,
    #[error("{0} contains characters not allowed in gRPC metadata")]
    BadMetadata(&'static str),
}

/// A client over mutual TLS (`tls` holds the edge's certificate) that connects on first use and
/// reconnects by itself, with the certificate current at each connection.
pub fn mtls_client(
    url: &str,
    tls: crate::trust::ControlTls,
    edge_id: &str,
    connect_timeout: Duration,
) -> Result<ControlClient, LinkError> {
    mtls_client_for(&[url.to_owned()], tls, edge_id, connect_timeout)
}

/// [`mtls_client`] over several control-plane replicas: the first URL until it fails, then the
/// next (`failover.rs`).
pub fn mtls_client_for(
    urls: &[String],
    tls: crate::trust::ControlTls,
    edge_id: &str,
    connect_timeout: Duration,
) -> Result<ControlClient, LinkError> {
    failover_client(urls, edge_id, None, |url| {
        crate::trust::mtls_channel(url, tls.clone(), connect_timeout)
    })
}

/// A client for the dev-only shared-secret mode (plaintext) that connects on first use and
/// reconnects by itself.
pub fn client(
    url: &str,
    secret: &str,
    edge_id: &str,
    connect_timeout: Duration,
) -> Result<ControlClient, LinkError> {
    client_for(&[url.to_owned()], secret, edge_id, connect_timeout)
}

/// A client over several control-plane replicas: the first URL until it fails, then the next
/// (`failover.rs`).
pub fn client_for(
    urls: &[String],
    secret: &str,
    edge_id: &str,
    connect_timeout: Duration,
) -> Result<ControlClient, LinkError> {
    let authorization = format!("Bearer {secret}")
        .parse()
        .map_err(|_| LinkError::BadMetadata("control.shared_secret"))?;
    failover_client(urls, edge_id, Some(authorization), |url| {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|_| LinkError::BadUrl(url.to_owned()))?
            .connect_timeout(connect_timeout)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        Ok(endpoint.connect_lazy())
    })
}

/// A client over `urls` in failover order, each reached by the channel `connect` makes for it,
/// whose requests carry the edge's id (and `authorization`, when given): what both ways of
/// reaching the control plane share.
fn failover_client(
    urls: &[String],
    edge_id: &str,
    authorization: Option<MetadataValue<tonic::metadata::Ascii>>,
    connect: impl Fn(&str) -> Result<Channel, LinkError>,
) -> Result<ControlClient, LinkError> {
    if urls.is_empty() {
        return Err(LinkError::NoUrl);
    }
    let channels = urls
        .iter()
        .map(|url| Ok((url.clone(), connect(url)?)))
        .collect::<Result<Vec<(String, Channel)>, LinkError>>()?;
    let credentials = EdgeCredentials {
        authorization,
        edge_id: edge_id.parse().map_err(|_| LinkError::BadMetadata("id"))?,
    };
    Ok(EdgeControlClient::with_interceptor(
        FailoverChannel::new(channels),
        credentials,
    ))
}

/// Settings shared by the link tasks.
#[derive(Clone)]
pub(crate) struct LinkContext {
    pub client: ControlClient,
    pub edge_id: Arc<str>,
    pub region: Arc<str>,
    pub max_backoff: Duration,
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Woken by the control plane's `RenewNow` command (after a CA rotation): the renewal task
    /// renews at once instead of at two thirds of the certificate's life.
    pub renew_now: Arc<tokio::sync::Notify>,
    /// Where and how patiently a trunk is tested when the control plane asks (`TestTrunk`).
    pub trunk_probe: TrunkProbe,
}

impl LinkContext {
    /// A fresh backoff for one task.
    pub(crate) fn backoff(&self) -> Backoff {
        Backoff::new(Duration::from_millis(200), self.max_backoff)
    }

    /// Sleeps `delay` unless shutdown comes first; false when shutting down.
    pub(crate) async fn pause(&self, delay: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = self.shutdown.cancelled() => false,
        }
    }

    /// Follows a stream the control plane serves this edge (its configuration, its commands):
    /// opened by `open`, opened again after a pause when it fails or ends (`followed.rs`).
    /// `receiving` and `opening` say in the logs what failed.
    pub(crate) fn follow<T, Open, Opening>(
        &self,
        receiving: &'static str,
        opening: &'static str,
        open: Open,
    ) -> Followed<'_, T, Open>
    where
        Open: FnMut() -> Opening,
        Opening: Future<Output = Result<tonic::Response<tonic::Streaming<T>>, Status>>,
    {
        Followed::new(self, receiving, opening, open)
    }
}

/// Logs a failed RPC at a level that fits: a refused secret is an operator's error.
pub(crate) fn log_failure(what: &str, status: &Status) {
    if status.code() == tonic::Code::Unauthenticated {
        tracing::error!(%status, "the control plane refused this edge while {what}: check control.shared_secret, or the edge's certificate (revoked? re-enrol with a new control.join_token)");
    } else if status.code() == tonic::Code::FailedPrecondition {
        // The control plane no longer serves this release: its message says which to run.
        tracing::error!(
            message = status.message(),
            "the control plane refused this edge while {what}"
        );
    } else if status.code() == tonic::Code::PermissionDenied {
        tracing::error!(%status, "the control plane refused this edge while {what}");
    } else {
        tracing::warn!(code = ?status.code(), message = status.message(), "control plane unreachable while {what}; retrying");
    }
}
