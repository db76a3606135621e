//! What a `JoinHandle` holds on to: a dropped handle releases the waker it registered at
//! once (a join given up by a `timeout` must not keep the waiting task alive while the
//! awaited one runs on), and a chain of tasks each joined by its parent is freed without
//! recursion however long it is (100 000 deep overflowed a worker's stack and aborted
//! the process: each freed task dropped its joiner's waker, which freed the joiner, …).

mod support;

use iocore::time;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;
use support::{core, wait_until, watchdog, CountWaker, HANG};

/// Deep enough to overflow a 2 MiB worker stack at a few dozen bytes per level.
const DEPTH: usize = 100_000;

#[test]
fn a_dropped_join_handle_releases_its_waker() {
    watchdog(HANG, || {
        let core = core(1);
        for _ in 0..100 {
            let mut handle = core.spawn(time::sleep(Duration::from_secs(3600)));
            let count = Arc::new(CountWaker::default());
            let waker = Waker::from(count.clone());
            assert!(Pin::new(&mut handle).poll(&mut Context::from_waker(&waker)).is_pending());
            drop(waker);
            drop(handle);
            assert_eq!(Arc::strong_count(&count), 1, "a dropped JoinHandle kept its waker");
        }
    });
}

/// Task `n` spawns task `n - 1`, waits for it at most 1 µs (a join given up), and ends;
/// the last one sleeps a little first, then ends too.
fn generation(n: usize, ended: Arc<AtomicUsize>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        if n == 0 {
            time::sleep(Duration::from_millis(50)).await;
        } else {
            let child = iocore::spawn(generation(n - 1, ended.clone()));
            let _ = time::timeout(Duration::from_micros(1), child).await;
        }
        ended.fetch_add(1, SeqCst);
    })
}

#[test]
fn a_long_chain_of_given_up_joins_ends_cleanly() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let ended = Arc::new(AtomicUsize::new(0));
        drop(core.spawn(generation(DEPTH, ended.clone())));
        wait_until("every generation to end", || ended.load(SeqCst) > DEPTH);
        assert!(core.wait_idle(HANG), "tasks left");
    });
}

/// Task `n` spawns task `n - 1` and awaits it; the last one waits for an hour.
fn chain(n: usize) -> Pin<Box<dyn Future<Output = usize> + Send>> {
    Box::pin(async move {
        if n == 0 {
            time::sleep(Duration::from_secs(3600)).await;
            return 0;
        }
        iocore::spawn(chain(n - 1)).await.map_or(0, |v| v + 1)
    })
}

#[test]
fn shutdown_frees_a_long_chain_of_joined_tasks() {
    watchdog(HANG * 2, || {
        let core = core(2);
        drop(core.spawn(chain(DEPTH)));
        wait_until("the whole chain to be spawned", || core.metrics().live_tasks > DEPTH);
        let report = core.shutdown(Duration::ZERO);
        assert_eq!(report.leaked, 0, "{report:?}");
        // (A task whose child was cancelled may finish with that error before its own
        // cancellation reaches it.)
        assert_eq!((report.cancelled + report.finished) as usize, DEPTH + 1, "{report:?}");
    });
}

/// A chain of futures whose `Drop` spawns the next link (an "async drop"), refused by a
/// core that has shut down: each refused future is dropped by `spawn` itself, and 100 000
/// of them nested overflowed the stack and aborted the process.
#[test]
fn a_long_chain_of_spawns_refused_after_shutdown_is_dropped_flat() {
    struct Link {
        left: usize,
        handle: iocore::Handle,
        dropped: Arc<AtomicUsize>,
    }
    impl Drop for Link {
        fn drop(&mut self) {
            self.dropped.fetch_add(1, SeqCst);
            if self.left > 0 {
                let next =
                    Link { left: self.left - 1, handle: self.handle.clone(), dropped: self.dropped.clone() };
                drop(self.handle.spawn(async move { drop(next) }));
            }
        }
    }

    const LINKS: usize = 100_000;
    watchdog(HANG * 2, || {
        let core = core(1);
        let handle = core.handle();
        core.shutdown(Duration::ZERO);
        let dropped = Arc::new(AtomicUsize::new(0));
        // On a thread with the default 2 MiB stack, like any worker or spawned thread.
        std::thread::spawn({
            let dropped = dropped.clone();
            move || drop(Link { left: LINKS, handle, dropped })
        })
        .join()
        .expect("the dropping thread");
        assert_eq!(dropped.load(SeqCst), LINKS + 1);
    });
}

/// A spawn refused inside the drop of another refused future (an async-drop chain) is
/// resolved when `spawn` returns, like any refused spawn: a `Drop` that waits for the
/// cleanup task it spawned gets `Cancelled` at once (review: a refusal queued behind the
/// drop that waited for it deadlocked).
#[test]
fn a_spawn_refused_inside_a_refused_futures_drop_is_resolved_at_once() {
    struct CleanupOnDrop {
        handle: iocore::Handle,
        resolved: Arc<AtomicUsize>,
    }
    impl Drop for CleanupOnDrop {
        fn drop(&mut self) {
            let cleanup = self.handle.spawn(async {});
            if cleanup.is_finished() {
                self.resolved.fetch_add(1, SeqCst);
            }
            let r = futures::executor::block_on(cleanup);
            assert!(r.expect_err("a refused spawn").is_cancelled());
        }
    }
    watchdog(HANG, || {
        let core = core(1);
        let handle = core.handle();
        core.shutdown(Duration::ZERO);
        assert!(handle.spawn(async {}).is_finished(), "a refused spawn is resolved when spawn returns");
        let resolved = Arc::new(AtomicUsize::new(0));
        let guard = CleanupOnDrop { handle: handle.clone(), resolved: resolved.clone() };
        let outer = handle.spawn(async move { drop(guard) });
        assert!(outer.is_finished());
        assert_eq!(resolved.load(SeqCst), 1, "inside the drop, the refused cleanup was still pending");
    });
}
