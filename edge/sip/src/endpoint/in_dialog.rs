//! Requests the edge sends inside an established call, and the in-dialog requests that report on
//! them: a blind transfer (RFC 3515 REFER, its progress by NOTIFY with a `message/sipfrag`
//! body), digits by SIP INFO (`application/dtmf-relay`) when the media has no telephone-event,
//! our answer to a REFER sent to us, and our SDP answer to a re-INVITE (hold and resume). Each request runs in a client transaction of its own,
//! tagged with its [`Purpose`] so that its outcome is understood when it comes back.

use std::time::{Duration, Instant};

use rsip::{Header, Method, Request};

use super::inbound::{has_to_tag, no_dialog};
use super::{ByeOutcome, EndpointEvent, Purpose, SipEndpoint, ALLOW};
use crate::dialog::DialogState;
use crate::message::header_named;
use crate::peer::Peer;
use crate::response::{build_response, status};
use crate::sdp::{self, SessionDescription};
use crate::transaction::TransactionKey;

/// How long an accepted transfer may go without a final NOTIFY before it counts as failed.
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(60);

/// How a blind transfer we asked for goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferProgress {
    /// The peer accepted the REFER (202) and is calling the target.
    Accepted,
    /// A NOTIFY reported a provisional status of the new call (100 Trying, 180 Ringing).
    Trying { code: u16 },
    /// The target answered: the transfer is done and our leg should end.
    Succeeded { code: u16 },
    /// The REFER was refused or unanswered, or the new call failed: our call goes on.
    Failed { reason: String },
}

/// A transfer destination that cannot be written as a Refer-To URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferTargetError {
    #[error("the transfer destination is empty")]
    Empty,
    #[error("`{0}` is neither a phone number nor a sip: URI")]
    Unusable(String),
}

/// A transfer in progress on a dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The Refer-To URI.
    pub target: String,
    /// When it counts as failed without a final NOTIFY.
    pub deadline: Instant,
}

/// `destination` as a Refer-To URI: a `sip:`/`sips:` URI as given, a number (`+1 555-0100`,
/// `tel:+15550100`, `1234`) as `sip:{number}@{host}` toward the same peer or trunk.
pub fn refer_target(destination: &str, host: &str) -> Result<String, TransferTargetError> {
    let destination = destination.trim();
    if destination.is_empty() {
        return Err(TransferTargetError::Empty);
    }
    let unusable = || TransferTargetError::Unusable(destination.to_owned());
    let lower = destination.to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        // Nothing that could break out of the header's angle brackets.
        if destination
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
        {
            return Err(unusable());
        }
        // A user part (a template may have filled it) must be RFC 3261's `user`: one more `@`
        // or a `>` would name another host or end the header.
        let rest = &destination[destination.find(':').map_or(0, |i| i + 1)..];
        if let Some((user, host)) = rest.split_once('@') {
            if host.contains('@') || freya_shared::model::sip_user::sip_user_problem(user).is_some()
            {
                return Err(unusable());
            }
        }
        rsip::Uri::try_from(destination).map_err(|_| unusable())?;
        return Ok(destination.to_owned());
    }
    let number = destination.strip_prefix("tel:").unwrap_or(destination);
    let digits: String = number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let body = digits.strip_prefix('+').unwrap_or(&digits);
    let ok = !body.is_empty()
        && body.len() <= 32
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#');
    if !ok || host.is_empty() {
        return Err(unusable());
    }
    Ok(format!("sip:{digits}@{host}"))
}

/// The status code on the start line of a `message/sipfrag` body (`SIP/2.0 200 OK`).
pub fn sipfrag_status(body: &[u8]) -> Option<(u16, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0")?.trim_start();
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let code: u16 = code.parse().ok()?;
    (100..700)
        .contains(&code)
        .then(|| (code, reason.trim().to_owned()))
}

impl SipEndpoint {
    /// Transfers `call_id` blindly to `destination` (a number or a SIP URI): REFER in its
    /// dialog. Progress arrives as [`EndpointEvent::Transfer`]; a request that cannot be sent
    /// at all is reported as failed at once.
    pub fn transfer(&mut self, now: Instant, call_id: &str, destination: &str) {
        self.send_refer(now, call_id, destination);
        self.settle_timers();
    }

