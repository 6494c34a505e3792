//! A rolling restart under load fails no call, with real processes: `freya dev --edges 3`,
//! `freya loadtest --target a,b,c --follow-cluster` placing calls over the three edges (as a
//! carrier fed by the cluster's view: a draining, restarting or not yet ready edge gets no new
//! call, one sent to it just before is redirected), and meanwhile each edge that is a process of
//! its own (the third, then the second; the first shares the control plane's process) is drained
//! over REST (`POST /v1/edges/{id}/drain`), exits once its calls are over, and is started again
//! from its config file. Every call succeeds: no 503 from a draining edge that saw no peer, no
//! second 302 from an edge restarted before it had joined its cluster.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::support::dev_cluster::{members_at, newest, DevCluster};
use crate::support::eventually;

/// Hang guard for each wait (debug binaries on a busy machine).
const LIMIT: Duration = Duration::from_secs(150);

/// Whether process `pid` still runs (an exited child of `freya dev` not yet reaped is a
/// zombie: gone).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_owned();
            Some(state != "Z")
        })
        .unwrap_or(false)
}

/// Whether every edge lists `id`'s newest run alive and not draining; else what the first
/// edge that does not said (for the failure message).
async fn taking_calls_everywhere(cluster: &DevCluster, id: &str) -> Result<(), String> {
    for i in 0..cluster.info.edges.len() {
        let url = cluster.http(i);
        let view = newest(
            members_at(&url)
                .await
                .ok_or_else(|| format!("{url}: no answer"))?,
        );
        match view.iter().find(|m| m.id == id) {
            Some(m) if m.state == "alive" && !m.draining => {}
            other => return Err(format!("{url}: {other:?}")),
        }
    }
    Ok(())
}

/// Waits until every edge shows `id` taking calls; panics with the last answer after [`LIMIT`].
async fn until_taking_calls_everywhere(cluster: &DevCluster, id: &str, logs: &[&std::path::Path]) {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let last = match taking_calls_everywhere(cluster, id).await {
            Ok(()) => return,
            Err(last) => last,
        };
        if std::time::Instant::now() > deadline {
            let mut tails = String::new();
            for log in logs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let from = lines.len().saturating_sub(30);
                tails.push_str(&format!(
                    "\n--- {}\n{}",
                    log.display(),
                    lines[from..].join("\n")
                ));
            }
            panic!("{id} not taking calls everywhere after {LIMIT:?}: {last}{tails}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_restart_of_every_edge_process_under_load_fails_no_call() {
    let mut cluster = DevCluster::start(3).await;
    let dev_log_path = cluster.log_path();
    for i in 0..3 {
        until_taking_calls_everywhere(&cluster, &cluster.id(i), &[&dev_log_path]).await;
    }
    let targets = cluster.sip_targets();
    let report_path = cluster.path().join("report.json");
    // About two minutes of load, a new 4 s call every other second: longer than both restarts
    // of debug binaries on a busy machine, light enough not to starve the control plane.
    let mut load = tokio::process::Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(["loadtest", "--quiet", "--target", &targets.join(",")])
        .args(["--number", cluster.number()])
        .args(["--calls", "60", "--rate", "0.5", "--concurrency", "30"])
        .args(["--duration", "4", "--turn", "tone:300", "--max-run", "400"])
        .arg("--follow-cluster")
        .arg("--dev-json")
        .arg(cluster.info_path())
        .arg("--json")
        .arg(&report_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run freya loadtest");
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;

    let (api, key) = (cluster.api_url().to_owned(), cluster.api_key().to_owned());
    let http = reqwest::Client::new();
    for i in [2, 1] {
        let (id, pid) = (cluster.id(i), cluster.edge(i).pid);
        let drained = http
            .post(format!("{api}/v1/edges/{id}/drain"))
            .bearer_auth(&key)
            .timeout(LIMIT)
            .send()
            .await
            .expect("drain");
        assert!(drained.status().is_success(), "{drained:?}");
        eprintln!("{:.1} s: {id} drained", started.elapsed().as_secs_f64());
        eventually(LIMIT, "the drained edge to exit", || async move {
            (!running(pid)).then_some(())
        })
        .await;
        eprintln!("{:.1} s: {id} exited", started.elapsed().as_secs_f64());
        let log_path = cluster.path().join(format!("restarted-{id}.log"));
        cluster.restart_edge(i, Some(&log_path));
        until_taking_calls_everywhere(&cluster, &id, &[&dev_log_path, &log_path]).await;
        eprintln!("{:.1} s: {id} back", started.elapsed().as_secs_f64());
        assert!(
            load.try_wait().expect("load test status").is_none(),
            "the load ended before edge {id} was back: the restart was not under load"
        );
    }

    let status = tokio::time::timeout(Duration::from_secs(400), load.wait())
        .await
        .expect("the load test to finish")
        .expect("the load test runs");
    let mut stderr = String::new();
    if let Some(mut err) = load.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = err.read_to_string(&mut stderr).await;
    }
    let report: Value = serde_json::from_slice(
        &std::fs::read(&report_path).unwrap_or_else(|e| panic!("{e}: {status}\n{stderr}")),
    )
    .expect("report JSON");
    let summary = serde_json::json!({
        "calls": report["calls"], "succeeded": report["succeeded"], "failed": report["failed"],
        "failures": report["failures"], "redirects": report["redirects"],
    });
    assert_eq!(report["calls"], 60, "{summary}");
    assert_eq!(report["failed"], 0, "{summary}\n{stderr}");
    assert_eq!(report["succeeded"], 60, "{summary}\n{stderr}");
    // Calls went to the restarted edges too.
    let records = report["call_records"].as_array().expect("call_records");
    for i in [1, 2] {
        let sip = cluster.edge(i).sip_addr.as_str();
        assert!(
            records.iter().any(|r| r["edge"] == sip),
            "no call answered by edge {i}: {summary}"
        );
    }
}
