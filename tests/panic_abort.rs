//! Panics and aborts: a panicking task yields a panic `JoinError` and its worker lives on;
//! `abort` cancels parked and running tasks (dropping the future exactly once) and does
//! nothing to finished ones; dropping a `JoinHandle` detaches the task.

mod support;

use iocore::{task, time, JoinError};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::Duration;
use support::{core, join, park_holding_panic_on_drop, spin_until, wait_until, watchdog, DropGuard, HANG};

#[test]
fn panic_with_str_payload() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let h = core.spawn(async {
            panic!("boom static");
        });
        let id = h.task().id();
        let e: JoinError = join(&core, h).unwrap_err();
        assert!(e.is_panic());
        assert!(!e.is_cancelled());
        assert_eq!(e.id(), id);
        let shown = e.to_string();
        assert!(shown.contains("panicked"), "{shown}");
        assert!(shown.contains("boom static"), "{shown}");
        assert!(format!("{e:?}").contains("boom static"));
        let payload = e.into_panic();
        assert_eq!(*payload.downcast_ref::<&str>().expect("a &str payload"), "boom static");
    });
}

#[test]
fn panic_with_string_payload() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let n = 42;
        let h = core.spawn(async move {
            task::yield_now().await;
            if n == 42 {
                panic!("boom {n}");
            }
            n
        });
        let e = join(&core, h).unwrap_err();
        assert!(e.is_panic());
        assert!(e.to_string().contains("panicked"));
        assert!(e.to_string().contains("boom 42"));
        let e = match e.try_into_panic() {
            Ok(p) => p,
            Err(e) => panic!("not a panic: {e}"),
        };
        assert_eq!(e.downcast_ref::<String>().expect("a String payload"), "boom 42");
        // io::Error conversion keeps the message.
        let h = core.spawn(async { panic!("for io") });
        let io: std::io::Error = join(&core, h).unwrap_err().into();
        assert!(io.to_string().contains("for io"));
    });
}

#[test]
fn worker_lives_on_after_panics() {
    watchdog(HANG * 2, || {
        let core = core(1);
        for round in 0..10 {
            let h = core.spawn(async move {
                task::yield_now().await;
                panic!("panic {round}");
            });
            assert!(join(&core, h).unwrap_err().is_panic());
            // The only worker still runs tasks, sleeps and parks.
            let handles: Vec<_> = (0..100u32)
                .map(|i| {
                    core.spawn(async move {
                        if i % 10 == 0 {
                            time::sleep(Duration::from_micros(100)).await;
                        }
                        i
                    })
                })
                .collect();
            for (i, h) in handles.into_iter().enumerate() {
                assert_eq!(join(&core, h).unwrap(), i as u32);
            }
        }
        assert_eq!(core.metrics().workers, 1);
        let report = core.shutdown(HANG);
        assert_eq!(report.unjoined_workers, 0);
    });
}

/// A panicking task's future (with what it holds) is dropped once.
#[test]
fn panicking_task_drops_its_state_once() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let drops = Arc::new(AtomicUsize::new(0));
        let g = DropGuard(drops.clone());
        let h = core.spawn(async move {
            let _g = g;
            task::yield_now().await;
            panic!("with guard");
        });
        assert!(join(&core, h).unwrap_err().is_panic());
        assert_eq!(drops.load(SeqCst), 1);
    });
}

#[test]
fn abort_parked_task() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let drops = Arc::new(AtomicUsize::new(0));
        let g = DropGuard(drops.clone());
        let h = core.spawn(async move {
            let _g = g;
            task::park(None).await;
            panic!("an aborted task was polled to its end");
        });
        wait_until("task parked", || core.metrics().parked_tasks == 1);
        h.abort();
        h.abort();
        let e = join(&core, h).unwrap_err();
        assert!(e.is_cancelled(), "{e}");
        assert!(!e.is_panic());
        assert!(e.to_string().contains("cancelled"), "{e}");
        assert_eq!(drops.load(SeqCst), 1, "the future must be dropped exactly once");
        assert!(core.wait_idle(HANG));
        assert_eq!(drops.load(SeqCst), 1);
        assert_eq!(core.metrics().cancelled_tasks, 1);
    });
}

/// Abort of a task parked with a deadline (in the deadline heap) and of a `spawn_at`
/// task that has not started.
#[test]
fn abort_sleeping_and_delayed_tasks() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let drops = Arc::new(AtomicUsize::new(0));
        let g1 = DropGuard(drops.clone());
        let sleeping = core.spawn(async move {
            let _g = g1;
            time::sleep(Duration::from_secs(3600)).await;
        });
        let g2 = DropGuard(drops.clone());
        let polled = Arc::new(AtomicBool::new(false));
        let p2 = polled.clone();
        let delayed = core.spawn_after(Duration::from_secs(3600), async move {
            let _g = g2;
            p2.store(true, SeqCst);
        });
        wait_until("both parked", || core.metrics().parked_tasks == 2);
        sleeping.abort();
        delayed.abort();
        assert!(join(&core, sleeping).unwrap_err().is_cancelled());
        assert!(join(&core, delayed).unwrap_err().is_cancelled());
        assert_eq!(drops.load(SeqCst), 2);
        assert!(!polled.load(SeqCst), "an aborted spawn_at task was polled");
    });
}

#[test]
fn abort_finished_task_keeps_output() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let h = core.spawn(async { 7 });
        wait_until("task finished", || h.is_finished());
        h.abort();
        assert_eq!(join(&core, h).unwrap(), 7);
        // And a panicked one keeps its panic.
        let h = core.spawn(async { panic!("kept") });
        wait_until("task finished", || h.is_finished());
        h.abort();
        assert!(join(&core, h).unwrap_err().is_panic());
    });
}

