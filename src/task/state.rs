//! The task state word: one `AtomicU32` that decides who owns a task.
//!
//! The two low bits hold the *phase*; the other bits are flags.
//!
//! | phase     | meaning                                         | owner                      |
//! |-----------|-------------------------------------------------|----------------------------|
//! | `QUEUED`  | in the front queue, the ready queue, or held by the sched-role | that queue / the sched-role |
//! | `RUNNING` | being polled                                    | one worker                 |
//! | `WAITING` | parked; with `IN_HEAP`, due at its heap entry    | nobody: the first to move it out |
//! | `DONE`    | finished, cancelled or panicked; output stored  | the `JoinHandle`           |
//!
//! | flag         | set by                          | cleared by                        |
//! |--------------|---------------------------------|-----------------------------------|
//! | `NOTIFIED`   | any waker: "poll me again"      | [`State::claim`]                  |
//! | `WOKEN`      | `TaskRef::wakeup`               | `park` ([`State::take_park_flags`]) |
//! | `SIGNALED`   | `TaskRef::signal` (sticky)      | `park`                            |
//! | `CANCELLED`  | `JoinHandle::abort`, shutdown   | never                             |
//! | `IN_HEAP`    | sched-role, when it puts the task in the deadline heap | sched-role, when it takes the entry out (expiry, or before it parks the task anew) |
//! | `DELAYED`    | `spawn_at`                      | the first [`State::claim`] (it also drops a pending `WOKEN`) |
//! | `JOIN_WAKER` | `JoinHandle` after storing its waker | `JoinHandle` before replacing it |
//! | `PARK_WAKERS`| a `park` under a foreign waker, after registering it | the wakeup/signal that wakes those wakers |
//! | `START` (2 bits) | the first claim of a `DELAYED` task: what started it (deadline, wakeup, signal) | never |
//! | `YIELDED` + mark (16 bits) | [`State::after_poll`] of a task that yielded: the low bits of the core's step count then | [`State::claim`] |
//!
//! The central invariant: **only the party whose CAS moves a task out of `WAITING` may queue
//! it** ([`State::notify`] returns [`Notify::Schedule`] to exactly one caller). Every other
//! wake only sets flags, which the owner looks at when it gives the task up
//! ([`State::after_poll`], [`State::park`]). So a task is in at most one queue and is never
//! polled by two threads, and a wake is never lost: either it moved the task, or the owner
//! sees its flag before the task can reach `WAITING`.
//!
//! **Heap entries are lazy.** `IN_HEAP` says the sched-role's deadline heap holds an entry
//! for the task, keyed by the deadline the task had when the role put it there; only the
//! role adds or removes entries, and it changes `IN_HEAP` with them. A wake does not
//! remove the entry: the woken task goes straight to the ready queue with its entry left
//! in place. After its poll, a task whose deadline did not change parks again under that
//! same entry (no trip through the role: a timeout reset per message costs nothing), and
//! one whose deadline changed goes through the role, which moves the entry. An entry that
//! comes due for a task that is not `WAITING` is dropped ([`State::expire`]). A task that
//! finishes with an entry goes to the role once more, which drops the entry and then the
//! task's last scheduler reference (so an entry always points at a live task).

use crate::sync::{AtomicU32, Ordering::*};

const PHASE: u32 = 0b11;
const QUEUED: u32 = 0;
const RUNNING: u32 = 1;
const WAITING: u32 = 2;
const DONE: u32 = 3;

pub(crate) const NOTIFIED: u32 = 1 << 2;
pub(crate) const WOKEN: u32 = 1 << 3;
pub(crate) const SIGNALED: u32 = 1 << 4;
pub(crate) const CANCELLED: u32 = 1 << 5;
const IN_HEAP: u32 = 1 << 6;
pub(crate) const DELAYED: u32 = 1 << 7;
const JOIN_WAKER: u32 = 1 << 8;
const PARK_WAKERS: u32 = 1 << 9;
/// How a `spawn_at` task started, written by its first claim (two bits): 0 not delayed,
/// then [`START_DEADLINE`], [`START_WOKEN`], [`START_SIGNALED`].
const START: u32 = 0b11 << 10;
const START_DEADLINE: u32 = 1 << 10;
const START_WOKEN: u32 = 2 << 10;
const START_SIGNALED: u32 = 3 << 10;
/// The task yielded and was requeued; the step count's low 16 bits at that moment are in
/// the high half of the word (see [`State::yield_mark`]).
const YIELDED: u32 = 1 << 12;
const YIELD_MARK_SHIFT: u32 = 16;
const YIELD_MARK: u32 = 0xffff << YIELD_MARK_SHIFT;

