//! The non-INVITE client transaction (RFC 3261 section 17.1.2): our BYE, REGISTER, OPTIONS...
//!
//! The request is retransmitted on timer E (T1 doubling up to T2; every T2 once a provisional
//! arrived) over UDP, until a final response or timer F (64*T1), which raises
//! [`TransactionEvent::Timeout`]. After the final response the transaction absorbs its
//! retransmissions for timer K (T4 over UDP, zero over TCP).

use std::net::SocketAddr;
use std::time::Instant;

use rsip::{Request, Response};

use super::{
    end_when_due, Base, RequestClock, Timers, TransactionError, TransactionEvent, TransactionKey,
    Transmit,
};
use crate::response::to_bytes;

/// Where a non-INVITE client transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientNonInviteState {
    /// Request sent, no response yet.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// The final response arrived; absorbing its retransmissions (timer K).
    Completed,
    /// Over.
    Terminated,
}

/// The client side of one non-INVITE request.
#[derive(Debug)]
pub struct ClientNonInviteTransaction {
    base: Base<ClientNonInviteState>,
    request_bytes: Vec<u8>,
    /// Timers E, F, then K.
    clock: RequestClock,
}

impl ClientNonInviteTransaction {
    base_methods!(ClientNonInviteState);
    client_methods!(ClientNonInviteState);

    /// Starts the transaction and queues the request (neither INVITE nor ACK) for `dest`.
    pub fn new(
        now: Instant,
        request: Request,
        dest: SocketAddr,
        reliable: bool,
        timers: Timers,
    ) -> Result<Self, TransactionError> {
        let base = Base::client(
            &request,
            false,
            ClientNonInviteState::Trying,
            timers,
            reliable,
            dest,
        )?;
        let request_bytes = to_bytes(request);
        let mut tx = Self {
            base,
            request_bytes: request_bytes.clone(),
            clock: RequestClock::start(now, timers, reliable, Some(timers.t2)),
        };
        tx.base.out.send(request_bytes);
        Ok(tx)
    }

    /// Where the request goes: an ICMP error about this address is a transport error for it.
    pub fn dest(&self) -> SocketAddr {
        self.base.out.dest
    }

    /// The network said `dest` is unreachable (RFC 3261 section 17.1.4): a request still
    /// without its final response reports [`TransactionEvent::Timeout`] and terminates, as if
    /// timer F had fired; after the final response it is ignored.
    pub fn handle_transport_error(&mut self) {
        if matches!(
            self.base.state,
            ClientNonInviteState::Trying | ClientNonInviteState::Proceeding
        ) {
            self.base.out.event(TransactionEvent::Timeout);
            self.terminate();
        }
    }

    /// A response routed to this transaction by its [`TransactionKey`].
    pub fn handle_response(&mut self, now: Instant, response: Response) {
        if !matches!(
            self.base.state,
            ClientNonInviteState::Trying | ClientNonInviteState::Proceeding
        ) {
            return;
        }
        if response.status_code.code() < 200 {
            self.base.state = ClientNonInviteState::Proceeding;
            self.base.out.event(TransactionEvent::Response(response));
            return;
        }
        self.clock.answered();
        self.base.out.event(TransactionEvent::Response(response));
        if self.base.reliable {
            self.terminate();
        } else {
            self.base.state = ClientNonInviteState::Completed;
            self.clock.linger_until(now + self.base.timers.t4);
        }
    }

    /// Advances timers E, F and K to `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = self.clock.fire(now);
        if due.resend {
            // Once a provisional arrived, every T2 (RFC 3261 section 17.1.2.2).
            if self.base.state == ClientNonInviteState::Proceeding {
                self.clock.resend_at(now + self.base.timers.t2);
            }
            self.base.out.send(self.request_bytes.clone());
        }
        let terminated = ClientNonInviteState::Terminated;
        end_when_due(&mut self.base, &mut self.clock, due, terminated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_support::{self, ms, response_to};

    fn start(reliable: bool) -> (Instant, Request, ClientNonInviteTransaction) {
        test_support::start(
            ClientNonInviteTransaction::new,
            "BYE",
            "z9hG4bKcn",
            reliable,
        )
    }

    fn retransmit_times(t0: Instant, tx: &mut ClientNonInviteTransaction) -> Vec<u128> {
        let mut times = Vec::new();
        while let Some(at) = tx.poll_timeout() {
            tx.handle_timeout(at);
            while tx.poll_transmit().is_some() {
                times.push(at.duration_since(t0).as_millis());
            }
        }
        times
    }

    #[test]
    fn timer_e_doubles_up_to_t2_then_timer_f_times_out() {
        let (t0, _, mut tx) = start(false);
        assert!(tx.poll_transmit().is_some());
        let times = retransmit_times(t0, &mut tx);
        assert_eq!(times[..5], [500, 1500, 3500, 7500, 11500]);
        assert!(times.iter().all(|&t| t < 32_000));
        assert_eq!(tx.poll_event(), Some(TransactionEvent::Timeout));
        assert_eq!(tx.poll_event(), Some(TransactionEvent::Terminated));
    }

    #[test]
    fn provisional_switches_timer_e_to_t2() {
        let (t0, bye, mut tx) = start(false);
        tx.poll_transmit();
        tx.handle_response(t0 + ms(100), response_to(&bye, 100));
        tx.handle_timeout(t0 + ms(500));
        assert!(tx.poll_transmit().is_some());
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(4500)));
    }

    #[test]
    fn final_response_stops_retransmission_and_timer_k_ends_it() {
        let (t0, bye, mut tx) = start(false);
        tx.poll_transmit();
        tx.handle_response(t0 + ms(100), response_to(&bye, 200));
        assert!(matches!(
            tx.poll_event(),
            Some(TransactionEvent::Response(_))
        ));
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(5100)));
        tx.handle_response(t0 + ms(200), response_to(&bye, 200));
        assert_eq!(tx.poll_event(), None, "retransmitted final is absorbed");
        tx.handle_timeout(t0 + ms(5100));
        assert_eq!(tx.poll_event(), Some(TransactionEvent::Terminated));
        assert_eq!(tx.poll_transmit(), None);
    }

    #[test]
    fn reliable_transport_does_not_retransmit() {
        let (t0, bye, mut tx) = start(true);
        tx.poll_transmit();
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(32_000)));
        tx.handle_response(t0 + ms(100), response_to(&bye, 200));
        assert_eq!(tx.state(), ClientNonInviteState::Terminated);
    }
}
