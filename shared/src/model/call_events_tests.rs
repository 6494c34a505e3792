//! Each kind's typed payload against the JSON edges wrote before the types (fixtures copied from
//! the edge's `json!` calls of that time), and what a newer edge may send.

use serde_json::{json, Value};

use super::*;
use crate::model::{EndReason, FailReason};

/// Today's JSON of every kind, as the edge writes it.
fn fixtures() -> Vec<(&'static str, Value)> {
    vec![
        (
            "call.started",
            json!({"direction": "inbound", "from": "+4711111111", "to": "+4722222222",
            "agent_id": null, "workflow_id": "wf1", "workflow_version": 3, "edge_id": "edge-1",
            "codec": "Pcmu", "media": "rtp", "sip_call_id": "abc@host", "provider": {}}),
        ),
        (
            "call.started",
            json!({"direction": "outbound", "from": "+4711111111", "to": "+4722222222",
            "agent_id": "a1", "edge_id": "edge-1", "trunks": ["t1", "t2"],
            "attempts": [{"kind": "twilio", "provider_id": "p1", "provider": "acct",
                          "reason": "rejected", "outcome": "HTTP 400"}]}),
        ),
        (
            "call.started",
            json!({"direction": "outbound", "from": "+1", "to": "+2", "agent_id": "a1",
            "edge_id": "e", "provider": "twilio", "provider_id": "p1", "provider_call_id": "CA1",
            "attempts": []}),
        ),
        ("call.ringing", json!({})),
        ("call.answered", json!({})),
        (
            "call.answered",
            json!({"provider": "sip_trunk", "provider_id": "t2", "provider_name": "backup",
            "attempts": [{"kind": "sip_trunk", "provider_id": "t1", "provider": "main",
                          "reason": "trunk_failed", "started_at_ms": 1_000, "duration_ms": 12,
                          "outcome": {"status": 503, "reason": "Service Unavailable"}}]}),
        ),
        (
            "call.answered",
            json!({"provider": "sip_trunk", "provider_id": "t1", "attempts": []}),
        ),
        (
            "call.answered",
            json!({"provider": "twilio", "provider_id": "p1",
            "provider_call_id": "CA1", "stream_sid": "MZ1"}),
        ),
        (
            "call.transcript",
            json!({"role": "caller", "text": "hello", "start_ms": 10,
            "end_ms": 900, "interrupted": false}),
        ),
        (
            "call.ended",
            json!({"reason": "caller_hangup", "answered": false}),
        ),
        ("call.ended", json!({"reason": "unsupported_codec"})),
        (
            "call.ended",
            json!({"reason": "transferred", "hangup_by": "agent", "bye_outcome": null,
            "transferred_to": "sip:op@example.com", "duration_ms": 12_000,
            "rtp": {"received": 600, "sent": 590, "lost": 1, "late": 0, "junk": 0, "foreign": 0,
                    "jitter_ms": 3},
            "rtcp": {"reports_sent": 2, "reports_received": 1, "junk": 0,
                     "peer_fraction_lost": 0.5, "peer_cumulative_lost": null,
                     "peer_jitter_ms": 1.25, "rtt_ms": null, "peer_bye": false},
            "agent_characters_synthesized": 80}),
        ),
        (
            "call.failed",
            json!({"direction": "outbound", "to": "+2", "reason": "busy",
            "provider": "twilio", "provider_call_id": "CA1"}),
        ),
        (
            "call.failed",
            json!({"direction": "inbound", "from": "+1", "to": "+2",
            "reason": "edge_at_capacity", "sip_call_id": "x@y", "code": 503}),
        ),
        (
            "call.failed",
            json!({"direction": "outbound", "to": "+2", "reason": "all_trunks_failed",
            "detail": {"description": "486 Busy", "attempts": [], "code": 486}}),
        ),
        (
            "call.failed",
            json!({"direction": "outbound", "to": "+2", "reason": "bad_answer_sdp",
            "detail": "no media line"}),
        ),
        (
            "call.failed",
            json!({"reason": "workflow_invalid", "field": "nodes[0]",
            "detail": "unknown node"}),
        ),
        (
            "call.failed",
            json!({"direction": "outbound", "to": "+2", "reason": "invalid_to",
            "attempts": []}),
        ),
        (
            "call.dtmf",
            json!({"digit": "5", "via": "rfc4733", "duration_ms": 120}),
        ),
        ("call.dtmf", json!({"digit": "#", "via": "sip_info"})),
        ("call.held", json!({"direction": "recvonly"})),
        ("call.resumed", json!({"direction": "sendrecv"})),
        (
            "call.transfer",
            json!({"status": "requested", "destination": "sip:op@x"}),
        ),
        (
            "call.transfer",
            json!({"status": "trying", "destination": null, "code": 100}),
        ),
        (
            "call.transfer",
            json!({"status": "failed", "destination": "sip:op@x",
            "reason": "declined"}),
        ),
        (
            "call.dtmf_sent",
            json!({"digits": "123#", "via": "rfc4733"}),
        ),
        (
            "call.dtmf_failed",
            json!({"digits": "12x", "error": "not a DTMF digit: x"}),
        ),
        (
            "call.turn_latency",
            json!({"endpointing_ms": 400, "stt_ms": 120,
            "llm_first_token_ms": null, "tts_first_byte_ms": 300, "first_rtp_ms": 820}),
        ),
        (
            "call.barge_in",
            json!({"heard_chars": 12, "planned_chars": 80}),
        ),
        ("call.tool", json!({"name": "lookup", "duration_ms": 35})),
        (
            "call.tool_failed",
            json!({"name": "lookup", "error": "timeout", "duration_ms": 5000}),
        ),
        (
            "call.provider_failed",
            json!({"stage": "llm", "error": "HTTP 500"}),
        ),
        (
            "call.provider_failed",
            json!({"stage": "stt_stream", "provider": "deepgram",
            "error": "closed", "fallback": "batch"}),
        ),
        (
            "call.provider_failed",
            json!({"stage": "llm", "provider": "openai/gpt-4o-mini",
            "error": "timeout: no first token within 800 ms", "fallback": "llm_fallback",
            "fallback_provider": "anthropic/claude-haiku-4-5", "timeout_ms": 800}),
        ),
        ("call.reprompt", json!({})),
        (
            "call.stt_stream",
            json!({"provider": "deepgram", "frames_before_end": 40, "frames": 50,
            "connect_ms": 80, "finalize_ms": 120, "interims": 3, "last_interim": null,
            "endpoints": 1}),
        ),
        (
            "call.workflow_step",
            json!({"elapsed_ms": 5, "node": "start", "step": "node_entered",
            "node_type": "say"}),
        ),
        (
            "call.workflow_error",
            json!({"agent_id": "a9",
            "error": "the agent is not in this edge's configuration"}),
        ),
        (
            "call.workflow_error",
            json!({"agent_id": "a9", "field": "llm", "error": "no model"}),
        ),
        (
            "call.leg_added",
            json!({"leg": 1, "to": "+4733333333", "by": "api"}),
        ),
        ("call.leg_answered", json!({"leg": 1, "codec": "Pcmu"})),
        ("call.leg_ended", json!({"leg": 1, "reason": "no_answer"})),
        (
            "call.leg_ended",
            json!({"leg": 2, "reason": "dial_failed", "detail": "busy"}),
        ),
        (
            "call.bridged",
            json!({"legs": [0, 1], "agent": "whisper", "whisper_to": 1}),
        ),
        ("call.bridged", json!({"legs": [0, 1], "agent": "muted"})),
        ("call.unbridged", json!({"reason": "leg_ended"})),
        (
            "call.retried",
            json!({"from_edge": "edge-a", "to_edge": "edge-b", "reason": "all_trunks_failed"}),
        ),
        (
            "call.failed",
            json!({"direction": "outbound", "to": "+4733333333", "reason": "edge_at_capacity", "placement": "edge"}),
        ),
    ]
}

