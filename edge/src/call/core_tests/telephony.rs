//! The call's telephony: digits in a workflow, transfers, the maximum duration, hold.

use std::time::Duration;

use freya_shared::model::{CallEventData, EndReason, HangupBy};
use freya_shared::snapshot::WorkflowConfig;

use super::harness::{agent, says, Answers, Sim};
use super::scripts::{
    calls_tool, first_token_timeout_record, provider_failures, speak_text, spoken,
};
use crate::call::core::CallRequest;
use crate::call::provider_request::ProviderRequest;
use crate::call::responder::PinnedWorkflow;
use crate::call::task::CallSignal;
use crate::llm::{FallbackNotice, FallbackReason, LlmEvent};
use crate::sip::endpoint::TransferProgress;
use crate::sip::sdp::Direction;

fn menu() -> PinnedWorkflow {
    let definition = serde_json::json!({"name": "Menu", "start": "greet",
    "voice": {"tts": {"provider": "espeak"},
              "stt": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"},
              "llm": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"}},
    "nodes": [
     {"id": "greet", "type": "say", "text": "Press one for sales, two for accounts.", "next": "menu"},
     {"id": "menu", "type": "gather", "input": ["dtmf"], "max_digits": 1, "timeout_ms": 30000, "save_as": "choice", "next": "route"},
     {"id": "route", "type": "condition", "branches": [{"when": "choice == '1'", "next": "sales"}, {"when": "choice == '2'", "next": "accounts"}], "else": "menu"},
     {"id": "sales", "type": "say", "text": "Sales here.", "next": "bye"},
     {"id": "accounts", "type": "say", "text": "Billing here.", "next": "bye"},
     {"id": "bye", "type": "end", "text": "Goodbye."}
    ]});
    PinnedWorkflow {
        config: WorkflowConfig {
            id: "wf-1".into(),
            workspace_id: "ws-1".into(),
            version: 3,
            definition: serde_json::from_value(definition).expect("workflow"),
        },
        agents: Vec::new(),
    }
}

#[test]
fn a_digit_in_a_workflow_gather_takes_its_branch_to_the_end() {
    let mut sim = Sim::start(&agent(serde_json::json!({})), Some(&menu()));
    sim.run_for(2000);
    assert_eq!(spoken(&sim), ["Press one for sales, two for accounts."]);
    sim.signal(CallSignal::Dtmf('2'));
    sim.run_for(4000);
    assert_eq!(
        spoken(&sim),
        [
            "Press one for sales, two for accounts.",
            "Billing here.",
            "Goodbye."
        ]
    );
    assert!(sim.events.iter().any(
        |(_, e)| matches!(e, CallEventData::Dtmf(d) if d.digit == "2" && d.via == "sip_info")
    ));
    assert!(sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, CallEventData::WorkflowStep(_))));
    let (_, ending) = sim
        .ended
        .as_ref()
        .expect("the flow ends the call after its goodbye");
    assert_eq!(
        ending.record.reason,
        Some(EndReason::from("workflow_completed"))
    );
    assert!(ending.hang_up, "we send the BYE");
    let goodbye = sim.last_sound().expect("the goodbye was heard");
    assert!(goodbye <= sim.ended.as_ref().map(|(at, _)| *at).unwrap_or(goodbye));
}

/// An agent that transfers to `+15557654321` on each of the caller's two turns (the built-in
/// tool's call is the whole reply: the transfer follows it); told of the first transfer's
/// failure, the model answers "They are busy. Anything else?".
fn transferring(sim: &mut Sim) {
    for turn in 0..2 {
        if turn == 1 {
            sim.answers
                .completions
                .push_back(says(100, "They are busy. Anything else?"));
        }
        sim.answers
            .transcripts
            .push_back(Ok("Put me through.".into()));
        sim.answers.completions.push_back(calls_tool(
            100,
            None,
            "t1",
            "transfer_call",
            serde_json::json!({"destination": "+15557654321"}),
        ));
    }
}

