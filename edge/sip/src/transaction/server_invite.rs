//! The INVITE server transaction (RFC 3261 section 17.2.1, with RFC 6026's Accepted state).
//!
//! It is created by an incoming INVITE and hands it to the TU exactly once; retransmissions of
//! the INVITE only re-send our latest response. If the TU is silent for 200 ms it sends 100
//! Trying itself. A 3xx-6xx is retransmitted (timer G) until the ACK arrives or timer H gives up;
//! a 2xx is retransmitted every T1, doubling up to T2, until the ACK for it is handed in or 64*T1
//! passes, which raises [`TransactionEvent::AckTimeout`]. (RFC 6026 makes 2xx retransmission the
//! UAS core's job; we keep it here because it needs exactly these timers.)

use std::net::SocketAddr;
use std::time::Instant;

use rsip::{Method, Request, Response};

use super::{
    due, earliest, Backoff, Base, Timers, TransactionError, TransactionEvent, TransactionKey,
    Transmit,
};
use crate::message::{call_id, cseq, header_param};
use crate::response::{build_response, status, to_bytes};

/// Where an INVITE server transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerInviteState {
    /// Waiting for the TU's final response.
    Proceeding,
    /// A 3xx-6xx was sent; waiting for the ACK.
    Completed,
    /// The ACK arrived; absorbing stray ACKs for T4.
    Confirmed,
    /// A 2xx was sent; retransmitting it until the ACK, absorbing INVITE retransmissions.
    Accepted,
    /// Over.
    Terminated,
}

/// The server side of one INVITE.
#[derive(Debug)]
pub struct ServerInviteTransaction {
    base: Base<ServerInviteState>,
    call_id: String,
    cseq: u32,
    trying: Option<(Instant, Vec<u8>)>,
    last_response: Option<Vec<u8>>,
    retransmit: Option<Backoff>,
    deadline: Option<Instant>,
    acked: bool,
    /// Whether our final response was a 2xx.
    accepted: bool,
    /// The To tag of our latest response carrying one, for the 200 to a CANCEL.
    to_tag: Option<String>,
}

impl ServerInviteTransaction {
    base_methods!(ServerInviteState);

    /// Starts the transaction for an INVITE that arrived from `source` (whose top Via should
    /// already be stamped with [`crate::via::stamp_received`]) and queues it for the TU.
    pub fn new(
        now: Instant,
        request: Request,
        source: SocketAddr,
        reliable: bool,
        timers: Timers,
    ) -> Result<Self, TransactionError> {
        let base = Base::server(
            &request,
            true,
            ServerInviteState::Proceeding,
            timers,
            reliable,
            source,
        )?;
        let trying = to_bytes(build_response(&request, status(100, "Trying"), None)?);
        let mut tx = Self {
            base,
            call_id: call_id(&request.headers)?.to_owned(),
            cseq: cseq(&request.headers)?.0,
            trying: Some((now + timers.trying, trying)),
            last_response: None,
            retransmit: None,
            deadline: None,
            acked: false,
            accepted: false,
            to_tag: None,
        };
        tx.base.out.event(TransactionEvent::Request(request));
        Ok(tx)
    }

    /// The INVITE's CSeq number: the ACK for its 2xx carries the same one.
    pub fn cseq(&self) -> u32 {
        self.cseq
    }

    /// Whether our final response was a 2xx: a 2xx never acknowledged ends the session (RFC 3261
    /// section 13.3.1.4), an error never acknowledged only its transaction.
    pub fn accepted(&self) -> bool {
        self.accepted
    }

    /// The To tag of our latest response that had one: a CANCEL's 200 repeats it (RFC 3261
    /// section 9.2), so the caller sees one dialog, not two.
    pub fn to_tag(&self) -> Option<&str> {
        self.to_tag.as_deref()
    }

    /// A request routed to this transaction: a retransmitted INVITE, the ACK for a non-2xx
    /// (same branch), or the ACK for our 2xx (routed here by the dialog: same Call-ID and CSeq).
    pub fn handle_request(&mut self, now: Instant, request: Request) {
        match request.method {
            Method::Invite => self.on_retransmitted_invite(),
            Method::Ack => self.on_ack(now, request),
            other => tracing::debug!(method = %other, "ignoring request in INVITE transaction"),
        }
    }

