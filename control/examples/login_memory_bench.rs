//! A benchmark (not a test) of what password guessing costs the control plane in memory: an
//! in-process control plane on SQLite (a temp file) with one user, then `--logins` (1,000)
//! concurrent logins with wrong passwords from one client, all started at once. Prints the
//! process's resident memory (`VmRSS` in /proc/self/status) before, at the peak (`VmHWM`, the
//! kernel's high-water mark) and two seconds after, and how the logins were answered. Rate limits
//! are raised out of the way so that only the login limits act. The figures are recorded in
//! loadtest/BENCHMARKS.md.
//!
//! ```text
//! cargo run --release -p freya-control --example login_memory_bench -- [--logins 1000] [--accounts 1000]
//! ```
//!
//! `--accounts N` spreads the guesses over N emails (one account by default would be locked
//! after five failures and measure only the throttle).

#[path = "support/bench_config.rs"]
mod bench_config;
#[path = "support/bench_store.rs"]
mod bench_store;

use std::collections::BTreeMap;
use std::time::Duration;

use bench_config::bench_config;
use bench_store::sqlite_url;
use freya_control::server::ControlPlane;

/// A `kB` line of /proc/self/status, in MiB.
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let logins = flag("--logins", 1_000);
    let accounts = flag("--accounts", 1_000).max(1);
    let dir = tempfile::tempdir()?;
    let url = sqlite_url(dir.path(), "bench.db");
    let control = ControlPlane::start(&bench_config(&url, 8, dir.path())).await?;
    let hash = freya_control::hash_password("correct horse")
        .map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?;
    control
        .store
        .create_user("user0@example.com", "User", &hash)
        .await?;
    let base = format!("http://{}", control.http_addr);
    let http = reqwest::Client::new();
    // One login first, so the decoy hash and the connection pools exist before "before".
    let _ = http
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"email": "user0@example.com", "password": "correct horse"}))
        .send()
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = status_mib("VmRSS:");
    let hwm_before = status_mib("VmHWM:");

    let attempts: Vec<_> = (0..logins)
        .map(|i| {
            let http = http.clone();
            let url = format!("{base}/v1/auth/login");
            let email = format!("user{}@example.com", i % accounts);
            tokio::spawn(async move {
                let answer = http
                    .post(url)
                    .json(&serde_json::json!({"email": email, "password": format!("guess {i}")}))
                    .send()
                    .await;
                answer.map_or(0, |a| a.status().as_u16())
            })
        })
        .collect();
    let mut statuses = BTreeMap::new();
    for attempt in attempts {
        *statuses.entry(attempt.await.unwrap_or(0)).or_insert(0u32) += 1;
    }
    let peak = status_mib("VmHWM:");
    let at_end = status_mib("VmRSS:");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = status_mib("VmRSS:");
    println!("logins: {logins} over {accounts} account(s), answered {statuses:?} (0 = no answer)");
    println!(
        "RSS before: {before:.0} MiB (high-water {hwm_before:.0} MiB); peak: {peak:.0} MiB; \
         when all answered: {at_end:.0} MiB; 2 s later: {after:.0} MiB"
    );
    control.stop().await;
    Ok(())
}