/// What a waker must do after [`State::notify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notify {
    /// Nothing: the task is owned by someone who will see the flag, or it is done.
    Nothing,
    /// The caller moved the task out of `WAITING` and must queue it in the ready queue (an
    /// entry in the deadline heap stays there; see the module docs).
    Schedule,
}

/// What a worker must do with a task it just polled and that returned `Pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterPoll {
    /// It was woken (or aborted) while running: push it to the back of the ready queue.
    Requeue,
    /// Its deadline must be (re)filed: hand it to the sched-role through the front queue.
    ToSched,
    /// Parked: with no deadline, or under its unchanged heap entry. Nobody owns it until a
    /// waker (or that entry's expiry) moves it.
    Parked,
}

/// What [`State::complete`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Completed {
    /// A `JoinHandle` waker is stored and must be woken.
    pub(crate) join_waker: bool,
    /// The task still has a deadline-heap entry: hand it to the sched-role, which drops the
    /// entry and then the scheduler's reference.
    pub(crate) in_heap: bool,
}

/// The result of [`State::claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Poll the future.
    Run,
    /// Poll the future of a `spawn_at` task for the first time (its start deadline is spent).
    Start,
    /// Abort was requested: drop the future instead of polling it.
    Cancel,
}

/// Why `park` returned; mirrors the public `iocore::task::Wake`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParkFlag {
    Signaled,
    Woken,
}

/// The atomic state word of one task. See the module docs for the table.
#[derive(Debug)]
pub(crate) struct State(AtomicU32);

impl State {
    /// A new task: queued and notified (ready to run), or queued and delayed (`spawn_at`).
    pub(crate) fn new(delayed: bool) -> State {
        State(AtomicU32::new(if delayed { QUEUED | DELAYED } else { QUEUED | NOTIFIED }))
    }

    fn update<R>(&self, mut f: impl FnMut(u32) -> (Option<u32>, R)) -> R {
        let mut cur = self.0.load(Acquire);
        loop {
            let (next, r) = f(cur);
            // Even an unchanged word is written back: the RMW orders the caller's earlier
            // writes (e.g. a message it sent) before the owner's next poll.
            let Some(next) = next else { return r };
            match self.0.compare_exchange_weak(cur, next, AcqRel, Acquire) {
                Ok(_) => return r,
                Err(actual) => cur = actual,
            }
        }
    }

    /// A wake of any kind: sets `NOTIFIED` plus `extra` (`WOKEN`, `SIGNALED`, `CANCELLED`),
    /// and takes the task out of `WAITING` if it was there.
    pub(crate) fn notify(&self, extra: u32) -> Notify {
        self.update(|cur| match cur & PHASE {
            DONE => (None, Notify::Nothing),
            WAITING => (Some((cur & !PHASE) | QUEUED | NOTIFIED | extra), Notify::Schedule),
            _ => (Some(cur | NOTIFIED | extra), Notify::Nothing),
        })
    }

    /// A worker takes a task it popped from the ready queue: `QUEUED -> RUNNING`.
    pub(crate) fn claim(&self) -> Claim {
        self.update(|cur| {
            debug_assert_eq!(cur & PHASE, QUEUED, "claimed a task that is not queued");
            let mut next = (cur & !(PHASE | NOTIFIED | YIELDED | YIELD_MARK)) | RUNNING;
            if cur & DELAYED != 0 {
                // The wakeup that started a `spawn_at` task early is consumed by the start
                // (a signal stays sticky); the start records what it was.
                next &= !(DELAYED | WOKEN);
                next |= if cur & SIGNALED != 0 {
                    START_SIGNALED
                } else if cur & WOKEN != 0 {
                    START_WOKEN
                } else {
                    START_DEADLINE
                };
            }
            let claim = if cur & CANCELLED != 0 {
                Claim::Cancel
            } else if cur & DELAYED != 0 {
                Claim::Start
            } else {
                Claim::Run
            };
            (Some(next), claim)
        })
    }

