//! A dialog (RFC 3261 section 12): what the edge remembers about one call to route its in-dialog
//! requests (ACK, BYE, re-INVITE, INFO) and to send its own BYE. An inbound call's dialog starts
//! from the INVITE ([`Dialog::from_invite`], we are the UAS); an outbound call's from our INVITE
//! and the 2xx that answered it ([`Dialog::from_answer`], we are the UAC). Either way the fields
//! say the same thing from our side: our tag, the remote party's header for our BYE's To, our
//! header for its From, where to send it and over what.
//!
//! A request belongs to a dialog only if its Call-ID *and* both tags match ([`Dialog::matches`],
//! RFC 3261 section 12.2.2): the Call-ID travels in the clear to every proxy and trunk on the
//! way, so a request that matches it alone could come from anyone, and hang the call up or
//! press keys in it.
//!
//! Proxies that record-routed the dialog stay on its path: the dialog keeps their route set
//! (the INVITE's Record-Route in order as UAS, the 2xx's reversed as UAC) and every request we
//! send in it carries them as Route headers and goes to the first of them ([`Dialog::next_hop`],
//! `dialog/route.rs`). The route set never changes once set; the remote target does, on a
//! target refresh ([`Dialog::refresh_target`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use rsip::headers::{
    CSeq, CallId, ContentLength, From, MaxForwards, Route, To, UntypedHeader, Via,
};
use rsip::{Header, Method, Request, Response};

use super::endpoint::in_dialog::Transfer;
use super::message::{cseq, header_param};
use super::peer::{Peer, Transport};
use super::response::{build_response, new_tag, status};
use super::session_timer::SessionTimer;
use super::transaction::TransactionKey;
use super::SipError;

/// Where the dialog is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// INVITE received, no final response yet.
    Early,
    /// 200 OK sent (and possibly acknowledged).
    Confirmed,
    /// BYE sent or received, or the INVITE was refused.
    Terminated,
}

/// One call's dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub state: DialogState,
    /// Our tag, on the To header of every response.
    pub local_tag: String,
    /// The remote party's header value with its tag (the caller's From, or the To of the 2xx
    /// that answered our INVITE): our BYE's To.
    pub remote_from: String,
    /// Our header value (the INVITE's To without our tag, or our INVITE's From with it): our
    /// BYE's From, with `local_tag` added when it has no tag yet.
    pub local_to: String,
    /// The remote Contact URI: the Request-URI of our BYE (with loose routing).
    pub remote_target: String,
    /// The proxies on the dialog's path, as Route values in the order our requests carry them
    /// (RFC 3261 section 12.1); empty when none record-routed.
    pub route_set: Vec<String>,
    /// Where the remote party is; in-dialog requests go back there (symmetric signalling,
    /// which is what works through NAT).
    pub peer: SocketAddr,
    /// The transport the dialog's requests travel on.
    pub transport: Transport,
    /// The INVITE's server transaction, to which the ACK for our 2xx is routed.
    pub invite_key: TransactionKey,
    /// Our answer, repeated in replies to re-INVITEs (hold, resume, session refresh).
    pub local_sdp: Option<String>,
    /// Our next CSeq number for requests we send.
    pub local_cseq: u32,
    /// The INVITE itself, to build its final response from.
    pub invite: Request,
    /// Our blind transfer in progress (REFER sent, no final NOTIFY yet).
    pub transfer: Option<Transfer>,
    /// Digits waiting to be sent by SIP INFO, one request at a time.
    pub pending_digits: VecDeque<char>,
    /// A DTMF INFO of ours awaits its response.
    pub info_in_flight: bool,
    /// The RFC 4028 session timer agreed for this dialog, if any.
    pub session_timer: Option<SessionTimer>,
    /// The server transactions of the peer's re-INVITEs that may still be alive, by CSeq
    /// number: the ACK for a 2xx is a transaction of its own and finds the INVITE it
    /// acknowledges by dialog and CSeq (RFC 3261 sections 13.3.1.4, 17.1.1.3).
    pub reinvites: Vec<(u32, TransactionKey)>,
    /// The call's owner can take no more signals for now (its queue is full): a digit by SIP
    /// INFO is refused `500` with `Retry-After` instead of being accepted and then lost.
    pub signals_full: bool,
    /// We generated the Call-ID (a call we placed): RFC 3261 section 14.1 gives the owner the
    /// longer glare back-off, so that the two sides do not retry at the same moment.
    pub owns_call_id: bool,
    /// When our session refresh is sent again after the peer answered it 491 (glare).
    pub refresh_retry: Option<Instant>,
}

