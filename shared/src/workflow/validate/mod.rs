//! Full validation of a customer's workflow, run by the API on every create, update and
//! `/validate`, and by the edge before it runs a version: every problem at once, each naming its
//! node and field (`{node, field, message}`, answered as 422), or the [`CompiledWorkflow`] the
//! executor runs. Links, templates, expressions, agents and variables are checked per node;
//! reachability, paths to an end and loops that never wait for the caller on the whole graph.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::compiled::{CompiledNode, CompiledStep, CompiledWorkflow, NodeIndex};
use super::definition::{Node, Workflow};
use super::expr::Expression;
use super::template::Template;
use super::GLOBAL_VARIABLES;

mod links;
mod nodes;

/// Most nodes one workflow may have, so one document cannot weigh on every edge.
pub const MAX_NODES: usize = 500;
/// Longest silence a `gather` may wait for.
pub const MAX_GATHER_TIMEOUT_MS: u64 = 120_000;
/// Longest a `function` request may take.
pub const MAX_FUNCTION_TIMEOUT_MS: u64 = 60_000;
/// HTTP methods a `function` node may use.
pub const FUNCTION_METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// What validation needs to know beyond the document itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationContext {
    /// Ids of the agents of the workspace that an `agent` node may name.
    pub agent_ids: BTreeSet<String>,
}

impl ValidationContext {
    /// A context in which these agents exist.
    pub fn with_agents<I: IntoIterator<Item = S>, S: Into<String>>(ids: I) -> Self {
        Self {
            agent_ids: ids.into_iter().map(Into::into).collect(),
        }
    }
}

/// One problem with a workflow: the node (if any), the field within it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}{field}: {message}", node.as_ref().map(|n| format!("node `{n}`, ")).unwrap_or_default())]
pub struct WorkflowError {
    pub node: Option<String>,
    pub field: String,
    pub message: String,
}

/// Checks `workflow` whole: every problem, or the compiled workflow.
pub fn validate(
    workflow: &Workflow,
    context: &ValidationContext,
) -> Result<CompiledWorkflow, Vec<WorkflowError>> {
    let mut checker = Checker::new(workflow, context);
    checker.check_document();
    let steps: Vec<Option<CompiledStep>> = workflow
        .nodes
        .iter()
        .map(|node| checker.compile_node(node))
        .collect();
    let start = checker.check_graph();
    if !checker.errors.is_empty() {
        return Err(checker.errors);
    }
    let nodes: Option<Vec<CompiledNode>> = workflow
        .nodes
        .iter()
        .zip(steps)
        .map(|(node, step)| {
            step.map(|step| CompiledNode {
                id: node.id().to_owned(),
                step,
            })
        })
        .collect();
    match (nodes, start) {
        (Some(nodes), Some(start)) => Ok(CompiledWorkflow {
            name: workflow.name.clone(),
            voice: workflow.voice.clone(),
            variables: workflow.variables.clone(),
            start,
            approaches_secret: super::compiled::secret_approaches(&nodes),
            nodes,
            redactor: workflow.privacy.redactor(),
        }),
        // Every path to `None` above records an error; this only keeps the function total.
        _ => Err(vec![WorkflowError {
            node: None,
            field: "nodes".into(),
            message: "could not be compiled".into(),
        }]),
    }
}

/// Whether `name` can be a variable: letters, digits and `_`, not starting with a digit.
fn is_identifier(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Checker<'a> {
    workflow: &'a Workflow,
    context: &'a ValidationContext,
    /// The first node with each id.
    index: HashMap<&'a str, NodeIndex>,
    /// Every variable some part of the flow (or the edge) defines.
    definable: BTreeSet<&'a str>,
    errors: Vec<WorkflowError>,
}

impl<'a> Checker<'a> {
    fn new(workflow: &'a Workflow, context: &'a ValidationContext) -> Self {
        let mut definable: BTreeSet<&str> = GLOBAL_VARIABLES.into_iter().collect();
        definable.extend(workflow.variables.keys().map(String::as_str));
        for node in &workflow.nodes {
            match node {
                Node::Gather(g) => {
                    definable.insert(&g.save_as);
                }
                Node::Function(f) => definable.extend(f.save_as.as_deref()),
                Node::Set(s) => definable.extend(s.assign.keys().map(String::as_str)),
                _ => {}
            }
        }
        let mut index = HashMap::new();
        for (i, node) in workflow.nodes.iter().enumerate() {
            index.entry(node.id()).or_insert(i);
        }
        Self {
            workflow,
            context,
            index,
            definable,
            errors: Vec::new(),
        }
    }

