//! One edge's configuration watch: a full snapshot at once, then a new snapshot whenever the
//! configuration version moves — woken at once by changes made in this process, and by polling
//! the version row for changes made by other control-plane processes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::metrics::ControlMetrics;
use crate::store::Store;
use freya_proto::v1::{ConfigUpdate, WatchConfigRequest};

pub(super) fn spawn(
    store: Store,
    request: WatchConfigRequest,
    poll_interval: Duration,
    metrics: Arc<ControlMetrics>,
    shutdown: CancellationToken,
) -> ReceiverStream<Result<ConfigUpdate, Status>> {
    // Capacity 1: a slow edge only ever needs the newest snapshot; the sender waits.
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut changes = store.subscribe_config_changes();
        let mut sent: Option<u64> = None;
        tracing::debug!(edge = %request.edge_id, known = request.known_version, "config watch opened");
        loop {
            match store.config_version().await {
                Ok(version) if Some(version) != sent => {
                    match store.edge_snapshot(&request.region).await {
                        Ok(snapshot) => {
                            let update =
                                serde_json::to_string(&snapshot).map(|json| ConfigUpdate {
                                    version: snapshot.version,
                                    snapshot_json: json,
                                });
                            let Ok(update) = update else {
                                tracing::error!("cannot encode a configuration snapshot");
                                return;
                            };
                            if tx.send(Ok(update)).await.is_err() {
                                return;
                            }
                            metrics.config_snapshots_sent.inc();
                            sent = Some(snapshot.version);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot build a configuration snapshot")
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the configuration version"),
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep(poll_interval) => {}
                _ = tx.closed() => return,
                _ = shutdown.cancelled() => return,
            }
        }
    });
    ReceiverStream::new(rx)
}
