//! The endpoint's user agent server side: every request that arrives is matched to its
//! transaction or dialog, or starts one — INVITE (new call, re-INVITE, merged request), the ACK
//! for our 2xx, CANCEL, BYE, OPTIONS, INFO (DTMF relay), and 501 for the rest — and responses are
//! routed to our client transactions.
//!
//! A request is in a dialog only when its Call-ID and both tags match it ([`SipEndpoint::dialog_of`]);
//! one that names a call's Call-ID with the wrong tags, or none, is answered 481 and changes
//! nothing: knowing a Call-ID is not enough to hang up a call or press keys in it.

use std::net::SocketAddr;
use std::time::Instant;

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, Request, Response};

use super::{EndpointEvent, IncomingCall, SipEndpoint, ALLOW, REDIRECTED_PARAM};
use crate::dialog::{user_of, Dialog};
use crate::message::{call_id, header_param};
use crate::peer::Peer;
use crate::response::{bad_request, build_response, set_body, status};
use crate::stamp_received;
use crate::transaction::{ServerInviteTransaction, TransactionKey};

/// Seconds a peer is asked to wait before sending again a DTMF INFO the call could not take.
const INFO_RETRY_AFTER: u32 = 1;

impl SipEndpoint {
    pub(super) fn on_request(&mut self, now: Instant, peer: Peer, mut request: Request) {
        let source = peer.addr;
        if let Err(e) = stamp_received(&mut request, source) {
            tracing::info!(%source, error = %e, "refused a request with a bad Via");
            return;
        }
        let key = match TransactionKey::server(&request) {
            Ok(key) => key,
            Err(e) => {
                tracing::info!(%source, error = %e, "refused a request without a usable branch");
                if let Ok(response) = bad_request(&request, &e) {
                    self.send_stateless(peer, &request, response);
                }
                return;
            }
        };
        if let Some(tx) = self.invites.get_mut(&key) {
            tx.handle_request(now, request);
            self.drain_invite(&key);
            return;
        }
        if let Some(tx) = self.others.get_mut(&key) {
            tx.handle_request(now, request);
            self.drain_other(&key);
            return;
        }
        if let Some(response) = super::checks::refusal(&request) {
            tracing::info!(source = %peer.addr, code = response.status_code.code(), method = %request.method, "refused a request");
            return self.refuse(now, peer, key, request, response);
        }
        match request.method {
            Method::Invite => self.on_invite(now, peer, key, request),
            Method::Ack => self.on_ack_for_2xx(now, peer, request),
            Method::Cancel => self.on_cancel(now, peer, key, request),
            Method::Bye => self.on_bye(now, peer, key, request),
            Method::Options => {
                // Outside a dialog (a trunk's keep-alive) anyone may ask; inside one (a To
                // tag), only the call's peer.
                let response = if has_to_tag(&request) && self.dialog_of(source, &request).is_none()
                {
                    no_dialog(&request)
                } else {
                    build_response(&request, status(200, "OK"), Some(&crate::new_tag())).map(
                        |mut r| {
                            r.headers.push(Header::Allow(ALLOW.into()));
                            r.headers.push(Header::Accept("application/sdp".into()));
                            r
                        },
                    )
                };
                self.respond_non_invite(now, peer, key, request, response);
            }
            Method::Info => self.on_info(now, peer, key, request),
            Method::Notify => self.on_notify(now, peer, key, request),
            Method::Refer => self.on_refer(now, peer, key, request),
            Method::Update => self.on_update(now, peer, key, request),
            _ => {
                let response = build_response(
                    &request,
                    status(501, "Not Implemented"),
                    Some(&crate::new_tag()),
                )
                .map(|mut r| {
                    r.headers.push(Header::Allow(ALLOW.into()));
                    r
                });
                self.respond_non_invite(now, peer, key, request, response);
            }
        }
    }

    /// The Call-ID of the dialog `request` was sent in: one whose Call-ID and both tags it
    /// matches (RFC 3261 section 12.2.2, [`Dialog::matches`]). A request that names a live
    /// call with other tags is logged: someone who learnt the Call-ID is trying to act in a
    /// call that is not theirs (or a peer has lost track of its dialog).
    pub(super) fn dialog_of(&self, source: SocketAddr, request: &Request) -> Option<String> {
        let call_id = call_id(&request.headers).ok()?;
        let dialog = self.dialogs.get(call_id)?;
        if dialog.matches(request) {
            return Some(call_id.to_owned());
        }
        tracing::warn!(call = %call_id, %source, method = %request.method,
            "refused an in-dialog request whose tags are not the call's dialog (481)");
        None
    }

