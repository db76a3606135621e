//! The heavy lane: where heavy tasks (`heavy`) run while the workers are busy, on threads
//! the kernel preempts for the workers.
//!
//! A poll cannot be interrupted, so a task that computes for 2 ms on a worker makes every
//! task behind it wait 2 ms, however it is queued. The lane moves such polls off the
//! workers: each core has as many lane threads as workers, in the kernel's idle class (see
//! `worker::lower_priority`), so they run on the CPU time nothing else wants, and a worker
//! that wakes takes its CPU back at once. A worker sends a heavy task here only when the
//! workers are busy (`worker::lane_wanted`, [`Lane::wanted`]), or when the lane has work
//! already ([`Lane::busy`]); otherwise it runs the task itself, since on the lane the
//! threads of other processes could starve it.
//!
//! Under load the kernel gives the lane threads almost nothing. So when the lane has taken
//! no task for [`BOOST_FACTOR`] times the CPU time of the last heavy poll, the sched-role
//! *boosts* the task at its front: moves it to the ready queue, where a worker runs it in
//! its turn (the role wakes for this like for a timer). With every CPU busy, the heavy
//! tasks together still get about 1/17 of a worker, in turn; and the workers never spend
//! more than that on them, however many there are. An aborted task leaves the lane at once
//! (`Scheduler::aborted_queued`), as every task does when the core shuts down. A worker
//! never waits for the lane's lock (a lane thread holding it may get no CPU): it runs the
//! task itself instead.
//!
//! The queue is a mutex-guarded FIFO: only heavy tasks pass through it, each at most once
//! per half millisecond of CPU it computes.
//!
//! [`BOOST_FACTOR`]: super::heavy::BOOST_FACTOR

use super::counters::Counters;
use super::heavy;
use crate::sync::lock;
use crate::task::raw::RawTask;
use crate::time::clock::{self, Deadline};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// One core's heavy lane (see the module docs).
pub(crate) struct Lane {
    queue: Mutex<Queue>,
    /// Signalled for each push, and on stop.
    more: Condvar,
    /// When the sched-role must boost the front task, in `Deadline` nanoseconds (`u64::MAX`:
    /// the queue is empty). Written under the lock.
    boost_due: AtomicU64,
    /// [`BOOST_FACTOR`](heavy::BOOST_FACTOR) times the CPU time of the last heavy poll (any
    /// thread's), in nanoseconds: how long the lane may take no task before a boost.
    boost_wait: AtomicU64,
    /// Tasks queued now.
    len: AtomicUsize,
    /// Lane threads in a poll now.
    running: AtomicUsize,
    /// Polls run by the lane threads (the `lane_polls` metric).
    pub(crate) polls: AtomicU64,
    /// [`wanted`](Self::wanted)'s current window: its start (`clock::stamp`), the workers'
    /// light busy time then, and the verdict of the window before.
    window_start: AtomicU64,
    window_busy: AtomicU64,
    loaded: AtomicBool,
}

/// The shortest span over which [`Lane::wanted`] measures the workers' load.
const LOAD_WINDOW: Duration = Duration::from_millis(10);

/// The workers' load (the share of their time spent in polls that are not heavy) from which
/// heavy tasks go to the lane: below it, the workers have time to spare, and the lane
/// would only add the risk of other processes starving it.
const LANE_LOAD_PERCENT: u64 = 25;

/// What became of a task offered to [`Lane::push`].
pub(crate) enum Pushed {
    /// Queued; true if the lane had nothing queued before.
    Queued(bool),
    /// Not queued: the caller keeps it.
    Refused(RawTask),
}

struct Queue {
    tasks: VecDeque<RawTask>,
    /// When a task last left the queue (taken by a lane thread, or boosted), or when the
    /// queue last became non-empty.
    progress: Deadline,
}

impl Lane {
    pub(crate) fn new() -> Lane {
        Lane {
            queue: Mutex::new(Queue { tasks: VecDeque::new(), progress: Deadline::NEVER }),
            more: Condvar::new(),
            boost_due: AtomicU64::new(u64::MAX),
            boost_wait: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            polls: AtomicU64::new(0),
            window_start: AtomicU64::new(clock::stamp()),
            window_busy: AtomicU64::new(0),
            loaded: AtomicBool::new(false),
        }
    }

    /// Whether the workers are loaded: whether they spent at least [`LANE_LOAD_PERCENT`] of
    /// their time in polls that are not heavy over the last [`LOAD_WINDOW`] or more (as of
    /// the last look that closed a window). Heavy tasks go to the lane then, even when
    /// no other task is ready at the moment (`worker::lane_wanted`): light tasks arrive in
    /// the gaps. (Racy by design: two threads closing a window at once only measure about
    /// the same thing twice.)
    pub(crate) fn wanted(&self, counters: &Counters) -> bool {
        let now = clock::stamp();
        let start = self.window_start.load(Relaxed);
        let span = now.wrapping_sub(start);
        if span >= clock::stamps_in(LOAD_WINDOW) {
            let busy = counters.light_busy();
            let spent = busy.wrapping_sub(self.window_busy.load(Relaxed));
            let capacity = span.saturating_mul(counters.workers() as u64);
            let loaded = spent.saturating_mul(100) >= capacity.saturating_mul(LANE_LOAD_PERCENT);
            self.window_start.store(now, Relaxed);
            self.window_busy.store(busy, Relaxed);
            self.loaded.store(loaded, Relaxed);
            return loaded;
        }
        self.loaded.load(Relaxed)
    }

