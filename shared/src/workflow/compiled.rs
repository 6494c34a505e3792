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
    /// By node: whether it is a `sensitive` gather or leads to one through nodes that do not
    /// listen to the caller (see [`secret_approaches`]); computed once, read on every frame.
    pub(crate) approaches_secret: Vec<bool>,
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

    /// Whether `node` is a `sensitive` gather or leads to one without listening to the caller
    /// first: what the caller says or keys while the flow is there is the secret, begun early.
    pub fn approaches_secret(&self, node: NodeIndex) -> bool {
        self.approaches_secret.get(node).copied().unwrap_or(false)
    }
}

/// By node: whether it is a `sensitive` gather, or a node that does not listen to the caller
/// (`say`, `condition`, `set`, `function`) from which a path of such nodes reaches one. Callers
/// answer a question as soon as it is asked, and the flow may say more or compute between the
/// question and the gather; a node that listens (another `gather`, an `agent`) ends the
/// approach, since what the caller says there is an answer to something else. One backward walk
/// over the graph, linear in its nodes and links (at most [`super::validate::MAX_NODES`]).
pub(crate) fn secret_approaches(nodes: &[CompiledNode]) -> Vec<bool> {
    let successors: Vec<Vec<NodeIndex>> = nodes.iter().map(|n| n.step.successors()).collect();
    let secret: Vec<bool> = nodes
        .iter()
        .map(|n| {
            matches!(
                n.step,
                CompiledStep::Gather {
                    sensitive: true,
                    ..
                }
            )
        })
        .collect();
    let silent: Vec<bool> = nodes
        .iter()
        .map(|n| {
            matches!(
                n.step,
                CompiledStep::Say { .. }
                    | CompiledStep::Condition { .. }
                    | CompiledStep::Set { .. }
                    | CompiledStep::Function { .. }
            )
        })
        .collect();
    super::graph::reaching_through(&successors, &secret, &silent)
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

    /// Every node this one may go to next.
    pub fn successors(&self) -> Vec<NodeIndex> {
        match self {
            CompiledStep::Say { next, .. } | CompiledStep::Set { next, .. } => vec![*next],
            CompiledStep::Gather { next, no_input, .. } => {
                std::iter::once(*next).chain(*no_input).collect()
            }
            CompiledStep::Condition {
                branches,
                otherwise,
            } => branches
                .iter()
                .map(|(_, to)| *to)
                .chain([*otherwise])
                .collect(),
            CompiledStep::Agent { exits, next, .. } => {
                exits.iter().map(|(_, to)| *to).chain([*next]).collect()
            }
            CompiledStep::Function { next, on_error, .. } => {
                std::iter::once(*next).chain(*on_error).collect()
            }
            CompiledStep::Transfer { .. } | CompiledStep::End { .. } => Vec::new(),
        }
    }
}
