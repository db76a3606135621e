//! `TaskRef::wakeup`: wakes a parked task, is never lost when it arrives while the task
//! runs, starts a `spawn_at` task early (and is consumed by that start), and coalesces.

mod support;

use iocore::task::{self, Wake};
use iocore::time;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{core, spin_until, wait_until, watchdog, HANG};

#[test]
fn wakeup_of_parked_task() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let h = core.spawn(async { task::park(None).await });
        wait_until("task parked", || core.metrics().parked_tasks == 1);
        assert!(!h.is_finished());
        h.task().wakeup();
        let r = core.block_on(time::timeout(HANG, h)).expect("woken task did not finish");
        assert_eq!(r.unwrap(), Wake::Woken);
    });
}

#[test]
fn wakeup_of_parked_task_with_deadline() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let h = core.spawn(async { task::park(Some(Instant::now() + Duration::from_secs(3600))).await });
        wait_until("task parked", || core.metrics().parked_tasks == 1);
        h.task().wakeup();
        let r = core.block_on(time::timeout(HANG, h)).expect("woken task did not finish");
        assert_eq!(r.unwrap(), Wake::Woken);
    });
}

/// Many parked tasks, each woken from the outside: none is lost.
#[test]
fn wakeup_of_many_parked_tasks() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let handles: Vec<_> = (0..10_000).map(|_| core.spawn(async { task::park(None).await })).collect();
        for h in &handles {
            h.task().wakeup();
        }
        core.block_on(time::timeout(HANG, async move {
            for h in handles {
                assert_eq!(h.await.unwrap(), Wake::Woken);
            }
        }))
        .expect("a wakeup was lost");
    });
}

/// The task is running when the wakeup arrives; its next `park` must return at once.
#[test]
fn wakeup_while_running_is_not_lost() {
    watchdog(HANG * 2, || {
        let core = core(2);
        for _ in 0..100 {
            let running = Arc::new(AtomicBool::new(false));
            let sent = Arc::new(AtomicBool::new(false));
            let (r2, s2) = (running.clone(), sent.clone());
            let h = core.spawn(async move {
                r2.store(true, SeqCst);
                spin_until("wakeup sent", || s2.load(SeqCst));
                task::park(None).await
            });
            wait_until("task running", || running.load(SeqCst));
            h.task().wakeup();
            sent.store(true, SeqCst);
            let r = core.block_on(time::timeout(HANG, h)).expect("wakeup during execution was lost");
            assert_eq!(r.unwrap(), Wake::Woken);
        }
    });
}

/// The same race without the handshake: the wakeup lands at any point of the task's run.
#[test]
fn wakeup_racing_with_park_is_not_lost() {
    watchdog(HANG * 2, || {
        let core = core(2);
        for _ in 0..2000 {
            let started = Arc::new(AtomicBool::new(false));
            let s2 = started.clone();
            let h = core.spawn(async move {
                s2.store(true, SeqCst);
                task::park(None).await
            });
            let t = h.task();
            while !started.load(SeqCst) {
                std::hint::spin_loop();
            }
            t.wakeup();
            let r = core.block_on(time::timeout(HANG, h)).expect("wakeup racing with park was lost");
            assert_eq!(r.unwrap(), Wake::Woken);
        }
    });
}

/// A `spawn_at` task due in 10 s starts at once when woken.
#[test]
fn wakeup_starts_spawn_at_task_early() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let polled = Arc::new(AtomicBool::new(false));
        let p2 = polled.clone();
        let h = core.spawn_at(Instant::now() + Duration::from_secs(10), async move {
            p2.store(true, SeqCst);
            7
        });
        assert!(!polled.load(SeqCst));
        h.task().wakeup();
        let r = core
            .block_on(time::timeout(Duration::from_secs(5), h))
            .expect("woken spawn_at task did not start before its deadline");
        assert_eq!(r.unwrap(), 7);
    });
}

/// Docs of `TaskRef::wakeup`: the wakeup that starts a `spawn_at` task is consumed by the
/// start, so the task's first `park` does not see it.
#[test]
fn wakeup_starting_spawn_at_task_is_consumed() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let h = core.spawn_at(Instant::now() + Duration::from_secs(10), async {
            task::park(Some(Instant::now() + Duration::from_millis(5))).await
        });
        h.task().wakeup();
        let r = core
            .block_on(time::timeout(Duration::from_secs(5), h))
            .expect("woken spawn_at task did not start before its deadline");
        assert_eq!(r.unwrap(), Wake::Expired);
    });
}

/// Wakeup of a `spawn_at` task after it sat in the deadline heap for a while.
#[test]
fn wakeup_starts_spawn_at_task_parked_in_heap() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let h = core.spawn_at(Instant::now() + Duration::from_secs(10), async { 5 });
        wait_until("delayed task parked", || core.metrics().parked_tasks == 1);
        h.task().wakeup();
        let r = core
            .block_on(time::timeout(Duration::from_secs(5), h))
            .expect("woken spawn_at task did not start before its deadline");
        assert_eq!(r.unwrap(), 5);
    });
}

