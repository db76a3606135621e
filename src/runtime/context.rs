//! The runtime's thread-local context: which core this thread works for — as one of its
//! workers, or as a caller of its `block_on` — so that `Handle::current`, `iocore::spawn`,
//! and sockets and timers created here find their core.
//!
//! Entering a core also makes the thread count contained panics in that core's metrics
//! (see `contain`).

use crate::sched::Scheduler;
use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    /// The core this thread works for, and whether as one of its workers.
    static CURRENT: RefCell<Option<(Arc<Scheduler>, bool)>> = const { RefCell::new(None) };
}

/// The core of this thread, if any.
pub(crate) fn current() -> Option<Arc<Scheduler>> {
    CURRENT.with(|c| c.borrow().as_ref().map(|(s, _)| s.clone()))
}

/// Whether this thread is a worker of `sched` (`None`: of any core).
pub(crate) fn is_worker_of(sched: Option<&Arc<Scheduler>>) -> bool {
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|(s, worker)| *worker && sched.is_none_or(|want| Arc::ptr_eq(s, want)))
    })
}

/// Restores the previous context on drop.
pub(crate) struct EnterGuard {
    prev: Option<(Arc<Scheduler>, bool)>,
    prev_counter: Option<Arc<std::sync::atomic::AtomicU64>>,
}

/// Makes `sched` this thread's core until the guard drops (`worker`: as one of its
/// worker threads).
pub(crate) fn enter(sched: Arc<Scheduler>, worker: bool) -> EnterGuard {
    let prev_counter = crate::contain::set_counter(Some(sched.counters.contained_panics.clone()));
    let prev = CURRENT.with(|c| c.borrow_mut().replace((sched, worker)));
    EnterGuard { prev, prev_counter }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
        crate::contain::set_counter(self.prev_counter.take());
    }
}
