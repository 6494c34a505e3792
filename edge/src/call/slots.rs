//! The calls the SIP task carries, by whether their caller has confirmed them, sans-IO.
//!
//! An inbound call is *unconfirmed* from its INVITE until the ACK of our 200 OK: it rings, or
//! it is answered and its call task runs, but nothing yet shows the caller is real (an INVITE
//! sent from a forged address, or by a flood that never ACKs, looks just like it). Such calls
//! hold a slot of a small budget of their own (`max_unconfirmed`), of which one source address
//! may hold only its share (`max_unconfirmed_per_source`). Confirmed calls — and outbound
//! calls, which the control plane asked for — count against the edge's `capacity` instead. So
//! INVITEs that never ACK can take at most the unconfirmed budget, never a confirmed call's
//! slot, and one address can take at most its share of that budget.
//!
//! An unconfirmed call leaves the budget on its ACK ([`CallSlots::confirm`]) or when it ends
//! without one — CANCEL, a lost ACK (`EndpointEvent::Failed` after the 2xx retransmissions give
//! up), a hang-up ([`CallSlots::release`]).

use std::collections::HashMap;
use std::net::IpAddr;

use super::invite_rate::source_of;

/// The limits, from `capacity` and the `[sip]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotLimits {
    /// Confirmed and outbound calls.
    pub capacity: u32,
    /// Unconfirmed calls from all sources together.
    pub max_unconfirmed: u32,
    /// Unconfirmed calls from one source address.
    pub max_unconfirmed_per_source: u32,
}

/// Why there is no slot for a new inbound call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSlot {
    /// Confirmed calls fill `capacity`.
    AtCapacity,
    /// Unconfirmed calls fill `max_unconfirmed`.
    UnconfirmedFull,
    /// This source already holds `max_unconfirmed_per_source` unconfirmed calls.
    SourceUnconfirmedFull,
}

impl NoSlot {
    /// The `reason` label of the refusal metric.
    pub fn label(self) -> &'static str {
        match self {
            NoSlot::AtCapacity => "capacity",
            NoSlot::UnconfirmedFull => "unconfirmed_budget",
            NoSlot::SourceUnconfirmedFull => "source_unconfirmed_share",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Holds a slot of the unconfirmed budget, charged to `source`.
    Unconfirmed { source: IpAddr },
    /// Holds a slot of the capacity.
    Carried,
}

/// Every call's slot, by Call-ID.
#[derive(Debug)]
pub struct CallSlots {
    limits: SlotLimits,
    calls: HashMap<String, Slot>,
    /// Unconfirmed calls per source; sources with none are removed.
    by_source: HashMap<IpAddr, u32>,
    unconfirmed: u32,
    carried: u32,
}

impl CallSlots {
    /// No calls yet.
    pub fn new(limits: SlotLimits) -> Self {
        Self {
            limits,
            calls: HashMap::new(),
            by_source: HashMap::new(),
            unconfirmed: 0,
            carried: 0,
        }
    }

    /// Whether a new inbound call from `source` would get a slot. It needs room in all three:
    /// a confirmed slot it would move to (`capacity`), the unconfirmed budget, and its source's
    /// share of it.
    pub fn check_inbound(&self, source: IpAddr) -> Result<(), NoSlot> {
        if self.carried >= self.limits.capacity {
            return Err(NoSlot::AtCapacity);
        }
        if self.unconfirmed >= self.limits.max_unconfirmed {
            return Err(NoSlot::UnconfirmedFull);
        }
        let held = self.by_source.get(&source_of(source)).copied().unwrap_or(0);
        if held >= self.limits.max_unconfirmed_per_source {
            return Err(NoSlot::SourceUnconfirmedFull);
        }
        Ok(())
    }

    /// Takes an unconfirmed slot for an inbound call (after [`Self::check_inbound`] said yes
    /// and the call was accepted). A Call-ID already holding a slot keeps the one it has.
    pub fn take_inbound(&mut self, call_id: &str, source: IpAddr) {
        if self.calls.contains_key(call_id) {
            return;
        }
        let source = source_of(source);
        self.calls
            .insert(call_id.to_owned(), Slot::Unconfirmed { source });
        *self.by_source.entry(source).or_insert(0) += 1;
        self.unconfirmed += 1;
    }

    /// Takes a capacity slot for an outbound call (placed, then answered: the same slot). Only
    /// the capacity limits outbound calls ([`Self::carried`] against it): strangers cannot make
    /// the edge place calls.
    pub fn take_outbound(&mut self, call_id: &str) {
        if self.calls.contains_key(call_id) {
            return;
        }
        self.calls.insert(call_id.to_owned(), Slot::Carried);
        self.carried += 1;
    }

    /// The caller acknowledged our answer: the call moves from the unconfirmed budget to the
    /// capacity. It may take the capacity past `capacity` by at most `max_unconfirmed` calls
    /// admitted while there was room; refusing a caller who has just confirmed would be worse.
    pub fn confirm(&mut self, call_id: &str) {
        let Some(slot) = self.calls.get_mut(call_id) else {
            return;
        };
        if let Slot::Unconfirmed { source } = *slot {
            *slot = Slot::Carried;
            self.carried += 1;
            self.forget_unconfirmed(source);
        }
    }

    /// The call ended (or never started): its slot is free.
    pub fn release(&mut self, call_id: &str) {
        match self.calls.remove(call_id) {
            Some(Slot::Unconfirmed { source }) => self.forget_unconfirmed(source),
            Some(Slot::Carried) => self.carried = self.carried.saturating_sub(1),
            None => {}
        }
    }

    /// Calls waiting for their caller's ACK.
    pub fn unconfirmed(&self) -> u32 {
        self.unconfirmed
    }

    /// Confirmed and outbound calls.
    pub fn carried(&self) -> u32 {
        self.carried
    }

    /// Unconfirmed calls charged to `source`.
    pub fn unconfirmed_from(&self, source: IpAddr) -> u32 {
        self.by_source.get(&source_of(source)).copied().unwrap_or(0)
    }

    fn forget_unconfirmed(&mut self, source: IpAddr) {
        self.unconfirmed = self.unconfirmed.saturating_sub(1);
        if let Some(held) = self.by_source.get_mut(&source) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.by_source.remove(&source);
            }
        }
    }
}

#[cfg(test)]
#[path = "slots_tests.rs"]
mod tests;
