//! Where workers sleep when there is nothing to do, and how they are woken.
//!
//! A sleeper publishes itself (`sleepers`, under the lock, then a `SeqCst` fence) and only
//! then re-checks for work; a pusher publishes its work, fences, then looks at `sleepers`.
//! So either the sleeper sees the work, or the pusher sees the sleeper and wakes it: no
//! wakeup is lost. Wakeups are counted as tokens, so each `notify_one` wakes exactly one
//! sleeper and spurious condvar wakeups are absorbed. Modelled with loom below.

use crate::sync::{fence, lock_modelled, AtomicUsize, Condvar, Mutex, MutexGuard, Ordering::SeqCst};

pub(crate) struct Idle {
    state: Mutex<IdleState>,
    cv: Condvar,
    /// Mirror of `state.sleepers`, readable without the lock.
    sleepers: AtomicUsize,
}

#[derive(Default)]
struct IdleState {
    sleepers: usize,
    tokens: usize,
}

impl Idle {
    pub(crate) fn new() -> Idle {
        Idle { state: Mutex::new(IdleState::default()), cv: Condvar::new(), sleepers: AtomicUsize::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, IdleState> {
        lock_modelled(&self.state)
    }

    /// Whether some worker sleeps. Callers publish their work, then issue a `SeqCst` fence,
    /// then call this.
    pub(crate) fn has_sleepers_fenced(&self) -> bool {
        self.sleepers.load(SeqCst) > 0
    }

    /// Sleeps until notified, unless `has_work()` (checked after publishing this sleeper).
    pub(crate) fn sleep(&self, has_work: impl Fn() -> bool) {
        let mut g = self.lock();
        g.sleepers += 1;
        self.sleepers.store(g.sleepers, SeqCst);
        fence(SeqCst);
        if has_work() {
            g.sleepers -= 1;
            self.sleepers.store(g.sleepers, SeqCst);
            return;
        }
        while g.tokens == 0 {
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        g.tokens -= 1;
    }

    /// Wakes one sleeper; false if there was none.
    pub(crate) fn notify_one(&self) -> bool {
        let mut g = self.lock();
        if g.sleepers == 0 {
            return false;
        }
        g.sleepers -= 1;
        g.tokens += 1;
        self.sleepers.store(g.sleepers, SeqCst);
        self.cv.notify_one();
        true
    }

    pub(crate) fn notify_all(&self) {
        let mut g = self.lock();
        g.tokens += g.sleepers;
        g.sleepers = 0;
        self.sleepers.store(0, SeqCst);
        self.cv.notify_all();
    }
}

#[cfg(all(test, iocore_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

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

    /// A worker goes to sleep while another thread makes work ready and wakes sleepers the
    /// way `Scheduler::wake_worker` does. The worker must not sleep forever (loom reports a
    /// deadlock if it does) and must see the work when it returns.
    #[test]
    fn loom_no_lost_wakeup() {
        loom::model(|| {
            let idle = Arc::new(Idle::new());
            let work = Arc::new(AtomicUsize::new(0));
            let pusher = pusher(&idle, &work, 1);
            idle.sleep(|| work.load(SeqCst) == 1);
            assert_eq!(work.load(SeqCst), 1, "woke up without the work being visible");
            pusher.join().unwrap();
        });
    }

    /// Two sleepers, two pushes: both sleepers get out.
    #[test]
    fn loom_two_sleepers_two_wakeups() {
        loom::model(|| {
            let idle = Arc::new(Idle::new());
            let work = Arc::new(AtomicUsize::new(0));
            let sleeper = {
                let (idle, work) = (idle.clone(), work.clone());
                loom::thread::spawn(move || idle.sleep(|| work.load(SeqCst) > 0))
            };
            let pusher = pusher(&idle, &work, 2);
            idle.sleep(|| work.load(SeqCst) > 0);
            sleeper.join().unwrap();
            pusher.join().unwrap();
        });
    }
}