    fn on_invite(&mut self, now: Instant, peer: Peer, key: TransactionKey, request: Request) {
        let source = peer.addr;
        let Ok(call_id) = call_id(&request.headers).map(str::to_owned) else {
            return;
        };
        let reliable = peer.transport.is_reliable();
        let mut tx =
            match ServerInviteTransaction::new(now, request.clone(), source, reliable, self.timers)
            {
                Ok(tx) => tx,
                Err(e) => {
                    tracing::info!(%source, error = %e, "refused an INVITE");
                    return;
                }
            };
        // The transaction reports the request once; the decision is ours.
        while tx.poll_event().is_some() {}
        if has_to_tag(&request) {
            // A re-INVITE (hold, resume, session refresh): answer its offer, unless it crosses
            // a transaction of ours. Glare first (RFC 3261 section 14): even an early dialog's
            // second INVITE gets 500 with Retry-After rather than 481.
            let matched = self.dialog_of(source, &request);
            let glare = matched
                .as_ref()
                .and_then(|c| self.reinvite_glare(c, &request));
            let answer = match (&glare, matched) {
                (None, Some(c)) => self.reinvite_answer(&c, &request),
                _ => None,
            };
            let contact = self.contact_in(&call_id, peer.transport);
            let response = match (glare, answer) {
                (Some(refusal), _) => refusal,
                (None, Some((tag, sdp))) => {
                    build_response(&request, status(200, "OK"), Some(&tag)).map(|mut r| {
                        r.headers.push(contact);
                        // A re-INVITE is also a session refresh (RFC 4028).
                        self.refresh_session(now, &call_id, &request, &mut r);
                        if let Some(sdp) = sdp {
                            set_body(&mut r, "application/sdp", sdp.into_bytes());
                        }
                        r
                    })
                }
                (None, None) => no_dialog(&request),
            };
            if let Ok(response) = response {
                let _ = tx.respond(now, response);
            }
            self.track_reinvite(&call_id, &request, &key);
            self.transports.insert(key.clone(), peer.transport);
            self.invites.insert(key.clone(), tx);
            self.drain_invite(&key);
            return;
        }
        if self.dialogs.contains_key(&call_id) {
            // Same Call-ID, new branch: a merged request (RFC 3261 section 8.2.2.2).
            if let Ok(response) = build_response(
                &request,
                status(482, "Loop Detected"),
                Some(&crate::new_tag()),
            ) {
                let _ = tx.respond(now, response);
            }
            self.transports.insert(key.clone(), peer.transport);
            self.invites.insert(key.clone(), tx);
            self.drain_invite(&key);
            return;
        }
        if let Some(response) = self.session_timer_refusal(&request) {
            let _ = tx.respond(now, response);
            self.transports.insert(key.clone(), peer.transport);
            self.invites.insert(key.clone(), tx);
            self.drain_invite(&key);
            return;
        }
        let dialog = match Dialog::from_invite(&request, peer, key.clone()) {
            Ok(dialog) => dialog,
            Err(e) => {
                tracing::info!(%source, error = %e, "refused an INVITE");
                return;
            }
        };
        let caller = request.headers.iter().find_map(|h| match h {
            Header::From(from) => Some(user_of(from.value())),
            _ => None,
        });
        self.events
            .push_back(EndpointEvent::IncomingCall(IncomingCall {
                call_id: call_id.clone(),
                dialled: self.dialled(&request),
                caller: caller.unwrap_or_default(),
                offer: request.body.clone(),
                source,
                transport: peer.transport,
                redirected: was_redirected(&request.uri.to_string()),
            }));
        self.dialogs.insert(call_id, dialog);
        self.transports.insert(key.clone(), peer.transport);
        self.invites.insert(key.clone(), tx);
        self.drain_invite(&key);
    }

