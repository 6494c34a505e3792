//! The workflow document as a customer writes it (`/v1/workflows`): a named graph of typed nodes.
//! These types only describe the JSON — unknown fields are refused so a typo is an error, not a
//! silently ignored setting — and [`super::validate`] turns them into a runnable
//! [`super::CompiledWorkflow`]. Links that validation must judge (`next`, `else`, ...) are
//! optional here, so a missing one is reported with every other problem instead of failing
//! the parse.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::PrivacySpec;

/// A call flow: where it starts, its variables and its nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    pub name: String,
    pub start: String,
    /// The voice pipeline settings (STT, LLM, TTS, turn detection), owned by that module.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub voice: serde_json::Value,
    /// Variables and their values when a call starts.
    #[serde(default)]
    pub variables: BTreeMap<String, serde_json::Value>,
    pub nodes: Vec<Node>,
    /// The personal data the flow's records redact (`privacy.redact`), as an agent's
    /// `privacy` section: step records, function answers, variables and the flow's log lines.
    #[serde(default, skip_serializing_if = "PrivacySpec::is_empty")]
    pub privacy: PrivacySpec,
    /// Whether the flow's calls are recorded (as an agent's `record`); the caller's audio at a
    /// `sensitive` gather is silence in the file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record: bool,
}

impl Workflow {
    /// The same flow without the editor's layout: what an edge runs. Edges of an older
    /// release refuse unknown node fields, so what they are sent never carries positions.
    pub fn without_layout(mut self) -> Self {
        for node in &mut self.nodes {
            node.clear_position();
        }
        self
    }
}

/// One step of a flow, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Node {
    Say(SayNode),
    Gather(GatherNode),
    Condition(ConditionNode),
    Agent(AgentNode),
    Function(FunctionNode),
    Set(SetNode),
    Transfer(TransferNode),
    End(EndNode),
}

impl Node {
    /// The node's id, whatever its type.
    pub fn id(&self) -> &str {
        match self {
            Node::Say(n) => &n.id,
            Node::Gather(n) => &n.id,
            Node::Condition(n) => &n.id,
            Node::Agent(n) => &n.id,
            Node::Function(n) => &n.id,
            Node::Set(n) => &n.id,
            Node::Transfer(n) => &n.id,
            Node::End(n) => &n.id,
        }
    }

    /// Where the editor drew the node, if it said.
    pub fn position(&self) -> Option<NodePosition> {
        match self {
            Node::Say(n) => n.position,
            Node::Gather(n) => n.position,
            Node::Condition(n) => n.position,
            Node::Agent(n) => n.position,
            Node::Function(n) => n.position,
            Node::Set(n) => n.position,
            Node::Transfer(n) => n.position,
            Node::End(n) => n.position,
        }
    }

    /// Forgets where the editor drew the node (what an edge is sent has no layout in it).
    pub fn clear_position(&mut self) {
        let position = match self {
            Node::Say(n) => &mut n.position,
            Node::Gather(n) => &mut n.position,
            Node::Condition(n) => &mut n.position,
            Node::Agent(n) => &mut n.position,
            Node::Function(n) => &mut n.position,
            Node::Set(n) => &mut n.position,
            Node::Transfer(n) => &mut n.position,
            Node::End(n) => &mut n.position,
        };
        *position = None;
    }

    /// The wire name of the node's type (`say`, `gather`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Node::Say(_) => "say",
            Node::Gather(_) => "gather",
            Node::Condition(_) => "condition",
            Node::Agent(_) => "agent",
            Node::Function(_) => "function",
            Node::Set(_) => "set",
            Node::Transfer(_) => "transfer",
            Node::End(_) => "end",
        }
    }
}

/// A node's place on the editor's canvas, in the editor's units. Layout only: it never changes
/// what a call does, and a workflow written without it stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePosition {
    pub x: f64,
    pub y: f64,
}

/// Speak a line: fixed `text` (templated) or one an LLM writes from `prompt` (templated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SayNode {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Where the editor draws the node; the executor never reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<NodePosition>,
}

/// How a caller may answer a `gather`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    Dtmf,
    Speech,
}

