//! The scheduler: worker threads, the migrating sched-role, and the queues between them.
//!
//! All workers run the same loop (`worker`). The *sched-role* is a lock that whichever
//! worker finds it free takes with `try_lock`; the holder runs one schedule step (`role`)
//! and releases it:
//!
//! 1. drain the **front queue** (an MPSC inbox: spawns with a start deadline, tasks that
//!    returned `Pending` with a new deadline, finished tasks that still have a heap entry),
//!    in FIFO order: make ready what must run, park the rest in the **deadline heap**
//!    (whose entries are removed lazily: a woken task goes straight to the ready queue,
//!    and parks again under its entry if its deadline did not change; see `task::state`);
//! 2. turn the kernel event queue (`io::Poller`) with timeout 0, or — when it has nothing
//!    else to do — block in it until the nearest deadline;
//! 3. pop expired deadlines and fire the slow-path timers.
//!
//! Ready tasks go to the **ready queue**: a global FIFO (`crossbeam_deque::Injector`) of
//! which each worker takes about half at a time into its own FIFO batch, which idle
//! workers may steal. Requeued tasks go to the global tail, so no task is tied to a thread
//! and everything ready runs in roughly arrival order.
//!
//! Fairness between steps: a worker tries the role again after [`EXEC_BATCH`] polls or
//! [`STEP_INTERVAL`] of polling, whichever comes first (unless the role holder is blocked
//! in epoll, watching the kernel queue and a timer for the next deadline). A task that
//! yields (`task::yield_now`) goes to its worker's `yielded` queue (which every worker can
//! take from) and runs again only after a step has started since, behind whatever that
//! step made ready (kernel events, expired deadlines); see `worker`.
//!
//! Fairness in CPU time (`heavy`, `lane`): a task whose poll computed for long is heavy
//! until a short poll; while the workers are busy it runs on the heavy lane's idle-class
//! threads, on the CPU time nothing else wants, or is boosted back when the lane stalls.
//!
//! Wakeup rules (no lost wakeup, no busy wait, few context switches):
//! - a worker that runs out of work while another polls *searches*: it spins on the ready
//!   queues for up to [`SEARCH_SPIN`] before it sleeps (work often comes within
//!   microseconds then; not when the running workers already take every CPU); a push
//!   wakes nobody while a worker searches;
//! - a push to the ready queue wakes nobody when one of this core's workers pushes the
//!   only ready task (it runs it next itself) while someone looks every interval (the
//!   watcher below, or a role holder blocked in epoll for at most an interval, as it does
//!   while another worker polls); otherwise it wakes a sleeping worker, or kicks the role
//!   holder out of epoll;
//! - the first sleeping worker is the *watcher* (`idle`): every [`STEP_INTERVAL`] (or at
//!   the next deadline, if sooner) it looks at the other workers, and takes over when a
//!   task is ready, or, with nobody holding the role, when a poll has lasted a whole
//!   interval or a deadline has passed; so a task that blocks its worker cannot
//!   stall IO, timers or the ready queue, without waking anyone for each task started.
//!   After a few intervals with no poll at all it sleeps until the next poll nudges it;
//! - a worker that starts a task while work is left wakes a sleeper, or, with none
//!   asleep, kicks the role holder out of epoll;
//! - when as many workers run (neither asleep nor blocked in epoll) as the process has
//!   CPUs (one CPU, say, or four workers on two), a worker wakes nobody for tasks it
//!   readies or leaves behind (the woken worker could only take turns with a running one
//!   on its CPU, and would run half of the tasks out of order); a poll that lasts is
//!   covered as above, by the watcher or a role holder whose wait in epoll is bounded,
//!   and a holder in an unbounded wait is still kicked;
//! - a worker sleeps only while another holds the role (re-checked after it publishes
//!   itself as a sleeper), so the holder either watches epoll or sees it and wakes it;
//! - a push to the front queue kicks the role holder out of epoll;
//! - the role holder blocks in epoll only after announcing it and re-checking the queues,
//!   and a worker sleeps only after publishing itself as a sleeper and re-checking them
//!   (Dekker handshakes with the pushers, all `SeqCst`).
//!
//! The task state machine lives in `task::state`; this module only moves `RawTask`s
//! around. Files: `worker` (the loop, pop/steal, running a task, the watcher's
//! look), `role` (the step), `idle` (sleeping workers and the watcher's seat), `heavy`
//! (heavy tasks), `lane` (the threads they run on), `slots` (the live-task table), `counters` (metrics).

