//! Public API surface: builder errors, `Handle::current`/`try_current`, `block_on` inside
//! a worker, metrics, `wait_idle`, task ids.

mod support;

use iocore::{task, time, Handle, IoCore};
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;
use support::{burn, core, wait_until, watchdog, HANG};

#[test]
fn builder_rejects_zero_threads() {
    let e = IoCore::builder().threads(0).build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let msg = e.to_string();
    assert!(msg.contains("thread count"), "{msg}");
    assert!(msg.contains("got 0"), "{msg}");
}

#[test]
fn builder_rejects_too_many_threads() {
    for n in [100_000usize, 1025] {
        let e = IoCore::builder().threads(n).build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let msg = e.to_string();
        assert!(msg.contains("thread count"), "{msg}");
        assert!(msg.contains(&n.to_string()), "{msg}");
        assert!(msg.contains("1024"), "{msg}");
    }
}

#[test]
fn builder_defaults_and_thread_names() {
    watchdog(HANG * 2, || {
        let core = IoCore::new().unwrap();
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        assert_eq!(core.metrics().workers, cpus);
        let core = IoCore::builder().threads(3).thread_name("mypool").build().unwrap();
        assert_eq!(core.metrics().workers, 3);
        let name = core.block_on(core.spawn(async { std::thread::current().name().map(String::from) }));
        let name = name.unwrap().expect("worker threads are named");
        assert!(name.starts_with("mypool-"), "{name}");
        assert!(format!("{core:?}").contains("IoCore"));
        assert!(format!("{:?}", core.handle()).contains("Handle"));
    });
}

#[test]
fn handle_current_inside_task() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let h = core.spawn(async {
            assert!(Handle::try_current().is_some());
            let a = Handle::current().spawn(async { 20 });
            let b = iocore::spawn(async { 22 });
            let c = Handle::current().spawn_after(Duration::from_micros(100), async { 0 });
            a.await.unwrap() + b.await.unwrap() + c.await.unwrap()
        });
        let r = core.block_on(time::timeout(HANG, h)).expect("hung").unwrap();
        assert_eq!(r, 42);
        // The handle of a task is the core's: spawning through it works from outside.
        let inner = core.block_on(core.spawn(async { Handle::current() })).unwrap();
        assert_eq!(core.block_on(inner.spawn(async { 5 })).unwrap(), 5);
    });
}

#[test]
fn handle_current_inside_block_on() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let r = core.block_on(async {
            assert!(Handle::try_current().is_some());
            iocore::spawn(async { 8 }).await.unwrap()
        });
        assert_eq!(r, 8);
        // The current core is restored once block_on returns.
        assert!(Handle::try_current().is_none());
    });
}

#[test]
fn try_current_is_none_on_plain_thread() {
    let none = std::thread::spawn(|| Handle::try_current().is_none()).join().unwrap();
    assert!(none);
    let panicked = std::thread::spawn(|| std::panic::catch_unwind(Handle::current).is_err()).join().unwrap();
    assert!(panicked, "Handle::current() outside a core must panic");
    let msg = std::thread::spawn(|| {
        let e = std::panic::catch_unwind(|| iocore::spawn(async {})).unwrap_err();
        e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
    })
    .join()
    .unwrap()
    .unwrap_or_default();
    assert!(msg.contains("outside"), "{msg}");
}

#[test]
fn block_on_inside_worker_panics() {
    watchdog(HANG * 2, || {
        let core = Arc::new(core(2));
        let c2 = core.clone();
        let h = core.spawn(async move {
            c2.block_on(async { 1 });
        });
        let e = core.block_on(time::timeout(HANG, h)).expect("hung").unwrap_err();
        assert!(e.is_panic(), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("block_on"), "{msg}");
        // The worker lives on.
        assert_eq!(core.block_on(core.spawn(async { 2 })).unwrap(), 2);
        // block_on of *another* core inside a worker panics too.
        let other = Arc::new(support::core(1));
        let o2 = other.clone();
        let h = core.spawn(async move {
            o2.block_on(async { 1 });
        });
        let e = core.block_on(time::timeout(HANG, h)).expect("hung").unwrap_err();
        assert!(e.is_panic() && e.to_string().contains("block_on"), "{e}");
    });
}

#[test]
fn task_current_and_ids() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let h = core.spawn(async { task::current().id() });
        let expected = h.task().id();
        assert_eq!(core.block_on(h).unwrap(), expected);
        let a = core.spawn(async {});
        let b = core.spawn(async {});
        assert_ne!(a.task().id(), b.task().id());
        assert_eq!(a.task(), a.task());
        assert_ne!(a.task(), b.task());
        assert_eq!(a.task().clone(), a.task());
        // task::current() outside a task panics.
        assert!(std::panic::catch_unwind(task::current).is_err());
    });
}

