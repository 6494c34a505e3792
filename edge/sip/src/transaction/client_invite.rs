//! The INVITE client transaction (RFC 3261 section 17.1.1, with RFC 6026's Accepted state),
//! and the ACK and CANCEL requests built from an INVITE.
//!
//! It sends the INVITE, retransmits it on timer A (T1, doubling, over UDP) until any response,
//! and gives up on timer B (64*T1) with [`TransactionEvent::Timeout`]. A 3xx-6xx is acknowledged
//! here, by the transaction, and re-acknowledged if retransmitted, during timer D. A 2xx goes to
//! the TU, which acknowledges it through the dialog; 2xx retransmissions keep reaching the TU
//! for 64*T1 (RFC 6026 timer M) so it can re-send that ACK.

use std::net::SocketAddr;
use std::time::Instant;

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, Request, Response};

use super::{
    end_when_due, Base, RequestClock, Timers, TransactionError, TransactionEvent, TransactionKey,
    Transmit,
};
use crate::message::{cseq, SipError};
use crate::response::to_bytes;
use crate::via::TopVia;

/// Where an INVITE client transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientInviteState {
    /// INVITE sent, no response yet.
    Calling,
    /// A provisional response arrived.
    Proceeding,
    /// A 3xx-6xx arrived and was acknowledged; absorbing its retransmissions (timer D).
    Completed,
    /// A 2xx arrived; passing its retransmissions to the TU (timer M).
    Accepted,
    /// Over.
    Terminated,
}

/// The client side of one INVITE.
#[derive(Debug)]
pub struct ClientInviteTransaction {
    base: Base<ClientInviteState>,
    request: Request,
    request_bytes: Vec<u8>,
    ack_bytes: Option<Vec<u8>>,
    /// Timers A, B, then D or M.
    clock: RequestClock,
}

impl ClientInviteTransaction {
    base_methods!(ClientInviteState);
    client_methods!(ClientInviteState);

    /// Starts the transaction and queues the INVITE for `dest` (the next hop).
    pub fn new(
        now: Instant,
        request: Request,
        dest: SocketAddr,
        reliable: bool,
        timers: Timers,
    ) -> Result<Self, TransactionError> {
        let base = Base::client(
            &request,
            true,
            ClientInviteState::Calling,
            timers,
            reliable,
            dest,
        )?;
        let request_bytes = to_bytes(request.clone());
        let mut tx = Self {
            base,
            request,
            request_bytes: request_bytes.clone(),
            ack_bytes: None,
            clock: RequestClock::start(now, timers, reliable, None),
        };
        tx.base.out.send(request_bytes);
        Ok(tx)
    }

    /// Where the INVITE goes: an ICMP error about this address is a transport error for it.
    pub fn dest(&self) -> SocketAddr {
        self.base.out.dest
    }

    /// The network said `dest` is unreachable (RFC 3261 section 17.1.4): an INVITE still
    /// without any response reports [`TransactionEvent::Timeout`] and terminates, which its TU
    /// treats as it would a 503 (section 8.1.3.1). Once a response came the peer is reachable
    /// and a late (or forged) ICMP error is ignored.
    pub fn handle_transport_error(&mut self) {
        if self.base.state == ClientInviteState::Calling {
            self.base.out.event(TransactionEvent::Timeout);
            self.terminate();
        }
    }