mod blocking;
mod counters;
mod heavy;
mod idle;
mod lane;
mod role;
mod slots;
mod worker;

pub use counters::Metrics;

use crate::io::Driver;
use crate::sync::lock;
use crate::task::raw::RawTask;
use crate::task::state::Notify;
use crate::task::{Header, JoinHandle, Schedule};
use crate::time::clock::{self, Deadline};
use crate::util::inbox::Inbox;
use crate::util::waker_map::{WakerEntry, WakerMap};
use crate::util::Padded;
use blocking::BlockingPool;
use counters::{Counters, Gauges};
use crossbeam_deque::{Injector, Stealer, Worker};
use idle::Idle;
use lane::Lane;
use role::RoleState;
use slots::TaskSlots;
use std::future::Future;
use std::io;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Waker;
use std::time::{Duration, Instant};

/// Ready tasks a worker runs between two attempts at the sched-role.
pub(crate) const EXEC_BATCH: usize = 64;
/// Longest time a worker polls tasks without trying the sched-role (however few polls that
/// took): CPU-heavy tasks cannot delay timers and kernel events by more than this plus one
/// poll.
pub(crate) const STEP_INTERVAL: Duration = Duration::from_micros(500);

/// How long a worker may sit in one poll before a busy worker takes the tasks waiting in
/// its batch (`worker::rescue`): far above an ordinary poll, well below a task that
/// computes for milliseconds.
pub(crate) const RESCUE_AFTER: Duration = Duration::from_micros(100);

/// Longest a worker that ran out of work spins on the ready queues while another worker
/// polls, before it sleeps (`worker::search`).
pub(crate) const SEARCH_SPIN: Duration = Duration::from_micros(20);

/// Process-wide task ids.
static NEXT_TASK_ID: AtomicU64 = AtomicU64::new(1);

