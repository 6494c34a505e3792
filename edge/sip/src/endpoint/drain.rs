//! Draining the endpoint's server transactions: what an INVITE or non-INVITE transaction wants
//! sent goes to the transmit queue, what it reports (the ACK for our 2xx, a lost ACK, its end)
//! becomes an [`EndpointEvent`] or drops it from the maps.

use std::collections::VecDeque;

use super::{EndpointEvent, SipEndpoint};
use crate::message::call_id;
use crate::peer::{Outgoing, Transport};
use crate::transaction::{TransactionEvent, TransactionKey, Transmit};

/// Queues for `transport` everything a transaction has to send, drained through `poll`.
pub(super) fn forward(
    queue: &mut VecDeque<Outgoing>,
    transport: Transport,
    mut poll: impl FnMut() -> Option<Transmit>,
) {
    while let Some(t) = poll() {
        queue.push_back(Outgoing::new(transport, t));
    }
}

impl SipEndpoint {
    pub(super) fn drain_invite(&mut self, key: &TransactionKey) {
        let transport = self.transport_of(key);
        let Some(tx) = self.invites.get_mut(key) else {
            return;
        };
        forward(&mut self.transmits, transport, || tx.poll_transmit());
        let mut terminated = false;
        let mut lost = None;
        let accepted = tx.accepted();
        while let Some(event) = tx.poll_event() {
            match event {
                TransactionEvent::Ack(ack) => {
                    // Only the ACK of the call's first INVITE confirms the call; that of a
                    // re-INVITE's 2xx just stops its retransmissions.
                    let first = call_id(&ack.headers)
                        .ok()
                        .filter(|c| self.dialogs.get(*c).is_some_and(|d| &d.invite_key == key));
                    if let Some(call_id) = first {
                        self.events.push_back(EndpointEvent::Confirmed {
                            call_id: call_id.to_owned(),
                        });
                    }
                }
                TransactionEvent::AckTimeout => lost = Some("our answer was never acknowledged"),
                TransactionEvent::Terminated => terminated = true,
                _ => {}
            }
        }
        if let Some(reason) = lost {
            let call = self
                .dialogs
                .iter()
                .find(|(_, d)| &d.invite_key == key)
                .map(|(c, _)| c.clone());
            if let Some(call_id) = call {
                self.dialogs.remove(&call_id);
                self.events
                    .push_back(EndpointEvent::Failed { call_id, reason });
            } else if let Some(call_id) = self
                .dialogs
                .iter()
                .filter(|_| accepted)
                .find(|(_, d)| d.reinvites.iter().any(|(_, k)| k == key))
                .map(|(c, _)| c.clone())
            {
                // A re-INVITE's 2xx, never acknowledged; an unacknowledged error (a 491, say)
                // ends only its own transaction.
                self.events
                    .push_back(EndpointEvent::ReinviteUnacknowledged { call_id });
            }
        }
        if terminated {
            self.invites.remove(key);
            self.transports.remove(key);
        }
    }

    pub(super) fn drain_other(&mut self, key: &TransactionKey) {
        let transport = self.transport_of(key);
        let Some(tx) = self.others.get_mut(key) else {
            return;
        };
        forward(&mut self.transmits, transport, || tx.poll_transmit());
        let mut terminated = false;
        while let Some(event) = tx.poll_event() {
            terminated |= event == TransactionEvent::Terminated;
        }
        if terminated {
            self.others.remove(key);
            self.transports.remove(key);
        }
    }
}
