//! What an edge keeps on disk between starts, opened first at start-up: its id, the
//! configuration cache it serves calls from until the control plane answers, the event spool
//! and the recordings waiting for upload.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::config::EdgeConfig;
use crate::control_link::snapshot_cache::SnapshotCache;
use crate::control_link::spool::EventSpool;
use crate::recordings::RecordingOutbox;
use crate::state::EdgeState;

/// The edge's state in `data_dir`, opened (and created on first start).
pub(super) struct DiskState {
    /// `id` from the configuration, else the one kept in `data_dir/edge-id`.
    pub(super) id: String,
    pub(super) cache: Arc<SnapshotCache>,
    /// Starts from the cached snapshot (or an empty one in the configured region).
    pub(super) state: EdgeState,
    pub(super) spool: EventSpool,
    pub(super) recordings: RecordingOutbox,
}

impl DiskState {
    /// Creates `data_dir` when missing and opens everything in it.
    pub(super) fn open(config: &EdgeConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("while creating data_dir {}", config.data_dir.display()))?;
        let id = match &config.id {
            Some(id) => id.clone(),
            None => stable_id(&config.data_dir)?,
        };
        let cache = Arc::new(SnapshotCache::new(&config.data_dir).with_context(|| {
            format!(
                "while opening the configuration cache in {}",
                config.data_dir.display()
            )
        })?);
        let cached = cache
            .load()
            .unwrap_or_else(|| freya_shared::snapshot::EdgeConfigSnapshot {
                region: config.region.clone(),
                ..Default::default()
            });
        if cached.version > 0 {
            tracing::info!(
                version = cached.version,
                "serving calls from the cached configuration until the control plane answers"
            );
        }
        let state = EdgeState::new(cached, config.capacity);
        let spool = EventSpool::open(&config.data_dir.join("spool"))
            .context("while opening the event spool")?;
        let recordings = RecordingOutbox::open(&config.data_dir.join("recordings"))
            .context("while opening the recordings directory")?;
        Ok(Self {
            id,
            cache,
            state,
            spool,
            recordings,
        })
    }
}

/// The id kept in `data_dir/edge-id`, created on first start.
fn stable_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("edge-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let uuid = freya_shared::ids::new_id();
            let tail: String = uuid
                .chars()
                .rev()
                .take(12)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let id = format!("edge-{tail}");
            std::fs::write(&path, &id)
                .with_context(|| format!("while saving the edge id to {}", path.display()))?;
            Ok(id)
        }
    }
}
