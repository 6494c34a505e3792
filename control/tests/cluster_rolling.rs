//! A rolling restart under load fails no call, with real processes: `freya dev --edges 3`,
//! `freya loadtest --target a,b,c --follow-cluster` placing calls over the three edges (as a
//! carrier fed by the cluster's view: a draining, restarting or not yet ready edge gets no new
//! call, one sent to it just before is redirected), and meanwhile each edge that is a process of
//! its own (the third, then the second; the first shares the control plane's process) is drained
//! over REST (`POST /v1/edges/{id}/drain`), exits once its calls are over, and is started again
//! from its config file. Every call succeeds: no 503 from a draining edge that saw no peer, no
//! second 302 from an edge restarted before it had joined its cluster.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use support::eventually;

/// Hang guard for each wait (debug binaries on a busy machine).
const LIMIT: Duration = Duration::from_secs(150);

/// Processes this test started, stopped on drop (SIGTERM, then SIGKILL).
struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) on a process this test started.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            for _ in 0..50 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_sip_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Whether process `pid` still runs (an exited child of `freya dev` not yet reaped is a
/// zombie: gone).
fn running(pid: u64) -> bool {
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
async fn taking_calls_everywhere(edges: &[Value], id: &str) -> Result<(), String> {
    for edge in edges {
        let url = edge["http_url"].as_str().unwrap_or_default();
        let answer = reqwest::Client::new()
            .get(format!("{url}/cluster"))
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        let report: Value = match answer {
            Ok(answer) => answer.json().await.map_err(|e| format!("{url}: {e}"))?,
            Err(e) => return Err(format!("{url}: {e}")),
        };
        let newest = report["members"].as_array().and_then(|members| {
            members
                .iter()
                .filter(|m| m["id"] == id)
                .max_by_key(|m| m["generation"].as_u64().unwrap_or(0))
        });
        match newest {
            Some(m) if m["state"] == "alive" && m["draining"] == false => {}
            other => return Err(format!("{url}: {other:?}")),
        }
    }
    Ok(())
}

/// Waits until every edge shows `id` taking calls; panics with the last answer after [`LIMIT`].
async fn until_taking_calls_everywhere(edges: &[Value], id: &str, logs: &[&std::path::Path]) {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let last = match taking_calls_everywhere(edges, id).await {
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
    let dir = tempfile::tempdir().expect("temp dir");
    let sip = format!("127.0.0.1:{}", free_sip_port());
    let dev_log_path = dir.path().join("dev.log");
    let dev_log = std::fs::File::create(&dev_log_path).expect("log file");
    let dev = Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(["dev", "--edges", "3", "--data-dir"])
        .arg(dir.path())
        .args(["--http", "127.0.0.1:0", "--sip", &sip])
        .stdout(dev_log.try_clone().expect("log file"))
        .stderr(dev_log)
        .spawn()
        .expect("start freya dev");
    let mut processes = Running(vec![dev]);
    let info_path = dir.path().join("dev.json");
    let info: Value = eventually(
        Duration::from_secs(120),
        "dev.json with three edges",
        || {
            let path = info_path.clone();
            async move {
                let info: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
                (info["edges"].as_array()?.len() == 3).then_some(info)
            }
        },
    )
    .await;
    let edges = info["edges"].as_array().expect("edges").clone();
    for edge in &edges {
        let id = edge["id"].as_str().expect("id");
        until_taking_calls_everywhere(&edges, id, &[&dev_log_path]).await;
    }
    let targets: Vec<&str> = edges
        .iter()
        .map(|e| e["sip_addr"].as_str().expect("sip_addr"))
        .collect();
    let report_path = dir.path().join("report.json");
    // About two minutes of load, a new 4 s call every other second: longer than both restarts
    // of debug binaries on a busy machine, light enough not to starve the control plane.
    let mut load = tokio::process::Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(["loadtest", "--quiet", "--target", &targets.join(",")])
        .args(["--number", info["phone_number"].as_str().expect("number")])
        .args(["--calls", "60", "--rate", "0.5", "--concurrency", "30"])
        .args(["--duration", "4", "--turn", "tone:300", "--max-run", "400"])
        .arg("--follow-cluster")
        .arg("--dev-json")
        .arg(&info_path)
        .arg("--json")
        .arg(&report_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run freya loadtest");
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;

    let api = info["api_url"].as_str().expect("api_url");
    let key = info["api_key"].as_str().expect("api_key");
    let http = reqwest::Client::new();
    for i in [2, 1] {
        let edge = &edges[i];
        let id = edge["id"].as_str().expect("id");
        let pid = edge["pid"].as_u64().expect("pid");
        let drained = http
            .post(format!("{api}/v1/edges/{id}/drain"))
            .bearer_auth(key)
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
        let config = edge["config"].as_str().expect("config path");
        let log_path = dir.path().join(format!("restarted-{id}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let restarted = Command::new(env!("CARGO_BIN_EXE_freya"))
            .args(["edge", "--config", config])
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("restart the edge");
        processes.0.push(restarted);
        until_taking_calls_everywhere(&edges, id, &[&dev_log_path, &log_path]).await;
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
        let sip = edges[i]["sip_addr"].as_str().expect("sip_addr");
        assert!(
            records.iter().any(|r| r["edge"] == sip),
            "no call answered by edge {i}: {summary}"
        );
    }
}