    /// Sends the TU's response: a provisional keeps the transaction proceeding, a 2xx moves it
    /// to Accepted, a 3xx-6xx to Completed.
    pub fn respond(&mut self, now: Instant, response: Response) -> Result<(), TransactionError> {
        if self.base.state != ServerInviteState::Proceeding {
            return Err(TransactionError::FinalAlreadySent);
        }
        let code = response.status_code.code();
        if let Some(tag) = response.headers.iter().find_map(|h| match h {
            rsip::Header::To(to) => header_param(rsip::headers::UntypedHeader::value(to), "tag"),
            _ => None,
        }) {
            self.to_tag = Some(tag.to_owned());
        }
        let bytes = to_bytes(response);
        self.trying = None;
        self.base.out.send(bytes.clone());
        self.last_response = Some(bytes);
        let retransmit = (!self.base.reliable)
            .then(|| Backoff::start(now, self.base.timers.t1, Some(self.base.timers.t2)));
        match code {
            100..=199 => {}
            200..=299 => {
                self.base.state = ServerInviteState::Accepted;
                self.accepted = true;
                self.retransmit = retransmit;
                self.deadline = Some(now + self.base.timers.timeout());
            }
            _ => {
                self.base.state = ServerInviteState::Completed;
                self.retransmit = retransmit;
                self.deadline = Some(now + self.base.timers.timeout());
            }
        }
        Ok(())
    }

