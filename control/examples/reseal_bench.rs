//! A benchmark (not a test) of `freya secrets rotate-key`'s work: 2,000 agents (an LLM key and a
//! tool secret each) and 2,000 webhooks (a signing secret each) sealed under one key, then every
//! value re-sealed under another at the default batch (200 rows), on SQLite (a temp file) and, when
//! `FREYA_TEST_POSTGRES_URL` is set, on a fresh PostgreSQL database. Prints the time of the check
//! that every value opens, of the whole rotation, and values a second; the figures are recorded in
//! loadtest/BENCHMARKS.md.
//!
//! ```text
//! cargo run -p freya-control --example reseal_bench
//! ```

#[path = "support/bench_store.rs"]
mod bench_store;

use bench_store::{bench_workspace, sqlite_url};
use std::time::Instant;

use freya_control::store::reseal::ResealOptions;
use freya_control::store::{NewWebhook, PoolSize, Store};
use freya_shared::model::AgentSpec;
use sqlx::Connection;

const AGENTS: usize = 2_000;
const WEBHOOKS: usize = 2_000;
const OLD: [u8; 32] = [1; 32];
const NEW: [u8; 32] = [2; 32];

async fn open(url: &str, current: [u8; 32], previous: &[[u8; 32]]) -> anyhow::Result<Store> {
    Ok(Store::connect(
        url,
        PoolSize {
            min_connections: 1,
            max_connections: 4,
        },
    )
    .await?
    .with_encryption_keys(&current, previous))
}

async fn run(engine: &str, url: &str) -> anyhow::Result<()> {
    let store = open(url, OLD, &[]).await?;
    store.migrate().await?;
    let scope = bench_workspace(&store).await?;
    for n in 0..AGENTS {
        let spec: AgentSpec = serde_json::from_value(serde_json::json!({
            "name": format!("Agent {n}"),
            "llm": {"provider": "openai", "model": "gpt-4o-mini", "api_key": format!("sk-{n:08}")},
            "tool_secret": format!("tool-{n:08}"),
        }))?;
        store.create_agent(&scope, "bench", &spec).await?;
    }
    for n in 0..WEBHOOKS {
        store
            .create_webhook(
                &scope,
                "bench",
                &NewWebhook {
                    url: format!("https://hooks.example.com/{n}"),
                    events: vec!["call.ended".into()],
                    secret: Some(format!("webhook-secret-{n:08}")),
                },
            )
            .await?;
    }
    store.close().await;

    let rotating = open(url, NEW, &[OLD]).await?;
    let started = Instant::now();
    let unopened = rotating.unopened_secrets().await?;
    let checked = started.elapsed();
    assert!(unopened.is_empty());
    let started = Instant::now();
    let report = rotating.reseal_secrets(ResealOptions::default()).await?;
    let whole = started.elapsed();
    rotating.close().await;
    let values = report.total_resealed();
    println!(
        "{engine}: {values} values in {} rows re-sealed in {:.2} s ({:.0} values/s; the check \
         that opens everything first: {:.2} s); by kind {:?}",
        AGENTS + WEBHOOKS,
        whole.as_secs_f64(),
        values as f64 / whole.as_secs_f64(),
        checked.as_secs_f64(),
        report.resealed
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir()?;
    run("SQLite", &sqlite_url(dir.path(), "freya.db")).await?;
    if let Ok(admin) = std::env::var("FREYA_TEST_POSTGRES_URL") {
        let name = format!("freya_bench_{}", uuid::Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        let outcome = run("PostgreSQL", &format!("{base}/{name}")).await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await?;
        outcome?;
    }
    Ok(())
}
