//! Glare: two INVITEs crossing in one dialog (RFC 3261 sections 14.1 and 14.2). A re-INVITE that
//! arrives while our own re-INVITE (a session refresh carrying an offer) awaits its final answer
//! is refused 491 Request Pending (and so is an UPDATE carrying an offer, RFC 3311 section 5.2,
//! in `session.rs`); one that arrives while an earlier INVITE of the peer's is
//! still unanswered gets 500 with a random `Retry-After` of 0 to 10 s. When the peer answers our
//! re-INVITE 491, we send it again after the section 14.1 back-off: 2.1 to 4 s when we generated
//! the Call-ID (a call we placed), 0 to 2 s when the peer did, in units of 10 ms.
//!
//! The endpoint also files every re-INVITE's server transaction under its dialog, by CSeq
//! number, so that the ACK for its 2xx stops that 2xx's retransmissions.

use std::time::{Duration, Instant};

use rand::Rng;
use rsip::{Header, Request, Response};

use super::SipEndpoint;
use crate::message::cseq;
use crate::response::{build_response, status};
use crate::transaction::{ServerInviteState, TransactionKey};

/// The largest `Retry-After` of a 500 to an INVITE that crossed an unanswered one (section 14.2).
const OVERLAP_RETRY_AFTER_MAX: u32 = 10;

/// How long to wait before sending our re-INVITE again after a 491 (RFC 3261 section 14.1).
/// `unit` is a random draw in `0..=200` (tens of milliseconds): the owner of the Call-ID waits
/// 2.1 s plus up to 1.9 s, the other side up to 2 s.
pub fn glare_backoff(owns_call_id: bool, unit: u32) -> Duration {
    let unit = u64::from(unit.min(200));
    if owns_call_id {
        Duration::from_millis(2100 + unit * 95 / 100 * 10)
    } else {
        Duration::from_millis(unit * 10)
    }
}

impl SipEndpoint {
    /// The refusal of a re-INVITE of `call_id` (already matched to its dialog) that crosses
    /// another INVITE of the dialog, or `None` when it may be answered.
    pub(super) fn reinvite_glare(
        &self,
        call_id: &str,
        request: &Request,
    ) -> Option<Result<Response, crate::SipError>> {
        let ours_pending = self
            .refresh_invites
            .values()
            .any(|r| r.is_pending_for(call_id));
        if ours_pending {
            tracing::info!(call = %call_id, "a re-INVITE crossed ours (491)");
            return Some(build_response(
                request,
                status(491, "Request Pending"),
                None,
            ));
        }
        let dialog = self.dialogs.get(call_id)?;
        let theirs_unanswered = std::iter::once(&dialog.invite_key)
            .chain(dialog.reinvites.iter().map(|(_, k)| k))
            .filter_map(|k| self.invites.get(k))
            .any(|tx| tx.state() == ServerInviteState::Proceeding);
        if !theirs_unanswered {
            return None;
        }
        tracing::info!(call = %call_id, "a re-INVITE arrived before our answer to the last one (500)");
        let seconds = rand::thread_rng().gen_range(0..=OVERLAP_RETRY_AFTER_MAX);
        Some(
            build_response(request, status(500, "Server Internal Error"), None).map(|mut r| {
                r.headers
                    .push(Header::Other("Retry-After".into(), seconds.to_string()));
                r
            }),
        )
    }

    /// Files the server transaction `key` of a re-INVITE under its dialog, by CSeq number, and
    /// forgets those whose transactions ended.
    pub(super) fn track_reinvite(
        &mut self,
        call_id: &str,
        request: &Request,
        key: &TransactionKey,
    ) {
        let Ok((number, _)) = cseq(&request.headers) else {
            return;
        };
        let invites = &self.invites;
        let Some(dialog) = self.dialogs.get_mut(call_id) else {
            return;
        };
        if !dialog.matches(request) {
            return;
        }
        dialog.reinvites.retain(|(_, k)| invites.contains_key(k));
        dialog.reinvites.push((number, key.clone()));
    }

    /// The peer answered our session refresh 491: send it again after the back-off, keeping
    /// the session's expiry where it is.
    pub(super) fn retry_refresh_after_glare(&mut self, now: Instant, call_id: &str) {
        let Some(dialog) = self.dialogs.get_mut(call_id) else {
            return;
        };
        let wait = glare_backoff(dialog.owns_call_id, rand::thread_rng().gen_range(0..=200));
        tracing::info!(call = %call_id, wait_ms = wait.as_millis() as u64, "our re-INVITE met the peer's (491); retrying");
        dialog.refresh_retry = Some(now + wait);
    }

    /// Refreshes of the dialogs in `dialogs` held back by glare whose back-off is over.
    pub(super) fn glare_retries(&mut self, now: Instant, dialogs: &[String]) {
        let due: Vec<String> = dialogs
            .iter()
            .filter(|id| {
                self.dialogs
                    .get(id.as_str())
                    .is_some_and(|d| d.refresh_retry.is_some_and(|at| at <= now))
            })
            .cloned()
            .collect();
        for call_id in due {
            if let Some(dialog) = self.dialogs.get_mut(&call_id) {
                dialog.refresh_retry = None;
            }
            self.send_refresh(now, &call_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_id_owner_waits_longer_than_the_other_side() {
        assert_eq!(glare_backoff(false, 0), Duration::ZERO);
        assert_eq!(glare_backoff(false, 200), Duration::from_secs(2));
        assert_eq!(glare_backoff(true, 0), Duration::from_millis(2100));
        assert_eq!(glare_backoff(true, 200), Duration::from_secs(4));
        assert_eq!(
            glare_backoff(false, 9999),
            Duration::from_secs(2),
            "clamped"
        );
    }
}
