//! The scheduler's counters, and [`Metrics`], the snapshot a user reads.
//!
//! Counters bumped on every poll live per worker (a cache line each, written only by
//! their worker: a plain load and store, no lock prefix). Parked tasks are counted as
//! `parks - unparks`, with every park counted *before* the task can be woken and every
//! unpark after, and `unparks` read first: the difference never goes below zero.

use crate::time::clock;
use crate::util::Padded;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::time::Duration;

/// A snapshot of a core's counters. Always available; no build flag.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Metrics {
    /// Number of worker threads.
    pub workers: usize,
    /// Tasks spawned and not yet finished (the runtime's own socket flushers are counted
    /// apart, in [`flusher_tasks`](Self::flusher_tasks)).
    pub live_tasks: usize,
    /// The runtime's own flusher tasks alive: a socket that has posted (`post_send`) has
    /// one until it closes, which writes what is posted and waits, parked, while nothing
    /// is. Like every task, they count in [`parked_tasks`](Self::parked_tasks) while
    /// parked, keep [`IoCore::wait_idle`](crate::IoCore::wait_idle) waiting, and appear
    /// in the shutdown report.
    pub flusher_tasks: usize,
    /// Tasks parked (waiting for a wake or a deadline), flushers included.
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
    /// Tasks each worker took from the ready queue to run (a poll, or the drop of a
    /// cancelled task's future).
    pub worker_polls: Vec<u64>,
    /// Time each worker spent polling tasks.
    pub worker_busy: Vec<Duration>,
    /// Polls measured computing for more than 500 µs of CPU, beyond an allowance for their
    /// socket operations (a task's polls are measured from the one after a poll long on
    /// the wall clock). Each one makes its task *heavy* until a short poll: while the
    /// workers are busy, it runs on the core's heavy lane, on CPU time they leave (see the
    /// [crate docs, "Fairness"](crate#fairness)). A growing count points at tasks that
    /// compute inside a poll: move such work to [`spawn_blocking`](crate::spawn_blocking),
    /// or split it with [`yield_now`](crate::task::yield_now).
    pub heavy_polls: u64,
    /// Polls run on the heavy lane: by its threads, which the kernel runs only on CPU time
    /// nothing else wants, for heavy tasks (see [`heavy_polls`](Self::heavy_polls)).
    pub lane_polls: u64,
    /// Heavy tasks waiting for the heavy lane now.
    pub lane_queue_depth: usize,
    /// Panics in user code that the runtime caught outside a task's poll: a foreign waker
    /// that panicked when woken, a task output or cancelled future whose `Drop` panicked.
    /// The core keeps running; with the `tracing` feature each one is also an event.
    pub contained_panics: u64,
    /// Slow-path timers registered now: time futures (and `park` deadlines) polled under a
    /// foreign waker. Dropping such a future releases its timer at once.
    pub foreign_timers: usize,
    /// Threads of the blocking pool alive now (busy or idle; idle ones exit after the
    /// keep-alive).
    pub blocking_threads: usize,
    /// Blocking closures waiting for a pool thread.
    pub blocking_queue_depth: usize,
}

/// Counters of one worker (a cache line of its own).
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct WorkerCounters {
    /// Time spent polling, in `clock::stamp` units.
    busy_stamps: AtomicU64,
    /// The part of it spent in polls long on the wall clock (heavy ones, and those that may
    /// be: see `heavy`).
    heavy_stamps: AtomicU64,
    /// Tasks this worker parked.
    parks: AtomicU64,
    /// Bumped as the worker takes a task and as it gives it up: odd while it runs one
    /// (the watcher tells a long poll from many short ones by it, see `idle`), and twice
    /// the tasks it ran once that ends (the `worker_polls` metric).
    poll_seq: AtomicU64,
}

