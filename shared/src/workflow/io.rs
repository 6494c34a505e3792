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
