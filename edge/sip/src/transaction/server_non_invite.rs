//! The non-INVITE server transaction (RFC 3261 section 17.2.2): BYE, CANCEL, OPTIONS, INFO...
//!
//! The request reaches the TU once. Retransmissions are absorbed until the TU responds, then
//! answered with the latest response. After the final response the transaction lingers for
//! timer J (64*T1 over UDP, zero over TCP) to answer late retransmissions.

use std::net::SocketAddr;
use std::time::Instant;

use rsip::{Request, Response};

use super::{due, Base, Timers, TransactionError, TransactionEvent, TransactionKey, Transmit};
use crate::response::to_bytes;

/// Where a non-INVITE server transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerNonInviteState {
    /// Waiting for the TU; retransmissions are absorbed silently.
    Trying,
    /// A provisional was sent.
    Proceeding,
    /// The final response was sent; waiting out timer J.
    Completed,
    /// Over.
    Terminated,
}

/// The server side of one non-INVITE request.
#[derive(Debug)]
pub struct ServerNonInviteTransaction {
    base: Base<ServerNonInviteState>,
    last_response: Option<Vec<u8>>,
    timer_j: Option<Instant>,
}

impl ServerNonInviteTransaction {
    base_methods!(ServerNonInviteState);

    /// Starts the transaction for a request (neither INVITE nor ACK) from `source`, and queues
    /// it for the TU.
    pub fn new(
        _now: Instant,
        request: Request,
        source: SocketAddr,
        reliable: bool,
        timers: Timers,
    ) -> Result<Self, TransactionError> {
        let base = Base::server(
            &request,
            false,
            ServerNonInviteState::Trying,
            timers,
            reliable,
            source,
        )?;
        let mut tx = Self {
            base,
            last_response: None,
            timer_j: None,
        };
        tx.base.out.event(TransactionEvent::Request(request));
        Ok(tx)
    }

    /// A retransmission of the request: re-sends the latest response, if any.
    pub fn handle_request(&mut self, _now: Instant, _request: Request) {
        if matches!(
            self.base.state,
            ServerNonInviteState::Proceeding | ServerNonInviteState::Completed
        ) {
            if let Some(bytes) = self.last_response.clone() {
                self.base.out.send(bytes);
            }
        }
    }

    /// Sends the TU's response.
    pub fn respond(&mut self, now: Instant, response: Response) -> Result<(), TransactionError> {
        if !matches!(
            self.base.state,
            ServerNonInviteState::Trying | ServerNonInviteState::Proceeding
        ) {
            return Err(TransactionError::FinalAlreadySent);
        }
        let provisional = response.status_code.code() < 200;
        let bytes = to_bytes(response);
        self.base.out.send(bytes.clone());
        self.last_response = Some(bytes);
        if provisional {
            self.base.state = ServerNonInviteState::Proceeding;
        } else if self.base.reliable {
            self.terminate();
        } else {
            self.base.state = ServerNonInviteState::Completed;
            self.timer_j = Some(now + self.base.timers.timeout());
        }
        Ok(())
    }

    /// Advances timer J to `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if due(self.timer_j, now) {
            self.terminate();
        }
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer_j
    }

    fn terminate(&mut self) {
        self.timer_j = None;
        self.base.terminate(ServerNonInviteState::Terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::{self, ms, peer, request, response_to, status_of};

    fn start(reliable: bool) -> (Instant, Request, ServerNonInviteTransaction) {
        test_support::start(
            ServerNonInviteTransaction::new,
            "BYE",
            "z9hG4bKbye",
            reliable,
        )
    }

    #[test]
    fn retransmitted_bye_reaches_the_tu_once_and_gets_the_same_answer() {
        let (t0, bye, mut tx) = start(false);
        assert!(matches!(
            tx.poll_event(),
            Some(TransactionEvent::Request(_))
        ));
        tx.handle_request(t0 + ms(500), bye.clone());
        assert_eq!(tx.poll_transmit(), None, "absorbed while trying");
        tx.respond(t0 + ms(600), response_to(&bye, 200)).unwrap();
        assert_eq!(tx.poll_transmit().as_ref().and_then(status_of), Some(200));
        tx.handle_request(t0 + ms(1500), bye);
        assert_eq!(tx.poll_transmit().as_ref().and_then(status_of), Some(200));
        assert_eq!(tx.poll_event(), None);
    }

    #[test]
    fn timer_j_ends_the_transaction_after_64_t1() {
        let (t0, bye, mut tx) = start(false);
        tx.poll_event();
        tx.respond(t0, response_to(&bye, 200)).unwrap();
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
        tx.handle_timeout(t0 + ms(31_999));
        assert_eq!(tx.state(), ServerNonInviteState::Completed);
        tx.handle_timeout(t0 + ms(32_000));
        assert_eq!(tx.poll_event(), Some(TransactionEvent::Terminated));
    }

    #[test]
    fn reliable_transport_terminates_on_final_response() {
        let (t0, bye, mut tx) = start(true);
        tx.respond(t0, response_to(&bye, 200)).unwrap();
        assert_eq!(tx.state(), ServerNonInviteState::Terminated);
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn invite_cannot_start_a_non_invite_transaction() {
        let r = ServerNonInviteTransaction::new(
            Instant::now(),
            request("INVITE", "z9hG4bKx"),
            peer(),
            false,
            Timers::default(),
        );
        assert!(matches!(r, Err(TransactionError::WrongMethod { .. })));
    }
}