    /// The INVITE this transaction carries, e.g. to build a CANCEL with [`build_cancel`].
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// A response routed to this transaction by its [`TransactionKey`].
    pub fn handle_response(&mut self, now: Instant, response: Response) {
        let code = response.status_code.code();
        match (self.base.state, code) {
            (ClientInviteState::Calling | ClientInviteState::Proceeding, 100..=199) => {
                self.base.state = ClientInviteState::Proceeding;
                self.clock.answered();
                self.base.out.event(TransactionEvent::Response(response));
            }
            (ClientInviteState::Calling | ClientInviteState::Proceeding, 200..=299) => {
                self.base.state = ClientInviteState::Accepted;
                self.clock.answered();
                self.clock.linger_until(now + self.base.timers.timeout());
                self.base.out.event(TransactionEvent::Response(response));
            }
            (ClientInviteState::Accepted, 200..=299) => {
                self.base.out.event(TransactionEvent::Response(response));
            }
            (ClientInviteState::Calling | ClientInviteState::Proceeding, 300..) => {
                self.clock.answered();
                match build_ack(&self.request, &response) {
                    Ok(ack) => {
                        let bytes = to_bytes(ack);
                        self.base.out.send(bytes.clone());
                        self.ack_bytes = Some(bytes);
                    }
                    Err(error) => tracing::warn!(%error, "cannot acknowledge error response"),
                }
                self.base.out.event(TransactionEvent::Response(response));
                if self.base.reliable {
                    self.terminate();
                } else {
                    self.base.state = ClientInviteState::Completed;
                    self.clock.linger_until(now + self.base.timers.timer_d());
                }
            }
            (ClientInviteState::Completed, 300..) => {
                if let Some(bytes) = self.ack_bytes.clone() {
                    self.base.out.send(bytes);
                }
            }
            _ => tracing::debug!(code, "ignoring response in INVITE client transaction"),
        }
    }

    /// Advances timers A, B, D and M to `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = self.clock.fire(now);
        if due.resend {
            self.base.out.send(self.request_bytes.clone());
        }
        let terminated = ClientInviteState::Terminated;
        end_when_due(&mut self.base, &mut self.clock, due, terminated);
    }
}

/// The ACK for a 3xx-6xx answer to `invite` (RFC 3261 section 17.1.1.3): same Request-URI,
/// Call-ID, From, CSeq number and top Via as the INVITE, the To of the response, and the
/// INVITE's Route set.
pub fn build_ack(invite: &Request, response: &Response) -> Result<Request, SipError> {
    derived_request(invite, Method::Ack, to_header(&response.headers)?)
}

/// The CANCEL for `invite` (RFC 3261 section 9.1): same Request-URI, Call-ID, From, To, CSeq
/// number, top Via (so the same branch) and Route set; method CANCEL.
pub fn build_cancel(invite: &Request) -> Result<Request, SipError> {
    derived_request(invite, Method::Cancel, to_header(&invite.headers)?)
}

/// The To header of a message: an ACK takes the response's (with the UAS's tag), a CANCEL the
/// INVITE's.
fn to_header(headers: &rsip::Headers) -> Result<Header, SipError> {
    headers
        .iter()
        .find(|h| matches!(h, Header::To(_)))
        .cloned()
        .ok_or(SipError::MissingHeader("To"))
}

