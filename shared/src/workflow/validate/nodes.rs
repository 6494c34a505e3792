//! Per-node checks: each node type's fields, links, templates and expressions, compiled into
//! its runnable step when nothing is wrong with it.

use super::{Checker, FUNCTION_METHODS, MAX_FUNCTION_TIMEOUT_MS, MAX_GATHER_TIMEOUT_MS};
use crate::workflow::compiled::{CompiledStep, Line, NodeIndex};
use crate::workflow::definition::{FunctionNode, InputKind, Node, TransferMode};
use crate::workflow::expr::Expression;
use crate::workflow::template::{JsonTemplate, Template};

impl<'a> Checker<'a> {
    /// Checks one node and builds its step if it has no problem.
    pub(super) fn compile_node(&mut self, node: &'a Node) -> Option<CompiledStep> {
        let id = node.id();
        match node {
            Node::Say(n) => {
                let line = match (&n.text, &n.prompt) {
                    (Some(text), None) => self.template(id, "text", text).map(Line::Text),
                    (None, Some(prompt)) => self.template(id, "prompt", prompt).map(Line::Prompt),
                    (Some(_), Some(_)) => {
                        self.error(Some(id), "text", "give `text` or `prompt`, not both");
                        None
                    }
                    (None, None) => {
                        self.error(
                            Some(id),
                            "text",
                            "give the `text` to say or a `prompt` to generate it from",
                        );
                        None
                    }
                };
                let next = self.target(id, "next", n.next.as_deref());
                Some(CompiledStep::Say {
                    line: line?,
                    next: next?,
                })
            }
            Node::Gather(n) => {
                let dtmf = n.input.contains(&InputKind::Dtmf);
                let speech = n.input.contains(&InputKind::Speech);
                let mut ok = true;
                if n.input.is_empty() {
                    self.error(
                        Some(id),
                        "input",
                        "must name at least one of `dtmf`, `speech`",
                    );
                    ok = false;
                }
                match n.max_digits {
                    Some(_) if !dtmf => {
                        self.error(Some(id), "max_digits", "needs `dtmf` in `input`");
                        ok = false;
                    }
                    Some(d) if d == 0 || d > 64 => {
                        self.error(Some(id), "max_digits", "must be between 1 and 64");
                        ok = false;
                    }
                    _ => {}
                }
                if n.retries > 10 {
                    self.error(Some(id), "retries", "must be at most 10");
                    ok = false;
                }
                let errors_before = self.errors.len();
                let timeout = self.timeout(id, "timeout_ms", n.timeout_ms, MAX_GATHER_TIMEOUT_MS);
                self.variable_name(Some(id), "save_as", &n.save_as);
                ok &= self.errors.len() == errors_before;
                let reprompt = match &n.reprompt {
                    Some(r) => self.template(id, "reprompt", r).map(Some),
                    None => Some(None),
                };
                let next = self.target(id, "next", n.next.as_deref());
                let no_input = self.optional_target(id, "no_input", n.no_input.as_deref());
                ok.then_some(())?;
                Some(CompiledStep::Gather {
                    dtmf,
                    speech,
                    max_digits: n.max_digits,
                    timeout,
                    retries: n.retries,
                    reprompt: reprompt?,
                    save_as: n.save_as.clone(),
                    next: next?,
                    no_input: no_input?,
                    sensitive: n.sensitive,
                })
            }
            Node::Condition(n) => {
                if n.branches.is_empty() {
                    self.error(Some(id), "branches", "must have at least one branch");
                }
                let branches: Vec<Option<(Expression, NodeIndex)>> = n
                    .branches
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        let when = self.expression(id, &format!("branches[{i}].when"), &b.when);
                        let next =
                            self.target(id, &format!("branches[{i}].next"), b.next.as_deref());
                        Some((when?, next?))
                    })
                    .collect();
                let otherwise = self.target(id, "else", n.otherwise.as_deref());
                Some(CompiledStep::Condition {
                    branches: branches.into_iter().collect::<Option<Vec<_>>>()?,
                    otherwise: otherwise?,
                })
            }
            Node::Agent(n) => {
                let mut ok = true;
                if n.agent_id.trim().is_empty() {
                    self.error(Some(id), "agent_id", "must not be empty");
                    ok = false;
                } else if !self.context.agent_ids.contains(&n.agent_id) {
                    self.error(
                        Some(id),
                        "agent_id",
                        format!("no agent `{}` in this workspace", n.agent_id),
                    );
                    ok = false;
                }
                if n.max_turns == Some(0) {
                    self.error(Some(id), "max_turns", "must be at least 1");
                    ok = false;
                }
                let exits: Vec<Option<(String, NodeIndex)>> = n
                    .exits
                    .iter()
                    .enumerate()
                    .map(|(i, exit)| {
                        if exit.when_caller.trim().is_empty() {
                            self.error(
                                Some(id),
                                format!("exits[{i}].when_caller"),
                                "must describe when to leave",
                            );
                        }
                        let next =
                            self.target(id, &format!("exits[{i}].next"), exit.next.as_deref());
                        Some((exit.when_caller.clone(), next?))
                            .filter(|(w, _)| !w.trim().is_empty())
                    })
                    .collect();
                let next = self.target(id, "next", n.next.as_deref());
                ok.then_some(())?;
                Some(CompiledStep::Agent {
                    agent_id: n.agent_id.clone(),
                    exits: exits.into_iter().collect::<Option<Vec<_>>>()?,
                    max_turns: n.max_turns,
                    next: next?,
                })
            }
            Node::Function(n) => self.compile_function(id, n),
            Node::Set(n) => {
                if n.assign.is_empty() {
                    self.error(Some(id), "assign", "must assign at least one variable");
                }
                let assign: Vec<Option<(String, Expression)>> = n
                    .assign
                    .iter()
                    .map(|(var, source)| {
                        let field = format!("assign.{var}");
                        let errors_before = self.errors.len();
                        self.variable_name(Some(id), &field, var);
                        let named = self.errors.len() == errors_before;
                        let expr = self.expression(id, &field, source);
                        Some((var.clone(), expr?)).filter(|_| named)
                    })
                    .collect();
                let next = self.target(id, "next", n.next.as_deref());
                Some(CompiledStep::Set {
                    assign: assign
                        .into_iter()
                        .collect::<Option<Vec<_>>>()
                        .filter(|a| !a.is_empty())?,
                    next: next?,
                })
            }
            Node::Transfer(n) => {
                if n.to.trim().is_empty() {
                    self.error(Some(id), "to", "must name a number or SIP URI");
                    return None;
                }
                let warm = match (n.mode, n.summary.as_deref()) {
                    (TransferMode::Blind, None) => None,
                    (TransferMode::Blind, Some(_)) => {
                        self.error(Some(id), "summary", "only with `mode: \"warm\"`");
                        return None;
                    }
                    (TransferMode::Warm, None) => Some(None),
                    (TransferMode::Warm, Some(summary)) => {
                        if summary.trim().is_empty() || summary.chars().count() > 500 {
                            self.error(Some(id), "summary", "must be 1-500 characters");
                            return None;
                        }
                        Some(Some(self.template(id, "summary", summary)?))
                    }
                };
                Some(CompiledStep::Transfer {
                    to: self.template(id, "to", &n.to)?,
                    warm,
                })
            }
            Node::End(n) => {
                let text = match &n.text {
                    Some(t) => Some(self.template(id, "text", t)?),
                    None => None,
                };
                Some(CompiledStep::End { text })
            }
        }
    }

    pub(super) fn compile_function(
        &mut self,
        id: &str,
        n: &'a FunctionNode,
    ) -> Option<CompiledStep> {
        let errors_before = self.errors.len();
        let lower = n.url.trim_start().to_ascii_lowercase();
        if !(lower.starts_with("https://")
            || lower.starts_with("http://")
            || lower.starts_with("{{"))
        {
            self.error(Some(id), "url", "must start with https:// or http://");
        }
        let url = self.template(id, "url", &n.url);
        let method = n.method.to_ascii_uppercase();
        if !FUNCTION_METHODS.contains(&method.as_str()) {
            self.error(
                Some(id),
                "method",
                format!("must be one of {}", FUNCTION_METHODS.join(", ")),
            );
        }
        let headers: Vec<Option<(String, Template)>> = n
            .headers
            .iter()
            .map(|(name, value)| {
                let field = format!("headers.{name}");
                let token = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
                if !token {
                    self.error(Some(id), &field, "is not a valid HTTP header name");
                }
                Some((name.clone(), self.template(id, &field, value)?)).filter(|_| token)
            })
            .collect();
        let body = match &n.body {
            None => Some(None),
            Some(value) => match JsonTemplate::parse(value) {
                Ok(t) => self.defined(id, "body", t.variables()).then_some(Some(t)),
                Err(errors) => {
                    for (path, e) in errors {
                        self.error(Some(id), format!("body{path}"), e.to_string());
                    }
                    None
                }
            },
        };
        if let Some(var) = &n.save_as {
            self.variable_name(Some(id), "save_as", var);
        }
        let timeout = self.timeout(id, "timeout_ms", n.timeout_ms, MAX_FUNCTION_TIMEOUT_MS);
        let next = self.target(id, "next", n.next.as_deref());
        let on_error = self.optional_target(id, "on_error", n.on_error.as_deref());
        (self.errors.len() == errors_before).then_some(())?;
        Some(CompiledStep::Function {
            url: url?,
            method,
            headers: headers.into_iter().collect::<Option<Vec<_>>>()?,
            body: body?,
            save_as: n.save_as.clone(),
            timeout,
            next: next?,
            on_error: on_error?,
        })
    }
}
