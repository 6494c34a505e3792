//! One edge's event stream: each event is stored (once, by its id) and then acknowledged, so
//! the edge may forget it. Nothing is acknowledged before it is durably stored. An outbound
//! call whose retry on another edge the storing claimed is placed again from here (`retry.rs`).

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};

use crate::metrics::ControlMetrics;
use freya_proto::v1::{CallEvent as WireEvent, EventAck};
use freya_shared::model::{CallEvent, CALL_EVENT_SCHEMA};

/// Most events stored in one transaction: what an edge has already sent when the store is free
/// again, so a quiet edge's event is stored alone and at once, and a busy edge's share a commit.
const BATCH: usize = 64;

pub(super) fn spawn(
    retrier: super::retry::CallRetrier,
    edge_id: String,
    inbound: Streaming<WireEvent>,
    metrics: Arc<ControlMetrics>,
    shutdown: CancellationToken,
) -> ReceiverStream<Result<EventAck, Status>> {
    // Acks wait for the edge to read them: the edge bounds what it has in flight.
    let (tx, rx) = mpsc::channel(256);
    let store = retrier.store.clone();
    tokio::spawn(async move {
        let mut inbound = inbound.ready_chunks(BATCH);
        loop {
            let received = tokio::select! {
                next = inbound.next() => next,
                _ = shutdown.cancelled() => return,
            };
            let Some(received) = received else { return };
            // Events before a broken message are still stored and acknowledged.
            let mut closed = false;
            let mut events = Vec::with_capacity(received.len());
            for next in received {
                match next {
                    Ok(wire) => events.extend(decode(&edge_id, wire)),
                    Err(status) => {
                        tracing::debug!(edge = %edge_id, %status, "event stream closed");
                        closed = true;
                        break;
                    }
                }
            }
            match store.record_call_events_claiming(&edge_id, &events).await {
                Ok(recorded) => {
                    retrier.place_again_later(recorded.retries);
                    for new in recorded.stored {
                        if new {
                            metrics.call_events_stored.inc();
                        } else {
                            metrics.call_events_duplicate.inc();
                        }
                    }
                }
                Err(e) => {
                    store.storage_health().record(&e);
                    tracing::warn!(error = %e, "cannot store call events; the edge will resend them");
                    let _ = tx
                        .send(Err(Status::unavailable("cannot store events right now")))
                        .await;
                    return;
                }
            }
            for event in events {
                if tx.send(Ok(EventAck { id: event.id })).await.is_err() {
                    return;
                }
            }
            if closed {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

/// The event in domain form. An event without an id cannot be de-duplicated and is refused
/// (logged, never acknowledged); a payload that is not JSON is kept as text rather than lost.
/// An event of a newer contract than ours is taken as it comes: the store reads what it knows
/// of it ([`CallEvent::data`]) and keeps the rest.
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
    if wire.schema > CALL_EVENT_SCHEMA {
        tracing::debug!(edge = %edge_id, schema = wire.schema, kind = %wire.kind,
            "a call event of a newer contract; stored as it came");
    }
    Some(CallEvent {
        id: wire.id,
        call_id: wire.call_id,
        workspace_id: wire.workspace_id,
        kind: wire.kind,
        at_ms: wire.at_ms,
        payload,
        schema: wire.schema,
    })
}
