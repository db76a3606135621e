//! The runtime's thread-local context: which core this thread works for — as one of its
//! workers, or as a caller of its `block_on` — so that `Handle::current`, `iocore::spawn`,
//! and sockets and timers created here find their core.
//!
//! Entering a core pushes it on the thread's stack of entered cores; its guard removes
//! exactly that entry, wherever it is by then, so guards dropped out of order leave the
//! most recent core still entered current (and none once all are gone). Entering a core
//! also makes the thread count contained panics in that core's metrics (see `contain`).

use crate::sched::Scheduler;
use std::cell::{Cell, RefCell};
use std::sync::Arc;

/// One entered core: which, whether as one of its workers, and the entry's id.
struct Entered {
    sched: Arc<Scheduler>,
    worker: bool,
    id: u64,
}

thread_local! {
    /// The cores this thread entered, the current one last.
    static ENTERED: RefCell<Vec<Entered>> = const { RefCell::new(Vec::new()) };
    /// The id of the next entry.
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
}

/// The core of this thread, if any.
pub(crate) fn current() -> Option<Arc<Scheduler>> {
    ENTERED.with(|e| e.borrow().last().map(|c| c.sched.clone()))
}

/// Whether this thread is a worker of `sched` (`None`: of any core).
pub(crate) fn is_worker_of(sched: Option<&Arc<Scheduler>>) -> bool {
    ENTERED.with(|e| {
        e.borrow().last().is_some_and(|c| c.worker && sched.is_none_or(|want| Arc::ptr_eq(&c.sched, want)))
    })
}

/// Removes its entry on drop.
pub(crate) struct EnterGuard {
    id: u64,
}

/// Makes `sched` this thread's core until the guard drops (`worker`: as one of its
/// worker threads).
pub(crate) fn enter(sched: Arc<Scheduler>, worker: bool) -> EnterGuard {
    let id = NEXT_ID.with(|n| n.replace(n.get() + 1));
    crate::contain::set_counter(Some(sched.counters.contained_panics.clone()));
    ENTERED.with(|e| e.borrow_mut().push(Entered { sched, worker, id }));
    EnterGuard { id }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        // Taken out before anything is dropped: a core's drop may run code that looks at
        // the context.
        let (gone, counter) = ENTERED.with(|e| {
            let mut e = e.borrow_mut();
            let gone = e.iter().rposition(|c| c.id == self.id).map(|i| e.remove(i));
            (gone, e.last().map(|c| c.sched.counters.contained_panics.clone()))
        });
        crate::contain::set_counter(counter);
        drop(gone);
    }
}
