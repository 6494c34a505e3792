//! A benchmark (not a test) of what claiming an outbound call's retry adds to storing its
//! `call.failed`, on SQLite (a temp file): 2,000 queued outbound calls fail with
//! `placement: callee` (the call ends, as before), 2,000 others with `placement: edge` (the
//! store reads the call's row and claims the retry with a conditional update instead), stored
//! in batches of 64 as an edge's event stream stores them. Prints each run's time per event;
//! the figures are recorded in loadtest/BENCHMARKS.md.
//!
//! ```text
//! cargo build -p freya-control --example retry_claim_bench && target/debug/examples/retry_claim_bench
//! ```

#[path = "support/bench_store.rs"]
mod bench_store;

use bench_store::sqlite_store;
use std::time::Instant;

use freya_control::store::{NewOutboundCall, Store, WorkspaceScope};
use freya_shared::ids::new_id;
use freya_shared::model::call_payloads::CallFailed;
use freya_shared::model::{CallEvent, CallEventData, FailReason, Placement};

const CALLS: usize = 2_000;
const BATCH: usize = 64;

/// Queues `CALLS` outbound calls on `edge-a` and stores their failures with `placement`;
/// prints the time taken and the retries claimed.
async fn run(store: &Store, scope: &WorkspaceScope, placement: Placement) -> anyhow::Result<()> {
    let mut events = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let call = NewOutboundCall {
            id: new_id(),
            edge_id: "edge-a".into(),
            from_number: "+15550100".into(),
            to_number: "+4733333333".into(),
            agent_id: new_id(),
        };
        store.create_outbound_call(scope, "bench", &call).await?;
        let reason = if placement == Placement::Edge {
            FailReason::parse("all_trunks_failed")
        } else {
            FailReason::Busy
        };
        let failed = CallFailed::because(reason).placed_by(placement.clone());
        events.push(CallEvent::new(
            call.id,
            scope.workspace_id.clone(),
            CallEventData::Failed(failed),
        ));
    }
    let started = Instant::now();
    let mut claims = 0;
    for batch in events.chunks(BATCH) {
        claims += store
            .record_call_events_claiming("edge-a", batch)
            .await?
            .retries
            .len();
    }
    let took = started.elapsed();
    println!(
        "placement {placement}: {CALLS} failures in {took:?}, {:.0} µs each, {claims} retries claimed",
        took.as_secs_f64() * 1e6 / CALLS as f64
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = sqlite_store(dir.path(), 8).await?;
    let scope = WorkspaceScope {
        workspace_id: store.create_workspace("Bench").await?,
    };
    // Twice each, alternating, so neither is measured only cold.
    for _ in 0..2 {
        run(&store, &scope, Placement::Callee).await?;
        run(&store, &scope, Placement::Edge).await?;
    }
    Ok(())
}
