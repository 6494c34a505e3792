//! The endpoint's side of its deadline queue (`timers.rs`): what each owner's next deadline
//! is, re-registering the owners an entry point reached, and firing the ones that are due in
//! the order the endpoint always handled them (server INVITEs, other server transactions, our
//! requests, outbound calls, refresh re-INVITEs, then dialogs).

use std::time::Instant;

use super::timers::TimerKey;
use super::SipEndpoint;

impl SipEndpoint {
    /// `key`'s next deadline, asked of its owner (`None` when it is gone or has none).
    pub(super) fn deadline_of(&self, key: &TimerKey) -> Option<Instant> {
        match key {
            TimerKey::Invite(k) => self.invites.get(k)?.poll_timeout(),
            TimerKey::Other(k) => self.others.get(k)?.poll_timeout(),
            TimerKey::Outgoing(k) => self.outgoing.get(k)?.tx.poll_timeout(),
            TimerKey::Refresh(k) => self.refresh_invites.get(k)?.poll_timeout(),
            TimerKey::Outbound(id) => self.outbound.get(id)?.poll_timeout(),
            TimerKey::Dialog(id) => self.dialogs.get(id)?.next_deadline(),
            TimerKey::Registration(id) => self.registrations.get(id)?.poll_timeout(),
        }
    }

    /// Re-registers the deadline of every owner reached mutably since the last time: each
    /// public entry point ends here.
    pub(super) fn settle_timers(&mut self) {
        while let Some(k) = self.invites.pop_touched() {
            self.reschedule(TimerKey::Invite(k));
        }
        while let Some(k) = self.others.pop_touched() {
            self.reschedule(TimerKey::Other(k));
        }
        while let Some(k) = self.outgoing.pop_touched() {
            self.reschedule(TimerKey::Outgoing(k));
        }
        while let Some(k) = self.refresh_invites.pop_touched() {
            self.reschedule(TimerKey::Refresh(k));
        }
        while let Some(id) = self.outbound.pop_touched() {
            self.reschedule(TimerKey::Outbound(id));
        }
        while let Some(id) = self.dialogs.pop_touched() {
            self.reschedule(TimerKey::Dialog(id));
        }
        while let Some(id) = self.registrations.pop_touched() {
            self.reschedule(TimerKey::Registration(id));
        }
    }

    /// Registers `key`'s deadline as its owner now says it is.
    pub(super) fn reschedule(&mut self, key: TimerKey) {
        let at = self.deadline_of(&key);
        self.deadlines.schedule(key, at);
    }

    /// Whether some owner was reached since the last [`Self::settle_timers`] (a missed one
    /// would leave `poll_timeout` wrong).
    pub(super) fn has_unsettled_timers(&self) -> bool {
        self.invites.has_touched()
            || self.others.has_touched()
            || self.outgoing.has_touched()
            || self.refresh_invites.has_touched()
            || self.outbound.has_touched()
            || self.dialogs.has_touched()
            || self.registrations.has_touched()
    }

    /// Advances the owners in `due`, kind by kind in the endpoint's usual order, each kind in
    /// deadline order.
    pub(super) fn fire(&mut self, now: Instant, due: &[TimerKey]) {
        let mut dialogs = Vec::new();
        let mut outbound = Vec::new();
        let mut refresh = Vec::new();
        for key in due {
            match key {
                TimerKey::Invite(k) => {
                    if let Some(tx) = self.invites.get_mut(k) {
                        tx.handle_timeout(now);
                    }
                    self.drain_invite(k);
                }
                TimerKey::Other(_) | TimerKey::Outgoing(_) => {}
                TimerKey::Outbound(id) => outbound.push(id.clone()),
                TimerKey::Refresh(k) => refresh.push(k.clone()),
                TimerKey::Dialog(id) => dialogs.push(id.clone()),
                TimerKey::Registration(id) => self.registration_timeout(now, id),
            }
        }
        for key in due {
            if let TimerKey::Other(k) = key {
                if let Some(tx) = self.others.get_mut(k) {
                    tx.handle_timeout(now);
                }
                self.drain_other(k);
            }
        }
        for key in due {
            if let TimerKey::Outgoing(k) = key {
                if let Some(r) = self.outgoing.get_mut(k) {
                    r.tx.handle_timeout(now);
                }
                self.drain_outgoing(now, k);
            }
        }
        self.outbound_timeouts(now, &outbound);
        self.refresh_invite_timeouts(now, &refresh);
        self.transfer_timeouts(now, &dialogs);
        self.session_timeouts(now, &dialogs);
    }
}
