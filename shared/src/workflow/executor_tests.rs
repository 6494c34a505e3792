//! Executor tests over every node type and error path, in simulated time: each case scripts a
//! call (events and deadlines at so many milliseconds) and states every action the call task
//! must carry out and how the flow ends.

use std::time::Duration;

use serde_json::json;

use super::test_flows::*;
use super::{
    AgentExit, Executor, FailureReason, StepDetail, WorkflowAction, WorkflowEvent, WorkflowOutcome,
};

const GREETING: &str = "Welcome to Acme. Press one for sales, two for accounts.";

struct Case {
    name: &'static str,
    flow: serde_json::Value,
    script: Vec<Input>,
    actions: Vec<WorkflowAction>,
    outcome: Option<WorkflowOutcome>,
}

fn crm_request() -> WorkflowAction {
    WorkflowAction::CallFunction {
        url: "https://crm.example/customers".into(),
        method: "POST".into(),
        headers: vec![("X-Call".into(), "call-1".into())],
        body: Some(json!({"phone": "+15550100", "source": "ivr"})),
        timeout: Duration::from_millis(3000),
    }
}

fn crm_answer(ms: u64, status: u16, body: serde_json::Value) -> Input {
    Input::Event(
        ms,
        WorkflowEvent::FunctionResult {
            status,
            body,
            elapsed: Duration::from_millis(ms),
        },
    )
}

fn run_agent() -> WorkflowAction {
    WorkflowAction::RunAgent {
        agent_id: SALES_AGENT.into(),
        exits: vec!["wants to speak to a person".into()],
        max_turns: Some(20),
    }
}

fn agent_exit(ms: u64, exit: AgentExit) -> Input {
    Input::Event(ms, WorkflowEvent::AgentExited(exit))
}

fn failed(reason: FailureReason) -> Option<WorkflowOutcome> {
    Some(WorkflowOutcome::Failed { reason })
}

