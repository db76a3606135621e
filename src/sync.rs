//! Atomics used by the lock-free state machines, swapped for `loom`'s under `--cfg loom`.
//!
//! Only the pieces that have loom models (the task state word and the front queue) go
//! through this shim; everything else uses `std` directly.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