#[test]
fn every_kind_has_a_fixture() {
    let fixtures = fixtures();
    for kind in CallEventData::KINDS {
        assert!(
            fixtures.iter().any(|(k, _)| k == kind),
            "no fixture of {kind}"
        );
    }
}

#[test]
fn todays_json_parses_into_its_type_and_serialises_back_unchanged() {
    for (kind, json) in fixtures() {
        let data = CallEventData::parse(kind, &json);
        assert!(
            !matches!(data, CallEventData::Other { .. }),
            "{kind} {json} was not understood"
        );
        assert_eq!(data.kind(), kind);
        assert_eq!(data.to_payload(), json, "{kind} changed on its way back");
        // Byte for byte too: what the edge sends is the Value's text.
        assert_eq!(data.to_payload().to_string(), json.to_string());
    }
}

#[test]
fn typed_events_serialise_to_todays_json() {
    let ended = CallEventData::Ended(CallEnded {
        answered: Some(false),
        ..CallEnded::because(EndReason::CallerHangup)
    });
    assert_eq!(
        ended.to_payload(),
        json!({"reason": "caller_hangup", "answered": false})
    );
    let started = CallEventData::Started(CallStarted {
        direction: Some("inbound".into()),
        from: Some("+4711111111".into()),
        to: Some("+4722222222".into()),
        agent_id: Some(None),
        workflow_id: Some(Some("wf1".into())),
        workflow_version: Some(Some(3)),
        edge_id: Some("edge-1".into()),
        codec: Some("Pcmu".into()),
        media: Some("rtp".into()),
        sip_call_id: Some(Some("abc@host".into())),
        provider: Some(json!({})),
        ..CallStarted::default()
    });
    assert_eq!(started.to_payload(), fixtures()[0].1);
    let failed = CallEventData::Failed(CallFailed {
        direction: Some("inbound".into()),
        from: Some("+1".into()),
        to: Some("+2".into()),
        sip_call_id: Some("x@y".into()),
        code: Some(503),
        ..CallFailed::because(FailReason::EdgeAtCapacity)
    });
    assert_eq!(
        failed.to_payload(),
        json!({"direction": "inbound", "from": "+1", "to": "+2",
               "reason": "edge_at_capacity", "sip_call_id": "x@y", "code": 503})
    );
    let latency = CallEventData::TurnLatency(TurnLatency {
        endpointing_ms: 400,
        stt_ms: Some(120),
        llm_first_token_ms: None,
        tts_first_byte_ms: Some(300),
        first_rtp_ms: Some(820),
        extra: Extra::new(),
    });
    let today = fixtures()
        .into_iter()
        .find(|(k, _)| *k == "call.turn_latency")
        .map(|(_, j)| j);
    assert_eq!(Some(latency.to_payload()), today);
    let transfer = CallEventData::Transfer(TransferProgress {
        status: "requested".into(),
        destination: Some("sip:op@x".into()),
        code: None,
        reason: None,
        extra: Extra::new(),
    });
    assert_eq!(
        transfer.to_payload(),
        json!({"status": "requested", "destination": "sip:op@x"})
    );
    assert_eq!(
        CallEventData::Reprompt(NoDetails::default()).to_payload(),
        json!({})
    );
}