fn cases() -> Vec<Case> {
    let completed = Some(WorkflowOutcome::Completed);
    vec![
        Case {
            name: "pressing two after the greeting plays the accounts line",
            flow: support_line(),
            script: vec![spoken(4000), digits(5200, "2"), spoken(7000)],
            actions: vec![
                speak(GREETING),
                listen_menu(),
                speak("Connecting you to billing."),
                hangup(Some("Goodbye.")),
            ],
            outcome: completed.clone(),
        },
        Case {
            name: "digits pressed during the greeting answer the menu without listening",
            flow: support_line(),
            script: vec![digits(1500, "2"), spoken(4000), spoken(6000)],
            actions: vec![
                speak(GREETING),
                speak("Connecting you to billing."),
                hangup(Some("Goodbye.")),
            ],
            outcome: completed.clone(),
        },
        Case {
            name: "a spoken choice is saved like digits and hands the call to the agent",
            flow: support_line(),
            script: vec![
                spoken(4000),
                Input::Event(6000, WorkflowEvent::Utterance(" 1 ".into())),
            ],
            actions: vec![speak(GREETING), listen_menu(), run_agent()],
            outcome: None,
        },
        Case {
            name: "an unknown choice takes else back to the menu",
            flow: support_line(),
            script: vec![spoken(4000), digits(5000, "9")],
            actions: vec![speak(GREETING), listen_menu(), listen_menu()],
            outcome: None,
        },
        Case {
            name: "silence retries the gather then fails the call without a no_input branch",
            flow: support_line(),
            script: vec![
                spoken(4000),
                Input::Tick(8999),
                Input::Tick(9000),
                Input::Tick(14000),
                Input::Tick(19000),
            ],
            actions: vec![
                speak(GREETING),
                listen_menu(),
                listen_menu(),
                listen_menu(),
                hangup(None),
            ],
            outcome: failed(FailureReason::NoInput),
        },
        Case {
            name: "the agent leaving by its exit condition transfers the call",
            flow: support_line(),
            script: vec![
                digits(100, "1"),
                spoken(4000),
                agent_exit(60_000, AgentExit::Condition(0)),
            ],
            actions: vec![
                speak(GREETING),
                run_agent(),
                WorkflowAction::Transfer {
                    to: "+15551234567".into(),
                    warm: None,
                },
            ],
            outcome: Some(WorkflowOutcome::Transferred),
        },
        Case {
            name: "the agent reaching max turns goes to next",
            flow: support_line(),
            script: vec![
                digits(100, "1"),
                spoken(4000),
                agent_exit(90_000, AgentExit::MaxTurns),
            ],
            actions: vec![speak(GREETING), run_agent(), hangup(Some("Goodbye."))],
            outcome: completed.clone(),
        },
        Case {
            name: "an agent exit index that does not exist leaves by next",
            flow: support_line(),
            script: vec![
                digits(100, "1"),
                spoken(4000),
                agent_exit(9000, AgentExit::Condition(7)),
            ],
            actions: vec![speak(GREETING), run_agent(), hangup(Some("Goodbye."))],
            outcome: completed.clone(),
        },
        Case {
            name: "a gold customer from the lookup is greeted by name",
            flow: crm_lookup(),
            script: vec![
                crm_answer(120, 200, json!({"tier": "gold", "name": "Ada"})),
                spoken(2000),
            ],
            actions: vec![crm_request(), speak("Welcome back, Ada."), hangup(None)],
            outcome: completed.clone(),
        },
        Case {
            name: "another tier from the lookup takes else",
            flow: crm_lookup(),
            script: vec![crm_answer(120, 201, json!({"tier": "basic"})), spoken(2000)],
            actions: vec![crm_request(), speak("Thanks for calling."), hangup(None)],
            outcome: completed.clone(),
        },
        Case {
            name: "a lookup answered with an error status takes on_error",
            flow: crm_lookup(),
            script: vec![crm_answer(120, 503, json!(null)), spoken(2000)],
            actions: vec![crm_request(), speak("Our systems are down."), hangup(None)],
            outcome: completed.clone(),
        },
        Case {
            name: "a lookup that cannot connect takes on_error",
            flow: crm_lookup(),
            script: vec![
                Input::Event(
                    40,
                    WorkflowEvent::FunctionFailed {
                        reason: "connection refused".into(),
                    },
                ),
                spoken(2000),
            ],
            actions: vec![crm_request(), speak("Our systems are down."), hangup(None)],
            outcome: completed.clone(),
        },
        Case {
            name:
                "a lookup that outlives its timeout takes on_error and its late answer is ignored",
            flow: crm_lookup(),
            script: vec![
                Input::Tick(2999),
                Input::Tick(3000),
                crm_answer(3100, 200, json!({"tier": "gold"})),
                spoken(5000),
            ],
            actions: vec![crm_request(), speak("Our systems are down."), hangup(None)],
            outcome: completed.clone(),
        },
        Case {
            name: "a failed function without on_error fails the call",
            flow: json!({"name": "f", "start": "f", "nodes": [
                {"id": "f", "type": "function", "url": "https://x.example", "next": "bye"},
                {"id": "bye", "type": "end"}]}),
            script: vec![Input::Event(
                10,
                WorkflowEvent::FunctionFailed {
                    reason: "dns".into(),
                },
            )],
            actions: vec![
                WorkflowAction::CallFunction {
                    url: "https://x.example".into(),
                    method: "POST".into(),
                    headers: vec![],
                    body: None,
                    timeout: Duration::from_millis(5000),
                },
                hangup(None),
            ],
            outcome: failed(FailureReason::FunctionFailed {
                message: "dns".into(),
            }),
        },
        Case {
            name: "a say with a prompt asks the LLM and speaks its line",
            flow: json!({"name": "g", "start": "hi", "nodes": [
                {"id": "hi", "type": "say", "prompt": "Greet the caller from {{caller_number}} warmly", "next": "bye"},
                {"id": "bye", "type": "end"}]}),
            script: vec![
                Input::Event(300, WorkflowEvent::Generated("Hello there!".into())),
                spoken(1500),
            ],
            actions: vec![
                WorkflowAction::Generate {
                    prompt: "Greet the caller from +15550100 warmly".into(),
                },
                speak("Hello there!"),
                hangup(None),
            ],
            outcome: completed.clone(),
        },
        Case {
            name: "a caller hanging up ends the flow with nothing more to do",
            flow: support_line(),
            script: vec![Input::Event(1000, WorkflowEvent::Hangup), spoken(4000)],
            actions: vec![speak(GREETING)],
            outcome: Some(WorkflowOutcome::CallerHungUp),
        },
        Case {
            name: "events the flow is not waiting for are ignored",
            flow: support_line(),
            script: vec![
                Input::Event(10, WorkflowEvent::Utterance("hello?".into())),
                Input::Event(
                    20,
                    WorkflowEvent::FunctionFailed {
                        reason: "stray".into(),
                    },
                ),
                Input::Tick(60_000),
                spoken(4000),
                spoken(4100),
                Input::Event(4200, WorkflowEvent::Generated("stray".into())),
                digits(5000, "2"),
            ],
            actions: vec![
                speak(GREETING),
                listen_menu(),
                speak("Connecting you to billing."),
            ],
            outcome: None,
        },
    ]
}

