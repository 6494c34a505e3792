//! The per-call workflow executor: a sans-IO state machine in the manner of `quinn-proto`. The
//! call task hands it events and the current time, then drains [`WorkflowAction`]s to carry out,
//! [`StepRecord`]s to publish as call events, and the one deadline it keeps (a `gather`'s silence,
//! a `function`'s timeout) through [`Executor::poll_timeout`]. It holds no clock, socket or task,
//! so every path is testable to the millisecond, and runs nodes that need nothing from outside
//! (condition, set) in one go, bounded by a step limit.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::compiled::{CompiledStep, CompiledWorkflow, Line, NodeIndex};
use super::io::{
    FailureReason, StepDetail, StepRecord, WorkflowAction, WorkflowEvent, WorkflowOutcome,
};
use super::Variables;

/// Most sensitive answers a call remembers to keep out of its records (older ones are already
/// out of every record written so far; a flow asking for more is a loop).
const MAX_SECRETS: usize = 32;
/// Shortest secret replaced inside longer texts; a shorter one (a menu digit) only where it is
/// the whole text, or every `1` of the record would go.
const MIN_SECRET_INSIDE: usize = 3;

/// Replaces each of `secrets` in `text` by [`crate::redact::REDACTED`].
fn scrub_secrets(text: &mut String, secrets: &[String]) {
    for secret in secrets {
        if text == secret {
            *text = crate::redact::REDACTED.to_owned();
        } else if secret.len() >= MIN_SECRET_INSIDE && text.contains(secret.as_str()) {
            *text = text.replace(secret.as_str(), crate::redact::REDACTED);
        }
    }
}

mod choices;
pub use choices::{recorded_body, MAX_RECORDED_BODY_BYTES};
mod gather;

use gather::{collect_digits, is_dtmf};

/// Most nodes one call may enter unless [`Executor::with_step_limit`] says otherwise.
pub const DEFAULT_STEP_LIMIT: u32 = 1_000;
/// Most keypad digits kept from before a `gather` starts listening.
const MAX_TYPEAHEAD: usize = 64;

/// What the edge knows about the call when the flow starts: the global variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Globals {
    pub caller_number: String,
    pub called_number: String,
    pub call_id: String,
    /// Wall-clock time of the call's start, epoch milliseconds; `now` is derived from it.
    pub started_at_ms: i64,
}

/// What the flow is waiting for.
#[derive(Debug)]
enum State {
    NotStarted,
    Speaking { then: AfterSpeech },
    Generating { next: NodeIndex },
    Listening { attempt: u32, digits: String },
    InAgent,
    AwaitingFunction { sent_at: Instant },
    Finished(WorkflowOutcome),
}

/// Where the flow goes once a line has been spoken.
#[derive(Debug, Clone, Copy)]
enum AfterSpeech {
    Next(NodeIndex),
    /// Listen again after a reprompt, as attempt number `attempt` (0-based).
    Listen {
        attempt: u32,
    },
}

/// One call's run through one workflow.
#[derive(Debug)]
pub struct Executor {
    workflow: Arc<CompiledWorkflow>,
    variables: Variables,
    started_at_ms: i64,
    started: Option<Instant>,
    current: Option<NodeIndex>,
    state: State,
    deadline: Option<Instant>,
    typeahead: String,
    actions: VecDeque<WorkflowAction>,
    steps: VecDeque<StepRecord>,
    entered: u32,
    step_limit: u32,
    /// Answers of `sensitive` gathers: never written into a step record, wherever they go.
    secrets: Vec<String>,
}

impl Executor {
    /// An executor for one call, with the workflow's variables and the call's globals set.
    pub fn new(workflow: Arc<CompiledWorkflow>, globals: Globals) -> Self {
        let mut variables = workflow.initial_variables().clone();
        variables.insert("caller_number".into(), globals.caller_number.into());
        variables.insert("called_number".into(), globals.called_number.into());
        variables.insert("call_id".into(), globals.call_id.into());
        variables.insert(
            "now".into(),
            crate::ids::rfc3339(globals.started_at_ms).into(),
        );
        Self {
            workflow,
            variables,
            started_at_ms: globals.started_at_ms,
            started: None,
            current: None,
            state: State::NotStarted,
            deadline: None,
            typeahead: String::new(),
            actions: VecDeque::new(),
            steps: VecDeque::new(),
            entered: 0,
            step_limit: DEFAULT_STEP_LIMIT,
            secrets: Vec::new(),
        }
    }

