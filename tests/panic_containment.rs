//! Panics outside a task's `poll` are contained: the worker (or sched-role) that runs into
//! them keeps going, and the core keeps running tasks, timers and sockets.
//!
//! - a detached task whose *output*'s `Drop` panics (dropped by the runtime);
//! - a foreign waker whose `wake` panics, woken by the runtime: on a `JoinHandle` when the
//!   task completes, on a socket by the IO dispatch, on a slow-path timer when it fires;
//! - a task whose future panics in `Drop` while being cancelled (`abort`, shutdown): its
//!   handle says cancelled, it is counted once, and the core becomes idle.
//!
//! Each case runs on a 1-worker core, so a killed worker leaves nobody to run anything;
//! liveness is checked in real time (not with iocore timers, which need a worker).

mod support;

use futures::channel::oneshot;
use futures::io::AsyncRead;
use iocore::{task, time, IoCore, JoinHandle};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};
use support::net::{pair, recv_exact};
use support::{core, park_holding_panic_on_drop, wait_until, watchdog, CountWaker, PanicOnDrop, HANG};

/// How long the core may take to run a trivial task: only a dead worker reaches it.
const ALIVE: Duration = Duration::from_secs(10);

/// Checks that the contained panic was counted in `Metrics::contained_panics`.
fn assert_contained(m: iocore::Metrics, what: &str) {
    assert!(
        m.contained_panics >= 1,
        "{what}: the contained panic is not counted in Metrics::contained_panics: {m:?}"
    );
}

/// A foreign waker whose `wake` panics (after counting the call).
#[derive(Default)]
struct PanicWaker(AtomicUsize);

impl Wake for PanicWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
        panic!("foreign waker panics in wake (expected by the test)");
    }
}

/// Waits in real time for `h` to finish.
fn finishes<T>(h: &JoinHandle<T>, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while !h.is_finished() {
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Takes the output of a finished task (without the runtime).
fn output<T>(mut h: JoinHandle<T>) -> Result<T, iocore::JoinError> {
    let waker = Waker::from(Arc::new(CountWaker::default()));
    match Pin::new(&mut h).poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(r) => r,
        Poll::Pending => panic!("a finished task's handle is pending"),
    }
}

/// Fails (without waiting for a dead core's shutdown) unless `core` still runs a task that
/// sleeps on an iocore timer.
fn assert_core_alive(core: IoCore, after: &str) -> IoCore {
    let h = core.spawn(async {
        time::sleep(Duration::from_millis(1)).await;
        task::yield_now().await;
        42
    });
    if !finishes(&h, ALIVE) {
        // The worker is gone: dropping the core would wait for it in vain.
        std::mem::forget(core);
        panic!("after {after}, the 1-worker core no longer runs tasks: the panic killed its worker");
    }
    assert_eq!(output(h).unwrap(), 42);
    core
}

#[test]
fn a_detached_task_whose_output_panics_in_drop_does_not_kill_the_worker() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let (tx, rx) = oneshot::channel::<()>();
        let h = core.spawn(async move {
            rx.await.expect("go");
            PanicOnDrop
        });
        drop(h);
        tx.send(()).expect("task alive");
        let core = assert_core_alive(core, "a detached task's output panicked in drop");
        assert!(core.wait_idle(ALIVE), "the core never became idle");
        assert_contained(core.metrics(), "detached output drop");
    });
}

#[test]
fn a_join_handle_waker_that_panics_does_not_kill_the_worker() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let (tx, rx) = oneshot::channel::<()>();
        let mut h = core.spawn(async move {
            rx.await.expect("go");
            5
        });
        let pw = Arc::new(PanicWaker::default());
        let waker = Waker::from(pw.clone());
        assert!(Pin::new(&mut h).poll(&mut Context::from_waker(&waker)).is_pending());
        tx.send(()).expect("task alive");
        wait_until("the task to complete and wake its handle", || pw.0.load(SeqCst) >= 1);
        let core = assert_core_alive(core, "a JoinHandle's foreign waker panicked");
        assert!(h.is_finished());
        assert_eq!(output(h).unwrap(), 5, "the task's output was lost");
        assert_contained(core.metrics(), "JoinHandle waker");
    });
}

#[test]
fn a_socket_waker_that_panics_does_not_stop_the_core_serving_other_sockets() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let ((mut a, b), (c, d)) = core.block_on(async { (pair().await, pair().await) });
        // An echo server on another connection.
        let echo = core.spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                match d.recv(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => d.send_all(&buf[..n]).await.expect("echo send"),
                }
            }
        });
        // The panicking waker waits for data on `a`.
        let pw = Arc::new(PanicWaker::default());
        let waker = Waker::from(pw.clone());
        let mut buf = [0u8; 16];
        let r = Pin::new(&mut a).poll_read(&mut Context::from_waker(&waker), &mut buf);
        assert!(r.is_pending(), "nothing was sent yet: {r:?}");
        core.block_on(b.send_all(b"wake")).expect("send to a");
        wait_until("the IO dispatch to wake the foreign waker", || pw.0.load(SeqCst) >= 1);
        // The other connection's echo still works (on the only worker).
        let probe = core.spawn(async move {
            c.send_all(b"ping").await.expect("probe send");
            let mut got = [0u8; 4];
            recv_exact(&c, &mut got).await.expect("probe recv");
            got
        });
        if !finishes(&probe, ALIVE) {
            std::mem::forget(core);
            panic!("after a socket's foreign waker panicked, another connection's echo no longer works");
        }
        assert_eq!(&output(probe).unwrap(), b"ping");
        let core = assert_core_alive(core, "a socket's foreign waker panicked");
        assert_contained(core.metrics(), "socket waker");
        drop((a, b));
        echo.abort();
    });
}

