//! A full disk under the control plane's SQLite database, for real: the database lives on a 4 MiB
//! tmpfs (when this process may mount one; otherwise a file-size limit on this process makes the
//! database's files unable to grow — the same refused write, seen as an I/O error), a ballast
//! file fills it, and the API must answer every write it could not store with 507
//! problem+json, keep serving what was stored, report not-ready, and recover by itself once
//! space returns — no restart.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use freya_control::server::ControlPlane;
use freya_control::store::{Role, WorkspaceScope};
use support::http::{workspace_with_keys, Api};
use support::{control_config, eventually};

/// A directory whose file system can be made full, and emptied again.
struct SmallDisk {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl SmallDisk {
    /// A 4 MiB tmpfs on a fresh directory, or (when mounting is not allowed, or
    /// `FREYA_TEST_DISK_FAULT=rlimit`) a plain directory filled by a file-size limit instead.
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let forced = std::env::var("FREYA_TEST_DISK_FAULT").is_ok_and(|v| v == "rlimit");
        let mounted = !forced
            && std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"])
                .arg(dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        eprintln!(
            "small disk: {}",
            if mounted {
                "a 4 MiB tmpfs"
            } else {
                "a file-size limit (RLIMIT_FSIZE)"
            }
        );
        Self { dir, mounted }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn ballast(&self) -> PathBuf {
        self.path().join("ballast")
    }

    /// Leaves no room for the database to grow.
    fn fill(&self) {
        if self.mounted {
            use std::io::Write;
            let mut file = std::fs::File::create(self.ballast()).expect("ballast");
            let chunk = vec![0xa5_u8; 16 * 1024];
            loop {
                if let Err(e) = file.write_all(&chunk).and_then(|()| file.sync_all()) {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                    break;
                }
            }
            // The last partial chunk may have taken the final pages; fill any left one by one.
            let tail = [0xa5_u8; 512];
            while file.write_all(&tail).and_then(|()| file.sync_all()).is_ok() {}
        } else {
            // No file of this process may grow past the size the database's files have now.
            let largest = std::fs::read_dir(self.path())
                .expect("list")
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0);
            set_file_size_limit(largest);
        }
    }

    /// Gives the space back.
    fn drain(&self) {
        if self.mounted {
            std::fs::remove_file(self.ballast()).expect("remove the ballast");
        } else {
            set_file_size_limit(libc::RLIM_INFINITY);
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        } else {
            set_file_size_limit(libc::RLIM_INFINITY);
        }
    }
}

/// Sets this process's soft RLIMIT_FSIZE (writes past it fail with EFBIG instead of killing the
/// process, as SIGXFSZ is ignored).
fn set_file_size_limit(bytes: u64) {
    // SAFETY: plain system calls on this process's own signal disposition and limits.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = bytes.min(limit.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
}

/// A system prompt of about 30 KB (several database pages), different for each `n`.
fn big_prompt(n: usize) -> String {
    let line = format!("Version {n}: answer politely and briefly, then offer more help. ");
    line.repeat(30_000 / line.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_507_and_readiness_recovers_without_a_restart() {
    let disk = SmallDisk::new();
    let url = format!(
        "sqlite://{}?mode=rwc",
        disk.path().join("freya.db").display()
    );
    let control = ControlPlane::start(&control_config(&url))
        .await
        .expect("control starts");
    let api = Api::of(&control);
    let (ws, keys) = workspace_with_keys(&control, "Disk").await;
    let editor = &keys[2];
    // A key never used yet: its first use writes its `last used` time, which must not fail a
    // read on a full disk.
    let fresh = control
        .store
        .create_api_key(
            &WorkspaceScope {
                workspace_id: ws.clone(),
            },
            "fresh",
            Role::Viewer,
        )
        .await
        .expect("key")
        .key;

    let created = api
        .call(
            "POST",
            "/v1/agents",
            editor,
            Some(json!({"name": "Desk", "system_prompt": big_prompt(0)})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().expect("id").to_owned();
    let path = format!("/v1/agents/{id}");
    assert_eq!(
        api.call("GET", "/readyz", "", None).await.status,
        StatusCode::OK
    );

    disk.fill();

    // Every PATCH either stores its change (answered 200 and read back) or is refused with 507;
    // a write that fits in space SQLite already holds may still succeed, so the first refusal
    // is awaited over a bounded number of changes, each several pages large.
    let mut stored = big_prompt(0);
    let mut refused = None;
    for n in 1..=40 {
        let answer = api
            .call(
                "PATCH",
                &path,
                editor,
                Some(json!({"system_prompt": big_prompt(n)})),
            )
            .await;
        match answer.status {
            StatusCode::OK => stored = big_prompt(n),
            StatusCode::INSUFFICIENT_STORAGE => {
                refused = Some((n, answer));
                break;
            }
            other => panic!("PATCH {n} on a full disk answered {other}: {}", answer.body),
        }
        let read = api.call("GET", &path, editor, None).await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.body);
        assert_eq!(
            read.body["system_prompt"],
            stored.as_str(),
            "a 200 was not stored"
        );
    }
    let (refused_n, answer) = refused.expect("no PATCH was refused on a full disk");
    assert_eq!(
        answer.headers["content-type"], "application/problem+json",
        "{}",
        answer.body
    );
    assert_eq!(answer.body["status"], 507, "{}", answer.body);
    assert!(
        answer.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("nothing was saved")),
        "{}",
        answer.body
    );

    // What was stored before is still served, to every key (a never-used key included).
    for key in [editor.as_str(), fresh.as_str()] {
        let read = api.call("GET", &path, key, None).await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.body);
        assert_eq!(read.body["system_prompt"], stored.as_str());
    }
    // Not ready, with the reason; alive.
    let ready = api.call("GET", "/readyz", "", None).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.body
    );
    assert_eq!(ready.headers["content-type"], "application/problem+json");
    assert!(
        ready.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("storage fault")),
        "{}",
        ready.body
    );
    assert_eq!(
        api.call("GET", "/healthz", "", None).await.status,
        StatusCode::OK
    );

    disk.drain();

    // Ready again by itself, and the refused change goes through and reads back.
    eventually(
        Duration::from_secs(10),
        "readiness after space returns",
        || {
            let api = api.clone();
            async move {
                (api.call("GET", "/readyz", "", None).await.status == StatusCode::OK).then_some(())
            }
        },
    )
    .await;
    let retried = api
        .call(
            "PATCH",
            &path,
            editor,
            Some(json!({"system_prompt": big_prompt(refused_n)})),
        )
        .await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    let read = api.call("GET", &path, editor, None).await;
    assert_eq!(read.body["system_prompt"], big_prompt(refused_n).as_str());

    control.stop().await;
    drop(disk);
}
