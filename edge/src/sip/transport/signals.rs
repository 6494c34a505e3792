//! The SIP task's end of every call's signal channel, written so that the task never waits for
//! one call: each [`CallSignal`] goes by `try_send`, and a call whose queue is full costs the
//! SIP task nothing but a counter (`freya_edge_sip_call_queue_full_total{signal,action}`) and a
//! warning at most once a second.
//!
//! What a full queue means depends on the signal (each decision is in [`Keep::of`]):
//! - `Hangup` is never lost. It waits in the call's backlog and is offered again on every wake-up
//!   of the SIP task (at least every [`RETRY_EVERY`] while any backlog is waiting) until the call
//!   takes it or its task is gone. The call leaves the live set at once, so nothing else is sent
//!   to it, and when the SIP task itself stops, dropping the sender ends the call anyway (its
//!   task reads what is queued, then a closed channel).
//! - `Direction` (hold, resume), `Transfer` progress, a dialled leg's news (`Leg`) and the
//!   control plane's leg commands (`Legs`) wait too: the re-INVITE or NOTIFY was
//!   already answered, and a call that missed one would send audio to a caller on hold, stay
//!   silent after a resume, or stay up after its transfer succeeded. A newer direction replaces
//!   a waiting one (only the last one agreed counts). The backlog is bounded by [`BACKLOG`];
//!   beyond it they are dropped and counted.
//! - `Confirmed` and `Dtmf` are dropped and counted. `Confirmed` only tells the task that the ACK
//!   came (the SIP task has already moved the call's slot). A digit by SIP INFO has already been
//!   answered 200 by the endpoint in the same step that reported it (the core answers in-dialog
//!   requests itself), so that one digit cannot be refused any more: it is lost like a lost RTP
//!   event, and the counter shows it. But from then on the call is marked full in the endpoint
//!   (`SipEndpoint::set_signals_full`, whenever [`CallSignals::signal`] does not queue) and further
//!   digits are answered `500` with `Retry-After` — the peer knows they were not heard — until
//!   [`CallSignals::retry`] finds room in the queue again.
//!
//! A BYE from the caller is unaffected by any of this: the endpoint answers it 200 before the
//! SIP task hears of it, and the hang-up it becomes is one that waits.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use freya_shared::model::EndReason;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::call::task::CallSignal;
use crate::metrics::CallQueueCounter;

/// How long signals may wait in a backlog before the SIP task offers them again, when nothing
/// else wakes it first.
pub(super) const RETRY_EVERY: Duration = Duration::from_millis(20);

/// Signals (other than the hang-up, which always waits) one call may have waiting behind its full
/// queue; a call further behind than this is stuck, and more would only grow memory.
pub(super) const BACKLOG: usize = 8;

/// How often a full queue may be logged as a warning; those in between are counted into the next.
const WARN_EVERY: Duration = Duration::from_secs(1);

/// What to do with a signal that does not fit in its call's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Drop it and count it.
    Drop,
    /// Wait in the backlog, bounded by [`BACKLOG`].
    Wait,
    /// Wait in the backlog, never dropped.
    Always,
}

impl Keep {
    fn of(signal: &CallSignal) -> Self {
        match signal {
            CallSignal::Confirmed | CallSignal::Dtmf(_) => Keep::Drop,
            CallSignal::Direction(_)
            | CallSignal::Transfer(_)
            | CallSignal::Leg { .. }
            | CallSignal::Legs(_) => Keep::Wait,
            CallSignal::Hangup { .. } => Keep::Always,
        }
    }
}

/// The label of a signal in the counter.
fn label(signal: &CallSignal) -> &'static str {
    match signal {
        CallSignal::Confirmed => "confirmed",
        CallSignal::Dtmf(_) => "dtmf",
        CallSignal::Hangup { .. } => "hangup",
        CallSignal::Transfer(_) => "transfer",
        CallSignal::Direction(_) => "direction",
        CallSignal::Leg { .. } => "leg",
        CallSignal::Legs(_) => "legs",
    }
}

