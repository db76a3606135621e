//! The scheduler: worker threads, the migrating sched-role, and the queues between them.
//!
//! All workers run the same loop. The *sched-role* is a lock that whichever worker finds it
//! free takes with `try_lock`; the holder runs one [`SchedState::step`] and releases it:
//!
//! 1. drain the **front queue** (MPSC, lock-free; spawns with a deadline, tasks that returned
//!    `Pending` with a deadline, wakes of tasks sitting in the heap), in FIFO order: run what
//!    must run, park the rest in the **deadline heap**;
//! 2. poll the kernel queue (`mio::Poll`) with timeout 0, or — when it has nothing else to do
//!    — block in it until the nearest deadline (armed on a `timerfd`, so sub-ms precise);
//! 3. pop expired deadlines and fire slow-path timers.
//!
//! Ready tasks go to the **ready queue**, one FIFO shared by every worker (no task is tied to
//! a thread). Workers pop up to [`EXEC_BATCH`] tasks between two attempts at the role, so
//! kernel events are looked at regularly however busy the queues are.
//!
//! Ready tasks sit in a global FIFO (`crossbeam_deque::Injector`); a worker takes about half
//! of it at a time into its own FIFO batch, which idle workers may steal. Tasks go back to
//! the global tail when requeued, so no task is tied to a thread.
//!
//! Wakeup rules (no lost wakeup, no busy wait, few context switches):
//! - a worker that runs out of work *searches* for a few rounds (non-blocking steps, the
//!   queues) before it sleeps; under load new work arrives within microseconds;
//! - a push to the ready queue wakes nobody while a worker searches (it will find the
//!   task); otherwise it wakes a sleeping worker, or kicks the role holder out of epoll;
//! - a worker that starts a task while nobody searches wakes a sleeper, or, with none
//!   asleep and work left, kicks the role holder out of epoll; so somebody is always free
//!   to hold the role and watch the kernel queue, the deadlines and the queued work, even
//!   if the task blocks its worker;
//! - a worker sleeps only while another holds the role (re-checked after it publishes
//!   itself as a sleeper), so the holder either watches epoll or sees it and wakes it;
//! - a push to the front queue kicks the role holder out of epoll ([`Shared::kick`]);
//! - the role holder blocks in epoll only after publishing `polling` and re-checking the
//!   queues, and a worker sleeps only after publishing itself as a sleeper and re-checking
//!   them (Dekker handshakes with the pushers, all `SeqCst`).
//!
//! The task state machine lives in `task::state`; this module only moves `RawTask`s around.

mod idle;
mod live;

use crate::io::ScheduledIo;
use crate::sys::TimerFd;
use crate::task::raw::{RawTask, NO_DEADLINE};
use crate::task::state::{AfterPoll, Claim};
use crate::task::Header;
use crate::time::clock;
use crate::util::front::FrontQueue;
use crate::util::heap::DeadlineHeap;
use crate::util::waker_map::{WakerEntry, WakerMap};
use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use idle::Idle;
use live::LiveList;
use mio::{Events, Interest, Poll, Token};
use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::task::Waker;
use std::time::{Duration, Instant};

/// Ready tasks a worker runs between two attempts at the sched-role.
pub(crate) const EXEC_BATCH: usize = 64;
/// Longest time a worker runs tasks without trying the sched-role, however few polls
/// that took: CPU-heavy tasks cannot delay timers and kernel events by more than this
/// (plus one poll).
const STEP_INTERVAL_NS: u64 = 500_000;
/// Rounds a worker that ran out of work searches before it sleeps.
const SEARCH_ROUNDS: usize = 32;
/// Kernel events handled per epoll call.
const EVENTS_PER_STEP: usize = 1024;

const KICK_TOKEN: Token = Token(0);
const TIMER_TOKEN: Token = Token(1);

