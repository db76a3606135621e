//! The runtime you own: [`IoCore`], its [`Builder`], shutdown, and the process-wide
//! default core.
//!
//! The core owns the worker threads; everything they share lives in the `sched`
//! module's `Scheduler`, reached from anywhere through a [`Handle`] (`handle`). The
//! thread-local context (which core this thread works for) is in `context`.

mod block_on;
pub(crate) mod context;
mod handle;

pub use handle::{EnterGuard, Handle};

use crate::sched::{self, BlockingConfig, Scheduler};
use crate::sync::TryOnce;
use crate::task::JoinHandle;
use std::fmt;
use std::future::Future;
use std::io;
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The most worker threads a core may have.
const MAX_THREADS: usize = 1024;
/// Default of [`Builder::max_blocking_threads`].
const DEFAULT_MAX_BLOCKING: usize = 512;
/// Default of [`Builder::blocking_keep_alive`].
const DEFAULT_BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(10);
/// How long shutdown waits for cancelled tasks to be dropped and workers to exit (both in
/// this one span).
const CANCEL_WAIT: Duration = Duration::from_secs(5);
/// How long shutdown waits at least for the workers to exit once told to stop.
const WORKER_EXIT_WAIT: Duration = Duration::from_millis(250);

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
    /// The worker threads, then the heavy-lane threads.
    workers: Vec<thread::JoinHandle<()>>,
    /// Thread indices (in `workers`), sent as each thread leaves its loop (a Mutex keeps `IoCore: Sync`).
    exited: Mutex<mpsc::Receiver<usize>>,
}

/// Configures an [`IoCore`].
#[derive(Debug, Clone)]
pub struct Builder {
    threads: Option<usize>,
    thread_name: String,
    max_blocking_threads: usize,
    blocking_keep_alive: Duration,
    post_high_water: usize,
}

