//! A leg that another edge carries, in simulated time: dialled on that edge (the request and
//! the records name it), answered, bridged with its audio crossing both ways over the
//! (simulated) mesh, lost frames concealed rather than heard as gaps, the edge going silent or
//! its connection dropping ending the leg as `mesh_lost` without ending the call, and a warm
//! transfer whose summary reaches only the remote party before the bridge.

use std::time::{Duration, Instant};

use freya_shared::model::{CallEventData, LegEndReason};

use super::harness::{agent, Sim};
use super::parties::amplitude;
use super::scripts::{
    assert_hear_each_other, spoken_since, CALLER_HZ, HEARD, ONE, PARTY_HZ, UNHEARD,
};
use crate::call::core::{AgentMode, LegCommand, LegId, LegRequest, LegSignal};
use crate::call::task::CallSignal;

fn ended(sim: &Sim) -> Vec<(u8, LegEndReason, Option<String>)> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            CallEventData::LegEnded(e) => Some((e.leg, e.reason.clone(), e.detail.clone())),
            _ => None,
        })
        .collect()
}

/// The caller sends 440 Hz and keeps talking while the API dials leg 1 on `edge-b` (with
/// `whisper` said to that party alone, when given).
fn dial_on_edge_b(sim: &mut Sim, whisper: Option<&str>) {
    sim.caller.tone = Some(CALLER_HZ);
    sim.say(60_000);
    sim.signal(CallSignal::Legs(LegCommand::Dial {
        leg: ONE,
        to: "+4733333333".into(),
        edge: Some("edge-b".into()),
        whisper: whisper.map(str::to_owned),
    }));
}

/// A call whose caller sends 440 Hz, with leg 1 dialled on `edge-b` by the API and answered
/// there (its party sends 1800 Hz over the mesh).
fn call_with_remote_party() -> Sim {
    let mut sim = Sim::start(&agent(serde_json::json!({})), None);
    dial_on_edge_b(&mut sim, None);
    assert_eq!(
        sim.leg_requests.last().map(|(_, r)| r.clone()),
        Some(LegRequest::Dial {
            leg: ONE,
            to: "+4733333333".into(),
            edge: Some("edge-b".into()),
        })
    );
    sim.run_for(500);
    sim.answer_remote_leg(ONE, Some(PARTY_HZ));
    sim
}

#[test]
fn a_remote_leg_s_records_name_its_edge_and_its_audio_crosses_a_bridge_both_ways() {
    let mut sim = call_with_remote_party();
    let added = sim.events.iter().find_map(|(_, e)| match e {
        CallEventData::LegAdded(a) => Some(a.edge.clone()),
        _ => None,
    });
    assert_eq!(added, Some(Some("edge-b".into())));
    let answered = sim.events.iter().find_map(|(_, e)| match e {
        CallEventData::LegAnswered(a) => Some(a.edge.clone()),
        _ => None,
    });
    assert_eq!(answered, Some(Some("edge-b".into())));
    let before = sim.now;
    sim.bridge(&[LegId::FIRST, ONE], AgentMode::Muted)
        .expect("bridge");
    sim.run_for(1000);
    let settled = before + Duration::from_millis(200);
    assert_hear_each_other(&sim, settled, "remote party");
    // One frame per tick went to the other edge.
    let frames = sim
        .party_heard
        .iter()
        .filter(|(at, l, _)| *l == ONE && *at >= settled)
        .count();
    assert!((38..=42).contains(&frames), "{frames} frames in 800 ms");
}

#[test]
fn lost_mesh_frames_are_concealed_not_heard_as_gaps() {
    let mut sim = call_with_remote_party();
    if let Some(party) = sim.parties.iter_mut().find(|p| p.leg == ONE) {
        party.loss_every = 5;
    }
    let before = sim.now;
    sim.bridge(&[LegId::FIRST, ONE], AgentMode::Muted)
        .expect("bridge");
    sim.run_for(2000);
    let settled = before + Duration::from_millis(300);
    let frames: Vec<f64> = sim
        .caller_frames
        .iter()
        .filter(|(at, _)| *at >= settled)
        .map(|(_, f)| amplitude(f, PARTY_HZ))
        .collect();
    let gaps = frames.iter().filter(|a| **a < UNHEARD).count();
    assert!(frames.len() > 80, "{} frames", frames.len());
    assert_eq!(
        gaps, 0,
        "a lost frame is a fading repeat, never a silent frame"
    );
    let concealed = sim
        .core
        .legs
        .get(ONE)
        .and_then(|p| p.remote.as_ref())
        .map(|r| r.stats().concealed)
        .unwrap_or(0);
    assert!(concealed >= 15, "{concealed} losses concealed");
}

#[test]
fn a_remote_edge_gone_silent_ends_its_leg_as_mesh_lost_and_the_call_goes_on() {
    let mut sim = call_with_remote_party();
    sim.bridge(&[LegId::FIRST, ONE], AgentMode::Listening)
        .expect("bridge");
    sim.run_for(1000);
    // The other edge dies: nothing more comes over the mesh.
    sim.parties.retain(|p| p.leg != ONE);
    let silent_from = sim.now;
    sim.run_for(5000);
    let ends = ended(&sim);
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0].0, 1);
    assert_eq!(ends[0].1, LegEndReason::MeshLost);
    assert!(ends[0].2.as_deref().is_some_and(|d| d.contains("edge-b")));
    let at = sim
        .events
        .iter()
        .find(|(_, e)| matches!(e, CallEventData::LegEnded(_)))
        .map(|(at, _)| *at)
        .expect("ended");
    let after = at - silent_from;
    assert!(
        after >= Duration::from_secs(3) && after < Duration::from_millis(3200),
        "ended {after:?} after the silence began"
    );
    assert!(sim
        .leg_requests
        .iter()
        .any(|(_, r)| *r == LegRequest::Hangup { leg: ONE }));
    assert!(sim.ended.is_none(), "the call goes on with its agent");
    assert!(sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, CallEventData::Unbridged(_))));
}

