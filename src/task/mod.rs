//! Tasks: spawning results ([`JoinHandle`]), remote control ([`TaskRef`]) and the
//! task-level primitives [`park`], [`yield_now`] and [`current`].
//!
//! A task is one heap block (header + future) driven by the state machine in `state.rs`.
//! Besides ordinary `Waker`s, a task can be *woken* and *signalled* through a [`TaskRef`]
//! from any thread; [`park`] is how a task waits for those:
//!
//! - **wakeups coalesce and are never lost**: a wakeup that arrives while the task is
//!   running makes its next `park` return [`Wake::Woken`] at once; several wakeups before a
//!   `park` are consumed by that one `park`;
//! - **a signal is sticky** until a `park` consumes it; N signals are consumed by one `park`,
//!   and [`Wake::Signaled`] takes precedence over `Woken` and `Expired` (the `park` that
//!   returns `Signaled` also consumes a pending wakeup);
//! - [`Wake::Expired`] only when the deadline passed with neither.
//!
//! ```
//! use iocore::{task, IoCore};
//! use std::time::{Duration, Instant};
//!
//! let core = IoCore::builder().threads(2).build()?;
//! let worker = core.spawn(async {
//!     // Sleeps until signalled, or for at most a second.
//!     task::park(Some(Instant::now() + Duration::from_secs(1))).await
//! });
//! worker.task().signal();
//! assert_eq!(core.block_on(worker).unwrap(), task::Wake::Signaled);
//! # Ok::<(), std::io::Error>(())
//! ```

mod join;
mod park;
pub(crate) mod raw;
pub(crate) mod state;

pub use join::{JoinError, JoinHandle};
pub(crate) use park::wake_at;
pub use park::{park, yield_now, Park, Wake, YieldNow};
pub(crate) use raw::Header;

use crate::time::clock::Deadline;
use crate::util::waker_map::WakerEntry;
use raw::RawTask;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::Waker;

/// What a task needs from the scheduler it belongs to. A task block stores an `Arc<S>`
/// and reaches it through this trait, so the task module never names the scheduler.
pub(crate) trait Schedule: Send + Sync + 'static {
    /// A waker moved `task` out of `WAITING`: queue it in the ready queue.
    fn schedule_woken(&self, task: RawTask);
    /// An abort found its task queued (or running): the scheduler may move it to where it
    /// is dropped sooner.
    fn aborted_queued(&self);
    /// Registers a slow-path timer: `waker` is woken at `deadline` unless the entry is
    /// dropped first.
    fn add_timer(&self, deadline: Deadline, waker: Waker) -> WakerEntry;
    /// Registers the foreign waker of a `park` on `task` (woken by its next wakeup/signal).
    fn add_park_waker(&self, task: RawTask, waker: Waker) -> WakerEntry;
    /// Wakes the foreign `park` wakers of `task`.
    fn wake_parked(&self, task: RawTask);
    /// Where panics contained on behalf of the core's tasks are counted
    /// (`Metrics::contained_panics`), whichever thread contains them.
    fn contained_panics(&self) -> &Arc<AtomicU64>;
}

/// A thread-safe reference to a task, to wake or signal it from anywhere.
///
/// Holding one keeps the task's memory (not the task) alive, and with it the core's shared
/// state (as a [`Handle`](crate::Handle) does); it is cheap to clone.
pub struct TaskRef {
    raw: RawTask,
}

impl TaskRef {
    /// Wraps a reference the caller took for it.
    pub(crate) fn from_raw(raw: RawTask) -> TaskRef {
        TaskRef { raw }
    }

    /// Wakes the task: it is polled again soon, and its next [`park`] returns
    /// [`Wake::Woken`]. Wakeups coalesce; one that arrives while the task runs is kept.
    /// A task spawned with `spawn_at` starts at once (that wakeup is consumed by the start).
    ///
    /// It ends exactly two kinds of wait: a [`park`] (which returns `Woken`), and the
    /// delayed start of a `spawn_at` task. Every other future the task awaits is merely
    /// polled again and decides for itself: a [`time::sleep`](crate::time::sleep) keeps
    /// sleeping until its deadline, a `recv` keeps waiting for data. To make a sleep
    /// interruptible, `select!` it with a `park`, or use `park(Some(deadline))`.
    pub fn wakeup(&self) {
        self.raw.notify(state::WOKEN);
    }

    /// Signals the task: like [`wakeup`](Self::wakeup), but the signal is sticky until a
    /// [`park`] consumes it, and takes precedence there (`park` returns [`Wake::Signaled`]).
    pub fn signal(&self) {
        self.raw.notify(state::SIGNALED);
    }

    /// Cancels the task, like [`JoinHandle::abort`]: its future is dropped by a worker
    /// (never while it is being polled) and its handle yields a cancelled `JoinError`.
    /// Aborting a finished task does nothing.
    pub fn abort(&self) {
        self.raw.notify(state::CANCELLED);
    }

    /// A process-wide unique id of the task.
    pub fn id(&self) -> u64 {
        self.raw.header().id
    }

    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.raw.header().state.is_done()
    }

    /// What started the task: [`Start::Immediately`] for `spawn`; for `spawn_at`/
    /// `spawn_after`, its deadline or a wakeup or signal that came first — `None` while it
    /// still waits for its start. Inside the task: `task::current().started_by()`.
    ///
    /// ```
    /// use iocore::{task::{self, Start}, IoCore};
    /// use std::time::Duration;
    ///
    /// let core = IoCore::new()?;
    /// let job = core.spawn_after(Duration::from_secs(3600), async { task::current().started_by() });
    /// job.task().wakeup(); // start it now instead of in an hour
    /// assert_eq!(core.block_on(job).unwrap(), Some(Start::Woken));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn started_by(&self) -> Option<Start> {
        self.raw.header().state.start()
    }
}

/// What started a task (see [`TaskRef::started_by`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Start {
    /// Spawned ready to run (`spawn`).
    Immediately,
    /// A `spawn_at`/`spawn_after` task whose start time came.
    Deadline,
    /// A `spawn_at` task started early by [`TaskRef::wakeup`] (the wakeup is spent).
    Woken,
    /// A `spawn_at` task started early by [`TaskRef::signal`] (the signal stays pending
    /// until a [`park`] consumes it).
    Signaled,
}

impl Clone for TaskRef {
    fn clone(&self) -> Self {
        self.raw.ref_inc();
        TaskRef { raw: self.raw }
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        self.raw.ref_dec();
    }
}

impl PartialEq for TaskRef {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl Eq for TaskRef {}

impl std::hash::Hash for TaskRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id().hash(state)
    }
}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskRef").field("id", &self.id()).finish()
    }
}

/// The task being polled on this thread.
///
/// # Panics
/// Outside an iocore task (e.g. in `block_on`, or on a plain thread).
pub fn current() -> TaskRef {
    let raw = raw::current()
        .expect("iocore::task::current() called outside an iocore task; call it inside a spawned task");
    raw.ref_inc();
    TaskRef { raw }
}