#[test]
fn abort_running_task() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let drops = Arc::new(AtomicUsize::new(0));
        let polls = Arc::new(AtomicUsize::new(0));
        let g = DropGuard(drops.clone());
        let p2 = polls.clone();
        let h = core.spawn(async move {
            let _g = g;
            loop {
                p2.fetch_add(1, SeqCst);
                task::yield_now().await;
            }
        });
        wait_until("task looping", || polls.load(SeqCst) > 100);
        h.abort();
        let e = join(&core, h).unwrap_err();
        assert!(e.is_cancelled(), "{e}");
        assert_eq!(drops.load(SeqCst), 1);
        // It is not polled any more.
        let after = polls.load(SeqCst);
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(polls.load(SeqCst), after);
    });
}

/// Abort while the task is in the middle of a poll: the future is not dropped under the
/// poll, and is dropped once after it.
#[test]
fn abort_during_poll() {
    watchdog(HANG * 2, || {
        let core = core(2);
        for _ in 0..50 {
            let drops = Arc::new(AtomicUsize::new(0));
            let in_poll = Arc::new(AtomicBool::new(false));
            let aborted = Arc::new(AtomicBool::new(false));
            let g = DropGuard(drops.clone());
            let (i2, a2, d2) = (in_poll.clone(), aborted.clone(), drops.clone());
            let h = core.spawn(async move {
                let _g = g;
                i2.store(true, SeqCst);
                spin_until("abort sent", || a2.load(SeqCst));
                assert_eq!(d2.load(SeqCst), 0, "future dropped while being polled");
                task::yield_now().await;
                task::park(None).await;
            });
            wait_until("task in poll", || in_poll.load(SeqCst));
            h.abort();
            aborted.store(true, SeqCst);
            assert!(join(&core, h).unwrap_err().is_cancelled());
            assert_eq!(drops.load(SeqCst), 1);
        }
    });
}

/// A future whose destructor panics when aborted: the panic is contained, the handle
/// still says cancelled, and the worker lives on.
#[test]
fn abort_with_panicking_destructor() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let h = core.spawn(park_holding_panic_on_drop());
        wait_until("task parked", || core.metrics().parked_tasks == 1);
        h.abort();
        assert!(join(&core, h).unwrap_err().is_cancelled());
        let h = core.spawn(async { 3 });
        assert_eq!(join(&core, h).unwrap(), 3);
    });
}

#[test]
fn dropping_join_handle_detaches() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let (tx, rx) = mpsc::channel();
        let go = Arc::new(AtomicBool::new(false));
        let g2 = go.clone();
        let h = core.spawn(async move {
            while !g2.load(SeqCst) {
                time::sleep(Duration::from_micros(200)).await;
            }
            tx.send(99).unwrap();
        });
        drop(h);
        go.store(true, SeqCst);
        assert_eq!(rx.recv_timeout(HANG), Ok(99), "a detached task did not run to completion");
        assert!(core.wait_idle(HANG));
    });
}

/// A detached parked task can still be woken through a `TaskRef` taken before the drop.
#[test]
fn detached_parked_task_runs_when_woken() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let (tx, rx) = mpsc::channel();
        let h = core.spawn(async move {
            let w = task::park(None).await;
            tx.send(w).unwrap();
        });
        let t = h.task();
        drop(h);
        wait_until("task parked", || core.metrics().parked_tasks == 1);
        assert!(!t.is_finished());
        t.wakeup();
        assert_eq!(rx.recv_timeout(HANG), Ok(task::Wake::Woken));
        wait_until("task finished", || t.is_finished());
    });
}

/// A detached task that panics does not disturb anything.
#[test]
fn detached_panicking_task() {
    watchdog(HANG * 2, || {
        let core = core(1);
        drop(core.spawn(async { panic!("detached") }));
        assert!(core.wait_idle(HANG));
        let h = core.spawn(async { 1 });
        assert_eq!(join(&core, h).unwrap(), 1);
    });
}

/// Aborts from another thread racing with tasks that sleep, yield and finish: every handle
/// resolves Ok or cancelled, and every future is dropped exactly once.
#[test]
fn abort_races() {
    watchdog(HANG * 2, || {
        let core = core(2);
        const N: usize = 5000;
        let drops = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let g = DropGuard(drops.clone());
                core.spawn(async move {
                    let _g = g;
                    match i % 3 {
                        0 => time::sleep(Duration::from_micros((i % 100) as u64)).await,
                        1 => task::yield_now().await,
                        _ => {}
                    }
                    i
                })
            })
            .collect();
        let handles = Arc::new(handles);
        let h2 = handles.clone();
        let aborter = std::thread::spawn(move || {
            for h in h2.iter().step_by(2) {
                h.abort();
            }
        });
        aborter.join().unwrap();
        let handles = Arc::try_unwrap(handles).unwrap();
        let (mut ok, mut cancelled) = (0, 0);
        core.block_on(time::timeout(HANG, async {
            for (i, h) in handles.into_iter().enumerate() {
                match h.await {
                    Ok(v) => {
                        assert_eq!(v, i);
                        ok += 1;
                    }
                    Err(e) => {
                        assert!(e.is_cancelled(), "{e}");
                        assert_eq!(i % 2, 0, "a task that was not aborted got cancelled");
                        cancelled += 1;
                    }
                }
            }
        }))
        .expect("hung");
        assert_eq!(ok + cancelled, N);
        assert!(core.wait_idle(HANG));
        assert_eq!(drops.load(SeqCst), N, "each future dropped exactly once");
    });
}