/// Everything the workers, wakers and handles of one core share.
pub(crate) struct Scheduler {
    /// The default post high-water mark of this core's sockets (`Builder::post_high_water`).
    pub(crate) post_high_water: usize,
    /// The sched-role's inbox (see the module docs).
    front: Inbox<Header>,
    /// The global FIFO of ready tasks.
    ready: Injector<RawTask>,
    /// Heavy tasks, for the lane threads (see `lane`).
    lane: Lane,
    /// Each worker's local FIFO batch, taken from `ready`; idle workers steal from them.
    stealers: Vec<Stealer<RawTask>>,
    /// Each worker's tasks that yielded, taken after every batch and the global queue
    /// (see `worker`); idle workers steal from them too.
    yielded: Vec<Stealer<RawTask>>,
    /// Each worker's local batch and yielded tasks, handed to the worker threads as they
    /// start.
    locals: Mutex<Vec<Option<WorkerQueues>>>,
    /// The sched-role: holding this lock is the exclusive right to run a step.
    role: Mutex<RoleState>,
    /// Workers spinning on the ready queues before they sleep (see `worker::search`).
    searching: AtomicUsize,
    /// Socket flusher tasks alive (see `Metrics::flusher_tasks`; counted by
    /// `net::post::flush`, which knows them, through `flusher_started`/`flusher_gone`).
    flushers: AtomicUsize,
    /// The shared half of the kernel event queue (its poller is in `role`).
    pub(crate) driver: Arc<Driver>,
    idle: Idle,
    /// Slow-path timers (time futures polled under a foreign waker), fired by the role.
    timers: Arc<WakerMap>,
    /// The nearest deadline of a parked task as of the role's last look at them
    /// (`Deadline::as_nanos`; `u64::MAX`: none), so the watcher can wake for it while
    /// nobody holds the role.
    heap_due: Padded<AtomicU64>,
    /// Wakers of `park` futures polled under a foreign waker, grouped by task: a wakeup
    /// or signal of the task wakes them.
    park_wakers: Arc<WakerMap>,
    /// Every live task (for shutdown).
    slots: TaskSlots,
    /// Threads for blocking closures (`spawn_blocking`).
    blocking: Arc<BlockingPool>,
    /// Tasks spawned and not yet finished.
    live: AtomicUsize,
    /// Signalled when `live` drops to zero.
    live_zero: (Mutex<()>, Condvar),
    pub(crate) counters: Counters,
    /// [`STEP_INTERVAL`] in `clock::stamp` units.
    step_interval: u64,
    /// [`heavy::HEAVY_POLL`] in `clock::stamp` units.
    heavy_poll: u64,
    /// [`RESCUE_AFTER`] in `clock::stamp` units.
    rescue_after: u64,
    /// [`SEARCH_SPIN`] in `clock::stamp` units.
    search_spin: u64,
    /// The CPUs the process may run on (`available_parallelism`, which follows the CPU
    /// affinity mask and the cgroup quota, when the core was built). With more workers
    /// than that, workers beyond it can only take turns on a CPU with the others: while
    /// as many run as there are CPUs (`cpus_taken`), a worker that readies tasks runs
    /// them itself rather than waking another (see `wake_worker`), and one that runs out
    /// of work does not spin (`worker::search`).
    cpus: usize,
    /// Where the core is in its life (a [`Phase`]); it only moves forward.
    phase: AtomicU8,
    /// Stop the workers when the last live task completes (shutdown from a worker).
    stop_when_idle: AtomicBool,
}

/// The phases of a core's life, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum Phase {
    Running,
    /// Shutdown has begun: spawns from outside the core are cancelled at once.
    Closing,
    /// Shutdown is cancelling: every spawn is cancelled at once.
    Cancelling,
    /// The workers leave their loop.
    Stopped,
}

/// What [`Scheduler::shut_down`] did, in task counts.
pub(crate) struct ShutdownCounts {
    pub(crate) finished: u64,
    pub(crate) cancelled: u64,
    pub(crate) leaked: usize,
    /// Blocking closures still running (left to finish on their detached threads).
    pub(crate) blocking_running: usize,
    /// When the wait for cancelled tasks ends (or ended): the caller's wait for the
    /// workers to exit shares it.
    pub(crate) cancel_deadline: Instant,
}

/// How the blocking pool is sized (see `Builder`).
pub(crate) struct BlockingConfig {
    pub(crate) max_threads: usize,
    pub(crate) keep_alive: Duration,
    pub(crate) thread_name: String,
}

