//! What crosses the executor's boundary: the events the call task feeds in, the actions it drains
//! and carries out (speak, listen, call HTTP, run an agent, transfer, hang up), and the step
//! records that become the call's `workflow_steps` events.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Something that happened on the call, for the executor.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkflowEvent {
    /// The last `Speak` finished playing (or was cut short by the caller).
    Spoken,
    /// Keypad digits (RFC 4733 or in-band), one or several.
    Digits(String),
    /// A finished caller turn, transcribed.
    Utterance(String),
    /// The LLM's line for a `say` node with a prompt.
    Generated(String),
    /// The HTTP request of a `function` node was answered.
    FunctionResult {
        status: u16,
        body: serde_json::Value,
        elapsed: Duration,
    },
    /// The HTTP request of a `function` node could not be made or answered.
    FunctionFailed { reason: String },
    /// The agent of an `agent` node handed the call back.
    AgentExited(AgentExit),
    /// The caller hung up.
    Hangup,
}

impl WorkflowEvent {
    /// The event's name, for a log line that must not carry what it holds.
    pub fn kind(&self) -> &'static str {
        match self {
            WorkflowEvent::Spoken => "spoken",
            WorkflowEvent::Digits(_) => "digits",
            WorkflowEvent::Utterance(_) => "utterance",
            WorkflowEvent::Generated(_) => "generated",
            WorkflowEvent::FunctionResult { .. } => "function_result",
            WorkflowEvent::FunctionFailed { .. } => "function_failed",
            WorkflowEvent::AgentExited(_) => "agent_exited",
            WorkflowEvent::Hangup => "hangup",
        }
    }
}

/// Why an agent handed the call back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentExit {
    /// The LLM declared exit condition number `n` (index into `RunAgent::exits`) met.
    Condition(usize),
    /// The agent considered its task done.
    Finished,
    /// The conversation reached `max_turns`.
    MaxTurns,
}

/// Something the call task should do now.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkflowAction {
    /// Speak this line; answer with [`WorkflowEvent::Spoken`] when it has played.
    Speak { text: String },
    /// Ask the LLM for one line from this prompt; answer with [`WorkflowEvent::Generated`].
    Generate { prompt: String },
    /// Listen for keypad and/or speech input; the executor keeps the timeout itself.
    Listen {
        dtmf: bool,
        speech: bool,
        max_digits: Option<u32>,
        timeout: Duration,
    },
    /// Make this HTTP request; answer with a function result or failure.
    CallFunction {
        url: String,
        method: String,
        headers: Vec<(String, String)>,
        body: Option<serde_json::Value>,
        timeout: Duration,
    },
    /// Let the agent converse, offering `exits` to the LLM as a tool; answer with `AgentExited`.
    RunAgent {
        agent_id: String,
        exits: Vec<String>,
        max_turns: Option<u32>,
    },
    /// Transfer the call; the flow is over. `warm`: as a warm transfer, with the summary said
    /// to the answering party first (`Some(None)`: no summary).
    Transfer {
        to: String,
        warm: Option<Option<String>>,
    },
    /// Say `text` if any, then hang up; the flow is over.
    Hangup { text: Option<String> },
}

/// How a flow ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum WorkflowOutcome {
    /// An `end` node was reached.
    Completed,
    /// A `transfer` node was reached.
    Transferred,
    /// The caller hung up first.
    CallerHungUp,
    /// The flow could not go on; the call is hung up.
    Failed { reason: FailureReason },
}

/// Why a flow failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum FailureReason {
    /// A `gather` with no `no_input` branch timed out on every attempt.
    NoInput,
    /// A `function` with no `on_error` branch failed.
    FunctionFailed { message: String },
    /// More nodes were entered than the step limit allows.
    StepLimit { limit: u32 },
}

/// One thing the flow did, for the call record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Time since the flow started.
    pub elapsed_ms: u64,
    /// The node it happened in.
    pub node: String,
    #[serde(flatten)]
    pub detail: StepDetail,
}

/// The kind of step and its details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum StepDetail {
    /// The flow entered the node.
    NodeEntered { node_type: String },
    /// A `condition` (or another choice) picked its way out; `branch` is `None` for `else`.
    BranchTaken {
        branch: Option<usize>,
        target: String,
        reason: String,
    },
    /// Variables got new values.
    VariablesChanged {
        changes: BTreeMap<String, serde_json::Value>,
    },
    /// An expression could not be evaluated; the flow went on as the reason says.
    EvaluationFailed { field: String, message: String },
    /// A `gather` attempt heard nothing.
    InputTimedOut { attempt: u32, retries: u32 },
    /// A `function` request ended.
    FunctionCompleted {
        status: Option<u16>,
        elapsed_ms: u64,
        ok: bool,
        error: Option<String>,
    },
    /// An agent handed the call back.
    AgentReturned { exit: AgentExit },
    /// The flow ended.
    Finished(WorkflowOutcome),
}

/// Deepest JSON nesting of a step's values that is walked; deeper values are replaced by
/// [`crate::redact::TRUNCATED`] rather than kept unread.
const MAX_SCRUB_DEPTH: usize = 64;

impl StepDetail {
    /// Hands every text of the step that the call's data can reach (variables' values, reasons,
    /// errors) to `f`, for redaction; node ids, types and variable names are the flow's own.
    pub fn visit_texts(&mut self, f: &mut dyn FnMut(&mut String)) {
        match self {
            StepDetail::BranchTaken { reason, .. } => f(reason),
            StepDetail::VariablesChanged { changes } => {
                for value in changes.values_mut() {
                    visit_json(value, f, 0);
                }
            }
            StepDetail::EvaluationFailed { message, .. } => f(message),
            StepDetail::FunctionCompleted {
                error: Some(error), ..
            } => f(error),
            StepDetail::Finished(WorkflowOutcome::Failed {
                reason: FailureReason::FunctionFailed { message },
            }) => f(message),
            _ => {}
        }
    }

    /// Replaces the personal data `redactor` finds in every text of the step.
    pub fn redact(&mut self, redactor: &crate::redact::Redactor) {
        if redactor.is_empty() {
            return;
        }
        self.visit_texts(&mut |text| {
            let (out, found) = redactor.redact(text);
            if !found.is_empty() || out.len() != text.len() {
                *text = out;
            }
        });
    }
}

fn visit_json(value: &mut serde_json::Value, f: &mut dyn FnMut(&mut String), depth: usize) {
    if depth > MAX_SCRUB_DEPTH {
        *value = serde_json::Value::String(crate::redact::TRUNCATED.to_owned());
        return;
    }
    match value {
        serde_json::Value::String(s) => f(s),
        serde_json::Value::Array(items) => {
            for item in items {
                visit_json(item, f, depth + 1);
            }
        }
        serde_json::Value::Object(map) => {
            for item in map.values_mut() {
                visit_json(item, f, depth + 1);
            }
        }
        _ => {}
    }
}
