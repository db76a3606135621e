//! The sched-role's step: what the holder of the role does with the front queue, the
//! kernel event queue and the deadlines (see the parent module's docs for the order).
//!
//! The role's state is only touched by the role holder (it sits behind the role lock):
//! the poller of the kernel queue, the parked tasks by deadline (a timer wheel in front
//! of a heap, `util::wheel`), a scratch vector.

use super::{Scheduler, STEP_INTERVAL};
use crate::io::Poller;
use crate::task::raw::RawTask;
use crate::task::Header;
use crate::time::clock::Deadline;
use crate::util::wheel::TimerWheel;
use std::sync::atomic::Ordering::*;

/// What the holder of the sched-role owns.
pub(super) struct RoleState {
    poller: Poller,
    /// Entries of tasks with a deadline (keyed by `Deadline::as_nanos`). A task is in it
    /// exactly while `IN_HEAP` is set in its state (this role changes both together), and
    /// only this wheel touches its slot. An entry may outlive the wait it was made for
    /// (lazy removal, see `task::state`); the task is alive while it has one.
    heap: TimerWheel<RawTask>,
    /// Tasks taken from the front queue, between two lines of `drain_front`.
    scratch: Vec<*mut Header>,
    /// Finished tasks whose heap entries are gone, with the scheduler's reference, whose
    /// drop may be the last and drop the output (user code): the worker drops them after
    /// it released the role (see `take_finished`).
    finished: Vec<RawTask>,
}

// SAFETY: `scratch` only holds task pointers within one `drain_front` call; `finished`
// holds references to tasks, which are Send; the rest is Send.
unsafe impl Send for RoleState {}

impl RoleState {
    pub(super) fn new(poller: Poller) -> RoleState {
        RoleState {
            poller,
            heap: TimerWheel::new(Deadline::now().as_nanos()),
            scratch: Vec::new(),
            finished: Vec::new(),
        }
    }

    /// One schedule step. `block`: wait in the kernel queue if nothing is ready.
    pub(super) fn step(&mut self, sched: &Scheduler, block: bool) {
        sched.counters.steps.fetch_add(1, Relaxed);
        let produced = self.drain_front(sched) + self.expire(sched) + boost_lane(sched);
        let (mut wait, mut max_wait) = (None, None);
        // (Finished tasks let go of here are dropped by the caller after the step: a wait
        // in epoll would hold them.)
        if block && produced == 0 && self.finished.is_empty() {
            // While another worker polls, this wait ends after an interval whatever comes
            // (then the worker loop looks at the ready queue): a worker that readies the
            // only ready task during its poll runs it itself afterwards, and need not kick
            // this wait for the case that its poll lasts (see `Scheduler::wake_worker`).
            let bounded = sched.counters.anyone_polls();
            sched.driver.announce_block(bounded);
            let busy = !sched.front.is_empty() || sched.has_ready() || sched.stopped();
            if !busy {
                // The deadlines as `expire` just published them.
                wait = Some(sched.next_due());
                max_wait = bounded.then_some(STEP_INTERVAL);
            }
        }
        self.poller.turn(&sched.driver, wait, max_wait);
        self.drain_front(sched);
        self.expire(sched);
        boost_lane(sched);
    }

    /// Takes every task from the front queue: readies the ones that must run, parks the
    /// rest. Returns how many it readied. (Inlined for the common empty case: a step looks
    /// twice, and a call that finds nothing would cost more in the call than the look. An
    /// empty queue is seen with a plain load; a push it misses is taken by the next look,
    /// and the step re-checks with `is_empty` before it blocks.)
    #[inline]
    pub(super) fn drain_front(&mut self, sched: &Scheduler) -> usize {
        if sched.front.is_empty_relaxed() {
            return 0;
        }
        self.drain_front_taking(sched)
    }

