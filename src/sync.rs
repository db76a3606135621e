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