    /// A worker gives up a task whose poll returned `Pending`. `has_deadline`: the task has
    /// a deadline now; `kept`: the same one as when the poll began (a heap entry, if the
    /// task still has one, is keyed by the deadline the task had when it left its last
    /// poll, so then it is due exactly at this one); `self_woken`: the task woke itself by
    /// telling the worker (a `yield_now`), as good as `NOTIFIED`; `yield_mark`: the task
    /// yielded, and this was the core's step count (low bits) then: a requeue records it
    /// (see [`yield_mark`](Self::yield_mark)).
    #[inline]
    pub(crate) fn after_poll(
        &self,
        has_deadline: bool,
        kept: bool,
        self_woken: bool,
        yield_mark: Option<u16>,
    ) -> AfterPoll {
        let yielded = yield_mark.map_or(0, |m| YIELDED | (u32::from(m) << YIELD_MARK_SHIFT));
        self.update(|cur| {
            debug_assert_eq!(cur & PHASE, RUNNING);
            let base = cur & !PHASE;
            if cur & IN_HEAP != 0 && !kept {
                // The entry (still there: the role removes it only with this flag, in this
                // word) is keyed by the old deadline. The role takes it out before anything
                // else, even for a task that must run again at once: a task that left this
                // poll with an entry must have the deadline the entry is keyed by, or a
                // later poll that keeps its deadline would park under the wrong entry. A
                // self-wake becomes `NOTIFIED`, so that the role readies the task.
                let woken = if self_woken { NOTIFIED } else { 0 };
                (Some(base | QUEUED | woken), AfterPoll::ToSched)
            } else if self_woken || cur & (NOTIFIED | CANCELLED) != 0 {
                (Some(base | QUEUED | yielded), AfterPoll::Requeue)
            } else if cur & IN_HEAP != 0 {
                // Same deadline as the entry: park under it.
                (Some(base | WAITING), AfterPoll::Parked)
            } else if has_deadline {
                (Some(base | QUEUED), AfterPoll::ToSched)
            } else {
                (Some(base | WAITING), AfterPoll::Parked)
            }
        })
    }

    /// The sched-role, owning a `QUEUED` task from the front queue, parks it:
    /// `QUEUED -> WAITING` (with `IN_HEAP` when it goes into the deadline heap).
    /// Returns false when a wake arrived meanwhile: the task must run instead.
    pub(crate) fn park(&self, in_heap: bool) -> bool {
        self.update(|cur| {
            debug_assert_eq!(cur & PHASE, QUEUED);
            if cur & (NOTIFIED | CANCELLED) != 0 {
                (None, false)
            } else {
                let heap = if in_heap { IN_HEAP } else { 0 };
                (Some((cur & !(PHASE | IN_HEAP)) | WAITING | heap), true)
            }
        })
    }

    /// The sched-role owns this task again (popped from the front queue): forget `IN_HEAP`.
    /// Returns whether it was set, i.e. whether the task may still sit in the heap.
    pub(crate) fn leave_heap(&self) -> bool {
        self.0.fetch_and(!IN_HEAP, AcqRel) & IN_HEAP != 0
    }

    /// For a task just taken from the ready queue: the step count (low 16 bits) recorded
    /// when it yielded, if it was requeued after a yield (see `sched::worker`).
    pub(crate) fn yield_mark(&self) -> Option<u16> {
        let cur = self.0.load(Acquire);
        (cur & YIELDED != 0).then_some((cur >> YIELD_MARK_SHIFT) as u16)
    }