/// What became of one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// It is in the call's queue.
    Queued,
    /// The queue was full (or others waited before it): it waits in the call's backlog.
    Waiting,
    /// The queue was full and the signal may be lost: it was dropped and counted.
    Dropped,
    /// No live call by that dialog (never was, already ended, or its task is gone).
    NoCall,
}

/// One call's channel and what waits for room in it.
struct Line {
    tx: mpsc::Sender<CallSignal>,
    backlog: VecDeque<CallSignal>,
    /// The call has been told to hang up (or will be, from the backlog): it is no longer live.
    ended: bool,
    /// A signal did not fit: the endpoint is to refuse the call's INFO digits until there is
    /// room again.
    full: bool,
}

impl Line {
    /// Moves waiting signals into the queue while it has room. `Err` when the task is gone.
    fn flush(&mut self) -> Result<(), ()> {
        while let Some(signal) = self.backlog.pop_front() {
            match self.tx.try_send(signal) {
                Ok(()) => {}
                Err(TrySendError::Full(signal)) => {
                    self.backlog.push_front(signal);
                    return Ok(());
                }
                Err(TrySendError::Closed(_)) => return Err(()),
            }
        }
        Ok(())
    }
}

/// The live calls' signal channels, by dialog (the SIP Call-ID), with the backlogs of those
/// whose queue was full.
pub(super) struct CallSignals {
    lines: HashMap<String, Line>,
    /// The calls whose queue was found full (with a backlog, or to be reported with room
    /// again): the only ones [`CallSignals::retry`] visits, so that a wake-up of the SIP task
    /// costs nothing per call while every queue has room.
    attention: HashSet<String>,
    full: CallQueueCounter,
    last_warning: Option<Instant>,
    held_back: u64,
}

impl CallSignals {
    /// No calls yet; full queues are counted into `full`.
    pub(super) fn new(full: CallQueueCounter) -> Self {
        Self {
            lines: HashMap::new(),
            attention: HashSet::new(),
            full,
            last_warning: None,
            held_back: 0,
        }
    }

    /// A call's task started: signals for `dialog` go to `tx` from now on.
    pub(super) fn insert(&mut self, dialog: String, tx: mpsc::Sender<CallSignal>) {
        let line = Line {
            tx,
            backlog: VecDeque::new(),
            ended: false,
            full: false,
        };
        self.lines.insert(dialog, line);
    }

    /// Whether `dialog` is a call that has not been told to hang up.
    pub(super) fn is_live(&self, dialog: &str) -> bool {
        self.lines.get(dialog).is_some_and(|line| !line.ended)
    }

    /// The dialogs of every call not yet told to hang up (a drain's deadline ends them).
    pub(super) fn live(&self) -> Vec<String> {
        let live = self.lines.iter().filter(|(_, line)| !line.ended);
        live.map(|(dialog, _)| dialog.clone()).collect()
    }

    /// How many calls have a channel here: the live ones and those whose hang-up still waits.
    pub(super) fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether some signals wait for room, or some call is marked full: the SIP task then wakes
    /// every [`RETRY_EVERY`].
    pub(super) fn has_backlog(&self) -> bool {
        !self.attention.is_empty()
    }

    /// Hands `signal` to the live call `dialog` without waiting (see the module doc for what a
    /// full queue means for each signal). Not for hang-ups: [`CallSignals::hang_up`].
    pub(super) fn signal(&mut self, now: Instant, dialog: &str, signal: CallSignal) -> Delivery {
        if !self.is_live(dialog) {
            return Delivery::NoCall;
        }
        self.offer(now, dialog, signal)
    }

    /// Tells the live call `dialog` to end, for `reason`; it leaves the live set at once and the
    /// hang-up waits for room if its queue is full. False when no live call had that dialog.
    pub(super) fn hang_up(
        &mut self,
        now: Instant,
        dialog: &str,
        reason: EndReason,
        by_us: bool,
    ) -> bool {
        if !self.is_live(dialog) {
            return false;
        }
        let delivery = self.offer(now, dialog, CallSignal::Hangup { reason, by_us });
        match self.lines.get_mut(dialog) {
            Some(line) if delivery == Delivery::Waiting => line.ended = true,
            _ => {
                self.remove(dialog);
            }
        }
        true
    }