#[test]
fn a_newer_edges_extra_fields_are_kept() {
    let json = json!({"reason": "max_duration", "answered": true, "carbon_grams": 0.2});
    let CallEventData::Ended(ended) = CallEventData::parse("call.ended", &json) else {
        panic!("call.ended not understood");
    };
    assert_eq!(ended.reason, Some(EndReason::MaxDuration));
    assert_eq!(ended.extra.get("carbon_grams"), Some(&json!(0.2)));
    assert_eq!(CallEventData::Ended(ended).to_payload(), json);
}

#[test]
fn a_newer_edges_kinds_and_reasons_are_kept_as_they_came() {
    let json = json!({"mood": "cheerful"});
    let data = CallEventData::parse("call.sentiment", &json);
    assert_eq!(
        data,
        CallEventData::Other {
            kind: "call.sentiment".into(),
            payload: json.clone()
        }
    );
    assert_eq!(data.to_payload(), json);
    let CallEventData::Ended(ended) =
        CallEventData::parse("call.ended", &json!({"reason": "meteor_strike"}))
    else {
        panic!("call.ended not understood");
    };
    assert_eq!(ended.reason, Some(EndReason::Other("meteor_strike".into())));
}

#[test]
fn a_payload_that_does_not_fit_its_kind_is_kept_not_refused() {
    let json = json!({"role": 7});
    let data = CallEventData::parse("call.transcript", &json);
    assert!(matches!(data, CallEventData::Other { .. }));
    assert_eq!(data.to_payload(), json);
}

