//! How the flow picks its way out of a node: `condition` branches, `set` assignments, an agent's
//! exit, and a `function`'s answer or failure — each recorded with the reason for the call record.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Executor;
use crate::workflow::compiled::{CompiledStep, NodeIndex};
use crate::workflow::expr::Expression;
use crate::workflow::io::{AgentExit, FailureReason, StepDetail};

impl Executor {
    pub(super) fn take_branch(
        &mut self,
        now: Instant,
        node: NodeIndex,
        branch: Option<usize>,
        target: NodeIndex,
        reason: String,
    ) {
        let target = self.workflow.nodes[target].id.clone();
        self.record(
            now,
            node,
            StepDetail::BranchTaken {
                branch,
                target,
                reason,
            },
        );
    }

    /// Picks a `condition`'s way out; a `when` that fails to evaluate counts as false.
    pub(super) fn choose(
        &mut self,
        now: Instant,
        node: NodeIndex,
        branches: &[(Expression, NodeIndex)],
        otherwise: NodeIndex,
    ) -> NodeIndex {
        for (i, (when, target)) in branches.iter().enumerate() {
            match when.evaluate_bool(&self.variables) {
                Ok(true) => {
                    let reason = format!("`{}` is true{}", when.source(), self.describe(when));
                    self.take_branch(now, node, Some(i), *target, reason);
                    return *target;
                }
                Ok(false) => {}
                Err(e) => {
                    self.evaluation_failed(now, node, format!("branches[{i}].when"), &e);
                }
            }
        }
        self.take_branch(now, node, None, otherwise, "no branch matched".into());
        otherwise
    }

    /// Records that the expression at `field` of `node` could not be evaluated, and why.
    fn evaluation_failed(
        &mut self,
        now: Instant,
        node: NodeIndex,
        field: String,
        error: &impl std::fmt::Display,
    ) {
        let message = error.to_string();
        self.record(now, node, StepDetail::EvaluationFailed { field, message });
    }

    /// ` with a = 1, b = "x"`: the values an expression read, for the record.
    pub(super) fn describe(&self, expr: &Expression) -> String {
        let values: Vec<String> = expr
            .variables()
            .iter()
            .map(|name| {
                let value = self.variables.get(name).unwrap_or(&serde_json::Value::Null);
                format!("{name} = {value}")
            })
            .collect();
        if values.is_empty() {
            String::new()
        } else {
            format!(" with {}", values.join(", "))
        }
    }

    /// Runs a `set`: every expression sees the values from before the node.
    pub(super) fn assign(
        &mut self,
        now: Instant,
        node: NodeIndex,
        assign: &[(String, Expression)],
    ) {
        let mut changes = std::collections::BTreeMap::new();
        for (var, expr) in assign {
            match expr.evaluate(&self.variables) {
                Ok(value) => {
                    changes.insert(var.clone(), value);
                }
                Err(e) => {
                    self.evaluation_failed(now, node, format!("assign.{var}"), &e);
                }
            }
        }
        if changes.is_empty() {
            return;
        }
        for (var, value) in &changes {
            self.variables.insert(var.clone(), value.clone());
        }
        self.record(now, node, StepDetail::VariablesChanged { changes });
    }

    pub(super) fn agent_returned(&mut self, now: Instant, node: NodeIndex, exit: AgentExit) {
        let workflow = Arc::clone(&self.workflow);
        let CompiledStep::Agent { exits, next, .. } = &workflow.nodes[node].step else {
            return;
        };
        self.record(now, node, StepDetail::AgentReturned { exit });
        let (branch, target, reason) = match exit {
            AgentExit::Condition(i) => match exits.get(i) {
                Some((when, target)) => (Some(i), *target, format!("the caller {when}")),
                None => (
                    None,
                    *next,
                    format!("exit {i} does not exist; leaving by `next`"),
                ),
            },
            AgentExit::Finished => (None, *next, "the agent finished".to_owned()),
            AgentExit::MaxTurns => (None, *next, "the agent reached its turn limit".to_owned()),
        };
        self.take_branch(now, node, branch, target, reason);
        self.run_from(now, target);
    }

    pub(super) fn function_answered(
        &mut self,
        now: Instant,
        node: NodeIndex,
        status: u16,
        body: serde_json::Value,
        elapsed: Duration,
    ) {
        if !(200..300).contains(&status) {
            self.function_failed(
                now,
                node,
                Some(status),
                elapsed,
                format!("HTTP status {status}"),
            );
            return;
        }
        self.deadline = None;
        let workflow = Arc::clone(&self.workflow);
        let CompiledStep::Function { save_as, next, .. } = &workflow.nodes[node].step else {
            return;
        };
        self.record_function(now, node, Some(status), elapsed, None);
        if let Some(var) = save_as {
            // The flow keeps the whole answer; the call record keeps a bounded excerpt, redacted
            // before it is cut (a card number cut in two would no longer be found).
            let mut detail = StepDetail::VariablesChanged {
                changes: [(var.clone(), body.clone())].into_iter().collect(),
            };
            self.scrub(&mut detail);
            let redacted = match detail {
                StepDetail::VariablesChanged { mut changes } => {
                    changes.remove(var).unwrap_or_default()
                }
                _ => serde_json::Value::Null,
            };
            let recorded = recorded_body(&redacted);
            self.variables.insert(var.clone(), body);
            let changes = [(var.clone(), recorded)].into_iter().collect();
            self.record(now, node, StepDetail::VariablesChanged { changes });
        }
        self.run_from(now, *next);
    }

    /// Records how a function step's request ended: its HTTP status if one came, how long it
    /// took, and the error when it failed.
    fn record_function(
        &mut self,
        now: Instant,
        node: NodeIndex,
        status: Option<u16>,
        elapsed: Duration,
        error: Option<String>,
    ) {
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let ok = error.is_none();
        let detail = StepDetail::FunctionCompleted {
            status,
            elapsed_ms,
            ok,
            error,
        };
        self.record(now, node, detail);
    }

    pub(super) fn function_failed(
        &mut self,
        now: Instant,
        node: NodeIndex,
        status: Option<u16>,
        elapsed: Duration,
        message: String,
    ) {
        self.deadline = None;
        let workflow = Arc::clone(&self.workflow);
        let CompiledStep::Function { on_error, .. } = &workflow.nodes[node].step else {
            return;
        };
        self.record_function(now, node, status, elapsed, Some(message.clone()));
        match on_error {
            Some(target) => {
                self.take_branch(now, node, None, *target, format!("on_error: {message}"));
                self.run_from(now, *target);
            }
            None => self.fail(now, node, FailureReason::FunctionFailed { message }),
        }
    }
}

/// Most of a function's answer that goes into the call's workflow steps, as JSON text.
pub const MAX_RECORDED_BODY_BYTES: usize = 4 * 1024;

/// `body` as the call record keeps it: unchanged when its JSON is at most
/// [`MAX_RECORDED_BODY_BYTES`], else a string of its first bytes ending in a marker
/// `… [truncated: N bytes]`, so an endpoint's large answer is neither stored nor shown whole.
pub fn recorded_body(body: &serde_json::Value) -> serde_json::Value {
    let text = match body {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.len() <= MAX_RECORDED_BODY_BYTES {
        return body.clone();
    }
    let mut cut = MAX_RECORDED_BODY_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    serde_json::Value::String(format!(
        "{}… [truncated: {} bytes]",
        &text[..cut],
        text.len()
    ))
}
