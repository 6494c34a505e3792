//! Flows and a scripted call for the executor and validation tests: the support line,
//! a CRM lookup, and a runner that plays events and deadlines at simulated times.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{
    validate, CompiledWorkflow, Executor, Globals, StepRecord, ValidationContext, Workflow,
    WorkflowAction, WorkflowEvent, WorkflowOutcome,
};

/// The agent every test workspace has.
pub(crate) const SALES_AGENT: &str = "agent-sales";

/// The example flow of issue 6, with `business` defined and `sales`' handoff wired.
pub(crate) fn support_line() -> Value {
    json!({"name": "Support line", "start": "greet",
    "voice": {"tts": {"provider": "openai", "voice": "alloy"}},
    "variables": {"tier": "basic", "business": "Acme"},
    "nodes": [
     {"id": "greet", "type": "say", "text": "Welcome to {{business}}. Press one for sales, two for accounts.", "next": "menu"},
     {"id": "menu", "type": "gather", "input": ["dtmf", "speech"], "max_digits": 1, "timeout_ms": 5000, "save_as": "choice", "next": "route"},
     {"id": "route", "type": "condition", "branches": [{"when": "choice == '1'", "next": "sales"}, {"when": "choice == '2'", "next": "accounts"}], "else": "menu"},
     {"id": "sales", "type": "agent", "agent_id": SALES_AGENT, "exits": [{"when_caller": "wants to speak to a person", "next": "handoff"}], "max_turns": 20, "next": "bye"},
     {"id": "handoff", "type": "transfer", "to": "+15551234567"},
     {"id": "accounts", "type": "say", "text": "Connecting you to billing.", "next": "bye"},
     {"id": "bye", "type": "end", "text": "Goodbye."}
    ]})
}

/// A flow whose HTTP lookup steers a branch, with an `on_error` way out.
pub(crate) fn crm_lookup() -> Value {
    json!({"name": "CRM lookup", "start": "lookup",
    "nodes": [
     {"id": "lookup", "type": "function", "url": "https://crm.example/customers", "method": "POST",
      "headers": {"X-Call": "{{call_id}}"}, "body": {"phone": "{{caller_number}}", "source": "ivr"},
      "save_as": "customer", "timeout_ms": 3000, "next": "remember", "on_error": "sorry"},
     {"id": "remember", "type": "set", "assign": {"tier": "customer.tier"}, "next": "route"},
     {"id": "route", "type": "condition", "branches": [{"when": "tier == 'gold'", "next": "vip"}], "else": "standard"},
     {"id": "vip", "type": "say", "text": "Welcome back, {{customer.name}}.", "next": "bye"},
     {"id": "standard", "type": "say", "text": "Thanks for calling.", "next": "bye"},
     {"id": "sorry", "type": "say", "text": "Our systems are down.", "next": "bye"},
     {"id": "bye", "type": "end"}
    ]})
}

/// Compiles `flow`, panicking with every problem if it is refused (tests only).
pub(crate) fn compile(flow: Value) -> Arc<CompiledWorkflow> {
    let workflow: Workflow = serde_json::from_value(flow).expect("test flow parses");
    match validate(&workflow, &ValidationContext::with_agents([SALES_AGENT])) {
        Ok(compiled) => Arc::new(compiled),
        Err(errors) => panic!("test flow is invalid: {errors:#?}"),
    }
}

/// One input to a scripted call, at a time in milliseconds after the start.
#[derive(Debug, Clone)]
pub(crate) enum Input {
    Event(u64, WorkflowEvent),
    /// Let time run to this instant and fire whatever deadline passed.
    Tick(u64),
}

/// A call driven by hand through simulated time.
pub(crate) struct Call {
    pub(crate) executor: Executor,
    pub(crate) t0: Instant,
}

impl Call {
    /// A started call from +15550100 to +15550199 through `flow`.
    pub(crate) fn start(flow: Value) -> Self {
        Self::start_with(Executor::new(compile(flow), globals()))
    }

    /// Starts `executor` at a fresh `t0`.
    pub(crate) fn start_with(mut executor: Executor) -> Self {
        let t0 = Instant::now();
        executor.start(t0);
        Self { executor, t0 }
    }

    pub(crate) fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    pub(crate) fn play(&mut self, input: Input) {
        match input {
            Input::Event(ms, event) => self.executor.handle_event(self.at(ms), event),
            Input::Tick(ms) => self.executor.handle_timeout(self.at(ms)),
        }
    }

    pub(crate) fn actions(&mut self) -> Vec<WorkflowAction> {
        std::iter::from_fn(|| self.executor.poll_action()).collect()
    }

    pub(crate) fn steps(&mut self) -> Vec<StepRecord> {
        std::iter::from_fn(|| self.executor.poll_step()).collect()
    }

    pub(crate) fn outcome(&self) -> Option<WorkflowOutcome> {
        self.executor.outcome().cloned()
    }
}

pub(crate) fn globals() -> Globals {
    Globals {
        caller_number: "+15550100".into(),
        called_number: "+15550199".into(),
        call_id: "call-1".into(),
        started_at_ms: 1_700_000_000_000,
    }
}

pub(crate) fn speak(text: &str) -> WorkflowAction {
    WorkflowAction::Speak { text: text.into() }
}

pub(crate) fn listen_menu() -> WorkflowAction {
    WorkflowAction::Listen {
        dtmf: true,
        speech: true,
        max_digits: Some(1),
        timeout: Duration::from_millis(5000),
    }
}

pub(crate) fn hangup(text: Option<&str>) -> WorkflowAction {
    WorkflowAction::Hangup {
        text: text.map(str::to_owned),
    }
}

pub(crate) fn digits(ms: u64, d: &str) -> Input {
    Input::Event(ms, WorkflowEvent::Digits(d.into()))
}

pub(crate) fn spoken(ms: u64) -> Input {
    Input::Event(ms, WorkflowEvent::Spoken)
}