    /// Whether the task was aborted (or its core is cancelling it): its next run drops it.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.load(Acquire) & CANCELLED != 0
    }

    /// Whether the task must run rather than wait (a wake or an abort is pending).
    pub(crate) fn is_notified(&self) -> bool {
        self.0.load(Acquire) & (NOTIFIED | CANCELLED) != 0
    }

    /// The sched-role took the task's entry out of the heap because it came due: a
    /// `WAITING` task is readied (`WAITING -> QUEUED`, true: the caller queues it); any
    /// other task was woken since it parked, and the entry is simply gone (false). Either
    /// way `IN_HEAP` is cleared in the same step, so the owner of a running task learns
    /// that its entry is gone.
    pub(crate) fn expire(&self) -> bool {
        self.update(|cur| {
            if cur & PHASE == WAITING {
                (Some((cur & !(PHASE | IN_HEAP)) | QUEUED | NOTIFIED), true)
            } else {
                (Some(cur & !IN_HEAP), false)
            }
        })
    }

    /// The task finished (or was cancelled): `RUNNING -> DONE`.
    pub(crate) fn complete(&self) -> Completed {
        let prev = self.0.fetch_or(DONE, AcqRel);
        debug_assert_eq!(prev & PHASE, RUNNING);
        Completed { join_waker: prev & JOIN_WAKER != 0, in_heap: prev & IN_HEAP != 0 }
    }

    /// `park` consumes pending flags: a signal (and any wakeup with it) first, then a wakeup.
    pub(crate) fn take_park_flags(&self) -> Option<ParkFlag> {
        self.update(|cur| {
            if cur & SIGNALED != 0 {
                (Some(cur & !(SIGNALED | WOKEN)), Some(ParkFlag::Signaled))
            } else if cur & WOKEN != 0 {
                (Some(cur & !WOKEN), Some(ParkFlag::Woken))
            } else {
                (None, None)
            }
        })
    }

    /// A `park` polled under a foreign waker registered that waker with the core: the
    /// next wakeup or signal must wake it. (An RMW on the state word, so that it and the
    /// notifier's RMW are ordered: either the notifier sees this flag, or the `park`'s
    /// following [`take_park_flags`](Self::take_park_flags) sees the notifier's flag.)
    pub(crate) fn set_park_wakers(&self) {
        self.0.fetch_or(PARK_WAKERS, AcqRel);
    }

    /// Called by a wakeup or signal after its [`notify`](Self::notify): true if foreign
    /// `park` wakers are registered (and must now be woken; the flag is cleared).
    pub(crate) fn take_park_wakers(&self) -> bool {
        self.0.load(Acquire) & PARK_WAKERS != 0 && self.0.fetch_and(!PARK_WAKERS, AcqRel) & PARK_WAKERS != 0
    }

    /// What started the task: `None` while a `spawn_at` task waits for its start.
    pub(crate) fn start(&self) -> Option<crate::task::Start> {
        use crate::task::Start;
        let cur = self.0.load(Acquire);
        if cur & DELAYED != 0 {
            return None;
        }
        Some(match cur & START {
            0 => Start::Immediately,
            START_DEADLINE => Start::Deadline,
            START_WOKEN => Start::Woken,
            _ => Start::Signaled,
        })
    }

    pub(crate) fn is_done(&self) -> bool {
        self.0.load(Acquire) & PHASE == DONE
    }

    /// Whether the `JoinHandle` has a waker stored.
    pub(crate) fn has_join_waker(&self) -> bool {
        self.0.load(Acquire) & JOIN_WAKER != 0
    }

    /// The `JoinHandle` publishes the waker it just wrote. False if the task completed
    /// first (the handle then reads the output instead).
    pub(crate) fn set_join_waker(&self) -> bool {
        self.update(|cur| if cur & PHASE == DONE { (None, false) } else { (Some(cur | JOIN_WAKER), true) })
    }

    /// The `JoinHandle` takes back the right to write its waker slot. False if the task
    /// completed first (the completer may be reading the slot).
    pub(crate) fn unset_join_waker(&self) -> bool {
        self.update(|cur| if cur & PHASE == DONE { (None, false) } else { (Some(cur & !JOIN_WAKER), true) })
    }
}

#[cfg(all(test, not(iocore_loom)))]
mod tests {
    use super::*;

    /// A requeue after a yield records the step mark; the next claim clears it, and a
    /// requeue without a yield records none.
    #[test]
    fn a_yield_mark_lives_from_the_requeue_to_the_next_claim() {
        let s = State::new(false);
        assert_eq!(s.claim(), Claim::Run);
        assert_eq!(s.after_poll(false, false, true, Some(0xbeef)), AfterPoll::Requeue);
        assert_eq!(s.yield_mark(), Some(0xbeef));
        s.notify(WOKEN); // flags set while queued keep the mark
        assert_eq!(s.yield_mark(), Some(0xbeef));
        assert_eq!(s.claim(), Claim::Run);
        assert_eq!(s.yield_mark(), None);
        assert_eq!(s.after_poll(false, false, true, None), AfterPoll::Requeue);
        assert_eq!(s.yield_mark(), None);
        assert_eq!(s.take_park_flags(), Some(ParkFlag::Woken));
    }
}

#[cfg(all(test, iocore_loom))]
mod loom_tests {
    //! Models of the races the state word must win: every wake that arrives after a claim
    //! leads to exactly one re-queue, whoever gets there first.
    use super::*;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;

    fn running() -> Arc<State> {
        let s = Arc::new(State::new(false));
        assert_eq!(s.claim(), Claim::Run);
        s
    }

