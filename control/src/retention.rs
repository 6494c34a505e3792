//! The retention task: every `retention.interval_secs`, one sweep of every workspace's
//! retention windows (`Store::sweep_retention`, where the deciding is), then the recording
//! files the sweep detached are deleted. Runs on every replica; the sweep's deletes are
//! conditional, so replicas never delete or count an item twice.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::RetentionConfig;
use crate::grpc::recordings::recording_path;
use crate::store::{RetentionSweep, Store, StoreError};
use freya_shared::ids::now_ms;

/// Runs one sweep at `now_ms` and deletes the files it detached; what it did.
pub async fn sweep_once(
    store: &Store,
    recordings_dir: &Path,
    now_ms: i64,
    batch: u32,
) -> Result<RetentionSweep, StoreError> {
    let sweep = store.sweep_retention(now_ms, batch).await?;
    delete_recording_files(recordings_dir, &sweep.recording_files).await;
    Ok(sweep)
}

/// Deletes the files of detached recordings: `(workspace_id, recording_id)`. A file that is
/// already gone is fine (another replica, or an operator, was first).
pub async fn delete_recording_files(recordings_dir: &Path, files: &[(String, String)]) {
    for (workspace_id, recording_id) in files {
        let path = recording_path(recordings_dir, workspace_id, recording_id);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // The row is gone, so nobody can reach the file; an operator can remove it.
            Err(e) => {
                tracing::error!(error = %e, path = %path.display(), "cannot delete a recording's file")
            }
        }
    }
}

/// Sweeps every `config.interval_secs` until `shutdown`.
pub async fn run(
    store: Store,
    recordings_dir: PathBuf,
    config: RetentionConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick =
        tokio::time::interval(Duration::from_secs(u64::from(config.interval_secs.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        match sweep_once(&store, &recordings_dir, now_ms(), config.batch).await {
            Ok(sweep) if sweep != RetentionSweep::default() => tracing::info!(
                recordings = sweep.recordings_deleted,
                transcript_events = sweep.transcript_events_deleted,
                calls = sweep.calls_deleted,
                "retention sweep deleted expired call data"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; the next one retries"),
        }
    }
}
