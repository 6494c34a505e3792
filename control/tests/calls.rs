//! The call API on SQLite and PostgreSQL: the call log with its filters and cursor pages, one
//! call with its events and transcript, and an outbound call placed through a real edge over
//! gRPC — which today answers `call.failed` with its reason — with `Idempotency-Key` replays.

use crate::support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::http::{workspace_with_keys, Answer, Api};
use crate::support::on_both_engines;
use crate::support::{edge_config, eventually, Backend, SECRET};
use freya_control::store::WorkspaceScope;
use freya_edge::Edge;
use freya_shared::ids::new_id;
use freya_shared::model::{AgentSpec, CallEvent, CallEventKind};

fn event(
    call: &str,
    ws: &str,
    kind: CallEventKind,
    at_ms: i64,
    payload: serde_json::Value,
) -> CallEvent {
    let mut e = CallEvent::raw(call, ws, kind, payload);
    e.at_ms = at_ms;
    e
}

async fn the_call_log_filters_and_pages_with_a_cursor(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (ws, [_, _, _, viewer]) = workspace_with_keys(&control, "Calls").await;
    let agent = new_id();
    let base = 1_700_000_000_000;
    let mut ids = Vec::new();
    for n in 0..7_i64 {
        let call = new_id();
        let direction = if n % 2 == 0 { "inbound" } else { "outbound" };
        let from = format!("+1555000000{n}");
        control
            .store
            .record_call_event(
                "edge-a",
                &event(&call, &ws, CallEventKind::Started, base + n * 60_000,
                    json!({"direction": direction, "from": from, "to": "+4799999999", "agent_id": agent})),
            )
            .await
            .expect("event");
        let end = if n == 3 {
            CallEventKind::Failed
        } else {
            CallEventKind::Ended
        };
        control
            .store
            .record_call_event(
                "edge-a",
                &event(
                    &call,
                    &ws,
                    end,
                    base + n * 60_000 + 5_000,
                    json!({"reason": "done"}),
                ),
            )
            .await
            .expect("event");
        ids.push(call);
    }
    control
        .store
        .record_call_event(
            "edge-a",
            &event(
                &ids[0],
                &ws,
                CallEventKind::Transcript,
                base + 1_000,
                json!({"speaker": "caller", "text": "hello"}),
            ),
        )
        .await
        .expect("event");

    // Every call once, newest first, across pages of 3.
    let mut seen = Vec::new();
    let mut path = "/v1/calls?limit=3".to_owned();
    loop {
        let page = api.expect(200, "GET", &path, &viewer, None).await;
        for call in page["data"].as_array().expect("data") {
            seen.push(call["id"].as_str().expect("id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/calls?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    let count = |q: &'static str| {
        let api = api.clone();
        let viewer = viewer.clone();
        async move {
            let page = api
                .call("GET", &format!("/v1/calls?{q}"), &viewer, None)
                .await;
            assert_eq!(page.status, StatusCode::OK, "{q}: {}", page.body);
            page.body["data"].as_array().expect("data").len()
        }
    };
    assert_eq!(count("direction=outbound").await, 3);
    assert_eq!(count("status=failed").await, 1);
    assert_eq!(count("number=%2B15550000002").await, 1);
    assert_eq!(
        count("from=2023-11-14T22:15:00Z&to=2023-11-14T22:18:00Z").await,
        3
    );
    let agent_q = format!("/v1/calls?agent_id={agent}");
    assert_eq!(
        api.call("GET", &agent_q, &viewer, None).await.body["data"]
            .as_array()
            .expect("data")
            .len(),
        7
    );
    for (q, field) in [
        ("status=lost", "status"),
        ("from=yesterday", "from"),
        ("colour=red", "colour"),
        ("limit=0", "limit"),
    ] {
        let bad = api
            .call("GET", &format!("/v1/calls?{q}"), &viewer, None)
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(bad.body["errors"][0]["field"], field, "{q}: {}", bad.body);
    }
    // A range that ends before it starts is the caller's mistake, not an empty page.
    let inverted = api
        .expect(
            422,
            "GET",
            "/v1/calls?from=2023-11-14T22:18:00Z&to=2023-11-14T22:15:00Z",
            &viewer,
            None,
        )
        .await;
    let fields: Vec<&str> = inverted["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["from", "to"], "{}", inverted);

    let one = api
        .expect(200, "GET", &format!("/v1/calls/{}", ids[0]), &viewer, None)
        .await;
    assert_eq!(one["status"], "ended");
    assert_eq!(one["events"].as_array().expect("events").len(), 3);
    assert_eq!(one["transcript"][0]["text"], "hello");
    assert_eq!(one["transcript"][0]["at"], "2023-11-14T22:13:21.000Z");
    control.stop().await;
    db.cleanup().await;
}

/// `POST /v1/calls` with `body` as `key`, under idempotency key `first`.
async fn place_with_key(api: &Api, key: &str, body: Value) -> Answer {
    let headers = [("idempotency-key", "first")];
    api.send("POST", "/v1/calls", key, &headers, Some(body))
        .await
}

async fn an_outbound_call_goes_to_an_edge_and_its_idempotency_key_replays(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (ws, [_, _, editor, _]) = workspace_with_keys(&control, "Out").await;
    let scope = WorkspaceScope { workspace_id: ws };
    let spec: AgentSpec = serde_json::from_value(json!({"name": "Caller"})).expect("spec");
    let _agent =
        support::agent_on_number_in(&control, &scope, "+15550100", Some("local"), &spec).await;

    let body = json!({"from": "+15550100", "to": "+4712345678"});
    let none_online = place_with_key(&api, &editor, body.clone()).await;
    assert_eq!(
        none_online.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        none_online.body
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let edge = Edge::start(&edge_config(dir.path(), control.grpc_addr, SECRET))
        .await
        .expect("edge starts");
    // An edge answers from its own configuration: wait until it holds the number's agent, so
    // it judges the call on the trunks (it has none) rather than on a configuration it lacks.
    support::until_edge_holds(&edge, "the edge to learn the number", |s| {
        !s.agents.is_empty()
    })
    .await;
    // The key of a request that failed is released, so the same key is retried until an edge
    // is online and its command stream open.
    let placed = eventually(
        Duration::from_secs(15),
        "an outbound call to be accepted",
        || {
            let api = api.clone();
            let editor = editor.clone();
            let body = body.clone();
            async move {
                let answer = place_with_key(&api, &editor, body).await;
                (answer.status == StatusCode::ACCEPTED).then_some(answer)
            }
        },
    )
    .await;
    assert_eq!(placed.body["status"], "queued", "{}", placed.body);
    assert_eq!(placed.body["direction"], "outbound");
    assert_eq!(placed.body["edge_id"], edge.id.as_str());
    let id = placed.body["id"].as_str().expect("id").to_owned();

    let replay = place_with_key(&api, &editor, body.clone()).await;
    assert_eq!(replay.status, StatusCode::ACCEPTED);
    assert_eq!(replay.body, placed.body);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    let reused = place_with_key(
        &api,
        &editor,
        json!({"from": "+15550100", "to": "+4700000000"}),
    )
    .await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_from = api
        .call(
            "POST",
            "/v1/calls",
            &editor,
            Some(json!({"from": "+19999", "to": "+4712345678"})),
        )
        .await;
    assert_eq!(bad_from.body["errors"][0]["field"], "from");

    // The workspace has no SIP trunk, so the edge cannot place the call and says why; the call
    // record shows it.
    let failed = eventually(
        Duration::from_secs(10),
        "the call to be marked failed",
        || {
            let api = api.clone();
            let editor = editor.clone();
            let path = format!("/v1/calls/{id}");
            async move {
                let answer = api.call("GET", &path, &editor, None).await;
                (answer.body["status"] == "failed").then_some(answer.body)
            }
        },
    )
    .await;
    assert!(
        failed["end_reason"].as_str() == Some("no_trunks"),
        "{failed}"
    );
    api.expect(
        409,
        "POST",
        &format!("/v1/calls/{id}/hangup"),
        &editor,
        None,
    )
    .await;
    edge.stop().await;
    control.stop().await;
    db.cleanup().await;
}

/// A batch of events is stored in one go: each new one once, a resent one not again, and the
/// call record ends up as if they had come one by one.
async fn a_batch_of_events_is_stored_once_each_with_the_call_record_updated(backend: Backend) {
    let (_db, control) = support::control_plane(backend).await;
    let (ws, _) = workspace_with_keys(&control, "Batch").await;
    let call = new_id();
    let base = 1_700_000_000_000;
    let started = event(
        &call,
        &ws,
        CallEventKind::Started,
        base,
        json!({"direction": "inbound", "from": "+15550000001", "to": "+4799999999"}),
    );
    let store = &control.store;
    assert_eq!(
        store
            .record_call_events("edge-a", std::slice::from_ref(&started))
            .await
            .expect("first"),
        vec![true]
    );
    let said = event(
        &call,
        &ws,
        CallEventKind::Transcript,
        base + 1_000,
        json!({"speaker": "caller", "text": "hello"}),
    );
    let ended = event(
        &call,
        &ws,
        CallEventKind::Ended,
        base + 9_000,
        json!({"reason": "caller_hung_up"}),
    );
    let batch = [started.clone(), said.clone(), ended.clone(), said.clone()];
    assert_eq!(
        store
            .record_call_events("edge-a", &batch)
            .await
            .expect("batch"),
        vec![false, true, true, false],
        "the resent and the repeated event are not stored again"
    );
    assert_eq!(
        store
            .record_call_events("edge-a", &[])
            .await
            .expect("empty"),
        Vec::<bool>::new()
    );
    let scope = WorkspaceScope {
        workspace_id: ws.clone(),
    };
    let kinds: Vec<String> = store
        .call_events(&scope, &call)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["call.started", "call.transcript", "call.ended"]);
    let record = store
        .calls(&scope, 10)
        .await
        .expect("calls")
        .into_iter()
        .find(|c| c.id == call)
        .expect("the call has a record");
    assert_eq!(record.status, "ended");
    assert_eq!(record.ended_at_ms, Some(base + 9_000));
    assert_eq!(record.end_reason.as_deref(), Some("caller_hung_up"));
}

on_both_engines!(
    the_call_log_filters_and_pages_with_a_cursor,
    a_batch_of_events_is_stored_once_each_with_the_call_record_updated,
    an_outbound_call_goes_to_an_edge_and_its_idempotency_key_replays,
);
