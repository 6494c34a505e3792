//! The control plane and the edge keep what holds secrets or customer data owner-only,
//! whatever the umask: the control plane's SQLite database (0600) and recordings (0700), the
//! edge's data directory, configuration cache, event spool and recordings. Files an earlier run
//! left readable by others are corrected at start.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::support::{control_config, edge_config, eventually, SECRET};
use freya_control::server::ControlPlane;
use freya_edge::Edge;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn loosen(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn config(dir: &Path) -> freya_control::config::ControlConfig {
    let db = dir.join("freya.db");
    let mut config = control_config(&format!("sqlite://{}?mode=rwc", db.display()));
    config.recordings.dir = dir.join("recordings");
    config
}

#[tokio::test]
async fn a_new_database_and_recordings_directory_are_owner_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let control = ControlPlane::start(&config(dir.path()))
        .await
        .expect("control starts");
    assert_eq!(mode(&dir.path().join("freya.db")), 0o600);
    assert_eq!(mode(&dir.path().join("freya.db-wal")), 0o600);
    assert_eq!(mode(&dir.path().join("recordings")), 0o700);
    control.stop().await;
}

#[tokio::test]
async fn a_database_and_recordings_left_readable_by_others_are_corrected_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = ControlPlane::start(&config(dir.path()))
        .await
        .expect("control starts");
    first.stop().await;
    let db = dir.path().join("freya.db");
    let recordings = dir.path().join("recordings");
    let workspace = recordings.join("0190a0a0-0000-7000-8000-000000000000");
    std::fs::create_dir(&workspace).expect("dir");
    let wav = workspace.join("0190a0a0-0000-7000-8000-000000000001.wav");
    std::fs::write(&wav, b"RIFF").expect("wav");
    for (path, m) in [
        (&db, 0o644),
        (&wav, 0o644),
        (&workspace, 0o755),
        (&recordings, 0o755),
    ] {
        loosen(path, m);
    }
    let control = ControlPlane::start(&config(dir.path()))
        .await
        .expect("control starts again");
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&recordings), 0o700);
    assert_eq!(mode(&workspace), 0o700);
    assert_eq!(mode(&wav), 0o600);
    control.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_keeps_its_snapshot_spool_and_recordings_owner_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let control = ControlPlane::start(&config(dir.path()))
        .await
        .expect("control starts");
    let data = dir.path().join("edge");
    let edge = Edge::start(&edge_config(&data, control.grpc_addr, SECRET))
        .await
        .expect("edge starts");
    let snapshot = data.join("config-snapshot.json");
    eventually(
        Duration::from_secs(10),
        "the cached configuration",
        || async { snapshot.exists().then_some(()) },
    )
    .await;
    assert_eq!(mode(&snapshot), 0o600);
    for sub in ["", "spool", "recordings"] {
        assert_eq!(mode(&data.join(sub)), 0o700, "{sub}");
    }
    for file in ["spool/events.log", "spool/acks.log"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    edge.stop().await;
    control.stop().await;

    // An edge started on a data directory an older version left readable corrects it.
    for (path, m) in [
        (data.clone(), 0o755),
        (snapshot.clone(), 0o644),
        (data.join("spool"), 0o755),
        (data.join("spool/events.log"), 0o644),
        (data.join("recordings"), 0o755),
    ] {
        loosen(&path, m);
    }
    let offline = edge_config(&data, "127.0.0.1:1".parse().expect("addr"), SECRET);
    let edge = Edge::start(&offline).await.expect("edge restarts alone");
    assert_eq!(mode(&snapshot), 0o600);
    assert_eq!(mode(&data.join("spool/events.log")), 0o600);
    for sub in ["", "spool", "recordings"] {
        assert_eq!(mode(&data.join(sub)), 0o700, "{sub}");
    }
    edge.stop().await;
}
