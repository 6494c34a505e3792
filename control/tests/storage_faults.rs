//! A full disk under the control plane's database, for real: the database lives on a small tmpfs
//! a ballast file fills, and the API must answer every write it could not store with 507
//! problem+json, keep serving what was stored, report not-ready, and recover by itself once
//! space returns — no restart.
//!
//! SQLite: a 4 MiB tmpfs when this process may mount one; otherwise a file-size limit on this
//! process makes the database's files unable to grow (the same refused write, seen as an I/O
//! error). PostgreSQL: a throwaway cluster (`initdb`, `pg_ctl`) on a 64 MiB tmpfs, when this
//! process may mount one and run the server as `postgres`; the test says so and ends otherwise.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::http::{workspace_with_keys, Answer, Api};
use crate::support::{control_config, eventually};
use freya_control::server::ControlPlane;
use freya_control::store::{Role, WorkspaceScope};
use sqlx::Connection;

/// A directory whose file system can be made full, and emptied again.
struct SmallDisk {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl SmallDisk {
    /// A tmpfs of `size` (`4m`) on a fresh directory, or (when mounting is not allowed, or
    /// `FREYA_TEST_DISK_FAULT=rlimit`) a plain directory filled by a file-size limit instead.
    fn new(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let forced = std::env::var("FREYA_TEST_DISK_FAULT").is_ok_and(|v| v == "rlimit");
        let mounted = !forced
            && std::process::Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={size},mode=0755"),
                    "tmpfs",
                ])
                .arg(dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        eprintln!(
            "small disk: {}",
            if mounted {
                "a tmpfs"
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

/// A system prompt of about 30 KB (several database pages), different each time and hardly
/// compressible (PostgreSQL compresses what it stores out of line).
fn big_prompt() -> String {
    let mut prompt = String::from("Answer briefly. ");
    while prompt.len() < 30_000 {
        prompt.push_str(&uuid::Uuid::new_v4().simple().to_string());
        prompt.push(' ');
    }
    prompt
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sqlite_disk_is_a_507_and_readiness_recovers_without_a_restart() {
    let disk = SmallDisk::new("4m");
    let url = format!(
        "sqlite://{}?mode=rwc",
        disk.path().join("freya.db").display()
    );
    let control = ControlPlane::start(&control_config(&url))
        .await
        .expect("control starts");
    let agent = agent_with_keys(&control).await;
    disk.fill();
    full_disk_is_refused_then_recovered(&control, &disk, &agent).await;
    control.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_postgres_disk_is_a_507_and_readiness_recovers_without_a_restart() {
    let disk = SmallDisk::new("64m");
    if !disk.mounted {
        eprintln!("skipped: cannot mount a tmpfs for a PostgreSQL cluster here");
        return;
    }
    let Some(cluster) = Cluster::start(disk.path()) else {
        eprintln!("skipped: cannot run initdb/pg_ctl as `postgres` here");
        return;
    };
    let control = ControlPlane::start(&control_config(&cluster.url))
        .await
        .expect("control starts");
    // Start a fresh WAL segment (1 MiB, allocated when first written, below) so the writes to
    // come never need a new one: PostgreSQL stops when it cannot create a WAL segment, which
    // is a crash, not the disk-full error under test.
    let mut admin = sqlx::PgConnection::connect(&cluster.url)
        .await
        .expect("admin connection");
    sqlx::query("SELECT pg_switch_wal()")
        .execute(&mut admin)
        .await
        .expect("switch WAL");
    admin.close().await.ok();
    let agent = agent_with_keys(&control).await;
    disk.fill();
    full_disk_is_refused_then_recovered(&control, &disk, &agent).await;
    control.stop().await;
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_gone_is_a_503_and_not_ready() {
    let (_db, control) = support::control_plane(support::Backend::Sqlite).await;
    let agent = agent_with_keys(&control).await;
    control.store.close().await;
    let answer = agent
        .api
        .call(
            "PATCH",
            &agent.path,
            &agent.editor,
            Some(json!({"name": "Gone"})),
        )
        .await;
    unavailable_because(&answer, "nothing was saved");
    agent.api.expect(503, "GET", "/readyz", "", None).await;
    control.stop().await;
}

/// `answer` is a 503 problem+json whose detail says `why`.
fn unavailable_because(answer: &Answer, why: &str) {
    let body = &answer.body;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(answer.content_type(), "application/problem+json");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(why), "{body}");
}

/// An agent and the keys to reach it.
struct Fixture {
    api: Api,
    editor: String,
    /// A key never used yet: its first use writes its `last used` time, which must not fail a
    /// read on a full disk.
    fresh: String,
    path: String,
    prompt: String,
}

async fn agent_with_keys(control: &ControlPlane) -> Fixture {
    let api = Api::of(control);
    let (ws, keys) = workspace_with_keys(control, "Disk").await;
    let editor = keys[2].clone();
    let fresh = control
        .store
        .create_api_key(&WorkspaceScope { workspace_id: ws }, "fresh", Role::Viewer)
        .await
        .expect("key")
        .key;
    let prompt = big_prompt();
    let created = api
        .create(
            "/v1/agents",
            &editor,
            json!({"name": "Desk", "system_prompt": prompt}),
        )
        .await;
    let id = created["id"].as_str().expect("id");
    assert_eq!(
        api.call("GET", "/readyz", "", None).await.status,
        StatusCode::OK
    );
    Fixture {
        path: format!("/v1/agents/{id}"),
        api,
        editor,
        fresh,
        prompt,
    }
}

/// With `disk` full: PATCHes are stored (and read back) or refused with 507, one is refused,
/// reads go on, readiness fails with the reason; once the disk is drained, readiness returns
/// and the refused change goes through.
async fn full_disk_is_refused_then_recovered(
    _control: &ControlPlane,
    disk: &SmallDisk,
    agent: &Fixture,
) {
    let Fixture {
        api,
        editor,
        fresh,
        path,
        prompt,
    } = agent;
    // A write that fits in space the database already holds may still succeed, so the first
    // refusal is awaited over a bounded number of changes, each several pages large.
    let mut stored = prompt.clone();
    let mut refused = None;
    for n in 1..=40 {
        let prompt = big_prompt();
        let answer = api
            .call(
                "PATCH",
                path,
                editor,
                Some(json!({"system_prompt": prompt})),
            )
            .await;
        match answer.status {
            StatusCode::OK => stored = prompt,
            StatusCode::INSUFFICIENT_STORAGE => {
                eprintln!("PATCH {n} refused: {}", answer.body);
                refused = Some((prompt, answer));
                break;
            }
            other => panic!("PATCH {n} on a full disk answered {other}: {}", answer.body),
        }
        let read = api.expect(200, "GET", path, editor, None).await;
        assert_eq!(
            read["system_prompt"],
            stored.as_str(),
            "a 200 was not stored"
        );
    }
    let (refused_prompt, answer) = refused.expect("no PATCH was refused on a full disk");
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
        let read = api.call("GET", path, key, None).await;
        assert_eq!(read.status, StatusCode::OK, "{}", read.body);
        assert_eq!(read.body["system_prompt"], stored.as_str());
    }
    // On every pooled connection: reads at once, more than the pool's five connections.
    let mut reads = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (api, path, editor) = (api.clone(), path.clone(), editor.clone());
        reads.spawn(async move { api.call("GET", &path, &editor, None).await });
    }
    while let Some(read) = reads.join_next().await {
        let read = read.expect("read task");
        assert_eq!(read.status, StatusCode::OK, "{}", read.body);
        assert_eq!(read.body["system_prompt"], stored.as_str());
    }
    // Not ready, with the reason; alive.
    let ready = api.call("GET", "/readyz", "", None).await;
    unavailable_because(&ready, "storage fault");
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
    api.expect(
        200,
        "PATCH",
        path,
        editor,
        Some(json!({"system_prompt": refused_prompt})),
    )
    .await;
    let read = api.call("GET", path, editor, None).await;
    assert_eq!(read.body["system_prompt"], refused_prompt.as_str());
}

/// A throwaway PostgreSQL cluster in `dir`, run as `postgres`, stopped when dropped.
struct Cluster {
    url: String,
    data: PathBuf,
}

impl Cluster {
    fn start(dir: &Path) -> Option<Self> {
        let bin = pg_bin()?;
        let as_postgres = |program: &str| {
            let mut command = std::process::Command::new("runuser");
            command
                .args(["-u", "postgres", "--"])
                .arg(bin.join(program));
            command
        };
        let ok = |command: &mut std::process::Command| {
            command
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ok(std::process::Command::new("chown").arg("postgres").arg(dir)) {
            return None;
        }
        let data = dir.join("data");
        if !ok(as_postgres("initdb").arg("-D").arg(&data).args([
            "-U",
            "freya",
            "--auth=trust",
            "-E",
            "UTF8",
            "--wal-segsize=1",
        ])) {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c min_wal_size=2MB -c max_wal_size=4MB",
            dir.display()
        );
        let cluster = Self {
            url: format!("postgres://freya@127.0.0.1:{port}/postgres"),
            data,
        };
        let started = ok(as_postgres("pg_ctl")
            .arg("-D")
            .arg(&cluster.data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "-o", &options, "start"]));
        assert!(
            started,
            "pg_ctl start failed: see {}/server.log",
            dir.display()
        );
        Some(cluster)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin().unwrap_or_default().join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .status();
    }
}

/// Where `initdb` and `pg_ctl` are: the newest `/usr/lib/postgresql/*/bin`, else `PATH`.
fn pg_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().or_else(|| {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(PathBuf::from)
            .find(|dir| dir.join("initdb").exists())
    })
}
