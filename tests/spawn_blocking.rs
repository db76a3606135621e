//! `spawn_blocking`: closures run on the blocking pool, never on a worker; FIFO; the pool
//! grows up to its limit and shrinks after the keep-alive; panics become `JoinError`s;
//! shutdown reports closures it could not wait for; the core is current inside them.

use iocore::IoCore;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::Duration;

mod support;

use support::{wait_until, HANG};

#[test]
fn a_blocking_closure_returns_its_value_and_runs_off_the_workers() {
    let core = IoCore::builder().threads(1).build().unwrap();
    let h = core.spawn_blocking(|| std::thread::current().name().unwrap_or_default().to_string());
    let name = core.block_on(h).unwrap();
    assert!(name.starts_with("iocore-worker-blocking-"), "ran on {name:?}");
    // From inside a task, through the free function and the handle.
    let v = core.block_on(core.spawn(async { iocore::spawn_blocking(|| 6 * 7).await.unwrap() })).unwrap();
    assert_eq!(v, 42);
}

#[test]
fn a_panicking_closure_is_a_join_error_and_the_pool_keeps_working() {
    let core = IoCore::builder().threads(1).max_blocking_threads(1).build().unwrap();
    let err = core.block_on(core.spawn_blocking(|| -> u32 { panic!("boom in blocking") })).unwrap_err();
    assert!(err.is_panic());
    assert!(err.to_string().contains("boom in blocking"), "{err}");
    assert_eq!(core.block_on(core.spawn_blocking(|| 1)).unwrap(), 1);
}

#[test]
fn closures_start_in_fifo_order() {
    let core = IoCore::builder().threads(2).max_blocking_threads(1).build().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let order = order.clone();
            core.spawn_blocking(move || order.lock().unwrap().push(i))
        })
        .collect();
    core.block_on(async {
        for h in handles {
            h.await.unwrap();
        }
    });
    // Each wrapper task submits its closure when it first runs; tasks start in FIFO order.
    let order = order.lock().unwrap().clone();
    assert_eq!(order, (0..50).collect::<Vec<_>>());
}

#[test]
fn the_pool_grows_to_its_limit_and_not_beyond() {
    let core = IoCore::builder().threads(1).max_blocking_threads(4).build().unwrap();
    let barrier = Arc::new(Barrier::new(4));
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..12)
        .map(|_| {
            let (barrier, running, peak) = (barrier.clone(), running.clone(), peak.clone());
            core.spawn_blocking(move || {
                let now = running.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(now, SeqCst);
                // Four must run at once to get past this, three times over.
                barrier.wait();
                running.fetch_sub(1, SeqCst);
            })
        })
        .collect();
    core.block_on(iocore::time::timeout(HANG, async {
        for h in handles {
            h.await.unwrap();
        }
    }))
    .expect("four closures never ran at once");
    assert_eq!(peak.load(SeqCst), 4);
    assert!(core.metrics().blocking_threads <= 4, "{:?}", core.metrics());
}

#[test]
fn idle_pool_threads_exit_after_the_keep_alive() {
    let core = IoCore::builder()
        .threads(1)
        .max_blocking_threads(3)
        .blocking_keep_alive(Duration::from_millis(20))
        .build()
        .unwrap();
    let handles: Vec<_> =
        (0..3).map(|_| core.spawn_blocking(|| std::thread::sleep(Duration::from_millis(5)))).collect();
    core.block_on(async {
        for h in handles {
            h.await.unwrap();
        }
    });
    wait_until("blocking threads to exit", || core.metrics().blocking_threads == 0);
    // And it grows again on demand.
    assert_eq!(core.block_on(core.spawn_blocking(|| 5)).unwrap(), 5);
}

#[test]
fn a_blocking_closure_does_not_stall_the_worker() {
    let core = IoCore::builder().threads(1).build().unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    let blocked = core.spawn_blocking(move || {
        while !r.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    // The only worker is free: an ordinary task runs to completion meanwhile.
    let ticks = core.block_on(core.spawn(async {
        let mut n = 0;
        for _ in 0..100 {
            iocore::task::yield_now().await;
            n += 1;
        }
        n
    }));
    assert_eq!(ticks.unwrap(), 100);
    release.store(true, SeqCst);
    core.block_on(blocked).unwrap();
}

#[test]
fn shutdown_reports_a_closure_still_running_and_cancels_its_handle() {
    let core = IoCore::builder().threads(1).build().unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let h = core.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        let _ = release_rx.recv_timeout(HANG);
    });
    started_rx.recv_timeout(HANG).expect("closure started");
    let report = core.shutdown(Duration::from_millis(20));
    assert_eq!(report.blocking_running, 1, "{report:?}");
    assert_eq!(report.leaked, 0, "{report:?}");
    let err = futures::executor::block_on(h).unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    release_tx.send(()).unwrap();
}

#[test]
fn zero_blocking_threads_is_an_error() {
    let err = IoCore::builder().max_blocking_threads(0).build().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("max_blocking_threads"), "{err}");
}

#[test]
fn spawn_blocking_outside_any_core_uses_the_default_core() {
    let v = futures::executor::block_on(iocore::spawn_blocking(|| "done")).unwrap();
    assert_eq!(v, "done");
}

#[test]
fn a_closure_aborted_before_it_starts_never_runs() {
    let core = IoCore::builder().threads(1).max_blocking_threads(1).build().unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let first = core.spawn_blocking(move || {
        let _ = release_rx.recv_timeout(HANG);
    });
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let second = core.spawn_blocking(move || r.store(true, SeqCst));
    second.abort();
    assert!(core.block_on(second).unwrap_err().is_cancelled());
    release_tx.send(()).unwrap();
    core.block_on(first).unwrap();
    // The pool's only thread ran `first`, then skipped `second`; a third one shows it is done.
    core.block_on(core.spawn_blocking(|| ())).unwrap();
    assert!(!ran.load(SeqCst), "an aborted closure ran");
}

#[test]
fn the_core_is_current_inside_a_blocking_closure() {
    let core = IoCore::builder().threads(3).thread_name("mine").build().unwrap();
    let h = core.spawn_blocking(|| {
        let current = iocore::Handle::try_current().map(|h| h.metrics().workers);
        // Spawning from here goes to this core, and so does a nested blocking closure.
        let spawned = iocore::spawn(async { 7 });
        let nested = iocore::spawn_blocking(|| std::thread::current().name().unwrap_or_default().to_string());
        let (seven, name) =
            futures::executor::block_on(async { (spawned.await.unwrap(), nested.await.unwrap()) });
        (current, seven, name)
    });
    let (current, seven, name) = core.block_on(h).unwrap();
    assert_eq!(current, Some(3), "no core, or another one, was current in the closure");
    assert_eq!(seven, 7);
    assert!(name.starts_with("mine-blocking-"), "the nested closure ran on {name:?}");
}
