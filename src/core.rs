//! [`IoCore`] (the runtime you own), [`Builder`], [`Handle`] (a cheap reference to it from
//! anywhere), shutdown and [`Metrics`].
//!
//! The core owns the worker threads; everything they share lives in `sched::Shared`.
//! A `Handle` keeps that shared state alive but not the threads: once the `IoCore` is shut
//! down (or dropped), spawning through a handle yields tasks that are cancelled at once.

use crate::sched::{self, Shared};
use crate::task::raw::RawTask;
use crate::task::JoinHandle;
use crate::time::clock;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The most worker threads a core may have.
const MAX_THREADS: usize = 1024;
/// How long shutdown waits for cancelled tasks to be dropped and workers to exit.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

static NEXT_TASK_ID: AtomicU64 = AtomicU64::new(1);

/// A multi-threaded runtime: a pool of equal worker threads, a migrating sched-role and one
/// kernel event queue.
///
/// ```
/// use iocore::IoCore;
///
/// let core = IoCore::new()?;
/// let answer = core.spawn(async { 6 * 7 });
/// assert_eq!(core.block_on(answer).unwrap(), 42);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Dropping the core is [`shutdown`](IoCore::shutdown) with zero grace: live tasks are
/// cancelled and the workers joined. It never hangs on a task.
pub struct IoCore {
    handle: Handle,
    workers: Vec<thread::JoinHandle<()>>,
    /// Worker indices, sent as each worker leaves its loop (a Mutex keeps `IoCore: Sync`).
    exited: Mutex<mpsc::Receiver<usize>>,
}

/// Configures an [`IoCore`].
#[derive(Debug, Clone)]
pub struct Builder {
    threads: Option<usize>,
    thread_name: String,
}

/// A cheap, cloneable reference to a core, usable from any thread.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

/// What [`IoCore::shutdown`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Tasks that finished (completed or panicked) during the grace period.
    pub finished: u64,
    /// Tasks that were cancelled (their futures dropped).
    pub cancelled: u64,
    /// Tasks still alive at the end (a task blocking its worker forever); normally 0.
    pub leaked: usize,
    /// Worker threads that did not exit in time and were left detached; normally 0 (all of
    /// them when the core is shut down from inside one of its own tasks: they exit once
    /// the cancelled tasks are dropped).
    pub unjoined_workers: usize,
}

/// A snapshot of a core's counters. Always available; no build flag.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Metrics {
    /// Number of worker threads.
    pub workers: usize,
    /// Tasks spawned and not yet finished.
    pub live_tasks: usize,
    /// Tasks parked (waiting for a wake or a deadline).
    pub parked_tasks: usize,
    /// Tasks that ran to completion (or panicked) so far.
    pub completed_tasks: u64,
    /// Tasks cancelled so far.
    pub cancelled_tasks: u64,
    /// Schedule steps taken by the sched-role.
    pub sched_steps: u64,
    /// Tasks in the front queue.
    pub front_queue_depth: usize,
    /// Tasks in the ready queue.
    pub ready_queue_depth: usize,
    /// Polls per worker.
    pub worker_polls: Vec<u64>,
    /// Time each worker spent polling tasks.
    pub worker_busy: Vec<Duration>,
    /// Panics in user code that the runtime caught outside a task's poll: a foreign waker
    /// that panicked when woken, a task output or cancelled future whose `Drop` panicked.
    /// The core keeps running; with the `tracing` feature each one is also an event.
    pub contained_panics: u64,
    /// Slow-path timers registered now: time futures (and `park` deadlines) polled under a
    /// foreign waker. Dropping such a future releases its timer at once.
    pub foreign_timers: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder { threads: None, thread_name: "iocore-worker".into() }
    }
}

impl Builder {
    /// Number of worker threads (default: one per available CPU). Must be 1..=1024.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }

