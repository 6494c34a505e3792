//! A call with a second party: dialling, bridging with the agent muted, listening or
//! whispering, audio crossing the bridge (told apart by tone frequency: the caller sends 440 Hz,
//! the party 1800 Hz, the agent speaks a 140 Hz buzz, found by its 700 Hz harmonic), a failed dial and a warm transfer that
//! goes back to the agent, the bridge's end when a party hangs up, and the legs' limits.

use std::time::Duration;

use freya_shared::model::{CallEventData, EndReason, LegEndReason};

use super::harness::{agent, says, Sim};
use super::parties::{amplitude, tone_level};
use super::scripts::{
    assert_hear_each_other, calls_tool, dial, spoken_since, CALLER_HZ, HEARD, ONE, PARTY_HZ,
    UNHEARD,
};
use crate::call::core::{AgentMode, LegError, LegId, LegRequest, LegSignal};
use crate::call::media::FRAME_SAMPLES;
use crate::call::provider_request::ProviderRequest;
use crate::call::task::CallSignal;

/// The buzz's fifth harmonic (amplitude 1800), on a bin of a 20 ms frame.
const AGENT_HZ: f64 = 700.0;

fn leg_events(sim: &Sim) -> Vec<String> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            CallEventData::LegAdded(a) => Some(format!("added {} {}", a.leg, a.to)),
            CallEventData::LegAnswered(a) => Some(format!("answered {}", a.leg)),
            CallEventData::LegEnded(e) => Some(format!("ended {} {}", e.leg, e.reason)),
            CallEventData::Bridged(b) => Some(format!("bridged {:?} {}", b.legs, b.agent)),
            CallEventData::Unbridged(u) => Some(format!("unbridged {}", u.reason)),
            _ => None,
        })
        .collect()
}

/// A call whose caller sends 440 Hz and whose leg 1 (dialled by the API) answered with 1800 Hz.
fn call_with_party(spec: serde_json::Value) -> Sim {
    let mut sim = Sim::start(&agent(spec), None);
    sim.caller.tone = Some(CALLER_HZ);
    sim.say(60_000);
    let leg = dial(&mut sim, "+4733333333");
    assert_eq!(leg, ONE);
    assert_eq!(
        sim.leg_requests.last().map(|(_, r)| r.clone()),
        Some(LegRequest::Dial {
            leg: ONE,
            to: "+4733333333".into(),
            edge: None,
        })
    );
    sim.run_for(500);
    sim.answer_leg(ONE, Some(PARTY_HZ));
    sim
}

#[test]
fn audio_crosses_a_bridge_both_ways_and_not_before_it() {
    let mut sim = call_with_party(serde_json::json!({}));
    sim.run_for(500);
    let answered = sim.t0 + Duration::from_millis(600);
    assert!(
        sim.party_level(ONE, answered, CALLER_HZ) < UNHEARD,
        "an unbridged party hears nothing of the caller"
    );
    let before = sim.now;
    sim.bridge(&[LegId::FIRST, ONE], AgentMode::Muted)
        .expect("bridge");
    sim.run_for(1000);
    // Past the jitter buffers' first frames.
    let settled = before + Duration::from_millis(100);
    assert_hear_each_other(&sim, settled, "party");
    assert!(
        sim.caller_level(settled, sim.now, CALLER_HZ) < UNHEARD,
        "not itself"
    );
    assert_eq!(
        leg_events(&sim),
        ["added 1 +4733333333", "answered 1", "bridged [0, 1] muted"]
    );
}

