//! Benchmark: a real call's setup time on an edge under an INVITE flood, against the same edge
//! without one. An edge on 127.0.0.1 (capacity 100, the production flood limits unless
//! `--open`) answers from a cached configuration; 127.0.0.1 floods it with new INVITEs that
//! never ACK while 127.0.0.2 places real calls one after another, each timed from INVITE to
//! 200 OK and to the agent's first audio (its greeting), then hung up.
//!
//! ```text
//! cargo run -p freya-edge --release --example invite_flood_bench -- [--calls N] [--flood-rate R] [--open] [--sipp]
//! ```
//! `--sipp` floods with sipp (`loadtest/sipp/uac_invite_no_ack.xml`) instead of the built-in
//! flooder.
//! `--open` sets the limits as wide as the capacity (no per-source rate, an unconfirmed budget
//! equal to the capacity): the edge as it was before the limits. Figures go in
//! `loadtest/BENCHMARKS.md` ("INVITE flood"); nothing here asserts.

#[path = "../tests/support/cached_edge.rs"]
mod cached_edge;
#[path = "../tests/support/flood.rs"]
mod flood;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use flood::{metrics, real_call, refused, start_edge, CallOutcome, Limits};
use freya_edge::config::SipConfig;

const FLOODER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const CALLER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const CAPACITY: u32 = 100;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str, default: u32| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let calls = value("--calls", 10);
    let flood_rate = value("--flood-rate", 30);
    let open = args.iter().any(|a| a == "--open");
    let with_sipp = args.iter().any(|a| a == "--sipp");
    let defaults = SipConfig::default();
    let limits = if open {
        Limits {
            capacity: CAPACITY,
            invites_per_second_per_source: 1_000_000.0,
            invite_burst_per_source: 1_000_000,
            max_unconfirmed: CAPACITY,
            max_unconfirmed_per_source: CAPACITY,
        }
    } else {
        Limits {
            capacity: CAPACITY,
            invites_per_second_per_source: defaults.invites_per_second_per_source,
            invite_burst_per_source: defaults.invite_burst_per_source,
            max_unconfirmed: defaults.max_unconfirmed,
            max_unconfirmed_per_source: defaults.max_unconfirmed_per_source,
        }
    };
    println!("limits: {limits:?}; {calls} real calls per phase; flood {flood_rate} INVITE/s");
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = start_edge(dir.path(), limits, (61_300, 61_999)).await;
    let target = edge.sip_addr;
    // Let the edge settle (its background start-up work) before measuring.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let quiet = place(target, calls).await;
    report("no flood", &quiet);

    let flooding = tokio::spawn(flood::flood(
        target,
        FLOODER,
        if with_sipp { 1 } else { flood_rate },
        if with_sipp {
            Duration::ZERO
        } else {
            Duration::from_secs(3600)
        },
        Duration::ZERO,
    ));
    let sipp = with_sipp.then(|| {
        let scenario = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../loadtest/sipp/uac_invite_no_ack.xml"
        );
        tokio::process::Command::new("sipp")
            .args(["-sf", scenario, "-s", flood::NUMBER, &target.to_string()])
            .args([
                "-i",
                "127.0.0.1",
                "-r",
                &flood_rate.to_string(),
                "-m",
                "1000000",
            ])
            .args(["-nostdin", "-timeout", "3600s"])
            .current_dir(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("sipp runs (install sip-tester)")
    });
    // Past the burst and into the steady state: the flood's share is full by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let flooded = place(target, calls).await;
    flooding.abort();
    drop(sipp);
    report(&format!("flood of {flood_rate} INVITE/s"), &flooded);
    let text = metrics(&edge).await;
    for reason in [
        "rate_limited",
        "source_unconfirmed_share",
        "unconfirmed_budget",
        "capacity",
    ] {
        println!("refused {reason}: {}", refused(&text, reason));
    }
    edge.stop().await;
}

/// `calls` real calls one after another, each held until the agent's first audio (at most 8 s).
async fn place(target: std::net::SocketAddr, calls: u32) -> Vec<CallOutcome> {
    let mut outcomes = Vec::new();
    for _ in 0..calls {
        outcomes.push(real_call(target, CALLER, Duration::from_secs(8), true).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    outcomes
}

fn report(phase: &str, outcomes: &[CallOutcome]) {
    let answered: Vec<&CallOutcome> = outcomes.iter().filter(|o| o.code == 200).collect();
    let refused = outcomes.iter().filter(|o| o.code >= 300).count();
    let unanswered = outcomes.iter().filter(|o| o.code == 0).count();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let setup: Vec<f64> = answered.iter().map(|o| ms(o.setup)).collect();
    let audio: Vec<f64> = answered
        .iter()
        .filter_map(|o| o.first_audio.map(ms))
        .collect();
    println!(
        "{phase}: {} answered, {refused} refused (503), {unanswered} unanswered after 32 s; \
         INVITE→200 ms {}; INVITE→first audio ms {}",
        answered.len(),
        summary(setup),
        summary(audio)
    );
}

/// `p50 / p95 / max` of `values`.
fn summary(mut values: Vec<f64>) -> String {
    if values.is_empty() {
        return "-".into();
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    format!(
        "p50 {:.1} / p95 {:.1} / max {:.1} (n={})",
        at(0.5),
        at(0.95),
        at(1.0),
        values.len()
    )
}
