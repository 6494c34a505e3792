//! The workflow engine: call flows as graphs of nodes (say, gather, condition, agent, function,
//! set, transfer, end). A customer's [`Workflow`] document is checked whole by [`validate`], which
//! answers every problem at once or a [`CompiledWorkflow`] with templates parsed, expressions
//! compiled and links resolved; the edge then runs one [`Executor`] per call — a sans-IO state
//! machine that the call task feeds with events and time and drains of actions and step records.

pub mod compiled;
pub mod definition;
pub mod executor;
pub mod expr;
mod graph;
pub mod io;
pub mod template;
pub mod validate;
pub mod voice;

#[cfg(test)]
mod executor_approach_tests;
#[cfg(test)]
mod executor_privacy_tests;
#[cfg(test)]
mod executor_tests;
#[cfg(test)]
mod test_flows;
#[cfg(test)]
mod validate_tests;

use std::collections::BTreeMap;

pub use compiled::CompiledWorkflow;
pub use definition::{InputKind, Node, NodePosition, Workflow};
pub use executor::{Executor, Globals};
pub use io::{
    AgentExit, FailureReason, StepDetail, StepRecord, WorkflowAction, WorkflowEvent,
    WorkflowOutcome,
};
pub use validate::{validate, ValidationContext, WorkflowError};
pub use voice::{expected_phrases, voice_spec};

/// A flow's variables during a call, by name.
pub type Variables = BTreeMap<String, serde_json::Value>;

/// Variables every call has: set by the edge, readable by every flow, never assigned by one.
pub const GLOBAL_VARIABLES: [&str; 4] = ["caller_number", "called_number", "call_id", "now"];
