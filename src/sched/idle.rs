//! Where workers sleep when there is nothing to do, how they are woken, and the watcher.
//!
//! A sleeper publishes itself (`sleepers`, under the lock, then a `SeqCst` fence) and only
//! then re-checks for work; a pusher publishes its work, fences, then looks at `sleepers`.
//! So either the sleeper sees the work, or the pusher sees the sleeper and wakes it: no
//! wakeup is lost. Wakeups are counted as tokens, so each `notify_one` wakes exactly one
//! sleeper and spurious condvar wakeups are absorbed.
//!
//! **The watcher.** The first sleeper takes the watcher's seat: instead of sleeping until
//! woken, it looks at the other workers every interval (the caller's `look`), so that a
//! task polling for long on one worker cannot stall the kernel queue, the deadlines and
//! the ready queue (it then leaves its sleep and takes the sched-role); it also wakes
//! for the next deadline, when that comes before the interval ends. A worker that
//! starts a task therefore need not wake anyone, which saved a context switch per message
//! at low load. When `look` finds that nobody polled for [`QUIET_LOOKS`] intervals, the
//! watcher sleeps until nudged: a worker that starts a poll publishes it, fences, and
//! nudges a deep watcher (`nudge`); the watcher sets `deep`, fences, and looks once more
//! before it sleeps (a Dekker handshake: one of the two sees the other). Modelled with
//! loom below.

use crate::sync::{
    fence, lock_modelled, AtomicBool, AtomicUsize, Condvar, Mutex, MutexGuard, Ordering::SeqCst,
};
use std::time::Duration;

/// Intervals in a row without any poll after which the watcher sleeps until nudged.
#[cfg(not(iocore_loom))]
const QUIET_LOOKS: u32 = 4;
/// One under loom: the models explore the handshake, not the count.
#[cfg(iocore_loom)]
const QUIET_LOOKS: u32 = 1;

/// What the watcher's `look` found when its interval ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Something needs a worker (ready tasks, or a poll that has lasted an interval with
    /// nobody watching the kernel queue): the watcher leaves its sleep.
    Act,
    /// Workers are polling: keep looking every interval.
    Busy,
    /// Nobody polled since the last look.
    Quiet,
}

pub(crate) struct Idle {
    state: Mutex<IdleState>,
    /// Where sleepers outside the watcher's seat wait.
    cv: Condvar,
    /// Where the watcher waits.
    watch_cv: Condvar,
    /// Sleepers not yet handed a wakeup (the watcher included): a mirror of the state,
    /// readable without the lock.
    sleepers: AtomicUsize,
    /// The watcher sleeps until nudged (see the module docs).
    deep: AtomicBool,
}

#[derive(Default)]
struct IdleState {
    /// Sleepers outside the seat not yet handed a wakeup.
    waiting: usize,
    /// Wakeups handed to sleepers outside the seat and not yet taken.
    tokens: usize,
    /// A worker sits in the watcher's seat (until it leaves, even once handed a wakeup).
    seat: bool,
    /// The watcher was handed a wakeup.
    watch_token: bool,
    /// The watcher was nudged out of its deep sleep (a poll started).
    nudged: bool,
}

impl IdleState {
    fn sleepers(&self) -> usize {
        self.waiting + usize::from(self.seat && !self.watch_token)
    }
}

