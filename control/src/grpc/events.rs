//! One edge's event stream: each event is stored (once, by its id) and then acknowledged, so
//! the edge may forget it. Nothing is acknowledged before it is durably stored.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};

use crate::metrics::ControlMetrics;
use crate::store::Store;
use freya_proto::v1::{CallEvent as WireEvent, EventAck};
use freya_shared::model::CallEvent;

pub(super) fn spawn(
    store: Store,
    edge_id: String,
    mut inbound: Streaming<WireEvent>,
    metrics: Arc<ControlMetrics>,
    shutdown: CancellationToken,
) -> ReceiverStream<Result<EventAck, Status>> {
    // Acks wait for the edge to read them: the edge bounds what it has in flight.
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                next = inbound.message() => next,
                _ = shutdown.cancelled() => return,
            };
            let wire = match next {
                Ok(Some(wire)) => wire,
                Ok(None) => return,
                Err(status) => {
                    tracing::debug!(edge = %edge_id, %status, "event stream closed");
                    return;
                }
            };
            let Some(event) = decode(&edge_id, wire) else {
                continue;
            };
            match store.record_call_event(&edge_id, &event).await {
                Ok(true) => {
                    metrics.call_events_stored.inc();
                }
                Ok(false) => {
                    metrics.call_events_duplicate.inc();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot store a call event; the edge will resend it");
                    let _ = tx
                        .send(Err(Status::unavailable("cannot store events right now")))
                        .await;
                    return;
                }
            }
            if tx.send(Ok(EventAck { id: event.id })).await.is_err() {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// The event in domain form. An event without an id cannot be de-duplicated and is refused
/// (logged, never acknowledged); a payload that is not JSON is kept as text rather than lost.
fn decode(edge_id: &str, wire: WireEvent) -> Option<CallEvent> {
    if !freya_shared::ids::is_uuid(&wire.id) || wire.call_id.is_empty() || wire.kind.is_empty() {
        tracing::error!(edge = %edge_id, id = %wire.id, call = %wire.call_id, kind = %wire.kind,
            "refused a call event without a UUID id, call id or kind");
        return None;
    }
    let payload = if wire.payload_json.is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_str(&wire.payload_json)
            .unwrap_or_else(|_| serde_json::json!({ "unparsed": wire.payload_json }))
    };
    Some(CallEvent {
        id: wire.id,
        call_id: wire.call_id,
        workspace_id: wire.workspace_id,
        kind: wire.kind,
        at_ms: wire.at_ms,
        payload,
    })
}