/// Counters of one worker, for `IoCore::metrics` (a cache line of its own: each worker
/// bumps its `polls` on every poll).
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct WorkerStats {
    pub(crate) polls: AtomicU64,
    pub(crate) busy_ns: AtomicU64,
    /// Tasks this worker parked (counted *before* the task can be woken; see `parked`).
    parks: AtomicU64,
}

/// Everything the workers, wakers and handles of one core share.
pub(crate) struct Shared {
    front: FrontQueue<Header>,
    front_len: AtomicUsize,
    /// Tasks that yielded (`yield_now`): readied at the *end* of the next step, after the
    /// kernel events and the expired deadlines, so a yielding task lets them go first.
    deferred: FrontQueue<Header>,
    /// When the last schedule step started (iocore clock).
    last_step_ns: AtomicU64,
    ready: Injector<RawTask>,
    /// Each worker's local FIFO batch, taken from `ready` in one go; others may steal.
    stealers: Vec<Stealer<RawTask>>,
    locals: Mutex<Vec<Option<Worker<RawTask>>>>,
    sched: Mutex<SchedState>,
    /// Workers looking for work before they sleep (see `search`).
    searching: AtomicUsize,
    /// The role holder is in, or about to enter, a blocking epoll wait.
    polling: AtomicBool,
    kicker: mio::Waker,
    pub(crate) registry: mio::Registry,
    idle: Idle,
    /// Closed sockets' readiness blocks, freed by the sched-role before its next epoll wait.
    io_release: Mutex<Vec<Arc<ScheduledIo>>>,
    /// Slow-path timers (time futures polled under a foreign waker), fired by the sched-role.
    timers: Arc<WakerMap>,
    /// Wakers of `park` futures polled under a foreign waker, grouped by task: a wakeup
    /// or signal of the task wakes them (see `task::park`).
    park_wakers: Arc<WakerMap>,
    pub(crate) live: AtomicUsize,
    live_list: LiveList,
    live_zero: (Mutex<()>, Condvar),
    /// Tasks the sched-role parked (counted before the task can be woken).
    role_parks: AtomicU64,
    /// Tasks taken out of `WAITING` (counted after).
    unparks: AtomicU64,
    pub(crate) steps: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    /// Panics in user code caught outside a task's poll (see `contain`).
    pub(crate) contained_panics: AtomicU64,
    pub(crate) workers: Vec<WorkerStats>,
    /// Spawns from outside the core are cancelled at once (shutdown has begun).
    pub(crate) closing: AtomicBool,
    /// Every spawn is cancelled at once (shutdown is cancelling).
    pub(crate) cancelling: AtomicBool,
    /// Workers exit their loop.
    stop: AtomicBool,
    /// Stop the workers when the last live task completes.
    stop_when_idle: AtomicBool,
}

struct SchedState {
    poll: Poll,
    events: Events,
    heap: DeadlineHeap<RawTask>,
    timerfd: TimerFd,
    /// The deadline the timerfd is armed for (`NO_DEADLINE`: disarmed).
    armed: u64,
    scratch: Vec<*mut Header>,
}

// SAFETY: `scratch` only holds task pointers between two lines of `drain_front`; the rest is Send.
unsafe impl Send for SchedState {}

use crate::sync::lock;

