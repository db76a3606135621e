//! [`Handle`]: a cheap, cloneable reference to a core, usable from any thread.

use super::context;
use crate::io::Driver;
use crate::sched::{Metrics, Scheduler};
use crate::task::{JoinHandle, Schedule};
use crate::time::clock::Deadline;
use crate::util::waker_map::WakerEntry;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

/// A cheap, cloneable reference to a core, usable from any thread.
///
/// A `Handle` keeps the core's shared state alive but not its threads: once the `IoCore`
/// is shut down (or dropped), spawning through a handle yields tasks that are cancelled at
/// once. That state includes the core's kernel event queue (four file descriptors), so a
/// handle kept after its core is gone holds them until it drops; so do a `JoinHandle`
/// and a `TaskRef` of one of its tasks, and a socket made on it.
#[derive(Clone)]
pub struct Handle {
    pub(crate) sched: Arc<Scheduler>,
}

impl Handle {
    /// The core of the current thread: the core whose task is running, or whose `block_on`
    /// is running.
    ///
    /// # Panics
    /// Outside any core; use [`try_current`](Handle::try_current), or keep the `Handle`
    /// from [`IoCore::handle`](crate::IoCore::handle).
    pub fn current() -> Handle {
        Handle::try_current().expect(
            "iocore::Handle::current() called outside an iocore core; call it inside a task or \
             IoCore::block_on, or pass a Handle from IoCore::handle()",
        )
    }

    /// The core of the current thread, if any.
    pub fn try_current() -> Option<Handle> {
        context::current().map(|sched| Handle { sched })
    }

    /// Spawns a task: `future` runs on the core's workers (any of them, never pinned).
    /// Dropping the returned [`JoinHandle`] detaches the task.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_inner(future, None)
    }

    /// Spawns a task that starts asleep: it is first polled at `deadline`, or earlier if
    /// woken or signalled through its [`TaskRef`](crate::TaskRef) (see
    /// [`JoinHandle::task`]). Tasks with the same deadline start in spawn order.
    pub fn spawn_at<F>(&self, deadline: Instant, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_inner(future, Some(Deadline::at(deadline)))
    }

    /// Spawns a task that starts asleep for `delay`. See [`spawn_at`](Handle::spawn_at).
    pub fn spawn_after<F>(&self, delay: Duration, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_inner(future, Some(Deadline::after(delay)))
    }

    fn spawn_inner<F>(&self, future: F, start: Option<Deadline>) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let inside = context::is_worker_of(Some(&self.sched));
        self.sched.spawn(future, start, inside)
    }

    /// Runs the blocking closure `f` on the core's blocking pool (threads apart from the
    /// workers, grown on demand up to [`Builder::max_blocking_threads`](crate::Builder::max_blocking_threads),
    /// shrunk after an idle keep-alive), in FIFO order. The handle resolves with `f`'s
    /// result, or with [`JoinError`](crate::JoinError) `is_panic()` if it panicked.
    /// Aborting the handle does not interrupt a closure that already runs. Inside `f` the
    /// core is the current one (`Handle::current`, `iocore::spawn`, sockets and timers
    /// made there use it), as in its tasks.
    ///
    /// ```
    /// let core = iocore::IoCore::builder().threads(1).build()?;
    /// let sum = core.handle().spawn_blocking(|| (1..=100u64).sum::<u64>());
    /// assert_eq!(core.block_on(sum).unwrap(), 5050);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        // Weak: a queued closure must not keep a dropped core alive.
        let core = Arc::downgrade(&self.sched);
        let in_core = move || {
            let _current = core.upgrade().map(|sched| context::enter(sched, false));
            f()
        };
        self.sched.spawn_blocking(in_core, context::is_worker_of(Some(&self.sched)))
    }

    /// Waits until no live task remains (true), or `timeout` passes (false). Blocks the
    /// calling thread: called from one of the core's own tasks it holds that worker for
    /// the whole `timeout` and cannot return true (the calling task is live).
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.sched.wait_idle(timeout)
    }

    /// A snapshot of the core's counters.
    pub fn metrics(&self) -> Metrics {
        self.sched.metrics()
    }

    /// The core's kernel event queue, to register sockets with.
    pub(crate) fn driver(&self) -> &Driver {
        &self.sched.driver
    }

    /// Whether `waker` is one of this core's own tasks' (whose waits end when the core's
    /// shutdown cancels the task), not another executor's or a combinator's.
    #[inline]
    pub(crate) fn owns_waker(&self, waker: &Waker) -> bool {
        self.sched.owns_waker(waker)
    }

    /// Registers a slow-path timer on this core (see `task::Schedule::add_timer`).
    pub(crate) fn add_timer(&self, deadline: Deadline, waker: Waker) -> WakerEntry {
        self.sched.add_timer(deadline, waker)
    }
}

/// Makes a core the current one of this thread until dropped; see [`Handle::enter`].
/// Not `Send`: it restores the thread's previous context on drop.
#[must_use = "the core is current only while the guard lives"]
pub struct EnterGuard {
    _inner: context::EnterGuard,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl fmt::Debug for EnterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterGuard").finish()
    }
}

impl Handle {
    /// Makes this core the current one of the calling thread until the guard drops, so
    /// that iocore sockets and timers created there (and `Handle::current`,
    /// `iocore::spawn`) use it — e.g. inside another runtime's task, where they would
    /// otherwise go to the process-wide default core. Guards may be dropped in any order:
    /// the most recently entered core whose guard still lives is the current one.
    ///
    /// The core is chosen when a socket or timer is *made*, and `async fn`s such as
    /// `TcpStream::connect` make theirs at their first poll, not when called: a future
    /// created under the guard but first polled after it dropped (or on another thread)
    /// uses the default core. Hold the guard across that first poll, or run the whole
    /// operation on the core with [`Handle::spawn`] and await its `JoinHandle` from the
    /// other runtime.
    ///
    /// ```
    /// let core = iocore::IoCore::builder().threads(1).build()?;
    /// let handle = core.handle();
    /// std::thread::spawn(move || {
    ///     let _guard = handle.enter();
    ///     assert!(iocore::Handle::try_current().is_some());
    /// })
    /// .join()
    /// .unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn enter(&self) -> EnterGuard {
        EnterGuard { _inner: context::enter(self.sched.clone(), false), _not_send: std::marker::PhantomData }
    }
}

// The core's shared state is consistent at every point a panic can unwind through (locks
// ignore poison, user code is contained), so a handle observed after a caught panic is
// as good as before.
impl std::panic::UnwindSafe for Handle {}
impl std::panic::RefUnwindSafe for Handle {}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("workers", &self.sched.counters.workers()).finish()
    }
}