/// Everything a core counts. See the module docs. Grouped by who writes them.
pub(crate) struct Counters {
    /// Written by the role holder (one thread at a time), on every step.
    pub(crate) steps: Padded<AtomicU64>,
    /// Written by workers as tasks finish.
    pub(crate) completed: Padded<AtomicU64>,
    pub(crate) cancelled: AtomicU64,
    /// Polls that made their task rest (`heavy`; rare, any worker).
    pub(crate) heavy_polls: AtomicU64,
    /// Installed as the contained-panic counter of every thread working for the core.
    pub(crate) contained_panics: Arc<AtomicU64>,
    /// Tasks in the front queue (bumped before the push, dropped after the take).
    pub(crate) front_len: Padded<AtomicUsize>,
    /// Tasks the sched-role parked (written only by the role holder).
    role_parks: AtomicU64,
    /// Tasks taken out of `WAITING` (written by wakers, anywhere).
    unparks: Padded<AtomicU64>,
    /// The workers', then the lane threads'.
    workers: Box<[WorkerCounters]>,
    nworkers: usize,
}

/// The inputs of a [`Metrics`] that the counters do not hold.
pub(crate) struct Gauges {
    pub(crate) live: usize,
    pub(crate) flushers: usize,
    pub(crate) ready: usize,
    pub(crate) foreign_timers: usize,
    pub(crate) blocking_threads: usize,
    pub(crate) blocking_queued: usize,
    pub(crate) lane_polls: u64,
    pub(crate) lane_queued: usize,
}

/// Whether a worker whose poll sequence is `seq` is running a task now.
pub(crate) fn in_poll(seq: u64) -> bool {
    seq % 2 == 1
}

/// Bumps a counter only its owner writes: a plain load and store.
fn bump(c: &AtomicU64, by: u64) {
    c.store(c.load(Relaxed) + by, Release);
}

impl Counters {
    /// Counters for `workers` workers and `lanes` heavy-lane threads (each with its own
    /// [`WorkerCounters`], after the workers').
    pub(crate) fn new(workers: usize, lanes: usize) -> Counters {
        Counters {
            steps: Padded(AtomicU64::new(0)),
            completed: Padded(AtomicU64::new(0)),
            cancelled: AtomicU64::new(0),
            heavy_polls: AtomicU64::new(0),
            contained_panics: Arc::new(AtomicU64::new(0)),
            front_len: Padded(AtomicUsize::new(0)),
            role_parks: AtomicU64::new(0),
            unparks: Padded(AtomicU64::new(0)),
            workers: (0..workers + lanes).map(|_| WorkerCounters::default()).collect(),
            nworkers: workers,
        }
    }

    /// The number of workers (lane threads not counted).
    pub(crate) fn workers(&self) -> usize {
        self.nworkers
    }

    /// The workers' counters (without the lane threads').
    fn of_workers(&self) -> &[WorkerCounters] {
        &self.workers[..self.nworkers]
    }

    /// Worker `w` took a task to run (only `w` calls this). Its caller fences before it
    /// looks at the watcher (see `idle`).
    pub(crate) fn begin_poll(&self, w: usize) {
        bump(&self.workers[w].poll_seq, 1);
    }

    /// Worker `w` gave up the task it took (only `w` calls this).
    pub(crate) fn end_poll(&self, w: usize) {
        bump(&self.workers[w].poll_seq, 1);
    }

    /// Whether some worker is polling a task right now (lane threads not counted: they
    /// ready nothing a worker should wait for, and hold no batch).
    pub(crate) fn anyone_polls(&self) -> bool {
        self.of_workers().iter().any(|c| in_poll(c.poll_seq.load(SeqCst)))
    }

    /// Worker `w`'s poll sequence: odd while it runs a task.
    pub(crate) fn poll_seq(&self, w: usize) -> u64 {
        self.workers[w].poll_seq.load(SeqCst)
    }

    /// Worker `w` spent `stamps` (`clock::stamp` units) polling tasks (only `w` calls
    /// this).
    pub(crate) fn busy(&self, w: usize, stamps: u64) {
        bump(&self.workers[w].busy_stamps, stamps);
    }