    fn send_refer(&mut self, now: Instant, call_id: &str, destination: &str) {
        let local = self.dialog_local(call_id);
        let refusal = match self.dialogs.get(call_id) {
            None => Some("the call is not up".to_owned()),
            Some(d) if d.state != DialogState::Confirmed => Some("the call is not answered".into()),
            Some(d) if d.transfer.is_some() => Some("a transfer is already in progress".into()),
            Some(_) => None,
        };
        if let Some(reason) = refusal {
            return self.transfer_progress(call_id, TransferProgress::Failed { reason });
        }
        let Some(dialog) = self.dialogs.get_mut(call_id) else {
            return;
        };
        let target = match refer_target(destination, &dialog.remote_host()) {
            Ok(target) => target,
            Err(e) => {
                let reason = e.to_string();
                return self.transfer_progress(call_id, TransferProgress::Failed { reason });
            }
        };
        let contact = dialog.contact(local);
        let extra = vec![
            Header::Other("Refer-To".into(), format!("<{target}>")),
            Header::Other("Referred-By".into(), format!("<{}>", dialog.local_uri())),
            Header::Contact(contact.into()),
        ];
        let request = match dialog.request(Method::Refer, local, extra, None) {
            Ok(request) => request,
            Err(e) => {
                let reason = format!("cannot write the REFER: {e}");
                return self.transfer_progress(call_id, TransferProgress::Failed { reason });
            }
        };
        tracing::info!(call = %call_id, %target, "transferring the call (REFER)");
        dialog.transfer = Some(Transfer {
            target,
            deadline: now + TRANSFER_TIMEOUT,
        });
        self.send_in_dialog(now, call_id, Purpose::Refer, request);
    }

    /// Sends `digits` (already checked: 0-9, *, #, A-D) to the peer of `call_id` by SIP INFO,
    /// one request per digit, each sent when the previous one is answered.
    pub fn send_dtmf_info(&mut self, now: Instant, call_id: &str, digits: &str) {
        if let Some(dialog) = self.dialogs.get_mut(call_id) {
            dialog.pending_digits.extend(digits.chars());
            if !dialog.info_in_flight {
                self.send_next_digit(now, call_id);
            }
        }
        self.settle_timers();
    }

    fn send_next_digit(&mut self, now: Instant, call_id: &str) {
        let local = self.dialog_local(call_id);
        let Some(dialog) = self.dialogs.get_mut(call_id) else {
            return;
        };
        let Some(digit) = dialog.pending_digits.pop_front() else {
            return;
        };
        let body = format!("Signal={digit}\r\nDuration=160\r\n").into_bytes();
        match dialog.request(
            Method::Info,
            local,
            Vec::new(),
            Some(("application/dtmf-relay", body)),
        ) {
            Ok(request) => {
                dialog.info_in_flight = true;
                self.send_in_dialog(now, call_id, Purpose::Info, request);
            }
            Err(e) => tracing::warn!(call = %call_id, error = %e, "cannot write a DTMF INFO"),
        }
    }

    /// What became of a request of ours in a dialog: `Ok(code)` of its final response, or
    /// `Err(())` when none came (timer F).
    pub(super) fn on_in_dialog_outcome(
        &mut self,
        now: Instant,
        call_id: &str,
        purpose: Purpose,
        outcome: Result<(u16, String), ()>,
    ) {
        match purpose {
            Purpose::Bye => {
                let outcome = match outcome {
                    Ok((code, _)) => ByeOutcome::Answered { code },
                    Err(()) => ByeOutcome::Timeout,
                };
                if outcome != (ByeOutcome::Answered { code: 200 }) {
                    tracing::info!(call = %call_id, outcome = %outcome.as_record(), "our BYE was not answered 200");
                }
                self.events.push_back(EndpointEvent::ByeOutcome {
                    call_id: call_id.to_owned(),
                    outcome,
                });
            }
            Purpose::Refer => {
                let failure = match outcome {
                    Ok((200..=299, _)) => None,
                    Ok((code, reason)) => Some(format!("the REFER was refused: {code} {reason}")),
                    Err(()) => Some("the REFER was never answered".to_owned()),
                };
                match failure {
                    None => self.transfer_progress(call_id, TransferProgress::Accepted),
                    Some(reason) => {
                        if let Some(dialog) = self.dialogs.get_mut(call_id) {
                            dialog.transfer = None;
                        }
                        self.transfer_progress(call_id, TransferProgress::Failed { reason });
                    }
                }
            }
            Purpose::Info => {
                match &outcome {
                    Ok((code, reason)) if *code >= 300 => {
                        tracing::info!(call = %call_id, code, %reason, "a DTMF INFO was refused")
                    }
                    Err(()) => tracing::info!(call = %call_id, "a DTMF INFO was never answered"),
                    Ok(_) => {}
                }
                if let Some(dialog) = self.dialogs.get_mut(call_id) {
                    dialog.info_in_flight = false;
                }
                self.send_next_digit(now, call_id);
            }
            Purpose::Refresh => self.on_refresh_outcome(now, call_id, outcome),
        }
    }

