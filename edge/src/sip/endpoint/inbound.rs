//! The endpoint's user agent server side: every request that arrives is matched to its
//! transaction or dialog, or starts one — INVITE (new call, re-INVITE, merged request), the ACK
//! for our 2xx, CANCEL, BYE, OPTIONS, INFO (DTMF relay), and 501 for the rest — and responses are
//! routed to our client transactions.

use std::time::Instant;

use rsip::headers::UntypedHeader;
use rsip::{Header, Method, Request, Response};

use super::{EndpointEvent, IncomingCall, SipEndpoint, ALLOW};
use crate::sip::dialog::{user_of, Dialog, DialogState};
use crate::sip::message::{call_id, header_param};
use crate::sip::peer::Peer;
use crate::sip::response::{bad_request, build_response, set_body, status};
use crate::sip::stamp_received;
use crate::sip::transaction::{ServerInviteTransaction, TransactionKey};

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
            Method::Ack => self.on_ack_for_2xx(now, request),
            Method::Cancel => self.on_cancel(now, peer, key, request),
            Method::Bye => self.on_bye(now, peer, key, request),
            Method::Options => {
                let response =
                    build_response(&request, status(200, "OK"), Some(&crate::sip::new_tag())).map(
                        |mut r| {
                            r.headers.push(Header::Allow(ALLOW.into()));
                            r.headers.push(Header::Accept("application/sdp".into()));
                            r
                        },
                    );
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
                    Some(&crate::sip::new_tag()),
                )
                .map(|mut r| {
                    r.headers.push(Header::Allow(ALLOW.into()));
                    r
                });
                self.respond_non_invite(now, peer, key, request, response);
            }
        }
    }

    fn on_invite(&mut self, now: Instant, peer: Peer, key: TransactionKey, request: Request) {
        let source = peer.addr;
        let Ok(call_id) = call_id(&request.headers).map(str::to_owned) else {
            return;
        };
        let to_tag = request.headers.iter().find_map(|h| match h {
            Header::To(to) => header_param(to.value(), "tag").map(str::to_owned),
            _ => None,
        });
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
        if to_tag.is_some() {
            // A re-INVITE (hold, resume, session refresh): repeat our answer.
            let answer = self
                .dialogs
                .get(&call_id)
                .filter(|d| d.state == DialogState::Confirmed)
                .map(|d| (d.local_tag.clone(), d.local_sdp.clone()));
            let contact = self.contact(peer.transport);
            let response = match answer {
                Some((tag, sdp)) => {
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
                None => build_response(
                    &request,
                    status(481, "Call/Transaction Does Not Exist"),
                    Some(&crate::sip::new_tag()),
                ),
            };
            if let Ok(response) = response {
                let _ = tx.respond(now, response);
            }
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
                Some(&crate::sip::new_tag()),
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
                dialled: user_of(&request.uri.to_string()),
                caller: caller.unwrap_or_default(),
                offer: request.body.clone(),
                source,
                transport: peer.transport,
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

    fn on_ack_for_2xx(&mut self, now: Instant, request: Request) {
        let Ok(call_id) = call_id(&request.headers).map(str::to_owned) else {
            return;
        };
        let Some(key) = self.dialogs.get(&call_id).map(|d| d.invite_key.clone()) else {
            tracing::debug!(call = %call_id, "ACK for no dialog; ignored");
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
            .is_some_and(|tx| tx.state() == crate::sip::transaction::ServerInviteState::Proceeding);
        let (code, reason) = if found {
            (200, "OK")
        } else {
            (481, "Call/Transaction Does Not Exist")
        };
        let response = build_response(&request, status(code, reason), Some(&crate::sip::new_tag()));
        let call = call_id(&request.headers).map(str::to_owned).ok();
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
        let call = call_id(&request.headers).map(str::to_owned).ok();
        let known = call.as_ref().and_then(|c| self.dialogs.get(c)).is_some();
        let response = if known {
            build_response(&request, status(200, "OK"), None)
        } else {
            build_response(
                &request,
                status(481, "Call/Transaction Does Not Exist"),
                Some(&crate::sip::new_tag()),
            )
        };
        self.respond_non_invite(now, peer, key, request, response);
        if let (true, Some(call_id)) = (known, call) {
            self.dialogs.remove(&call_id);
            self.events.push_back(EndpointEvent::RemoteHangup {
                call_id,
                cancelled: false,
            });
        }
    }

    fn on_info(&mut self, now: Instant, peer: Peer, key: TransactionKey, request: Request) {
        let call = call_id(&request.headers).map(str::to_owned).ok();
        let known = call.as_ref().is_some_and(|c| self.dialogs.contains_key(c));
        let digit = dtmf_relay_digit(&request);
        let response = if known {
            build_response(&request, status(200, "OK"), None)
        } else {
            build_response(
                &request,
                status(481, "Call/Transaction Does Not Exist"),
                Some(&crate::sip::new_tag()),
            )
        };
        self.respond_non_invite(now, peer, key, request, response);
        if let (true, Some(call_id), Some(digit)) = (known, call, digit) {
            self.events
                .push_back(EndpointEvent::Dtmf { call_id, digit });
        }
    }

    pub(super) fn on_response(&mut self, now: Instant, response: Response) {
        let Ok(key) = TransactionKey::client(&response) else {
            return;
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

/// The digit of an INFO with `application/dtmf-relay` (`Signal=5\r\nDuration=160`).
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
