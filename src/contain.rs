//! Containment of panics in user code that the runtime calls outside a task's poll.
//!
//! A task's poll is already guarded (its panic becomes the `JoinError`). But the runtime
//! also runs user code on its own threads at other moments: it wakes foreign wakers (a
//! `JoinHandle` awaited by another executor, a socket or timer polled under a foreign
//! waker), and drops a finished task's output or a cancelled task's future. A panic there
//! must not unwind through a worker loop (the thread would die), through the sched-role
//! (its lock would be poisoned and the rest of a batch of edge-triggered events lost), or
//! through a lock holder. [`contain`] catches it, counts it in the current core's
//! `Metrics::contained_panics` (the counter the thread's runtime context installed with
//! [`set_counter`], or, on a thread that works for no core, the one [`counting_in`] names:
//! the core the dropped or woken thing belongs to), and emits a `tracing` event under
//! that feature.

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

thread_local! {
    /// Where this thread counts contained panics: its core's counter, if it works for one.
    static COUNTER: RefCell<Option<Arc<AtomicU64>>> = const { RefCell::new(None) };
}

/// Makes this thread count contained panics in `counter`; returns the previous counter.
pub(crate) fn set_counter(counter: Option<Arc<AtomicU64>>) -> Option<Arc<AtomicU64>> {
    COUNTER.with(|c| c.replace(counter))
}

/// Runs `f` with the panics it contains counted in `counter` (a core's), unless this
/// thread already counts for a core: for runtime code that runs on behalf of a core on any
/// thread (a `JoinHandle` dropped on a plain thread drops its task's output there).
pub(crate) fn counting_in<R>(counter: &Arc<AtomicU64>, f: impl FnOnce() -> R) -> R {
    /// Uninstalls the counter `counting_in` installed, even on unwind.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            if self.0 {
                let _ = COUNTER.try_with(|c| c.replace(None));
            }
        }
    }
    let installed = COUNTER
        .try_with(|c| {
            let mut c = c.borrow_mut();
            c.is_none() && c.replace(counter.clone()).is_none()
        })
        .unwrap_or(false);
    let _restore = Restore(installed);
    f()
}

/// Runs `f`; a panic inside is caught and counted. `what` names the call, for the
/// tracing event. Returns false if `f` panicked.
pub(crate) fn contain(what: &'static str, f: impl FnOnce()) -> bool {
    // `AssertUnwindSafe`: every caller leaves its own structures consistent before calling
    // user code (wakers are taken out of lists, outputs out of task cells).
    if catch_unwind(AssertUnwindSafe(f)).is_ok() {
        return true;
    }
    let _ = COUNTER.try_with(|c| {
        if let Some(counter) = &*c.borrow() {
            counter.fetch_add(1, Relaxed);
        }
    });
    #[cfg(feature = "tracing")]
    tracing::error!(what, "iocore contained a panic in user code");
    #[cfg(not(feature = "tracing"))]
    let _ = what;
    false
}