#[test]
fn worker_busy_counts_at_least_the_time_spent_in_polls() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let before: std::time::Duration = core.metrics().worker_busy.iter().sum();
        // One poll that holds its worker for 30 ms of wall-clock time: the busy time grows
        // by about that, however slow the machine is (measured with the calibrated
        // time-stamp counter: the bound leaves a third for calibration error).
        let spin = core.spawn(async { burn(std::time::Duration::from_millis(30)) });
        core.block_on(spin).expect("spinning task");
        // The worker adds the time when its batch ends, just after the task completed.
        wait_until("the 30 ms poll to be counted as busy time", || {
            let after: std::time::Duration = core.metrics().worker_busy.iter().sum();
            after - before >= std::time::Duration::from_millis(20)
        });
    });
}

#[test]
fn metrics_reflect_parked_tasks() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let m = core.metrics();
        assert_eq!(m.workers, 2);
        assert_eq!(m.worker_polls.len(), 2);
        assert_eq!(m.worker_busy.len(), 2);
        assert_eq!(m.live_tasks, 0);
        let handles: Vec<_> = (0..10).map(|_| core.spawn(async { task::park(None).await })).collect();
        wait_until("10 tasks parked", || core.metrics().parked_tasks == 10);
        let m = core.metrics();
        assert_eq!(m.live_tasks, 10, "{m:?}");
        assert_eq!(m.parked_tasks, 10, "{m:?}");
        assert!(m.worker_polls.iter().sum::<u64>() >= 10, "{m:?}");
        assert_eq!(m.ready_queue_depth, 0, "{m:?}");
        assert_eq!(m.front_queue_depth, 0, "{m:?}");
        for h in &handles {
            h.task().wakeup();
        }
        core.block_on(time::timeout(HANG, async move {
            for h in handles {
                assert_eq!(h.await.unwrap(), task::Wake::Woken);
            }
        }))
        .expect("hung");
        assert!(core.wait_idle(HANG));
        let m = core.metrics();
        assert_eq!(m.live_tasks, 0, "{m:?}");
        assert_eq!(m.parked_tasks, 0, "{m:?}");
        assert_eq!(m.completed_tasks, 10, "{m:?}");
        assert_eq!(m.cancelled_tasks, 0, "{m:?}");
        assert!(m.worker_polls.iter().sum::<u64>() >= 20, "{m:?}");
        assert!(m.sched_steps > 0, "{m:?}");
    });
}

/// Parked-with-deadline tasks are counted as parked too, and stop being counted once
/// they expire.
#[test]
fn metrics_parked_with_deadlines() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let handles: Vec<_> =
            (0..5).map(|_| core.spawn(async { time::sleep(Duration::from_secs(3600)).await })).collect();
        let delayed = core.spawn_after(Duration::from_secs(3600), async {});
        wait_until("6 tasks parked", || core.metrics().parked_tasks == 6);
        assert_eq!(core.metrics().live_tasks, 6);
        let short = core.spawn(async { time::sleep(Duration::from_millis(1)).await });
        core.block_on(time::timeout(HANG, short)).expect("hung").unwrap();
        assert_eq!(core.metrics().parked_tasks, 6);
        for h in &handles {
            h.abort();
        }
        delayed.abort();
        assert!(core.wait_idle(HANG));
        let m = core.metrics();
        assert_eq!(m.parked_tasks, 0, "{m:?}");
        assert_eq!(m.cancelled_tasks, 6, "{m:?}");
    });
}

#[test]
fn wait_idle_true_after_tasks_finish() {
    watchdog(HANG * 2, || {
        let core = core(2);
        assert!(core.wait_idle(Duration::ZERO), "a fresh core is idle");
        for i in 0..100u64 {
            drop(core.spawn(async move {
                time::sleep(Duration::from_micros(50 * (i % 10))).await;
            }));
        }
        assert!(core.wait_idle(HANG));
        assert_eq!(core.metrics().live_tasks, 0);
        assert!(core.handle().wait_idle(Duration::from_millis(1)));
    });
}

#[test]
fn wait_idle_false_with_parked_task() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let h = core.spawn(async { task::park(None).await });
        let start = std::time::Instant::now();
        assert!(!core.wait_idle(Duration::from_millis(20)));
        assert!(start.elapsed() >= Duration::from_millis(20));
        assert!(!core.handle().wait_idle(Duration::ZERO));
        h.task().signal();
        assert!(core.wait_idle(HANG));
        assert_eq!(core.block_on(h).unwrap(), task::Wake::Signaled);
    });
}

/// `IoCore` and `Handle` are shareable across threads; `JoinHandle` and `TaskRef` are
/// sendable.
#[test]
fn auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<IoCore>();
    send_sync::<Handle>();
    send_sync::<iocore::TaskRef>();
    send_sync::<iocore::JoinHandle<u32>>();
    send::<iocore::JoinError>();
    send::<time::Sleep>();
}
