//! A workflow as the executor runs it: only [`super::validate`] builds one, so every link is a
//! resolved node index, every template parsed and every expression compiled. It is immutable and
//! shared (`Arc`) by all the calls that run the same published version.

use std::time::Duration;

use super::expr::Expression;
use super::template::{JsonTemplate, Template};
use super::Variables;

/// Position of a node in [`CompiledWorkflow::nodes`].
pub type NodeIndex = usize;

/// A validated, ready-to-run workflow.
#[derive(Debug)]
pub struct CompiledWorkflow {
    pub(crate) name: String,
    pub(crate) voice: serde_json::Value,
    pub(crate) variables: Variables,
    pub(crate) start: NodeIndex,
    pub(crate) nodes: Vec<CompiledNode>,
    /// What the flow's records redact (its `privacy.redact`).
    pub(crate) redactor: crate::redact::Redactor,
}

impl CompiledWorkflow {
    /// The workflow's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The voice pipeline settings, as written.
    pub fn voice(&self) -> &serde_json::Value {
        &self.voice
    }

    /// The variables a call starts with (before the globals are added).
    pub fn initial_variables(&self) -> &Variables {
        &self.variables
    }

    /// The node a call starts at.
    pub fn start(&self) -> NodeIndex {
        self.start
    }

    /// Every node, in the order of the definition.
    pub fn nodes(&self) -> &[CompiledNode] {
        &self.nodes
    }

    /// The redactor of the flow's records and log lines (its `privacy.redact`).
    pub fn redactor(&self) -> &crate::redact::Redactor {
        &self.redactor
    }

    /// The index of the node with id `id`.
    pub fn index_of(&self, id: &str) -> Option<NodeIndex> {
        self.nodes.iter().position(|n| n.id == id)
    }
}

/// One node, ready to run.
#[derive(Debug)]
pub struct CompiledNode {
    pub id: String,
    pub step: CompiledStep,
}

/// What a `say` node speaks.
#[derive(Debug)]
pub enum Line {
    /// A fixed, templated line.
    Text(Template),
    /// A templated prompt from which an LLM writes the line.
    Prompt(Template),
}

/// A node's behaviour with its links resolved.
#[derive(Debug)]
pub enum CompiledStep {
    Say {
        line: Line,
        next: NodeIndex,
    },
    Gather {
        dtmf: bool,
        speech: bool,
        max_digits: Option<u32>,
        timeout: Duration,
        retries: u32,
        reprompt: Option<Template>,
        save_as: String,
        next: NodeIndex,
        no_input: Option<NodeIndex>,
        sensitive: bool,
    },
    Condition {
        branches: Vec<(Expression, NodeIndex)>,
        otherwise: NodeIndex,
    },
    Agent {
        agent_id: String,
        exits: Vec<(String, NodeIndex)>,
        max_turns: Option<u32>,
        next: NodeIndex,
    },
    Function {
        url: Template,
        method: String,
        headers: Vec<(String, Template)>,
        body: Option<JsonTemplate>,
        save_as: Option<String>,
        timeout: Duration,
        next: NodeIndex,
        on_error: Option<NodeIndex>,
    },
    Set {
        assign: Vec<(String, Expression)>,
        next: NodeIndex,
    },
    Transfer {
        to: Template,
        /// `Some` for a warm transfer, with its summary if any.
        warm: Option<Option<Template>>,
    },
    End {
        text: Option<Template>,
    },
}

impl CompiledStep {
    /// The wire name of the node's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            CompiledStep::Say { .. } => "say",
            CompiledStep::Gather { .. } => "gather",
            CompiledStep::Condition { .. } => "condition",
            CompiledStep::Agent { .. } => "agent",
            CompiledStep::Function { .. } => "function",
            CompiledStep::Set { .. } => "set",
            CompiledStep::Transfer { .. } => "transfer",
            CompiledStep::End { .. } => "end",
        }
    }
}
