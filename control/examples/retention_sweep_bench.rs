//! A benchmark (not a test) of the retention sweep on SQLite (a temp file): 10,000 ended calls
//! of one workspace, each with a recording (a small file), a transcript line, a tool run and
//! its start and end, all older than every window; sweeps (`batch` 500, the default) run until
//! nothing is left. Prints the time of the first sweep, of the whole drain, and the sweeps it
//! took; the figures are recorded in loadtest/BENCHMARKS.md.
//!
//! ```text
//! cargo run --release -p freya-control --example retention_sweep_bench
//! ```

#[path = "support/bench_store.rs"]
mod bench_store;

use bench_store::{bench_workspace, sqlite_store};
use std::time::Instant;

use freya_control::retention::sweep_once;
use freya_control::store::{CallRecordingInfo, Retention};
use freya_shared::ids::{new_id, now_ms};
use freya_shared::model::CallEvent;

const CALLS: usize = 10_000;
const BATCH: u32 = 500;
const DAY_MS: i64 = 86_400_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = sqlite_store(dir.path(), 8).await?;
    let scope = bench_workspace(&store).await?;
    let ws = scope.workspace_id.clone();
    let recordings = dir.path().join("recordings");
    std::fs::create_dir_all(recordings.join(&ws))?;
    let start = now_ms() - 400 * DAY_MS;
    for chunk in 0..CALLS / 100 {
        let mut events = Vec::new();
        let mut calls = Vec::new();
        for n in 0..100 {
            let call = new_id();
            let at = start + i64::try_from(chunk * 100 + n)? * 1_000;
            for (kind, offset, payload) in [
                (
                    "call.started",
                    0,
                    serde_json::json!({"direction": "inbound", "from": "+15551234567", "to": "+4799999999"}),
                ),
                (
                    "call.transcript",
                    100,
                    serde_json::json!({"speaker": "caller", "text": "my card is 4111 1111 1111 1111"}),
                ),
                (
                    "call.tool",
                    200,
                    serde_json::json!({"name": "pay", "arguments": {"card": "4111"}}),
                ),
                (
                    "call.ended",
                    900,
                    serde_json::json!({"reason": "caller_hangup"}),
                ),
            ] {
                let mut e = CallEvent::raw(&call, &ws, kind, payload);
                e.at_ms = at + offset;
                events.push(e);
            }
            calls.push(call);
        }
        store.record_call_events("edge-a", &events).await?;
        for call in calls {
            let recording_id = new_id();
            std::fs::write(
                recordings.join(&ws).join(format!("{recording_id}.wav")),
                b"RIFF",
            )?;
            store
                .attach_recording(
                    &call,
                    &ws,
                    &CallRecordingInfo {
                        recording_id,
                        format: "wav".into(),
                        bytes: 4,
                        duration_ms: 900,
                        sha256: "00".into(),
                    },
                )
                .await?;
        }
    }
    store
        .set_workspace_retention(
            &scope,
            "user:bench",
            Retention {
                recordings_days: Some(30),
                transcripts_days: Some(30),
                calls_days: Some(365),
            },
        )
        .await?;
    let now = now_ms();
    let began = Instant::now();
    let mut sweeps = 0;
    let mut first = None;
    let (mut recordings_deleted, mut events_deleted, mut calls_deleted) = (0, 0, 0);
    loop {
        let sweep = sweep_once(&store, &recordings, now, BATCH).await?;
        sweeps += 1;
        first.get_or_insert(began.elapsed());
        if sweep == Default::default() {
            break;
        }
        recordings_deleted += sweep.recordings_deleted;
        events_deleted += sweep.transcript_events_deleted;
        calls_deleted += sweep.calls_deleted;
    }
    let total = began.elapsed();
    println!(
        "{CALLS} calls, batch {BATCH}: first sweep {:.0} ms; drained in {:.2} s over {sweeps} sweeps \
         (the last found nothing); deleted {calls_deleted} calls, {recordings_deleted} recordings, \
         {events_deleted} transcript events; {:.0} calls/s",
        first.unwrap_or_default().as_secs_f64() * 1e3,
        total.as_secs_f64(),
        calls_deleted as f64 / total.as_secs_f64(),
    );
    store.close().await;
    Ok(())
}
