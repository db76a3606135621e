//! Atomics used by the lock-free state machines, swapped for `loom`'s under `--cfg iocore_loom`.
//!
//! Only the pieces that have loom models (the task state word, the front queue, the idle
//! workers' sleep/wake protocol, the `post_send` writer role, the socket waiter lists) go
//! through this shim; everything else uses `std` directly. [`lock`] is the one
//! poison-ignoring lock: a panic contained elsewhere must not wedge a queue.

#[cfg(iocore_loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering},
    Condvar, Mutex, MutexGuard,
};
#[cfg(not(iocore_loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering},
    Condvar, Mutex, MutexGuard,
};

/// Locks `m`, ignoring poison: every structure behind an iocore mutex is left consistent
/// at each point user code could panic, so a poisoned lock carries no broken invariant.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`lock`] for the shim's `Mutex` (loom's under `--cfg iocore_loom`), in modelled structures.
#[cfg(iocore_loom)]
pub(crate) fn lock_modelled<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
#[cfg(not(iocore_loom))]
pub(crate) use lock as lock_modelled;

/// A value set up once, by a set-up that may fail: a failure is not kept, the next call
/// tries again (a process out of file descriptors for a moment must not lose a service
/// for good). `OnceLock::get_or_try_init` without the unstable feature.
pub(crate) struct TryOnce<T> {
    value: std::sync::OnceLock<T>,
    setting_up: std::sync::Mutex<()>,
}

impl<T> TryOnce<T> {
    pub(crate) const fn new() -> TryOnce<T> {
        TryOnce { value: std::sync::OnceLock::new(), setting_up: std::sync::Mutex::new(()) }
    }

    /// The value, set up by `set_up` if no call did yet (one at a time).
    pub(crate) fn get_or_try_init<E>(&self, set_up: impl FnOnce() -> Result<T, E>) -> Result<&T, E> {
        if let Some(v) = self.value.get() {
            return Ok(v);
        }
        let _one_at_a_time = lock(&self.setting_up);
        if let Some(v) = self.value.get() {
            return Ok(v);
        }
        let v = set_up()?;
        Ok(self.value.get_or_init(|| v))
    }
}

#[cfg(all(test, not(iocore_loom)))]
mod tests {
    use super::TryOnce;

    /// A failed set-up is not kept: the next call tries again; a successful one is final.
    #[test]
    fn a_failed_set_up_is_tried_again() {
        let once: TryOnce<u32> = TryOnce::new();
        assert_eq!(once.get_or_try_init(|| Err::<u32, _>("no fds")), Err("no fds"));
        assert_eq!(once.get_or_try_init(|| Ok::<_, &str>(7)), Ok(&7));
        assert_eq!(once.get_or_try_init(|| Ok::<_, &str>(8)), Ok(&7), "set up twice");
    }
}
