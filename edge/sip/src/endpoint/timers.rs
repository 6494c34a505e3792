//! One deadline queue for everything in the endpoint that keeps time: server and client
//! transactions, our in-dialog requests and refresh re-INVITEs, outbound calls, and each
//! dialog's transfer, session-timer and glare-retry deadlines.
//!
//! The endpoint used to find its next deadline by asking every one of those owners, and
//! completed transactions linger for 32 s (RFC 3261 timers J and K, RFC 6026's Accepted
//! state), so at 300 calls/s `poll_timeout` walked some 20,000 of them after every datagram.
//! Here each owner's next deadline sits in a binary heap instead:
//!
//! - [`DeadlineQueue`] is a `BinaryHeap` of `(deadline, generation, key)` with lazy
//!   invalidation: a changed deadline pushes a new entry and records its generation in a map;
//!   an entry whose generation is no longer the key's is stale and is dropped when it reaches
//!   the top. The top is kept live after every change, so [`DeadlineQueue::next`] is O(1) and
//!   `&self`; a change is O(log n). A hierarchical wheel would make changes O(1), but SIP
//!   deadlines span 200 ms to hours and a heap needs no tick size or cascading; at signalling
//!   rates O(log n) is noise.
//! - [`Owners`] is the map an owner kind lives in. Every mutable access (`get_mut`, `insert`,
//!   `remove`, `iter_mut`) notes the key as touched, so the endpoint re-registers exactly the
//!   owners that a `handle_*` could have changed, without each call site remembering to.

use std::borrow::Borrow;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::time::Instant;

use super::super::transaction::TransactionKey;

/// Which owner a deadline belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TimerKey {
    /// An INVITE server transaction.
    Invite(TransactionKey),
    /// A non-INVITE server transaction.
    Other(TransactionKey),
    /// One of our in-dialog requests (BYE, INFO, REFER, UPDATE...).
    Outgoing(TransactionKey),
    /// One of our session-refreshing re-INVITEs.
    Refresh(TransactionKey),
    /// An outbound call by Call-ID.
    Outbound(String),
    /// A dialog by Call-ID: its transfer, session-timer and glare-retry deadlines.
    Dialog(String),
    /// A registration by provider id: its REGISTER's timers, refresh and retry.
    Registration(String),
}

/// One heap entry: ordered by deadline, then by the order it was scheduled in.
#[derive(Debug)]
struct Entry<K> {
    at: Instant,
    generation: u64,
    key: K,
}

impl<K> PartialEq for Entry<K> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.generation) == (other.at, other.generation)
    }
}

impl<K> Eq for Entry<K> {}

impl<K> PartialOrd for Entry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Entry<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.generation).cmp(&(other.at, other.generation))
    }
}

/// Deadlines keyed by owner, earliest first: a min-heap with lazy invalidation (see the
/// module doc for why a heap).
#[derive(Debug)]
pub(crate) struct DeadlineQueue<K> {
    heap: BinaryHeap<Reverse<Entry<K>>>,
    /// The live deadline of each key and the generation of its heap entry.
    live: HashMap<K, (Instant, u64)>,
    generation: u64,
}

impl<K> Default for DeadlineQueue<K> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            live: HashMap::new(),
            generation: 0,
        }
    }
}

impl<K: Clone + Eq + Hash> DeadlineQueue<K> {
    /// Sets `key`'s deadline (`None`: it has none). Unchanged deadlines cost a lookup.
    pub(crate) fn schedule(&mut self, key: K, at: Option<Instant>) {
        match at {
            None => {
                if self.live.remove(&key).is_some() {
                    self.settle();
                }
            }
            Some(at) => {
                if self.live.get(&key).is_some_and(|(live, _)| *live == at) {
                    return;
                }
                self.generation += 1;
                self.live.insert(key.clone(), (at, self.generation));
                self.heap.push(Reverse(Entry {
                    at,
                    generation: self.generation,
                    key,
                }));
                self.settle();
            }
        }
    }

    /// The earliest live deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Takes the earliest key whose deadline is at or before `now`; it has no deadline until
    /// it is scheduled again.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<K> {
        if self.next()? > now {
            return None;
        }
        let Reverse(entry) = self.heap.pop()?;
        self.live.remove(&entry.key);
        self.settle();
        Some(entry.key)
    }

    /// Keys with a deadline.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    fn is_live(&self, entry: &Entry<K>) -> bool {
        self.live
            .get(&entry.key)
            .is_some_and(|(_, generation)| *generation == entry.generation)
    }

    /// Drops stale entries from the top, so the top is always live; rebuilds the heap when
    /// stale entries outnumber live ones (deadlines that move without firing, such as
    /// retransmission timers answered early, would otherwise pile up until their old time).
    fn settle(&mut self) {
        if self.heap.len() > 64 && self.heap.len() > 2 * self.live.len() {
            let entries = std::mem::take(&mut self.heap).into_vec();
            self.heap = entries
                .into_iter()
                .filter(|Reverse(e)| self.is_live(e))
                .collect();
        }
        while let Some(Reverse(top)) = self.heap.peek() {
            if self.is_live(top) {
                break;
            }
            self.heap.pop();
        }
    }
}