/// The header values a dialog is set up from, as one message carries them (the last of each).
#[derive(Default)]
struct DialogHeaders {
    from: Option<String>,
    to: Option<String>,
    contact: Option<String>,
    call_id: Option<String>,
}

impl DialogHeaders {
    fn of(headers: &rsip::Headers) -> Self {
        let mut found = Self::default();
        for header in headers.iter() {
            match header {
                Header::From(h) => found.from = Some(h.value().to_owned()),
                Header::To(h) => found.to = Some(h.value().to_owned()),
                Header::Contact(h) => found.contact = Some(h.value().to_owned()),
                Header::CallId(h) => found.call_id = Some(h.value().to_owned()),
                _ => {}
            }
        }
        found
    }
}

/// What a dialog we answer and one we dialled start from differently; the rest starts the same
/// (`Dialog::start`).
struct Origin {
    call_id: String,
    state: DialogState,
    local_tag: String,
    remote_from: String,
    local_to: String,
    contact: Option<String>,
    route_set: Vec<String>,
    local_sdp: Option<String>,
    local_cseq: u32,
    owns_call_id: bool,
}

impl Dialog {
    /// The dialog an INVITE starts, before any response.
    pub fn from_invite(
        invite: &Request,
        peer: Peer,
        invite_key: TransactionKey,
    ) -> Result<Self, SipError> {
        let headers = DialogHeaders::of(&invite.headers);
        let remote_from = headers.from.ok_or(SipError::MissingHeader("From"))?;
        let local_to = headers.to.ok_or(SipError::MissingHeader("To"))?;
        let origin = Origin {
            call_id: headers.call_id.ok_or(SipError::MissingHeader("Call-ID"))?,
            state: DialogState::Early,
            local_tag: new_tag(),
            remote_from,
            local_to,
            contact: headers.contact,
            route_set: route::header_values(&invite.headers, "Record-Route"),
            local_sdp: None,
            local_cseq: 1,
            owns_call_id: false,
        };
        Ok(Self::start(invite, peer, invite_key, origin))
    }

    /// The confirmed dialog of an outbound call: our `invite` (sent to `peer`) and the 2xx
    /// `answer` to it. The route set is the 2xx's Record-Route reversed (RFC 3261 section
    /// 12.1.2): the proxy nearest to us comes first.
    pub fn from_answer(
        invite: &Request,
        answer: &rsip::Response,
        peer: Peer,
        invite_key: TransactionKey,
        local_sdp: Option<String>,
    ) -> Result<Self, SipError> {
        let ours = DialogHeaders::of(&invite.headers);
        let theirs = DialogHeaders::of(&answer.headers);
        let local_from = ours.from.ok_or(SipError::MissingHeader("From"))?;
        let local_tag =
            header_param(&local_from, "tag")
                .map(str::to_owned)
                .ok_or(SipError::InvalidHeader {
                    header: "From",
                    reason: "our INVITE's From has no tag".into(),
                })?;
        let (invite_cseq, _) = cseq(&invite.headers)?;
        let mut route_set = route::header_values(&answer.headers, "Record-Route");
        route_set.reverse();
        let origin = Origin {
            call_id: ours.call_id.ok_or(SipError::MissingHeader("Call-ID"))?,
            state: DialogState::Confirmed,
            local_tag,
            remote_from: theirs.to.ok_or(SipError::MissingHeader("To"))?,
            local_to: local_from,
            contact: theirs.contact,
            route_set,
            local_sdp,
            local_cseq: invite_cseq + 1,
            owns_call_id: true,
        };
        Ok(Self::start(invite, peer, invite_key, origin))
    }