impl Scheduler {
    /// A scheduler for `threads` workers (started by the caller with [`run_worker`]).
    /// `post_high_water`: the default high-water mark of the post queues of sockets made on
    /// this core (kept here for them; the scheduler does not use it).
    pub(crate) fn new(
        threads: usize,
        blocking: BlockingConfig,
        post_high_water: usize,
    ) -> io::Result<Arc<Scheduler>> {
        let (poller, driver) = crate::io::driver_pair()?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let locals: Vec<WorkerQueues> = (0..threads)
            .map(|_| WorkerQueues { batch: Worker::new_fifo(), yielded: Worker::new_fifo() })
            .collect();
        Ok(Arc::new(Scheduler {
            post_high_water,
            front: Inbox::new(),
            ready: Injector::new(),
            lane: Lane::new(),
            stealers: locals.iter().map(|w| w.batch.stealer()).collect(),
            yielded: locals.iter().map(|w| w.yielded.stealer()).collect(),
            locals: Mutex::new(locals.into_iter().map(Some).collect()),
            role: Mutex::new(RoleState::new(poller)),
            searching: AtomicUsize::new(0),
            flushers: AtomicUsize::new(0),
            driver: Arc::new(driver),
            idle: Idle::new(),
            timers: Arc::new(WakerMap::new()),
            heap_due: Padded(AtomicU64::new(u64::MAX)),
            park_wakers: Arc::new(WakerMap::new()),
            slots: TaskSlots::new(threads),
            blocking: Arc::new(BlockingPool::new(
                blocking.max_threads,
                blocking.keep_alive,
                blocking.thread_name,
            )),
            live: AtomicUsize::new(0),
            live_zero: (Mutex::new(()), Condvar::new()),
            counters: Counters::new(threads, threads),
            step_interval: clock::stamps_in(STEP_INTERVAL),
            heavy_poll: clock::stamps_in(heavy::HEAVY_POLL),
            rescue_after: clock::stamps_in(RESCUE_AFTER),
            search_spin: clock::stamps_in(SEARCH_SPIN),
            cpus,
            phase: AtomicU8::new(Phase::Running as u8),
            stop_when_idle: AtomicBool::new(false),
        }))
    }

    /// Spawns `future` (asleep until `start`, if given). `from_inside`: the caller is one
    /// of this core's workers (its spawns are admitted until shutdown starts cancelling).
    pub(crate) fn spawn<F>(
        self: &Arc<Self>,
        future: F,
        start: Option<Deadline>,
        from_inside: bool,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let id = NEXT_TASK_ID.fetch_add(1, Relaxed);
        let task = RawTask::new(future, self.clone(), id, start);
        crate::trace::trace_event!(task = id, delayed = start.is_some(), "spawn");
        self.start_task(task, from_inside);
        JoinHandle::new(task)
    }