#[test]
fn a_slow_path_timer_waker_that_panics_does_not_stop_timers_or_tasks() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let pw = Arc::new(PanicWaker::default());
        let waker = Waker::from(pw.clone());
        // Kept alive until it has fired.
        let mut sleep = Box::pin(time::sleep(Duration::from_millis(5)));
        core.block_on(async {
            assert!(sleep.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        });
        wait_until("the timer to fire", || pw.0.load(SeqCst) >= 1);
        let core = assert_core_alive(core, "a slow-path timer's foreign waker panicked");
        // Another slow-path timer still fires.
        let cw = Arc::new(CountWaker::default());
        let waker = Waker::from(cw.clone());
        let mut sleep2 = Box::pin(time::sleep(Duration::from_millis(2)));
        core.block_on(async {
            assert!(sleep2.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        });
        let end = Instant::now() + ALIVE;
        while cw.0.load(SeqCst) == 0 {
            if Instant::now() >= end {
                std::mem::forget(core);
                panic!("after a timer's foreign waker panicked, slow-path timers no longer fire");
            }
            thread::sleep(Duration::from_millis(1));
        }
        assert_contained(core.metrics(), "timer waker");
        drop((sleep, sleep2));
    });
}

#[test]
fn an_aborted_task_whose_future_panics_in_drop_is_cancelled_and_counted_once() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let h = core.spawn(park_holding_panic_on_drop());
        wait_until("task parked", || core.metrics().parked_tasks == 1);
        h.abort();
        assert!(finishes(&h, ALIVE), "the aborted task never finished");
        let e = output(h).expect_err("an aborted task has no output");
        assert!(e.is_cancelled(), "expected cancelled, got {e}");
        assert!(core.wait_idle(ALIVE), "the core never became idle");
        let m = core.metrics();
        assert_eq!(m.cancelled_tasks, 1, "{m:?}");
        assert_eq!(m.live_tasks, 0, "{m:?}");
        let core = assert_core_alive(core, "a cancelled future panicked in drop");
        assert_contained(core.metrics(), "cancelled future's drop");
    });
}

#[test]
fn tasks_whose_futures_panic_in_drop_are_cancelled_by_shutdown_and_counted_once() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let handle = core.handle();
        let handles: Vec<_> = (0..3).map(|_| core.spawn(park_holding_panic_on_drop())).collect();
        wait_until("tasks parked", || core.metrics().parked_tasks == 3);
        let report = core.shutdown(Duration::ZERO);
        assert_eq!(report.cancelled, 3, "{report:?}");
        assert_eq!(report.leaked, 0, "{report:?}");
        assert_eq!(report.unjoined_workers, 0, "{report:?}");
        for h in handles {
            assert!(h.is_finished());
            assert!(output(h).expect_err("cancelled").is_cancelled());
        }
        let m = handle.metrics();
        assert_eq!(m.cancelled_tasks, 3, "{m:?}");
        assert_eq!(m.live_tasks, 0, "{m:?}");
        assert!(handle.wait_idle(ALIVE));
        assert_contained(m, "cancelled futures' drop at shutdown");
    });
}

/// Closures still queued on the blocking pool when the core shuts down are dropped one by
/// one: two whose captures panic in `Drop` aborted the process (the second panic came
/// during the first one's unwind).
#[test]
fn queued_blocking_closures_whose_captures_panic_in_drop_are_dropped_one_by_one() {
    watchdog(HANG, || {
        let core = IoCore::builder().threads(1).max_blocking_threads(1).build().expect("core");
        let handle = core.handle();
        // The only blocking thread is busy: the next closures stay queued.
        let (release, busy) = std::sync::mpsc::channel::<()>();
        let running = core.spawn_blocking(move || {
            let _ = busy.recv_timeout(HANG);
        });
        let queued: Vec<_> = (0..3)
            .map(|_| {
                let capture = PanicOnDrop;
                core.spawn_blocking(move || drop(capture))
            })
            .collect();
        let report = core.shutdown(Duration::from_millis(10));
        drop(release);
        assert_eq!(report.unjoined_workers, 0, "{report:?}");
        for h in queued {
            assert!(output(h).is_err(), "a queued closure ran after shutdown");
        }
        drop(running);
        assert!(handle.metrics().contained_panics >= 3, "{:?}", handle.metrics());
    });
}

