//! Call records are keyed by ids of ours, not by the caller's SIP Call-ID, on SQLite and
//! PostgreSQL. The attacks, with a hand-written SIP caller on 127.0.0.1 against a real edge and
//! control plane: two calls with the same Call-ID into two workspaces (they used to merge or
//! overwrite each other), and a call whose Call-ID is a thousand characters of everything the SIP
//! grammar allows, `/`, `?`, `%`, `<>` and quotes included (it used to make the record
//! unreachable). Each call gets its own UUIDv7 record in its own workspace, readable through the
//! API, with the Call-ID kept as `sip_call_id`.

use crate::support;

use std::time::Duration;

use reqwest::StatusCode;
use tokio::net::UdpSocket;

use crate::support::http::workspace_with_keys;
use crate::support::on_both_engines;
use crate::support::raw_sip::Call;
use crate::support::{agent_on_number, edge_config, eventually, until_routed, Backend, SECRET};
use freya_control::server::ControlPlane;
use freya_control::store::{CallRecord, WorkspaceScope};
use freya_edge::Edge;
use freya_shared::ids::is_uuid;
use freya_shared::model::AgentSpec;

/// A Call-ID of `len` characters cycling through every character RFC 3261's `word` allows,
/// with one `@` in the middle.
fn every_word_character(len: usize) -> String {
    const WORD: &str = "aZ09-.!%*_+`'~()<>:\\\"/[]?{}";
    let mut id: String = WORD.chars().cycle().take(len).collect();
    id.replace_range(len / 2..len / 2 + 1, "@");
    id
}

/// The calls of `scope` once `n` of them have ended.
async fn ended_calls(control: &ControlPlane, scope: &WorkspaceScope, n: usize) -> Vec<CallRecord> {
    eventually(
        Duration::from_secs(20),
        "the calls to be recorded as ended",
        || {
            let (store, scope) = (control.store.clone(), scope.clone());
            async move {
                let calls = store.calls(&scope, 10).await.ok()?;
                (calls.len() == n && calls.iter().all(|c| c.ended_at_ms.is_some())).then_some(calls)
            }
        },
    )
    .await
}

async fn one_call(edge: &Edge, number: &str, call_id: &str) {
    let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let call = Call::dial(edge.sip_addr, &rtp, number, call_id).await;
    call.hang_up(2).await;
}

async fn a_callers_call_id_neither_merges_calls_nor_hides_them(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let desk: AgentSpec =
        serde_json::from_value(serde_json::json!({"name": "Desk"})).expect("agent");
    let (ws_a, keys_a) = workspace_with_keys(&control, "A").await;
    let (ws_b, keys_b) = workspace_with_keys(&control, "B").await;
    let scope_a = WorkspaceScope { workspace_id: ws_a };
    let scope_b = WorkspaceScope { workspace_id: ws_b };
    agent_on_number(&control, &scope_a, "+15550001", &desk).await;
    agent_on_number(&control, &scope_b, "+15550002", &desk).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let edge = Edge::start(&edge_config(dir.path(), control.grpc_addr, SECRET))
        .await
        .expect("edge starts");
    until_routed(&edge, "+15550002").await;

    let shared = "same-call-id@carrier.example";
    let odd = every_word_character(1_000);
    one_call(&edge, "+15550001", shared).await;
    one_call(&edge, "+15550002", shared).await;
    one_call(&edge, "+15550001", &odd).await;

    let calls_a = ended_calls(&control, &scope_a, 2).await;
    let calls_b = ended_calls(&control, &scope_b, 1).await;
    let mut ids: Vec<&str> = calls_a
        .iter()
        .chain(&calls_b)
        .map(|c| c.id.as_str())
        .collect();
    assert!(ids.iter().all(|id| is_uuid(id)), "our ids: {ids:?}");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three calls, three records");
    let mut sip_ids_a: Vec<&str> = calls_a
        .iter()
        .filter_map(|c| c.sip_call_id.as_deref())
        .collect();
    sip_ids_a.sort_unstable();
    let mut expected = vec![shared, odd.as_str()];
    expected.sort_unstable();
    assert_eq!(sip_ids_a, expected);
    assert_eq!(calls_b[0].sip_call_id.as_deref(), Some(shared));

    // Every record is reachable through the API, in its own workspace only, with its own events.
    for (calls, key, other_key) in [
        (&calls_a, &keys_a[3], &keys_b[3]),
        (&calls_b, &keys_b[3], &keys_a[3]),
    ] {
        for call in calls {
            let path = format!("/v1/calls/{}", call.id);
            let shown = api.call("GET", &path, key, None).await;
            assert_eq!(shown.status, StatusCode::OK, "{path}: {}", shown.body);
            assert_eq!(
                shown.body["sip_call_id"].as_str(),
                call.sip_call_id.as_deref()
            );
            let started = shown.body["events"].as_array().map(|events| {
                events
                    .iter()
                    .filter(|e| e["kind"] == "call.started")
                    .count()
            });
            assert_eq!(
                started,
                Some(1),
                "one call.started per record: {}",
                shown.body
            );
            api.expect(404, "GET", &path, other_key, None).await;
        }
    }

    edge.stop().await;
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(multi_thread; a_callers_call_id_neither_merges_calls_nor_hides_them);