    fn error(&mut self, node: Option<&str>, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(WorkflowError {
            node: node.map(str::to_owned),
            field: field.into(),
            message: message.into(),
        });
    }

    /// Name, variables, node ids and count: what is not inside one node.
    fn check_document(&mut self) {
        let wf = self.workflow;
        if wf.name.trim().is_empty() {
            self.error(None, "name", "must not be empty");
        } else if wf.name.chars().count() > 200 {
            self.error(None, "name", "must be at most 200 characters");
        }
        for key in wf.variables.keys() {
            self.variable_name(None, &format!("variables.{key}"), key);
        }
        if let Err(errors) = super::voice::voice_spec(wf) {
            self.errors.extend(errors);
        }
        let mut privacy = Vec::new();
        wf.privacy.validate(&mut privacy);
        for e in privacy {
            self.error(None, &e.field, e.message);
        }
        if wf.nodes.is_empty() {
            self.error(None, "nodes", "must have at least one node");
        } else if wf.nodes.len() > MAX_NODES {
            self.error(
                None,
                "nodes",
                format!("must have at most {MAX_NODES} nodes"),
            );
        }
        let mut seen = BTreeSet::new();
        for node in &wf.nodes {
            let id = node.id();
            if id.trim().is_empty() {
                self.error(Some(id), "id", "must not be empty");
            } else if !seen.insert(id) {
                self.error(
                    Some(id),
                    "id",
                    format!("`{id}` is the id of an earlier node too"),
                );
            }
        }
    }

    /// A variable a flow assigns: a valid name that is not a global.
    fn variable_name(&mut self, node: Option<&str>, field: &str, name: &str) {
        if !is_identifier(name) {
            self.error(node, field, format!("`{name}` is not a variable name: use letters, digits and `_`, not starting with a digit"));
        } else if GLOBAL_VARIABLES.contains(&name) {
            self.error(
                node,
                field,
                format!("`{name}` is set by the call and cannot be assigned"),
            );
        }
    }

    /// A link that must be there.
    fn target(&mut self, node: &str, field: &str, target: Option<&str>) -> Option<NodeIndex> {
        match target {
            None => {
                self.error(Some(node), field, "is required");
                None
            }
            Some(t) => self.link(node, field, t),
        }
    }

    /// A link that may be left out: `Some(None)` when absent, `None` when it is broken.
    fn optional_target(
        &mut self,
        node: &str,
        field: &str,
        target: Option<&str>,
    ) -> Option<Option<NodeIndex>> {
        match target {
            None => Some(None),
            Some(t) => self.link(node, field, t).map(Some),
        }
    }

    fn link(&mut self, node: &str, field: &str, target: &str) -> Option<NodeIndex> {
        let found = self.index.get(target).copied();
        if found.is_none() {
            self.error(
                Some(node),
                field,
                format!("`{target}` is not the id of any node"),
            );
        }
        found
    }

    /// Reports the variables in `names` that nothing ever defines; `true` if all are defined.
    fn defined<'n>(
        &mut self,
        node: &str,
        field: &str,
        names: impl IntoIterator<Item = &'n str>,
    ) -> bool {
        let mut reported = BTreeSet::new();
        for name in names {
            if !self.definable.contains(name) && reported.insert(name) {
                self.error(
                    Some(node),
                    field,
                    format!("variable `{name}` is never defined: not a global, not in `variables`, not saved or set by any node"),
                );
            }
        }
        reported.is_empty()
    }

    fn template(&mut self, node: &str, field: &str, source: &str) -> Option<Template> {
        match Template::parse(source) {
            Ok(t) => self.defined(node, field, t.variables()).then_some(t),
            Err(e) => {
                self.error(Some(node), field, e.to_string());
                None
            }
        }
    }

    fn expression(&mut self, node: &str, field: &str, source: &str) -> Option<Expression> {
        match Expression::compile(source) {
            Ok(e) => self
                .defined(node, field, e.variables().iter().map(String::as_str))
                .then_some(e),
            Err(e) => {
                self.error(Some(node), field, e.to_string());
                None
            }
        }
    }

    fn timeout(&mut self, node: &str, field: &str, ms: u64, max: u64) -> Duration {
        if ms == 0 || ms > max {
            self.error(
                Some(node),
                field,
                format!("must be between 1 and {max} milliseconds"),
            );
        }
        Duration::from_millis(ms)
    }
}