    /// Caps how many nodes the call may enter before it fails (runaway loops at run time).
    pub fn with_step_limit(mut self, limit: u32) -> Self {
        self.step_limit = limit;
        self
    }

    /// Enters the start node. Later calls do nothing.
    pub fn start(&mut self, now: Instant) {
        if !matches!(self.state, State::NotStarted) {
            return;
        }
        self.started = Some(now);
        self.run_from(now, self.workflow.start());
    }

    /// Feeds one event; an event the flow is not waiting for is ignored.
    pub fn handle_event(&mut self, now: Instant, event: WorkflowEvent) {
        let Some(node) = self.current else { return };
        if matches!(self.state, State::Finished(_)) {
            return;
        }
        let state = std::mem::replace(&mut self.state, State::NotStarted);
        match (state, event) {
            (_, WorkflowEvent::Hangup) => {
                self.deadline = None;
                self.finish(now, node, WorkflowOutcome::CallerHungUp);
            }
            (State::Speaking { then }, WorkflowEvent::Spoken) => match then {
                AfterSpeech::Next(next) => self.run_from(now, next),
                AfterSpeech::Listen { attempt } => {
                    if let Some(next) = self.begin_listen(now, node, attempt) {
                        self.run_from(now, next);
                    }
                }
            },
            (State::Generating { next }, WorkflowEvent::Generated(text)) => {
                self.actions.push_back(WorkflowAction::Speak { text });
                self.state = State::Speaking {
                    then: AfterSpeech::Next(next),
                };
            }
            (
                State::Listening {
                    attempt,
                    mut digits,
                },
                WorkflowEvent::Digits(typed),
            ) => {
                let (dtmf, max_digits, timeout) = match &self.workflow.nodes[node].step {
                    CompiledStep::Gather {
                        dtmf,
                        max_digits,
                        timeout,
                        ..
                    } => (*dtmf, *max_digits, *timeout),
                    _ => (false, None, Duration::ZERO),
                };
                if dtmf && collect_digits(&mut digits, &typed, max_digits) {
                    let next = self.complete_gather(now, node, digits);
                    self.run_from(now, next);
                } else {
                    if dtmf && !digits.is_empty() {
                        // The timeout now spaces digits apart.
                        self.deadline = Some(now + timeout);
                    }
                    self.state = State::Listening { attempt, digits };
                }
            }
            (State::Listening { attempt, digits }, WorkflowEvent::Utterance(text)) => {
                let speech = matches!(
                    self.workflow.nodes[node].step,
                    CompiledStep::Gather { speech: true, .. }
                );
                if speech && !text.trim().is_empty() {
                    let next = self.complete_gather(now, node, text.trim().to_owned());
                    self.run_from(now, next);
                } else {
                    self.state = State::Listening { attempt, digits };
                }
            }
            (
                state @ (State::Speaking { .. } | State::Generating { .. }),
                WorkflowEvent::Digits(typed),
            ) => {
                // Type-ahead: a caller who knows the menu presses before it ends.
                let room = MAX_TYPEAHEAD.saturating_sub(self.typeahead.len());
                self.typeahead
                    .extend(typed.chars().filter(|c| is_dtmf(*c)).take(room));
                self.state = state;
            }
            (State::InAgent, WorkflowEvent::AgentExited(exit)) => {
                self.agent_returned(now, node, exit)
            }
            (
                State::AwaitingFunction { .. },
                WorkflowEvent::FunctionResult {
                    status,
                    body,
                    elapsed,
                },
            ) => {
                self.function_answered(now, node, status, body, elapsed);
            }
            (State::AwaitingFunction { sent_at }, WorkflowEvent::FunctionFailed { reason }) => {
                self.function_failed(
                    now,
                    node,
                    None,
                    now.saturating_duration_since(sent_at),
                    reason,
                );
            }
            (state, event) => {
                // The kind only: an event carries the caller's words, digits or a function's answer.
                tracing::debug!(node = %self.workflow.nodes[node].id, event = event.kind(), "workflow ignored an event it was not waiting for");
                self.state = state;
            }
        }
    }