/// A panic contained on a thread that works for no core (a `JoinHandle` dropped there
/// drops its task's output; a `TaskRef::wakeup` there wakes a foreign `park` waker) counts
/// in the task's core.
#[test]
fn panics_contained_on_plain_threads_count_in_the_tasks_core() {
    watchdog(HANG, || {
        let core = core(1);
        let h = core.spawn(async { PanicOnDrop });
        assert!(finishes(&h, ALIVE));
        drop(h);
        assert_eq!(core.metrics().contained_panics, 1, "an output dropped on a plain thread");

        let woken = Arc::new(AtomicUsize::new(0));
        let h = core.spawn({
            let woken = woken.clone();
            async move {
                let mut park = std::pin::pin!(task::park(None));
                std::future::poll_fn(move |cx: &mut Context<'_>| {
                    /// Wakes the task, then panics.
                    struct WakeThenPanic(Waker, Arc<AtomicUsize>);
                    impl Wake for WakeThenPanic {
                        fn wake(self: Arc<Self>) {
                            self.1.fetch_add(1, SeqCst);
                            self.0.wake_by_ref();
                            panic!("foreign park waker panics in wake (expected by the test)");
                        }
                    }
                    let w = Waker::from(Arc::new(WakeThenPanic(cx.waker().clone(), woken.clone())));
                    park.as_mut().poll(&mut Context::from_waker(&w))
                })
                .await
            }
        });
        wait_until("task parked", || core.metrics().parked_tasks == 1);
        // The only worker is held, so the wakeup cannot reach the task through the worker
        // first: this thread wakes the park's foreign waker itself.
        let (held, release) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let holder = core.spawn({
            let (held, release) = (held.clone(), release.clone());
            async move {
                held.store(1, SeqCst);
                while release.load(SeqCst) == 0 {
                    std::hint::spin_loop();
                }
            }
        });
        wait_until("the worker held", || held.load(SeqCst) == 1);
        h.task().wakeup();
        release.store(1, SeqCst);
        assert_eq!(woken.load(SeqCst), 1);
        assert!(finishes(&h, ALIVE) && finishes(&holder, ALIVE));
        assert_eq!(output(h).expect("park"), task::Wake::Woken);
        assert_eq!(core.metrics().contained_panics, 2, "a park waker woken from a plain thread");
    });
}

/// A foreign waker whose drop panics.
struct PanicOnDropWake;

impl Wake for PanicOnDropWake {
    fn wake(self: Arc<Self>) {}
}

impl Drop for PanicOnDropWake {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic!("a join waker panics in drop (expected by the test)");
        }
    }
}

/// A finished task of `core` whose block keeps a `PanicOnDropWake` as its join waker.
fn finished_with_a_panicking_join_waker(core: &IoCore) -> JoinHandle<()> {
    let (tx, rx) = oneshot::channel::<()>();
    let mut h = core.spawn(async move {
        let _ = rx.await;
    });
    let w = Waker::from(Arc::new(PanicOnDropWake));
    assert!(Pin::new(&mut h).poll(&mut Context::from_waker(&w)).is_pending());
    drop(w);
    tx.send(()).unwrap();
    assert!(finishes(&h, ALIVE));
    h
}

/// Panics contained while a plain thread drops things of several cores count in the core
/// each thing belongs to (review): a join waker dropped by a refused future's drop (it ran
/// after the refusal's own count ended), core B's task output dropped inside core A's
/// refusal, and an output whose drop entered another core before it panicked.
#[test]
fn panics_contained_in_nested_drops_count_in_the_right_core() {
    struct EnterThenPanic(iocore::Handle);
    impl Drop for EnterThenPanic {
        fn drop(&mut self) {
            drop(self.0.enter());
            panic!("an output panics in drop after entering a core (expected by the test)");
        }
    }
    watchdog(HANG, || {
        let a = core(1);
        let b = core(1);
        let (ha, hb) = (a.handle(), b.handle());
        let waker_kept = finished_with_a_panicking_join_waker(&a);
        let b_output = b.spawn(async { PanicOnDrop });
        let entering = a.spawn({
            let hb = hb.clone();
            async move { EnterThenPanic(hb) }
        });
        assert!(finishes(&b_output, ALIVE) && finishes(&entering, ALIVE));
        a.shutdown(Duration::ZERO);
        b.shutdown(Duration::ZERO);
        drop(ha.spawn(async move { drop(waker_kept) }));
        assert_eq!((ha.metrics().contained_panics, hb.metrics().contained_panics), (1, 0), "a join waker");
        drop(ha.spawn(async move { drop(b_output) }));
        assert_eq!((ha.metrics().contained_panics, hb.metrics().contained_panics), (1, 1), "B's output");
        drop(entering);
        assert_eq!((ha.metrics().contained_panics, hb.metrics().contained_panics), (2, 1), "entered B");
    });
}