    /// A NOTIFY in a dialog: the progress of our transfer (Event: refer, `message/sipfrag`).
    pub(super) fn on_notify(
        &mut self,
        now: Instant,
        peer: Peer,
        key: TransactionKey,
        request: Request,
    ) {
        let call = self.dialog_of(peer.addr, &request);
        let known = call.is_some();
        let event = header_named(&request.headers, "Event").unwrap_or_default();
        let is_refer = event
            .split(';')
            .next()
            .is_some_and(|e| e.trim().eq_ignore_ascii_case("refer"));
        let (code, reason) = match (known, is_refer) {
            (false, _) => (481, "Call/Transaction Does Not Exist"),
            (true, false) => (489, "Bad Event"),
            (true, true) => (200, "OK"),
        };
        let status_line = sipfrag_status(&request.body);
        let terminated = header_named(&request.headers, "Subscription-State")
            .is_some_and(|s| s.trim().to_ascii_lowercase().starts_with("terminated"));
        let mut response = build_response(&request, status(code, reason), None);
        if code == 489 {
            if let Ok(r) = response.as_mut() {
                r.headers
                    .push(Header::Other("Allow-Events".into(), "refer".into()));
            }
        }
        self.respond_non_invite(now, peer, key, request, response);
        let (true, true, Some(call_id)) = (known, is_refer, call) else {
            return;
        };
        let in_progress = self
            .dialogs
            .get(&call_id)
            .is_some_and(|d| d.transfer.is_some());
        if !in_progress {
            tracing::debug!(call = %call_id, "NOTIFY for no transfer of ours; answered and ignored");
            return;
        }
        let progress = match status_line {
            Some((code @ 100..=199, _)) if !terminated => TransferProgress::Trying { code },
            Some((code @ 200..=299, _)) => TransferProgress::Succeeded { code },
            Some((code, reason)) if code >= 300 => TransferProgress::Failed {
                reason: format!("the transfer target answered {code} {reason}"),
            },
            _ if terminated => TransferProgress::Failed {
                reason: "the transfer ended without a final status".into(),
            },
            _ => return,
        };
        if matches!(
            progress,
            TransferProgress::Succeeded { .. } | TransferProgress::Failed { .. }
        ) {
            if let Some(dialog) = self.dialogs.get_mut(&call_id) {
                dialog.transfer = None;
            }
        }
        self.transfer_progress(&call_id, progress);
    }

    /// A REFER sent to us. We answer 405 Method Not Allowed with our Allow list (which leaves
    /// REFER out): where a call goes is the agent's decision, and a peer that could move our
    /// call anywhere would be a toll-fraud hole. 405 rather than 603 Decline tells the peer
    /// that no REFER will ever be accepted here, not just this one; rather than 501, because
    /// we do know the method (we send it). A REFER claiming a dialog (a To tag) that it does
    /// not match gets 481, as every in-dialog request does.
    pub(super) fn on_refer(
        &mut self,
        now: Instant,
        peer: Peer,
        key: TransactionKey,
        request: Request,
    ) {
        if has_to_tag(&request) && self.dialog_of(peer.addr, &request).is_none() {
            let response = no_dialog(&request);
            return self.respond_non_invite(now, peer, key, request, response);
        }
        let response = build_response(
            &request,
            status(405, "Method Not Allowed"),
            Some(&crate::new_tag()),
        )
        .map(|mut r| {
            r.headers.push(Header::Allow(ALLOW.into()));
            r
        });
        tracing::info!(source = %peer.addr, "refused a REFER from the peer (405)");
        self.respond_non_invite(now, peer, key, request, response);
    }