#[test]
fn scripted_calls_take_the_expected_actions_and_end_as_expected() {
    for case in cases() {
        let mut call = Call::start(case.flow);
        let mut actions = call.actions();
        for input in case.script {
            call.play(input);
            actions.extend(call.actions());
        }
        assert_eq!(actions, case.actions, "actions: {}", case.name);
        assert_eq!(call.outcome(), case.outcome, "outcome: {}", case.name);
        assert_eq!(
            call.executor.is_finished(),
            case.outcome.is_some(),
            "finished: {}",
            case.name
        );
    }
}

fn gather_flow(gather: serde_json::Value) -> serde_json::Value {
    let mut node = json!({"id": "ask", "type": "gather", "save_as": "pin", "next": "bye", "no_input": "nothing"});
    if let (Some(node), Some(extra)) = (node.as_object_mut(), gather.as_object()) {
        node.extend(extra.clone());
    }
    json!({"name": "pin", "start": "ask", "nodes": [node,
        {"id": "bye", "type": "end", "text": "You typed {{pin}}."},
        {"id": "nothing", "type": "end", "text": "Nothing heard."}]})
}

#[test]
fn digits_are_collected_until_max_digits_hash_or_the_pause_between_them() {
    let table = [
        (
            "max digits reached",
            json!({"input": ["dtmf"], "max_digits": 4}),
            vec![digits(500, "12"), digits(900, "34")],
            "You typed 1234.",
        ),
        (
            "hash ends the input",
            json!({"input": ["dtmf"]}),
            vec![digits(500, "98"), digits(900, "#")],
            "You typed 98.",
        ),
        (
            "a pause after some digits accepts them",
            json!({"input": ["dtmf"], "max_digits": 6, "timeout_ms": 2000}),
            vec![digits(500, "55"), Input::Tick(2400), Input::Tick(2500)],
            "You typed 55.",
        ),
        (
            "speech is not heard by a dtmf-only gather",
            json!({"input": ["dtmf"], "max_digits": 1}),
            vec![
                Input::Event(100, WorkflowEvent::Utterance("seven".into())),
                digits(200, "7"),
            ],
            "You typed 7.",
        ),
        (
            "digits are not heard by a speech-only gather",
            json!({"input": ["speech"]}),
            vec![
                digits(100, "1"),
                Input::Event(900, WorkflowEvent::Utterance("one two".into())),
            ],
            "You typed one two.",
        ),
    ];
    for (name, gather, script, said) in table {
        let mut call = Call::start(gather_flow(gather));
        for input in script {
            call.play(input);
        }
        assert_eq!(call.actions().last(), Some(&hangup(Some(said))), "{name}");
    }
}