fn derived_request(invite: &Request, method: Method, to: Header) -> Result<Request, SipError> {
    let via = TopVia::of(&invite.headers)?;
    let (number, _) = cseq(&invite.headers)?;
    let mut headers = rsip::Headers::default();
    headers.push(Header::Via(rsip::headers::Via::new(via.to_string())));
    for header in invite.headers.iter() {
        if matches!(
            header,
            Header::From(_) | Header::CallId(_) | Header::Route(_)
        ) {
            headers.push(header.clone());
        }
    }
    headers.push(to);
    headers.push(Header::CSeq(rsip::headers::CSeq::new(format!(
        "{number} {method}"
    ))));
    headers.push(Header::MaxForwards(rsip::headers::MaxForwards::new("70")));
    headers.push(Header::ContentLength(rsip::headers::ContentLength::new(
        "0",
    )));
    Ok(Request {
        method,
        uri: invite.uri.clone(),
        version: rsip::Version::V2,
        headers,
        body: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::header_param;
    use crate::transaction::test_support::{self, method_of, ms, request, response_to};

    fn start(reliable: bool) -> (Instant, Request, ClientInviteTransaction) {
        test_support::start(
            ClientInviteTransaction::new,
            "INVITE",
            "z9hG4bKci",
            reliable,
        )
    }

    fn sent(tx: &mut ClientInviteTransaction) -> Vec<Option<Method>> {
        test_support::drain(|| tx.poll_transmit())
            .iter()
            .map(method_of)
            .collect()
    }

    #[test]
    fn timer_a_doubles_without_a_cap_until_timer_b() {
        let (t0, _, mut tx) = start(false);
        assert_eq!(sent(&mut tx), [Some(Method::Invite)]);
        let mut retransmits = Vec::new();
        while let Some(at) = tx.poll_timeout() {
            tx.handle_timeout(at);
            if !sent(&mut tx).is_empty() {
                retransmits.push(at.duration_since(t0).as_millis());
            }
        }
        assert_eq!(retransmits, [500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(tx.poll_event(), Some(TransactionEvent::Timeout));
        assert_eq!(tx.poll_event(), Some(TransactionEvent::Terminated));
    }

    #[test]
    fn timer_b_timeout_raises_timeout_event() {
        let (t0, _, mut tx) = start(true);
        assert_eq!(
            tx.poll_timeout(),
            Some(t0 + ms(32_000)),
            "no timer A over TCP"
        );
        tx.handle_timeout(t0 + ms(32_000));
        assert_eq!(tx.poll_event(), Some(TransactionEvent::Timeout));
        assert_eq!(tx.state(), ClientInviteState::Terminated);
    }

    #[test]
    fn provisional_stops_retransmissions() {
        let (t0, invite, mut tx) = start(false);
        sent(&mut tx);
        tx.handle_response(t0 + ms(100), response_to(&invite, 180));
        assert_eq!(tx.state(), ClientInviteState::Proceeding);
        assert_eq!(tx.poll_timeout(), None);
        assert!(matches!(
            tx.poll_event(),
            Some(TransactionEvent::Response(_))
        ));
    }

    #[test]
    fn error_response_is_acked_by_the_transaction_and_reacked_on_retransmit() {
        let (t0, invite, mut tx) = start(false);
        sent(&mut tx);
        let busy = response_to(&invite, 486);
        tx.handle_response(t0 + ms(100), busy.clone());
        assert_eq!(sent(&mut tx), [Some(Method::Ack)]);
        assert!(matches!(
            tx.poll_event(),
            Some(TransactionEvent::Response(_))
        ));
        tx.handle_response(t0 + ms(600), busy);
        assert_eq!(sent(&mut tx), [Some(Method::Ack)]);
        assert_eq!(tx.poll_event(), None, "retransmission is absorbed");
        tx.handle_timeout(t0 + ms(100) + Timers::default().timeout());
        assert_eq!(tx.poll_event(), Some(TransactionEvent::Terminated));
    }

    #[test]
    fn ack_carries_the_response_to_tag_and_invite_branch() {
        let invite = request("INVITE", "z9hG4bKci");
        let ack = build_ack(&invite, &response_to(&invite, 404)).unwrap();
        assert_eq!(
            TransactionKey::server(&ack),
            TransactionKey::server(&invite)
        );
        let to = ack
            .headers
            .iter()
            .find_map(|h| match h {
                Header::To(t) => Some(t.value().to_owned()),
                _ => None,
            })
            .unwrap();
        assert_eq!(header_param(&to, "tag"), Some("b2"));
        assert_eq!(cseq(&ack.headers), Ok((7, Method::Ack)));
    }

    #[test]
    fn cancel_matches_the_invite_server_transaction() {
        let invite = request("INVITE", "z9hG4bKci");
        let cancel = build_cancel(&invite).unwrap();
        assert_eq!(cancel.method, Method::Cancel);
        assert_eq!(
            TransactionKey::cancelled_invite(&cancel),
            TransactionKey::server(&invite)
        );
    }

    #[test]
    fn retransmitted_2xx_reaches_the_tu_until_timer_m() {
        let (t0, invite, mut tx) = start(false);
        tx.handle_response(t0 + ms(100), response_to(&invite, 200));
        tx.handle_response(t0 + ms(600), response_to(&invite, 200));
        assert!(matches!(
            tx.poll_event(),
            Some(TransactionEvent::Response(_))
        ));
        assert!(matches!(
            tx.poll_event(),
            Some(TransactionEvent::Response(_))
        ));
        assert_eq!(sent(&mut tx), [Some(Method::Invite)], "the TU acks a 2xx");
        tx.handle_timeout(t0 + ms(100) + Timers::default().timeout());
        assert_eq!(tx.poll_event(), Some(TransactionEvent::Terminated));
    }
}