impl Idle {
    pub(crate) fn new() -> Idle {
        Idle {
            state: Mutex::new(IdleState::default()),
            cv: Condvar::new(),
            watch_cv: Condvar::new(),
            sleepers: AtomicUsize::new(0),
            deep: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, IdleState> {
        lock_modelled(&self.state)
    }

    fn publish(&self, g: &IdleState) {
        self.sleepers.store(g.sleepers(), SeqCst);
    }

    /// Whether some worker sleeps. Callers publish their work, then issue a `SeqCst` fence,
    /// then call this.
    pub(crate) fn has_sleepers_fenced(&self) -> bool {
        self.sleepers.load(SeqCst) > 0
    }

    /// How many workers sleep and were not handed a wakeup yet. For a caller that has just
    /// issued a `SeqCst` fence.
    pub(crate) fn sleepers_fenced(&self) -> usize {
        self.sleepers.load(SeqCst)
    }

    /// Sleeps until notified, unless `has_work()` (checked after publishing this sleeper).
    /// In the watcher's seat (the first sleeper's, or a later one's once it is vacated),
    /// calls `look()` after each `interval()` (without the lock) and returns when it says
    /// [`Seen::Act`].
    pub(crate) fn sleep(
        &self,
        has_work: impl Fn() -> bool,
        interval: impl Fn() -> Duration,
        look: impl FnMut() -> Seen,
    ) {
        let mut g = self.lock();
        let watcher = !g.seat;
        if watcher {
            g.seat = true;
        } else {
            g.waiting += 1;
        }
        self.publish(&g);
        fence(SeqCst);
        if has_work() {
            if watcher {
                g.seat = false;
            } else {
                g.waiting -= 1;
            }
            self.publish(&g);
            return;
        }
        if !watcher {
            loop {
                if g.tokens > 0 {
                    g.tokens -= 1;
                    self.call_to_seat(g);
                    return;
                }
                if !g.seat {
                    // The watcher left: this sleeper takes its place (still a sleeper).
                    g.waiting -= 1;
                    g.seat = true;
                    break;
                }
                g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
            }
        }
        g = self.watch(g, interval, look);
        g.seat = false;
        self.deep.store(false, SeqCst);
        self.publish(&g);
        self.call_to_seat(g);
    }

    /// While sleepers remain outside a vacant seat, calls one of them to it: sleepers
    /// stay watched over. (Notified after unlocking, here and below, so that the woken
    /// thread does not block on the lock the notifier still holds.)
    fn call_to_seat(&self, g: MutexGuard<'_, IdleState>) {
        let call = !g.seat && g.waiting > 0;
        drop(g);
        if call {
            self.cv.notify_one();
        }
    }

    /// The watcher's sleep (see the module docs); returns when handed a wakeup or when
    /// `look` says [`Seen::Act`].
    fn watch<'a>(
        &'a self,
        mut g: MutexGuard<'a, IdleState>,
        interval: impl Fn() -> Duration,
        mut look: impl FnMut() -> Seen,
    ) -> MutexGuard<'a, IdleState> {
        let mut quiet_looks = 0;
        let mut deep = false;
        loop {
            if g.watch_token {
                g.watch_token = false;
                return g;
            }
            if g.nudged {
                g.nudged = false;
                deep = false;
                quiet_looks = 0;
            }
            if deep {
                g = self.watch_cv.wait(g).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let timed_out;
            (g, timed_out) = self.wait_interval(g, interval());
            if !timed_out || g.watch_token || g.nudged {
                continue;
            }
            drop(g);
            let mut seen = look();
            if seen == Seen::Quiet && quiet_looks + 1 >= QUIET_LOOKS {
                // Dekker with `nudge_fenced`: a poll that started before this fence is
                // seen by the second look; one that starts after it sees `deep`.
                self.deep.store(true, SeqCst);
                fence(SeqCst);
                seen = look();
                if seen == Seen::Quiet {
                    deep = true;
                } else {
                    self.deep.store(false, SeqCst);
                }
            }
            quiet_looks = if seen == Seen::Quiet { quiet_looks + 1 } else { 0 };
            g = self.lock();
            if seen == Seen::Act {
                // A wakeup handed over meanwhile was for this worker: it is up now.
                g.watch_token = false;
                return g;
            }
        }
    }

    /// Waits on the watcher's condvar for `interval`; true if it ran out.
    #[cfg(not(iocore_loom))]
    fn wait_interval<'a>(
        &'a self,
        g: MutexGuard<'a, IdleState>,
        interval: Duration,
    ) -> (MutexGuard<'a, IdleState>, bool) {
        let (g, r) = self.watch_cv.wait_timeout(g, interval).unwrap_or_else(|e| e.into_inner());
        (g, r.timed_out())
    }

    /// Under loom (whose condvars never time out) the interval runs out at once: a valid
    /// schedule of the real one. (No yield: the models' `look`s end the watch in a few
    /// rounds, and a yield would run the other threads first in every schedule.)
    #[cfg(iocore_loom)]
    fn wait_interval<'a>(
        &self,
        g: MutexGuard<'a, IdleState>,
        _interval: Duration,
    ) -> (MutexGuard<'a, IdleState>, bool) {
        (g, true)
    }

    /// A worker started a poll: if the watcher sleeps until nudged, nudge it. Callers
    /// publish the poll, then issue a `SeqCst` fence, then call this.
    #[inline]
    pub(crate) fn nudge_fenced(&self) {
        if self.deep.load(SeqCst) && self.deep.swap(false, SeqCst) {
            self.lock().nudged = true;
            self.watch_cv.notify_one();
        }
    }

    /// Wakes one sleeper (one outside the seat if there is one); false if there was none.
    pub(crate) fn notify_one(&self) -> bool {
        let mut g = self.lock();
        let cv = if g.waiting > 0 {
            g.waiting -= 1;
            g.tokens += 1;
            &self.cv
        } else if g.seat && !g.watch_token {
            g.watch_token = true;
            &self.watch_cv
        } else {
            return false;
        };
        self.publish(&g);
        drop(g);
        cv.notify_one();
        true
    }

    pub(crate) fn notify_all(&self) {
        let mut g = self.lock();
        g.tokens += g.waiting;
        g.waiting = 0;
        if g.seat {
            g.watch_token = true;
        }
        self.publish(&g);
        drop(g);
        self.cv.notify_all();
        self.watch_cv.notify_all();
    }
}