#[test]
fn a_transfer_is_asked_of_the_dialog_a_failure_lets_the_agent_go_on_and_success_ends_the_call() {
    let spec = serde_json::json!({"transfer_destinations": ["+15557654321"]});
    let mut sim = Sim::start(&agent(spec), None);
    transferring(&mut sim);
    sim.say(600);
    sim.run_for(4000);
    let transfer = CallRequest::Transfer {
        destination: "+15557654321".into(),
    };
    assert_eq!(
        sim.dialogs
            .iter()
            .map(|(_, d)| d.clone())
            .collect::<Vec<_>>(),
        [transfer]
    );
    sim.signal(CallSignal::Transfer(TransferProgress::Failed {
        reason: "486 Busy Here".into(),
    }));
    sim.run_for(2000);
    assert!(
        sim.ended.is_none(),
        "a failed transfer does not end the call"
    );
    assert!(
        spoken(&sim).iter().any(|s| s == "They are busy."),
        "the model's answer to the failure is spoken: {:?}",
        spoken(&sim)
    );
    let told = sim
        .requests_where(|r| matches!(r, ProviderRequest::Complete { .. }))
        .iter()
        .rev()
        .find_map(|(_, r)| match r {
            ProviderRequest::Complete { request, .. } => {
                request.messages.iter().find_map(|m| match m {
                    crate::llm::ChatMessage::Tool { content, .. } => Some(content.clone()),
                    _ => None,
                })
            }
            _ => None,
        });
    assert_eq!(
        told.as_deref(),
        Some(r#"{"reason":"Busy Here","status":486,"transferred":false}"#),
        "the model reads the failure as the transfer's result"
    );
    sim.say(600);
    sim.run_for(4000);
    assert_eq!(sim.dialogs.len(), 2, "the agent asks again");
    sim.signal(CallSignal::Transfer(TransferProgress::Succeeded {
        code: 200,
    }));
    let (_, ending) = sim
        .ended
        .as_ref()
        .expect("a transfer that succeeds ends our leg");
    assert_eq!(ending.record.reason, Some(EndReason::Transferred));
    assert_eq!(
        ending.record.transferred_to,
        Some(Some("+15557654321".into()))
    );
    assert!(ending.hang_up);
    let statuses: Vec<_> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            CallEventData::Transfer(t) => Some(t.status.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(statuses, ["requested", "failed", "requested", "succeeded"]);
}

#[test]
fn the_maximum_duration_ends_the_call_with_our_hang_up() {
    let mut sim = Sim::start(&agent(serde_json::json!({"max_call_seconds": 3})), None);
    sim.say(400).pause(400).say(400);
    sim.run_for(10_000);
    let (at, ending) = sim.ended.as_ref().expect("the call ends");
    assert_eq!(sim.ms(*at), 3000, "exactly at the limit");
    assert_eq!(ending.record.reason, Some(EndReason::MaxDuration));
    assert_eq!(ending.record.hangup_by, Some(HangupBy::System));
    assert_eq!(ending.record.duration_ms, Some(3000));
    assert!(ending.hang_up);
    assert!(
        sim.core.poll_timeout().is_none() && sim.core.poll_output().is_none(),
        "nothing after the end"
    );
}

#[test]
fn a_held_call_pauses_the_agent_and_sends_nothing_until_resumed() {
    let mut sim = Sim::start(
        &agent(serde_json::json!({"first_message": "Hello, this is a long greeting."})),
        None,
    );
    sim.answers.speech_ms = 2000;
    sim.answers.turn("I am back.", 100, "Welcome back.");
    sim.run_for(500);
    assert!(
        sim.first_sound_after(sim.t0).is_some(),
        "the greeting plays"
    );
    sim.signal(CallSignal::Direction(Direction::RecvOnly));
    let held_at = sim.now;
    assert!(sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, CallEventData::Held(_))));
    // The caller talks to someone else while holding: the agent does not listen.
    sim.say(800).pause(1000);
    sim.run_for(3000);
    assert!(
        sim.heard.iter().all(|(at, _)| *at <= held_at),
        "nothing is sent while the call is held"
    );
    assert!(
        sim.requests
            .iter()
            .all(|(_, r)| !matches!(r, ProviderRequest::Transcribe { .. })),
        "the agent is paused"
    );
    sim.signal(CallSignal::Direction(Direction::SendRecv));
    let resumed_at = sim.now;
    assert!(sim
        .events
        .iter()
        .any(|(_, e)| matches!(e, CallEventData::Resumed(_))));
    sim.run_for(500);
    assert!(
        sim.first_sound_after(resumed_at).is_some(),
        "the greeting goes on where it stopped"
    );
    sim.say(600);
    sim.run_for(4000);
    assert_eq!(
        sim.requests
            .iter()
            .filter(|(_, r)| matches!(r, ProviderRequest::Transcribe { .. }))
            .count(),
        1
    );
    assert!(sim.ended.is_none());
}