#[test]
fn a_whisper_reaches_only_its_leg_while_the_bridged_parties_hear_each_other() {
    let mut sim = call_with_party(serde_json::json!({}));
    // The party listens (its speech would be a barge-in on the whisper).
    for party in &mut sim.parties {
        party.tone = None;
    }
    // The agent speaks (600 ms of buzz) a moment after the whisper bridge is up.
    sim.bridge(&[LegId::FIRST, ONE], AgentMode::Whisper(ONE))
        .expect("bridge");
    let from = sim.now;
    let now = sim.now;
    if let Some(responder) = sim.core.responder.as_mut() {
        responder.announce(now, "The caller wants a refund.", &mut sim.core.media);
    }
    sim.core.handle_timeout(now);
    sim.drain();
    sim.run_for(1200);
    let speaking = |frames: &mut dyn Iterator<Item = &[i16; FRAME_SAMPLES]>| {
        frames.filter(|f| amplitude(f, AGENT_HZ) > 1000.0).count()
    };
    let party_heard_agent = speaking(
        &mut sim
            .party_heard
            .iter()
            .filter(|(at, l, _)| *l == ONE && *at >= from)
            .map(|(_, _, f)| f),
    );
    let caller_heard_agent = speaking(
        &mut sim
            .caller_frames
            .iter()
            .filter(|(at, _)| *at >= from)
            .map(|(_, f)| f),
    );
    assert!(
        party_heard_agent >= 20,
        "the party hears the whisper ({party_heard_agent} frames)"
    );
    assert_eq!(caller_heard_agent, 0, "the caller does not");
    let settled = from + Duration::from_millis(100);
    assert!(
        sim.party_level(ONE, settled, CALLER_HZ) > HEARD,
        "the party hears the caller"
    );
}

/// The audio of each transcription asked for after `from`.
fn transcribed(sim: &Sim, from: std::time::Instant) -> Vec<Vec<i16>> {
    sim.requests
        .iter()
        .filter(|(at, _)| *at >= from)
        .filter_map(|(_, r)| match r {
            ProviderRequest::Transcribe { utterance, .. } => Some(utterance.clone()),
            _ => None,
        })
        .collect()
}

fn level_in(utterance: &[i16], hz: f64) -> f64 {
    tone_level(
        utterance
            .chunks_exact(FRAME_SAMPLES)
            .filter_map(|c| <&[i16; FRAME_SAMPLES]>::try_from(c).ok()),
        hz,
    )
}

#[test]
fn a_muted_agent_hears_nothing_and_a_listening_one_hears_both_parties() {
    for (mode, hears) in [(AgentMode::Muted, false), (AgentMode::Listening, true)] {
        let mut sim = Sim::start(&agent(serde_json::json!({})), None);
        // The caller speaks (the voiced buzz the agent's ear takes for speech) once bridged.
        sim.pause(3000).say(1200).pause(60_000);
        dial(&mut sim, "+4733333333");
        sim.run_for(500);
        sim.answer_leg(ONE, Some(PARTY_HZ));
        sim.run_for(1500);
        sim.bridge(&[LegId::FIRST, ONE], mode).expect("bridge");
        let from = sim.now;
        sim.run_for(2200);
        // The party falls quiet with the caller, so the turn ends.
        for party in &mut sim.parties {
            party.tone = None;
        }
        sim.run_for(3000);
        let turns = transcribed(&sim, from);
        if !hears {
            assert!(
                turns.is_empty(),
                "a muted agent transcribes nothing: {}",
                turns.len()
            );
            continue;
        }
        let utterance = turns
            .first()
            .expect("a listening agent transcribes the caller");
        assert!(
            level_in(utterance, PARTY_HZ) > HEARD / 2.0,
            "and hears the party in the same mix: {}",
            level_in(utterance, PARTY_HZ)
        );
    }
}

#[test]
fn a_failed_dial_is_recorded_and_the_agent_keeps_the_caller() {
    let mut sim = Sim::start(&agent(serde_json::json!({})), None);
    let leg = dial(&mut sim, "+4733333333");
    sim.signal(CallSignal::Leg {
        leg,
        signal: LegSignal::Failed {
            detail: "busy".into(),
        },
    });
    assert!(leg_events(&sim).contains(&"ended 1 dial_failed".to_owned()));
    assert!(sim.ended.is_none(), "the call goes on");
    // A leg that failed cannot be bridged.
    assert_eq!(
        sim.bridge(&[LegId::FIRST, leg], AgentMode::Muted),
        Err(LegError::NotUp(leg))
    );
}

#[test]
fn a_dial_that_never_answers_is_cancelled_at_the_timeout() {
    let mut sim = Sim::start(&agent(serde_json::json!({})), None);
    let leg = dial(&mut sim, "+4733333333");
    sim.run_for(29_000);
    assert!(!leg_events(&sim).iter().any(|e| e.starts_with("ended")));
    sim.run_for(2_000);
    assert!(leg_events(&sim).contains(&"ended 1 no_answer".to_owned()));
    assert!(sim
        .leg_requests
        .iter()
        .any(|(_, r)| *r == LegRequest::Hangup { leg }));
    assert!(sim.ended.is_none());
}