#[cfg(all(test, iocore_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// The watcher's interval in the models (loom's condvars never time out anyway).
    fn interval() -> Duration {
        Duration::from_millis(1)
    }

    /// A thread that, `times` times, makes work ready and wakes a sleeper the way
    /// `Scheduler::wake_worker` does.
    fn pusher(idle: &Arc<Idle>, work: &Arc<AtomicUsize>, times: usize) -> loom::thread::JoinHandle<()> {
        let (idle, work) = (idle.clone(), work.clone());
        loom::thread::spawn(move || {
            for _ in 0..times {
                work.fetch_add(1, SeqCst);
                fence(SeqCst);
                if idle.has_sleepers_fenced() {
                    idle.notify_one();
                }
            }
        })
    }

    /// A worker goes to sleep (in the watcher's seat, finding nothing to watch) while
    /// another thread makes work ready and wakes sleepers the way `Scheduler::wake_worker`
    /// does. The worker must not sleep forever (loom reports a deadlock if it does) and
    /// must see the work when it returns.
    #[test]
    fn loom_no_lost_wakeup() {
        loom::model(|| {
            let idle = Arc::new(Idle::new());
            let work = Arc::new(AtomicUsize::new(0));
            let pusher = pusher(&idle, &work, 1);
            idle.sleep(|| work.load(SeqCst) == 1, interval, || Seen::Quiet);
            assert_eq!(work.load(SeqCst), 1, "woke up without the work being visible");
            pusher.join().unwrap();
        });
    }

    /// Two sleepers (the watcher and one outside the seat), two pushes: both get out.
    #[test]
    fn loom_two_sleepers_two_wakeups() {
        loom::model(|| {
            let idle = Arc::new(Idle::new());
            let work = Arc::new(AtomicUsize::new(0));
            let sleeper = {
                let (idle, work) = (idle.clone(), work.clone());
                loom::thread::spawn(move || idle.sleep(|| work.load(SeqCst) > 0, interval, || Seen::Quiet))
            };
            let pusher = pusher(&idle, &work, 2);
            idle.sleep(|| work.load(SeqCst) > 0, interval, || Seen::Quiet);
            sleeper.join().unwrap();
            pusher.join().unwrap();
        });
    }

    /// The watcher leaves its seat to act while another worker sleeps outside it: that one
    /// must take the seat (and so act too), or it would sleep unwatched forever.
    #[test]
    fn loom_vacated_seat_is_taken() {
        loom::model(|| {
            let idle = Arc::new(Idle::new());
            let other = {
                let idle = idle.clone();
                loom::thread::spawn(move || idle.sleep(|| false, interval, || Seen::Act))
            };
            idle.sleep(|| false, interval, || Seen::Act);
            other.join().unwrap();
        });
    }

    /// A worker starts a poll that lasts until somebody else acts (as a task blocking its
    /// worker until IO is served); the watcher must not sleep through it. The poller
    /// publishes its poll (odd sequence), fences and nudges the way `pop_ready` does; the
    /// watcher's `look` acts on a poll it saw twice. If the watcher went to sleep until
    /// nudged without the poller seeing it, both would wait forever (a loom deadlock).
    #[test]
    fn loom_watcher_sees_a_long_poll() {
        loom::model(|| {
            let idle = Arc::new(Idle::new());
            let seq = Arc::new(AtomicUsize::new(0));
            let acted = Arc::new((loom::sync::Mutex::new(false), loom::sync::Condvar::new()));
            let poller = {
                let (idle, seq, acted) = (idle.clone(), seq.clone(), acted.clone());
                loom::thread::spawn(move || {
                    seq.store(1, SeqCst);
                    fence(SeqCst);
                    idle.nudge_fenced();
                    let mut done = acted.0.lock().unwrap();
                    while !*done {
                        done = acted.1.wait(done).unwrap();
                    }
                    seq.store(2, SeqCst);
                })
            };
            let mut last = 0;
            idle.sleep(
                || false,
                interval,
                || {
                    let now = seq.load(SeqCst);
                    let seen = if now % 2 == 1 && now == last {
                        Seen::Act
                    } else if now != last {
                        Seen::Busy
                    } else {
                        Seen::Quiet
                    };
                    last = now;
                    seen
                },
            );
            *acted.0.lock().unwrap() = true;
            acted.1.notify_one();
            poller.join().unwrap();
        });
    }
}