/// What [`IoCore::shutdown`] did. The task counts include the runtime's own socket
/// flushers (see [`Metrics::flusher_tasks`](crate::Metrics::flusher_tasks)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Tasks that finished (completed or panicked) during the grace period.
    pub finished: u64,
    /// Tasks that were cancelled (their futures dropped).
    pub cancelled: u64,
    /// Tasks still alive at the end (a task blocking its worker forever); normally 0.
    pub leaked: usize,
    /// Threads of the core (workers and heavy-lane threads) that did not exit in time and
    /// were left detached; normally 0 (all of them when the core is shut down from inside
    /// one of its own tasks: they exit once the cancelled tasks are dropped).
    pub unjoined_workers: usize,
    /// Blocking closures (`spawn_blocking`) still running at the end: they cannot be
    /// interrupted and finish on their own (detached) threads; normally 0.
    pub blocking_running: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            threads: None,
            thread_name: "iocore-worker".into(),
            max_blocking_threads: DEFAULT_MAX_BLOCKING,
            blocking_keep_alive: DEFAULT_BLOCKING_KEEP_ALIVE,
            post_high_water: crate::net::DEFAULT_HIGH_WATER,
        }
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

    /// The most threads the blocking pool may run at once (default 512; at least 1).
    /// Closures beyond that wait in FIFO order. See [`Handle::spawn_blocking`].
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking_threads = n;
        self
    }

    /// How long an idle blocking-pool thread waits for work before it exits (default 10 s).
    pub fn blocking_keep_alive(mut self, keep_alive: Duration) -> Self {
        self.blocking_keep_alive = keep_alive;
        self
    }

    /// The default high-water mark of the `post_send` queue of each socket made on this
    /// core (default [`DEFAULT_HIGH_WATER`](crate::net::DEFAULT_HIGH_WATER), 64 KiB; at
    /// least 1; per socket: `set_post_high_water`). It bounds the memory a client that does
    /// not read can hold: its mark plus one buffer per posting thread.
    pub fn post_high_water(mut self, bytes: usize) -> Self {
        self.post_high_water = bytes.max(1);
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
        if self.max_blocking_threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "iocore: max_blocking_threads must be at least 1, got 0",
            ));
        }
        let blocking = BlockingConfig {
            max_threads: self.max_blocking_threads,
            keep_alive: self.blocking_keep_alive,
            thread_name: format!("{}-blocking", self.thread_name),
        };
        let sched = Scheduler::new(threads, blocking, self.post_high_water)
            .map_err(|e| io::Error::new(e.kind(), format!("iocore: creating the event queue: {e}")))?;
        let (exit_tx, exited) = mpsc::channel();
        let mut core = IoCore {
            handle: Handle { sched: sched.clone() },
            workers: Vec::new(),
            exited: Mutex::new(exited),
        };
        // The workers, then as many heavy-lane threads (see the crate docs, "Fairness").
        for i in 0..2 * threads {
            let sched = sched.clone();
            let exit_tx = exit_tx.clone();
            let (name, lane) = match i.checked_sub(threads) {
                None => (format!("{}-{i}", self.thread_name), None),
                Some(l) => (format!("{}-lane-{l}", self.thread_name), Some(l)),
            };
            let spawned = thread::Builder::new().name(name.clone()).spawn(move || {
                let _ctx = context::enter(sched.clone(), true);
                match lane {
                    None => sched::run_worker(&sched, i),
                    Some(l) => sched::run_lane(&sched, l),
                }
                let _ = exit_tx.send(i);
            });
            match spawned {
                Ok(t) => core.workers.push(t),
                // Dropping `core` stops the threads already started.
                Err(e) => {
                    return Err(io::Error::new(e.kind(), format!("iocore: spawning thread {name}: {e}")))
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

    /// Runs a blocking closure on the core's blocking pool. See [`Handle::spawn_blocking`].
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
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
        if context::is_worker_of(None) {
            panic!("IoCore::block_on called from inside an iocore worker thread; .await the future instead");
        }
        let _enter = context::enter(self.handle.sched.clone(), false);
        block_on::block_on(&self.handle, future)
    }

    /// Waits until no live task remains (true), or `timeout` passes (false). Blocks the
    /// calling thread: called from one of the core's own tasks it holds that worker for
    /// the whole `timeout` and cannot return true (the calling task is live). The
    /// runtime's own socket flushers count as live (see `Metrics::flusher_tasks`): a
    /// socket that has posted keeps its flusher until the socket closes, so that queued
    /// data is written before the core is seen idle.
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
    pub fn metrics(&self) -> crate::Metrics {
        self.handle.metrics()
    }

    /// Shuts the core down: spawns from outside the core are cancelled from now on; live
    /// tasks get until `timeout` to finish (and may spawn more); then the rest are
    /// cancelled (their futures dropped, their `JoinHandle`s resolve with `Cancelled`)
    /// and the workers are joined. A task stuck in a poll cannot be cancelled: after 5 s
    /// more it is counted as `leaked` and its worker as unjoined.
    ///
    /// Called from one of the core's own tasks (which owns the `IoCore`), shutdown cannot
    /// wait, since it would block a worker the other tasks may need: the grace is skipped,
    /// every task (the caller's too) is cancelled as the workers reach it, the workers
    /// exit by themselves once idle, and the report counts them all as `unjoined_workers`
    /// and the tasks not yet dropped when it returns as `leaked`.
    pub fn shutdown(mut self, timeout: Duration) -> ShutdownReport {
        self.shutdown_inner(timeout)
    }

    fn shutdown_inner(&mut self, grace: Duration) -> ShutdownReport {
        let on_own_worker = context::is_worker_of(Some(&self.handle.sched));
        let counts = self.handle.sched.shut_down(grace, on_own_worker, CANCEL_WAIT);
        let mut unjoined = 0;
        // Idle workers leave within microseconds of the stop: give them a moment even when
        // a stuck task used up the cancel wait.
        let deadline = counts.cancel_deadline.max(Instant::now() + WORKER_EXIT_WAIT);
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
            finished: counts.finished,
            cancelled: counts.cancelled,
            leaked: counts.leaked,
            unjoined_workers: unjoined,
            blocking_running: counts.blocking_running,
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

// See the same impls for `Handle`.
impl std::panic::UnwindSafe for IoCore {}
impl std::panic::RefUnwindSafe for IoCore {}

impl fmt::Debug for IoCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IoCore").field("workers", &(self.workers.len() / 2)).finish()
    }
}

/// The core of this thread, or the process-wide default core outside any core (or inside
/// one that has stopped: a timer polled there by another executor must still fire). Fails
/// only when the default core is needed and cannot start (the process is out of file
/// descriptors, say); a later call tries again.
pub(crate) fn current_or_default() -> io::Result<Handle> {
    match context::current().filter(|s| !s.stopped()) {
        Some(sched) => Ok(Handle { sched }),
        None => default_handle(),
    }
}

/// A handle to the process-wide default core (for process-wide services: signals),
/// started on first use, for iocore futures polled outside any core (e.g. by
/// `futures::executor::block_on` on a plain thread). A start that failed is tried again
/// by the next call.
pub(crate) fn default_handle() -> io::Result<Handle> {
    static DEFAULT: TryOnce<Handle> = TryOnce::new();
    DEFAULT
        .get_or_try_init(|| {
            let core = IoCore::builder().threads(1).thread_name("iocore-default").build().map_err(|e| {
                io::Error::new(e.kind(), format!("iocore: cannot start the process-wide default core: {e}"))
            })?;
            let handle = core.handle();
            // The default core lives as long as the process.
            std::mem::forget(core);
            Ok(handle)
        })
        .cloned()
}
