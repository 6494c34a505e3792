//! The requests a UAC writes, and the dialog state they need (RFC 3261 section 12): the INVITE
//! with its SDP offer, the ACK for a 2xx (a new transaction, so its own branch), and the BYE.
//!
//! Messages are written as text and read back through the edge's parser
//! ([`freya_edge::sip::parse_message`]), so every request we send passes the same checks the edge
//! applies to what it receives; this runs once per request, not per packet. Route sets and
//! record-routing are not followed: the load generator talks straight to the target.

use std::fmt::Write as _;
use std::net::SocketAddr;

use freya_edge::sip::message::header_param;
use freya_edge::sip::{new_tag, parse_message, SipError};
use rsip::headers::UntypedHeader;
use rsip::{Header, Request, Response, SipMessage};

/// What identifies one call's dialog, from our side.
#[derive(Debug, Clone)]
pub struct Dialog {
    /// The Call-ID.
    pub call_id: String,
    /// Our From tag.
    pub local_tag: String,
    /// The far end's To tag, once a response carried one.
    pub remote_tag: Option<String>,
    /// Request-URI of the INVITE (`sip:NUMBER@HOST:PORT`).
    pub request_uri: String,
    /// Where in-dialog requests go: the peer's Contact URI, else the Request-URI.
    pub remote_target: String,
    /// Our SIP address (Via sent-by and Contact).
    pub local: SocketAddr,
    /// Our user part in From and Contact.
    pub caller: String,
    /// Next CSeq number for a new in-dialog request.
    pub next_cseq: u32,
}

impl Dialog {
    /// A new dialog for a call to `number` at `target`.
    pub fn new(
        call_id: String,
        number: &str,
        caller: &str,
        target: SocketAddr,
        local: SocketAddr,
    ) -> Self {
        let request_uri = format!("sip:{number}@{target}");
        Self {
            call_id,
            local_tag: new_tag(),
            remote_tag: None,
            remote_target: request_uri.clone(),
            request_uri,
            local,
            caller: caller.to_owned(),
            next_cseq: 1,
        }
    }

    fn our_address(&self) -> String {
        format!(
            "<sip:{}@{}>;tag={}",
            self.caller, self.local, self.local_tag
        )
    }

    fn their_address(&self) -> String {
        match &self.remote_tag {
            Some(tag) => format!("<{}>;tag={tag}", self.request_uri),
            None => format!("<{}>", self.request_uri),
        }
    }

    fn write_request(
        &self,
        method: &str,
        uri: &str,
        cseq: u32,
        extra: &str,
        body: &str,
    ) -> Result<Request, SipError> {
        let mut text = String::with_capacity(512 + body.len());
        let branch = format!("z9hG4bK{}", new_tag());
        let _ = write!(
            text,
            "{method} {uri} SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
Max-Forwards: 70\r\n\
From: {from}\r\n\
To: {to}\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} {method}\r\n\
Contact: <sip:{caller}@{local}>\r\n\
User-Agent: freya-loadtest\r\n\
{extra}Content-Length: {len}\r\n\r\n{body}",
            local = self.local,
            from = self.our_address(),
            to = self.their_address(),
            call_id = self.call_id,
            caller = self.caller,
            len = body.len(),
        );
        match parse_message(text.as_bytes())? {
            SipMessage::Request(r) => Ok(r),
            SipMessage::Response(_) => Err(SipError::BadStartLine(method.to_owned())),
        }
    }

    /// The INVITE carrying `sdp_offer`.
    pub fn invite(&mut self, sdp_offer: &str) -> Result<Request, SipError> {
        let cseq = self.take_cseq();
        self.write_request(
            "INVITE",
            &self.request_uri,
            cseq,
            "Content-Type: application/sdp\r\nAllow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n",
            sdp_offer,
        )
    }

    /// Learns the remote tag and target from a response to our INVITE.
    pub fn update_from_response(&mut self, response: &Response) {
        for header in response.headers.iter() {
            match header {
                Header::To(to) => {
                    if let Some(tag) = header_param(to.value(), "tag") {
                        self.remote_tag = Some(tag.to_owned());
                    }
                }
                Header::Contact(contact) => {
                    if let Some(uri) = contact_uri(contact.value()) {
                        self.remote_target = uri.to_owned();
                    }
                }
                _ => {}
            }
        }
    }

    /// The ACK for a 2xx answering the INVITE with CSeq `invite_cseq`.
    pub fn ack(&self, invite_cseq: u32) -> Result<Request, SipError> {
        self.write_request("ACK", &self.remote_target, invite_cseq, "", "")
    }

    /// A BYE ending the dialog.
    pub fn bye(&mut self) -> Result<Request, SipError> {
        let cseq = self.take_cseq();
        self.write_request("BYE", &self.remote_target.clone(), cseq, "", "")
    }

    fn take_cseq(&mut self) -> u32 {
        let n = self.next_cseq;
        self.next_cseq += 1;
        n
    }
}

/// The URI inside a Contact value: `<sip:...>` or a bare `sip:...` up to its parameters.
fn contact_uri(value: &str) -> Option<&str> {
    if let Some(start) = value.find('<') {
        let rest = value.get(start + 1..)?;
        return rest.split('>').next();
    }
    value
        .split(';')
        .next()
        .map(str::trim)
        .filter(|v| v.starts_with("sip"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use freya_edge::sip::{build_response, status, TransactionKey};

    fn dialog() -> Dialog {
        Dialog::new(
            "c1".into(),
            "demo",
            "loadtest",
            "127.0.0.1:5060".parse().unwrap(),
            "127.0.0.1:40000".parse().unwrap(),
        )
    }

    #[test]
    fn invite_parses_and_bye_targets_the_contact_with_the_remote_tag() {
        let mut d = dialog();
        let invite = d.invite("v=0\r\n").unwrap();
        assert_eq!(invite.uri.to_string(), "sip:demo@127.0.0.1:5060");
        let mut ok = build_response(&invite, status(200, "OK"), Some("far")).unwrap();
        ok.headers.push(Header::Contact(rsip::headers::Contact::new(
            "<sip:uas@127.0.0.1:5099;transport=udp>",
        )));
        d.update_from_response(&ok);
        assert_eq!(d.remote_tag.as_deref(), Some("far"));
        let bye = d.bye().unwrap();
        assert!(bye
            .uri
            .to_string()
            .eq_ignore_ascii_case("sip:uas@127.0.0.1:5099;transport=udp"));
        assert_eq!(freya_edge::sip::message::cseq(&bye.headers).unwrap().0, 2);
        let ack = d.ack(1).unwrap();
        assert_ne!(
            TransactionKey::server(&ack).unwrap().branch,
            TransactionKey::server(&invite).unwrap().branch
        );
    }

    #[test]
    fn contact_forms_are_understood() {
        assert_eq!(contact_uri("<sip:a@b:5>;expires=3"), Some("sip:a@b:5"));
        assert_eq!(contact_uri("sip:a@b:5;transport=udp"), Some("sip:a@b:5"));
        assert_eq!(contact_uri("garbage"), None);
    }
}