    /// A thread that notifies `s` with `flag` and counts in `queued` if it must queue it.
    fn notifier(s: &Arc<State>, flag: u32, queued: &Arc<AtomicUsize>) -> loom::thread::JoinHandle<()> {
        let (s, queued) = (s.clone(), queued.clone());
        loom::thread::spawn(move || {
            if s.notify(flag) == Notify::Schedule {
                queued.fetch_add(1, SeqCst);
            }
        })
    }

    /// A wake (of each kind) races the end of a poll: the task is queued exactly once and
    /// the wake's flag survives.
    #[test]
    fn loom_wake_vs_after_poll() {
        for extra in [0, WOKEN, SIGNALED, CANCELLED] {
            loom::model(move || {
                let s = running();
                let queued = Arc::new(AtomicUsize::new(0));
                let waker = notifier(&s, extra, &queued);
                if s.after_poll(false, false, false, None) == AfterPoll::Requeue {
                    queued.fetch_add(1, SeqCst);
                }
                waker.join().unwrap();
                assert_eq!(queued.load(SeqCst), 1, "a wake was lost or the task queued twice");
                let word = s.0.load(SeqCst);
                assert_eq!(word & PHASE, QUEUED);
                assert_eq!(word & extra, extra);
                let claim = s.claim();
                assert_eq!(claim == Claim::Cancel, extra == CANCELLED);
            });
        }
    }

    /// Two wakers and a signaller race a parking task: exactly one of them queues it.
    #[test]
    fn loom_many_wakers_one_queue() {
        loom::model(|| {
            let s = running();
            let queued = Arc::new(AtomicUsize::new(0));
            let threads: Vec<_> =
                [WOKEN, SIGNALED].into_iter().map(|flag| notifier(&s, flag, &queued)).collect();
            if s.after_poll(false, false, false, None) == AfterPoll::Requeue {
                queued.fetch_add(1, SeqCst);
            }
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(queued.load(SeqCst), 1);
            s.claim();
            assert_eq!(s.take_park_flags(), Some(ParkFlag::Signaled));
            assert_eq!(s.take_park_flags(), None, "the signal's park consumes the wakeup too");
        });
    }

    /// A task with a deadline goes through the sched-role: the sched parks it into the heap
    /// and later expires it, while a waker races both steps. Exactly one party queues it.
    #[test]
    fn loom_deadline_park_and_expire_vs_wake() {
        loom::model(|| {
            let s = running();
            assert_eq!(s.after_poll(true, false, false, None), AfterPoll::ToSched);
            let queued = Arc::new(AtomicUsize::new(0));
            let waker = notifier(&s, WOKEN, &queued);
            // The sched-role: pops it from the front queue, parks it, later expires it.
            s.leave_heap();
            if !s.park(true) {
                queued.fetch_add(1, SeqCst);
            } else if s.expire() {
                queued.fetch_add(1, SeqCst);
            }
            waker.join().unwrap();
            assert_eq!(queued.load(SeqCst), 1);
        });
    }

    /// Lazy heap entries: a task woken out of the heap runs with its entry left behind, and
    /// parks again under it (deadline unchanged) while the role pops that entry and a
    /// waker wakes it. Whatever the order, exactly one party ends up owning the task (the
    /// ready queue via the waker, the expiry or a requeue; or the role via `ToSched`), and
    /// no `IN_HEAP` survives the popped entry.
    #[test]
    fn loom_lazy_entry_vs_park_and_wake() {
        loom::model(|| {
            let s = running();
            s.0.fetch_or(IN_HEAP, SeqCst);
            let queued = Arc::new(AtomicUsize::new(0));
            let waker = notifier(&s, WOKEN, &queued);
            let (s2, q2) = (s.clone(), queued.clone());
            let role = loom::thread::spawn(move || {
                if s2.expire() {
                    q2.fetch_add(1, SeqCst);
                }
            });
            let to_sched = match s.after_poll(true, true, false, None) {
                AfterPoll::Requeue => {
                    queued.fetch_add(1, SeqCst);
                    false
                }
                AfterPoll::ToSched => true,
                AfterPoll::Parked => false,
            };
            waker.join().unwrap();
            role.join().unwrap();
            assert_eq!(queued.load(SeqCst) + usize::from(to_sched), 1, "lost or doubled");
            assert!(!s.leave_heap(), "IN_HEAP outlived the popped entry");
        });
    }