    /// A heavy poll computed for `cpu` (see `heavy`): the lane's patience follows it.
    pub(crate) fn note_heavy(&self, cpu: Duration) {
        let wait = u64::try_from((cpu * heavy::BOOST_FACTOR).as_nanos()).unwrap_or(u64::MAX);
        self.boost_wait.store(wait, Relaxed);
    }

    /// Queues `task` (owned by the caller, QUEUED), which is heavy, and wakes a lane thread for
    /// it. Returns `Queued(true)` if that set [`boost_due`](Self::boost_due) (the queue was
    /// empty): a sched-role blocked in epoll must then be kicked to see it. Refuses, and
    /// leaves the task to the caller, when the lock is taken (a worker must not wait for a
    /// lane thread, which may get no CPU) or the task was aborted (under the lock: either
    /// this sees the abort, or the abort's `take` sees the task).
    pub(crate) fn push(&self, task: RawTask) -> Pushed {
        let mut q = match self.queue.try_lock() {
            Ok(q) => q,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Pushed::Refused(task),
        };
        if task.header().state.is_cancelled() {
            return Pushed::Refused(task);
        }
        let was_empty = q.tasks.is_empty();
        q.tasks.push_back(task);
        self.len.fetch_add(1, Relaxed);
        if was_empty {
            q.progress = Deadline::now();
            self.publish(&q);
        }
        drop(q);
        self.more.notify_one();
        Pushed::Queued(was_empty)
    }

    /// The next queued task, waiting for one; `None` once `stopped` says so (asked whenever
    /// the queue is empty, and after every [`wake_all`](Self::wake_all)).
    pub(crate) fn pop_wait(&self, stopped: impl Fn() -> bool) -> Option<RawTask> {
        let mut q = lock(&self.queue);
        loop {
            if stopped() {
                return None;
            }
            if let Some(task) = q.tasks.pop_front() {
                self.len.fetch_sub(1, Relaxed);
                self.running.fetch_add(1, Relaxed);
                q.progress = Deadline::now();
                self.publish(&q);
                return Some(task);
            }
            q = self.more.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A lane thread finished the poll of the task [`pop_wait`](Self::pop_wait) gave it.
    pub(crate) fn poll_done(&self) {
        self.running.fetch_sub(1, Relaxed);
        self.polls.fetch_add(1, Relaxed);
    }

    /// Whether the lane has work besides the caller's: a task queued, or a lane thread in
    /// a poll (`own`: the caller's polls, 1 for a lane thread, else 0). A worker with time
    /// to spare runs a heavy task itself only when it has none: a lane thread the worker
    /// kept from the CPU would get none (its class runs only when nothing else wants to),
    /// and the tasks waiting for it go first.
    pub(crate) fn busy(&self, own: usize) -> bool {
        self.len.load(Relaxed) > 0 || self.running.load(Relaxed) > own
    }

    /// Wakes every lane thread (to see that the core stopped).
    pub(crate) fn wake_all(&self) {
        // Under the lock: a thread between its look at `stopped` and its wait holds it.
        let _q = lock(&self.queue);
        self.more.notify_all();
    }

    /// When the sched-role must boost the front task (`Deadline::NEVER`: none is queued).
    pub(crate) fn boost_due(&self) -> Deadline {
        Deadline::from_nanos(self.boost_due.load(Relaxed))
    }

    /// If the boost is due by `now`, ends the front task's heaviness (so that a worker runs
    /// it) and hands it to `to`.
    /// Returns how many it handed (0 or 1).
    pub(crate) fn boost(&self, now: Deadline, to: impl FnOnce(RawTask)) -> usize {
        if self.boost_due() > now {
            return 0;
        }
        // (Not waiting for a lane thread that holds the lock: the next step looks again.)
        let Ok(mut q) = self.queue.try_lock() else { return 0 };
        if self.boost_due() > now {
            return 0;
        }
        let Some(task) = q.tasks.pop_front() else { return 0 };
        self.len.fetch_sub(1, Relaxed);
        q.progress = now;
        self.publish(&q);
        drop(q);
        // The queue owned it; now the caller does.
        heavy::end_heavy(task);
        to(task);
        1
    }

    /// Hands `to`, in queue order, every queued task that `pick` chooses. Returns how many.
    pub(crate) fn take(&self, pick: impl Fn(RawTask) -> bool, mut to: impl FnMut(RawTask)) -> usize {
        if self.len() == 0 {
            return 0;
        }
        let mut q = lock(&self.queue);
        let before = q.tasks.len();
        q.tasks.retain(|&task| {
            let taken = pick(task);
            if taken {
                to(task);
            }
            !taken
        });
        let taken = before - q.tasks.len();
        self.len.fetch_sub(taken, Relaxed);
        self.publish(&q);
        taken
    }

    /// Hands `to` every queued task, in order (shutdown).
    pub(crate) fn drain(&self, to: impl FnMut(RawTask)) {
        self.take(|_| true, to);
    }

    /// Tasks queued now.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    /// Publishes when the front task of `q` (the lane's, locked) is to be boosted.
    fn publish(&self, q: &Queue) {
        let due = if q.tasks.is_empty() {
            u64::MAX
        } else {
            q.progress.as_nanos().saturating_add(self.boost_wait.load(Relaxed))
        };
        self.boost_due.store(due, Relaxed);
    }
}
