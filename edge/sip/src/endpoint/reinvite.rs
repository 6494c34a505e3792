//! Session refresh by re-INVITE (RFC 4028 section 7.4), for a peer whose `Allow` leaves out
//! UPDATE: our INVITE inside the dialog carrying our SDP unchanged, its client transaction, and
//! the ACK for its 2xx — the UAC's own job (RFC 3261 section 13.2.2.4), sent again for every
//! retransmission of that 2xx.

use std::time::Instant;

use rsip::{Request, Response};

use super::drain::forward;
use super::SipEndpoint;
use crate::peer::{Outgoing, Peer};
use crate::response::to_bytes;
use crate::transaction::{
    ClientInviteState, ClientInviteTransaction, TransactionEvent, TransactionKey,
};
use crate::uac::build_2xx_ack;

/// Our refreshing re-INVITE in its transaction.
pub(super) struct RefreshInvite {
    call_id: String,
    peer: Peer,
    tx: ClientInviteTransaction,
    /// The ACK for the 2xx and its next hop, once it came.
    ack: Option<(Vec<u8>, Peer)>,
    /// The outcome was handed over (the first final response, or the timeout).
    decided: bool,
}

impl RefreshInvite {
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.tx.poll_timeout()
    }

    /// Whether this is `call_id`'s re-INVITE and still awaits its final response: an INVITE
    /// of the peer's that arrives now is glare (RFC 3261 section 14.2).
    pub(super) fn is_pending_for(&self, call_id: &str) -> bool {
        self.call_id == call_id && !self.decided
    }
}

impl SipEndpoint {
    /// Sends `invite` (a re-INVITE of `call_id`'s dialog) to `peer`.
    pub(super) fn send_refresh_invite(
        &mut self,
        now: Instant,
        call_id: &str,
        invite: Request,
        peer: Peer,
    ) {
        let reliable = peer.transport.is_reliable();
        match ClientInviteTransaction::new(now, invite, peer.addr, reliable, self.timers) {
            Ok(tx) => {
                let key = tx.key().clone();
                let refresh = RefreshInvite {
                    call_id: call_id.to_owned(),
                    peer,
                    tx,
                    ack: None,
                    decided: false,
                };
                self.refresh_invites.insert(key.clone(), refresh);
                self.drain_refresh_invite(now, &key);
            }
            Err(e) => {
                tracing::warn!(call = %call_id, error = %e, "cannot send a refreshing re-INVITE");
                self.on_refresh_outcome(now, call_id, Err(()));
            }
        }
    }

    /// A response for one of our re-INVITEs; false if it is none of theirs.
    pub(super) fn on_refresh_invite_response(&mut self, now: Instant, response: Response) -> bool {
        let Ok(key) = TransactionKey::client(&response) else {
            return false;
        };
        let Some(refresh) = self.refresh_invites.get_mut(&key) else {
            return false;
        };
        refresh.tx.handle_response(now, response);
        self.drain_refresh_invite(now, &key);
        true
    }

    /// Advances the timers of our re-INVITEs in `due` (their deadline passed).
    pub(super) fn refresh_invite_timeouts(&mut self, now: Instant, due: &[TransactionKey]) {
        for key in due {
            if let Some(refresh) = self.refresh_invites.get_mut(key) {
                refresh.tx.handle_timeout(now);
            }
            self.drain_refresh_invite(now, key);
        }
    }

    /// Our re-INVITEs to `dest` over UDP fail on an ICMP error (see `unreachable.rs`).
    pub(super) fn refresh_invites_unreachable(&mut self, now: Instant, dest: Peer) {
        let hit: Vec<TransactionKey> = self
            .refresh_invites
            .iter_mut()
            .filter(|(_, r)| r.peer == dest)
            .map(|(k, r)| {
                r.tx.handle_transport_error();
                k.clone()
            })
            .collect();
        for key in hit {
            self.drain_refresh_invite(now, &key);
        }
    }

    fn drain_refresh_invite(&mut self, now: Instant, key: &TransactionKey) {
        let local = match self.refresh_invites.get(key) {
            Some(refresh) => self.local_for(refresh.peer.transport),
            None => return,
        };
        let Some(refresh) = self.refresh_invites.get_mut(key) else {
            return;
        };
        let transport = refresh.peer.transport;
        forward(&mut self.transmits, transport, || {
            refresh.tx.poll_transmit()
        });
        let mut outcome = None;
        while let Some(event) = refresh.tx.poll_event() {
            match event {
                TransactionEvent::Response(r) if r.status_code.code() >= 200 => {
                    let code = r.status_code.code();
                    if code < 300 {
                        let dialog = self.dialogs.get_mut(&refresh.call_id);
                        if refresh.ack.is_none() {
                            // The dialog's route set, not the 2xx's: it never changes.
                            let set = dialog.as_ref().map(|d| d.route_set.as_slice());
                            let request = refresh.tx.request();
                            match build_2xx_ack(request, &r, local, refresh.peer, set) {
                                Ok((ack, hop)) => refresh.ack = Some((to_bytes(ack), hop)),
                                Err(e) => tracing::warn!(error = %e, "cannot acknowledge the 2xx"),
                            }
                        }
                        if let Some(dialog) = dialog {
                            dialog.refresh_target(&r.headers);
                        }
                        if let Some((ack, hop)) = refresh.ack.clone() {
                            self.transmits.push_back(Outgoing {
                                transport: hop.transport,
                                dest: hop.addr,
                                bytes: ack,
                            });
                        }
                    }
                    if !refresh.decided {
                        refresh.decided = true;
                        outcome = Some(Ok((code, String::new())));
                    }
                }
                TransactionEvent::Timeout if !refresh.decided => {
                    refresh.decided = true;
                    outcome = Some(Err(()));
                }
                _ => {}
            }
        }
        let call_id = refresh.call_id.clone();
        if refresh.tx.state() == ClientInviteState::Terminated {
            self.refresh_invites.remove(key);
        }
        if let Some(outcome) = outcome {
            self.on_refresh_outcome(now, &call_id, outcome);
        }
    }
}