    /// Answers a new request with a final refusal, in a transaction of its kind (an INVITE's
    /// absorbs the ACK).
    fn refuse(
        &mut self,
        now: Instant,
        peer: Peer,
        key: TransactionKey,
        request: Request,
        response: Response,
    ) {
        if request.method != Method::Invite {
            return self.respond_non_invite(now, peer, key, request, Ok(response));
        }
        let reliable = peer.transport.is_reliable();
        match ServerInviteTransaction::new(now, request, peer.addr, reliable, self.timers) {
            Ok(mut tx) => {
                while tx.poll_event().is_some() {}
                let _ = tx.respond(now, response);
                self.transports.insert(key.clone(), peer.transport);
                self.invites.insert(key.clone(), tx);
                self.drain_invite(&key);
            }
            Err(e) => tracing::info!(source = %peer.addr, error = %e, "refused an INVITE"),
        }
    }

    /// The ACK for a 2xx: a transaction of its own (new branch), matched to the INVITE it
    /// acknowledges by dialog and CSeq number (RFC 3261 sections 13.3.1.4 and 17.1.1.3) — the
    /// call's first INVITE or one of its re-INVITEs — whose 2xx then stops being retransmitted.
    fn on_ack_for_2xx(&mut self, now: Instant, peer: Peer, request: Request) {
        // An ACK is never answered: one for no dialog of ours is dropped.
        let Some(call_id) = self.dialog_of(peer.addr, &request) else {
            tracing::debug!(source = %peer.addr, "ACK for no dialog; ignored");
            return;
        };
        let Ok((number, _)) = crate::message::cseq(&request.headers) else {
            return;
        };
        let Some(dialog) = self.dialogs.get(&call_id) else {
            return;
        };
        let key = std::iter::once(&dialog.invite_key)
            .chain(dialog.reinvites.iter().map(|(_, k)| k))
            .find(|k| self.invites.get(*k).is_some_and(|tx| tx.cseq() == number))
            .cloned();
        let Some(key) = key else {
            tracing::debug!(call = %call_id, cseq = number, "ACK for no INVITE of the dialog; ignored");
            return;
        };
        if let Some(tx) = self.invites.get_mut(&key) {
            tx.handle_request(now, request);
            self.drain_invite(&key);
        }
    }

    fn on_cancel(&mut self, now: Instant, peer: Peer, key: TransactionKey, request: Request) {
        let invite_key = TransactionKey::cancelled_invite(&request).ok();
        let invite = invite_key.as_ref().and_then(|k| self.invites.get(k));
        // A CANCEL matching a transaction is accepted even when it is too late to cancel
        // anything (RFC 3261 section 9.2); only a pending INVITE is ended with 487.
        let found = invite.is_some();
        let pending = invite
            .is_some_and(|tx| tx.state() == crate::transaction::ServerInviteState::Proceeding);
        let (code, reason) = if found {
            (200, "OK")
        } else {
            (481, "Call/Transaction Does Not Exist")
        };
        let call = call_id(&request.headers).map(str::to_owned).ok();
        // The 200 carries the To tag of the INVITE's responses (RFC 3261 section 9.2): the
        // dialog's tag, which the 180 had and the 487 will have; else that of the final
        // response already sent.
        let tag = call
            .as_ref()
            .and_then(|c| self.dialogs.get(c))
            .filter(|d| invite_key.as_ref() == Some(&d.invite_key))
            .map(|d| d.local_tag.clone())
            .or_else(|| invite.and_then(|tx| tx.to_tag()).map(str::to_owned))
            .unwrap_or_else(crate::new_tag);
        let response = build_response(&request, status(code, reason), Some(&tag));
        self.respond_non_invite(now, peer, key, request, response);
        if let (true, Some(invite_key), Some(call_id)) = (pending, invite_key, call) {
            let _ = invite_key;
            self.finish_invite(now, &call_id, 487, "Request Terminated", None);
            self.events.push_back(EndpointEvent::RemoteHangup {
                call_id,
                cancelled: true,
            });
        }
    }

    fn on_bye(&mut self, now: Instant, peer: Peer, key: TransactionKey, request: Request) {
        let call = self.dialog_of(peer.addr, &request);
        let response = match call {
            Some(_) => build_response(&request, status(200, "OK"), None),
            None => no_dialog(&request),
        };
        self.respond_non_invite(now, peer, key, request, response);
        if let Some(call_id) = call {
            self.dialogs.remove(&call_id);
            self.events.push_back(EndpointEvent::RemoteHangup {
                call_id,
                cancelled: false,
            });
        }
    }