impl Shared {
    pub(crate) fn new(threads: usize) -> io::Result<Shared> {
        let poll = Poll::new()?;
        let kicker = mio::Waker::new(poll.registry(), KICK_TOKEN)?;
        let timerfd = TimerFd::new()?;
        poll.registry().register(
            &mut mio::unix::SourceFd(&timerfd.as_raw_fd()),
            TIMER_TOKEN,
            Interest::READABLE,
        )?;
        let registry = poll.registry().try_clone()?;
        let locals: Vec<Worker<RawTask>> = (0..threads).map(|_| Worker::new_fifo()).collect();
        Ok(Shared {
            stealers: locals.iter().map(|w| w.stealer()).collect(),
            locals: Mutex::new(locals.into_iter().map(Some).collect()),
            front: FrontQueue::new(),
            front_len: AtomicUsize::new(0),
            deferred: FrontQueue::new(),
            last_step_ns: AtomicU64::new(0),
            ready: Injector::new(),
            sched: Mutex::new(SchedState {
                poll,
                events: Events::with_capacity(EVENTS_PER_STEP),
                heap: DeadlineHeap::new(),
                timerfd,
                armed: NO_DEADLINE,
                scratch: Vec::new(),
            }),
            searching: AtomicUsize::new(0),
            polling: AtomicBool::new(false),
            kicker,
            registry,
            idle: Idle::new(),
            io_release: Mutex::new(Vec::new()),
            timers: Arc::new(WakerMap::new()),
            park_wakers: Arc::new(WakerMap::new()),
            live: AtomicUsize::new(0),
            live_list: LiveList::new(threads),
            live_zero: (Mutex::new(()), Condvar::new()),
            role_parks: AtomicU64::new(0),
            unparks: AtomicU64::new(0),
            steps: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            contained_panics: AtomicU64::new(0),
            workers: (0..threads).map(|_| WorkerStats::default()).collect(),
            closing: AtomicBool::new(false),
            cancelling: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            stop_when_idle: AtomicBool::new(false),
        })
    }

    pub(crate) fn front_len(&self) -> usize {
        self.front_len.load(Relaxed)
    }

    /// Tasks parked now. Parks are counted before the task can be woken and unparks
    /// after, and `unparks` is read first (`Acquire`, pairing with the `Release` of each
    /// unpark, which follows its park through the task's state word): never negative.
    pub(crate) fn parked(&self) -> usize {
        let unparks = self.unparks.load(Acquire);
        let parks =
            self.role_parks.load(Acquire) + self.workers.iter().map(|w| w.parks.load(Acquire)).sum::<u64>();
        usize::try_from(parks.saturating_sub(unparks)).unwrap_or(usize::MAX)
    }