#[test]
fn a_dropped_mesh_connection_ends_the_remote_leg_at_once_with_its_reason() {
    let mut sim = call_with_remote_party();
    sim.run_for(200);
    sim.parties.retain(|p| p.leg != ONE);
    sim.signal(CallSignal::Leg {
        leg: ONE,
        signal: LegSignal::MeshLost {
            detail: "the mesh connection to edge edge-b dropped".into(),
        },
    });
    let ends = ended(&sim);
    assert_eq!(
        ends,
        [(
            1,
            LegEndReason::MeshLost,
            Some("the mesh connection to edge edge-b dropped".into())
        )]
    );
    sim.run_for(1000);
    assert!(sim.ended.is_none());
}

/// The bridges the call made, in order: their legs and the agent's part.
fn bridges(sim: &Sim) -> Vec<String> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            CallEventData::Bridged(b) => Some(format!("{:?} {}", b.legs, b.agent)),
            _ => None,
        })
        .collect()
}

/// When the second bridge (the one after the whisper) was made.
fn bridged_at(sim: &Sim) -> Instant {
    sim.events
        .iter()
        .filter(|(_, e)| matches!(e, CallEventData::Bridged(_)))
        .map(|(at, _)| *at)
        .nth(1)
        .expect("bridged")
}

/// Whether a frame holds sound.
fn loud(frame: &[i16; 160]) -> bool {
    frame.iter().any(|s| s.unsigned_abs() > 1000)
}

/// The frames of sound leg 1's party received from `from` until `until`.
fn loud_to_party(sim: &Sim, from: Instant, until: Instant) -> usize {
    sim.party_heard
        .iter()
        .filter(|(at, l, f)| *l == ONE && *at >= from && *at < until && loud(f))
        .count()
}

#[test]
fn a_warm_transfer_to_a_remote_leg_whispers_the_summary_to_it_alone_then_bridges() {
    let mut sim = Sim::start(&agent(serde_json::json!({})), None);
    sim.run_for(3000);
    dial_on_edge_b(&mut sim, Some("A caller about a refund."));
    sim.run_for(300);
    sim.answer_remote_leg(ONE, None);
    let answered = sim.now;
    sim.run_for(4000);
    let whispered = spoken_since(&sim, answered);
    assert_eq!(whispered, ["A caller about a refund."]);
    assert_eq!(bridges(&sim), ["[1] whisper", "[0, 1] muted"]);
    // The whisper reached the remote party (as mesh frames) and not the caller.
    let bridged_at = bridged_at(&sim);
    let to_party = loud_to_party(&sim, answered, bridged_at);
    assert!(
        to_party > 10,
        "the remote party heard the summary ({to_party} frames)"
    );
    let caller_heard_whisper = sim
        .caller_frames
        .iter()
        .filter(|(at, _)| *at >= answered + Duration::from_millis(100) && *at < bridged_at)
        .filter(|(_, f)| loud(f))
        .count();
    assert_eq!(
        caller_heard_whisper, 0,
        "the caller hears nothing of the whisper"
    );
    let late = sim.now - Duration::from_millis(500);
    assert!(
        sim.party_level(ONE, late, CALLER_HZ) > HEARD,
        "then party hears the caller"
    );
}

/// A workflow whose one node is a warm transfer with a templated summary.
fn warm_flow() -> crate::call::responder::PinnedWorkflow {
    let definition = serde_json::json!({"name": "Handoff", "start": "handoff",
    "voice": {"tts": {"provider": "espeak"},
              "stt": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"},
              "llm": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"}},
    "nodes": [
     {"id": "handoff", "type": "transfer", "to": "+15557654321", "mode": "warm",
      "summary": "A caller from the workflow about a refund."}
    ]});
    crate::call::responder::PinnedWorkflow {
        config: freya_shared::snapshot::WorkflowConfig {
            id: "wf-warm".into(),
            workspace_id: "ws-1".into(),
            version: 1,
            definition: serde_json::from_value(definition).expect("workflow"),
        },
        agents: Vec::new(),
    }
}

#[test]
fn a_workflow_transfer_node_in_warm_mode_dials_whispers_its_summary_then_bridges() {
    let mut sim = Sim::start(&agent(serde_json::json!({})), Some(&warm_flow()));
    sim.caller.tone = Some(CALLER_HZ);
    sim.say(60_000);
    sim.run_for(500);
    let dialled = sim.leg_requests.iter().find_map(|(_, r)| match r {
        LegRequest::Dial { to, edge, .. } => Some((to.clone(), edge.clone())),
        _ => None,
    });
    assert_eq!(dialled, Some(("+15557654321".to_owned(), None)));
    assert!(sim.dialogs.is_empty(), "no blind transfer (REFER)");
    sim.answer_leg(ONE, None);
    let answered = sim.now;
    sim.run_for(5000);
    let spoken = spoken_since(&sim, answered);
    assert_eq!(spoken, ["A caller from the workflow about a refund."]);
    assert_eq!(bridges(&sim), ["[1] whisper", "[0, 1] muted"]);
    let heard = loud_to_party(&sim, answered, bridged_at(&sim));
    assert!(
        heard > 10,
        "the party heard the summary before the bridge ({heard} frames)"
    );
    assert!(sim.ended.is_none(), "the call goes on, bridged");
}
