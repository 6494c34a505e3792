//! Stream tickets: what the edge puts in the `<Stream>` it answers a webhook (or places an
//! outbound call) with, so that the media WebSocket that comes back later can be trusted and
//! tied to its call without any state kept in between. A ticket names the call (our id, the
//! workspace, the parties, the direction, the agent of an outbound call, Twilio's call SID when
//! known, the edge that wrote it, an expiry) and is signed with HMAC-SHA256 under a key derived from the edges' shared secret —
//! so any edge of the deployment can check it, and nobody else can forge one.
//!
//! A ticket opens one stream only: [`UsedTickets`] — a sans-IO book the caller hands `now` —
//! checks that it has not expired, was written by this edge and names the `start` message's
//! CallSid, and remembers it
//! until it expires, so that a ticket (and the stream URL's signature, which does not cover it)
//! copied from one call cannot open a second stream. An inbound ticket lives
//! [`INBOUND_TICKET_TTL_MS`] (60 s).

use std::collections::HashMap;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The call a stream belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamTicket {
    /// Our call id.
    #[serde(rename = "c")]
    pub call_id: String,
    #[serde(rename = "w")]
    pub workspace_id: String,
    /// `true` for a call we placed.
    #[serde(rename = "o", default)]
    pub outbound: bool,
    #[serde(rename = "f")]
    pub from: String,
    #[serde(rename = "t")]
    pub to: String,
    /// The agent of an outbound call (an inbound one is routed by `to`).
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Twilio's call SID, when known as the ticket is written (inbound calls).
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub call_sid: Option<String>,
    /// The Twilio provider the call came or went through.
    #[serde(rename = "p")]
    pub provider_id: String,
    /// The edge that wrote it, and whose stream URL it was given with: only that edge accepts
    /// it for a stream (each edge remembers only the tickets it has accepted itself). Empty in
    /// tickets written before tickets named their edge, which open no stream.
    #[serde(rename = "g", default)]
    pub edge_id: String,
    /// After this (ms since the epoch) no stream may start with it: a copied ticket cannot
    /// open a second stream later.
    #[serde(rename = "e")]
    pub expires_at_ms: i64,
}

/// How long Twilio may take to open an inbound call's stream after the webhook.
pub(crate) const INBOUND_TICKET_TTL_MS: i64 = 60 * 1000;
// A stream ticket an attacker could copy is good for a minute at most.
const _: () = assert!(INBOUND_TICKET_TTL_MS <= 60_000);
/// How long an outbound call may ring (Twilio's longest `Timeout` is 600 s) before its stream.
pub(crate) const OUTBOUND_TICKET_TTL_MS: i64 = 11 * 60 * 1000;

impl StreamTicket {
    /// Whether a stream may no longer start with it at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        now_ms > self.expires_at_ms
    }
}

/// The most tickets [`UsedTickets`] remembers at once; while it holds this many unexpired
/// ones, new streams are refused rather than let a used ticket be forgotten early.
pub(crate) const USED_TICKETS_CAP: usize = 100_000;

/// Tickets that have opened a stream, by call id, each kept until it expires: a ticket opens
/// one stream only. Sans-IO: the caller gives `now`.
#[derive(Debug)]
pub struct UsedTickets {
    /// This edge: tickets written by another are refused.
    edge_id: String,
    /// Call id → the ticket's expiry (ms since the epoch).
    used: HashMap<String, i64>,
    cap: usize,
}

impl UsedTickets {
    /// The book of edge `edge_id`, remembering at most [`USED_TICKETS_CAP`] tickets.
    pub fn new(edge_id: &str) -> Self {
        Self::with_cap(edge_id, USED_TICKETS_CAP)
    }

    /// The book of edge `edge_id`, remembering at most `cap` tickets.
    pub fn with_cap(edge_id: &str, cap: usize) -> Self {
        Self {
            edge_id: edge_id.to_owned(),
            used: HashMap::new(),
            cap,
        }
    }

    /// How many tickets it remembers.
    pub fn len(&self) -> usize {
        self.used.len()
    }

