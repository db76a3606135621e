//! Atomics used by the lock-free state machines, swapped for `loom`'s under `--cfg loom`.
//!
//! Only the pieces that have loom models (the task state word, the front queue, the idle
//! workers' sleep/wake protocol, the `post_send` writer role) go through this shim;
//! everything else uses `std` directly.

#[cfg(loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicPtr, AtomicU32, AtomicUsize, Ordering},
    Condvar, Mutex, MutexGuard,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicPtr, AtomicU32, AtomicUsize, Ordering},
    Condvar, Mutex, MutexGuard,
};
