//! An edge that holds no recording key (a control plane of an earlier release sends none) never
//! records in the clear: a call to an agent with `record: true` goes on as usual but unrecorded
//! — no manifest or file of it on the edge's disk, no recording on the call — and the call logs
//! one error saying why, in its own span. Once the key is back, the next call of the same world
//! is recorded and uploaded, so the test can tell an unrecorded call from a slow upload.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::caller::sipp_with_media;
use crate::support::eventually;
use crate::support::http::Api;
use crate::support::keypad::pressing;
use crate::support::logs::CapturedLogs;
use crate::support::world::World;
use freya_control::store::Role;

/// What the edge logs for a call it will not record.
const NO_KEY: &str = "the control plane has sent no recording key; this call is not recorded";

/// Places one call from sipp and returns its id once `count` calls of the world have ended.
async fn ended_call(world: &World, count: usize) -> String {
    let code = sipp_with_media(
        world.edge.sip_addr,
        &world.number,
        "uac_pcmu_rfc4733_tones.xml",
        &[("pcmu_dtmf.pcap", &pressing("1"))],
    )
    .await;
    assert_eq!(code, 0, "sipp's call went as scripted");
    let calls = eventually(Duration::from_secs(20), "the call to end", || async {
        let calls = world.control.store.calls(&world.scope, 10).await.ok()?;
        (calls.len() == count && calls.iter().all(|c| c.ended_at_ms.is_some())).then_some(calls)
    })
    .await;
    // Newest first.
    calls[0].id.clone()
}

/// Every file under `dir` whose bytes contain `text`.
fn files_naming(dir: &Path, text: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_naming(&path, text));
        } else if std::fs::read(&path)
            .is_ok_and(|b| b.windows(text.len()).any(|w| w == text.as_bytes()))
        {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_recording_key_the_edge_records_nothing_and_logs_an_error_per_call() {
    let logs = CapturedLogs::install(tracing::Level::INFO);
    let world = World::builder()
        .workspace("Recorded")
        .agent(json!({"record": true}))
        .start()
        .await;
    let with_key = world.edge.state.snapshot();
    assert!(
        with_key.recording_key.is_some(),
        "the control plane sent its key"
    );
    let mut keyless = (*with_key).clone();
    keyless.recording_key = None;
    world.edge.state.set_snapshot(keyless);

    let unrecorded = ended_call(&world, 1).await;
    let refusals = logs.lines_with(&["ERROR", NO_KEY]);
    assert_eq!(refusals.len(), 1, "one error for the call: {refusals:?}");
    assert!(
        refusals[0].contains(&unrecorded),
        "in the call's span: {refusals:?}"
    );

    // The key is back: the next call is recorded and its recording reaches the control plane.
    world.edge.state.set_snapshot((*with_key).clone());
    let recorded = ended_call(&world, 2).await;
    assert_ne!(recorded, unrecorded);
    let (caller, _) = world.recording(&recorded).await;
    assert!(!caller.is_empty(), "the second call is recorded");
    assert_eq!(
        logs.lines_with(&["ERROR", NO_KEY]).len(),
        1,
        "no error for the recorded call"
    );

    let api = Api::of(&world.control);
    let viewer = world.key(Role::Viewer).await;
    let detail: Value = api
        .expect(
            200,
            "GET",
            &format!("/v1/calls/{unrecorded}"),
            &viewer,
            None,
        )
        .await;
    assert!(
        detail["recording"].is_null(),
        "no recording of the first call: {detail}"
    );
    assert_eq!(
        files_naming(world.dir.path(), &unrecorded)
            .into_iter()
            .filter(|p| p.components().any(|c| c.as_os_str() == "recordings"))
            .collect::<Vec<_>>(),
        Vec::<std::path::PathBuf>::new(),
        "nothing of the first call among the edge's recordings"
    );
    world.teardown().await;
}
