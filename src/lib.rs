//! # iocore
//!
//! A fair multi-threaded async runtime for network servers and clients.
//!
//! - Tasks are ordinary futures, polled by equal worker threads that share one global FIFO
//!   ready queue (each worker takes a batch of it at a time; idle workers steal batches):
//!   no task is pinned to a thread, so load stays even and nothing starves.
//! - The scheduling work (draining wakeups, kernel events and deadlines) is a *role* that
//!   migrates to whichever worker is free ([module map](crate#module-map)).
//! - Tasks carry a deadline: [`time::sleep`], [`time::timeout`] and [`time::interval`]
//!   allocate nothing inside a task and are sub-millisecond precise.
//! - Tasks can be woken or signalled from any thread through a [`TaskRef`], and wait for
//!   that with [`task::park`].
//! - TCP ([`net`]) with async send/recv, and [`net::PostSender`]: any thread queues bytes
//!   on a socket without awaiting; the core writes them in order, in gathered writes.
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
//! ## Fairness
//!
//! - Between tasks: the ready queue is FIFO, and a task that was woken, or that yielded
//!   ([`task::yield_now`]), goes to its tail.
//! - Inside a poll: socket operations spend a cooperative budget (128 per poll); once it
//!   is spent, the task's next operation returns `Pending` and the task goes to the tail.
//! - In CPU time: a task whose poll computed for more than 500 µs of CPU (beyond 50 µs per
//!   socket operation and 1 µs per KiB its stream transfers moved) is *heavy* until one of
//!   its polls is short. While the workers are busy (other tasks ready, or a quarter of the
//!   last 10 ms or more spent in other polls), a heavy task that is ready runs on the
//!   core's *heavy lane*: as many threads as workers, in the kernel's idle class
//!   (`SCHED_IDLE`; nice 19 with a 100 µs time slice where that is refused). So it gets
//!   the CPU time nothing else wants, all of it when the workers are idle, and a worker
//!   that wakes takes its CPU back at once instead of waiting for the poll to end. When
//!   the workers have time to spare, a heavy task runs on a worker as any other (on the
//!   lane, threads of other processes could starve it). When the lane has taken no task
//!   for 16 times the last heavy poll's CPU time (every CPU busy), the task at its front
//!   is *boosted*: a worker runs its next poll. So with every CPU busy the heavy tasks
//!   together still get about a seventeenth of a worker, in turn, but never more, however
//!   many they are. An aborted task leaves the lane at once. The CPU time is read with the
//!   thread's CPU clock, for the polls of a task that recently had a poll long on the wall
//!   clock: a poll that merely lasted (preempted by the kernel, or blocked in a system
//!   call) does not count, and a task's first heavy poll is not known as such.
//!   [`Metrics::heavy_polls`] counts the heavy polls, [`Metrics::lane_polls`] the polls on
//!   the lane. (Futures run by [`IoCore::block_on`] are not tasks, and never heavy.) To
//!   compute at full priority, use [`spawn_blocking`].
//! - Between the queue and the world: a worker looks at the kernel queue and the
//!   deadlines at least every 500 µs of polling, so tasks that yield or compute cannot
//!   hold back IO or timers by more than one poll.
//!
//! ## Module map
//!
//! Dependencies point one way, from the public API down to generic containers (checked:
//! no module imports one that imports it back):
//!
//! ```text
//! net      → runtime, time, task, io
//! time     → runtime, task            (time::clock is a leaf everyone may use)
//! runtime  → sched, task, io
//! sched    → task, io, util
//! task     → util
//! io, util → only the leaves (contain, sync, sys, trace, time::clock)
//! ```
//!
//! | module | owns |
//! |---|---|
//! | `runtime` | [`IoCore`], [`Builder`], [`Handle`], shutdown, the default core for foreign executors; `runtime::context`: which core this thread works for |
//! | `sched` | the `Scheduler`: ready queues, the front queue, the worker loop (`worker`), the sched-role's step (`role`), sleeping workers (`idle`), heavy tasks (`heavy`) and the heavy lane they run on (`lane`), the live-task table (`slots`), [`Metrics`] (`counters`) |
//! | `task` | the task block and its one-word state machine (`raw`, `state`), [`JoinHandle`], [`TaskRef`], [`task::park`], [`task::yield_now`]; it reaches its scheduler through a small `Schedule` trait and never names it |
//! | `time` | [`time::sleep`], [`time::timeout`], [`time::interval`]; `clock` (the `Deadline` type) |
//! | `io` | the kernel event queue (`driver`: epoll, timerfd, dispatch), socket readiness and its waiter lists, registration, the cooperative budget; it knows `Waker`s, not tasks |
//! | `net` | TCP: the socket core and its `post_send` flusher (`socket`), [`net::TcpStream`], the halves, [`net::TcpListener`], the post queue and [`net::PostSender`] |
//! | `util` | generic containers: the lock-free `Inbox`, the `SlotHeap`, the `WakerMap` |
//! | `contain`, `sync`, `sys`, `trace` | panic containment for user code, the loom shim, the Linux timerfd, tracing macros |
//!
//! Each module's docs say what it owns, its invariants, and whom it talks to.
//!
//! Why the thread-local context is split three ways rather than kept in one module: the
//! current *task* (set around each poll) belongs to `task`, which must not know the
//! scheduler; the current *core* (which `Handle::current`, sockets and timers use) belongs
//! to `runtime`, which sits on top; the cooperative *budget* belongs to `io`, the only
//! place that spends it. Each lives with the one module that owns its meaning, so no
//! lower module has to import a higher one to reach it.

#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod contain;
#[macro_use]
mod trace;
mod io;
pub mod net;
mod runtime;
mod sched;
pub mod signal;
mod sync;
mod sys;
pub mod task;
pub mod time;
mod util;

pub use runtime::{Builder, EnterGuard, Handle, IoCore, ShutdownReport};
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

/// Spawns a task on the current core that starts asleep until `deadline` (see
/// [`Handle::spawn_at`]).
///
/// # Panics
/// Outside any core (see [`Handle::current`]).
pub fn spawn_at<F>(deadline: std::time::Instant, future: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    Handle::current().spawn_at(deadline, future)
}

/// Spawns a task on the current core that starts asleep for `delay` (see
/// [`Handle::spawn_after`]).
///
/// # Panics
/// Outside any core (see [`Handle::current`]).
pub fn spawn_after<F>(delay: std::time::Duration, future: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    Handle::current().spawn_after(delay, future)
}

/// Runs a blocking closure on the current core's blocking pool (see
/// [`Handle::spawn_blocking`]); outside any core, on the process-wide default core's.
///
/// # Panics
/// Outside any core, when the default core cannot start (the process is out of file
/// descriptors). [`Handle::spawn_blocking`] on a core of your own never needs it.
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    match runtime::current_or_default() {
        Ok(core) => core.spawn_blocking(f),
        Err(e) => panic!("iocore::spawn_blocking outside any core: {e}"),
    }
}