    /// Prefix of the worker threads' names (`{name}-{index}`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Starts the core.
    ///
    /// Errors: `InvalidInput` for a thread count of 0 or above 1024; the OS error (with
    /// context) if the event queue or a thread cannot be created.
    pub fn build(self) -> io::Result<IoCore> {
        let threads = match self.threads {
            Some(n) => n,
            None => thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        };
        if self.thread_name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("iocore: thread name {:?} contains a NUL byte", self.thread_name),
            ));
        }
        if threads == 0 || threads > MAX_THREADS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("iocore: thread count must be between 1 and {MAX_THREADS}, got {threads}"),
            ));
        }
        let shared = Arc::new(
            Shared::new(threads)
                .map_err(|e| io::Error::new(e.kind(), format!("iocore: creating the event queue: {e}")))?,
        );
        let (exit_tx, exited) = mpsc::channel();
        let mut core = IoCore {
            handle: Handle { shared: shared.clone() },
            workers: Vec::new(),
            exited: Mutex::new(exited),
        };
        for i in 0..threads {
            let shared = shared.clone();
            let exit_tx = exit_tx.clone();
            let name = format!("{}-{i}", self.thread_name);
            let spawned = thread::Builder::new().name(name.clone()).spawn(move || {
                shared.run_worker(i);
                let _ = exit_tx.send(i);
            });
            match spawned {
                Ok(t) => core.workers.push(t),
                // Dropping `core` stops the workers already started.
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("iocore: spawning worker thread {name}: {e}"),
                    ))
                }
            }
        }
        Ok(core)
    }
}

impl IoCore {
    /// A core with one worker per available CPU.
    pub fn new() -> io::Result<IoCore> {
        Builder::default().build()
    }

    /// A [`Builder`] to configure a core.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A handle to this core.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Spawns a task. See [`Handle::spawn`].
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Spawns a task that starts asleep. See [`Handle::spawn_at`].
    pub fn spawn_at<F>(&self, deadline: Instant, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn_at(deadline, future)
    }

    /// Spawns a task that starts asleep. See [`Handle::spawn_after`].
    pub fn spawn_after<F>(&self, delay: Duration, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn_after(delay, future)
    }

    /// Runs `future` to completion on the calling thread, with this core as the current
    /// core: iocore timers and sockets, `Handle::current()` and `iocore::spawn` work inside.
    /// The future need not be `Send`.
    ///
    /// # Panics
    /// When called from a worker thread of any core (it would block that worker): `.await`
    /// the future instead.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        if sched::with_current_core(|c| c.is_some_and(|(_, worker)| *worker)) {
            panic!("IoCore::block_on called from inside an iocore worker thread; .await the future instead");
        }
        let _enter = sched::enter(self.handle.shared.clone(), false);
        futures::executor::block_on(future)
    }

    /// Waits until no live task remains (true), or `timeout` passes (false).
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.handle.wait_idle(timeout)
    }

    /// A snapshot of the core's counters (always on; reading it takes no lock beyond the
    /// slow-path timers' count). See `examples/metrics.rs` for a program that prints it
    /// every second. A task's `JoinHandle` resolves just before the task leaves the live
    /// count; [`wait_idle`](Self::wait_idle) waits for both.
    ///
    /// ```
    /// use std::time::Duration;
    /// let core = iocore::IoCore::builder().threads(2).build()?;
    /// core.block_on(core.spawn(async {})).unwrap();
    /// assert!(core.wait_idle(Duration::from_secs(10)));
    /// let m = core.metrics();
    /// assert_eq!(m.workers, 2);
    /// assert_eq!(m.live_tasks, 0);
    /// assert!(m.worker_polls.iter().sum::<u64>() >= 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn metrics(&self) -> Metrics {
        self.handle.metrics()
    }

    /// Shuts the core down: spawns from outside the core are cancelled from now on; live
    /// tasks get until `timeout` to finish (and may spawn more); then the rest are
    /// cancelled (their futures dropped, their `JoinHandle`s resolve with `Cancelled`)
    /// and the workers are joined.
    pub fn shutdown(mut self, timeout: Duration) -> ShutdownReport {
        self.shutdown_inner(timeout)
    }

    fn shutdown_inner(&mut self, grace: Duration) -> ShutdownReport {
        let sh = &self.handle.shared;
        let on_own_worker =
            sched::with_current_core(|c| c.is_some_and(|(s, worker)| *worker && Arc::ptr_eq(s, sh)));
        let (finished0, cancelled0) = (sh.completed.load(Acquire), sh.cancelled.load(Acquire));
        sh.closing.store(true, SeqCst);
        if !on_own_worker {
            sh.wait_idle(grace);
        }
        sh.cancelling.store(true, SeqCst);
        sh.cancel_all();
        if on_own_worker {
            sh.stop_once_idle();
        } else {
            sh.wait_idle(CANCEL_WAIT);
            sh.stop();
        }
        let mut unjoined = 0;
        let deadline = Instant::now() + CANCEL_WAIT;
        let mut exited = vec![false; self.workers.len()];
        let exits = self.exited.get_mut().unwrap_or_else(|e| e.into_inner());
        // On its own worker, shutdown cannot wait for the workers (this task keeps one of
        // them busy): they exit by themselves once idle and are left detached.
        let waits = if on_own_worker { 0 } else { self.workers.len() };
        for _ in 0..waits {
            match exits.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(i) => exited[i] = true,
                Err(_) => break,
            }
        }
        for (i, t) in self.workers.drain(..).enumerate() {
            if exited[i] {
                let _ = t.join();
            } else {
                unjoined += 1;
            }
        }
        ShutdownReport {
            finished: sh.completed.load(Acquire) - finished0,
            cancelled: sh.cancelled.load(Acquire) - cancelled0,
            leaked: sh.live.load(Acquire),
            unjoined_workers: unjoined,
        }
    }
}

