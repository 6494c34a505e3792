//! The last configuration snapshot on disk, so an edge restarted while the control plane (or its
//! database) is down still answers calls with the configuration it last had.

use std::path::{Path, PathBuf};

use freya_shared::snapshot::EdgeConfigSnapshot;

/// Where the snapshot lives.
pub struct SnapshotCache {
    path: PathBuf,
}

impl SnapshotCache {
    /// A cache in `dir` (created if missing).
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            path: dir.join("config-snapshot.json"),
        })
    }

    /// The cached snapshot, if there is a readable one.
    pub fn load(&self) -> Option<EdgeConfigSnapshot> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the cached configuration");
                return None;
            }
        };
        match serde_json::from_str(&text) {
            Ok(snapshot) => Some(snapshot),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "ignoring an unreadable cached configuration");
                None
            }
        }
    }

    /// Replaces the cached snapshot atomically.
    pub fn store(&self, snapshot: &EdgeConfigSnapshot) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let json = serde_json::to_vec(snapshot).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_snapshot_loads_back_and_junk_is_ignored() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = SnapshotCache::new(dir.path()).expect("cache");
        assert!(cache.load().is_none());
        let snapshot = EdgeConfigSnapshot {
            version: 9,
            region: "eu".into(),
            ..Default::default()
        };
        cache.store(&snapshot).expect("store");
        assert_eq!(cache.load(), Some(snapshot));
        std::fs::write(dir.path().join("config-snapshot.json"), b"{not json").expect("write");
        assert!(cache.load().is_none());
    }
}
