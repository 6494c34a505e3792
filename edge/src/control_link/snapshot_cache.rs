//! The last configuration snapshot on disk, so an edge restarted while the control plane (or its
//! database) is down still answers calls with the configuration it last had. It holds provider
//! secrets, so the file is 0600 and its directory 0700 (corrected at start if looser).

use std::path::{Path, PathBuf};

use freya_shared::private_files;
use freya_shared::snapshot::EdgeConfigSnapshot;

/// Where the snapshot lives.
pub struct SnapshotCache {
    path: PathBuf,
}

impl SnapshotCache {
    /// A cache in `dir` (created if missing), both made owner-only.
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        private_files::create_dir(dir)?;
        let path = dir.join("config-snapshot.json");
        private_files::restrict_file(&path)?;
        Ok(Self { path })
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
        let mut file = private_files::create_file(&tmp)?;
        std::io::Write::write_all(&mut file, &json)?;
        file.sync_all()?;
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

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn the_snapshot_and_its_directory_are_owner_only() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("data");
        let cache = SnapshotCache::new(&dir).expect("cache");
        cache.store(&EdgeConfigSnapshot::default()).expect("store");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("config-snapshot.json")), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn a_snapshot_left_readable_by_others_is_corrected_at_start() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config-snapshot.json");
        std::fs::write(&path, b"{}").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        SnapshotCache::new(dir.path()).expect("cache");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(dir.path()), 0o700);
    }
}
