//! The heavy lane: where tasks that rest after a heavy poll (`heavy`) run, on threads the
//! kernel preempts for the workers.
//!
//! A poll cannot be interrupted, so a task that computes for 2 ms on a worker makes every
//! task behind it wait 2 ms, however it is queued. The lane moves such polls off the
//! workers: each core has as many lane threads as workers, at the lowest kernel priority
//! (see `worker::lower_priority`), so they run on the CPU time the workers leave, and a
//! worker that wakes takes its CPU back within a short kernel time slice. A heavy task
//! still gets every idle moment, and all the CPUs when the workers have nothing to do.
//!
//! Under load the kernel gives a lane thread only a small share, so a task's rest doubles
//! as a deadline: a task still queued here when its rest ends is *boosted*, moved to the
//! ready queue by the sched-role (which wakes for it like for a timer), and a worker runs
//! it in its turn. So a heavy task gets at least one poll per rest, about
//! 1/[`REST_FACTOR`](super::heavy::REST_FACTOR) of a worker, even with every CPU busy. An
//! aborted task leaves the lane at once (`Scheduler::aborted_queued`), as every task does
//! when the core shuts down.
//!
//! The queue is a mutex-guarded FIFO: only heavy tasks pass through it, each at most once
//! per half millisecond of CPU it computes.

use crate::sync::lock;
use crate::task::raw::RawTask;
use crate::time::clock::Deadline;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Condvar, Mutex};

/// One core's heavy lane (see the module docs).
pub(crate) struct Lane {
    /// The queued tasks, each with the end of its rest.
    queue: Mutex<VecDeque<(RawTask, Deadline)>>,
    /// Signalled for each push, and on stop.
    more: Condvar,
    /// The earliest end of rest among the queued tasks, in `Deadline` nanoseconds
    /// (`u64::MAX`: the queue is empty): the sched-role boosts that task then.
    boost_due: AtomicU64,
    /// Tasks queued now.
    len: AtomicUsize,
    /// Polls run by the lane threads (the `lane_polls` metric).
    pub(crate) polls: AtomicU64,
}

impl Lane {
    pub(crate) fn new() -> Lane {
        Lane {
            queue: Mutex::new(VecDeque::new()),
            more: Condvar::new(),
            boost_due: AtomicU64::new(u64::MAX),
            len: AtomicUsize::new(0),
            polls: AtomicU64::new(0),
        }
    }

    /// Queues `task` (owned by the caller, QUEUED), which rests until `rest_ends`, and
    /// wakes a lane thread for it.
    pub(crate) fn push(&self, task: RawTask, rest_ends: Deadline) {
        let mut q = lock(&self.queue);
        q.push_back((task, rest_ends));
        self.len.fetch_add(1, Relaxed);
        self.publish(&q);
        drop(q);
        self.more.notify_one();
    }

    /// The next queued task, waiting for one; `None` once `stopped` says so (asked whenever
    /// the queue is empty, and after every [`wake_all`](Self::wake_all)).
    pub(crate) fn pop_wait(&self, stopped: impl Fn() -> bool) -> Option<RawTask> {
        let mut q = lock(&self.queue);
        loop {
            if stopped() {
                return None;
            }
            if let Some((task, _)) = q.pop_front() {
                self.len.fetch_sub(1, Relaxed);
                self.publish(&q);
                return Some(task);
            }
            q = self.more.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Wakes every lane thread (to see that the core stopped).
    pub(crate) fn wake_all(&self) {
        // Under the lock: a thread between its look at `stopped` and its wait holds it.
        let _q = lock(&self.queue);
        self.more.notify_all();
    }

    /// When the sched-role must boost a queued task (`Deadline::NEVER`: none is queued).
    pub(crate) fn boost_due(&self) -> Deadline {
        Deadline::from_nanos(self.boost_due.load(Relaxed))
    }

    /// Hands `to`, in queue order, every queued task whose rest has ended by `now`.
    /// Returns how many.
    pub(crate) fn take_due(&self, now: Deadline, to: impl FnMut(RawTask)) -> usize {
        if self.boost_due() > now {
            return 0;
        }
        self.take(|_, ends| ends <= now, to)
    }

    /// Hands `to`, in queue order, every queued task that `pick` chooses (given the task
    /// and the end of its rest). Returns how many.
    pub(crate) fn take(
        &self,
        pick: impl Fn(RawTask, Deadline) -> bool,
        mut to: impl FnMut(RawTask),
    ) -> usize {
        if self.len() == 0 {
            return 0;
        }
        let mut q = lock(&self.queue);
        let before = q.len();
        q.retain(|&(task, ends)| {
            let taken = pick(task, ends);
            if taken {
                to(task);
            }
            !taken
        });
        let taken = before - q.len();
        self.len.fetch_sub(taken, Relaxed);
        self.publish(&q);
        taken
    }

    /// Tasks queued now.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    /// Publishes the earliest end of rest among the queued tasks `q` (the lane's, locked).
    fn publish(&self, q: &VecDeque<(RawTask, Deadline)>) {
        let due = q.iter().map(|&(_, ends)| ends).min().unwrap_or(Deadline::NEVER);
        self.boost_due.store(due.as_nanos(), Relaxed);
    }
}
