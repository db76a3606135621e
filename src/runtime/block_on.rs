//! `IoCore::block_on`: runs a future on the calling thread, as a fair citizen of the core.
//!
//! The future is polled with a task's cooperative budget. When a poll spends it (128
//! socket operations, accepts included: see `net::accept`), the caller takes its next
//! turn only after a marker task, queued behind everything the core has ready, has run.
//! So an accept loop in `block_on` (the usual `main`) gets one turn per round of the ready
//! queue, like a spawned task, instead of racing the workers from an extra thread.

use crate::io::{reset_budget, turn_ended, BUDGET};
use crate::runtime::Handle;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

/// Wakes the blocked thread.
struct Unpark {
    thread: Thread,
    notified: AtomicBool,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.notified.swap(true, Release) {
            self.thread.unpark();
        }
    }
}

impl Unpark {
    /// Parks until woken (a wake that came first returns at once).
    fn wait(&self) {
        while !self.notified.swap(false, Acquire) {
            thread::park();
        }
    }
}

/// Polls `future` to completion on this thread (the caller has entered `core`).
pub(crate) fn block_on<F: Future>(core: &Handle, future: F) -> F::Output {
    let mut future = pin!(future);
    let unpark = Arc::new(Unpark { thread: thread::current(), notified: AtomicBool::new(false) });
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        reset_budget(Some(BUDGET));
        let polled = future.as_mut().poll(&mut cx);
        let spent = turn_ended();
        reset_budget(None);
        if let Poll::Ready(out) = polled {
            return out;
        }
        if spent {
            // Our turn is over: wait until the core has run what was ready before us.
            // (A core that is shutting down refuses the marker: it is finished at once.)
            let mut marker = pin!(core.spawn(async {}));
            let marker_unpark =
                Arc::new(Unpark { thread: thread::current(), notified: AtomicBool::new(false) });
            let marker_waker = Waker::from(marker_unpark.clone());
            while marker.as_mut().poll(&mut Context::from_waker(&marker_waker)).is_pending() {
                marker_unpark.wait();
            }
        }
        unpark.wait();
    }
}