    /// Whether it remembers none.
    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }

    /// Lets `ticket` open the stream whose `start` names `call_sid` at `now_ms`, and records it
    /// as used; or says why not. A ticket that names no CallSid (an outbound call's, written
    /// before Twilio gave the call one) is bound to its call by its call id alone.
    pub fn redeem(
        &mut self,
        now_ms: i64,
        ticket: &StreamTicket,
        call_sid: &str,
    ) -> Result<(), TicketError> {
        if ticket.expired(now_ms) {
            return Err(TicketError::Expired);
        }
        if ticket.edge_id != self.edge_id {
            return Err(TicketError::OtherEdge);
        }
        if ticket
            .call_sid
            .as_deref()
            .is_some_and(|sid| sid != call_sid)
        {
            return Err(TicketError::OtherCall);
        }
        if self.used.contains_key(&ticket.call_id) {
            return Err(TicketError::AlreadyUsed);
        }
        if self.used.len() >= self.cap {
            self.used
                .retain(|_, expires_at_ms| *expires_at_ms >= now_ms);
            if self.used.len() >= self.cap {
                return Err(TicketError::TooMany);
            }
        }
        self.used
            .insert(ticket.call_id.clone(), ticket.expires_at_ms);
        Ok(())
    }

    /// Forgets the tickets expired at `now_ms`: they are refused as expired anyway.
    pub fn handle_timeout(&mut self, now_ms: i64) {
        self.used
            .retain(|_, expires_at_ms| *expires_at_ms >= now_ms);
    }
}

/// Signs and checks tickets.
#[derive(Clone)]
pub struct TicketKey {
    key: [u8; 32],
}

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketKey(..)")
    }
}

/// Why a ticket is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("the ticket is malformed")]
    Malformed,
    #[error("the ticket's signature does not match")]
    BadSignature,
    #[error("the ticket has expired")]
    Expired,
    #[error("the ticket is for another call")]
    OtherCall,
    #[error("the ticket was written by another edge")]
    OtherEdge,
    #[error("the ticket has already opened a stream")]
    AlreadyUsed,
    #[error("too many streams started recently")]
    TooMany,
}

impl TicketKey {
    /// The key derived from the edges' shared secret.
    pub fn from_secret(secret: &str) -> Self {
        use sha2::Digest;
        let mut hasher = Sha256::new();
        hasher.update(b"freya twilio stream ticket\0");
        hasher.update(secret.as_bytes());
        Self {
            key: hasher.finalize().into(),
        }
    }

