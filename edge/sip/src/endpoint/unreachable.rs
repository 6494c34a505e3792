//! ICMP errors as transport errors (RFC 3261 sections 17.1.4 and 8.1.3.1): when the network
//! says a destination is unreachable, every client transaction of ours still waiting on it over
//! UDP fails at once instead of retransmitting into the void until its timer runs out. An
//! outbound call's attempt through that trunk ends as a 503 would (the call tries its next
//! trunk, the trunk's circuit breaker counts a failure); a BYE, INFO, REFER, UPDATE or refresh
//! re-INVITE ends as if it had timed out.
//!
//! A TCP or TLS connection we could not open (refused, timed out, a certificate that does not
//! verify) is the same transport error for the transactions that were to use it
//! ([`SipEndpoint::handle_connection_failed`]): an outbound call through a TLS trunk whose
//! certificate is refused fails over to its next trunk at once.
//!
//! The shell reads the errors from its socket's error queue (`transport/icmp.rs`). An ICMP
//! message is easy to forge, so it only ever names one destination and touches only
//! transactions towards exactly that address; server transactions and dialogs are left alone.

use std::net::SocketAddr;
use std::time::Instant;

use super::SipEndpoint;
use crate::peer::Peer;
use crate::transaction::TransactionKey;

impl SipEndpoint {
    /// The network reported `dest` unreachable (an ICMP error for a UDP datagram we sent
    /// there): fails our client transactions to it, outbound call attempts included.
    pub fn handle_unreachable(&mut self, now: Instant, dest: SocketAddr) {
        self.fail_unreachable(now, Peer::udp(dest));
        self.settle_timers();
    }

    /// A connection to `peer` (TCP or TLS) could not be opened, or broke before its messages
    /// went out: fails our client transactions to it, as an ICMP error does over UDP.
    pub fn handle_connection_failed(&mut self, now: Instant, peer: Peer) {
        self.fail_unreachable(now, peer);
        self.settle_timers();
    }

    fn fail_unreachable(&mut self, now: Instant, dest: Peer) {
        let calls: Vec<String> = self.outbound.keys().cloned().collect();
        for call_id in calls {
            let hit = self
                .outbound
                .get_mut(&call_id)
                .is_some_and(|call| call.handle_unreachable(now, dest, &mut self.breakers));
            if hit {
                tracing::info!(call = %call_id, %dest, "trunk unreachable; trying the next");
                self.drain_outbound(now, &call_id);
            }
        }
        let requests: Vec<TransactionKey> = self
            .outgoing
            .iter()
            .filter(|(key, r)| r.tx.dest() == dest.addr && self.transport_of(key) == dest.transport)
            .map(|(key, _)| key.clone())
            .collect();
        for key in requests {
            if let Some(request) = self.outgoing.get_mut(&key) {
                request.tx.handle_transport_error();
            }
            self.drain_outgoing(now, &key);
        }
        self.refresh_invites_unreachable(now, dest);
        self.registrations_unreachable(now, dest);
    }
}
