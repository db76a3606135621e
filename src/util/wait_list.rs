//! Wakers waiting for a condition (a queue below its mark, a queue drained, a signal
//! delivered), woken all at once when it changes.
//!
//! A waiter registers, then re-checks the condition; a changer changes the condition, then
//! wakes the list. `armed` lets a list nobody waits on cost its changer one atomic load:
//! it is published (`SeqCst`) before the waiter's re-check and read (`SeqCst`) after the
//! change, so one of the two sees the other. Registrations are deduplicated by
//! `Waker::will_wake`; a waiter that goes away leaves its waker until the next wake.
//! (Socket directions, where waiters come and go constantly, use the intrusive
//! `io::waiters` list instead, which removes on drop.)

use crate::sync::lock;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Mutex;
use std::task::{Poll, Waker};

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct WaitList {
    armed: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl WaitList {
    pub(crate) const fn new() -> WaitList {
        WaitList { armed: AtomicBool::new(false), wakers: Mutex::new(Vec::new()) }
    }

    /// Ready if `ready` holds; else registers `waker`, and re-checks `ready` after that.
    pub(crate) fn poll_until(&self, waker: &Waker, mut ready: impl FnMut() -> bool) -> Poll<()> {
        if ready() {
            return Poll::Ready(());
        }
        {
            let mut list = lock(&self.wakers);
            if !list.iter().any(|w| w.will_wake(waker)) {
                list.push(waker.clone());
            }
            self.armed.store(true, SeqCst);
        }
        if ready() {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Wakes every registered waker; call after changing the condition (`SeqCst`).
    pub(crate) fn wake_all(&self) {
        if !self.armed.load(SeqCst) {
            return;
        }
        let list = {
            let mut list = lock(&self.wakers);
            self.armed.store(false, SeqCst);
            std::mem::take(&mut *list)
        };
        for w in list {
            crate::contain::contain("waking a waiter of a condition", || w.wake());
        }
    }
}