/// Collect keypad digits and/or speech into a variable, re-asking on silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatherNode {
    pub id: String,
    #[serde(default = "default_input")]
    pub input: Vec<InputKind>,
    /// Digits that complete the input at once; without it `#` or the timeout does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_digits: Option<u32>,
    /// Silence (and the pause between digits) allowed before an attempt times out.
    #[serde(default = "default_gather_timeout_ms")]
    pub timeout_ms: u64,
    /// Extra attempts after the first one times out.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Said before each retry ("Sorry, I didn't catch that.").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprompt: Option<String>,
    pub save_as: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Where to go when every attempt timed out; without it the call fails.
    #[serde(default, alias = "else", skip_serializing_if = "Option::is_none")]
    pub no_input: Option<String>,
    /// The answer is a secret (a card number, a PIN): it reaches `save_as` as usual, but the
    /// call's records and logs show `[redacted]` for it, and the recording has the caller's
    /// audio (keys and speech) silenced while this node collects.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sensitive: bool,
    /// Where the editor draws the node; the executor never reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<NodePosition>,
}

fn default_input() -> Vec<InputKind> {
    vec![InputKind::Dtmf, InputKind::Speech]
}

fn default_gather_timeout_ms() -> u64 {
    5_000
}

fn default_retries() -> u32 {
    2
}

/// Go to the first branch whose `when` holds, or to `else`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionNode {
    pub id: String,
    #[serde(default)]
    pub branches: Vec<Branch>,
    #[serde(default, rename = "else", skip_serializing_if = "Option::is_none")]
    pub otherwise: Option<String>,
    /// Where the editor draws the node; the executor never reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<NodePosition>,
}

/// One guarded way out of a `condition`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    /// A CEL expression over the flow's variables.
    pub when: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Hand the conversation to an agent until an exit condition, the end of its task, or a turn cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentNode {
    pub id: String,
    pub agent_id: String,
    #[serde(default)]
    pub exits: Vec<AgentExitRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u32>,
    /// Where to go when the agent finishes or reaches `max_turns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Where the editor draws the node; the executor never reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<NodePosition>,
}

/// A natural-language condition the LLM may declare met, and where the flow then goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentExitRule {
    pub when_caller: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Call the customer's HTTP endpoint with a templated request and keep the JSON answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionNode {
    pub id: String,
    pub url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON whose strings may hold `{{var}}`; a string that is only `{{var}}` keeps the value's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_as: Option<String>,
    #[serde(default = "default_function_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Where to go on a transport error, a timeout or a non-2xx status; without it the call fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<String>,
    /// Where the editor draws the node; the executor never reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<NodePosition>,
}

fn default_method() -> String {
    "POST".into()
}

fn default_function_timeout_ms() -> u64 {
    5_000
}

/// Assign variables from CEL expressions, all evaluated against the values before the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetNode {
    pub id: String,
    pub assign: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Where the editor draws the node; the executor never reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<NodePosition>,
}

/// Transfer the call to another number or SIP URI (templated); the flow ends here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferNode {
    pub id: String,
    pub to: String,
    /// Where the editor draws the node; the executor never reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<NodePosition>,
    /// `blind` (the default): hand the call over (SIP REFER). `warm`: dial `to` as a second
    /// party, say `summary` to that party alone, then bridge the caller with it and leave.
    #[serde(default, skip_serializing_if = "TransferMode::is_blind")]
    pub mode: TransferMode,
    /// For a warm transfer: what the answering party is told first (templated, so it can name
    /// what the flow gathered); absent: the bridge comes at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// How a `transfer` node hands the call over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    /// SIP REFER: the call leaves us.
    #[default]
    Blind,
    /// A second leg, the summary whispered to it, then a bridge without the agent.
    Warm,
}

impl TransferMode {
    /// Whether this is the default (left out of the stored JSON).
    pub fn is_blind(&self) -> bool {
        *self == TransferMode::Blind
    }
}

/// Say an optional last line (templated) and hang up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndNode {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Where the editor draws the node; the executor never reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<NodePosition>,
}