    fn mac(&self, body: &str) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(body.as_bytes());
        Some(mac)
    }

    /// `ticket` as text: base64url of its JSON, a dot, base64url of the signature.
    pub fn sign(&self, ticket: &StreamTicket) -> String {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = engine.encode(serde_json::to_vec(ticket).unwrap_or_default());
        let signature = self
            .mac(&body)
            .map(|m| engine.encode(m.finalize().into_bytes()))
            .unwrap_or_default();
        format!("{body}.{signature}")
    }

    /// The ticket in `text`, if this key signed it.
    pub fn open(&self, text: &str) -> Result<StreamTicket, TicketError> {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (body, signature) = text.split_once('.').ok_or(TicketError::Malformed)?;
        let signature = engine
            .decode(signature)
            .map_err(|_| TicketError::Malformed)?;
        let mac = self.mac(body).ok_or(TicketError::Malformed)?;
        mac.verify_slice(&signature)
            .map_err(|_| TicketError::BadSignature)?;
        let json = engine.decode(body).map_err(|_| TicketError::Malformed)?;
        serde_json::from_slice(&json).map_err(|_| TicketError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> StreamTicket {
        StreamTicket {
            call_id: "c1".into(),
            workspace_id: "w1".into(),
            outbound: false,
            from: "+15550100".into(),
            to: "+15550199".into(),
            agent_id: None,
            call_sid: Some("CA1".into()),
            provider_id: "p1".into(),
            edge_id: "edge-a".into(),
            expires_at_ms: 1_000,
        }
    }

    #[test]
    fn a_ticket_expires() {
        assert!(!ticket().expired(1_000));
        assert!(ticket().expired(1_001));
    }

    #[test]
    fn a_ticket_opens_one_stream_only() {
        let mut used = UsedTickets::new("edge-a");
        assert_eq!(used.redeem(500, &ticket(), "CA1"), Ok(()));
        assert_eq!(
            used.redeem(600, &ticket(), "CA1"),
            Err(TicketError::AlreadyUsed)
        );
        let mut other = ticket();
        other.call_id = "c2".into();
        other.call_sid = Some("CA2".into());
        assert_eq!(used.redeem(600, &other, "CA2"), Ok(()));
    }

    #[test]
    fn a_ticket_for_one_call_sid_does_not_start_another() {
        let mut used = UsedTickets::new("edge-a");
        assert_eq!(
            used.redeem(500, &ticket(), "CA2"),
            Err(TicketError::OtherCall)
        );
        // Refused, it is not spent: its own call may still use it.
        assert_eq!(used.redeem(500, &ticket(), "CA1"), Ok(()));
    }

    #[test]
    fn a_ticket_opens_a_stream_on_the_edge_that_wrote_it_only() {
        let mut elsewhere = UsedTickets::new("edge-b");
        assert_eq!(
            elsewhere.redeem(500, &ticket(), "CA1"),
            Err(TicketError::OtherEdge)
        );
        let mut unnamed = ticket();
        unnamed.edge_id = String::new();
        assert_eq!(
            UsedTickets::new("edge-a").redeem(500, &unnamed, "CA1"),
            Err(TicketError::OtherEdge)
        );
    }

    #[test]
    fn an_expired_ticket_is_refused() {
        let mut used = UsedTickets::new("edge-a");
        assert_eq!(
            used.redeem(1_001, &ticket(), "CA1"),
            Err(TicketError::Expired)
        );
        assert!(used.is_empty());
    }

    #[test]
    fn an_inbound_ticket_lives_a_minute_at_most() {
        let issued = 10_000;
        let mut t = ticket();
        t.expires_at_ms = issued + INBOUND_TICKET_TTL_MS;
        let mut used = UsedTickets::new("edge-a");
        assert_eq!(
            used.redeem(issued + 60_001, &t, "CA1"),
            Err(TicketError::Expired)
        );
        assert_eq!(used.redeem(issued + 59_000, &t, "CA1"), Ok(()));
    }

    #[test]
    fn the_book_is_bounded_and_forgets_expired_tickets_first() {
        let mut used = UsedTickets::with_cap("edge-a", 2);
        let numbered = |i: i64| {
            let mut t = ticket();
            t.call_id = format!("c{i}");
            t.call_sid = None;
            t.expires_at_ms = 1_000 * i;
            t
        };
        assert_eq!(used.redeem(0, &numbered(1), "CA"), Ok(()));
        assert_eq!(used.redeem(0, &numbered(2), "CA"), Ok(()));
        // Full of live tickets: refused rather than forgetting one early.
        assert_eq!(
            used.redeem(500, &numbered(3), "CA"),
            Err(TicketError::TooMany)
        );
        // Once the first has expired, its place is free; the second is still remembered.
        assert_eq!(used.redeem(1_500, &numbered(3), "CA"), Ok(()));
        assert_eq!(used.len(), 2);
        assert_eq!(
            used.redeem(1_600, &numbered(2), "CA"),
            Err(TicketError::AlreadyUsed)
        );
        used.handle_timeout(10_000);
        assert!(used.is_empty());
    }

    #[test]
    fn a_ticket_opens_under_its_key_only_and_unaltered() {
        let key = TicketKey::from_secret("shared");
        let text = key.sign(&ticket());
        assert_eq!(key.open(&text), Ok(ticket()));
        assert_eq!(
            TicketKey::from_secret("other").open(&text),
            Err(TicketError::BadSignature)
        );
        let mut forged = ticket();
        forged.workspace_id = "w2".into();
        let forged_body = key.sign(&forged);
        let spliced = format!(
            "{}.{}",
            forged_body.split('.').next().expect("body"),
            text.split('.').nth(1).expect("signature")
        );
        assert_eq!(key.open(&spliced), Err(TicketError::BadSignature));
        assert_eq!(key.open("no-dot"), Err(TicketError::Malformed));
        assert_eq!(key.open("a.!!"), Err(TicketError::Malformed));
    }
}