    fn drain_front_taking(&mut self, sched: &Scheduler) -> usize {
        // (Not empty: the role is the only consumer, and it saw a task.)
        sched.front.take_all(&mut self.scratch);
        sched.counters.front_len.fetch_sub(self.scratch.len(), Relaxed);
        let mut produced = 0;
        let mut scratch = std::mem::take(&mut self.scratch);
        for ptr in scratch.drain(..) {
            // SAFETY: the front queue holds the scheduler's reference of each task, and the
            // sched-role owns a task it took (phase QUEUED) until it queues or parks it.
            let task = unsafe { RawTask::from_ptr(ptr) };
            if self.park_or_ready(sched, task) {
                produced += 1;
            }
        }
        self.scratch = scratch;
        produced
    }

    /// Parks `task` (taken from the front queue), or readies it if a wake is pending; a
    /// finished task leaves the heap and loses its scheduler reference. True if readied.
    fn park_or_ready(&mut self, sched: &Scheduler, task: RawTask) -> bool {
        let state = &task.header().state;
        if state.leave_heap() {
            // SAFETY: `IN_HEAP` said the task is in this heap, and only this heap touches
            // its slot.
            unsafe { self.heap.remove(task) };
        }
        if state.is_done() {
            // `Scheduler::complete` handed it over for its heap entry, now gone. Its
            // reference is dropped outside the role (see `finished`).
            self.finished.push(task);
            return false;
        }
        if state.is_notified() {
            sched.push_ready(task);
            return true;
        }
        // SAFETY: the sched-role owns the task (see `drain_front`).
        let deadline = unsafe { task.deadline() };
        // A task with a deadline goes into the heap even when it is already due, so that
        // due tasks leave in (deadline, parking order) order via `expire`.
        let token = sched.counters.park_by_role();
        if !state.park(!deadline.is_never()) {
            sched.counters.unpark_role(token);
            sched.push_ready(task);
            return true;
        }
        if !deadline.is_never() {
            // SAFETY: the task just left the heap (or was never in it), and only this
            // heap touches its slot while it is in it.
            unsafe { self.heap.insert(deadline.as_nanos(), task) };
        }
        false
    }

    /// Moves the finished tasks this role let go of into `into`, for the caller to drop
    /// their references once it released the role: a slow or panicking output drop must
    /// not hold the role (nobody could turn the kernel queue or fire a timer meanwhile).
    pub(super) fn take_finished(&mut self, into: &mut Vec<RawTask>) {
        if !self.finished.is_empty() {
            into.append(&mut self.finished);
        }
    }

    /// Readies tasks whose deadline passed and fires due slow-path timers; publishes the
    /// next deadline of a parked task (for the watcher, see `worker::watch`).
    #[inline(always)]
    fn expire(&mut self, sched: &Scheduler) -> usize {
        // Nothing parked with a deadline: no clock to read, no call (a step runs per
        // message at low load).
        if self.heap.is_empty() && sched.timers.first_group().is_none() {
            publish_due(sched, u64::MAX);
            return 0;
        }
        self.expire_due(sched)
    }

    fn expire_due(&mut self, sched: &Scheduler) -> usize {
        let now = Deadline::now().as_nanos();
        let mut produced = 0;
        while let Some(task) = self.heap.pop_up_to(now) {
            // A task woken since it parked left its entry behind (see `task::state`): the
            // entry is just dropped then.
            if task.header().state.expire() {
                sched.counters.unparked();
                sched.push_ready(task);
                produced += 1;
            }
        }
        publish_due(sched, self.heap.peek_key(now).unwrap_or(u64::MAX));
        produced + sched.timers.wake_up_to(now)
    }
}

/// Moves the heavy lane's front task to the ready queue if the lane has taken no task for
/// too long (see `lane`).
#[inline(always)]
fn boost_lane(sched: &Scheduler) -> usize {
    if sched.lane.boost_due().is_never() {
        return 0;
    }
    sched.lane.boost(Deadline::now(), |task| sched.push_ready(task))
}

/// Publishes the nearest deadline of a parked task (`u64::MAX`: none) for the watcher,
/// writing the shared word only when it changes.
#[inline]
fn publish_due(sched: &Scheduler, due: u64) {
    if sched.heap_due.load(Relaxed) != due {
        sched.heap_due.store(due, Relaxed);
    }
}
