//! `[database] replica_url` with a real PostgreSQL streaming replica: the test starts a private
//! primary (the shared test server is not set up for replication) and a standby made from it
//! with `pg_basebackup -R`, each on its own port and data directory. With the standby's replay
//! paused, a resource created through the API is found by id (the primary) but missing from
//! its list, from the call list and from analytics (the replica); once replay resumes they show
//! it. Writes never reach the standby (it would refuse them), so every write of the test
//! succeeding shows they went to the primary.

use crate::support;
use crate::support::hourly_analytics;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::eventually;
use crate::support::http::{workspace_with_keys, Api};
use freya_control::store::{AnalyticsGroup, CallFilter, WorkspaceScope};
use serde_json::json;
use sqlx::Connection;

/// A PostgreSQL server of the test's own; stopped and removed on drop.
struct Server {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
}

impl Server {
    fn url(&self) -> String {
        format!("postgres://freya@127.0.0.1:{}/postgres", self.port)
    }

    fn start(&self, socket_dir: &Path) {
        let log = self.data.with_extension("log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40",
            self.port,
            socket_dir.display()
        );
        run(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                &self.data.display().to_string(),
                "-l",
                &log.display().to_string(),
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .args([
                "-D",
                &self.data.display().to_string(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

/// The server's programs run as `postgres` when the test runs as root (PostgreSQL refuses
/// root), as the test's user otherwise.
fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn run(program: &Path, args: &[&str]) {
    let output = as_postgres(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn postgres_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (deploy/packages.sh --test)")
        .map(|e| e.expect("entry").path().join("bin"))
        .filter(|p| p.join("pg_basebackup").exists())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop().expect("a PostgreSQL with pg_basebackup")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A primary and its streaming standby, in `dir`.
fn primary_and_replica(dir: &Path) -> (Server, Server) {
    if running_as_root() {
        let owned = Command::new("chown")
            .arg("postgres")
            .arg(dir)
            .status()
            .expect("chown");
        assert!(owned.success(), "hand the test directory to postgres");
    }
    let bin = postgres_bin();
    let primary = Server {
        bin: bin.clone(),
        data: dir.join("primary"),
        port: free_port(),
    };
    run(
        &bin.join("initdb"),
        &[
            "-D",
            &primary.data.display().to_string(),
            "-U",
            "freya",
            "--auth=trust",
            "-E",
            "UTF8",
        ],
    );
    primary.start(dir);
    let replica = Server {
        bin: bin.clone(),
        data: dir.join("replica"),
        port: free_port(),
    };
    // -R writes standby.signal and primary_conninfo: the copy starts as a streaming standby.
    run(
        &bin.join("pg_basebackup"),
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &primary.port.to_string(),
            "-U",
            "freya",
            "-D",
            &replica.data.display().to_string(),
            "-R",
            "-X",
            "stream",
        ],
    );
    replica.start(dir);
    (primary, replica)
}

async fn on_replica(url: &str, sql: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("replica");
    sqlx::query(sql).execute(&mut conn).await.expect(sql);
    conn.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_analytics_read_the_replica_and_everything_else_the_primary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (primary, replica) = primary_and_replica(dir.path());
    let mut config = support::control_config(&primary.url());
    config.database.replica_url = Some(replica.url());
    let control = freya_control::server::ControlPlane::start(&config)
        .await
        .expect("a control plane with a read replica starts");
    let api = Api::of(&control);
    let (workspace, [owner, ..]) = workspace_with_keys(&control, "Replicated").await;
    let scope = WorkspaceScope {
        workspace_id: workspace.clone(),
    };

    let listed = |names: Vec<String>, name: &str| names.iter().any(|n| n == name);
    let agent_names = || async {
        let page = api.expect(200, "GET", "/v1/agents", &owner, None).await;
        page["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x["name"].as_str().map(String::from))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    api.create(
        "/v1/agents",
        &owner,
        json!({"name": "Before", "first_message": "Hi"}),
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "the replica to catch up",
        || async { listed(agent_names().await, "Before").then_some(()) },
    )
    .await;

    // Replay paused: the replica stands still while the primary moves on.
    on_replica(&replica.url(), "SELECT pg_wal_replay_pause()").await;
    let created = api
        .create(
            "/v1/agents",
            &owner,
            json!({"name": "During", "first_message": "Hi"}),
        )
        .await;
    let id = created["id"].as_str().expect("id");
    let by_id = api
        .expect(200, "GET", &format!("/v1/agents/{id}"), &owner, None)
        .await;
    assert_eq!(by_id["name"], "During", "a read by id goes to the primary");

    let call = freya_shared::model::CallEvent::raw(
        "call-during",
        &workspace,
        "call.started",
        json!({"direction": "inbound", "from": "+4790000001", "to": "+15550100"}),
    );
    control
        .store
        .record_call_events("edge-replica", std::slice::from_ref(&call))
        .await
        .expect("events are written to the primary");
    control
        .store
        .call(&scope, "call-during")
        .await
        .expect("the call by id, from the primary");
    // Give a replica that was not paused ample time to show the rows, then look.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !listed(agent_names().await, "During"),
        "the agents list reads the (paused) replica"
    );
    let filter = CallFilter {
        limit: 50,
        ..CallFilter::default()
    };
    let calls = control
        .store
        .call_page(&scope, &filter)
        .await
        .expect("calls");
    assert!(calls.calls.is_empty(), "the call list reads the replica");
    let query = hourly_analytics(call.at_ms, 3_600_000, AnalyticsGroup::Agent);
    let buckets = control
        .store
        .call_analytics(&scope, &query)
        .await
        .expect("analytics");
    assert!(
        buckets.iter().all(|b| b.calls == 0),
        "analytics read the replica: {buckets:?}"
    );

    // Replay resumed: the lists catch up.
    on_replica(&replica.url(), "SELECT pg_wal_replay_resume()").await;
    eventually(
        Duration::from_secs(20),
        "the list to show the agent",
        || async { listed(agent_names().await, "During").then_some(()) },
    )
    .await;
    let store = control.store.clone();
    eventually(
        Duration::from_secs(20),
        "the call list to show the call",
        || {
            let (store, scope, filter) = (store.clone(), scope.clone(), filter.clone());
            async move {
                let page = store.call_page(&scope, &filter).await.ok()?;
                (page.calls.len() == 1).then_some(())
            }
        },
    )
    .await;
    control.stop().await;
    drop((replica, primary));
}
