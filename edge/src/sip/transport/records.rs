//! The records the SIP task writes itself for a call that rang in, each stamped when it
//! happened: `call.started` when the INVITE is accepted (so the record's clock starts at the
//! INVITE, not at the answer), `call.ringing` when we send 180 (or hear it for a call we placed),
//! and `call.ended` for a call that ended while it rang. The call's task writes the rest,
//! from `call.answered` on.

use freya_shared::model::call_payloads::{CallEnded, CallStarted, NoDetails};
use freya_shared::model::{CallEvent, CallEventData, EndReason};

use crate::call::task::{CallServices, CallSetup};

/// `call.started` of an inbound SIP call, at its INVITE's acceptance (before it rings).
pub(super) async fn record_invited(services: &CallServices, setup: &CallSetup) {
    let workflow = setup.workflow.as_ref();
    let started = CallStarted {
        direction: Some(setup.direction.as_str().to_owned()),
        from: Some(setup.caller.clone()),
        to: Some(setup.dialled.clone()),
        agent_id: Some(workflow.is_none().then(|| setup.agent.id.clone())),
        workflow_id: Some(workflow.map(|w| w.config.id.clone())),
        workflow_version: Some(workflow.map(|w| u64::from(w.config.version))),
        edge_id: Some(services.edge_id.to_string()),
        codec: Some(format!("{:?}", setup.leg.audio().codec)),
        media: Some(setup.leg.kind().to_owned()),
        sip_call_id: Some(Some(setup.dialog.clone())),
        provider: Some(serde_json::Value::Null),
        trace_id: setup.trace.trace_id(),
        trace_span_id: setup.trace.span_id(),
        ..CallStarted::default()
    };
    record(
        services,
        &setup.call_id,
        &setup.workspace_id,
        CallEventData::Started(started),
    )
    .await;
}

/// `call.ringing`: we sent 180 Ringing, or a call we placed heard it (the first time only).
pub(super) async fn record_ringing(services: &CallServices, call_id: &str, workspace_id: &str) {
    let ringing = CallEventData::Ringing(NoDetails::default());
    record(services, call_id, workspace_id, ringing).await;
}

/// `call.ended` of a call that ended while it rang (the caller gave up, the control plane hung
/// it up, the edge shut down); its `call.started` was written at the INVITE.
pub(super) async fn record_unanswered(
    services: &CallServices,
    setup: &CallSetup,
    reason: EndReason,
) {
    let ended = CallEnded {
        answered: Some(false),
        hangup_by: Some(reason.hangup_by()),
        ..CallEnded::because(reason)
    };
    record(
        services,
        &setup.call_id,
        &setup.workspace_id,
        CallEventData::Ended(ended),
    )
    .await;
}

/// The edge-wide event queue (the control link's), not a call's: a full one waits, as every
/// call event does.
async fn record(services: &CallServices, call_id: &str, workspace_id: &str, data: CallEventData) {
    let event = CallEvent::new(call_id.to_owned(), workspace_id.to_owned(), data);
    let _ = services.events.send(event).await;
}
