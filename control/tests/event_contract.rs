//! The edge → control event contract across versions, over real gRPC on loopback: a call's
//! events exactly as an edge from before the `schema` field sends them (the JSON of that time,
//! no schema on the wire) and the same call built from today's typed events must give the same
//! call row, usage and reply latency; a newer edge's unknown kind and extra fields are stored as
//! they came, not refused.

use crate::support;
use crate::support::hourly_analytics;

use std::time::Duration;

use crate::support::on_both_engines;
use crate::support::wire_events::{link, publish_all, wire};
use crate::support::{eventually, Backend};
use freya_control::server::ControlPlane;
use freya_control::store::{AnalyticsGroup, WorkspaceScope};
use freya_proto::v1::CallEvent as WireEvent;
use freya_shared::ids::new_id;
use freya_shared::model::call_payloads::{
    CallAnswered, CallEnded, CallStarted, Extra, Transcript, TurnLatency,
};
use freya_shared::model::{CallEvent, CallEventData, EndReason, CALL_EVENT_SCHEMA};
use serde_json::{json, Value};

/// 2025-01-01T00:00:00Z.
const T0: i64 = 1_735_689_600_000;
const EDGE: &str = "edge-contract";

/// One call's events as an edge of the time wrote them (`call.started` ... `call.ended`), with
/// their times.
fn legacy_call(agent: &str) -> Vec<(i64, &'static str, Value)> {
    vec![
        (
            T0,
            "call.started",
            json!({"direction": "inbound", "from": "+4790000001",
            "to": "+15550100", "agent_id": agent, "workflow_id": null, "workflow_version": null,
            "edge_id": EDGE, "codec": "Pcmu", "media": "rtp", "sip_call_id": "abc@10.0.0.1",
            "provider": null}),
        ),
        (T0 + 1_000, "call.answered", json!({})),
        (
            T0 + 3_000,
            "call.transcript",
            json!({"role": "caller", "text": "hello",
            "start_ms": 500, "end_ms": 2_000, "interrupted": false}),
        ),
        (
            T0 + 4_000,
            "call.turn_latency",
            json!({"endpointing_ms": 300, "stt_ms": 100,
            "llm_first_token_ms": 200, "tts_first_byte_ms": 150, "first_rtp_ms": 640}),
        ),
        (
            T0 + 4_000,
            "call.transcript",
            json!({"role": "agent", "text": "Hello there",
            "start_ms": 2_640, "end_ms": 2_640, "interrupted": false}),
        ),
        (
            T0 + 9_000,
            "call.ended",
            json!({"reason": "caller_hangup", "hangup_by": "caller",
            "bye_outcome": null, "transferred_to": null, "duration_ms": 8_000,
            "rtp": {"received": 400, "sent": 390, "lost": 0, "late": 0, "junk": 0,
                    "foreign": 0, "jitter_ms": 2},
            "rtcp": {"reports_sent": 1, "reports_received": 1, "junk": 0,
                     "peer_fraction_lost": 0.0, "peer_cumulative_lost": 0,
                     "peer_jitter_ms": 1.5, "rtt_ms": null, "peer_bye": false}}),
        ),
    ]
}

/// The same call built from today's types.
fn typed_call(agent: &str) -> Vec<(i64, CallEventData)> {
    let line = |role: &str, text: &str, start_ms, end_ms| {
        CallEventData::Transcript(Transcript {
            role: role.into(),
            text: text.into(),
            start_ms,
            end_ms,
            interrupted: false,
            extra: Extra::new(),
        })
    };
    vec![
        (
            T0,
            CallEventData::Started(CallStarted {
                direction: Some("inbound".into()),
                from: Some("+4790000001".into()),
                to: Some("+15550100".into()),
                agent_id: Some(Some(agent.into())),
                edge_id: Some(EDGE.into()),
                sip_call_id: Some(Some("abc@10.0.0.1".into())),
                ..CallStarted::default()
            }),
        ),
        (T0 + 1_000, CallEventData::Answered(CallAnswered::default())),
        (T0 + 3_000, line("caller", "hello", 500, 2_000)),
        (
            T0 + 4_000,
            CallEventData::TurnLatency(TurnLatency {
                endpointing_ms: 300,
                first_rtp_ms: Some(640),
                ..TurnLatency::default()
            }),
        ),
        (T0 + 4_000, line("agent", "Hello there", 2_640, 2_640)),
        (
            T0 + 9_000,
            CallEventData::Ended(CallEnded::because(EndReason::CallerHangup)),
        ),
    ]
}

/// Sends `events` on one PublishEvents stream, as edge `EDGE`, and waits for every ack.
async fn publish(control: &ControlPlane, events: Vec<WireEvent>) {
    let mut client = link(control, EDGE);
    client
        .register(freya_proto::v1::RegisterRequest {
            edge_id: EDGE.into(),
            region: "eu".into(),
            capacity: 10,
            ..Default::default()
        })
        .await
        .expect("the edge registers");
    publish_all(&mut client, events).await;
}

