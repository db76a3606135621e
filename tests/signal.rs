//! `TaskRef::signal`: sticky until a `park` consumes it, coalescing, taking precedence over
//! wakeups and deadlines; and signals passed around rings of tasks and from other threads.

mod support;

use iocore::task::{self, Wake};
use iocore::{time, IoCore, TaskRef};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use support::{core, spin_until, wait_until, watchdog, HANG};

fn soon() -> Option<Instant> {
    Some(Instant::now() + Duration::from_millis(5))
}

/// Spawns `body` after a handshake: the task announces it runs and spins until the test
/// thread has called `act` on its `TaskRef`; then it continues with `body`.
fn while_running<T, F>(core: &IoCore, act: impl FnOnce(&TaskRef), body: F) -> T
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    let running = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let (r2, d2) = (running.clone(), done.clone());
    let h = core.spawn(async move {
        r2.store(true, SeqCst);
        spin_until("the test thread acted", || d2.load(SeqCst));
        body.await
    });
    wait_until("task running", || running.load(SeqCst));
    act(&h.task());
    done.store(true, SeqCst);
    core.block_on(time::timeout(HANG, h)).expect("task did not finish").expect("task failed")
}

#[test]
fn signal_of_parked_task() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let h = core.spawn(async { task::park(None).await });
        wait_until("task parked", || core.metrics().parked_tasks == 1);
        h.task().signal();
        let r = core.block_on(time::timeout(HANG, h)).expect("signalled task did not finish");
        assert_eq!(r.unwrap(), Wake::Signaled);
    });
}

/// A signal sent while the task runs survives other awaits (a yield, a sleep) and is
/// returned by the next `park`.
#[test]
fn signal_is_sticky() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let r = while_running(&core, |t| t.signal(), async {
            task::yield_now().await;
            time::sleep(Duration::from_millis(2)).await;
            task::yield_now().await;
            task::park(None).await
        });
        assert_eq!(r, Wake::Signaled);
    });
}

/// A signal to a `spawn_at` task starts it early and is not consumed by the start (only a
/// wakeup is): the first `park` returns `Signaled`.
#[test]
fn signal_starts_spawn_at_task_and_stays() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let h = core.spawn_at(Instant::now() + Duration::from_secs(10), async { task::park(soon()).await });
        h.task().signal();
        let r = core
            .block_on(time::timeout(Duration::from_secs(5), h))
            .expect("signalled spawn_at task did not start before its deadline");
        assert_eq!(r.unwrap(), Wake::Signaled);
    });
}

#[test]
fn signals_coalesce() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let r = while_running(
            &core,
            |t| {
                for _ in 0..10 {
                    t.signal();
                }
            },
            async { (task::park(None).await, task::park(soon()).await) },
        );
        assert_eq!(r, (Wake::Signaled, Wake::Expired));
    });
}

/// Signal and wakeup both pending (either order): `Signaled`, and the wakeup is consumed
/// by the same `park`.
#[test]
fn signal_takes_precedence_over_wakeup() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let r = while_running(
            &core,
            |t| {
                t.signal();
                t.wakeup();
            },
            async { (task::park(None).await, task::park(soon()).await) },
        );
        assert_eq!(r, (Wake::Signaled, Wake::Expired), "signal then wakeup");
        let r = while_running(
            &core,
            |t| {
                t.wakeup();
                t.signal();
            },
            async { (task::park(None).await, task::park(soon()).await) },
        );
        assert_eq!(r, (Wake::Signaled, Wake::Expired), "wakeup then signal");
    });
}

/// A pending signal wins over a deadline that has already passed.
#[test]
fn signal_takes_precedence_over_passed_deadline() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let past = Instant::now();
        let r = while_running(&core, |t| t.signal(), async move { task::park(Some(past)).await });
        assert_eq!(r, Wake::Signaled);
    });
}

/// Likewise a pending wakeup: `Expired` only when neither is pending.
#[test]
fn wakeup_takes_precedence_over_passed_deadline() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let past = Instant::now();
        let r = while_running(&core, |t| t.wakeup(), async move {
            (task::park(Some(past)).await, task::park(Some(past)).await)
        });
        assert_eq!(r, (Wake::Woken, Wake::Expired));
    });
}

/// A signal that arrives while the task waits with a deadline in the heap.
#[test]
fn signal_of_task_parked_with_deadline() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let h = core.spawn(async { task::park(Some(Instant::now() + Duration::from_secs(3600))).await });
        wait_until("task parked", || core.metrics().parked_tasks == 1);
        h.task().signal();
        let r = core.block_on(time::timeout(HANG, h)).expect("signalled task did not finish");
        assert_eq!(r.unwrap(), Wake::Signaled);
    });
}

/// A ring of 1000 tasks passing one signal around 10 times.
#[test]
fn ring_of_1000_tasks_10_rounds() {
    const N: usize = 1000;
    const ROUNDS: usize = 10;
    watchdog(HANG * 2, || {
        let core = core(2);
        let refs: Arc<OnceLock<Vec<TaskRef>>> = Arc::new(OnceLock::new());
        let hops = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let (refs, hops) = (refs.clone(), hops.clone());
                core.spawn(async move {
                    for round in 0..ROUNDS {
                        let w = task::park(None).await;
                        assert_eq!(w, Wake::Signaled, "task {i} round {round}");
                        hops.fetch_add(1, SeqCst);
                        refs.get().expect("refs set before the first signal")[(i + 1) % N].signal();
                    }
                })
            })
            .collect();
        refs.set(handles.iter().map(|h| h.task()).collect()).unwrap();
        refs.get().unwrap()[0].signal();
        core.block_on(time::timeout(HANG, async move {
            for h in handles {
                h.await.expect("ring task failed");
            }
        }))
        .expect("the ring stopped: a signal was lost");
        assert_eq!(hops.load(SeqCst), N * ROUNDS);
    });
}

/// 10k tasks each park 5 times; two plain threads signal them, sending the next round's
/// signal to a task only after it acknowledged the previous one (so signals never
/// coalesce and every `park` must return `Signaled`).
#[test]
fn signals_from_other_threads_10k_tasks_5_rounds() {
    const N: usize = 10_000;
    const ROUNDS: u32 = 5;
    const SIGNALERS: usize = 2;
    watchdog(HANG * 2, || {
        let core = core(2);
        let acks: Arc<Vec<AtomicU32>> = Arc::new((0..N).map(|_| AtomicU32::new(0)).collect());
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let acks = acks.clone();
                core.spawn(async move {
                    for round in 0..ROUNDS {
                        let w = task::park(None).await;
                        assert_eq!(w, Wake::Signaled, "task {i} round {round}");
                        acks[i].fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        let refs: Arc<Vec<TaskRef>> = Arc::new(handles.iter().map(|h| h.task()).collect());
        let signalers: Vec<_> = (0..SIGNALERS)
            .map(|s| {
                let (acks, refs) = (acks.clone(), refs.clone());
                std::thread::spawn(move || {
                    for round in 0..ROUNDS {
                        for i in (s..N).step_by(SIGNALERS) {
                            wait_until("previous signal acknowledged", || acks[i].load(SeqCst) == round);
                            refs[i].signal();
                        }
                    }
                })
            })
            .collect();
        for s in signalers {
            s.join().expect("signaler failed");
        }
        core.block_on(time::timeout(HANG, async move {
            for h in handles {
                h.await.expect("task failed");
            }
        }))
        .expect("a signal was lost");
        assert!(acks.iter().all(|a| a.load(SeqCst) == ROUNDS));
    });
}
