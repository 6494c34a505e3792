//! The load tester across a cluster, with real processes: `freya dev --edges 3`, then
//! `freya loadtest --target a,b,c --kill-one-at 4 --dev-json dev.json`. Calls are spread over
//! the three edges; four seconds in, the third edge (a `freya edge` process) is SIGKILLed with
//! calls on it. The report's `failover` section says when every peer saw it `down`, that no call
//! started after that failed (the load tester sends the dead edge nothing new once detected,
//! as a carrier fed by the cluster's view would), and that its calls were ended `edge_lost` by
//! the control plane.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use support::eventually;

/// `freya dev`, stopped on drop (SIGTERM, then SIGKILL).
struct Dev(Child);

impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: kill(2) on the process this test started.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        for _ in 0..100 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
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

#[tokio::test(flavor = "multi_thread")]
async fn the_load_tester_kills_an_edge_and_reports_the_failover() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sip = format!("127.0.0.1:{}", free_sip_port());
    let _dev = Dev(Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(["dev", "--edges", "3", "--data-dir"])
        .arg(dir.path())
        .args(["--http", "127.0.0.1:0", "--sip", &sip])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start freya dev"));
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
    let victim = edges[2]["id"].as_str().expect("id").to_owned();
    // Every edge alive at every other before the run.
    for edge in &edges {
        let url = edge["http_url"].as_str().expect("http_url").to_owned();
        eventually(Duration::from_secs(30), "a full cluster", || {
            let url = url.clone();
            async move {
                let report: Value = reqwest::get(format!("{url}/cluster"))
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let alive = report["members"]
                    .as_array()?
                    .iter()
                    .filter(|m| m["state"] == "alive")
                    .count();
                (alive >= 3).then_some(())
            }
        })
        .await;
    }
    let targets: Vec<&str> = edges
        .iter()
        .map(|e| e["sip_addr"].as_str().expect("sip_addr"))
        .collect();
    let report_path = dir.path().join("report.json");
    let loadtest = tokio::process::Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(["loadtest", "--quiet", "--target", &targets.join(",")])
        .args(["--number", info["phone_number"].as_str().expect("number")])
        .args(["--calls", "24", "--rate", "3", "--concurrency", "24"])
        .args(["--duration", "6", "--turn", "tone:300", "--max-run", "90"])
        .args(["--kill-one-at", "4", "--dev-json"])
        .arg(&info_path)
        .arg("--json")
        .arg(&report_path)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(150), loadtest)
        .await
        .expect("the load test to finish")
        .expect("run freya loadtest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_slice(
        &std::fs::read(&report_path).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}")),
    )
    .expect("report JSON");
    let failover = &report["failover"];
    assert_eq!(failover["killed_edge"], victim.as_str(), "{failover}");
    let killed = failover["killed_at_s"].as_f64().expect("killed_at_s");
    let detected = failover["detected_at_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("never detected: {failover}\n{stderr}"));
    assert!(detected > killed, "{failover}");
    let up = failover["calls_up_on_killed_edge"].as_u64().expect("up");
    assert!(up > 0, "no call was up on the killed edge: {failover}");
    assert_eq!(
        failover["failed_started_after_detection"], 0,
        "{failover}\n{stdout}"
    );
    // Only the calls the control plane recorded can be ended by it: on a busy machine a call
    // whose INVITE reached the edge may not have had its `call.started` stored before the kill.
    // Every recorded one up at the kill must be ended `edge_lost`, and none left open.
    let lost = failover["edge_lost_calls"]
        .as_u64()
        .unwrap_or_else(|| panic!("its calls never all ended: {failover}"));
    let recorded_up = failover["recorded_calls_up_at_kill"]
        .as_u64()
        .unwrap_or_else(|| panic!("the control plane's calls never read: {failover}"));
    assert!(
        recorded_up > 0,
        "the control plane recorded none of the calls up on the killed edge: {failover}"
    );
    assert_eq!(
        lost, recorded_up,
        "a recorded call up at the kill was not ended edge_lost: {failover}"
    );
    // Calls went to every edge, and after the kill only to the living.
    let records = report["call_records"].as_array().expect("call_records");
    for target in &targets {
        assert!(
            records.iter().any(|r| r["edge"] == *target),
            "no call answered by {target}"
        );
    }
    let victim_sip = targets[2];
    assert!(
        !records
            .iter()
            .any(|r| r["edge"] == victim_sip && r["started_s"].as_f64().unwrap_or(0.0) > detected),
        "a call went to the dead edge after its detection"
    );
}