    /// Slow-path timers registered now.
    pub(crate) fn timer_count(&self) -> usize {
        self.timers.len()
    }

    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len() + self.stealers.iter().map(|s| s.len()).sum::<usize>()
    }

    /// Whether any task is ready (globally or in a worker's batch).
    fn has_ready(&self) -> bool {
        !self.ready.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }

    /// Registers a freshly allocated task and queues it (ready, or asleep until its deadline).
    pub(crate) fn start_task(self: &Arc<Self>, task: RawTask, from_inside: bool) {
        let admitted = self.live_list.insert_if(task, || {
            let rejected = self.cancelling.load(SeqCst) || (!from_inside && self.closing.load(SeqCst));
            if !rejected {
                self.live.fetch_add(1, SeqCst);
            }
            !rejected
        });
        if !admitted {
            // Shutdown has begun: resolve the JoinHandle with `Cancelled`, never run it.
            task.claim();
            // SAFETY: the claim just made us the task's owner; it never ran.
            unsafe { task.cancel() };
            self.count_finished(true);
            Self::mark_done(task);
            task.ref_dec();
            return;
        }
        // SAFETY: the spawner owns the task until this push.
        if unsafe { task.deadline() } == NO_DEADLINE {
            self.push_ready(task);
        } else {
            self.push_front(task);
        }
    }

    /// A waker moved `task` out of `WAITING`.
    pub(crate) fn schedule_woken(&self, task: RawTask, in_heap: bool) {
        self.unparks.fetch_add(1, Release);
        if in_heap {
            self.push_front(task);
        } else {
            self.push_ready(task);
        }
    }

    fn push_ready(&self, task: RawTask) {
        self.ready.push(task);
        self.wake_worker();
    }

    fn push_front(&self, task: RawTask) {
        // Counted before the push, so the step that pops it never sees the count below it.
        self.front_len.fetch_add(1, Relaxed);
        // SAFETY: the caller owns the task in phase QUEUED, so it is in no other queue, and
        // the scheduler's reference keeps it alive until it is popped.
        unsafe { self.front.push(task.as_ptr()) };
        self.kick();
    }

    /// A task that yielded: ready again after the next step's events and deadlines.
    fn push_deferred(&self, task: RawTask) {
        // SAFETY: as in `push_front` (a task is in one queue at a time; `deferred` uses the
        // same link).
        unsafe { self.deferred.push(task.as_ptr()) };
        self.kick();
    }

    /// Registers a slow-path timer: `waker` is woken once the clock reaches `deadline`,
    /// unless the returned entry is dropped first.
    pub(crate) fn add_timer(&self, deadline: u64, waker: Waker) -> WakerEntry {
        let entry = self.timers.insert(deadline, waker);
        self.kick();
        entry
    }

    /// Registers the waker of a `park` polled under a foreign waker: woken by the next
    /// wakeup or signal of `task` (see [`wake_parked`](Self::wake_parked)).
    pub(crate) fn add_park_waker(&self, task: RawTask, waker: Waker) -> WakerEntry {
        self.park_wakers.insert(task.as_ptr() as u64, waker)
    }

    /// Wakes the foreign wakers of `task`'s `park` futures.
    pub(crate) fn wake_parked(&self, task: RawTask) {
        self.park_wakers.wake_group(task.as_ptr() as u64);
    }

    /// Counts a panic caught in user code outside a task's poll.
    pub(crate) fn note_contained_panic(&self) {
        self.contained_panics.fetch_add(1, Relaxed);
    }

    /// Hands a closed socket's readiness block to the sched-role for release.
    pub(crate) fn release_io(&self, io: Arc<ScheduledIo>) {
        lock(&self.io_release).push(io);
    }

    /// Wakes the role holder out of its epoll wait, if it is (about to be) in one.
    pub(crate) fn kick(&self) {
        fence(SeqCst);
        self.kick_fenced();
    }

    /// [`kick`](Self::kick) for a caller that has just issued a `SeqCst` fence.
    fn kick_fenced(&self) {
        if self.polling.load(SeqCst) && self.polling.swap(false, SeqCst) {
            // A failed write means the eventfd is already signalled: nothing is lost.
            let _ = self.kicker.wake();
        }
    }

    /// Someone must run the task just pushed to the ready queue: wake a sleeping worker,
    /// or failing that the role holder blocked in epoll. (Even when the pusher is a worker
    /// about to run the task itself, a sleeper is woken: while this worker runs tasks,
    /// another must be free to take the sched-role and watch the kernel queue and the
    /// deadlines, or a task that blocks its worker would stall all IO and timers.)
    fn wake_worker(&self) {
        fence(SeqCst);
        if self.searching.load(SeqCst) > 0 {
            return;
        }
        if self.idle.has_sleepers_fenced() && self.idle.notify_one() {
            return;
        }
        self.kick_fenced();
    }

    /// Finishes a task that completed, panicked or was cancelled, and drops the
    /// scheduler's reference. The task is marked done *before* it leaves the live count,
    /// so whoever sees the core idle sees every `JoinHandle` finished.
    pub(crate) fn complete(&self, task: RawTask, cancelled: bool) {
        self.live_list.remove(task);
        self.count_finished(cancelled);
        Self::mark_done(task);
        if self.live.fetch_sub(1, SeqCst) == 1 {
            let _g = lock(&self.live_zero.0);
            self.live_zero.1.notify_all();
            if self.stop_when_idle.load(SeqCst) {
                self.stop();
            }
        }
        task.ref_dec();
    }

    fn count_finished(&self, cancelled: bool) {
        if cancelled {
            self.cancelled.fetch_add(1, Relaxed);
        } else {
            self.completed.fetch_add(1, Relaxed);
        }
    }

    /// Marks the task done and wakes its `JoinHandle`; the caller still holds the
    /// scheduler's reference. (Counters are updated before, so whoever sees the task done
    /// sees them too.)
    fn mark_done(task: RawTask) {
        if task.header().state.complete() {
            // SAFETY: `complete` just moved the task to DONE with `JOIN_WAKER` set.
            unsafe { task.wake_join() };
        }
    }

    /// Shutdown from one of this core's own workers cannot wait: the workers stop by
    /// themselves once the last (cancelled) task is gone.
    pub(crate) fn stop_once_idle(&self) {
        self.stop_when_idle.store(true, SeqCst);
        if self.live.load(SeqCst) == 0 {
            self.stop();
        }
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

    /// Requests cancellation of every live task.
    pub(crate) fn cancel_all(&self) {
        for task in self.live_list.snapshot() {
            task.notify(crate::task::state::CANCELLED);
            task.ref_dec();
        }
    }

    /// Tells the workers to leave their loop.
    pub(crate) fn stop(&self) {
        self.stop.store(true, SeqCst);
        self.idle.notify_all();
        let _ = self.kicker.wake();
    }

    /// The next task for worker `me`: its batch first, then a new batch from the global
    /// queue (about half of it, so the other workers get the rest), then another worker's
    /// batch.
    fn pop_ready(&self, me: usize, local: &Worker<RawTask>) -> Option<RawTask> {
        let task = local.pop().or_else(|| self.steal_into(me, local))?;
        // While this worker runs `task` (which may take long, or block), another must be
        // free to take the sched-role and watch the kernel queue, the deadlines and the
        // rest of the ready queue (including this worker's batch). Unless someone is
        // searching: wake a sleeper (it searches, then holds the role in epoll), or, if
        // none sleeps and work is left, kick the role holder out of epoll to take it.
        // Under load nobody sleeps or polls and this costs a few loads.
        // (A stale `searching` is harmless: a searcher that stops either found work and
        // does this check itself, or re-checks every queue before it sleeps.)
        if self.searching.load(Relaxed) == 0 {
            fence(SeqCst);
            if self.idle.has_sleepers_fenced() {
                self.idle.notify_one();
            } else if self.polling.load(SeqCst) && self.has_ready() {
                // The holder re-checks the queues after publishing `polling`: one of the
                // two sees the other.
                self.kick_fenced();
            }
        }
        Some(task)
    }

    fn steal_into(&self, me: usize, local: &Worker<RawTask>) -> Option<RawTask> {
        loop {
            let mut retry = false;
            match self.ready.steal_batch_and_pop(local) {
                Steal::Success(t) => return Some(t),
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
            for (i, other) in self.stealers.iter().enumerate() {
                if i == me {
                    continue;
                }
                match other.steal_batch_and_pop(local) {
                    Steal::Success(t) => return Some(t),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
            std::hint::spin_loop();
        }
    }

    /// Whether nobody holds the sched-role right now.
    fn role_is_free(&self) -> bool {
        !matches!(self.sched.try_lock(), Err(TryLockError::WouldBlock))
    }

    fn try_sched(&self) -> Option<MutexGuard<'_, SchedState>> {
        match self.sched.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Polls one task the worker popped from the ready queue.
    fn run_task(&self, task: RawTask, worker: usize) {
        match task.claim() {
            Claim::Cancel => {
                // SAFETY: the claim made this worker the task's owner.
                unsafe { task.cancel() };
                self.complete(task, true);
            }
            claim @ (Claim::Run | Claim::Start) => {
                // The deadline is sticky until it passes (or the delayed start is spent):
                // a future that registered it and is not polled again must still be woken.
                // SAFETY: this worker owns the task (RUNNING).
                let deadline = unsafe { task.deadline() };
                if claim == Claim::Start || (deadline != NO_DEADLINE && deadline <= clock::now_ns()) {
                    // SAFETY: as above.
                    unsafe { task.set_deadline(NO_DEADLINE) };
                }
                // Only this worker writes its counters: a plain load and store, no lock prefix.
                let polls = &self.workers[worker].polls;
                polls.store(polls.load(Relaxed) + 1, Relaxed);
                #[cfg(feature = "tracing")]
                let _span = tracing::trace_span!("poll", task = task.header().id).entered();
                let done = CURRENT_TASK.with(|c| {
                    c.set(task.as_ptr());
                    crate::io::reset_budget(Some(crate::io::BUDGET));
                    // SAFETY: the claim made this worker the task's owner (RUNNING).
                    let done = unsafe { task.poll() };
                    crate::io::reset_budget(None);
                    c.set(std::ptr::null_mut());
                    done
                });
                let yielded = YIELDED.with(|y| y.replace(false));
                if done {
                    self.complete(task, false);
                    return;
                }
                // Counted as parked before it can be woken (see `parked`), undone below if
                // it is not parked. Only this worker writes `parks`: plain load and store.
                let parks = &self.workers[worker].parks;
                let before = parks.load(Relaxed);
                parks.store(before + 1, Release);
                // SAFETY: this worker still owns the task (RUNNING).
                let has_deadline = unsafe { task.deadline() } != NO_DEADLINE;
                let next = task.header().state.after_poll(has_deadline);
                if next != AfterPoll::Parked {
                    parks.store(before, Relaxed);
                }
                match next {
                    AfterPoll::Requeue if yielded => self.push_deferred(task),
                    AfterPoll::Requeue => self.push_ready(task),
                    AfterPoll::ToSched => self.push_front(task),
                    AfterPoll::Parked => {
                        crate::trace::trace_event!(task = task.header().id, "park");
                    }
                }
            }
        }
    }

    /// A worker that ran out of work looks for more for a short while (kernel events via
    /// non-blocking steps, the ready queues) before it sleeps. Under load, new work usually
    /// arrives within microseconds, and while a worker searches nobody needs waking
    /// ([`wake_worker`](Self::wake_worker) skips the futex/eventfd). True if work appeared.
    fn search(&self) -> bool {
        self.searching.fetch_add(1, SeqCst);
        let mut found = false;
        for round in 0..SEARCH_ROUNDS {
            if let Some(mut s) = self.try_sched() {
                s.step(self, false);
            }
            if self.has_ready() || self.stop.load(Relaxed) {
                found = true;
                break;
            }
            if round % 4 == 3 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        // After this decrement a pusher wakes someone; our caller re-checks the queues
        // (under the idle lock, or after publishing `polling`) before it sleeps.
        self.searching.fetch_sub(1, SeqCst);
        found
    }

    /// The body of one worker thread.
    pub(crate) fn run_worker(self: &Arc<Self>, index: usize) {
        let _ctx = enter(self.clone(), true);
        let stats = &self.workers[index];
        let local = lock(&self.locals)[index].take().expect("each worker index runs once");
        while !self.stop.load(Acquire) {
            if let Some(mut s) = self.try_sched() {
                s.step(self, false);
            }
            let start = clock::now_ns();
            let mut now = start;
            let mut ran = 0;
            while ran < EXEC_BATCH {
                let Some(task) = self.pop_ready(index, &local) else { break };
                self.run_task(task, index);
                ran += 1;
                now = clock::now_ns();
                // Bounded in time too: unless the role holder watches epoll (and the
                // timerfd), look at the kernel queue and the deadlines again.
                if now.saturating_sub(self.last_step_ns.load(Relaxed)) > STEP_INTERVAL_NS
                    && !self.polling.load(Relaxed)
                {
                    break;
                }
            }
            if ran > 0 {
                let busy = stats.busy_ns.load(Relaxed) + (now - start);
                stats.busy_ns.store(busy, Relaxed);
                continue;
            }
            if self.search() {
                continue;
            }
            match self.try_sched() {
                Some(mut s) => s.step(self, true),
                // Sleep only while the role is held: its holder either watches the kernel
                // queue, or (about to run tasks) sees this sleeper and wakes it. Checked
                // after publishing the sleeper (Dekker with `pop_ready`).
                None => self.idle.sleep(|| self.has_ready() || self.stop.load(SeqCst) || self.role_is_free()),
            }
        }
        // Leaving (shutdown): hand back anything still batched here.
        while let Some(t) = local.pop() {
            self.ready.push(t);
        }
    }
}

impl SchedState {
    /// One schedule step; see the module docs. `block`: wait in epoll if nothing is ready.
    fn step(&mut self, sh: &Shared, block: bool) {
        sh.steps.fetch_add(1, Relaxed);
        sh.last_step_ns.store(clock::now_ns(), Relaxed);
        // Sockets closed before this point are deregistered: no event fetched from now on
        // can name them, and events fetched earlier were handled in earlier steps.
        lock(&sh.io_release).clear();
        let produced = self.drain_front(sh) + self.expire(sh);
        let mut timeout = Some(Duration::ZERO);
        if block && produced == 0 {
            sh.polling.store(true, SeqCst);
            fence(SeqCst);
            let busy =
                !sh.front.is_empty() || !sh.deferred.is_empty() || sh.has_ready() || sh.stop.load(SeqCst);
            if !busy {
                timeout = self.arm_timer(sh);
            }
        }
        if let Err(e) = self.poll.poll(&mut self.events, timeout) {
            debug_assert_eq!(e.kind(), io::ErrorKind::Interrupted, "epoll_wait failed: {e}");
        }
        sh.polling.store(false, SeqCst);
        for event in self.events.iter() {
            match event.token() {
                KICK_TOKEN => {}
                TIMER_TOKEN => {
                    self.timerfd.drain();
                    self.armed = NO_DEADLINE;
                }
                Token(ptr) => {
                    // SAFETY: tokens other than the two above are `Arc<ScheduledIo>` pointers
                    // of registered sockets; a closed socket's block is only freed at the
                    // start of a later step (see `release_io`), after this loop.
                    let io = unsafe { &*(ptr as *const ScheduledIo) };
                    io.dispatch(event);
                }
            }
        }
        self.drain_front(sh);
        self.expire(sh);
        // Last: tasks that yielded go behind everything this step made ready.
        sh.deferred.take_all(&mut self.scratch);
        for ptr in self.scratch.drain(..) {
            // SAFETY: the deferred queue holds the scheduler's reference of each task.
            sh.push_ready(unsafe { RawTask::from_ptr(ptr) });
        }
    }

    /// Arms the timerfd for the nearest deadline; returns the epoll timeout to use.
    fn arm_timer(&mut self, sh: &Shared) -> Option<Duration> {
        let next = self.heap.peek_deadline().into_iter().chain(sh.timers.first_group()).min();
        let next = next?;
        let now = clock::now_ns();
        if next <= now {
            return Some(Duration::ZERO);
        }
        if self.armed != next {
            if self.timerfd.set(Duration::from_nanos(next - now)).is_err() {
                // Fall back to epoll's millisecond timeout, rounded up by mio.
                return Some(Duration::from_nanos(next - now));
            }
            self.armed = next;
        }
        None
    }

    /// Takes every task from the front queue: runs the ones that must run, parks the rest.
    fn drain_front(&mut self, sh: &Shared) -> usize {
        sh.front.take_all(&mut self.scratch);
        if self.scratch.is_empty() {
            return 0;
        }
        sh.front_len.fetch_sub(self.scratch.len(), Relaxed);
        let mut produced = 0;
        let mut scratch = std::mem::take(&mut self.scratch);
        for ptr in scratch.drain(..) {
            // SAFETY: the front queue holds the scheduler's reference of each task, and the
            // sched-role owns a task it popped (phase QUEUED) until it queues or parks it.
            let task = unsafe { RawTask::from_ptr(ptr) };
            let state = &task.header().state;
            if state.leave_heap() {
                // SAFETY: only this core's heap, reached only by the role holder, holds task
                // slots; `IN_HEAP` said the task may be in it (else its slot is NO_SLOT).
                unsafe { self.heap.remove(task) };
            }
            // A task with a deadline goes into the heap even when it is already due, so
            // that due tasks leave in (deadline, parking order) order via `expire`.
            // SAFETY: the sched-role owns the task (see above).
            let deadline = unsafe { task.deadline() };
            if state.is_notified() {
                sh.push_ready(task);
                produced += 1;
                continue;
            }
            // Counted before the task can be woken (see `Shared::parked`); only the role
            // holder writes `role_parks`.
            let parks = sh.role_parks.load(Relaxed);
            sh.role_parks.store(parks + 1, Release);
            if state.park(deadline != NO_DEADLINE) {
                if deadline != NO_DEADLINE {
                    // SAFETY: the task just left the heap (or was never in it), and only
                    // this heap touches its slot while it is in it.
                    unsafe { self.heap.insert(deadline, task) };
                }
            } else {
                sh.role_parks.store(parks, Relaxed);
                sh.push_ready(task);
                produced += 1;
            }
        }
        self.scratch = scratch;
        produced
    }

    /// Readies tasks whose deadline passed and fires due slow-path timers.
    fn expire(&mut self, sh: &Shared) -> usize {
        let now = clock::now_ns();
        let mut produced = 0;
        while let Some(task) = self.heap.pop_expired(now) {
            // If a waker got there first, the task is in the front queue already.
            if task.header().state.expire() {
                sh.unparks.fetch_add(1, Release);
                sh.push_ready(task);
                produced += 1;
            }
        }
        produced + sh.timers.wake_up_to(now)
    }
}

thread_local! {
    /// The task this thread is polling right now (null outside a poll).
    static CURRENT_TASK: Cell<*mut Header> = const { Cell::new(std::ptr::null_mut()) };
    /// The task being polled called `yield_now` (its requeue is deferred past a step).
    static YIELDED: Cell<bool> = const { Cell::new(false) };
    /// The core this thread works for (worker threads, and `block_on` callers).
    static CURRENT_CORE: RefCell<Option<(Arc<Shared>, bool)>> = const { RefCell::new(None) };
}

/// The task being polled on this thread, if any.
pub(crate) fn current_task() -> Option<RawTask> {
    let ptr = CURRENT_TASK.with(|c| c.get());
    // SAFETY: the worker polling this task holds its reference for the whole poll.
    (!ptr.is_null()).then(|| unsafe { RawTask::from_ptr(ptr) })
}

/// The task being polled on this thread yielded: requeue it behind the next step's
/// kernel events and deadlines instead of straight into the ready queue.
pub(crate) fn note_yield() {
    YIELDED.with(|y| y.set(true));
}

pub(crate) fn with_current_core<R>(f: impl FnOnce(Option<&(Arc<Shared>, bool)>) -> R) -> R {
    CURRENT_CORE.with(|c| f(c.borrow().as_ref()))
}

/// The core of this thread, or the process-wide default core outside any core.
pub(crate) fn current_or_default_core() -> Arc<Shared> {
    with_current_core(|c| c.map(|(shared, _)| shared.clone())).unwrap_or_else(crate::core::default_shared)
}

/// Restores the previous current core on drop.
pub(crate) struct EnterGuard(Option<(Arc<Shared>, bool)>);

/// Makes `shared` this thread's current core until the guard drops.
pub(crate) fn enter(shared: Arc<Shared>, worker: bool) -> EnterGuard {
    EnterGuard(CURRENT_CORE.with(|c| c.borrow_mut().replace((shared, worker))))
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.0.take();
        CURRENT_CORE.with(|c| *c.borrow_mut() = prev);
    }
}