    /// A dialog as `origin` sets it up, with nothing in flight yet. The remote target is the
    /// Contact, or the INVITE's Request-URI when there is none.
    fn start(invite: &Request, peer: Peer, invite_key: TransactionKey, origin: Origin) -> Self {
        let remote_target = origin
            .contact
            .as_deref()
            .map(uri_of)
            .unwrap_or_else(|| invite.uri.to_string());
        Self {
            call_id: origin.call_id,
            state: origin.state,
            local_tag: origin.local_tag,
            remote_from: origin.remote_from,
            local_to: origin.local_to,
            remote_target,
            route_set: origin.route_set,
            peer: peer.addr,
            transport: peer.transport,
            invite_key,
            local_sdp: origin.local_sdp,
            local_cseq: origin.local_cseq,
            invite: invite.clone(),
            transfer: None,
            pending_digits: VecDeque::new(),
            info_in_flight: false,
            session_timer: None,
            reinvites: Vec::new(),
            signals_full: false,
            owns_call_id: origin.owns_call_id,
            refresh_retry: None,
        }
    }

    /// When the dialog itself next needs the clock: its transfer's deadline, its session
    /// timer, or the retry of a refresh refused by glare, whichever comes first.
    pub fn next_deadline(&self) -> Option<Instant> {
        let transfer = self.transfer.as_ref().map(|t| t.deadline);
        let session = self.session_timer.as_ref().and_then(|s| s.next_deadline());
        [transfer, session, self.refresh_retry]
            .into_iter()
            .flatten()
            .min()
    }

    /// A response to the dialog's INVITE with our tag on its To: the 180, and the final answer
    /// or refusal, all build it the same way.
    pub fn invite_response(&self, code: u16, reason: &str) -> Result<Response, SipError> {
        build_response(&self.invite, status(code, reason), Some(&self.local_tag))
    }

    /// The remote party's tag: the From tag of the requests it sends in this dialog. `None`
    /// for a peer of RFC 2543 that tagged nothing.
    pub fn remote_tag(&self) -> Option<&str> {
        header_param(&self.remote_from, "tag")
    }

    /// Whether `request` (whose Call-ID is this dialog's) was sent in this dialog by the remote
    /// party (RFC 3261 section 12.2.2): its To tag is ours and its From tag theirs. A request
    /// without a To tag is outside any dialog.
    pub fn matches(&self, request: &Request) -> bool {
        let (mut from_tag, mut to_tag) = (None, None);
        for header in request.headers.iter() {
            match header {
                Header::From(h) => from_tag = header_param(h.value(), "tag"),
                Header::To(h) => to_tag = header_param(h.value(), "tag"),
                _ => {}
            }
        }
        to_tag == Some(self.local_tag.as_str()) && from_tag == self.remote_tag()
    }

    /// The remote party as a [`Peer`].
    pub fn remote(&self) -> Peer {
        Peer {
            transport: self.transport,
            addr: self.peer,
        }
    }

    /// Where our requests in this dialog go: the first route's address when there is a route
    /// set and it names an IP literal, else the remote party's address. Responses never use
    /// this: they follow the request's Via.
    pub fn next_hop(&self) -> Peer {
        let addr = self
            .route_set
            .first()
            .and_then(|first| route::hop_addr(first))
            .unwrap_or(self.peer);
        Peer {
            transport: self.transport,
            addr,
        }
    }

