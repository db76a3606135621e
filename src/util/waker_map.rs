//! Keyed wakers with owned registrations: the slow-path timers (keyed by deadline) and the
//! wakers of `park` futures polled under a foreign waker (keyed by task).
//!
//! Entries sit in an ordered map keyed by `(group, seq)` behind a mutex, so registering,
//! refreshing a waker, cancelling and waking a group are O(log n). A registration is owned
//! by the future that made it ([`WakerEntry`]): dropping the future removes the entry and
//! drops its waker at once, so memory is bounded by the live registrations. `first` caches
//! the smallest group so a sched step with no due timer takes no lock (`SeqCst`: the
//! sched-role reads it after publishing that it is about to block; a registrant writes it
//! before kicking the sched-role).
//!
//! Wakers are woken, and foreign wakers dropped, outside the lock and contained (see
//! `contain`): they are user code.

use crate::sync::lock;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::Waker;

/// Wakers taken out per lock acquisition.
const WAKE_BATCH: usize = 64;

/// A map of keyed wakers. See the module docs.
pub(crate) struct WakerMap {
    entries: Mutex<Entries>,
    /// The smallest group in `entries` (`u64::MAX`: empty); written under the lock.
    first: AtomicU64,
}

#[derive(Default)]
struct Entries {
    map: BTreeMap<(u64, u64), Waker>,
    /// Insertion counter: within a group, entries wake in registration order.
    seq: u64,
}

impl Entries {
    fn first_group(&self) -> u64 {
        self.map.keys().next().map_or(u64::MAX, |k| k.0)
    }
}

/// One registration in a [`WakerMap`], owned by the future that made it. Dropping it
/// removes the entry (if it was not woken yet) and releases its waker.
pub(crate) struct WakerEntry {
    map: Arc<WakerMap>,
    key: (u64, u64),
}

impl WakerMap {
    pub(crate) fn new() -> WakerMap {
        WakerMap { entries: Mutex::new(Entries::default()), first: AtomicU64::new(u64::MAX) }
    }

    /// Registers `waker` under `group`.
    pub(crate) fn insert(self: &Arc<Self>, group: u64, waker: Waker) -> WakerEntry {
        let mut e = lock(&self.entries);
        e.seq += 1;
        let key = (group, e.seq);
        e.map.insert(key, waker);
        if group < self.first.load(SeqCst) {
            self.first.store(group, SeqCst);
        }
        WakerEntry { map: self.clone(), key }
    }

    /// The smallest group registered, if any.
    pub(crate) fn first_group(&self) -> Option<u64> {
        let first = self.first.load(SeqCst);
        (first != u64::MAX).then_some(first)
    }

    /// Wakes (and removes) every entry whose group is `<= max`; returns how many.
    pub(crate) fn wake_up_to(&self, max: u64) -> usize {
        if self.first.load(SeqCst) > max {
            return 0;
        }
        self.wake_range((0, 0)..=(max, u64::MAX))
    }

    /// Wakes (and removes) every entry of `group`; returns how many.
    pub(crate) fn wake_group(&self, group: u64) -> usize {
        self.wake_range((group, 0)..=(group, u64::MAX))
    }

    fn wake_range(&self, range: RangeInclusive<(u64, u64)>) -> usize {
        let mut woken = 0;
        loop {
            let mut batch: Vec<Waker> = Vec::new();
            let more = {
                let mut e = lock(&self.entries);
                let keys: Vec<(u64, u64)> =
                    e.map.range(range.clone()).take(WAKE_BATCH).map(|(k, _)| *k).collect();
                for k in &keys {
                    batch.extend(e.map.remove(k));
                }
                self.first.store(e.first_group(), SeqCst);
                keys.len() == WAKE_BATCH
            };
            woken += batch.len();
            for waker in batch {
                crate::contain::contain("waking a timer or park waiter", || waker.wake());
            }
            if !more {
                return woken;
            }
        }
    }

    /// Entries registered now.
    pub(crate) fn len(&self) -> usize {
        lock(&self.entries).map.len()
    }
}

/// Keeps `slot` registered under `group` for `waker`: refreshes the entry there (cheap when
/// the waker did not change), or makes a new one with `register`.
pub(crate) fn keep_registered(
    slot: &mut Option<WakerEntry>,
    group: u64,
    waker: &Waker,
    register: impl FnOnce(Waker) -> WakerEntry,
) {
    if let Some(entry) = slot {
        if entry.group() == group && entry.refresh(waker) {
            return;
        }
    }
    *slot = Some(register(waker.clone()));
}

impl WakerEntry {
    /// The group this entry was registered under.
    pub(crate) fn group(&self) -> u64 {
        self.key.0
    }

    /// Makes the entry wake `waker` (if it changed). False if it was woken already.
    pub(crate) fn refresh(&self, waker: &Waker) -> bool {
        let old = {
            let mut e = lock(&self.map.entries);
            match e.map.get_mut(&self.key) {
                None => return false,
                Some(w) if w.will_wake(waker) => return true,
                Some(w) => std::mem::replace(w, waker.clone()),
            }
        };
        crate::contain::contain("dropping a replaced waker", || drop(old));
        true
    }
}

impl Drop for WakerEntry {
    fn drop(&mut self) {
        let waker = {
            let mut e = lock(&self.map.entries);
            let waker = e.map.remove(&self.key);
            if waker.is_some() && self.key.0 == self.map.first.load(SeqCst) {
                self.map.first.store(e.first_group(), SeqCst);
            }
            waker
        };
        if let Some(waker) = waker {
            crate::contain::contain("dropping a cancelled waiter's waker", || drop(waker));
        }
    }
}

#[cfg(all(test, not(iocore_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn wakes_due_groups_and_dropped_entries_release_their_waker() {
        let map = Arc::new(WakerMap::new());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let entries: Vec<_> = (0..200u64).map(|i| map.insert(i % 10, waker.clone())).collect();
        assert_eq!(map.first_group(), Some(0));
        let (_kept, dropped): (Vec<_>, Vec<_>) = entries.into_iter().partition(|e| e.group() < 5);
        drop(dropped);
        // The entries of groups 5..10 were dropped: their wakers are gone.
        assert_eq!(map.len(), 100);
        assert_eq!(Arc::strong_count(&count), 2 + 100);
        assert_eq!(map.wake_up_to(2), 60);
        assert_eq!(map.first_group(), Some(3));
        assert_eq!(map.wake_group(4), 20);
        assert_eq!(map.first_group(), Some(3));
        assert_eq!(count.0.load(SeqCst), 80);
        assert_eq!(map.wake_up_to(u64::MAX - 1), 20);
        assert_eq!(map.first_group(), None);
        assert_eq!(Arc::strong_count(&count), 2);
    }
}