    /// Transfers of the dialogs in `due` whose final NOTIFY is overdue fail.
    pub(super) fn transfer_timeouts(&mut self, now: Instant, due: &[String]) {
        let overdue: Vec<String> = due
            .iter()
            .filter(|id| {
                self.dialogs
                    .get(id.as_str())
                    .and_then(|d| d.transfer.as_ref())
                    .is_some_and(|t| t.deadline <= now)
            })
            .cloned()
            .collect();
        for call_id in overdue {
            if let Some(dialog) = self.dialogs.get_mut(&call_id) {
                dialog.transfer = None;
            }
            let reason = format!("no final NOTIFY within {} s", TRANSFER_TIMEOUT.as_secs());
            self.transfer_progress(&call_id, TransferProgress::Failed { reason });
        }
    }

    /// Our tag and the SDP for the 2xx to a re-INVITE of `call_id`'s confirmed dialog (hold,
    /// resume, session refresh), or `None` when the dialog is not confirmed. An offer is
    /// answered by [`sdp::reanswer`] (the direction follows it, the `o=` version goes up when the
    /// answer changes) and the answer is kept for the next re-INVITE; a change of our direction
    /// is reported as [`EndpointEvent::MediaDirection`]. An offerless re-INVITE gets our last
    /// SDP as the offer; an offer we cannot read gets our last answer unchanged.
    pub(super) fn reinvite_answer(
        &mut self,
        call_id: &str,
        request: &Request,
    ) -> Option<(String, Option<String>)> {
        let dialog = self
            .dialogs
            .get_mut(call_id)
            .filter(|d| d.state == DialogState::Confirmed)?;
        // A re-INVITE is a target refresh (RFC 3261 section 12.2.2).
        dialog.refresh_target(&request.headers);
        let tag = dialog.local_tag.clone();
        let Some(previous) = dialog.local_sdp.clone() else {
            return Some((tag, None));
        };
        if request.body.is_empty() {
            return Some((tag, Some(previous)));
        }
        let re = match SessionDescription::parse(&request.body)
            .and_then(|offer| sdp::reanswer(&previous, &offer))
        {
            Ok(re) => re,
            Err(e) => {
                tracing::info!(call = %call_id, error = %e, "cannot answer a re-INVITE's offer; repeating our answer");
                return Some((tag, Some(previous)));
            }
        };
        if re.changed {
            dialog.local_sdp = Some(re.sdp.clone());
        }
        if re.direction != re.previous_direction {
            self.events.push_back(EndpointEvent::MediaDirection {
                call_id: call_id.to_owned(),
                direction: re.direction,
            });
        }
        Some((tag, Some(re.sdp)))
    }

    fn transfer_progress(&mut self, call_id: &str, progress: TransferProgress) {
        self.events.push_back(EndpointEvent::Transfer {
            call_id: call_id.to_owned(),
            progress,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_uris_toward_the_peer_and_uris_stay() {
        assert_eq!(
            refer_target("+1 555-0100", "10.0.0.1:5060"),
            Ok("sip:+15550100@10.0.0.1:5060".into())
        );
        assert_eq!(
            refer_target("tel:1234", "pbx.example"),
            Ok("sip:1234@pbx.example".into())
        );
        assert_eq!(
            refer_target("sip:sales@pbx.example;transport=tcp", "ignored"),
            Ok("sip:sales@pbx.example;transport=tcp".into())
        );
        assert_eq!(refer_target("  ", "h"), Err(TransferTargetError::Empty));
        for bad in [
            "sales team",
            "sip:a@b>\r\nX: y",
            "http://x",
            "12ab",
            "+",
            "sip:a@evil.example@pbx.example",
            "sip:a#b@pbx.example",
        ] {
            assert!(refer_target(bad, "h").is_err(), "{bad}");
        }
    }

    #[test]
    fn sipfrag_status_lines_are_read() {
        assert_eq!(
            sipfrag_status(b"SIP/2.0 100 Trying\r\n"),
            Some((100, "Trying".into()))
        );
        assert_eq!(sipfrag_status(b"SIP/2.0 200 OK"), Some((200, "OK".into())));
        assert_eq!(
            sipfrag_status(b"SIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n"),
            Some((486, "Busy Here".into()))
        );
        assert_eq!(sipfrag_status(b"hello"), None);
        assert_eq!(sipfrag_status(b"SIP/2.0 99 Odd"), None);
        assert_eq!(sipfrag_status(&[0xff, 0xfe]), None);
    }
}