impl Drop for IoCore {
    fn drop(&mut self) {
        if !self.workers.is_empty() {
            self.shutdown_inner(Duration::ZERO);
        }
    }
}

impl fmt::Debug for IoCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoCore").field("workers", &self.workers.len()).finish()
    }
}

impl Handle {
    /// The core of the current thread: the core whose task is running, or whose `block_on`
    /// is running.
    ///
    /// # Panics
    /// Outside any core; use [`try_current`](Handle::try_current), or keep the `Handle`
    /// from [`IoCore::handle`].
    pub fn current() -> Handle {
        Handle::try_current().expect(
            "iocore::Handle::current() called outside an iocore core; call it inside a task or \
             IoCore::block_on, or pass a Handle from IoCore::handle()",
        )
    }

    /// The core of the current thread, if any.
    pub fn try_current() -> Option<Handle> {
        sched::with_current_core(|c| c.map(|(shared, _)| Handle { shared: shared.clone() }))
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
        self.spawn_inner(future, Some(clock::to_ns(deadline)))
    }

    /// Spawns a task that starts asleep for `delay`. See [`spawn_at`](Handle::spawn_at).
    pub fn spawn_after<F>(&self, delay: Duration, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_at(clock::after(delay), future)
    }

    fn spawn_inner<F>(&self, future: F, deadline: Option<u64>) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = NEXT_TASK_ID.fetch_add(1, Relaxed);
        let raw = RawTask::new(future, self.shared.clone(), id, deadline);
        let inside = sched::with_current_core(|c| {
            c.is_some_and(|(s, worker)| *worker && Arc::ptr_eq(s, &self.shared))
        });
        crate::trace::trace_event!(task = id, delayed = deadline.is_some(), "spawn");
        self.shared.start_task(raw, inside);
        JoinHandle::new(raw)
    }

    /// Waits until no live task remains (true), or `timeout` passes (false).
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.shared.wait_idle(timeout)
    }

    /// A snapshot of the core's counters.
    pub fn metrics(&self) -> Metrics {
        let sh = &self.shared;
        Metrics {
            workers: sh.workers.len(),
            live_tasks: sh.live.load(Relaxed),
            parked_tasks: sh.parked(),
            completed_tasks: sh.completed.load(Relaxed),
            cancelled_tasks: sh.cancelled.load(Relaxed),
            sched_steps: sh.steps.load(Relaxed),
            front_queue_depth: sh.front_len(),
            ready_queue_depth: sh.ready_len(),
            worker_polls: sh.workers.iter().map(|w| w.polls.load(Relaxed)).collect(),
            worker_busy: sh.workers.iter().map(|w| Duration::from_nanos(w.busy_ns.load(Relaxed))).collect(),
            contained_panics: sh.contained_panics.load(Relaxed),
            foreign_timers: sh.timer_count(),
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("workers", &self.shared.workers.len()).finish()
    }
}

/// The process-wide default core, started on first use, for iocore futures polled outside
/// any core (e.g. by `futures::executor::block_on` on a plain thread).
pub(crate) fn default_shared() -> Arc<Shared> {
    static DEFAULT: OnceLock<Handle> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let core = IoCore::builder()
                .threads(1)
                .thread_name("iocore-default")
                .build()
                .expect("iocore: cannot start the process-wide default core");
            let handle = core.handle();
            // The default core lives as long as the process.
            std::mem::forget(core);
            handle
        })
        .shared
        .clone()
}
