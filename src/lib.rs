//! # iocore
//!
//! A fair multi-threaded async runtime for network servers and clients.
//!
//! - Tasks are ordinary futures, polled by equal worker threads that share one FIFO ready
//!   queue: no task is pinned to a thread, so load stays even and nothing starves.
//! - The scheduling work (draining wakeups, kernel events and deadlines) is a *role* that
//!   migrates to whichever worker is free ([`sched`](crate#architecture)).
//! - Tasks carry a deadline: [`time::sleep`], [`time::timeout`] and [`time::interval`]
//!   allocate nothing inside a task and are sub-millisecond precise.
//! - Tasks can be woken or signalled from any thread through a [`TaskRef`], and wait for
//!   that with [`task::park`].
//! - TCP ([`net`]) with async send/recv, and [`net::PostSender`]: any thread queues bytes
//!   on a socket without awaiting; the core writes them in order with `writev`.
//! - Everything works with the `futures` ecosystem, and iocore futures work under other
//!   executors. Cargo features: `tokio` (tokio's IO traits on streams, for tokio-util and
//!   hyper) and `tracing` (events for spawn, poll, wake, park, socket open/close).
//!
//! ```
//! use iocore::{time, IoCore};
//! use std::time::Duration;
//!
//! let core = IoCore::builder().threads(2).build()?;
//! let handles: Vec<_> = (0..10u64)
//!     .map(|i| core.spawn(async move {
//!         time::sleep(Duration::from_millis(i)).await;
//!         i * i
//!     }))
//!     .collect();
//! let sum: u64 = core.block_on(async {
//!     let mut sum = 0;
//!     for h in handles {
//!         sum += h.await.unwrap();
//!     }
//!     sum
//! });
//! assert_eq!(sum, 285);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Architecture
//!
//! `core` (the public [`IoCore`], [`Handle`]) owns worker threads running the loop in
//! `sched` (front queue, deadline heap, ready queues, idle workers, live-task table);
//! `task` holds the task block and its one-word state machine; `time` turns deadlines into
//! task state; `io` registers sockets with the kernel queue and tracks readiness; `net`
//! builds TCP and `post_send` on it. The module docs of each say what they own and why.

#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod contain;
#[macro_use]
mod trace;
mod io;
pub mod net;
mod runtime;
mod sched;
mod sync;
mod sys;
pub mod task;
pub mod time;
mod util;

pub use runtime::{Builder, Handle, IoCore, ShutdownReport};
pub use sched::Metrics;
pub use task::{JoinError, JoinHandle, TaskRef};

/// Spawns a task on the current core (see [`Handle::spawn`]).
///
/// # Panics
/// Outside any core (see [`Handle::current`]).
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    Handle::current().spawn(future)
}