    /// A target refresh (RFC 3261 section 12.2): the Contact of a re-INVITE or UPDATE from the
    /// peer, or of the 2xx to ours, becomes the remote target. The route set stays as it is.
    pub fn refresh_target(&mut self, headers: &rsip::Headers) {
        if let Some(contact) = headers.iter().find_map(|h| match h {
            Header::Contact(c) => Some(uri_of(c.value())),
            _ => None,
        }) {
            if rsip::Uri::try_from(contact.as_str()).is_ok() {
                self.remote_target = contact;
            }
        }
    }

    /// Our BYE for this dialog, sent from `local` over the dialog's transport.
    pub fn bye(&mut self, local: SocketAddr) -> Result<Request, SipError> {
        self.request(Method::Bye, local, Vec::new(), None)
    }

    /// Our next request inside this dialog (BYE, REFER, INFO, UPDATE, re-INVITE): Request-URI
    /// and Route headers from the remote target and the route set ([`route::request_path`]),
    /// our From with our tag, their To with theirs, the next CSeq, a fresh branch, then `extra`
    /// headers and a `body` of `(content type, bytes)`. Send it to [`Dialog::next_hop`].
    pub fn request(
        &mut self,
        method: Method,
        local: SocketAddr,
        extra: Vec<Header>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Request, SipError> {
        let (uri, routes) = route::request_path(&self.route_set, &self.remote_target);
        let uri = rsip::Uri::try_from(uri.as_str()).map_err(|e| SipError::InvalidHeader {
            header: "Contact",
            reason: e.to_string(),
        })?;
        let from = if header_param(&self.local_to, "tag").is_some() {
            self.local_to.clone()
        } else {
            format!("{};tag={}", self.local_to, self.local_tag)
        };
        let cseq = self.local_cseq;
        self.local_cseq += 1;
        let branch = format!("z9hG4bK{}", new_tag());
        let mut headers: Vec<Header> = vec![
            Via::new(format!(
                "SIP/2.0/{} {local};branch={branch};rport",
                self.transport.via_name()
            ))
            .into(),
            MaxForwards::new("70").into(),
            From::new(from).into(),
            To::new(self.remote_from.clone()).into(),
            CallId::new(self.call_id.clone()).into(),
            CSeq::new(format!("{cseq} {method}")).into(),
        ];
        headers.extend(routes.into_iter().map(|r| Header::Route(Route::new(r))));
        headers.extend(extra);
        let body = match body {
            Some((content_type, bytes)) => {
                headers.push(Header::ContentType(content_type.into()));
                bytes
            }
            None => Vec::new(),
        };
        headers.push(ContentLength::new(body.len().to_string()).into());
        Ok(Request {
            method,
            uri,
            version: rsip::Version::V2,
            headers: headers.into(),
            body,
        })
    }

    /// Our own address of record in this dialog (the URI of our From), for `Referred-By`.
    pub fn local_uri(&self) -> String {
        uri_of(&self.local_to)
    }

    /// Our Contact for this dialog at `local`: `sips:` when its INVITE's Request-URI was
    /// (RFC 3261 section 12.1.1), else `sip:` with the transport named.
    pub fn contact(&self, local: SocketAddr) -> String {
        let secure = self.invite.uri.scheme == Some(rsip::Scheme::Sips);
        self.transport.dialog_contact(local, secure)
    }

    /// The peer's `host[:port]`, to turn a bare number into a SIP URI toward the same peer or
    /// trunk: for an outbound call the trunk as we dialled it (our INVITE's Request-URI), for
    /// an inbound one the caller's Contact (its trunk or PBX).
    pub fn remote_host(&self) -> String {
        let ours = self
            .invite
            .headers
            .iter()
            .find_map(|h| match h {
                Header::From(from) => header_param(from.value(), "tag"),
                _ => None,
            })
            .is_some_and(|tag| tag == self.local_tag);
        let uri = if ours {
            self.invite.uri.to_string()
        } else {
            uri_of(&self.remote_target)
        };
        host_port(&uri)
    }
}

#[path = "dialog/route.rs"]
pub mod route;

/// The `host[:port]` of a SIP URI, without user part or parameters.
fn host_port(uri: &str) -> String {
    let rest = uri
        .strip_prefix("sips:")
        .or_else(|| uri.strip_prefix("sip:"))
        .unwrap_or(uri);
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    host.split([';', '?']).next().unwrap_or(host).to_owned()
}

/// The URI inside a Contact or name-addr value: `"Bob" <sip:bob@host>;expires=1` → `sip:bob@host`.
pub fn uri_of(value: &str) -> String {
    match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => value
            .get(open + 1..close)
            .unwrap_or(value)
            .trim()
            .to_owned(),
        _ => value.split(';').next().unwrap_or(value).trim().to_owned(),
    }
}

