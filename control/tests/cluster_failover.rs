//! The load tester across a cluster, with real processes: `freya dev --edges 3`, then
//! `freya loadtest --target a,b,c --kill-one-at 4 --dev-json dev.json`. Calls are spread over
//! the three edges; four seconds in, the third edge (a `freya edge` process) is SIGKILLed with
//! calls on it. The report's `failover` section says when every peer saw it `down`, that no call
//! started after that failed (the load tester sends the dead edge nothing new once detected,
//! as a carrier fed by the cluster's view would), and that its calls were ended `edge_lost` by
//! the control plane.

use std::time::Duration;

use serde_json::Value;

use crate::support::dev_cluster::DevCluster;

#[tokio::test(flavor = "multi_thread")]
async fn the_load_tester_kills_an_edge_and_reports_the_failover() {
    let cluster = DevCluster::start(3).await;
    let victim = cluster.id(2);
    // Every edge alive at every other before the run.
    cluster.until_all_alive().await;
    let targets = cluster.sip_targets();
    let report_path = cluster.path().join("report.json");
    let loadtest = tokio::process::Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(["loadtest", "--quiet", "--target", &targets.join(",")])
        .args(["--number", cluster.number()])
        .args(["--calls", "24", "--rate", "3", "--concurrency", "24"])
        .args(["--duration", "6", "--turn", "tone:300", "--max-run", "90"])
        .args(["--kill-one-at", "4", "--dev-json"])
        .arg(cluster.info_path())
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
    let victim_sip = targets[2].as_str();
    assert!(
        !records
            .iter()
            .any(|r| r["edge"] == victim_sip && r["started_s"].as_f64().unwrap_or(0.0) > detected),
        "a call went to the dead edge after its detection"
    );
}