    /// The call's own task ended the call (it asked for our BYE): forget its channel. False when
    /// no live call had that dialog.
    pub(super) fn forget(&mut self, dialog: &str) -> bool {
        match self.remove(dialog) {
            Some(line) => !line.ended,
            None => false,
        }
    }

    /// Offers every backlog to its call again; forgets calls that were told to hang up and took
    /// it, and calls whose task is gone. Returns the live calls marked full that have room
    /// again (`SipEndpoint::set_signals_full(.., false)`).
    pub(super) fn retry(&mut self) -> Vec<String> {
        let mut room = Vec::new();
        let lines = &mut self.lines;
        self.attention.retain(|dialog| {
            let Some(line) = lines.get_mut(dialog) else {
                return false;
            };
            if line.flush().is_err() {
                lines.remove(dialog);
                return false;
            }
            if line.full && line.backlog.is_empty() && line.tx.capacity() > 0 {
                line.full = false;
                if !line.ended {
                    room.push(dialog.clone());
                }
            }
            if line.ended && line.backlog.is_empty() {
                lines.remove(dialog);
                return false;
            }
            line.full || !line.backlog.is_empty()
        });
        room
    }

    /// The edge stops: every live call is told so once (a full queue cannot wait now), and every
    /// channel is dropped, which ends each call's task after what it has queued. Returns the
    /// dialogs that were live.
    pub(super) fn shut_down(&mut self) -> Vec<String> {
        let mut live = Vec::new();
        self.attention.clear();
        for (dialog, line) in self.lines.drain() {
            if !line.ended {
                let _ = line.tx.try_send(CallSignal::Hangup {
                    reason: EndReason::EdgeShutdown,
                    by_us: true,
                });
                live.push(dialog);
            }
        }
        live
    }

    /// Forgets the channel of `dialog`, and that it needed attention.
    fn remove(&mut self, dialog: &str) -> Option<Line> {
        self.attention.remove(dialog);
        self.lines.remove(dialog)
    }

    fn offer(&mut self, now: Instant, dialog: &str, signal: CallSignal) -> Delivery {
        let Some(line) = self.lines.get_mut(dialog) else {
            return Delivery::NoCall;
        };
        if line.flush().is_err() {
            self.remove(dialog);
            return Delivery::NoCall;
        }
        let signal = if line.backlog.is_empty() {
            match line.tx.try_send(signal) {
                Ok(()) => return Delivery::Queued,
                Err(TrySendError::Closed(_)) => {
                    self.remove(dialog);
                    return Delivery::NoCall;
                }
                Err(TrySendError::Full(signal)) => signal,
            }
        } else {
            signal
        };
        let name = label(&signal);
        line.full = true;
        if !self.attention.contains(dialog) {
            self.attention.insert(dialog.to_owned());
        }
        let delivery = match Keep::of(&signal) {
            Keep::Drop => Delivery::Dropped,
            Keep::Wait if line.backlog.len() >= BACKLOG => Delivery::Dropped,
            Keep::Wait | Keep::Always => {
                let coalesced = matches!(
                    (line.backlog.back(), &signal),
                    (Some(CallSignal::Direction(_)), CallSignal::Direction(_))
                );
                if coalesced {
                    line.backlog.pop_back();
                }
                line.backlog.push_back(signal);
                Delivery::Waiting
            }
        };
        self.count(now, dialog, name, delivery);
        delivery
    }

    fn count(&mut self, now: Instant, dialog: &str, signal: &'static str, delivery: Delivery) {
        let action = if delivery == Delivery::Dropped {
            "dropped"
        } else {
            "waiting"
        };
        let labels = vec![
            ("signal".to_owned(), signal.to_owned()),
            ("action".to_owned(), action.to_owned()),
        ];
        self.full.get_or_create(&labels).inc();
        if self
            .last_warning
            .is_none_or(|at| now.duration_since(at) >= WARN_EVERY)
        {
            let held_back = std::mem::take(&mut self.held_back);
            self.last_warning = Some(now);
            tracing::warn!(call = %dialog, signal, action, held_back,
                "a call's signal queue is full");
        } else {
            self.held_back += 1;
        }
    }
}

#[cfg(test)]
#[path = "signals_tests.rs"]
mod tests;
