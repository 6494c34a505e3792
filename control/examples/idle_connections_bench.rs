//! A benchmark (not a test) of what idle connections cost the REST API: the latency of
//! `GET /healthz` and of an authenticated list (`GET /v1/agents`, API key, SQLite), each sent
//! sequentially over a kept-alive connection and over a new connection per request, first with
//! no other connection open, then beside 1,000 idle sockets (spread over 127.0.0.10-19, 100 per
//! address, under the default per-IP cap). The control plane runs in-process with the default
//! `[http]` limits; rate limits are raised out of the way. Prints p50/p99 per case; the figures
//! are recorded in loadtest/BENCHMARKS.md ("Idle connections").
//!
//! ```text
//! cargo run --release -p freya-control --example idle_connections_bench -- [--requests 500]
//! ```

#[path = "support/bench_config.rs"]
mod bench_config;
#[path = "support/bench_store.rs"]
mod bench_store;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::net::{TcpSocket, TcpStream};

use bench_config::bench_config;
use bench_store::sqlite_url;
use freya_control::server::ControlPlane;
use freya_control::store::{Role, WorkspaceScope};

const IDLE_SOCKETS: u32 = 1_000;

/// Raises the soft open-file limit to `need` if the hard limit allows.
fn ensure_open_files(need: u64) -> anyhow::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    let ok = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0
            && (limit.rlim_cur >= need || {
                limit.rlim_cur = need.min(limit.rlim_max);
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur >= need
            })
    };
    if !ok {
        bail!("need {need} open files; raise `ulimit -n`");
    }
    Ok(())
}

/// p50 and p99 of `requests` sequential GETs of `url` by `client`, in microseconds.
async fn measure(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    requests: usize,
) -> anyhow::Result<(u128, u128)> {
    let mut took = Vec::with_capacity(requests);
    for _ in 0..requests {
        let start = Instant::now();
        let response = client.get(url).bearer_auth(key).send().await?;
        let status = response.status();
        response.bytes().await?;
        took.push(start.elapsed());
        if !status.is_success() {
            bail!("{url} answered {status}");
        }
    }
    took.sort();
    let at = |p: usize| took[(took.len() * p / 100).min(took.len() - 1)].as_micros();
    Ok((at(50), at(99)))
}

async fn run_cases(
    control: &ControlPlane,
    key: &str,
    requests: usize,
    label: &str,
) -> anyhow::Result<()> {
    let kept = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let fresh = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()?;
    for path in ["/healthz", "/v1/agents"] {
        let url = format!("http://{}{path}", control.http_addr);
        for (mode, client) in [("kept-alive", &kept), ("new connection", &fresh)] {
            // Warm up (connection, statement cache) before measuring.
            measure(client, &url, key, 20).await?;
            let (p50, p99) = measure(client, &url, key, requests).await?;
            println!(
                "{label:<22} GET {path:<11} {mode:<15} p50 {p50:>6} µs  p99 {p99:>6} µs  ({requests} requests)"
            );
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let requests: usize = args
        .iter()
        .position(|a| a == "--requests")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse())
        .transpose()
        .context("--requests must be a number")?
        .unwrap_or(500);
    ensure_open_files(u64::from(IDLE_SOCKETS) * 2 + 500)?;
    let dir = tempfile::tempdir()?;
    let url = sqlite_url(dir.path(), "bench.db");
    let control = ControlPlane::start(&bench_config(&url, 8, dir.path())).await?;
    let scope = WorkspaceScope {
        workspace_id: control.store.create_workspace("Bench").await?,
    };
    let key = control
        .store
        .create_api_key(&scope, "bench", Role::Viewer)
        .await?
        .key;

    run_cases(&control, &key, requests, "no idle sockets").await?;

    let mut idle: Vec<TcpStream> = Vec::new();
    for n in 0..IDLE_SOCKETS {
        let socket = TcpSocket::new_v4()?;
        let ip = IpAddr::from([127, 0, 0, 10 + (n % 10) as u8]);
        socket.bind(SocketAddr::new(ip, 0))?;
        idle.push(socket.connect(control.http_addr).await?);
    }
    // Let the server accept them all before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    run_cases(&control, &key, requests, "1,000 idle sockets").await?;
    drop(idle);
    control.stop().await;
    Ok(())
}