#[test]
fn reasons_round_trip_through_their_words() {
    for word in [
        "caller_hangup",
        "max_duration",
        "hold_timeout",
        "transferred",
        "x_new",
    ] {
        assert_eq!(EndReason::parse(word).as_str(), word);
    }
    for word in [
        "busy",
        "no_answer",
        "edge_draining",
        "invalid_from",
        "y_new",
    ] {
        assert_eq!(FailReason::parse(word).as_str(), word);
    }
    assert_eq!(EndReason::parse("rtp_timeout"), EndReason::RtpTimeout);
}

#[test]
fn the_control_planes_edge_lost_end_reads_back_typed() {
    // What `store/lost_edges.rs` writes when heartbeats stop or peers declare the edge down.
    let json = json!({"reason": "edge_lost", "answered": true, "edge_id": "dev-edge-3"});
    let data = CallEventData::parse("call.ended", &json);
    let CallEventData::Ended(ended) = &data else {
        panic!("call.ended not understood");
    };
    assert_eq!(ended.reason, Some(EndReason::EdgeLost));
    assert_eq!(ended.edge_id.as_deref(), Some("dev-edge-3"));
    assert_eq!(data.to_payload(), json);
}

#[test]
fn an_event_spooled_before_the_schema_field_reads_as_version_zero() {
    let old = json!({"id": "0190", "call_id": "c", "workspace_id": "w", "kind": "call.answered",
                     "at_ms": 1, "payload": {}});
    let event: crate::model::CallEvent = serde_json::from_value(old).expect("old spool line");
    assert_eq!(event.schema, 0);
    let new = crate::model::CallEvent::new("c", "w", CallEventData::Reprompt(NoDetails::default()));
    assert_eq!(new.schema, CALL_EVENT_SCHEMA);
    assert_eq!(new.kind, "call.reprompt");
}

#[test]
fn an_end_without_a_reason_is_still_an_end() {
    let data = CallEventData::parse("call.ended", &json!({"n": 2}));
    let CallEventData::Ended(ended) = &data else {
        panic!("call.ended without a reason not understood: {data:?}");
    };
    assert_eq!(ended.reason, None);
    assert_eq!(data.to_payload(), json!({"n": 2}));
}

#[test]
fn hang_up_roles_are_named_by_side_and_contract_1_words_still_read() {
    use crate::model::HangupBy;
    for (reason, by) in [
        (EndReason::CallerHangup, HangupBy::Remote),
        (EndReason::RemoteHangup, HangupBy::Remote),
        (EndReason::CallerCancelled, HangupBy::Remote),
        (EndReason::HangupRequested, HangupBy::Api),
        (EndReason::EndCallTool, HangupBy::Agent),
        (EndReason::Transferred, HangupBy::Agent),
        (EndReason::MaxDuration, HangupBy::System),
        (EndReason::RtpTimeout, HangupBy::System),
        (EndReason::EdgeShutdown, HangupBy::System),
    ] {
        assert_eq!(reason.hangup_by(), by, "{reason}");
    }
    assert_eq!(
        EndReason::CallerHangup.for_outbound(),
        EndReason::RemoteHangup
    );
    assert_eq!(
        EndReason::MaxDuration.for_outbound(),
        EndReason::MaxDuration
    );
    // An edge of contract 1: `caller_hangup` by `caller`, stored as it came, read as remote.
    let old = json!({"reason": "caller_hangup", "hangup_by": "caller"});
    let CallEventData::Ended(ended) = CallEventData::parse("call.ended", &old) else {
        panic!("call.ended not understood");
    };
    assert_eq!(ended.reason, Some(EndReason::CallerHangup));
    assert_eq!(
        ended.hangup_by.as_ref().map(HangupBy::side),
        Some(HangupBy::Remote)
    );
    assert_eq!(CallEventData::Ended(ended).to_payload(), old);
    let new = json!({"reason": "remote_hangup", "hangup_by": "remote"});
    let CallEventData::Ended(ended) = CallEventData::parse("call.ended", &new) else {
        panic!("call.ended not understood");
    };
    assert_eq!(ended.reason, Some(EndReason::RemoteHangup));
    assert_eq!(ended.hangup_by, Some(HangupBy::Remote));
}