    /// A task with an entry whose poll changed its deadline leaves through the role even
    /// when it was woken meanwhile (else its entry would stay keyed by the old deadline):
    /// the role takes the entry out, then readies the task if a wake (or its own yield)
    /// came, or parks it under a new entry for the waker to move. Exactly one party queues
    /// it; a yield is never lost.
    #[test]
    fn loom_changed_deadline_leaves_through_the_role() {
        for self_woken in [false, true] {
            loom::model(move || {
                let s = running();
                s.0.fetch_or(IN_HEAP, SeqCst);
                let queued = Arc::new(AtomicUsize::new(0));
                let waker = notifier(&s, WOKEN, &queued);
                assert_eq!(s.after_poll(true, false, self_woken, None), AfterPoll::ToSched);
                // The role, owning it from the front queue:
                assert!(s.leave_heap(), "the entry must be taken out");
                let parked = s.park(true);
                assert!(!(self_woken && parked), "a yield was lost");
                waker.join().unwrap();
                assert_eq!(queued.load(SeqCst) + usize::from(!parked), 1, "lost or doubled");
            });
        }
    }

    /// A task finishes while the role pops its entry (touching the task's heap slot, then
    /// `expire`). When `complete` reports no entry, the finisher frees the task at once:
    /// the role's access must then be ordered before (loom checks the cell); when it
    /// reports one, the role retires the task later. A finished task is never readied.
    #[test]
    fn loom_complete_vs_expire() {
        use loom::cell::UnsafeCell;
        loom::model(|| {
            let s = running();
            s.0.fetch_or(IN_HEAP, SeqCst);
            let slot = Arc::new(UnsafeCell::new(0u32));
            let (s2, slot2) = (s.clone(), slot.clone());
            let role = loom::thread::spawn(move || {
                // SAFETY (model): the entry keeps the task alive while the role reads it.
                slot2.with(|p| unsafe { assert_eq!(*p, 0) });
                s2.expire()
            });
            if !s.complete().in_heap {
                // SAFETY (model): no entry is left, so nobody else touches the task.
                slot.with_mut(|p| unsafe { *p = 1 });
            }
            assert!(!role.join().unwrap(), "a finished task was readied");
            assert!(!s.leave_heap(), "IN_HEAP outlived the popped entry");
        });
    }

    /// The JoinHandle publishes its waker while the task completes: either the handle sees
    /// DONE, or the completer sees the waker. Never neither.
    #[test]
    fn loom_join_waker_vs_complete() {
        loom::model(|| {
            let s = running();
            let s2 = s.clone();
            let handle = loom::thread::spawn(move || {
                if s2.is_done() {
                    return true;
                }
                !s2.set_join_waker()
            });
            let completer_saw_waker = s.complete().join_waker;
            let handle_saw_done = handle.join().unwrap();
            assert!(handle_saw_done || completer_saw_waker);
            assert!(s.is_done());
        });
    }

    /// A `park` under a foreign waker publishes `PARK_WAKERS` and re-checks the flags while
    /// a `wakeup` sets `WOKEN` and then looks for `PARK_WAKERS`: either the park sees the
    /// wakeup, or the waker sees the park's registration (and wakes it). Never neither.
    #[test]
    fn loom_foreign_park_vs_wakeup() {
        loom::model(|| {
            let s = running();
            let s2 = s.clone();
            let waker = loom::thread::spawn(move || {
                s2.notify(WOKEN);
                s2.take_park_wakers()
            });
            s.set_park_wakers();
            let park_saw_wakeup = s.take_park_flags() == Some(ParkFlag::Woken);
            let waker_saw_park = waker.join().unwrap();
            assert!(park_saw_wakeup || waker_saw_park, "the wakeup was lost");
        });
    }

    /// Abort of a waiting task races a wake: one queues it, and the claim cancels.
    #[test]
    fn loom_abort_parked_vs_wake() {
        loom::model(|| {
            let s = running();
            assert_eq!(s.after_poll(false, false, false, None), AfterPoll::Parked);
            let queued = Arc::new(AtomicUsize::new(0));
            let aborter = notifier(&s, CANCELLED, &queued);
            if let Notify::Schedule { .. } = s.notify(0) {
                queued.fetch_add(1, SeqCst);
            }
            aborter.join().unwrap();
            assert_eq!(queued.load(SeqCst), 1);
            assert_eq!(s.claim(), Claim::Cancel);
        });
    }
}
