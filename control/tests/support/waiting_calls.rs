//! Outbound calls that an edge could not place and that wait for another: the call row, the
//! edge's failure report and the attempt the store records. The retry tests and the placement
//! lease tests build the same waiting call; they build it here.

use freya_control::store::{EdgeAttempt, NewOutboundCall, Store, WorkspaceScope};
use freya_shared::model::call_payloads::CallFailed;
use freya_shared::model::{CallEvent, CallEventData, FailReason, Placement};

/// The callee every waiting call dials.
pub const PARTY: &str = "+4733333333";

/// A fresh workspace named `name`, as the scope its calls are stored under.
pub async fn workspace(store: &Store, name: &str) -> WorkspaceScope {
    WorkspaceScope {
        workspace_id: store.create_workspace(name).await.expect("workspace"),
    }
}

/// Stores an outbound call to the party, sent to `edge_id` and not yet reported on; its id.
pub async fn outbound_call(store: &Store, scope: &WorkspaceScope, edge_id: &str) -> String {
    let call_id = uuid::Uuid::now_v7().to_string();
    let call = NewOutboundCall {
        id: call_id.clone(),
        edge_id: edge_id.into(),
        from_number: "+15550100".into(),
        to_number: PARTY.into(),
        agent_id: uuid::Uuid::now_v7().to_string(),
    };
    store
        .create_outbound_call(scope, "test", &call)
        .await
        .expect("call");
    call_id
}

/// `call.failed` of `call_id`, saying its edge could not place it.
pub fn edge_failure(call_id: &str, workspace_id: &str) -> CallEvent {
    let failed = CallFailed::because(FailReason::EdgeAtCapacity).placed_by(Placement::Edge);
    CallEvent::new(call_id, workspace_id, CallEventData::Failed(failed))
}

/// One edge's failed attempt at a call, as the call record lists it.
pub fn attempt(edge_id: &str, reason: &str) -> EdgeAttempt {
    EdgeAttempt {
        edge_id: edge_id.into(),
        reason: reason.into(),
    }
}