    /// Fires the pending deadline if `now` has reached it.
    pub fn handle_timeout(&mut self, now: Instant) {
        let (Some(deadline), Some(node)) = (self.deadline, self.current) else {
            return;
        };
        if now < deadline {
            return;
        }
        self.deadline = None;
        match std::mem::replace(&mut self.state, State::NotStarted) {
            State::Listening { digits, .. } if !digits.is_empty() => {
                let next = self.complete_gather(now, node, digits);
                self.run_from(now, next);
            }
            State::Listening { attempt, .. } => self.listen_timed_out(now, node, attempt),
            State::AwaitingFunction { sent_at } => {
                let elapsed = now.saturating_duration_since(sent_at);
                let reason = format!("timed out after {} ms", elapsed.as_millis());
                self.function_failed(now, node, None, elapsed, reason);
            }
            state => self.state = state,
        }
    }

    /// The next action for the call task to carry out.
    pub fn poll_action(&mut self) -> Option<WorkflowAction> {
        self.actions.pop_front()
    }

    /// When [`Executor::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// The next step record, for the call's event stream.
    pub fn poll_step(&mut self) -> Option<StepRecord> {
        self.steps.pop_front()
    }

    /// Whether the flow has ended (an action to end the call may still wait to be polled).
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished(_))
    }

    /// How the flow ended, once it has.
    pub fn outcome(&self) -> Option<&WorkflowOutcome> {
        match &self.state {
            State::Finished(outcome) => Some(outcome),
            _ => None,
        }
    }

    /// The flow's variables now.
    pub fn variables(&self) -> &Variables {
        &self.variables
    }

    /// The id of the node the flow is in.
    pub fn current_node(&self) -> Option<&str> {
        self.current
            .and_then(|i| self.workflow.nodes.get(i))
            .map(|n| n.id.as_str())
    }

    /// Whether the flow is at a `sensitive` gather (listening, or saying its reprompt), or on
    /// its way there without listening to the caller first: saying a line (written or being
    /// generated), or waiting for a `function`, from which only nodes that do not listen lead
    /// to the gather ([`CompiledWorkflow::approaches_secret`], computed once per workflow).
    /// Callers start answering over the question, so key presses and words now are a secret,
    /// and the call masks them in its recording and records.
    pub fn is_sensitive_now(&self) -> bool {
        let Some(current) = self.current else {
            return false;
        };
        match self.state {
            State::Listening { .. }
            | State::Speaking {
                then: AfterSpeech::Listen { .. },
            } => self.is_sensitive_gather(current),
            State::Speaking {
                then: AfterSpeech::Next(next),
            }
            | State::Generating { next } => self.workflow.approaches_secret(next),
            State::AwaitingFunction { .. } => self.workflow.approaches_secret(current),
            _ => false,
        }
    }

    /// Whether `node` is a `gather` marked `sensitive`.
    fn is_sensitive_gather(&self, node: NodeIndex) -> bool {
        matches!(
            self.workflow.nodes.get(node).map(|n| &n.step),
            Some(CompiledStep::Gather {
                sensitive: true,
                ..
            })
        )
    }

    /// `text` as the call record may keep it: the answers of sensitive gathers replaced, as in
    /// step records. For lines the flow says that repeat an answer ("You entered {{pin}}"):
    /// the caller hears them, the transcript does not keep them.
    pub fn scrub_text(&self, text: &str) -> String {
        let mut text = text.to_owned();
        scrub_secrets(&mut text, &self.secrets);
        text
    }

    /// `detail` as the call record may keep it: the flow's redaction applied and the answers of
    /// sensitive gathers replaced wherever they appear.
    fn scrub(&self, detail: &mut StepDetail) {
        detail.redact(&self.workflow.redactor);
        if !self.secrets.is_empty() {
            detail.visit_texts(&mut |text| scrub_secrets(text, &self.secrets));
        }
    }

    fn record(&mut self, now: Instant, node: NodeIndex, mut detail: StepDetail) {
        self.scrub(&mut detail);
        let elapsed = self
            .started
            .map(|s| now.saturating_duration_since(s))
            .unwrap_or_default();
        self.steps.push_back(StepRecord {
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            node: self.workflow.nodes[node].id.clone(),
            detail,
        });
    }

    fn finish(&mut self, now: Instant, node: NodeIndex, outcome: WorkflowOutcome) {
        self.record(now, node, StepDetail::Finished(outcome.clone()));
        self.deadline = None;
        self.state = State::Finished(outcome);
    }

    fn fail(&mut self, now: Instant, node: NodeIndex, reason: FailureReason) {
        self.actions
            .push_back(WorkflowAction::Hangup { text: None });
        self.finish(now, node, WorkflowOutcome::Failed { reason });
    }

    /// Enters `node` and keeps going through nodes that need nothing from outside.
    fn run_from(&mut self, now: Instant, mut node: NodeIndex) {
        let workflow = Arc::clone(&self.workflow);
        loop {
            self.current = Some(node);
            if self.entered >= self.step_limit {
                let limit = self.step_limit;
                self.fail(now, node, FailureReason::StepLimit { limit });
                return;
            }
            self.entered += 1;
            let step = &workflow.nodes[node].step;
            self.refresh_now(now);
            self.record(
                now,
                node,
                StepDetail::NodeEntered {
                    node_type: step.type_name().into(),
                },
            );
            match step {
                CompiledStep::Say {
                    line: Line::Text(text),
                    next,
                } => {
                    let text = text.render(&self.variables);
                    self.actions.push_back(WorkflowAction::Speak { text });
                    self.state = State::Speaking {
                        then: AfterSpeech::Next(*next),
                    };
                    return;
                }
                CompiledStep::Say {
                    line: Line::Prompt(prompt),
                    next,
                } => {
                    let prompt = prompt.render(&self.variables);
                    self.actions.push_back(WorkflowAction::Generate { prompt });
                    self.state = State::Generating { next: *next };
                    return;
                }
                CompiledStep::Gather { .. } => match self.begin_listen(now, node, 0) {
                    Some(next) => node = next,
                    None => return,
                },
                CompiledStep::Condition {
                    branches,
                    otherwise,
                } => {
                    node = self.choose(now, node, branches, *otherwise);
                }
                CompiledStep::Agent {
                    agent_id,
                    exits,
                    max_turns,
                    ..
                } => {
                    self.typeahead.clear();
                    self.actions.push_back(WorkflowAction::RunAgent {
                        agent_id: agent_id.clone(),
                        exits: exits.iter().map(|(when, _)| when.clone()).collect(),
                        max_turns: *max_turns,
                    });
                    self.state = State::InAgent;
                    return;
                }
                CompiledStep::Function {
                    url,
                    method,
                    headers,
                    body,
                    timeout,
                    ..
                } => {
                    self.actions.push_back(WorkflowAction::CallFunction {
                        url: url.render_url(&self.variables),
                        method: method.clone(),
                        headers: headers
                            .iter()
                            .map(|(name, value)| (name.clone(), value.render(&self.variables)))
                            .collect(),
                        body: body.as_ref().map(|b| b.render(&self.variables)),
                        timeout: *timeout,
                    });
                    self.deadline = Some(now + *timeout);
                    self.state = State::AwaitingFunction { sent_at: now };
                    return;
                }
                CompiledStep::Set { assign, next } => {
                    self.assign(now, node, assign);
                    node = *next;
                }
                CompiledStep::Transfer { to, warm } => {
                    let to = to.render(&self.variables);
                    let warm = warm
                        .as_ref()
                        .map(|summary| summary.as_ref().map(|t| t.render(&self.variables)));
                    self.actions
                        .push_back(WorkflowAction::Transfer { to, warm });
                    self.finish(now, node, WorkflowOutcome::Transferred);
                    return;
                }
                CompiledStep::End { text } => {
                    let text = text.as_ref().map(|t| t.render(&self.variables));
                    self.actions.push_back(WorkflowAction::Hangup { text });
                    self.finish(now, node, WorkflowOutcome::Completed);
                    return;
                }
            }
        }
    }

    /// Keeps `now` current for templates and expressions.
    fn refresh_now(&mut self, now: Instant) {
        let elapsed = self
            .started
            .map(|s| now.saturating_duration_since(s).as_millis())
            .unwrap_or(0);
        let at = self
            .started_at_ms
            .saturating_add(i64::try_from(elapsed).unwrap_or(i64::MAX));
        self.variables
            .insert("now".into(), crate::ids::rfc3339(at).into());
    }
}
