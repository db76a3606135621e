//! A `Sleep`/`Timeout` polled under a foreign waker (a sub-executor, another executor, a
//! manual poll) registers a slow-path timer with a clone of that waker. Dropping the
//! future must release that registration (and the waker) soon, not keep it until the
//! deadline: 1000 dropped one-hour sleeps must not pin 1000 wakers for an hour.
//!
//! Checked inside a core (`block_on` and a spawned task, both polling by hand with a
//! counting waker) and on a plain thread (the process-wide default core).

mod support;

use iocore::time;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::thread;
use std::time::{Duration, Instant};
use support::{core, watchdog, CountWaker, HANG};

const SLEEPS: usize = 1000;
const HOUR: Duration = Duration::from_secs(3600);
/// How long the runtime may take to let go of the dropped registrations.
const RELEASE: Duration = Duration::from_secs(5);
/// References to the waker that may legitimately remain (the test's own is 1).
const SLACK: usize = 10;

/// Polls `f` once with `waker`, then drops it.
fn poll_once<F: Future>(f: F, waker: &Waker) {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(waker);
    assert!(f.as_mut().poll(&mut cx).is_pending(), "a one-hour timer completed at once");
}

/// Polls `SLEEPS` futures made by `make` once each with a fresh counting waker, drops
/// them, and returns the waker's `Arc` (the only reference the test keeps).
fn register_and_drop<F: Future>(make: impl Fn() -> F) -> Arc<CountWaker> {
    let counter = Arc::new(CountWaker::default());
    let waker = Waker::from(counter.clone());
    for _ in 0..SLEEPS {
        poll_once(make(), &waker);
    }
    drop(waker);
    counter
}

/// Waits until only the test holds `counter` (up to `SLACK`), or fails after `RELEASE`.
fn assert_released(what: &str, counter: &Arc<CountWaker>) {
    let end = Instant::now() + RELEASE;
    while Arc::strong_count(counter) > 1 + SLACK {
        if Instant::now() >= end {
            panic!(
                "{what}: {SLEEPS} dropped one-hour timers still hold their waker after {RELEASE:?} \
                 ({} references to it)",
                Arc::strong_count(counter) - 1
            );
        }
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(counter.0.load(SeqCst), 0, "{what}: a dropped one-hour timer woke its waker");
}

#[test]
fn dropped_sleeps_polled_by_hand_in_block_on_release_their_waker() {
    watchdog(HANG, || {
        let core = core(2);
        let counter = core.block_on(async { register_and_drop(|| time::sleep(HOUR)) });
        assert_released("sleep in block_on", &counter);
    });
}

#[test]
fn dropped_sleeps_polled_by_hand_in_a_task_release_their_waker() {
    watchdog(HANG, || {
        let core = core(2);
        let counter = core.block_on(core.spawn(async { register_and_drop(|| time::sleep(HOUR)) })).unwrap();
        assert_released("sleep in a task", &counter);
    });
}

#[test]
fn dropped_sleeps_polled_on_a_plain_thread_release_their_waker() {
    watchdog(HANG, || {
        let counter = thread::spawn(|| register_and_drop(|| time::sleep(HOUR))).join().unwrap();
        assert_released("sleep on a plain thread (default core)", &counter);
    });
}

#[test]
fn dropped_timeouts_polled_by_hand_release_their_waker() {
    watchdog(HANG, || {
        let core = core(2);
        let counter = core
            .block_on(async { register_and_drop(|| time::timeout(HOUR, futures::future::pending::<()>())) });
        assert_released("timeout in block_on", &counter);
        let counter =
            thread::spawn(|| register_and_drop(|| time::timeout(HOUR, futures::future::pending::<()>())))
                .join()
                .unwrap();
        assert_released("timeout on a plain thread (default core)", &counter);
    });
}

#[test]
fn dropped_intervals_polled_by_hand_release_their_waker() {
    watchdog(HANG, || {
        let core = core(2);
        let counter = core.block_on(async {
            register_and_drop(|| {
                let mut i = time::interval_at(Instant::now() + HOUR, HOUR);
                futures::future::poll_fn(move |cx| i.poll_tick(cx))
            })
        });
        assert_released("interval in block_on", &counter);
    });
}