/// 10 wakeups while running: the first park returns Woken, the second expires.
#[test]
fn wakeups_coalesce() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let running = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicBool::new(false));
        let (r2, s2) = (running.clone(), sent.clone());
        let h = core.spawn(async move {
            r2.store(true, SeqCst);
            spin_until("wakeups sent", || s2.load(SeqCst));
            let first = task::park(None).await;
            let second = task::park(Some(Instant::now() + Duration::from_millis(5))).await;
            (first, second)
        });
        wait_until("task running", || running.load(SeqCst));
        let t = h.task();
        for _ in 0..10 {
            t.wakeup();
        }
        sent.store(true, SeqCst);
        let r = core.block_on(time::timeout(HANG, h)).expect("task did not finish");
        assert_eq!(r.unwrap(), (Wake::Woken, Wake::Expired));
    });
}

/// Wakeups sent while parked also coalesce: several wakeups to a parked task are consumed
/// by one `park`. The only worker is kept busy while they are sent, so that all of them
/// arrive before the task runs again.
#[test]
fn wakeups_to_parked_task_coalesce() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let h = core.spawn(async {
            let first = task::park(None).await;
            let second = task::park(Some(Instant::now() + Duration::from_millis(5))).await;
            (first, second)
        });
        wait_until("task parked", || core.metrics().parked_tasks == 1);
        let (running, release) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (r2, rel2) = (running.clone(), release.clone());
        let blocker = core.spawn(async move {
            r2.store(true, SeqCst);
            spin_until("released", || rel2.load(SeqCst));
        });
        wait_until("blocker running", || running.load(SeqCst));
        let t = h.task();
        for _ in 0..10 {
            t.wakeup();
        }
        release.store(true, SeqCst);
        let r = core.block_on(time::timeout(HANG, h)).expect("task did not finish");
        assert_eq!(r.unwrap(), (Wake::Woken, Wake::Expired));
        core.block_on(blocker).unwrap();
    });
}

/// A task wakes itself through `task::current()`: its park returns at once.
#[test]
fn self_wakeup() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let h = core.spawn(async {
            task::current().wakeup();
            task::park(None).await
        });
        let r = core.block_on(time::timeout(HANG, h)).expect("self wakeup lost");
        assert_eq!(r.unwrap(), Wake::Woken);
    });
}

/// A ping-pong between two tasks through wakeups, 1000 rounds each way.
#[test]
fn ping_pong() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let count = Arc::new(AtomicUsize::new(0));
        let slot: Arc<std::sync::OnceLock<iocore::TaskRef>> = Arc::new(std::sync::OnceLock::new());
        let (c2, s2) = (count.clone(), slot.clone());
        let ponger = core.spawn(async move {
            for _ in 0..1000 {
                assert_eq!(task::park(None).await, Wake::Woken);
                c2.fetch_add(1, SeqCst);
                s2.get().expect("pinger registered").wakeup();
            }
        });
        let pong_ref = ponger.task();
        let c3 = count.clone();
        // The pinger starts asleep, so that its TaskRef is registered before the ponger can
        // be woken and look it up; a wakeup then starts it.
        let pinger = core.spawn_after(std::time::Duration::from_secs(3600), async move {
            for i in 0..1000 {
                pong_ref.wakeup();
                assert_eq!(task::park(None).await, Wake::Woken);
                assert_eq!(c3.load(SeqCst), i + 1);
            }
        });
        slot.set(pinger.task()).unwrap();
        pinger.task().wakeup();
        core.block_on(time::timeout(HANG, async move {
            pinger.await.unwrap();
            ponger.await.unwrap();
        }))
        .expect("ping-pong hung: a wakeup was lost");
        assert_eq!(count.load(SeqCst), 1000);
    });
}

/// Wakeups from another thread racing with deadlines expiring in the sched-role: each
/// `park` returns `Woken` or `Expired`, nothing hangs or runs twice.
#[test]
fn wakeup_racing_with_deadline() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let handles: Vec<_> = (0..10_000u64)
            .map(|i| {
                core.spawn(async move {
                    let d = Duration::from_micros(i % 200);
                    let w = task::park(Some(Instant::now() + d)).await;
                    // A second park; the wakeup may have landed after the first returned.
                    let w2 = task::park(Some(Instant::now() + Duration::from_micros(100))).await;
                    (w, w2)
                })
            })
            .collect();
        let refs: Vec<_> = handles.iter().map(|h| h.task()).collect();
        let waker = std::thread::spawn(move || {
            for r in refs {
                r.wakeup();
            }
        });
        let results = core
            .block_on(time::timeout(HANG, async move {
                let mut out = Vec::new();
                for h in handles {
                    out.push(h.await.unwrap());
                }
                out
            }))
            .expect("a task hung");
        waker.join().unwrap();
        for (w, w2) in results {
            assert!(w == Wake::Woken || w == Wake::Expired);
            assert!(w2 == Wake::Woken || w2 == Wake::Expired);
            assert!(!(w == Wake::Woken && w2 == Wake::Woken), "one wakeup returned twice");
        }
    });
}

/// Waking or signalling a finished task, or a task of a dropped core, does nothing.
#[test]
fn wakeup_after_finish_and_after_core_dropped() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let h = core.spawn(async { 1 });
        let t = h.task();
        assert_eq!(core.block_on(h).unwrap(), 1);
        assert!(t.is_finished());
        t.wakeup();
        t.signal();
        let parked = core.spawn(async { task::park(None).await });
        let t2 = parked.task();
        drop(core);
        assert!(t2.is_finished(), "the core's drop cancels the parked task");
        t2.wakeup();
        t2.signal();
        assert!(futures::executor::block_on(parked).unwrap_err().is_cancelled());
        assert_eq!(t.clone(), t);
        assert_ne!(t, t2);
    });
}