/// The agent asks for a warm transfer on the caller's first turn.
fn warm_transferring(sim: &mut Sim) {
    sim.answers
        .transcripts
        .push_back(Ok("Put me through to sales.".into()));
    sim.answers.completions.push_back(calls_tool(
        100,
        None,
        "t1",
        "transfer_call",
        serde_json::json!({"destination": "+15557654321", "mode": "warm",
                           "whisper": "A caller about a refund."}),
    ));
}

fn transfer_statuses(sim: &Sim) -> Vec<String> {
    sim.events
        .iter()
        .filter_map(|(_, e)| match e {
            CallEventData::Transfer(t) => Some(t.status.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_warm_transfer_nobody_answers_returns_the_caller_to_the_agent_and_tells_the_model() {
    let spec = serde_json::json!({"transfer_destinations": ["+15557654321"]});
    let mut sim = Sim::start(&agent(spec), None);
    warm_transferring(&mut sim);
    sim.answers
        .completions
        .push_back(says(100, "Nobody picked up. Anything else?"));
    sim.say(600);
    sim.run_for(4000);
    assert_eq!(
        leg_events(&sim),
        ["added 1 +15557654321"],
        "dialled, the caller still with the agent"
    );
    sim.run_for(30_000);
    assert!(leg_events(&sim).contains(&"ended 1 no_answer".to_owned()));
    assert_eq!(transfer_statuses(&sim), ["requested", "failed"]);
    let completions = sim.requests_where(|r| matches!(r, ProviderRequest::Complete { .. }));
    assert_eq!(
        completions.len(),
        2,
        "the model is asked again, told of the failure"
    );
    assert!(sim.ended.is_none(), "the caller is still with the agent");
}

#[test]
fn a_warm_transfer_whispers_to_the_party_then_bridges_and_the_agent_leaves() {
    let spec = serde_json::json!({"transfer_destinations": ["+15557654321"]});
    let mut sim = Sim::start(&agent(spec), None);
    warm_transferring(&mut sim);
    sim.say(600);
    sim.run_for(3000);
    sim.caller.tone = Some(CALLER_HZ);
    sim.say(60_000);
    sim.answer_leg(ONE, Some(PARTY_HZ));
    let answered = sim.now;
    sim.run_for(3000);
    let whispered = spoken_since(&sim, answered);
    assert_eq!(whispered, ["A caller about a refund."]);
    assert_eq!(
        leg_events(&sim),
        [
            "added 1 +15557654321",
            "answered 1",
            "bridged [1] whisper",
            "bridged [0, 1] muted"
        ]
    );
    assert_eq!(transfer_statuses(&sim), ["requested", "succeeded"]);
    let late = sim.now - Duration::from_millis(1000);
    assert!(
        sim.caller_level(late, sim.now, PARTY_HZ) > HEARD,
        "caller hears the party"
    );
    assert!(
        sim.party_level(ONE, late, CALLER_HZ) > HEARD,
        "party hears the caller"
    );
}

#[test]
fn a_party_hanging_up_after_the_agent_left_ends_the_call_but_not_while_it_listens() {
    let mut sim = call_with_party(serde_json::json!({}));
    sim.bridge(&[LegId::FIRST, ONE], AgentMode::Listening)
        .expect("bridge");
    sim.run_for(500);
    sim.hang_up_party(ONE);
    sim.run_for(500);
    assert!(
        sim.ended.is_none(),
        "the agent listened: the caller is its own again"
    );
    assert_eq!(
        leg_events(&sim)[2..],
        [
            "bridged [0, 1] listening",
            "ended 1 hangup",
            "unbridged leg_ended"
        ]
    );

    let mut sim = call_with_party(serde_json::json!({}));
    sim.bridge(&[LegId::FIRST, ONE], AgentMode::Muted)
        .expect("bridge");
    sim.run_for(500);
    sim.hang_up_party(ONE);
    let (_, ending) = sim.ended.as_ref().expect("the caller is hung up");
    assert_eq!(ending.record.reason, Some(EndReason::BridgeEnded));
    assert!(ending.hang_up, "we send the caller our BYE");
}

#[test]
fn the_caller_hanging_up_hangs_up_every_other_leg() {
    let mut sim = call_with_party(serde_json::json!({}));
    let two = dial(&mut sim, "+4744444444");
    sim.signal(CallSignal::Hangup {
        reason: EndReason::CallerHangup,
        by_us: false,
    });
    let hung_up: Vec<LegId> = sim
        .leg_requests
        .iter()
        .filter_map(|(_, r)| match r {
            LegRequest::Hangup { leg } => Some(*leg),
            _ => None,
        })
        .collect();
    assert_eq!(hung_up, [ONE, two]);
    let events = leg_events(&sim);
    assert!(events.contains(&"ended 1 call_ended".to_owned()));
    assert!(events.contains(&"ended 2 call_ended".to_owned()));
}

#[test]
fn bridges_of_one_leg_twice_of_dead_or_unknown_legs_are_refused() {
    let mut sim = call_with_party(serde_json::json!({}));
    assert_eq!(
        sim.bridge(&[ONE, ONE], AgentMode::Muted),
        Err(LegError::SameLeg(ONE))
    );
    assert_eq!(
        sim.bridge(&[LegId::FIRST, LegId(7)], AgentMode::Muted),
        Err(LegError::UnknownLeg(LegId(7)))
    );
    assert_eq!(
        sim.bridge(&[LegId::FIRST, ONE], AgentMode::Whisper(LegId(2))),
        Err(LegError::WhisperOutsideBridge(LegId(2)))
    );
    sim.hang_up_party(ONE);
    assert_eq!(
        sim.bridge(&[LegId::FIRST, ONE], AgentMode::Muted),
        Err(LegError::NotUp(ONE))
    );
    let now = sim.now;
    assert_eq!(sim.core.unbridge(now), Err(LegError::NoBridge));
}

#[test]
fn a_call_has_at_most_max_legs_at_once_and_a_bounded_number_in_all() {
    let mut sim = Sim::start(&agent(serde_json::json!({})), None);
    let now = sim.now;
    for n in 1..=3 {
        assert_eq!(sim.core.dial(now, "+1", "api", None), Ok(LegId(n)));
    }
    assert_eq!(
        sim.core.dial(now, "+1", "api", None),
        Err(LegError::TooManyLegs { max: 4 })
    );
    // A leg that ends makes room, up to the bound on dials per call.
    let mut dials = 3;
    for n in 1..=20u8 {
        let now = sim.now;
        let _ = sim.core.hang_up_leg(now, LegId(n));
        if sim.core.dial(now, "+1", "api", None).is_ok() {
            dials += 1;
        }
    }
    sim.drain();
    assert_eq!(dials, usize::from(crate::call::core::MAX_DIALS_PER_CALL));
    // A leg id the control plane chose that is not the next one is refused and recorded.
    let now = sim.now;
    assert!(sim.core.dial(now, "+1", "api", Some(LegId(99))).is_err());
    sim.drain();
    assert!(sim.events.iter().any(|(_, e)| matches!(
        e,
        CallEventData::LegEnded(l) if l.leg == 99 && l.reason == LegEndReason::Refused
    )));
}

#[test]
fn unbridging_gives_the_caller_back_to_the_agent() {
    let mut sim = Sim::start(&agent(serde_json::json!({})), None);
    // The caller speaks once while the agent is muted, and once after the bridge is gone.
    sim.pause(1500)
        .say(1000)
        .pause(3000)
        .say(1000)
        .pause(60_000);
    dial(&mut sim, "+4733333333");
    sim.run_for(200);
    sim.answer_leg(ONE, None);
    sim.bridge(&[LegId::FIRST, ONE], AgentMode::Muted)
        .expect("bridge");
    let from = sim.now;
    sim.run_for(4000);
    assert!(transcribed(&sim, from).is_empty(), "muted: nothing heard");
    let now = sim.now;
    sim.core.unbridge(now).expect("unbridge");
    sim.drain();
    let back = sim.now;
    sim.run_for(4000);
    assert_eq!(
        transcribed(&sim, back).len(),
        1,
        "the agent hears the caller again"
    );
    assert!(leg_events(&sim).contains(&"unbridged requested".to_owned()));
    assert!(sim.ended.is_none());
}