    /// Runs `f` on the blocking pool (queued now, so closures start in call order); its
    /// result (or panic) resolves the returned handle, through a small task that waits
    /// for it. A closure whose handle was aborted before it started is skipped.
    pub(crate) fn spawn_blocking<F, R>(self: &Arc<Self>, f: F, from_inside: bool) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = futures::channel::oneshot::channel();
        let submitted = self.blocking.submit(Box::new(move || {
            if !tx.is_canceled() {
                let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
            }
        }));
        self.spawn(
            async move {
                if let Err(e) = submitted {
                    panic!("spawn_blocking: {e}");
                }
                match rx.await {
                    Ok(Ok(value)) => value,
                    // The closure's panic becomes this task's: its `JoinError::Panic`.
                    Ok(Err(payload)) => std::panic::resume_unwind(payload),
                    Err(_) => panic!("spawn_blocking: the blocking pool shut down before the closure ran"),
                }
            },
            None,
            from_inside,
        )
    }

    /// Registers a freshly allocated task and queues it (ready, or asleep until its start).
    fn start_task(&self, task: RawTask, from_inside: bool) {
        let admitted = self.slots.insert_if(task, || {
            let phase = self.phase();
            let rejected = phase >= Phase::Cancelling || (!from_inside && phase >= Phase::Closing);
            if !rejected {
                self.live.fetch_add(1, SeqCst);
            }
            !rejected
        });
        if !admitted {
            // Shutdown has begun: resolve the JoinHandle with `Cancelled` now, never run it.
            task.claim();
            // SAFETY: the claim just made us the task's owner; it never ran.
            let future = unsafe { task.refuse() };
            self.counters.finished(true);
            Self::mark_done(task);
            task.ref_dec();
            // The future is dropped flat: its drop may spawn again (refused again, here),
            // and a chain of those must not nest on the stack.
            let counter = self.counters.contained_panics.clone();
            crate::util::flat::run(move || {
                crate::contain::counting_in(&counter, || {
                    crate::contain::contain("dropping a refused task's future", future);
                });
            });
            return;
        }
        // SAFETY: the spawner owns the task until this push.
        if unsafe { task.deadline() }.is_never() {
            self.push_ready(task);
        } else {
            self.push_front(task);
        }
    }

    /// Tasks in the ready queue (global, batched, and yielded).
    fn ready_len(&self) -> usize {
        self.ready.len()
            + self.stealers.iter().map(|s| s.len()).sum::<usize>()
            + self.yielded.iter().map(|s| s.len()).sum::<usize>()
    }

    /// Whether any task is ready (globally, in a worker's batch, or yielded).
    fn has_ready(&self) -> bool {
        !self.ready.is_empty()
            || self.stealers.iter().any(|s| !s.is_empty())
            || self.yielded.iter().any(|s| !s.is_empty())
    }

    fn push_ready(&self, task: RawTask) {
        // The only worker of a core, readying a task (in a step, or while it polls), puts it
        // in its own batch when the global queue is empty: a plain store instead of a
        // shared push and a batch steal, and the same order (its batch runs before
        // anything pushed to the global queue later, and nothing older waits there).
        // Nobody needs waking: that worker runs it after its current step or poll.
        if self.single_worker() && self.ready.is_empty() {
            let (of, batch) = WORKER_OF.with(|w| w.get());
            if std::ptr::eq(of, self) && !batch.is_null() {
                // SAFETY: `run_worker` set this pointer on this thread to the batch it owns
                // and keeps alive until it clears the pointer; a `Worker` is only used from
                // its own thread, through shared references, as here.
                unsafe { (*batch).push(task) };
                return;
            }
        }
        self.ready.push(task);
        self.wake_worker();
    }

    fn push_front(&self, task: RawTask) {
        // Counted before the push, so the step that takes it never sees the count below it.
        self.counters.front_len.fetch_add(1, Relaxed);
        // SAFETY: the caller owns the task in phase QUEUED (or DONE, handing over the last
        // scheduler reference of a task with a heap entry), so it is in no other queue, and
        // the scheduler's reference keeps it alive until it is taken.
        unsafe { self.front.push(task.as_ptr()) };
        self.driver.kick();
    }

    /// Someone must run the task just pushed to the ready queue: wake a sleeping worker,
    /// or failing that the role holder blocked in epoll. Not when one of this core's
    /// workers pushed the only ready task, or any task while the running workers take
    /// every CPU (`cpus_taken`): it runs them as soon as its current poll or step ends,
    /// and if that poll lasts, someone who looks every interval takes over — the watcher
    /// (`idle`), or, with nobody asleep, a role holder whose wait in epoll is bounded (it
    /// blocks that way while another worker polls, see `role`). Waking another worker
    /// would cost a context switch per message at low load; with every CPU taken it adds
    /// no parallelism at all, only switches between workers that take turns on a CPU and
    /// run each other's tasks out of order (the woken worker takes half the batch and
    /// runs it while the other half waits: twice the tail).
    fn wake_worker(&self) {
        fence(SeqCst);
        if self.searching.load(SeqCst) > 0 {
            return;
        }
        let own_only = || self.on_own_worker() && (self.cpus_taken() || self.ready_len() <= 1);
        if self.idle.has_sleepers_fenced() {
            if own_only() || self.idle.notify_one() {
                return;
            }
        } else if self.driver.waits_bounded() && own_only() {
            return;
        }
        self.driver.kick_fenced();
    }

    /// Workers that hold a CPU or are about to: all but the sleepers not yet woken and a
    /// role holder blocked in epoll. For a caller that has just issued a `SeqCst` fence.
    fn workers_on_cpu(&self) -> usize {
        let workers = self.stealers.len();
        let off = self.idle.sleepers_fenced() + usize::from(self.driver.is_blocking());
        workers.saturating_sub(off)
    }

    /// Whether there are more workers than CPUs and as many of them run as there are
    /// CPUs, so that another one would only take turns with them (see `wake_worker`).
    /// For a caller that has just issued a `SeqCst` fence.
    fn cpus_taken(&self) -> bool {
        self.cpus < self.stealers.len() && self.workers_on_cpu() >= self.cpus
    }

    /// Whether more workers run than there are CPUs, so that they take turns on some
    /// (see `worker::search`).
    fn cpus_oversubscribed(&self) -> bool {
        self.cpus < self.stealers.len() && self.workers_on_cpu() > self.cpus
    }

    /// Whether the core has one worker (see `push_ready`).
    fn single_worker(&self) -> bool {
        self.stealers.len() == 1
    }

    /// Whether `waker` wakes a task of this core (see `Handle::owns_waker`).
    #[inline]
    pub(crate) fn owns_waker(&self, waker: &std::task::Waker) -> bool {
        RawTask::from_waker(waker).is_some_and(|task| {
            std::ptr::addr_eq(task.scheduler() as *const dyn Schedule, self as *const Scheduler)
        })
    }

    /// Whether the calling thread is one of this core's workers.
    fn on_own_worker(&self) -> bool {
        WORKER_OF.with(|w| std::ptr::eq(w.get().0, self))
    }

    /// Finishes a task that completed, panicked or was cancelled, and drops the
    /// scheduler's reference. The task is marked done *before* it leaves the live count,
    /// so whoever sees the core idle sees every `JoinHandle` finished.
    fn complete(&self, task: RawTask, cancelled: bool) {
        self.slots.remove(task);
        self.counters.finished(cancelled);
        let in_heap = Self::mark_done(task);
        if in_heap {
            // The task still has an entry in the deadline heap (it was woken there and the
            // entry is not due yet): the sched-role drops the entry, then the worker that
            // ran that step drops this reference (outside the role: it may drop the
            // output of a detached task, after the live count fell).
            // Pushed before the live count drops, so that workers leaving at shutdown find
            // it (see `worker::run`).
            self.push_front(task);
        } else {
            // Before the live count drops: a detached task's output is dropped by now when
            // the core is seen idle. (`self` outlives this: the worker holds the core.)
            task.ref_dec();
        }
        if self.live.fetch_sub(1, SeqCst) == 1 {
            let _g = lock(&self.live_zero.0);
            self.live_zero.1.notify_all();
            if self.stop_when_idle.load(SeqCst) {
                self.stop();
            }
        }
    }

    /// Marks the task done and wakes its `JoinHandle`; the caller still holds the
    /// scheduler's reference. (Counters are updated before, so whoever sees the task done
    /// sees them too.) Returns whether the task still has a deadline-heap entry.
    fn mark_done(task: RawTask) -> bool {
        let done = task.header().state.complete();
        if done.join_waker {
            // SAFETY: `complete` just moved the task to DONE with `JOIN_WAKER` set.
            unsafe { task.wake_join() };
        }
        done.in_heap
    }

    /// Waits until no live task remains, or `timeout` passes. True if none remains.
    pub(crate) fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut g = lock(&self.live_zero.0);
        while self.live.load(Acquire) != 0 {
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
                None => Duration::from_secs(3600),
            };
            g = self.live_zero.1.wait_timeout(g, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }

    /// The shutdown protocol: spawns from outside are refused from now on; live tasks get
    /// `grace` to finish (and may spawn more); then every live task is cancelled (its future
    /// dropped by a worker, never while it is polled) and the workers are told to stop —
    /// at once, or, when called from one of this core's own workers (which cannot wait for
    /// itself), once the last cancelled task is gone.
    pub(crate) fn shut_down(
        &self,
        grace: Duration,
        from_own_worker: bool,
        cancel_wait: Duration,
    ) -> ShutdownCounts {
        // User code dropped or woken here on the caller's thread (queued blocking closures,
        // foreign wakers) counts its contained panics in this core.
        crate::contain::counting_in(&self.counters.contained_panics, || {
            self.shut_down_counting(grace, from_own_worker, cancel_wait)
        })
    }

    fn shut_down_counting(
        &self,
        grace: Duration,
        from_own_worker: bool,
        cancel_wait: Duration,
    ) -> ShutdownCounts {
        let (finished0, cancelled0) =
            (self.counters.completed.load(Acquire), self.counters.cancelled.load(Acquire));
        self.advance(Phase::Closing);
        if !from_own_worker {
            self.wait_idle(grace);
        }
        self.advance(Phase::Cancelling);
        let cancel_deadline = Instant::now() + cancel_wait;
        // Every task is marked first and queued without a wake decision each; then every
        // worker is woken once. (A wake per task made this loop a context switch per task
        // on a loaded CPU: each push woke a worker that took the CPU from this thread, ran
        // the one task and slept again, so the loop crawled and the cancel wait ran out
        // with most tasks never marked.)
        for task in self.slots.snapshot() {
            if task.header().state.notify(crate::task::state::CANCELLED) == Notify::Schedule {
                self.counters.unparked();
                self.ready.push(task);
            }
            task.ref_dec();
        }
        // The heavy lane's tasks too: a cancelled task is not heavy, and the workers drop
        // it at once (the lane threads may get no CPU at all).
        self.lane.drain(|task| self.ready.push(task));
        self.idle.notify_all();
        self.driver.kick();
        if from_own_worker {
            self.stop_when_idle.store(true, SeqCst);
            if self.live.load(SeqCst) == 0 {
                self.stop();
            }
        } else {
            self.wait_idle(cancel_deadline.saturating_duration_since(Instant::now()));
            self.stop();
        }
        self.blocking.shut_down();
        ShutdownCounts {
            finished: self.counters.completed.load(Acquire) - finished0,
            cancelled: self.counters.cancelled.load(Acquire) - cancelled0,
            leaked: self.live.load(Acquire),
            blocking_running: self.blocking.counts().running,
            cancel_deadline,
        }
    }

    fn phase(&self) -> Phase {
        match self.phase.load(SeqCst) {
            0 => Phase::Running,
            1 => Phase::Closing,
            2 => Phase::Cancelling,
            _ => Phase::Stopped,
        }
    }

    fn advance(&self, to: Phase) {
        self.phase.fetch_max(to as u8, SeqCst);
    }

    /// The nearest deadline the sched-role must act on: a parked task's (as of the last
    /// step) or a slow-path timer's.
    fn next_due(&self) -> Deadline {
        let timer = self.timers.first_group().unwrap_or(u64::MAX);
        Deadline::from_nanos(self.heap_due.load(Relaxed).min(timer)).min(self.lane.boost_due())
    }

    /// Whether the workers must leave their loop (the core has stopped: see `stop`).
    pub(crate) fn stopped(&self) -> bool {
        self.phase() == Phase::Stopped
    }

    /// Tells the workers to leave their loop. Nobody turns the kernel queue or fires the
    /// slow-path timers after this: waits on sockets made on this core fail from now on
    /// (the driver wakes the foreign wakers waiting; the core's own tasks are cancelled),
    /// and timers polled by other executors are woken to register
    /// again, on the process-wide default core (see `runtime::current_or_default`).
    fn stop(&self) {
        self.advance(Phase::Stopped);
        self.idle.notify_all();
        self.lane.wake_all();
        self.driver.kick_always();
        self.driver.shut_down();
        self.timers.wake_up_to(u64::MAX);
    }

    /// A socket flusher task is about to be spawned (see `Metrics::flusher_tasks`).
    pub(crate) fn flusher_started(&self) {
        self.flushers.fetch_add(1, Relaxed);
    }

    /// A socket flusher task's future was dropped (run to its end, cancelled or refused).
    pub(crate) fn flusher_gone(&self) {
        self.flushers.fetch_sub(1, Relaxed);
    }

    /// A snapshot of the counters.
    pub(crate) fn metrics(&self) -> Metrics {
        let blocking = self.blocking.counts();
        self.counters.snapshot(Gauges {
            live: self.live.load(Relaxed),
            flushers: self.flushers.load(Relaxed),
            ready: self.ready_len(),
            lane_polls: self.lane.polls.load(Relaxed),
            lane_queued: self.lane.len(),
            foreign_timers: self.timers.len(),
            blocking_threads: blocking.threads,
            blocking_queued: blocking.queued,
        })
    }
}

