//! The call-event publisher: events from calls are made durable in the spool first, then sent;
//! the control plane acknowledges each once stored, and only then is it dropped from the spool.
//! On reconnect, everything unacknowledged is sent again (the control plane de-duplicates by id).
//! At most [`WINDOW`] events are in flight, so acks always have room to come back.

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::spool::{run_blocking, EventSpool};
use super::{log_failure, LinkContext};
use freya_proto::v1::CallEvent as WireEvent;
use freya_shared::model::CallEvent;

/// Events sent and not yet acknowledged on one connection.
const WINDOW: usize = 128;

fn to_wire(event: &CallEvent) -> WireEvent {
    WireEvent {
        id: event.id.clone(),
        call_id: event.call_id.clone(),
        workspace_id: event.workspace_id.clone(),
        kind: event.kind.clone(),
        at_ms: event.at_ms,
        payload_json: event.payload.to_string(),
        schema: event.schema,
    }
}

/// Most events made durable by one sync: everything the calls have reported by then.
const SPOOL_BATCH: usize = 256;

/// What the publisher reports on: the spool's length, and every event it takes, which the
/// observer turns into the call metrics (every call event of the edge passes here once).
pub(crate) struct PublisherMetrics {
    pub spooled: prometheus_client::metrics::gauge::Gauge,
    pub calls: crate::metrics::CallObserver,
}

/// Spools `first` and whatever else is already waiting, with one sync off the calls' threads;
/// returns the ids, oldest first.
fn spool_waiting(
    spool: &mut EventSpool,
    first: CallEvent,
    events: &mut mpsc::Receiver<CallEvent>,
    observer: &mut crate::metrics::CallObserver,
) -> Vec<String> {
    let mut batch = vec![first];
    while batch.len() < SPOOL_BATCH {
        match events.try_recv() {
            Ok(event) => batch.push(event),
            Err(_) => break,
        }
    }
    for event in &batch {
        observer.observe(event);
    }
    let ids = batch.iter().map(|e| e.id.clone()).collect();
    if let Err(e) = run_blocking(|| spool.append_all(batch)) {
        tracing::error!(error = %e, "cannot write the event spool; the events are kept in memory only");
    }
    ids
}

pub(crate) async fn run(
    link: LinkContext,
    mut spool: EventSpool,
    mut events: mpsc::Receiver<CallEvent>,
    metrics: PublisherMetrics,
) {
    let PublisherMetrics {
        spooled,
        calls: mut observer,
    } = metrics;
    let mut backoff = link.backoff();
    loop {
        spooled.set(i64::try_from(spool.pending_len()).unwrap_or(i64::MAX));
        let (tx, rx) = mpsc::channel(WINDOW);
        let mut client = link.client.clone();
        let opened = tokio::select! {
            opened = client.publish_events(ReceiverStream::new(rx)) => opened,
            _ = link.shutdown.cancelled() => return,
        };
        match opened {
            Ok(response) => {
                let mut acks = response.into_inner();
                let mut unsent: VecDeque<String> = spool.pending_ids().cloned().collect();
                let mut in_flight = 0usize;
                loop {
                    spooled.set(i64::try_from(spool.pending_len()).unwrap_or(i64::MAX));
                    tokio::select! {
                        _ = link.shutdown.cancelled() => return,
                        ack = acks.message() => match ack {
                            Ok(Some(ack)) => {
                                backoff.reset();
                                in_flight = in_flight.saturating_sub(1);
                                if let Err(e) = run_blocking(|| spool.ack(&ack.id)) {
                                    tracing::warn!(error = %e, "cannot record an ack; the event may be sent twice");
                                }
                                // Now, not at the next event: a draining edge waits for zero.
                                spooled.set(i64::try_from(spool.pending_len()).unwrap_or(i64::MAX));
                            }
                            Ok(None) => break,
                            Err(status) => {
                                log_failure("publishing call events", &status);
                                break;
                            }
                        },
                        event = events.recv() => match event {
                            Some(event) => unsent.extend(spool_waiting(&mut spool, event, &mut events, &mut observer)),
                            None => return,
                        },
                        permit = tx.reserve(), if in_flight < WINDOW && !unsent.is_empty() => {
                            let Ok(permit) = permit else { break };
                            if let Some(event) = unsent.pop_front().and_then(|id| spool.get(&id)) {
                                permit.send(to_wire(event));
                                in_flight += 1;
                            }
                        }
                    }
                }
            }
            Err(status) => log_failure("opening the event stream", &status),
        }
        // Disconnected: keep spooling what calls report while waiting to reconnect.
        let resume_at = tokio::time::Instant::now() + backoff.next_delay();
        loop {
            tokio::select! {
                _ = link.shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(resume_at) => break,
                event = events.recv() => match event {
                    Some(event) => {
                        spool_waiting(&mut spool, event, &mut events, &mut observer);
                    }
                    None => return,
                },
            }
        }
    }
}
