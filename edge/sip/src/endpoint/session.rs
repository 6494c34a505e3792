//! The endpoint's side of RFC 4028 session timers: the 422 for an interval below our minimum,
//! the agreed `Session-Expires` on our 2xx, refreshes received (re-INVITE, UPDATE) and sent
//! (UPDATE, with our SDP again, at half the interval when we are the refresher), and
//! [`EndpointEvent::SessionExpired`] when the session lapses.

use std::time::Instant;

use rsip::{Header, Method, Request, Response};

use super::{EndpointEvent, Purpose, SipEndpoint};
use crate::message::header_lists;
use crate::peer::Peer;
use crate::response::{build_response, set_body, status};
use crate::session_timer::{negotiate, SessionDue, SessionTimer};
use crate::transaction::TransactionKey;

impl SipEndpoint {
    /// The 422 for an INVITE whose session interval is too small, or `None` to go on (with the
    /// agreement kept for the answer).
    pub(super) fn session_timer_refusal(&self, request: &Request) -> Option<Response> {
        let too_small = negotiate(&request.headers).err()?;
        tracing::info!(
            asked = too_small.asked,
            min = too_small.min_se,
            "Session-Expires too small (422)"
        );
        build_response(
            request,
            status(422, "Session Interval Too Small"),
            Some(&crate::new_tag()),
        )
        .ok()
        .map(|mut r| {
            r.headers
                .push(Header::Other("Min-SE".into(), too_small.min_se.to_string()));
            r
        })
    }

    /// Adds the agreed timer to our 2xx of `call_id` and starts its clock.
    pub(super) fn start_session_timer(
        &mut self,
        now: Instant,
        call_id: &str,
        response: &mut Response,
    ) {
        let Some(dialog) = self.dialogs.get_mut(call_id) else {
            return;
        };
        if let Ok(Some(agreement)) = negotiate(&dialog.invite.headers) {
            response.headers.extend(agreement.response_headers());
            let mut timer = SessionTimer::new(agreement);
            timer.refreshed(now);
            dialog.session_timer = Some(timer);
        }
    }

    /// A refresh request (re-INVITE or UPDATE) arrived for `call_id`: re-agree the timer from
    /// its headers (none means the timer is off, RFC 4028 section 9) and put the agreement on
    /// our 2xx.
    pub(super) fn refresh_session(
        &mut self,
        now: Instant,
        call_id: &str,
        request: &Request,
        response: &mut Response,
    ) {
        let Some(dialog) = self.dialogs.get_mut(call_id) else {
            return;
        };
        match negotiate(&request.headers) {
            Ok(Some(agreement)) => {
                response.headers.extend(agreement.response_headers());
                let mut timer = SessionTimer::new(agreement);
                timer.refreshed(now);
                dialog.session_timer = Some(timer);
            }
            // A too-small interval in a refresh: keep the old agreement going.
            Err(_) => {
                if let Some(timer) = dialog.session_timer.as_mut() {
                    timer.refreshed(now);
                }
            }
            Ok(None) => dialog.session_timer = None,
        }
    }

    /// An UPDATE (RFC 3311) in a dialog: a session refresh, answered 200 (with our SDP again
    /// when it carried an offer: our media does not change).
    pub(super) fn on_update(
        &mut self,
        now: Instant,
        peer: Peer,
        key: TransactionKey,
        request: Request,
    ) {
        let call = self.dialog_of(peer.addr, &request);
        let dialog = call.as_ref().and_then(|c| self.dialogs.get(c));
        let Some((tag, sdp)) = dialog.map(|d| (d.local_tag.clone(), d.local_sdp.clone())) else {
            let response = super::inbound::no_dialog(&request);
            return self.respond_non_invite(now, peer, key, request, response);
        };
        // An offer crossing the offer of our pending re-INVITE is glare (RFC 3311 section 5.2).
        let crossing = !request.body.is_empty()
            && call
                .as_deref()
                .is_some_and(|c| self.refresh_invites.values().any(|r| r.is_pending_for(c)));
        if crossing {
            tracing::info!(source = %peer.addr, "an UPDATE offer crossed our re-INVITE (491)");
            let response = build_response(&request, status(491, "Request Pending"), None);
            return self.respond_non_invite(now, peer, key, request, response);
        }
        // An UPDATE is a target refresh (RFC 3311 section 5.1).
        if let Some(dialog) = call.as_deref().and_then(|c| self.dialogs.get_mut(c)) {
            dialog.refresh_target(&request.headers);
        }
        let contact = match call.as_deref() {
            Some(call_id) => self.contact_in(call_id, peer.transport),
            None => self.contact(peer.transport),
        };
        let mut response = build_response(&request, status(200, "OK"), Some(&tag));
        if let (Ok(r), Some(call_id)) = (response.as_mut(), call.as_deref()) {
            r.headers.push(contact);
            self.refresh_session(now, call_id, &request, r);
            if let (false, Some(sdp)) = (request.body.is_empty(), sdp) {
                set_body(r, "application/sdp", sdp.into_bytes());
            }
        }
        self.respond_non_invite(now, peer, key, request, response);
    }