    /// Tells the endpoint whether the call `call_id` can take signals now. While it cannot, a
    /// digit by SIP INFO is answered `500` with `Retry-After` and not reported: the owner says
    /// so when its queue for the call is full, and again when there is room.
    pub fn set_signals_full(&mut self, call_id: &str, full: bool) {
        if let Some(dialog) = self.dialogs.get_mut(call_id) {
            dialog.signals_full = full;
        }
    }

    fn on_info(&mut self, now: Instant, peer: Peer, key: TransactionKey, request: Request) {
        let call = self.dialog_of(peer.addr, &request);
        let digit = dtmf_relay_digit(&request);
        let full = call
            .as_deref()
            .and_then(|c| self.dialogs.get(c))
            .is_some_and(|d| d.signals_full);
        let response = match call {
            // A digit the call cannot take now: refused, so that the peer knows it was not
            // heard and may send it again (RFC 3261 section 21.5.1), rather than a 200 for a
            // digit that is then lost.
            Some(_) if full && digit.is_some() => {
                tracing::info!(call = ?call, "a DTMF INFO for a call whose queue is full (500)");
                build_response(&request, status(500, "Server Internal Error"), None).map(|mut r| {
                    let after = INFO_RETRY_AFTER.to_string();
                    r.headers.push(Header::Other("Retry-After".into(), after));
                    r
                })
            }
            Some(_) => build_response(&request, status(200, "OK"), None),
            None => no_dialog(&request),
        };
        self.respond_non_invite(now, peer, key, request, response);
        if let (Some(call_id), Some(digit), false) = (call, digit, full) {
            self.events
                .push_back(EndpointEvent::Dtmf { call_id, digit });
        }
    }

    pub(super) fn on_response(&mut self, now: Instant, response: Response) {
        let Ok(key) = TransactionKey::client(&response) else {
            return;
        };
        let response = match self.on_register_response(now, response) {
            Some(response) => response,
            None => return,
        };
        if let Some(r) = self.outgoing.get_mut(&key) {
            r.tx.handle_response(now, response);
            self.drain_outgoing(now, &key);
            return;
        }
        if self.refresh_invites.contains_key(&key) {
            self.on_refresh_invite_response(now, response);
            return;
        }
        self.on_outbound_response(now, response);
    }
}

/// Whether the request's To carries a tag: it claims to be inside a dialog.
pub(super) fn has_to_tag(request: &Request) -> bool {
    request.headers.iter().any(|h| match h {
        Header::To(to) => header_param(to.value(), "tag").is_some(),
        _ => false,
    })
}

/// 481 Call/Transaction Does Not Exist: the answer to a request for a dialog we do not have,
/// or one it does not match (RFC 3261 section 12.2.2).
pub(super) fn no_dialog(request: &Request) -> Result<Response, crate::SipError> {
    build_response(
        request,
        status(481, "Call/Transaction Does Not Exist"),
        Some(&crate::new_tag()),
    )
}

/// The digit of an INFO with `application/dtmf-relay` (`Signal=5\r\nDuration=160`).
/// Whether a Request-URI carries the [`REDIRECTED_PARAM`] URI parameter (any value).
pub(crate) fn was_redirected(uri: &str) -> bool {
    let uri = uri.split('?').next().unwrap_or_default();
    uri.split(';').skip(1).any(|param| {
        let name = param.split('=').next().unwrap_or_default().trim();
        name.eq_ignore_ascii_case(REDIRECTED_PARAM)
    })
}

fn dtmf_relay_digit(request: &Request) -> Option<char> {
    let is_relay = request.headers.iter().any(|h| {
        matches!(h, Header::ContentType(ct) if ct.value().trim().eq_ignore_ascii_case("application/dtmf-relay"))
    });
    if !is_relay {
        return None;
    }
    let body = std::str::from_utf8(&request.body).ok()?;
    body.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("signal") {
            return None;
        }
        let digit = value.trim().chars().next()?.to_ascii_uppercase();
        "0123456789*#ABCD".contains(digit).then_some(digit)
    })
}
