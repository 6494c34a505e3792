//! A benchmark (not a test) of what the cluster's trust costs: the CA signing one edge
//! certificate from a CSR, one enrolment end to end (a join token made in the store, a new TLS
//! connection pinned by the token, the CSR signed, the token spent, the certificate recorded),
//! one new mutual TLS connection plus a `Register`, and a `Register` over a kept connection —
//! over mutual TLS and, for comparison, in the dev-only plaintext shared-secret mode. The
//! control plane runs in-process on SQLite, enrolment rate limit raised out of the way. Prints
//! p50/p99 per case; the figures are recorded in loadtest/BENCHMARKS.md ("Cluster trust").
//!
//! ```text
//! cargo run -p freya-control --example trust_bench -- [--count 200]
//! ```

#[path = "support/bench_config.rs"]
mod bench_config;
#[path = "support/bench_store.rs"]
mod bench_store;

use std::time::{Duration, Instant};

use anyhow::Context;

use bench_config::bench_config;
use bench_store::sqlite_url;
use freya_control::server::ControlPlane;
use freya_control::trust::join::{make_join_token, TokenMaker};
use freya_edge::control_link::{client, mtls_client};
use freya_edge::trust::{enrol, mtls_client_config, new_key_and_csr, ControlTls};
use freya_proto::v1::RegisterRequest;

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    format!(
        "p50 {:>8.3} ms  p99 {:>8.3} ms  (n = {})",
        at(50).as_secs_f64() * 1e3,
        at(99).as_secs_f64() * 1e3,
        samples.len()
    )
}

fn registration(edge_id: &str) -> RegisterRequest {
    RegisterRequest {
        edge_id: edge_id.into(),
        region: "local".into(),
        sip_addr: "127.0.0.1:5060".into(),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args()
        .skip_while(|a| a != "--count")
        .nth(1)
        .map(|v| v.parse())
        .transpose()
        .context("--count")?
        .unwrap_or(200);
    let dir = tempfile::tempdir()?;
    let url = sqlite_url(dir.path(), "mtls.db");
    let mut config = bench_config(&url, 4, dir.path());
    config.edges.shared_secret = None;
    config.edges.enrolments_per_minute_per_ip = u32::MAX;
    let control = ControlPlane::start(&config).await?;
    let grpc = format!("https://{}", control.grpc_addr);

    let csrs = (0..count)
        .map(|i| new_key_and_csr(&format!("bench-{i}")).map(|(_, csr)| csr))
        .collect::<Result<Vec<_>, _>>()?;
    let mut signing = Vec::new();
    for (i, csr) in csrs.iter().enumerate() {
        let started = Instant::now();
        control.ca.current().issuing().issue_for_edge(
            &format!("bench-{i}"),
            csr,
            Duration::from_secs(3_600),
        )?;
        signing.push(started.elapsed());
    }
    println!(
        "CA signs a CSR                     {}",
        percentiles(signing)
    );

    let maker = TokenMaker {
        workspace_id: "bench",
        actor: "bench",
        source_ip: None,
    };
    let mut enrolments = Vec::new();
    let mut identity = None;
    for i in 0..count {
        let (token, _) = make_join_token(
            &control.store,
            &control.ca,
            &maker,
            Duration::from_secs(600),
        )
        .await?;
        let started = Instant::now();
        let enrolled = enrol(
            &grpc,
            &token.to_text(),
            &format!("edge-{i}"),
            Duration::from_secs(5),
        )
        .await?;
        enrolments.push(started.elapsed());
        identity = Some(enrolled);
    }
    println!(
        "enrolment (new TLS + sign + spend) {}",
        percentiles(enrolments)
    );
    let identity = identity.context("no enrolment")?;
    let edge_id = format!("edge-{}", count - 1);

    let mut handshakes = Vec::new();
    for _ in 0..count {
        let tls = ControlTls::new(mtls_client_config(&identity)?);
        let mut linked = mtls_client(&grpc, tls, &edge_id, Duration::from_secs(5))?;
        let started = Instant::now();
        linked.register(registration(&edge_id)).await?;
        handshakes.push(started.elapsed());
    }
    println!(
        "new mTLS connection + Register     {}",
        percentiles(handshakes)
    );

    let tls = ControlTls::new(mtls_client_config(&identity)?);
    let mut kept = mtls_client(&grpc, tls, &edge_id, Duration::from_secs(5))?;
    kept.register(registration(&edge_id)).await?;
    let mut over_mtls = Vec::new();
    for _ in 0..count {
        let started = Instant::now();
        kept.register(registration(&edge_id)).await?;
        over_mtls.push(started.elapsed());
    }
    println!(
        "Register, kept mTLS connection     {}",
        percentiles(over_mtls)
    );
    control.stop().await;

    let plain_dir = tempfile::tempdir()?;
    let url = sqlite_url(plain_dir.path(), "plain.db");
    let plain_config = bench_config(&url, 4, plain_dir.path());
    let secret = plain_config.edges.shared_secret.clone().context("secret")?;
    let plain = ControlPlane::start(&plain_config).await?;
    let mut kept = client(
        &format!("http://{}", plain.grpc_addr),
        &secret,
        &edge_id,
        Duration::from_secs(5),
    )?;
    kept.register(registration(&edge_id)).await?;
    let mut over_plaintext = Vec::new();
    for _ in 0..count {
        let started = Instant::now();
        kept.register(registration(&edge_id)).await?;
        over_plaintext.push(started.elapsed());
    }
    println!(
        "Register, kept plaintext (dev)     {}",
        percentiles(over_plaintext)
    );
    plain.stop().await;
    Ok(())
}