    /// Advances the timers to `now`: 100 Trying, response retransmissions, timers H, I and L.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some((at, bytes)) = self.trying.take() {
            if now >= at {
                self.base.out.send(bytes.clone());
                self.last_response = Some(bytes);
            } else {
                self.trying = Some((at, bytes));
            }
        }
        if let Some(backoff) = self.retransmit.as_mut() {
            if backoff.fire(now) {
                if let Some(bytes) = self.last_response.clone() {
                    self.base.out.send(bytes);
                }
            }
        }
        if due(self.deadline, now) {
            let unacked = match self.base.state {
                ServerInviteState::Completed => true,
                ServerInviteState::Accepted => !self.acked,
                _ => false,
            };
            if unacked {
                self.base.out.event(TransactionEvent::AckTimeout);
            }
            self.terminate();
        }
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest([
            self.trying.as_ref().map(|(at, _)| *at),
            self.retransmit.map(|b| b.at),
            self.deadline,
        ])
    }

    fn on_retransmitted_invite(&mut self) {
        match self.base.state {
            ServerInviteState::Proceeding => {
                // The peer is waiting: answer at once with our latest provisional, or 100.
                if let Some((_, trying)) = self.trying.take() {
                    self.last_response = Some(trying);
                }
                if let Some(bytes) = self.last_response.clone() {
                    self.base.out.send(bytes);
                }
            }
            ServerInviteState::Completed | ServerInviteState::Accepted => {
                if let Some(bytes) = self.last_response.clone() {
                    self.base.out.send(bytes);
                }
            }
            ServerInviteState::Confirmed | ServerInviteState::Terminated => {}
        }
    }

    fn on_ack(&mut self, now: Instant, ack: Request) {
        match self.base.state {
            ServerInviteState::Completed => {
                self.base.state = ServerInviteState::Confirmed;
                self.retransmit = None;
                if self.base.reliable {
                    self.terminate();
                } else {
                    self.deadline = Some(now + self.base.timers.t4);
                }
            }
            ServerInviteState::Accepted if !self.acked => {
                let same_call = call_id(&ack.headers).is_ok_and(|c| c == self.call_id)
                    && cseq(&ack.headers).is_ok_and(|(n, _)| n == self.cseq);
                if same_call {
                    self.acked = true;
                    self.retransmit = None;
                    self.base.out.event(TransactionEvent::Ack(ack));
                }
            }
            _ => {}
        }
    }

    fn terminate(&mut self) {
        self.trying = None;
        self.retransmit = None;
        self.deadline = None;
        self.base.terminate(ServerInviteState::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::{self, ms, request, response_to, status_of};

    fn start(reliable: bool) -> (Instant, Request, ServerInviteTransaction) {
        test_support::start(
            ServerInviteTransaction::new,
            "INVITE",
            "z9hG4bKsi",
            reliable,
        )
    }

    fn sent(tx: &mut ServerInviteTransaction) -> Vec<Option<u16>> {
        test_support::drain(|| tx.poll_transmit())
            .iter()
            .map(status_of)
            .collect()
    }

    #[test]
    fn retransmitted_invite_does_not_start_a_second_call() {
        let (t0, invite, mut tx) = start(false);
        assert!(matches!(
            tx.poll_event(),
            Some(TransactionEvent::Request(_))
        ));
        tx.respond(t0 + ms(50), response_to(&invite, 180)).unwrap();
        assert_eq!(sent(&mut tx), [Some(180)]);
        tx.handle_request(t0 + ms(500), invite.clone());
        assert_eq!(sent(&mut tx), [Some(180)], "re-sends the last provisional");
        assert_eq!(tx.poll_event(), None);
    }

    #[test]
    fn silent_tu_gets_a_100_trying_after_200ms() {
        let (t0, invite, mut tx) = start(false);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(200)));
        tx.handle_timeout(t0 + ms(199));
        assert_eq!(sent(&mut tx), []);
        tx.handle_timeout(t0 + ms(200));
        assert_eq!(sent(&mut tx), [Some(100)]);
        tx.handle_request(t0 + ms(300), invite);
        assert_eq!(sent(&mut tx), [Some(100)]);
    }

    #[test]
    fn invite_retransmitted_before_any_response_gets_100_at_once() {
        let (t0, invite, mut tx) = start(false);
        tx.handle_request(t0 + ms(10), invite);
        assert_eq!(sent(&mut tx), [Some(100)]);
        tx.handle_timeout(t0 + ms(200));
        assert_eq!(sent(&mut tx), [], "no second 100 from the timer");
    }

    #[test]
    fn final_2xx_is_retransmitted_doubling_up_to_t2_until_ack() {
        let (t0, invite, mut tx) = start(false);
        tx.respond(t0, response_to(&invite, 200)).unwrap();
        assert_eq!(tx.state(), ServerInviteState::Accepted);
        assert_eq!(sent(&mut tx), [Some(200)]);
        let mut now = t0;
        for interval in [500, 1000, 2000, 4000, 4000] {
            assert_eq!(tx.poll_timeout(), Some(now + ms(interval)));
            now += ms(interval);
            tx.handle_timeout(now);
            assert_eq!(sent(&mut tx), [Some(200)], "at {interval}");
        }
        tx.poll_event();
        tx.handle_request(now, request("ACK", "z9hG4bKnew"));
        assert!(matches!(tx.poll_event(), Some(TransactionEvent::Ack(_))));
        tx.handle_timeout(now + ms(4000));
        assert_eq!(sent(&mut tx), [], "no retransmission after ACK");
        tx.handle_timeout(t0 + Timers::default().timeout());
        assert_eq!(tx.poll_event(), Some(TransactionEvent::Terminated));
    }

    #[test]
    fn unacknowledged_2xx_raises_ack_timeout_after_64_t1() {
        let (t0, invite, mut tx) = start(false);
        tx.poll_event();
        tx.respond(t0, response_to(&invite, 200)).unwrap();
        let mut now = t0;
        while let Some(at) = tx.poll_timeout() {
            now = at;
            tx.handle_timeout(now);
        }
        assert_eq!(now, t0 + ms(32_000));
        assert_eq!(tx.poll_event(), Some(TransactionEvent::AckTimeout));
        assert_eq!(tx.poll_event(), Some(TransactionEvent::Terminated));
    }

    #[test]
    fn error_response_is_retransmitted_by_timer_g_until_ack() {
        let (t0, invite, mut tx) = start(false);
        tx.respond(t0, response_to(&invite, 486)).unwrap();
        assert_eq!(sent(&mut tx), [Some(486)]);
        tx.handle_timeout(t0 + ms(500));
        assert_eq!(sent(&mut tx), [Some(486)]);
        tx.handle_request(t0 + ms(600), request("ACK", "z9hG4bKsi"));
        assert_eq!(tx.state(), ServerInviteState::Confirmed);
        tx.handle_timeout(t0 + ms(1500));
        assert_eq!(sent(&mut tx), []);
        tx.handle_timeout(t0 + ms(600) + Timers::default().t4);
        assert_eq!(tx.state(), ServerInviteState::Terminated);
    }

    #[test]
    fn timer_h_fires_when_error_response_is_never_acked() {
        let (t0, invite, mut tx) = start(false);
        tx.poll_event();
        tx.respond(t0, response_to(&invite, 603)).unwrap();
        tx.handle_timeout(t0 + ms(32_000));
        assert_eq!(tx.poll_event(), Some(TransactionEvent::AckTimeout));
        assert_eq!(tx.state(), ServerInviteState::Terminated);
    }

    #[test]
    fn reliable_transport_never_retransmits() {
        let (t0, invite, mut tx) = start(true);
        tx.respond(t0, response_to(&invite, 486)).unwrap();
        assert_eq!(sent(&mut tx), [Some(486)]);
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)), "only timer H");
        tx.handle_request(t0 + ms(10), request("ACK", "z9hG4bKsi"));
        assert_eq!(tx.state(), ServerInviteState::Terminated, "timer I is zero");
    }

    #[test]
    fn responding_twice_with_a_final_is_an_error() {
        let (t0, invite, mut tx) = start(false);
        tx.respond(t0, response_to(&invite, 200)).unwrap();
        assert_eq!(
            tx.respond(t0, response_to(&invite, 486)),
            Err(TransactionError::FinalAlreadySent)
        );
    }
}
