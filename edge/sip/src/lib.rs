//! Freya's SIP core, sans-IO: message parsing and validation, transactions, dialogs, SDP
//! offer/answer, digest authentication and outbound calls, with no sockets, clocks or tasks
//! inside. A crate of its own so that Cargo, not review, keeps the async runtime out: tokio is
//! not in this crate's dependency tree (checked by `edge/tests/architecture.rs`).
//!
//! Everything here is a plain value driven by its caller, in the quinn-proto style: hand it bytes
//! and `now`, then drain `poll_transmit()`, `poll_timeout()` and `poll_event()`. The edge's tokio shell
//! (`freya_edge::sip::transport`) only moves datagrams and time, so every RFC 3261 timer is tested
//! to the millisecond without sleeping. rsip tokenizes and serializes messages; the protocol
//! semantics (what must be present, which transaction a message belongs to, when to retransmit)
//! are ours.
//!
//! Outbound calls: [`uac::InviteAttempt`] (one INVITE through one trunk, digest retry, CANCEL),
//! [`outbound::OutboundCall`] (failover across trunks), [`breaker::TrunkBreakers`]; the
//! endpoint drives them. [`peer`] is the transport seam (UDP, TCP, TLS) and [`framing`] cuts
//! a TCP or TLS stream into messages. [`register::Registration`] keeps a binding at a PBX or
//! trunk's registrar (RFC 3261 section 10).
//!
//! A request's path: [`parse_unvalidated`] → [`validate`] (or [`bad_request`] on failure) →
//! [`stamp_received`] → [`TransactionKey::server`] → a server transaction → the TU, which
//! answers with [`build_response`] and, for an INVITE, [`sdp::answer()`].

pub mod breaker;
pub mod dialog;
pub mod digest;
pub mod endpoint;
pub mod framing;
pub mod ipv6_ref;
pub mod message;
pub mod outbound;
pub mod peer;
pub mod register;
pub mod response;
pub mod sdp;
pub mod session_timer;
#[cfg(test)]
mod torture_tests;
pub mod transaction;
pub mod uac;
pub mod via;

pub use message::{parse_message, parse_unvalidated, validate, SipError, MAX_MESSAGE_SIZE};
pub use peer::{Outgoing, Peer, Transport};
pub use response::{bad_request, build_response, new_tag, status};
pub use transaction::{
    ClientInviteTransaction, ClientNonInviteTransaction, ServerInviteTransaction,
    ServerNonInviteTransaction, Timers, TransactionError, TransactionEvent, TransactionKey,
    Transmit,
};
pub use via::{stamp_received, TopVia};