#[test]
fn gather_timeouts_reprompt_then_take_the_no_input_branch() {
    let mut call = Call::start(gather_flow(
        json!({"input": ["dtmf"], "timeout_ms": 3000, "retries": 1,
        "reprompt": "Sorry, please type your pin.", "no_input": "nothing"}),
    ));
    let listen = WorkflowAction::Listen {
        dtmf: true,
        speech: false,
        max_digits: None,
        timeout: Duration::from_millis(3000),
    };
    assert_eq!(call.actions(), std::slice::from_ref(&listen));
    assert_eq!(call.executor.poll_timeout(), Some(call.at(3000)));
    call.play(Input::Tick(3000));
    assert_eq!(call.actions(), [speak("Sorry, please type your pin.")]);
    assert_eq!(
        call.executor.poll_timeout(),
        None,
        "no timer runs while the reprompt plays"
    );
    call.play(spoken(5000));
    assert_eq!(call.actions(), [listen]);
    assert_eq!(call.executor.poll_timeout(), Some(call.at(8000)));
    call.play(Input::Tick(8000));
    assert_eq!(call.actions(), [hangup(Some("Nothing heard."))]);
    let timeouts: Vec<StepDetail> = call
        .steps()
        .into_iter()
        .map(|s| s.detail)
        .filter(|d| matches!(d, StepDetail::InputTimedOut { .. }))
        .collect();
    assert_eq!(
        timeouts,
        [
            StepDetail::InputTimedOut {
                attempt: 1,
                retries: 1
            },
            StepDetail::InputTimedOut {
                attempt: 2,
                retries: 1
            }
        ]
    );
}

#[test]
fn steps_record_nodes_branches_with_reasons_variables_and_the_end() {
    let mut call = Call::start(support_line());
    call.play(spoken(4000));
    call.play(digits(5200, "2"));
    call.play(spoken(7000));
    let steps = call.steps();
    let entered: Vec<&str> = steps
        .iter()
        .filter(|s| matches!(s.detail, StepDetail::NodeEntered { .. }))
        .map(|s| s.node.as_str())
        .collect();
    assert_eq!(entered, ["greet", "menu", "route", "accounts", "bye"]);
    assert!(steps.contains(&super::StepRecord {
        elapsed_ms: 5200,
        node: "menu".into(),
        detail: StepDetail::VariablesChanged {
            changes: [("choice".to_owned(), json!("2"))].into_iter().collect()
        },
    }));
    assert!(steps.contains(&super::StepRecord {
        elapsed_ms: 5200,
        node: "route".into(),
        detail: StepDetail::BranchTaken {
            branch: Some(1),
            target: "accounts".into(),
            reason: "`choice == '2'` is true with choice = \"2\"".into()
        },
    }));
    let last = steps.last().map(|s| serde_json::to_value(s).ok());
    assert_eq!(
        last,
        Some(Some(
            json!({"elapsed_ms": 7000, "node": "bye", "step": "finished", "outcome": "completed"})
        ))
    );
}

#[test]
fn function_steps_record_status_and_timing_and_save_the_body() {
    let mut call = Call::start(crm_lookup());
    call.play(crm_answer(250, 200, json!({"tier": "gold", "name": "Ada"})));
    let steps = call.steps();
    assert!(steps.iter().any(|s| s.detail
        == StepDetail::FunctionCompleted {
            status: Some(200),
            elapsed_ms: 250,
            ok: true,
            error: None
        }));
    assert_eq!(call.executor.variables().get("tier"), Some(&json!("gold")));
    assert_eq!(call.executor.current_node(), Some("vip"));
}

#[test]
fn a_large_function_answer_is_kept_whole_for_the_flow_but_recorded_truncated() {
    let mut call = Call::start(crm_lookup());
    let answer = json!({"tier": "gold", "name": "Ada", "pad": "x".repeat(20_000)});
    let whole = answer.to_string().len();
    call.play(crm_answer(250, 200, answer));
    let recorded = call
        .steps()
        .into_iter()
        .find_map(|s| match s.detail {
            StepDetail::VariablesChanged { changes } => changes.get("customer").cloned(),
            _ => None,
        })
        .expect("the saved answer is recorded");
    let text = recorded.as_str().expect("an excerpt");
    assert!(
        text.len() < super::executor::MAX_RECORDED_BODY_BYTES + 64,
        "{}",
        text.len()
    );
    assert!(text.ends_with(&format!("[truncated: {whole} bytes]")));
    assert_eq!(call.executor.variables().get("tier"), Some(&json!("gold")));
    let small = json!({"tier": "gold"});
    assert_eq!(super::executor::recorded_body(&small), small);
}

