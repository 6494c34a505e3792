//! Our own requests inside dialogs — BYE, REFER, INFO, UPDATE — each in a client transaction
//! of its own, tagged with its [`Purpose`], and the outcome of each (its final response, or
//! none) handed to whoever sent it.

use std::time::Instant;

use rsip::Request;

use super::drain::forward;
use super::SipEndpoint;
use crate::dialog::Dialog;
use crate::peer::Peer;
use crate::transaction::{ClientNonInviteTransaction, TransactionEvent, TransactionKey};

/// Why we sent a request inside a dialog, to know what its final response means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Our hang-up.
    Bye,
    /// A blind transfer.
    Refer,
    /// One DTMF digit (`application/dtmf-relay`).
    Info,
    /// An RFC 4028 session refresh (UPDATE).
    Refresh,
}

/// What became of our BYE: the far end's final response, or none (timer F). A BYE refused
/// with 404 or 481 never reached the party it was for (a proxy that lost the dialog, or a route
/// skipped): the call record says so rather than claim the call ended normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByeOutcome {
    /// A final response with this status code.
    Answered { code: u16 },
    /// No final response before the transaction timed out.
    Timeout,
}

impl ByeOutcome {
    /// The value for call records: the status code (`"200"`, `"481"`) or `"timeout"`.
    pub fn as_record(self) -> String {
        match self {
            Self::Answered { code } => code.to_string(),
            Self::Timeout => "timeout".to_owned(),
        }
    }
}

/// A request of ours inside a dialog, in its client transaction.
pub(super) struct InDialogRequest {
    pub(super) call_id: String,
    pub(super) purpose: Purpose,
    pub(super) tx: ClientNonInviteTransaction,
}

impl SipEndpoint {
    /// Sends the BYE of `dialog` in a client transaction of its own.
    pub(super) fn send_bye(&mut self, now: Instant, mut dialog: Dialog) {
        let call_id = dialog.call_id.clone();
        match dialog.bye(self.local_for(dialog.transport)) {
            Ok(bye) => self.start_in_dialog(now, &call_id, Purpose::Bye, bye, dialog.next_hop()),
            Err(e) => tracing::warn!(call = %call_id, error = %e, "cannot build a BYE"),
        }
    }

    /// Whether our BYE for `call_id` is out and its outcome still to come (as
    /// [`super::EndpointEvent::ByeOutcome`]).
    pub fn bye_pending(&self, call_id: &str) -> bool {
        self.outgoing
            .values()
            .any(|r| r.purpose == Purpose::Bye && r.call_id == call_id)
    }

    /// Sends `request` inside the (live) dialog of `call_id`, to the dialog's next hop.
    pub(crate) fn send_in_dialog(
        &mut self,
        now: Instant,
        call_id: &str,
        purpose: Purpose,
        request: Request,
    ) {
        if let Some(peer) = self.dialogs.get(call_id).map(Dialog::next_hop) {
            self.start_in_dialog(now, call_id, purpose, request, peer);
        }
    }

    fn start_in_dialog(
        &mut self,
        now: Instant,
        call_id: &str,
        purpose: Purpose,
        request: Request,
        peer: Peer,
    ) {
        let reliable = peer.transport.is_reliable();
        match ClientNonInviteTransaction::new(now, request, peer.addr, reliable, self.timers) {
            Ok(tx) => {
                let key = tx.key().clone();
                self.transports.insert(key.clone(), peer.transport);
                let request = InDialogRequest {
                    call_id: call_id.to_owned(),
                    purpose,
                    tx,
                };
                self.outgoing.insert(key.clone(), request);
                self.drain_outgoing(now, &key);
            }
            Err(e) => {
                tracing::warn!(call = %call_id, ?purpose, error = %e, "cannot send a request");
                self.on_in_dialog_outcome(now, call_id, purpose, Err(()));
            }
        }
    }

    pub(super) fn drain_outgoing(&mut self, now: Instant, key: &TransactionKey) {
        let transport = self.transport_of(key);
        let Some(request) = self.outgoing.get_mut(key) else {
            return;
        };
        forward(&mut self.transmits, transport, || {
            request.tx.poll_transmit()
        });
        let mut terminated = false;
        let mut outcome = None;
        while let Some(event) = request.tx.poll_event() {
            match event {
                TransactionEvent::Terminated => terminated = true,
                TransactionEvent::Timeout => outcome = Some(Err(())),
                TransactionEvent::Response(r) if r.status_code.code() >= 200 => {
                    let text = r.status_code.to_string();
                    let reason = text.split_once(' ').map_or("", |(_, r)| r).to_owned();
                    outcome = Some(Ok((r.status_code.code(), reason)));
                }
                _ => {}
            }
        }
        let (call_id, purpose) = (request.call_id.clone(), request.purpose);
        if terminated {
            self.outgoing.remove(key);
            self.transports.remove(key);
        }
        if let Some(outcome) = outcome {
            self.on_in_dialog_outcome(now, &call_id, purpose, outcome);
        }
    }
}