#[test]
fn an_agent_node_speaks_on_its_own_pipeline_which_is_closed_when_it_hands_the_call_back() {
    let mut second = agent(serde_json::json!({}));
    second.id = "agent-2".into();
    let definition = serde_json::json!({"name": "Handoff", "start": "talk",
    "voice": {"tts": {"provider": "espeak"},
              "stt": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"},
              "llm": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"}},
    "nodes": [
     {"id": "talk", "type": "agent", "agent_id": "agent-2",
      "exits": [{"when_caller": "wants a person", "next": "bye"}], "max_turns": 1, "next": "bye"},
     {"id": "bye", "type": "end", "text": "Goodbye."}
    ]});
    let workflow = PinnedWorkflow {
        config: WorkflowConfig {
            id: "wf-2".into(),
            workspace_id: "ws-1".into(),
            version: 1,
            definition: serde_json::from_value(definition).expect("workflow"),
        },
        agents: vec![second],
    };
    let mut sim = Sim::start(&agent(serde_json::json!({})), Some(&workflow));
    sim.answers.turn("Hello.", 100, "Hi, how can I help?");
    sim.say(600);
    sim.run_for(2500);
    let opened: Vec<_> = sim
        .requests
        .iter()
        .filter_map(|(_, r)| match r {
            ProviderRequest::Open { pipeline, .. } => Some(*pipeline),
            _ => None,
        })
        .collect();
    assert_eq!(
        opened.len(),
        2,
        "the flow's voice and the agent's: {opened:?}"
    );
    // The agent hears the caller's turn on its own pipeline.
    let agent_voice = sim
        .requests
        .iter()
        .find_map(|(_, r)| match r {
            ProviderRequest::Transcribe { pipeline, .. } => Some(*pipeline),
            _ => None,
        })
        .expect("the caller's turn is transcribed");
    let flow_voice = opened
        .iter()
        .copied()
        .find(|p| *p != agent_voice)
        .expect("two pipelines");
    let closed_at = sim
        .requests
        .iter()
        .find(|(_, r)| matches!(r, ProviderRequest::Close { pipeline } if *pipeline == agent_voice))
        .map(|(at, _)| *at)
        .expect("the agent's pipeline is closed once it has answered its one turn");
    let on = |voice| {
        sim.requests
            .iter()
            .filter(|(_, r)| r.pipeline() == Some(voice))
            .filter_map(|(_, r)| speak_text(r))
            .collect::<Vec<_>>()
    };
    assert_eq!(on(agent_voice), ["Hi, how can I help?"]);
    assert_eq!(on(flow_voice), ["Goodbye."]);
    // A late result of the closed pipeline changes nothing, even one whose reply and sentence
    // ids are those of the flow's goodbye.
    let (reply, sentence) = sim
        .requests
        .iter()
        .find_map(|(_, r)| match r {
            ProviderRequest::Speak {
                pipeline,
                reply,
                sentence,
                ..
            } if *pipeline == flow_voice => Some((*reply, *sentence)),
            _ => None,
        })
        .expect("the goodbye");
    sim.deliver(crate::call::provider_request::ProviderResult::Voice {
        pipeline: agent_voice,
        input: crate::call::pipeline::PipelineInput::Audio {
            reply,
            sentence,
            samples: vec![8000; 8000],
        },
    });
    sim.run_for(3000);
    let (ended_at, ending) = sim.ended.as_ref().expect("the flow ends after its goodbye");
    assert_eq!(
        ending.record.reason,
        Some(EndReason::from("workflow_completed"))
    );
    let loud = sim
        .heard
        .iter()
        .filter(|(at, loud)| *loud && *at > closed_at && at <= ended_at)
        .count();
    assert_eq!(
        loud,
        600 / 20,
        "only the goodbye's 600 ms after the agent's pipeline closed"
    );
}

/// A workflow whose first line the flow's model writes, from a prompt.
fn greeting_written_by_the_model() -> PinnedWorkflow {
    let definition = serde_json::json!({"name": "Written", "start": "hi",
    "voice": {"tts": {"provider": "espeak"},
              "stt": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"},
              "llm": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"}},
    "nodes": [
     {"id": "hi", "type": "say", "prompt": "Greet the caller warmly", "next": "bye"},
     {"id": "bye", "type": "end"}
    ]});
    PinnedWorkflow {
        config: WorkflowConfig {
            id: "wf-3".into(),
            workspace_id: "ws-1".into(),
            version: 1,
            definition: serde_json::from_value(definition).expect("workflow"),
        },
        agents: Vec::new(),
    }
}

#[test]
fn a_workflow_line_the_fallback_model_wrote_is_on_the_record_and_spoken() {
    let notice = LlmEvent::FellBack(FallbackNotice {
        primary: "openai/gpt-4o-mini".into(),
        fallback: "anthropic/claude-haiku-4-5".into(),
        reason: FallbackReason::FirstTokenTimeout {
            after: Duration::from_millis(800),
        },
    });
    let mut completion = vec![(Duration::from_millis(800), Ok(notice))];
    completion.extend(says(100, "Hello there!"));
    // The flow asks for its line as it starts: the answer is ready before.
    let mut answers = Answers::default();
    answers.completions.push_back(completion);
    let mut sim = Sim::start_with(
        &agent(serde_json::json!({})),
        Some(&greeting_written_by_the_model()),
        answers,
    );
    sim.run_for(4000);
    assert_eq!(provider_failures(&sim), [first_token_timeout_record()]);
    assert!(
        spoken(&sim).iter().any(|line| line == "Hello there!"),
        "the fallback's line is spoken: {:?}",
        spoken(&sim)
    );
}

/// A stalled edge skips the ticks it missed (the pacer sends no burst), but a recorded call's
/// recording keeps them as silence: it stays as long as the call.
#[test]
fn a_stall_skips_ticks_and_the_recording_still_lasts_as_long_as_the_call() {
    let agent = agent(serde_json::json!({"record": true}));
    let mut sim = Sim::start(&agent, None);
    sim.run_for(1_000);
    // The whole process stalls for a second: nothing runs, then time has moved on.
    sim.now += std::time::Duration::from_millis(1_000);
    sim.run_for(1_000);
    let elapsed = sim.ms(sim.now);
    let ticks = sim.recorded.len() as u64;
    assert!(
        ticks + 2 >= elapsed / 20 && ticks <= elapsed / 20 + 1,
        "{ticks} recorded ticks over {elapsed} ms"
    );
    let sent = sim.heard.len() as u64;
    assert!(
        sent + 40 < elapsed / 20,
        "the stall skipped ticks: {sent} packets over {elapsed} ms"
    );
}
