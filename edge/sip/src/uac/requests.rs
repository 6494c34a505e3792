//! The requests an outbound call sends outside its transactions' own making: the INVITE
//! (with or without digest credentials) and the ACK for a 2xx, which RFC 3261 section 13.2.2.4
//! makes the UAC's job, not the transaction's.

use std::net::SocketAddr;

use rsip::headers::{
    CSeq, CallId, ContentLength, From, MaxForwards, Route, To, UntypedHeader, Via,
};
use rsip::{Header, Method, Request, Response, SipMessage};

use freya_shared::model::sip_user::sip_user_problem;

use super::{CallRequest, Trunk};
use crate::dialog::route::request_path;
use crate::dialog::Dialog;
use crate::message::{call_id, parse_message, SipError};
use crate::peer::Peer;
use crate::response::new_tag;
use crate::transaction::TransactionKey;

/// A host as written in a SIP URI (IPv6 in brackets).
fn uri_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Our INVITE through `trunk`: Request-URI `sip:{to}@{host}:{port}`, From with the caller id
/// and `from_tag`, Contact at our address, the SDP offer, `authorization` on a retry, and the
/// trunk's outbound proxy as a Route.
pub(super) fn build_invite(
    trunk: &Trunk,
    request: &CallRequest,
    from_tag: &str,
    cseq: u32,
    authorization: Option<Header>,
) -> Result<Request, SipError> {
    let host = uri_host(&trunk.host);
    let caller = trunk
        .caller_id
        .as_deref()
        .filter(|c| !c.is_empty())
        .or(Some(request.from.as_str()).filter(|c| !c.is_empty()))
        .unwrap_or("anonymous");
    // Whatever the API or a template put here, nothing outside the user-part grammar is sent:
    // it could end the URI or the header.
    for (header, user) in [("From", caller), ("To", request.to.as_str())] {
        if let Some(problem) = sip_user_problem(user) {
            return Err(SipError::InvalidHeader {
                header,
                reason: format!("user `{}` {problem}", user.escape_default()),
            });
        }
    }
    let transport = trunk.peer.transport;
    let text = format!(
        "INVITE {scheme}:{to}@{host}:{port} SIP/2.0\r\n\
         Via: SIP/2.0/{via} {local};branch=z9hG4bK{branch};rport{alias}\r\n\
         Max-Forwards: 70\r\n\
         From: <{scheme}:{caller}@{host}>;tag={from_tag}\r\n\
         To: <{scheme}:{to}@{host}:{port}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} INVITE\r\n\
         Contact: <{scheme}:{caller}@{local}{param}>\r\n\
         Allow: {allow}\r\n\
         User-Agent: Freya\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {len}\r\n\r\n{offer}",
        to = request.to,
        port = trunk.port,
        via = transport.via_name(),
        scheme = transport.uri_scheme(),
        // RFC 5923: over a connection, the trunk may send its requests back on it.
        alias = if transport.is_reliable() {
            ";alias"
        } else {
            ""
        },
        local = request.local_for(transport),
        branch = new_tag(),
        call_id = request.call_id,
        param = transport.uri_param(),
        allow = crate::endpoint::ALLOW,
        len = request.offer.len(),
        offer = request.offer,
    );
    match parse_message(text.as_bytes())? {
        SipMessage::Request(mut invite) => {
            if let Some(proxy) = &trunk.outbound_proxy {
                // A preloaded Route (RFC 3261 section 8.1.2); a strict router gets the
                // Request-URI and the callee's URI moves to the last Route.
                let set = [format!("<{proxy}>")];
                let (uri, routes) = request_path(&set, &invite.uri.to_string());
                invite.uri =
                    rsip::Uri::try_from(uri.as_str()).map_err(|e| SipError::InvalidHeader {
                        header: "Route",
                        reason: e.to_string(),
                    })?;
                for route in routes {
                    invite.headers.push(Header::Route(Route::new(route)));
                }
            }
            if let Some(header) = authorization {
                invite.headers.push(header);
            }
            Ok(invite)
        }
        SipMessage::Response(_) => Err(SipError::BadStartLine("not a request".into())),
    }
}

/// The ACK for a 2xx (RFC 3261 section 13.2.2.4): a new transaction (fresh branch) to the
/// remote target in the 2xx's Contact, with the INVITE's From, Call-ID and CSeq number and the
/// 2xx's To (with the callee's tag), through the dialog's route set — the 2xx's Record-Route
/// reversed for a new dialog, or `route_set` when the dialog has one already (a re-INVITE's
/// 2xx). Returns the ACK and where it goes (the first route's address, or `peer`).
pub fn build_2xx_ack(
    invite: &Request,
    answer: &Response,
    local: SocketAddr,
    peer: Peer,
    route_set: Option<&[String]>,
) -> Result<(Request, Peer), SipError> {
    let mut dialog =
        Dialog::from_answer(invite, answer, peer, TransactionKey::server(invite)?, None)?;
    if let Some(set) = route_set {
        dialog.route_set = set.to_vec();
    }
    let (uri, routes) = request_path(&dialog.route_set, &dialog.remote_target);
    let uri = rsip::Uri::try_from(uri.as_str()).map_err(|e| SipError::InvalidHeader {
        header: "Contact",
        reason: e.to_string(),
    })?;
    let branch = format!("z9hG4bK{}", new_tag());
    let mut headers: Vec<Header> = vec![
        Via::new(format!(
            "SIP/2.0/{} {local};branch={branch};rport",
            peer.transport.via_name()
        ))
        .into(),
        MaxForwards::new("70").into(),
        From::new(dialog.local_to.clone()).into(),
        To::new(dialog.remote_from.clone()).into(),
        CallId::new(call_id(&invite.headers)?).into(),
        CSeq::new(format!("{} ACK", dialog.local_cseq - 1)).into(),
    ];
    headers.extend(routes.into_iter().map(|r| Header::Route(Route::new(r))));
    headers.push(ContentLength::new("0").into());
    let ack = Request {
        method: Method::Ack,
        uri,
        version: rsip::Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    };
    Ok((ack, dialog.next_hop()))
}

/// The reason phrase of a status, as a person reads it (`Service Unavailable`): rsip keeps a
/// known status as its variant (`503 ServiceUnavailable`), so the words are split back apart;
/// an unknown status keeps the phrase it came with.
pub(crate) fn reason_phrase(status: &rsip::StatusCode) -> String {
    let text = status.to_string();
    let name = text
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start();
    if name.contains(' ') {
        return name.to_owned();
    }
    let mut phrase = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_ascii_uppercase() && previous_lower {
            phrase.push(' ');
        }
        previous_lower = c.is_ascii_lowercase();
        phrase.push(c);
    }
    phrase
}
