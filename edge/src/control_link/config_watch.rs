//! The configuration watch: every snapshot the control plane sends is written to the disk cache
//! and installed for new calls. A snapshot that does not parse is refused and the old one kept.

use std::sync::Arc;

use super::snapshot_cache::SnapshotCache;
use super::LinkContext;
use crate::state::EdgeState;
use freya_proto::v1::WatchConfigRequest;
use freya_shared::snapshot::EdgeConfigSnapshot;

pub(crate) async fn run(link: LinkContext, state: EdgeState, cache: Arc<SnapshotCache>) {
    let mut updates = link.follow(
        "watching configuration",
        "opening the configuration watch",
        || {
            let request = WatchConfigRequest {
                edge_id: link.edge_id.to_string(),
                region: link.region.to_string(),
                known_version: state.snapshot().version,
            };
            let mut client = link.client.clone();
            async move { client.watch_config(request).await }
        },
    );
    while let Some(update) = updates.next().await {
        install(&state, &cache, update.version, &update.snapshot_json);
    }
}

fn install(state: &EdgeState, cache: &SnapshotCache, version: u64, json: &str) {
    let snapshot: EdgeConfigSnapshot = match serde_json::from_str(json) {
        Ok(snapshot) => snapshot,
        Err(e) => {
            tracing::error!(version, error = %e, "refusing an unreadable configuration snapshot; keeping the current one");
            return;
        }
    };
    if let Err(e) = cache.store(&snapshot) {
        tracing::warn!(error = %e, "cannot cache the configuration on disk; a restart without the control plane would lose it");
    }
    tracing::info!(
        version,
        numbers = snapshot.numbers.len(),
        "configuration installed"
    );
    state.set_snapshot(snapshot);
}
