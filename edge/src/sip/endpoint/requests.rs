//! Our own requests inside dialogs — BYE, REFER, INFO, UPDATE — each in a client transaction
//! of its own, tagged with its [`Purpose`], and the outcome of each (its final response, or
//! none) handed to whoever sent it.

use std::time::Instant;

use rsip::Request;

use super::SipEndpoint;
use crate::sip::dialog::Dialog;
use crate::sip::peer::{Outgoing, Peer};
use crate::sip::transaction::{ClientNonInviteTransaction, TransactionEvent, TransactionKey};

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
        match dialog.bye(self.local) {
            Ok(bye) => self.start_in_dialog(now, &call_id, Purpose::Bye, bye, dialog.remote()),
            Err(e) => tracing::warn!(call = %call_id, error = %e, "cannot build a BYE"),
        }
    }

    /// Sends `request` inside the (live) dialog of `call_id`.
    pub(crate) fn send_in_dialog(
        &mut self,
        now: Instant,
        call_id: &str,
        purpose: Purpose,
        request: Request,
    ) {
        if let Some(peer) = self.dialogs.get(call_id).map(Dialog::remote) {
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
        while let Some(t) = request.tx.poll_transmit() {
            self.transmits.push_back(Outgoing::new(transport, t));
        }
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