    /// Of the dialogs in `dialogs`, refreshes that are due are sent; sessions that lapsed are
    /// reported.
    pub(super) fn session_timeouts(&mut self, now: Instant, dialogs: &[String]) {
        let due: Vec<(String, SessionDue)> = dialogs
            .iter()
            .filter_map(|id| {
                let due = self
                    .dialogs
                    .get(id.as_str())?
                    .session_timer
                    .as_ref()?
                    .due(now);
                (due != SessionDue::Nothing).then(|| (id.clone(), due))
            })
            .collect();
        self.glare_retries(now, dialogs);
        for (call_id, due) in due {
            match due {
                SessionDue::Refresh => self.send_refresh(now, &call_id),
                SessionDue::Expired => self.session_expired(&call_id),
                SessionDue::Nothing => {}
            }
        }
    }

    /// Our refresh: an UPDATE carrying the session timer again (no SDP: RFC 4028 section 7.4
    /// lets a refresh leave the session description alone), or — when the peer's `Allow` leaves
    /// UPDATE out — a re-INVITE with our SDP unchanged.
    pub(super) fn send_refresh(&mut self, now: Instant, call_id: &str) {
        let local = self.dialog_local(call_id);
        let Some(dialog) = self.dialogs.get_mut(call_id) else {
            return;
        };
        let Some(timer) = dialog.session_timer.as_mut() else {
            return;
        };
        timer.refreshing = true;
        let interval = timer.agreement.interval;
        let contact = dialog.contact(local);
        let extra = vec![
            Header::Other(
                "Session-Expires".into(),
                format!("{interval};refresher=uac"),
            ),
            Header::Supported("timer".into()),
            Header::Contact(contact.into()),
        ];
        let update = header_lists(&dialog.invite.headers, "Allow", "UPDATE");
        let (method, body) = match (&dialog.local_sdp, update) {
            (Some(sdp), false) => (
                Method::Invite,
                Some(("application/sdp", sdp.clone().into_bytes())),
            ),
            _ => (Method::Update, None),
        };
        let peer = dialog.next_hop();
        match dialog.request(method, local, extra, body) {
            Ok(request) if method == Method::Invite => {
                tracing::debug!(call = %call_id, "refreshing the session (re-INVITE)");
                self.send_refresh_invite(now, call_id, request, peer);
            }
            Ok(request) => {
                tracing::debug!(call = %call_id, "refreshing the session (UPDATE)");
                self.send_in_dialog(now, call_id, Purpose::Refresh, request);
            }
            Err(e) => tracing::warn!(call = %call_id, error = %e, "cannot write a session refresh"),
        }
    }

    /// The answer to our refresh: 2xx restarts the clock; 408, 481 or no answer mean the
    /// session is gone (RFC 4028 section 10). Any other refusal (a peer that does not do UPDATE
    /// answers 405 or 501) turns the timer off: the call goes on rather than be cut by a timer
    /// we cannot keep.
    pub(super) fn on_refresh_outcome(
        &mut self,
        now: Instant,
        call_id: &str,
        outcome: Result<(u16, String), ()>,
    ) {
        let Some(dialog) = self.dialogs.get_mut(call_id) else {
            return;
        };
        match outcome {
            Ok((200..=299, _)) => {
                if let Some(timer) = dialog.session_timer.as_mut() {
                    timer.refreshed(now);
                }
            }
            Ok((491, _)) => self.retry_refresh_after_glare(now, call_id),
            Ok((408 | 481, _)) | Err(()) => {
                tracing::info!(call = %call_id, outcome = ?outcome, "the session refresh failed");
                self.session_expired(call_id);
            }
            Ok((code, reason)) => {
                tracing::warn!(call = %call_id, code, %reason, "the peer refused our session refresh; session timer off");
                dialog.session_timer = None;
            }
        }
    }

    fn session_expired(&mut self, call_id: &str) {
        let Some(dialog) = self.dialogs.get_mut(call_id) else {
            return;
        };
        if dialog.session_timer.take().is_some() {
            tracing::info!(call = %call_id, "the session timer expired");
            self.events.push_back(EndpointEvent::SessionExpired {
                call_id: call_id.to_owned(),
            });
        }
    }
}