/// The user part of a SIP URI or name-addr (`sip:+15551234@host` → `+15551234`), empty if none.
pub fn user_of(value: &str) -> String {
    let uri = uri_of(value);
    let rest = uri
        .strip_prefix("sips:")
        .or_else(|| uri.strip_prefix("sip:"))
        .or_else(|| uri.strip_prefix("tel:"))
        .unwrap_or(&uri);
    let user = match rest.find('@') {
        Some(at) => rest.get(..at).unwrap_or_default(),
        None if uri.starts_with("tel:") => rest,
        None => "",
    };
    user.split(';').next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_uris_come_out_of_name_addrs() {
        assert_eq!(
            uri_of("\"Bob\" <sip:bob@10.0.0.1:5060>;expires=60"),
            "sip:bob@10.0.0.1:5060"
        );
        assert_eq!(uri_of("sip:alice@host;tag=1"), "sip:alice@host");
        assert_eq!(user_of("<sip:+15551234@host;user=phone>"), "+15551234");
        assert_eq!(user_of("sip:demo@127.0.0.1:5060"), "demo");
        assert_eq!(user_of("tel:+4420"), "+4420");
        assert_eq!(user_of("sip:host.example"), "");
        assert_eq!(
            host_port("sip:+1555@pbx.example:5080;transport=tcp"),
            "pbx.example:5080"
        );
        assert_eq!(host_port("sip:10.0.0.1"), "10.0.0.1");
    }

    #[test]
    fn numbers_are_sent_toward_the_trunk_we_dialled_or_the_callers_contact() {
        use crate::message::parse_message;
        let invite = |from_tag: &str| {
            let text = format!(
                "INVITE sip:+1555@trunk.example:5080 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKx\r\n\
                 From: <sip:edge@10.0.0.9>;tag={from_tag}\r\n\
                 To: <sip:+1555@trunk.example:5080>\r\n\
                 Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
                 Contact: <sip:caller@192.0.2.7:5062>\r\nContent-Length: 0\r\n\r\n"
            );
            match parse_message(text.as_bytes()).expect("parses") {
                rsip::SipMessage::Request(r) => r,
                rsip::SipMessage::Response(_) => unreachable!(),
            }
        };
        let peer = Peer::udp("192.0.2.7:5062".parse().expect("addr"));
        let key = TransactionKey::server(&invite("ours")).expect("key");
        // Inbound: the caller's Contact.
        let inbound = Dialog::from_invite(&invite("theirs"), peer, key.clone()).expect("dialog");
        assert_eq!(inbound.remote_host(), "192.0.2.7:5062");
        // Outbound: the trunk's host as dialled, whatever Contact its 2xx carries.
        let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKx\r\n\
                  From: <sip:edge@10.0.0.9>;tag=ours\r\nTo: <sip:+1555@trunk.example:5080>;tag=t\r\n\
                  Call-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:gw@198.51.100.3>\r\n\
                  Content-Length: 0\r\n\r\n";
        let rsip::SipMessage::Response(ok) = parse_message(ok.as_bytes()).expect("parses") else {
            unreachable!()
        };
        let outbound = Dialog::from_answer(&invite("ours"), &ok, peer, key, None).expect("dialog");
        assert_eq!(outbound.remote_host(), "trunk.example:5080");
    }
}
