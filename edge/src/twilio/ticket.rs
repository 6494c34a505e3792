//! Stream tickets: what the edge puts in the `<Stream>` it answers a webhook (or places an
//! outbound call) with, so that the media WebSocket that comes back later can be trusted and
//! tied to its call without any state kept in between. A ticket names the call (our id, the
//! workspace, the parties, the direction, the agent of an outbound call, Twilio's call SID when
//! known, an expiry) and is signed with HMAC-SHA256 under a key derived from the edges' shared secret —
//! so any edge of the deployment can check it, and nobody else can forge one.

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
    /// After this (ms since the epoch) no stream may start with it: a copied ticket cannot
    /// open a second stream later.
    #[serde(rename = "e")]
    pub expires_at_ms: i64,
}

/// How long Twilio may take to open an inbound call's stream after the webhook.
pub const INBOUND_TICKET_TTL_MS: i64 = 2 * 60 * 1000;
/// How long an outbound call may ring (Twilio's longest `Timeout` is 600 s) before its stream.
pub const OUTBOUND_TICKET_TTL_MS: i64 = 11 * 60 * 1000;

impl StreamTicket {
    /// Whether a stream may no longer start with it at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        now_ms > self.expires_at_ms
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
            expires_at_ms: 1_000,
        }
    }

    #[test]
    fn a_ticket_expires() {
        assert!(!ticket().expired(1_000));
        assert!(ticket().expired(1_001));
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
