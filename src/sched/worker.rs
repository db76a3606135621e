//! The worker loop: take the sched-role when it is free, run ready tasks, search, sleep.
//!
//! A worker runs up to [`EXEC_BATCH`] tasks, or for up to [`STEP_INTERVAL`](super::STEP_INTERVAL), between two
//! attempts at the role. A task that yields goes to the worker's `yielded` queue, seen by
//! every worker (idle ones steal from it, busy ones take it from a worker stuck in a
//! poll: a task that blocks its thread next must not hide it). After this worker's next
//! step — or, when another worker holds the role, once that one waits in epoll, watching
//! the kernel queue and the deadlines — the queue goes to the tail of the ready queue,
//! behind what the step readied. It is marked with the core's step count (in its state
//! word, written by the same read-modify-write that requeues it), and whoever takes a
//! task from it directly runs it again only after a step has started since: its own,
//! taken then if need be, after which the task goes behind what that step readied.
//!
//! A worker that takes a heavy task (`heavy`) while the workers are busy hands it to the
//! heavy lane (`lane`) and takes the next one. The worker measures each poll with the clock
//! stamps it takes between polls anyway, and hands them to `heavy`. The lane's threads
//! run the same poll code ([`run_lane`]), without the role, the batches or the watcher.

use super::counters::in_poll;
use super::heavy::{self, PollCost};
use super::idle::Seen;
use super::lane::Pushed;
use super::role::RoleState;
use super::{Scheduler, EXEC_BATCH, STEP_INTERVAL};
use crate::io::{reset_budget, BUDGET};
use crate::sync::lock;
use crate::task::raw::{Polled, RawTask};
use crate::task::state::{AfterPoll, Claim};
use crate::time::clock::{self, Deadline};
use crossbeam_deque::{Steal, Worker};
use std::sync::atomic::{fence, Ordering::*};
use std::sync::{MutexGuard, TryLockError};
use std::time::Duration;

/// One worker thread's state.
struct WorkerCtx<'a> {
    sched: &'a Scheduler,
    index: usize,
    /// This worker's FIFO batch (others may steal from it; owned by `run_worker`).
    local: &'a Worker<RawTask>,
    /// This worker's tasks that yielded (others may steal from it; see the module docs).
    yielded: &'a Worker<RawTask>,
    /// Finished tasks the role let go of during this worker's step (see `release_finished`).
    finished: Vec<RawTask>,
    /// Each worker's poll sequence at this worker's last look as the watcher.
    seen: Vec<u64>,
    /// Each worker's poll sequence at this worker's last look for stuck batches
    /// (`rescue`), and the `clock::stamp` when that sequence was first seen.
    polls_seen: Vec<(u64, u64)>,
    /// `clock::stamp` of the last look for stuck batches.
    last_rescue_look: u64,
    /// This is a lane thread (see `lane`), not a worker.
    lane: bool,
}

/// The body of worker thread `index`.
pub(super) fn run(sched: &Scheduler, index: usize, local: &Worker<RawTask>, yielded: &Worker<RawTask>) {
    let seen = vec![0; sched.counters.workers()];
    let polls_seen = vec![(0, 0); sched.counters.workers()];
    let mut w = WorkerCtx {
        sched,
        index,
        local,
        yielded,
        finished: Vec::new(),
        seen,
        polls_seen,
        last_rescue_look: 0,
        lane: false,
    };
    w.run();
}

/// The body of lane thread `index` (see `lane`; its counters follow the workers'): polls
/// the lane's tasks until the core stops. A task still heavy after its poll and ready
/// again goes back to the lane; one that does not goes to the ready queue.
pub(super) fn run_lane(sched: &Scheduler, index: usize) {
    lower_priority();
    let (local, yielded) = (Worker::new_fifo(), Worker::new_fifo());
    let mut w = WorkerCtx {
        sched,
        index,
        local: &local,
        yielded: &yielded,
        finished: Vec::new(),
        seen: Vec::new(),
        polls_seen: Vec::new(),
        last_rescue_look: 0,
        lane: true,
    };
    while let Some(task) = sched.lane.pop_wait(|| sched.stopped()) {
        sched.counters.begin_poll(index);
        w.run_task(task, clock::stamp());
        sched.counters.end_poll(index);
        sched.lane.poll_done();
    }
    // Leaving (shutdown): what a worker queued after the lane was emptied goes back, for
    // whoever drops the core's remaining tasks.
    sched.lane.drain(|task| sched.ready.push(task));
}