async fn old_and_new_edges_give_the_same_call_row_usage_and_latency(backend: Backend) {
    let (_db, control) = support::control_plane(backend).await;
    let ws = control
        .store
        .create_workspace("Contract")
        .await
        .expect("workspace");
    let scope = WorkspaceScope {
        workspace_id: ws.clone(),
    };
    let (old_call, new_call) = (new_id(), new_id());

    // As an edge before the schema field: the JSON of that time, schema absent (0) on the wire.
    let mut events = Vec::new();
    for (at_ms, kind, payload) in legacy_call("agent-old") {
        let mut event = CallEvent::raw(&old_call, &ws, kind, payload);
        event.at_ms = at_ms;
        assert_eq!(event.schema, 0);
        events.push(wire(&event));
    }
    // As today's edge: typed, with its schema.
    for (at_ms, data) in typed_call("agent-new") {
        let mut event = CallEvent::new(&new_call, &ws, data);
        event.at_ms = at_ms;
        assert_eq!(event.schema, CALL_EVENT_SCHEMA);
        events.push(wire(&event));
    }
    publish(&control, events).await;

    let old = control
        .store
        .call(&scope, &old_call)
        .await
        .expect("old call");
    let new = control
        .store
        .call(&scope, &new_call)
        .await
        .expect("new call");
    for call in [&old, &new] {
        assert_eq!(call.status, "ended", "{call:?}");
        assert_eq!(call.end_reason.as_deref(), Some("caller_hangup"));
        assert_eq!(call.direction, "inbound");
        assert_eq!(call.from_number.as_deref(), Some("+4790000001"));
        assert_eq!(call.to_number.as_deref(), Some("+15550100"));
        assert_eq!(call.sip_call_id.as_deref(), Some("abc@10.0.0.1"));
        assert_eq!(call.started_at_ms, T0);
        assert_eq!(call.answered_at_ms, Some(T0 + 1_000));
        assert_eq!(call.ended_at_ms, Some(T0 + 9_000));
        assert_eq!(call.edge_id.as_deref(), Some(EDGE));
    }
    assert_eq!(old.agent_id.as_deref(), Some("agent-old"));
    assert_eq!(new.agent_id.as_deref(), Some("agent-new"));

    // The stored JSON is exactly what the old edge sent.
    let stored = control
        .store
        .call_events(&scope, &old_call)
        .await
        .expect("events");
    let sent: Vec<Value> = legacy_call("agent-old").into_iter().map(|e| e.2).collect();
    let kept: Vec<Value> = stored.iter().map(|e| e.payload.clone()).collect();
    assert_eq!(kept.len(), sent.len());
    for payload in &sent {
        assert!(kept.contains(payload), "{payload} not stored as sent");
    }

    let query = hourly_analytics(T0, 3_600_000, AnalyticsGroup::Agent);
    let buckets = control
        .store
        .call_analytics(&scope, &query)
        .await
        .expect("analytics");
    let of = |agent: &str| {
        let bucket = buckets
            .iter()
            .find(|b| b.group.as_deref() == Some(agent))
            .unwrap_or_else(|| panic!("no bucket for {agent}: {buckets:?}"))
            .clone();
        (
            bucket.calls,
            bucket.answered,
            bucket.total_duration_ms,
            bucket.outcomes,
            bucket.usage,
            bucket.voice_to_voice,
        )
    };
    let (old_figures, new_figures) = (of("agent-old"), of("agent-new"));
    assert_eq!(old_figures, new_figures);
    let (_, _, _, outcomes, usage, latency) = old_figures;
    assert_eq!(outcomes.get("caller_hangup"), Some(&1));
    assert_eq!(usage.agent_turns, 1);
    assert_eq!(usage.caller_speech_ms, 1_500);
    assert_eq!(usage.agent_characters, 11);
    assert_eq!(latency.map(|l| l.turns), Some(1));
    control.stop().await;
}

async fn a_newer_edges_unknown_kind_and_extra_fields_are_stored_as_they_came(backend: Backend) {
    let (_db, control) = support::control_plane(backend).await;
    let ws = control.store.create_workspace("Next").await.expect("ws");
    let scope = WorkspaceScope {
        workspace_id: ws.clone(),
    };
    let call = new_id();
    let payloads = [
        (
            "call.started",
            json!({"direction": "inbound", "from": "+1", "to": "+2",
            "agent_id": "a", "carrier_score": 7}),
        ),
        (
            "call.sentiment",
            json!({"mood": "cheerful", "confidence": 0.9}),
        ),
        (
            "call.ended",
            json!({"reason": "meteor_strike", "answered": true, "co2_g": 0.1}),
        ),
    ];
    let events = payloads
        .iter()
        .enumerate()
        .map(|(n, (kind, payload))| {
            let mut event = CallEvent::raw(&call, &ws, *kind, payload.clone());
            event.at_ms = T0 + n as i64;
            event.schema = CALL_EVENT_SCHEMA + 1;
            wire(&event)
        })
        .collect();
    publish(&control, events).await;
    let record = control.store.call(&scope, &call).await.expect("call");
    assert_eq!(record.status, "ended");
    assert_eq!(record.end_reason.as_deref(), Some("meteor_strike"));
    let store = control.store.clone();
    let stored = eventually(Duration::from_secs(5), "three events stored", || {
        let (store, scope, call) = (store.clone(), scope.clone(), call.clone());
        async move {
            let events = store.call_events(&scope, &call).await.ok()?;
            (events.len() == 3).then_some(events)
        }
    })
    .await;
    for (kind, payload) in payloads {
        assert!(
            stored
                .iter()
                .any(|e| e.kind == kind && e.payload == payload),
            "{kind} {payload} not stored as it came: {stored:?}"
        );
    }
    control.stop().await;
}

on_both_engines!(
    old_and_new_edges_give_the_same_call_row_usage_and_latency,
    a_newer_edges_unknown_kind_and_extra_fields_are_stored_as_they_came,
);