impl Schedule for Scheduler {
    fn schedule_woken(&self, task: RawTask) {
        self.counters.unparked();
        self.push_ready(task);
    }

    fn aborted_queued(&self) {
        // One waiting for the heavy lane goes to the workers, which drop it in its turn:
        // the lane's threads may get no CPU for a while.
        if self.lane.take(|task| task.header().state.is_cancelled(), |task| self.ready.push(task)) > 0 {
            self.wake_worker();
        }
    }

    fn add_timer(&self, deadline: Deadline, waker: Waker) -> WakerEntry {
        let entry = self.timers.insert(deadline.as_nanos(), waker);
        if self.stopped() {
            // The core stopped after the caller chose it, and its last wake of the map
            // (`stop`) may have run before this insert: nobody fires a stopped core's
            // timers, so wake it now, to register again on the default core. (`stop` marks
            // the phase before it takes the map's lock, and this insert took that lock
            // before it looks: one of the two sees the other.)
            self.timers.wake_up_to(u64::MAX);
        } else {
            self.driver.kick();
        }
        entry
    }

    fn add_park_waker(&self, task: RawTask, waker: Waker) -> WakerEntry {
        self.park_wakers.insert(task.as_ptr() as u64, waker)
    }

    fn wake_parked(&self, task: RawTask) {
        crate::contain::counting_in(&self.counters.contained_panics, || {
            self.park_wakers.wake_group(task.as_ptr() as u64);
        });
    }

