//! How a `gather` listens: type-ahead digits, digit collection (`max_digits`, `#`, the pause
//! between digits), and silence timeouts with reprompts and retries before `no_input`.

use std::sync::Arc;
use std::time::Instant;

use super::{AfterSpeech, Executor, State};
use crate::workflow::compiled::{CompiledStep, NodeIndex};
use crate::workflow::io::{FailureReason, StepDetail, WorkflowAction};

impl Executor {
    /// Starts (or restarts) listening at a `gather`; returns where to go if type-ahead already
    /// answered it.
    pub(super) fn begin_listen(
        &mut self,
        now: Instant,
        node: NodeIndex,
        attempt: u32,
    ) -> Option<NodeIndex> {
        let workflow = Arc::clone(&self.workflow);
        let CompiledStep::Gather {
            dtmf,
            speech,
            max_digits,
            timeout,
            ..
        } = &workflow.nodes[node].step
        else {
            return None;
        };
        let mut digits = String::new();
        if *dtmf && !self.typeahead.is_empty() {
            let typed = std::mem::take(&mut self.typeahead);
            if collect_digits(&mut digits, &typed, *max_digits) {
                return Some(self.complete_gather(now, node, digits));
            }
        }
        self.actions.push_back(WorkflowAction::Listen {
            dtmf: *dtmf,
            speech: *speech,
            max_digits: *max_digits,
            timeout: *timeout,
        });
        self.deadline = Some(now + *timeout);
        self.state = State::Listening { attempt, digits };
        None
    }

    /// Saves a `gather`'s input and returns where the flow goes next.
    pub(super) fn complete_gather(
        &mut self,
        now: Instant,
        node: NodeIndex,
        input: String,
    ) -> NodeIndex {
        self.deadline = None;
        let workflow = Arc::clone(&self.workflow);
        let CompiledStep::Gather {
            save_as,
            next,
            sensitive,
            ..
        } = &workflow.nodes[node].step
        else {
            return node;
        };
        // A sensitive answer goes to the flow as usual; the record shows only that it came,
        // and it is kept out of every later record that would repeat it.
        let recorded = if *sensitive {
            if !input.is_empty() && !self.secrets.contains(&input) {
                if self.secrets.len() >= super::MAX_SECRETS {
                    self.secrets.remove(0);
                }
                self.secrets.push(input.clone());
            }
            serde_json::Value::String(crate::redact::REDACTED.to_owned())
        } else {
            serde_json::Value::String(input.clone())
        };
        self.variables
            .insert(save_as.clone(), serde_json::Value::String(input));
        let changes = [(save_as.clone(), recorded)].into_iter().collect();
        self.record(now, node, StepDetail::VariablesChanged { changes });
        *next
    }

    pub(super) fn listen_timed_out(&mut self, now: Instant, node: NodeIndex, attempt: u32) {
        let workflow = Arc::clone(&self.workflow);
        let CompiledStep::Gather {
            retries,
            reprompt,
            no_input,
            ..
        } = &workflow.nodes[node].step
        else {
            return;
        };
        let attempt = attempt + 1;
        self.record(
            now,
            node,
            StepDetail::InputTimedOut {
                attempt,
                retries: *retries,
            },
        );
        if attempt <= *retries {
            if let Some(reprompt) = reprompt {
                let text = reprompt.render(&self.variables);
                self.actions.push_back(WorkflowAction::Speak { text });
                self.state = State::Speaking {
                    then: AfterSpeech::Listen { attempt },
                };
            } else if let Some(next) = self.begin_listen(now, node, attempt) {
                self.run_from(now, next);
            }
            return;
        }
        match no_input {
            Some(target) => {
                let reason = format!("no input after {attempt} attempts");
                self.take_branch(now, node, None, *target, reason);
                self.run_from(now, *target);
            }
            None => self.fail(now, node, FailureReason::NoInput),
        }
    }
}

/// Whether `c` is a keypad key.
pub(super) fn is_dtmf(c: char) -> bool {
    matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')
}

/// Adds keypad input to `digits`; true once the input is complete (`max_digits` reached, or `#`
/// ending some digits when `#` is not itself wanted as a digit).
pub(super) fn collect_digits(digits: &mut String, typed: &str, max_digits: Option<u32>) -> bool {
    let max = max_digits.map(|m| m as usize);
    for c in typed.chars().filter(|c| is_dtmf(*c)) {
        if c == '#' && !digits.is_empty() {
            return true;
        }
        digits.push(c);
        if max.is_some_and(|m| digits.len() >= m) {
            return true;
        }
    }
    false
}