#[test]
fn set_evaluates_every_assignment_against_the_values_before_it() {
    let flow = json!({"name": "s", "start": "swap", "variables": {"a": 1, "b": 2},
        "nodes": [
            {"id": "swap", "type": "set", "assign": {"a": "b", "b": "a", "c": "a + b * 10", "d": "missing_field.x"}, "next": "bye"},
            {"id": "bye", "type": "end", "text": "{{a}} {{b}} {{c}}"}]});
    let flow = {
        let mut f = flow;
        f["variables"]["missing_field"] = json!(null);
        f
    };
    let mut call = Call::start(flow);
    assert_eq!(call.actions(), [hangup(Some("2 1 21"))]);
    let failures: Vec<String> = call
        .steps()
        .into_iter()
        .filter_map(|s| match s.detail {
            StepDetail::EvaluationFailed { field, .. } => Some(field),
            _ => None,
        })
        .collect();
    assert_eq!(
        failures,
        ["assign.d"],
        "a failed assignment is recorded and leaves the variable alone"
    );
    assert_eq!(call.executor.variables().get("d"), None);
}

#[test]
fn a_runaway_loop_stops_at_the_step_limit() {
    // Every menu answer that matches nothing loops back; type-ahead keeps it from waiting.
    let executor = Executor::new(compile(support_line()), globals()).with_step_limit(6);
    let mut call = Call::start_with(executor);
    call.play(digits(100, "999999"));
    call.play(spoken(4000));
    call.play(digits(4100, "9"));
    call.play(digits(4200, "9"));
    assert_eq!(
        call.outcome(),
        failed(FailureReason::StepLimit { limit: 6 })
    );
    assert_eq!(call.actions().last(), Some(&hangup(None)));
}

#[test]
fn globals_are_readable_and_now_follows_simulated_time() {
    let flow = json!({"name": "g", "start": "who", "nodes": [
        {"id": "who", "type": "say", "text": "{{caller_number}} called {{called_number}} on {{call_id}} at {{now}}", "next": "bye"},
        {"id": "bye", "type": "end", "text": "{{now}}"}]});
    let mut call = Call::start(flow);
    call.play(spoken(1500));
    assert_eq!(
        call.actions(),
        [
            speak("+15550100 called +15550199 on call-1 at 2023-11-14T22:13:20.000Z"),
            hangup(Some("2023-11-14T22:13:21.500Z"))
        ]
    );
}

#[test]
fn starting_twice_does_not_restart_the_flow() {
    let mut call = Call::start(support_line());
    call.executor.start(call.at(10));
    assert_eq!(call.actions(), [speak(GREETING)]);
}

#[test]
fn compiled_workflows_and_executors_can_move_between_call_tasks() {
    fn shareable<T: Send + Sync>() {}
    shareable::<super::CompiledWorkflow>();
    shareable::<Executor>();
}

#[test]
fn the_deepest_allowed_condition_runs_on_a_small_call_task_stack() {
    // Two lists nested 62 deep, compared: a tree exactly as deep as the limit allows.
    let depth = super::expr::MAX_EXPRESSION_DEPTH - 2;
    let (open, close) = ("[".repeat(depth), "]".repeat(depth));
    let when = format!("{open}choice{close} == {open}'1'{close}");
    let mut flow = support_line();
    flow["nodes"][2]["branches"][0]["when"] = json!(when);
    let mut call = Call::start(flow);
    // CEL recurses per level: on the 128 KiB of this thread alone it would overflow.
    let actions = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || {
            call.play(digits(1500, "1"));
            call.play(spoken(4000));
            call.actions()
        })
        .expect("thread")
        .join()
        .expect("no panic");
    assert_eq!(actions, [speak(GREETING), run_agent()]);
}
