//! The edge's links to its peers, started once the SIP task runs: cluster gossip on a thread of
//! its own (with the cluster reports to the control plane beside it), and the QUIC mesh, which
//! applies revocations to its connections and hosts the legs other edges dial here.

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cluster::BoundCluster;
use crate::control_link::{self, ControlClient, LinkContext, LinkError};
use crate::mesh::host::DialGrant;
use crate::mesh::hosting::Hosting;
use crate::mesh::BoundMesh;
use crate::trust::Revocations;

/// Dial grants waiting for the hosting task (from the control plane's commands).
const GRANT_QUEUE: usize = 256;

/// Runs gossip on the cluster's own thread, where the cluster reports' client is made too
/// (`report_client`), so neither waits behind the event stream or a recording upload.
pub(super) fn spawn_cluster(
    tasks: &mut JoinSet<()>,
    cluster: BoundCluster,
    link: &LinkContext,
    report_client: impl FnOnce() -> Result<ControlClient, LinkError> + Send + 'static,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let (report_link, stop) = (link.clone(), shutdown.clone());
    let snapshots = cluster.snapshots.clone();
    let task = cluster.task;
    let ended = crate::cluster::shell::on_own_thread("cluster", move || async move {
        match report_client() {
            Ok(client) => {
                let link = LinkContext {
                    client,
                    ..report_link
                };
                tokio::spawn(control_link::run_cluster_report(link, snapshots));
            }
            Err(e) => tracing::error!(error = %e, "no client for cluster reports"),
        }
        match task.on_this_runtime() {
            Ok(task) => task.run(stop).await,
            Err(e) => tracing::error!(error = %e, "cannot move the gossip socket"),
        }
    })
    .context("while starting the cluster's thread")?;
    tasks.spawn(async move {
        let _ = ended.await;
    });
    Ok(())
}

/// Serves the mesh until shutdown: revoked certificates are cut off its connections, and,
/// with `hosting`, legs peers dial here are hosted. Returns where dial grants go.
pub(super) fn spawn_mesh(
    tasks: &mut JoinSet<()>,
    bound: BoundMesh,
    hosting: Option<Hosting>,
    revocations: &Revocations,
    shutdown: &CancellationToken,
) -> Option<mpsc::Sender<DialGrant>> {
    tasks.spawn(crate::trust::revocations::apply_to_mesh(
        bound.mesh.clone(),
        revocations.clone(),
        shutdown.clone(),
    ));
    let hosting = hosting?;
    let endpoint = bound.mesh.clone();
    let stop = shutdown.clone();
    let (grant_tx, grant_rx) = mpsc::channel(GRANT_QUEUE);
    tasks.spawn(async move {
        tokio::select! {
            () = hosting.run(bound.joins, grant_rx) => {}
            () = stop.cancelled() => {}
        }
        endpoint.close();
    });
    Some(grant_tx)
}