/// Lowers the calling thread's kernel priority for the heavy lane (see `lane`): the idle
/// scheduling class (`SCHED_IDLE`): the thread runs only on CPU time no ordinary thread
/// wants, a worker that wakes preempts it at once, and the kernel counts a CPU that runs
/// only such threads as idle when it places a waking thread. Where the kernel refuses
/// that, the lowest nice value and, where the kernel takes one (Linux 6.12 on), a 100 µs
/// time slice (so a worker that wakes gets the CPU back within that); if that is refused
/// too, only the nice value; and if even that fails, the thread keeps its priority (heavy
/// polls then share the CPUs with the workers, as they would on a worker).
fn lower_priority() {
    /// `struct sched_attr` of `sched_setattr(2)` (its first version, 48 bytes).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    const LANE_NICE: i32 = 19;
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice: LANE_NICE,
        priority: 0,
        runtime: 100_000,
        deadline: 0,
        period: 0,
    };
    let idle = libc::sched_param { sched_priority: 0 };
    // SAFETY: system calls on the calling thread (0) with valid parameter blocks; `attr` is
    // a `sched_attr` whose `size` says which version it is, and lives across the call.
    unsafe {
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &idle) == 0 {
            return;
        }
        if libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) != 0 {
            libc::setpriority(libc::PRIO_PROCESS, 0, LANE_NICE);
        }
    }
}