    fn contained_panics(&self) -> &Arc<AtomicU64> {
        &self.counters.contained_panics
    }
}

/// What [`WORKER_OF`] holds: the core whose worker this thread is (null: none; compared
/// by address only), and that worker's batch when it is the core's only worker (else
/// null; see `Scheduler::push_ready`).
type WorkerOf = (*const Scheduler, *const Worker<RawTask>);

thread_local! {
    static WORKER_OF: std::cell::Cell<WorkerOf> =
        const { std::cell::Cell::new((std::ptr::null(), std::ptr::null())) };
}

/// A worker thread's own queues (see [`Scheduler::stealers`] and [`Scheduler::yielded`]).
struct WorkerQueues {
    batch: Worker<RawTask>,
    yielded: Worker<RawTask>,
}

/// The body of worker thread `index` of `sched`.
pub(crate) fn run_worker(sched: &Scheduler, index: usize) {
    let queues = lock(&sched.locals)[index].take().expect("each worker index runs once");
    let local = &queues.batch;
    let batch: *const Worker<RawTask> = if sched.single_worker() { local } else { std::ptr::null() };
    let prev = WORKER_OF.with(|w| w.replace((sched, batch)));
    worker::run(sched, index, local, &queues.yielded);
    // Before `local` goes: nothing may reach it through the thread-local any more.
    WORKER_OF.with(|w| w.set(prev));
}

/// The body of heavy-lane thread `index` of `sched` (see `lane`; a core has as many as
/// workers). The runtime's context counts it as one of the core's threads; [`WORKER_OF`]
/// does not: it never runs the ready queue, so a task it readies must wake a worker.
pub(crate) fn run_lane(sched: &Scheduler, index: usize) {
    worker::run_lane(sched, sched.counters.workers() + index);
}
