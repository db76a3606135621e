//! Wakers waiting for a condition (a queue below its mark, a queue drained, a signal
//! delivered), woken all at once when it changes.
//!
//! A waiter registers, then re-checks the condition; a changer changes the condition, then
//! wakes the list. `armed` lets a list nobody waits on cost its changer one atomic load:
//! it is published (`SeqCst`) before the waiter's re-check and read (`SeqCst`) after the
//! change, so one of the two sees the other.
//!
//! A waiter that can keep state (an `async` wait, a `Signal`) registers under a
//! [`WaitKey`] and removes its entry when it goes away ([`WaitList::forget`]): a wait
//! given up (a `timeout` around it, a `select!` that took another branch) must not keep
//! its task alive until a change that may never come. A poll-based caller with nowhere to
//! keep a key (the `AsyncWrite` methods) registers anonymously, deduplicated by
//! `Waker::will_wake`; such an entry goes at the next wake. (Socket directions, where
//! waiters come and go constantly, use the intrusive `io::waiters` list instead.)

use crate::sync::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Mutex;
use std::task::{Poll, Waker};

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct WaitList {
    armed: AtomicBool,
    wakers: Mutex<Wakers>,
}

#[derive(Debug, Default)]
struct Wakers {
    /// Entries of keyed waiters (keys are never reused).
    keyed: HashMap<u64, Waker>,
    /// Entries of anonymous waiters.
    anonymous: Vec<Waker>,
    /// The last key handed out.
    last_key: u64,
}

/// A waiter's entry in a [`WaitList`] (none yet: the default). Pass it to
/// [`WaitList::forget`] when the wait is given up or done.
#[derive(Debug, Default)]
pub(crate) struct WaitKey(u64);

impl WaitList {
    /// Ready if `ready` holds; else registers `waker` (under `key`, or anonymously), and
    /// re-checks `ready` after that.
    pub(crate) fn poll_until(
        &self,
        key: Option<&mut WaitKey>,
        waker: &Waker,
        mut ready: impl FnMut() -> bool,
    ) -> Poll<()> {
        if ready() {
            return Poll::Ready(());
        }
        {
            let mut w = lock(&self.wakers);
            match key {
                Some(key) => match w.keyed.get_mut(&key.0) {
                    Some(old) if old.will_wake(waker) => {}
                    Some(old) => *old = waker.clone(),
                    // Not registered yet, or woken (the entry went with the wake).
                    None => {
                        w.last_key += 1;
                        key.0 = w.last_key;
                        w.keyed.insert(key.0, waker.clone());
                    }
                },
                None => {
                    if !w.anonymous.iter().any(|old| old.will_wake(waker)) {
                        w.anonymous.push(waker.clone());
                    }
                }
            }
            self.armed.store(true, SeqCst);
        }
        if ready() {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Removes `key`'s entry, if it is still there (a wait that ended or was given up).
    pub(crate) fn forget(&self, key: &mut WaitKey) {
        let k = std::mem::take(&mut key.0);
        if k != 0 && self.armed.load(SeqCst) {
            let gone = lock(&self.wakers).keyed.remove(&k);
            // (Dropped outside the lock: a waker's drop may run arbitrary code.)
            drop(gone);
        }
    }

    /// Wakes every registered waker; call after changing the condition (`SeqCst`).
    pub(crate) fn wake_all(&self) {
        if !self.armed.load(SeqCst) {
            return;
        }
        let (keyed, anonymous) = {
            let mut w = lock(&self.wakers);
            self.armed.store(false, SeqCst);
            (std::mem::take(&mut w.keyed), std::mem::take(&mut w.anonymous))
        };
        for waker in keyed.into_values().chain(anonymous) {
            crate::contain::contain("waking a waiter of a condition", || waker.wake());
        }
    }

    /// Entries registered now (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        let w = lock(&self.wakers);
        w.keyed.len() + w.anonymous.len()
    }
}

#[cfg(all(test, not(iocore_loom)))]
mod tests {
    use super::*;
    use futures::task::noop_waker;

    #[test]
    fn a_forgotten_wait_leaves_no_entry() {
        let list = WaitList::default();
        let waker = noop_waker();
        let mut keys: Vec<WaitKey> = (0..100).map(|_| WaitKey::default()).collect();
        for key in &mut keys {
            assert!(list.poll_until(Some(key), &waker, || false).is_pending());
        }
        assert_eq!(list.len(), 100, "each keyed waiter has its own entry");
        for key in &mut keys {
            list.forget(key);
        }
        assert_eq!(list.len(), 0, "forgotten waits kept their wakers");
    }

    #[test]
    fn a_keyed_waiter_polled_again_keeps_one_entry_and_registers_again_after_a_wake() {
        let list = WaitList::default();
        let waker = noop_waker();
        let mut key = WaitKey::default();
        for _ in 0..10 {
            let _ = list.poll_until(Some(&mut key), &waker, || false);
        }
        assert_eq!(list.len(), 1);
        list.wake_all();
        assert_eq!(list.len(), 0);
        let _ = list.poll_until(Some(&mut key), &waker, || false);
        assert_eq!(list.len(), 1, "a waiter polled after a wake is registered again");
        list.forget(&mut key);
        assert_eq!(list.len(), 0);
    }

    #[test]
    fn anonymous_waiters_are_deduplicated_and_go_at_the_wake() {
        let list = WaitList::default();
        let waker = noop_waker();
        for _ in 0..10 {
            let _ = list.poll_until(None, &waker, || false);
        }
        assert_eq!(list.len(), 1);
        list.wake_all();
        assert_eq!(list.len(), 0);
    }
}
