//! A benchmark (not a test) of the REST API's read path: `GET /v1/agents/{id}` and
//! `GET /v1/calls` (a page of 50 of 5,000 calls), driven by `wrk` at 50 concurrent connections
//! against an in-process control plane on SQLite (a temp file) or PostgreSQL (`--postgres URL`,
//! a database it creates and drops). Rate limits are raised out of the way; everything else is
//! the production path, API-key authentication included. Prints requests/s and latency
//! percentiles per route; the figures are recorded in loadtest/BENCHMARKS.md.
//!
//! ```text
//! cargo run --release -p freya-control --example api_read_bench -- [--postgres URL] [--seconds 10]
//! ```

#[path = "support/bench_config.rs"]
mod bench_config;
#[path = "support/bench_store.rs"]
mod bench_store;

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use sqlx::Connection;

use bench_config::bench_config;
use bench_store::sqlite_url;
use freya_control::server::ControlPlane;
use freya_control::store::{Role, WorkspaceScope};
use freya_shared::ids::new_id;
use freya_shared::model::{AgentSpec, CallEvent};

const CALLS: usize = 5_000;
const CONNECTIONS: u32 = 50;

/// Requests/s and the 50th/99th latency percentiles from `wrk --latency` output.
fn parse_wrk(output: &str) -> Option<(f64, String, String)> {
    let rps = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    let percentile = |p: &str| {
        output
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(p))
            .map(|v| v.trim().to_owned())
    };
    Some((rps, percentile("50%")?, percentile("99%")?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seconds = flag("--seconds").unwrap_or_else(|| "10".into());
    let dir = tempfile::tempdir()?;
    let (url, engine, drop_pg) = match flag("--postgres") {
        Some(admin) => {
            let name = format!("freya_bench_{}", uuid::Uuid::now_v7().simple());
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .context("while connecting to --postgres")?;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await?;
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            (format!("{base}/{name}"), "PostgreSQL", Some((admin, name)))
        }
        None => (sqlite_url(dir.path(), "bench.db"), "SQLite", None),
    };
    let control = ControlPlane::start(&bench_config(&url, 16, dir.path())).await?;
    let store = &control.store;
    let ws = store.create_workspace("Bench").await?;
    let scope = WorkspaceScope {
        workspace_id: ws.clone(),
    };
    let key = store
        .create_api_key(&scope, "bench", Role::Viewer)
        .await?
        .key;
    let agent = store
        .create_agent(
            &scope,
            "bench",
            &AgentSpec {
                name: "Bench agent".into(),
                ..Default::default()
            },
        )
        .await?
        .id;
    let seeding = Instant::now();
    for n in 0..CALLS {
        let at = 1_735_689_600_000 + i64::try_from(n)? * 60_000;
        let event = CallEvent {
            id: new_id(),
            call_id: new_id(),
            workspace_id: ws.clone(),
            kind: "call.started".into(),
            at_ms: at,
            payload: serde_json::json!({"to": "+15550100", "agent_id": agent}),
            schema: 0,
        };
        store.record_call_event("edge-bench", &event).await?;
    }
    eprintln!("seeded {CALLS} calls in {:?}", seeding.elapsed());

    let base = format!("http://{}", control.http_addr);
    println!("| engine | route | requests/s | p50 | p99 |");
    println!("| --- | --- | --- | --- | --- |");
    for (label, path) in [
        ("GET /v1/agents/{id}", format!("/v1/agents/{agent}")),
        ("GET /v1/calls", "/v1/calls?limit=50".to_owned()),
    ] {
        let output = Command::new("wrk")
            .args(["-t2", &format!("-c{CONNECTIONS}"), &format!("-d{seconds}s")])
            .args(["--latency", "-H", &format!("Authorization: Bearer {key}")])
            .arg(format!("{base}{path}"))
            .output()
            .context("while running wrk (apt-get install -y wrk)")?;
        let text = String::from_utf8_lossy(&output.stdout);
        if text.contains("Non-2xx") {
            bail!("{label} answered errors under load:\n{text}");
        }
        let (rps, p50, p99) = parse_wrk(&text)
            .with_context(|| format!("cannot read wrk's output for {label}:\n{text}"))?;
        println!("| {engine} | `{label}` | {rps:.0} | {p50} | {p99} |");
    }
    control.stop().await;
    if let Some((admin, name)) = drop_pg {
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}
