//! Calls through Twilio: a Twilio account is a telephony provider like a SIP trunk, but its
//! calls reach the edge as a voice webhook and a Media Streams WebSocket ([`webhook`],
//! [`stream`]), and outbound ones are placed with Twilio's REST API ([`rest`]). The protocol
//! pieces are sans-IO and tested alone: the webhook [`signature`], the stream [`messages`],
//! the [`twiml`] answer and the signed [`ticket`] that ties a stream to its call. Audio runs
//! through the same media core as RTP (see [`crate::call::leg`]). [`fakes`] is a fake Twilio
//! for tests.

/// The fake Twilio: `freya-control`'s Twilio tests place and answer calls through it.
pub mod fakes;
pub(crate) mod messages;
pub(crate) mod rest;
pub(crate) mod signature;
pub(crate) mod stream;
pub(crate) mod ticket;
pub(crate) mod twiml;
pub(crate) mod webhook;

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::call::task::CallServices;
use ticket::{StreamTicket, TicketKey, UsedTickets};

/// What the Twilio endpoints and outbound placement share.
#[derive(Clone)]
pub struct TwilioEdge {
    pub services: CallServices,
    /// This edge's public base URL (`https://edge1.example.com`), as Twilio reaches it: the
    /// webhook signature covers it, and the stream URL is built from it.
    pub public_url: Arc<str>,
    pub tickets: TicketKey,
    /// The tickets that have opened a stream on this edge: each opens one only. Held for a
    /// lookup and an insert, never across an `.await`.
    pub used_tickets: Arc<Mutex<UsedTickets>>,
    pub shutdown: CancellationToken,
    pub http: reqwest::Client,
    /// Webhooks by outcome, for `/metrics`.
    pub webhooks: crate::metrics::WebhookCounter,
    /// The cluster's latest view, to send a call this edge will not take to a live peer's
    /// media stream; `None` without a cluster.
    pub cluster: Option<tokio::sync::watch::Receiver<Arc<crate::cluster::report::ClusterSnapshot>>>,
    /// This edge's region (`region`).
    pub region: Arc<str>,
}

impl TwilioEdge {
    /// The URL of this edge's media-stream WebSocket (`wss://` for an `https://` edge).
    pub fn stream_url(&self) -> String {
        let base = &self.public_url;
        let ws = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base.to_string()
        };
        format!("{ws}/twilio/media")
    }

    /// The URL Twilio POSTs an outbound call's final status to, carrying `ticket`.
    pub fn status_url(&self, ticket: &StreamTicket) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("ticket", &self.tickets.sign(ticket))
            .finish();
        format!("{}/twilio/status?{query}", self.public_url)
    }

    /// Counts one webhook with `outcome`.
    pub fn count(&self, outcome: &str) {
        self.webhooks
            .get_or_create(&vec![("outcome".to_owned(), outcome.to_owned())])
            .inc();
    }

    /// The media-stream URL of peer `peer`: its HTTP listener as gossip names it, under this
    /// edge's scheme (`wss://` when this edge is reached over `https://`). Gossip carries no
    /// public URL, so peers' HTTP listeners must be reachable at the address they bind.
    pub fn peer_stream_url(&self, peer: &crate::cluster::health::PeerHealth) -> String {
        let ws = if self.public_url.starts_with("https://") {
            "wss"
        } else {
            "ws"
        };
        format!("{ws}://{}/twilio/media", peer.http_addr)
    }

    /// TwiML that connects a call to peer `peer`'s media stream, carrying `ticket` (made out to
    /// that peer: a ticket opens a stream only on the edge it names).
    pub fn connect_peer_twiml(
        &self,
        peer: &crate::cluster::health::PeerHealth,
        ticket: &StreamTicket,
    ) -> String {
        twiml::connect_stream(
            &self.peer_stream_url(peer),
            &[("ticket", &self.tickets.sign(ticket))],
        )
    }

    /// TwiML that connects a call to this edge's media stream, carrying `ticket`.
    pub fn connect_twiml(&self, ticket: &StreamTicket) -> String {
        twiml::connect_stream(
            &self.stream_url(),
            &[("ticket", &self.tickets.sign(ticket))],
        )
    }
}