impl WorkerCtx<'_> {
    fn run(&mut self) {
        let sched = self.sched;
        // This worker's last action was a step (nothing ran since): no need for another.
        let mut just_stepped = false;
        while !sched.stopped() {
            // With tasks at hand, a non-blocking step first (kernel events and deadlines go
            // before them), then a batch. With none, a short search while other workers
            // poll, then the blocking step below (which takes what a non-blocking one
            // would).
            if !self.local.is_empty() || sched.has_ready() {
                if !std::mem::take(&mut just_stepped) && !self.try_step(false) && sched.driver.is_blocking() {
                    // The role holder watches the kernel queue and the deadlines.
                    self.release_yielded();
                }
                self.rescue();
                if self.run_batch() > 0 {
                    continue;
                }
            }
            if self.search() {
                continue;
            }
            if self.try_step(true) {
                just_stepped = true;
            } else {
                // Sleep only while the role is held: its holder either watches the kernel
                // queue, or (about to run tasks) sees this sleeper and wakes it. Checked
                // after publishing the sleeper (Dekker with `pop_ready`).
                let seen = &mut self.seen;
                sched.idle.sleep(
                    || sched.has_ready() || sched.stopped() || sched.role_is_free(),
                    || watch_interval(sched),
                    || watch(sched, seen),
                );
            }
        }
        // Leaving (shutdown): hand back anything still held here.
        while let Some(t) = self.local.pop().or_else(|| self.yielded.pop()) {
            sched.ready.push(t);
        }
        // Tasks that finished with a heap entry are handed to the role before the live
        // count drops (`Scheduler::complete`), so they are in the front queue by now:
        // release them.
        let mut role = lock(&sched.role);
        role.drain_front(sched);
        role.take_finished(&mut self.finished);
        drop(role);
        self.release_finished();
    }

    /// Runs ready tasks until the batch or the time bound is spent, or none is left.
    /// Returns how many ran.
    fn run_batch(&mut self) -> usize {
        let sched = self.sched;
        // This worker tried the role just before the batch: bound the time until it tries
        // again (a local clock check; no shared cache line is read per poll). The same
        // readings measure the time spent polling.
        let batch_start = clock::stamp();
        let mut now = batch_start;
        let mut ran = 0;
        while ran < EXEC_BATCH {
            let Some(task) = self.pop_ready() else { break };
            now = self.run_task(task, now);
            sched.counters.end_poll(self.index);
            ran += 1;
            // Unless the role holder watches epoll (and the timerfd), look at the kernel
            // queue and the deadlines again.
            if now.wrapping_sub(batch_start) > sched.step_interval && !sched.driver.is_blocking() {
                break;
            }
        }
        if ran > 0 {
            sched.counters.busy(self.index, now.wrapping_sub(batch_start));
        }
        ran
    }

    /// Takes the role if it is free and runs a step.
    fn try_step(&mut self, block: bool) -> bool {
        let Some(mut role) = try_role(self.sched) else { return false };
        role.step(self.sched, block);
        role.take_finished(&mut self.finished);
        drop(role);
        self.release_finished();
        // Every task in this worker's yielded queue yielded before this step started.
        self.release_yielded();
        true
    }

    /// Moves this worker's yielded tasks to the ready queue's tail (see the module docs),
    /// unless nothing else is ready here: then they run next from where they are, in the
    /// same order, without the moves. (Inlined: a step runs per message at low load, with
    /// no yielded task at all.)
    #[inline(always)]
    fn release_yielded(&self) {
        if self.yielded.is_empty() || (self.local.is_empty() && self.sched.ready.is_empty()) {
            return;
        }
        while let Some(task) = self.yielded.pop() {
            self.requeue_at_tail(task);
        }
    }

    /// Drops the scheduler's references to finished tasks the role let go of, after the
    /// role is released. The last one drops the task's output, which is user code and may
    /// take long: it counts as a poll, so that the watcher covers it like one. (Inlined:
    /// a step runs per message at low load, and almost never lets a task go.)
    #[inline(always)]
    fn release_finished(&mut self) {
        if !self.finished.is_empty() {
            self.release_finished_now();
        }
    }

    #[cold]
    #[inline(never)]
    fn release_finished_now(&mut self) {
        self.begin_poll();
        for task in self.finished.drain(..) {
            task.ref_dec();
        }
        self.sched.counters.end_poll(self.index);
    }

    /// Takes the batch of a worker that has been in one poll for longer than
    /// [`RESCUE_AFTER`](super::RESCUE_AFTER): its tasks would wait for that poll to end
    /// (behind a task that computes for milliseconds, say) while this worker runs newer
    /// ones. (An idle worker steals from it anyway.) Looks at most every half of that.
    fn rescue(&mut self) {
        let sched = self.sched;
        let now = clock::stamp();
        if now.wrapping_sub(self.last_rescue_look) < sched.rescue_after / 2 {
            return;
        }
        self.last_rescue_look = now;
        for (w, (seq, since)) in self.polls_seen.iter_mut().enumerate() {
            if w == self.index {
                continue;
            }
            let current = sched.counters.poll_seq(w);
            if current != *seq {
                (*seq, *since) = (current, now);
            } else if in_poll(current) && now.wrapping_sub(*since) >= sched.rescue_after {
                // Empty, or a race with its owner or another thief: fine either way. Its
                // yielded tasks too (they run after a step, see `pop_ready`).
                let _ = sched.stealers[w].steal_batch(self.local);
                let _ = sched.yielded[w].steal_batch(self.local);
            }
        }
    }

    /// Puts a task that may run again after a step (see the module docs) at the tail: the
    /// global queue's, or, when that is empty, this worker's own batch. Nobody is woken
    /// here: the wake decision before this worker's next poll covers it.
    fn requeue_at_tail(&self, task: RawTask) {
        if self.sched.ready.is_empty() {
            self.local.push(task);
        } else {
            self.sched.ready.push(task);
        }
    }

    /// Whether a task that yielded when the step count was `mark` may run again: a step
    /// has started since (it looked at the kernel queue and the deadlines), or a role
    /// holder blocked in epoll watches them.
    fn may_run_again(&self, mark: u16) -> bool {
        self.sched.counters.steps.load(Relaxed) as u16 != mark || self.sched.driver.is_blocking()
    }

    /// The next task to poll (see [`next_ready`](Self::next_ready)); heavy tasks go to the
    /// heavy lane on the way, while the workers are busy (see `lane_wanted`).
    fn pop_ready(&mut self) -> Option<RawTask> {
        let mut task = self.next_ready()?;
        while heavy::is_heavy(task) && self.lane_wanted() {
            match self.to_lane(task) {
                None => task = self.next_ready()?,
                // Aborted meanwhile, or the lane is busy: it runs here.
                Some(refused) => {
                    task = refused;
                    break;
                }
            }
        }
        self.begin_poll();
        Some(task)
    }

    /// Whether a heavy task should go to the heavy lane rather than run on a worker: when
    /// other tasks are ready (they should not wait for its poll), when the lane has work
    /// (see `Lane::busy`), or when the workers have been busy of late (see `Lane::wanted`).
    /// Otherwise the workers have time to spare, and on the lane the task would get the
    /// CPU only when nothing else on the machine wants it.
    #[cold]
    fn lane_wanted(&self) -> bool {
        let sched = self.sched;
        let own = usize::from(self.lane);
        !self.local.is_empty()
            || sched.has_ready()
            || sched.lane.busy(own)
            || sched.lane.wanted(&sched.counters)
    }

    /// Hands `task` (owned, QUEUED), which is heavy, to the heavy lane, or gives it back (see
    /// `Lane::push`). A role holder blocked in epoll is kicked when the lane had nothing
    /// queued: it must boost the task in time even if nothing else happens (the lane
    /// threads may get no CPU).
    #[cold]
    #[inline(never)]
    fn to_lane(&self, task: RawTask) -> Option<RawTask> {
        match self.sched.lane.push(task) {
            Pushed::Queued(first) => {
                if first {
                    self.sched.driver.kick();
                }
                None
            }
            Pushed::Refused(task) => Some(task),
        }
    }

    /// The next ready task: this worker's batch first, then a new batch from the global
    /// queue (about half of it, so the other workers get the rest), then this worker's
    /// tasks that yielded, then another worker's batch, then another worker's yielded
    /// tasks.
    fn next_ready(&mut self) -> Option<RawTask> {
        let mut task = self.local.pop().or_else(|| self.steal())?;
        // A task that yielded runs again only after a step that started since (see the
        // module docs). If none has, this worker takes one now, and the task goes behind
        // what it readied. (If the role is busy in another worker's step, that step is
        // looking at the kernel queue right now: the task goes.)
        if let Some(mark) = task.header().state.yield_mark() {
            if !self.may_run_again(mark) && self.try_step(false) {
                self.requeue_at_tail(task);
                task = self.local.pop().or_else(|| self.steal())?;
            }
        }
        Some(task)
    }

    /// Publishes that this worker starts running user code (a task's poll, or the drop of
    /// finished tasks' outputs), and sees to it that the rest stays watched meanwhile.
    #[inline(always)]
    fn begin_poll(&self) {
        let sched = self.sched;
        sched.counters.begin_poll(self.index);
        // While this worker runs user code (which may take long, or block), the kernel queue,
        // the deadlines and the rest of the ready queue must stay watched: the sleeping
        // watcher looks at this poll every interval (nudged here if it sleeps until a poll
        // starts); and if work is left, a sleeper is woken for it, or, with none asleep,
        // the role holder is kicked out of epoll to take it. Under load nobody sleeps and
        // this costs a fence and a few loads; at low load, nobody is woken for the one
        // task a step readied.
        fence(SeqCst);
        sched.idle.nudge_fenced();
        // (A searcher will take the work left; a stale `searching` is harmless: a searcher
        // that stops re-checks every queue before it sleeps.) Whom to wake is asked
        // before whether work is left: under load nobody sleeps or blocks, and the queues
        // of the other workers (their owners write those lines all the time) are not read.
        // With every CPU taken this worker runs the work left itself after this poll, as
        // `wake_worker` explains, unless the poll lasts: then the watcher (nudged above)
        // or a role holder in a bounded wait takes it.
        if sched.searching.load(Relaxed) == 0 {
            if sched.idle.has_sleepers_fenced() {
                if !sched.cpus_taken() && sched.has_ready() {
                    sched.idle.notify_one();
                }
            } else if sched.driver.is_blocking()
                && !(sched.driver.waits_bounded() && sched.cpus_taken())
                && sched.has_ready()
            {
                // The holder re-checks the queues after announcing the block: one of the
                // two sees the other.
                sched.driver.kick_fenced();
            }
        }
    }

    fn steal(&self) -> Option<RawTask> {
        let sched = self.sched;
        loop {
            let mut retry = false;
            // (An empty global queue is seen with two loads; a steal attempt costs more.)
            if !sched.ready.is_empty() {
                match sched.ready.steal_batch_and_pop(self.local) {
                    Steal::Success(t) => return Some(t),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            // Then this worker's tasks that yielded, then another worker's batch.
            if let Some(t) = self.yielded.pop() {
                return Some(t);
            }
            for (i, other) in sched.stealers.iter().enumerate() {
                if i == self.index {
                    continue;
                }
                match other.steal_batch_and_pop(self.local) {
                    Steal::Success(t) => return Some(t),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            // Last, another worker's tasks that yielded.
            for (i, other) in sched.yielded.iter().enumerate() {
                if i == self.index {
                    continue;
                }
                match other.steal() {
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

    /// Polls one task popped from the ready queue, and gives it up. `start`: a
    /// `clock::stamp` taken before the task was popped. Returns one taken after the poll.
    fn run_task(&mut self, task: RawTask, start: u64) -> u64 {
        let sched = self.sched;
        let claim = task.claim();
        if claim == Claim::Cancel {
            // SAFETY: the claim made this worker the task's owner.
            unsafe { task.cancel() };
            sched.complete(task, true);
            return clock::stamp();
        }
        // The deadline is sticky until it passes (or the delayed start is spent): a future
        // that registered it and is not polled again must still be woken.
        // SAFETY: this worker owns the task (RUNNING) for the rest of this function.
        let deadline = unsafe { task.deadline() };
        let spent = claim == Claim::Start || deadline.has_passed();
        if spent {
            // SAFETY: as above.
            unsafe { task.set_deadline(Deadline::NEVER) };
        }
        #[cfg(feature = "tracing")]
        let _span = tracing::trace_span!("poll", task = task.header().id).entered();
        reset_budget(Some(BUDGET));
        let cost = PollCost::before(task);
        // SAFETY: the claim made this worker the task's owner (RUNNING).
        let polled = unsafe { task.poll() };
        let io_spent = reset_budget(None);
        let end = clock::stamp();
        let Polled::Pending { yielded, self_woken } = polled else {
            sched.complete(task, false);
            return end;
        };
        let wall = end.wrapping_sub(start);
        if let Some(cpu) = cost.after(task, wall, sched.heavy_poll, &io_spent) {
            sched.counters.heavy_polls.fetch_add(1, Relaxed);
            sched.lane.note_heavy(cpu);
        }
        if wall >= sched.heavy_poll && !self.lane {
            // Not the light load that sends heavy tasks to the lane (`Lane::wanted`).
            sched.counters.heavy_busy(self.index, wall);
        }
        // Counted as parked before it can be woken (see `counters`), undone if it is not.
        let token = sched.counters.park_by_worker(self.index);
        // SAFETY: as above.
        let after = unsafe { task.deadline() };
        // An unchanged deadline parks under the heap entry the task may still have.
        let kept = !spent && after == deadline;
        // A yield records the step count, for `pop_ready` (one load, only on a yield).
        let yield_mark = yielded.then(|| sched.counters.steps.load(Relaxed) as u16);
        let next = task.header().state.after_poll(!after.is_never(), kept, self_woken, yield_mark);
        if next != AfterPoll::Parked {
            sched.counters.unpark_own(self.index, token);
        }
        match next {
            AfterPoll::Requeue if self.lane && heavy::is_heavy(task) && self.lane_wanted() => {
                if let Some(refused) = self.to_lane(task) {
                    sched.push_ready(refused);
                }
            }
            AfterPoll::Requeue if yielded && !self.lane => self.yielded.push(task),
            AfterPoll::Requeue => sched.push_ready(task),
            AfterPoll::ToSched => sched.push_front(task),
            AfterPoll::Parked => {
                crate::trace::trace_event!(task = task.header().id, "park");
            }
        }
        end
    }

    /// A worker that ran out of work, while another worker polls (and so may soon ready
    /// more, or release the tasks it holds back after a yield), spins on the ready queues
    /// for up to [`SEARCH_SPIN`](super::SEARCH_SPIN) before it sleeps; meanwhile pushers wake nobody. With
    /// every other worker idle it does not spin: only the kernel queue or a timer can
    /// bring work then, and the blocking step waits for those. (Spinning through
    /// non-blocking steps instead, as before, cost 10 `epoll_wait`s per message at low
    /// load.) Nor with more workers running than CPUs (two on one CPU, say): the work
    /// could only come from a thread that needs the CPU this spin holds. True if work
    /// appeared.
    fn search(&mut self) -> bool {
        let sched = self.sched;
        // (This worker polls nothing now: anyone polling is another worker.)
        if !sched.counters.anyone_polls() || sched.cpus_oversubscribed() {
            return false;
        }
        sched.searching.fetch_add(1, SeqCst);
        let start = clock::stamp();
        let found = loop {
            if sched.has_ready() || sched.stopped() {
                break true;
            }
            if clock::stamp().wrapping_sub(start) > sched.search_spin {
                break false;
            }
            std::hint::spin_loop();
        };
        // After this decrement a pusher wakes someone; our caller re-checks the queues
        // (under the idle lock, or after announcing its block) before it sleeps.
        sched.searching.fetch_sub(1, SeqCst);
        found
    }
}

/// How long the watcher waits before its next look: [`STEP_INTERVAL`], or less when the
/// next deadline comes sooner (so a timer stays precise while a long poll holds a worker
/// and nobody holds the role).
fn watch_interval(sched: &Scheduler) -> Duration {
    let (due, now) = (sched.next_due(), Deadline::now());
    if due > now {
        STEP_INTERVAL.min(due.since(now))
    } else {
        // Passed: the last look saw it (and the role was held, or is taken by now).
        STEP_INTERVAL
    }
}

/// The watcher's look at the other workers (see `idle`): act on ready tasks, or, while
/// nobody holds the role (nobody watches the kernel queue and the deadlines), on a poll
/// that has lasted since the last look or on a deadline that has passed; else say whether
/// anyone polled. `seen`: each worker's poll sequence at the last look.
fn watch(sched: &Scheduler, seen: &mut [u64]) -> Seen {
    if sched.has_ready() || sched.stopped() {
        return Seen::Act;
    }
    let (mut busy, mut stuck) = (false, false);
    for (w, last) in seen.iter_mut().enumerate() {
        let now = sched.counters.poll_seq(w);
        busy |= now != *last || in_poll(now);
        stuck |= in_poll(now) && now == *last;
        *last = now;
    }
    if (stuck || sched.next_due().has_passed()) && sched.role_is_free() {
        Seen::Act
    } else if busy {
        Seen::Busy
    } else {
        Seen::Quiet
    }
}

/// Takes the sched-role if nobody holds it.
fn try_role(sched: &Scheduler) -> Option<MutexGuard<'_, RoleState>> {
    match sched.role.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

impl Scheduler {
    /// Whether nobody holds the sched-role right now.
    fn role_is_free(&self) -> bool {
        !matches!(self.role.try_lock(), Err(TryLockError::WouldBlock))
    }
}
