//! Containment of panics in user code that the runtime calls outside a task's poll.
//!
//! A task's poll is already guarded (its panic becomes the `JoinError`). But the runtime
//! also runs user code on its own threads at other moments: it wakes foreign wakers (a
//! `JoinHandle` awaited by another executor, a socket or timer polled under a foreign
//! waker), and drops a finished task's output or a cancelled task's future. A panic there
//! must not unwind through a worker loop (the thread would die), through the sched-role
//! (its lock would be poisoned and the rest of a batch of edge-triggered events lost), or
//! through a lock holder. [`contain`] catches it, counts it in a core's
//! `Metrics::contained_panics` (the core whose task or socket is being dropped or woken,
//! as [`counting_in`] names it; else the core the thread works for, as its runtime
//! context set with [`set_counter`]), and emits a `tracing` event under that feature.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

thread_local! {
    /// The core this thread works for (its worker, or a `block_on`/`enter` on it), set by
    /// the runtime context.
    static CORE: RefCell<Option<Arc<AtomicU64>>> = const { RefCell::new(None) };
    /// The core whose task or socket the runtime is dropping or waking right now
    /// ([`counting_in`]): it takes precedence over [`CORE`]. A pointer to the caller's
    /// counter, set only for the length of that call (no reference count is touched: a
    /// task's completion passes here).
    static ON_BEHALF: Cell<*const Arc<AtomicU64>> = const { Cell::new(std::ptr::null()) };
}

/// Makes this thread count contained panics in `counter` (the core it now works for).
pub(crate) fn set_counter(counter: Option<Arc<AtomicU64>>) {
    let _ = CORE.try_with(|c| c.replace(counter));
}

/// Runs `f` with the panics it contains counted in `counter`: the counter of the core on
/// whose behalf the runtime runs user code, whatever the thread (a `JoinHandle` dropped on
/// a plain thread drops its task's output there). Nested calls count in the innermost.
pub(crate) fn counting_in<R>(counter: &Arc<AtomicU64>, f: impl FnOnce() -> R) -> R {
    // The pointer is valid while it is set: `counter` is borrowed for this whole call, and
    // `on_behalf` puts the previous one back before the call returns (or unwinds).
    on_behalf(counter, f)
}

/// [`counting_in`] with an optional counter (`None`: as if no call were under way).
pub(crate) fn counting_in_opt<R>(counter: Option<Arc<AtomicU64>>, f: impl FnOnce() -> R) -> R {
    on_behalf(counter.as_ref().map_or(std::ptr::null(), |c| c as *const _), f)
}

/// Runs `f` with [`ON_BEHALF`] set to `counter` (null: none), then puts the previous one
/// back, even on unwind. The caller keeps a non-null `counter` alive for the call.
fn on_behalf<R>(counter: *const Arc<AtomicU64>, f: impl FnOnce() -> R) -> R {
    /// Puts the previous counter back.
    struct Restore(Option<*const Arc<AtomicU64>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(previous) = self.0 {
                let _ = ON_BEHALF.try_with(|c| c.set(previous));
            }
        }
    }
    let _restore = Restore(ON_BEHALF.try_with(|c| c.replace(counter)).ok());
    f()
}

/// The counter of the [`counting_in`] under way on this thread (for work it defers).
pub(crate) fn on_behalf_of() -> Option<Arc<AtomicU64>> {
    // SAFETY: a non-null pointer points to the `Arc` a `counting_in` under way borrows.
    ON_BEHALF.try_with(|c| unsafe { c.get().as_ref() }.cloned()).ok().flatten()
}

/// Runs `f`; a panic inside is caught and counted. `what` names the call, for the
/// tracing event. Returns false if `f` panicked.
pub(crate) fn contain(what: &'static str, f: impl FnOnce()) -> bool {
    // `AssertUnwindSafe`: every caller leaves its own structures consistent before calling
    // user code (wakers are taken out of lists, outputs out of task cells).
    if catch_unwind(AssertUnwindSafe(f)).is_ok() {
        return true;
    }
    // SAFETY: as in `on_behalf_of`.
    let on_behalf = ON_BEHALF.try_with(|c| unsafe { c.get().as_ref() }.map(|n| n.fetch_add(1, Relaxed)));
    if !matches!(on_behalf, Ok(Some(_))) {
        let _ = CORE.try_with(|c| c.borrow().as_ref().map(|n| n.fetch_add(1, Relaxed)));
    }
    #[cfg(feature = "tracing")]
    tracing::error!(what, "iocore contained a panic in user code");
    #[cfg(not(feature = "tracing"))]
    let _ = what;
    false
}