    /// Worker `w` spent `stamps` of its polling in a poll long on the wall clock (only `w`
    /// calls this).
    pub(crate) fn heavy_busy(&self, w: usize, stamps: u64) {
        bump(&self.workers[w].heavy_stamps, stamps);
    }

    /// The workers' time spent polling, polls long on the wall clock left out (`clock::stamp`
    /// units).
    pub(crate) fn light_busy(&self) -> u64 {
        self.of_workers()
            .iter()
            .map(|w| w.busy_stamps.load(Relaxed).saturating_sub(w.heavy_stamps.load(Relaxed)))
            .sum()
    }

    /// Worker `w` may park a task: counted now, before the task can be woken. Returns the
    /// token to pass to [`unpark_own`](Self::unpark_own) if it does not park after all.
    pub(crate) fn park_by_worker(&self, w: usize) -> u64 {
        let c = &self.workers[w].parks;
        let before = c.load(Relaxed);
        c.store(before + 1, Release);
        before
    }

    /// Worker `w` did not park the task counted by `park_by_worker` (which returned `token`).
    pub(crate) fn unpark_own(&self, w: usize, token: u64) {
        self.workers[w].parks.store(token, Relaxed);
    }

    /// The role holder may park a task (see [`park_by_worker`](Self::park_by_worker)).
    pub(crate) fn park_by_role(&self) -> u64 {
        let before = self.role_parks.load(Relaxed);
        self.role_parks.store(before + 1, Release);
        before
    }

    /// The role holder did not park the task after all.
    pub(crate) fn unpark_role(&self, token: u64) {
        self.role_parks.store(token, Relaxed);
    }

    /// A task left `WAITING` (counted after it did).
    pub(crate) fn unparked(&self) {
        self.unparks.fetch_add(1, Release);
    }

    /// Tasks parked now; never negative (see the module docs).
    pub(crate) fn parked(&self) -> usize {
        let unparks = self.unparks.load(Acquire);
        let parks =
            self.role_parks.load(Acquire) + self.workers.iter().map(|w| w.parks.load(Acquire)).sum::<u64>();
        usize::try_from(parks.saturating_sub(unparks)).unwrap_or(usize::MAX)
    }

    /// A task finished (completed or panicked) or was cancelled.
    pub(crate) fn finished(&self, cancelled: bool) {
        let c = if cancelled { &self.cancelled } else { &*self.completed };
        c.fetch_add(1, Relaxed);
    }

    /// A snapshot for users.
    pub(crate) fn snapshot(&self, gauges: Gauges) -> Metrics {
        Metrics {
            workers: self.nworkers,
            // (Read apart, so for a moment one may run ahead of the other.)
            live_tasks: gauges.live.saturating_sub(gauges.flushers),
            flusher_tasks: gauges.flushers,
            parked_tasks: self.parked(),
            completed_tasks: self.completed.load(Relaxed),
            cancelled_tasks: self.cancelled.load(Relaxed),
            sched_steps: self.steps.load(Relaxed),
            front_queue_depth: self.front_len.load(Relaxed),
            ready_queue_depth: gauges.ready,
            worker_polls: self.of_workers().iter().map(|w| w.poll_seq.load(Relaxed).div_ceil(2)).collect(),
            worker_busy: self
                .of_workers()
                .iter()
                .map(|w| clock::duration_of(w.busy_stamps.load(Relaxed)))
                .collect(),
            heavy_polls: self.heavy_polls.load(Relaxed),
            lane_polls: gauges.lane_polls,
            lane_queue_depth: gauges.lane_queued,
            contained_panics: self.contained_panics.load(Relaxed),
            foreign_timers: gauges.foreign_timers,
            blocking_threads: gauges.blocking_threads,
            blocking_queue_depth: gauges.blocking_queued,
        }
    }
}