#[test]
fn an_attempt_has_one_shape_for_every_outcome_and_old_prose_still_reads() {
    use crate::model::call_payloads::{AttemptOutcome, ProviderAttempt};
    let attempts = json!([
        {"kind": "sip_trunk", "provider_id": "t1", "provider": "first", "reason": "trunk_failed",
         "outcome": {"status": 503, "reason": "Service Unavailable"},
         "started_at_ms": 1_000, "duration_ms": 40},
        {"kind": "sip_trunk", "provider_id": "t2", "provider": "dead", "reason": "trunk_failed",
         "outcome": "timeout", "started_at_ms": 1_040, "duration_ms": 32_000},
        {"kind": "sip_trunk", "provider_id": "t3", "provider": "icmp", "reason": "trunk_failed",
         "outcome": "transport_error", "started_at_ms": 33_040, "duration_ms": 3},
        {"kind": "sip_trunk", "provider_id": "t4", "provider": "open", "reason": "circuit_open",
         "outcome": "skipped_open_circuit"},
        {"kind": "twilio", "provider_id": "p1", "provider": "acct", "reason": "rejected",
         "outcome": "HTTP 400"},
    ]);
    let read: Vec<ProviderAttempt> = serde_json::from_value(attempts.clone()).expect("attempts");
    let outcomes: Vec<&AttemptOutcome> = read.iter().map(|a| &a.outcome).collect();
    assert_eq!(
        outcomes,
        [
            &AttemptOutcome::Response {
                status: 503,
                reason: "Service Unavailable".into()
            },
            &AttemptOutcome::Timeout,
            &AttemptOutcome::TransportError,
            &AttemptOutcome::SkippedOpenCircuit,
            &AttemptOutcome::Other("HTTP 400".into()),
        ]
    );
    assert_eq!(read[0].started_at_ms, Some(1_000));
    assert_eq!(read[3].duration_ms, None);
    assert_eq!(serde_json::to_value(&read).expect("json"), attempts);
}

#[test]
fn the_characters_synthesized_are_read_when_an_edge_counted_them_and_unknown_otherwise() {
    let counted = json!({"reason": "caller_hangup", "agent_characters_synthesized": 80});
    let CallEventData::Ended(ended) = CallEventData::parse("call.ended", &counted) else {
        panic!("call.ended not understood");
    };
    assert_eq!(ended.agent_characters_synthesized, Some(80));
    // An older edge's end: no figure, and none written back.
    let old = json!({"reason": "caller_hangup"});
    let CallEventData::Ended(ended) = CallEventData::parse("call.ended", &old) else {
        panic!("call.ended not understood");
    };
    assert_eq!(ended.agent_characters_synthesized, None);
    assert_eq!(CallEventData::Ended(ended).to_payload(), old);
}

#[test]
fn a_leg_end_reason_from_a_newer_edge_is_kept() {
    let json = json!({"leg": 3, "reason": "moved_to_mars"});
    let CallEventData::LegEnded(ended) = CallEventData::parse("call.leg_ended", &json) else {
        panic!("not a leg end");
    };
    assert_eq!(
        ended.reason,
        crate::model::LegEndReason::Other("moved_to_mars".into())
    );
    assert_eq!(
        CallEventData::LegEnded(ended).to_payload(),
        json,
        "written back as it came"
    );
}