/// A map of timed owners that notes each key reached mutably until [`Owners::pop_touched`]
/// takes it: those are the owners whose deadline may have moved.
#[derive(Debug)]
pub(crate) struct Owners<K, V> {
    map: HashMap<K, V>,
    touched: Vec<K>,
}

impl<K, V> Default for Owners<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            touched: Vec::new(),
        }
    }
}

impl<K: Clone + Eq + Hash, V> Owners<K, V> {
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key)
    }

    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key)
    }

    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (owned, _) = self.map.get_key_value(key)?;
        self.touched.push(owned.clone());
        self.map.get_mut(key)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.touched.push(key.clone());
        self.map.insert(key, value)
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (key, value) = self.map.remove_entry(key)?;
        self.touched.push(key);
        Some(value)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    /// Every owner, mutably: all are noted as touched.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.touched.extend(self.map.keys().cloned());
        self.map.iter_mut()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.map.keys()
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values()
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// One key reached mutably and not yet taken (possibly repeated, possibly removed since);
    /// the list keeps its capacity, so settling allocates nothing.
    pub(crate) fn pop_touched(&mut self) -> Option<K> {
        self.touched.pop()
    }

    pub(crate) fn has_touched(&self) -> bool {
        !self.touched.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn keys_come_out_in_deadline_order() {
        let t0 = Instant::now();
        let mut q = DeadlineQueue::default();
        for (key, ms) in [("c", 300), ("a", 100), ("d", 400), ("b", 200)] {
            q.schedule(key, Some(t0 + Duration::from_millis(ms)));
        }
        assert_eq!(q.next(), Some(t0 + Duration::from_millis(100)));
        let fired: Vec<_> = std::iter::from_fn(|| q.pop_due(t0 + Duration::from_secs(1))).collect();
        assert_eq!(fired, ["a", "b", "c", "d"]);
        assert_eq!(q.next(), None);
    }

    #[test]
    fn nothing_fires_before_its_deadline() {
        let t0 = Instant::now();
        let mut q = DeadlineQueue::default();
        q.schedule("a", Some(t0 + Duration::from_millis(100)));
        assert_eq!(q.pop_due(t0 + Duration::from_millis(99)), None);
        assert_eq!(q.pop_due(t0 + Duration::from_millis(100)), Some("a"));
    }

    #[test]
    fn a_moved_deadline_fires_once_at_its_new_time() {
        let t0 = Instant::now();
        let mut q = DeadlineQueue::default();
        q.schedule("a", Some(t0 + Duration::from_millis(100)));
        q.schedule("a", Some(t0 + Duration::from_millis(500)));
        assert_eq!(
            q.next(),
            Some(t0 + Duration::from_millis(500)),
            "stale top dropped"
        );
        assert_eq!(q.pop_due(t0 + Duration::from_millis(200)), None);
        assert_eq!(q.pop_due(t0 + Duration::from_secs(1)), Some("a"));
        assert_eq!(q.pop_due(t0 + Duration::from_secs(1)), None, "fired once");
    }

    #[test]
    fn a_cleared_deadline_never_fires() {
        let t0 = Instant::now();
        let mut q = DeadlineQueue::default();
        q.schedule("gone", Some(t0 + Duration::from_millis(100)));
        q.schedule("kept", Some(t0 + Duration::from_millis(200)));
        q.schedule("gone", None);
        assert_eq!(q.next(), Some(t0 + Duration::from_millis(200)));
        let fired: Vec<_> = std::iter::from_fn(|| q.pop_due(t0 + Duration::from_secs(1))).collect();
        assert_eq!(fired, ["kept"]);
    }

    #[test]
    fn stale_entries_are_compacted_away() {
        let t0 = Instant::now();
        let mut q = DeadlineQueue::default();
        for ms in 0..10_000u64 {
            q.schedule(
                "moving",
                Some(t0 + Duration::from_secs(3600) - Duration::from_millis(ms)),
            );
        }
        assert_eq!(q.len(), 1);
        assert!(q.heap.len() <= 130, "heap holds {} entries", q.heap.len());
        assert_eq!(
            q.next(),
            Some(t0 + Duration::from_secs(3600) - Duration::from_millis(9_999))
        );
    }

    #[test]
    fn owners_note_every_mutable_access() {
        let mut owners: Owners<String, u32> = Owners::default();
        owners.insert("a".into(), 1);
        owners.insert("b".into(), 2);
        let touched: Vec<_> = std::iter::from_fn(|| owners.pop_touched()).collect();
        assert_eq!(touched, ["b", "a"]);
        let _ = owners.get("a");
        assert!(!owners.has_touched(), "a shared look-up changes nothing");
        if let Some(v) = owners.get_mut("b") {
            *v = 3;
        }
        let _ = owners.get_mut("missing");
        owners.remove("a");
        let touched: Vec<_> = std::iter::from_fn(|| owners.pop_touched()).collect();
        assert_eq!(touched, ["a", "b"]);
    }
}
