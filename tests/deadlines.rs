//! Deadlines: `park` with a deadline, `spawn_after`, `park(None)`, sub-millisecond `sleep`,
//! `timeout` and `interval`. Only lower bounds on elapsed time are asserted.

mod support;

use futures::StreamExt;
use iocore::task::{self, Wake};
use iocore::time;
use std::time::{Duration, Instant};
use support::{core, in_task, wait_until, watchdog, HANG};

#[test]
fn park_with_deadline_expires() {
    watchdog(HANG * 2, || {
        let core = core(2);
        for us in [1000u64, 100, 1500, 3000] {
            let d = Duration::from_micros(us);
            let (w, elapsed) = in_task(&core, async move {
                let start = Instant::now();
                let w = task::park(Some(start + d)).await;
                (w, start.elapsed())
            });
            assert_eq!(w, Wake::Expired);
            assert!(elapsed >= d, "park({d:?}) returned after {elapsed:?}");
        }
    });
}

/// Many tasks parked with deadlines at once all expire, none early.
#[test]
fn many_parks_with_deadlines_expire() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let handles: Vec<_> = (0..1000u64)
            .map(|i| {
                core.spawn(async move {
                    let d = Duration::from_micros(50 * (i % 40));
                    let start = Instant::now();
                    let w = task::park(Some(start + d)).await;
                    (w, start.elapsed() >= d)
                })
            })
            .collect();
        core.block_on(time::timeout(HANG, async move {
            for h in handles {
                assert_eq!(h.await.unwrap(), (Wake::Expired, true));
            }
        }))
        .expect("deadlines did not fire");
    });
}

/// A task spawned with `spawn_after(d)` is first polled no earlier than `d` after the spawn.
#[test]
fn spawn_after_not_polled_early() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let handles: Vec<_> = (0..50u64)
            .map(|i| {
                let d = Duration::from_micros(250 * i);
                let spawned = Instant::now();
                let h = core.spawn_after(d, async { Instant::now() });
                (spawned, d, h)
            })
            .collect();
        core.block_on(time::timeout(HANG, async move {
            for (spawned, d, h) in handles {
                let first_poll = h.await.unwrap();
                assert!(
                    first_poll >= spawned + d,
                    "spawn_after({d:?}) polled after {:?}",
                    first_poll - spawned
                );
            }
        }))
        .expect("delayed tasks did not run");
    });
}

#[test]
fn spawn_at_not_polled_early() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let at = Instant::now() + Duration::from_millis(3);
        let h = core.spawn_at(at, async { Instant::now() });
        let first_poll = core.block_on(time::timeout(HANG, h)).expect("hung").unwrap();
        assert!(first_poll >= at);
    });
}

/// `park(None)` stays parked until woken: after 50 ms it has not finished.
#[test]
fn park_none_stays_parked_until_woken() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let h = core.spawn(async { task::park(None).await });
        wait_until("task parked", || core.metrics().parked_tasks == 1);
        std::thread::sleep(Duration::from_millis(50));
        assert!(!h.is_finished(), "park(None) returned without a wakeup");
        assert!(!h.task().is_finished());
        assert_eq!(core.metrics().parked_tasks, 1);
        h.task().wakeup();
        let r = core.block_on(time::timeout(HANG, h)).expect("woken task hung");
        assert_eq!(r.unwrap(), Wake::Woken);
    });
}

/// A task parked with a far deadline and other tasks with short deadlines: only the short
/// ones fire.
#[test]
fn far_deadline_does_not_fire_early() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let far = core.spawn(async { task::park(Some(Instant::now() + Duration::from_secs(3600))).await });
        for _ in 0..20 {
            in_task(&core, async { time::sleep(Duration::from_millis(1)).await });
        }
        assert!(!far.is_finished(), "a park with a one-hour deadline returned");
        far.task().signal();
        let r = core.block_on(time::timeout(HANG, far)).expect("hung");
        assert_eq!(r.unwrap(), Wake::Signaled);
    });
}

#[test]
fn sleep_sub_millisecond() {
    watchdog(HANG * 2, || {
        let core = core(2);
        for us in [300u64, 1, 50, 100, 500, 900] {
            let d = Duration::from_micros(us);
            let elapsed = in_task(&core, async move {
                let start = Instant::now();
                time::sleep(d).await;
                start.elapsed()
            });
            assert!(elapsed >= d, "sleep({d:?}) returned after {elapsed:?}");
        }
        // And under block_on.
        let start = Instant::now();
        core.block_on(time::sleep(Duration::from_micros(300)));
        assert!(start.elapsed() >= Duration::from_micros(300));
    });
}

#[test]
fn sleep_until_and_sleep_api() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let (elapsed_ok, ready_past, deadline_ok) = in_task(&core, async {
            let target = Instant::now() + Duration::from_millis(2);
            let s = time::sleep_until(target);
            let deadline_ok = s.deadline() == target && !s.is_elapsed();
            s.await;
            let elapsed_ok = Instant::now() >= target;
            // A deadline in the past completes on the first poll.
            let past = time::sleep_until(Instant::now());
            let ready_past = futures::poll!(past).is_ready();
            (elapsed_ok, ready_past, deadline_ok)
        });
        assert!(elapsed_ok && ready_past && deadline_ok);
    });
}

/// `Sleep::reset` moves the deadline later.
#[test]
fn sleep_reset_later() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let ok = in_task(&core, async {
            let start = Instant::now();
            let mut s = time::sleep(Duration::from_micros(100));
            s.reset(start + Duration::from_millis(3));
            s.await;
            start.elapsed() >= Duration::from_millis(3)
        });
        assert!(ok);
    });
}

#[test]
fn timeout_elapses_for_pending_future() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let (r, elapsed) = in_task(&core, async {
            let start = Instant::now();
            let r = time::timeout(Duration::from_millis(10), futures::future::pending::<()>()).await;
            (r, start.elapsed())
        });
        assert!(matches!(r, Err(time::Elapsed { .. })), "timeout of a pending future returned {r:?}");
        assert!(elapsed >= Duration::from_millis(10));
        // timeout_at.
        let r = in_task(&core, async {
            time::timeout_at(Instant::now() + Duration::from_millis(1), futures::future::pending::<u8>())
                .await
        });
        assert!(r.is_err());
        assert_eq!(r.unwrap_err().to_string(), "deadline has elapsed");
    });
}

#[test]
fn timeout_ok_for_ready_future() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let r = in_task(&core, async { time::timeout(Duration::from_secs(10), async { 5 }).await });
        assert_eq!(r, Ok(5));
        // Ready at once wins even with a zero duration.
        let r = in_task(&core, async { time::timeout(Duration::ZERO, async { 6 }).await });
        assert_eq!(r, Ok(6));
        // A future that completes before the deadline.
        let r = in_task(&core, async {
            time::timeout(Duration::from_secs(10), async {
                time::sleep(Duration::from_millis(1)).await;
                7
            })
            .await
        });
        assert_eq!(r, Ok(7));
        // The same under block_on.
        let r = core.block_on(time::timeout(Duration::from_secs(10), time::sleep(Duration::from_millis(1))));
        assert_eq!(r, Ok(()));
    });
}

/// A timeout whose inner future finishes first does not later wake the task or make a
/// following `park` expire early.
#[test]
fn finished_timeout_leaves_no_stale_deadline() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let h = core.spawn(async {
            let r = time::timeout(Duration::from_millis(1), async { 1 }).await;
            assert_eq!(r, Ok(1));
            task::park(None).await
        });
        std::thread::sleep(Duration::from_millis(20));
        assert!(!h.is_finished(), "park(None) returned after a finished timeout");
        h.task().wakeup();
        assert_eq!(core.block_on(time::timeout(HANG, h)).expect("hung").unwrap(), Wake::Woken);
    });
}

#[test]
fn interval_ticks_are_spaced_by_period() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let period = Duration::from_millis(3);
        let (start, ticks) = in_task(&core, async move {
            let start = Instant::now();
            let mut iv = time::interval(period);
            assert_eq!(iv.period(), period);
            let mut ticks = Vec::new();
            for _ in 0..6 {
                let scheduled = iv.tick().await;
                ticks.push((scheduled, Instant::now()));
            }
            (start, ticks)
        });
        for (k, (scheduled, at)) in ticks.iter().enumerate() {
            assert!(*at >= *scheduled, "tick {k} delivered before its scheduled instant");
            assert!(*at >= start + period * k as u32, "tick {k} came too early");
        }
        for w in ticks.windows(2) {
            assert!(w[1].0 >= w[0].0 + period, "scheduled ticks closer than the period");
        }
    });
}

#[test]
fn interval_as_stream() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let period = Duration::from_millis(2);
        let (start, ticks) = in_task(&core, async move {
            let start = Instant::now();
            let ticks: Vec<Instant> = time::interval(period).take(5).collect().await;
            (start, ticks)
        });
        assert_eq!(ticks.len(), 5);
        assert!(ticks[0] >= start);
        for w in ticks.windows(2) {
            assert!(w[1] >= w[0] + period);
        }
        // Also under block_on (foreign waker).
        let n = core.block_on(time::interval(Duration::from_micros(500)).take(3).count());
        assert_eq!(n, 3);
    });
}

/// Missed ticks are skipped, keeping the phase: after a stall of several periods the next
/// scheduled instant is a multiple of the period after the start, and later than the stall.
#[test]
fn interval_skips_missed_ticks() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let period = Duration::from_millis(2);
        let (first, after_stall, stall_end) = in_task(&core, async move {
            let mut iv = time::interval(period);
            let first = iv.tick().await;
            std::thread::sleep(period * 5 + Duration::from_micros(300));
            let stall_end = Instant::now();
            let _late = iv.tick().await;
            let after_stall = iv.tick().await;
            (first, after_stall, stall_end)
        });
        assert!(after_stall >= stall_end, "a missed tick was delivered in a burst");
        let since = after_stall - first;
        assert_eq!(since.as_nanos() % period.as_nanos(), 0, "the interval lost its phase");
    });
}

/// Missed ticks are skipped however many there were: more than `u32::MAX` periods (1 ns
/// periods, a start a minute ago) were delivered back to back.
#[test]
fn interval_skips_more_than_u32_max_missed_ticks() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let start = Instant::now() - Duration::from_secs(60);
        let stale = in_task(&core, async move {
            let mut iv = time::interval_at(start, Duration::from_nanos(1));
            assert_eq!(iv.tick().await, start, "the first tick is at the start");
            let mut stale = 0;
            for _ in 0..100 {
                // A tick scheduled most of a minute ago is a missed one, delivered late.
                if iv.tick().await.elapsed() > Duration::from_secs(30) {
                    stale += 1;
                }
            }
            stale
        });
        assert_eq!(stale, 0, "{stale} missed ticks delivered back to back");
    });
}

/// `park` under `timeout`: the timeout fires when nothing wakes the task, and a wakeup
/// wins when it comes first.
#[test]
fn park_under_timeout() {
    watchdog(HANG * 2, || {
        let core = core(2);
        let (r, elapsed) = in_task(&core, async {
            let start = Instant::now();
            let r = time::timeout(Duration::from_millis(5), task::park(None)).await;
            (r, start.elapsed())
        });
        assert!(r.is_err(), "{r:?}");
        assert!(elapsed >= Duration::from_millis(5));
        let h = core.spawn(async { time::timeout(Duration::from_secs(3600), task::park(None)).await });
        wait_until("task parked", || core.metrics().parked_tasks == 1);
        h.task().wakeup();
        let r = core.block_on(time::timeout(HANG, h)).expect("hung").unwrap();
        assert_eq!(r, Ok(Wake::Woken));
    });
}

/// Extreme durations: `Duration::MAX` saturates instead of overflowing.
#[test]
fn extreme_durations() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let r = in_task(&core, async {
            time::timeout(Duration::from_millis(1), time::sleep(Duration::MAX)).await
        });
        assert!(r.is_err());
        let r = in_task(&core, async { time::timeout(Duration::MAX, async { 1 }).await });
        assert_eq!(r, Ok(1));
        let r = in_task(&core, async {
            time::timeout(Duration::MAX, time::sleep(Duration::from_micros(100))).await
        });
        assert_eq!(r, Ok(()));
        let h = core.spawn_after(Duration::MAX, async { 2 });
        h.task().wakeup();
        assert_eq!(core.block_on(time::timeout(HANG, h)).expect("hung").unwrap(), 2);
        // A zero period is treated as one nanosecond.
        let n = in_task(&core, async { time::interval(Duration::ZERO).take(3).count().await });
        assert_eq!(n, 3);
        assert_eq!(time::interval(Duration::ZERO).period(), Duration::from_nanos(1));
    });
}

/// `interval_at` starts at the given instant; `Interval::reset` restarts one period from now.
#[test]
fn interval_at_and_reset() {
    watchdog(HANG * 2, || {
        let core = core(1);
        let ok = in_task(&core, async {
            let start = Instant::now() + Duration::from_millis(2);
            let period = Duration::from_millis(1);
            let mut iv = time::interval_at(start, period);
            let first = iv.tick().await;
            let first_ok = first == start && Instant::now() >= start;
            let before_reset = Instant::now();
            iv.reset();
            let next = iv.tick().await;
            first_ok && next >= before_reset + period && Instant::now() >= next
        });
        assert!(ok);
    });
}

/// The usual server pattern: each message resets an idle timeout around the next wait (a
/// woken task runs with its deadline entry left behind and parks under it again). The
/// messages span longer than the timeout, so the first deadline (it sticks until it
/// passes) comes due while they still flow: that wake must not end the wait. Every message
/// arrives, and once they stop the timeout still fires.
#[test]
fn timeout_reset_per_message_still_fires_when_messages_stop() {
    const MESSAGES: usize = 300;
    watchdog(HANG, || {
        let core = core(2);
        let (tx, mut rx) = futures::channel::mpsc::unbounded::<usize>();
        // Far above the 5 ms between messages, so that only a lost reset could fire early.
        let idle = Duration::from_secs(1);
        let waiter = core.spawn(async move {
            let mut got = 0;
            loop {
                match time::timeout(idle, rx.next()).await {
                    Ok(Some(_)) => got += 1,
                    Ok(None) => return (got, false),
                    Err(_) => return (got, true),
                }
            }
        });
        core.block_on(async {
            for i in 0..MESSAGES {
                tx.unbounded_send(i).unwrap();
                time::sleep(Duration::from_millis(5)).await;
            }
        });
        let (got, timed_out) = support::join(&core, waiter).unwrap();
        assert_eq!(got, MESSAGES, "the idle timeout fired while messages still came");
        assert!(timed_out, "the idle timeout did not fire (the sender is still alive)");
        drop(tx);
    });
}

/// How long the lowered deadline of [`after_a_far_wake`] is.
const NEAR: Duration = Duration::from_millis(20);

/// A task parks under a one-hour timeout, is woken out of it (its heap entry stays
/// behind), then awaits `then()`, which must wait for [`NEAR`]: it must wake at that
/// nearer deadline, not at the far entry (a hang, caught by the watchdog), and not early.
fn after_a_far_wake<F: std::future::Future<Output = ()> + Send + 'static>(
    then: impl FnOnce() -> F + Send + 'static,
) {
    watchdog(HANG, || {
        let core = core(2);
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let h = core.spawn(async move {
            let first = time::timeout(Duration::from_secs(3600), rx).await;
            assert!(matches!(first, Ok(Ok(()))));
            let start = Instant::now();
            then().await;
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(10));
        tx.send(()).unwrap();
        let slept = support::join(&core, h).unwrap();
        assert!(slept >= NEAR, "woke early: {slept:?}");
    });
}

/// A task woken out of a far deadline and then waiting on a nearer one is woken at the
/// nearer one.
#[test]
fn a_nearer_deadline_after_a_wake_is_honoured() {
    after_a_far_wake(|| time::sleep(NEAR));
}

/// Tasks woken before their deadline and then finishing are freed at once, not when the
/// deadline they left behind comes due: their outputs (dropped with the task, since the
/// `JoinHandle`s are gone) are dropped within moments although the deadlines are an hour
/// away.
#[test]
fn tasks_finishing_before_their_deadline_are_freed_at_once() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    const TASKS: usize = 100;
    watchdog(HANG, || {
        let core = core(2);
        let dropped = Arc::new(AtomicUsize::new(0));
        let mut senders = Vec::new();
        for _ in 0..TASKS {
            let (tx, rx) = futures::channel::oneshot::channel::<()>();
            senders.push(tx);
            let out = support::DropGuard(dropped.clone());
            drop(core.spawn(async move {
                let _ = time::timeout(Duration::from_secs(3600), rx).await;
                out
            }));
        }
        // Let them all park under their one-hour deadlines, then wake them.
        std::thread::sleep(Duration::from_millis(50));
        for tx in senders {
            tx.send(()).unwrap();
        }
        wait_until("every finished task freed", || dropped.load(SeqCst) == TASKS);
        assert!(core.wait_idle(HANG));
    });
}

/// A task woken out of a far deadline whose next poll both lowers its deadline and wakes
/// itself (so it is requeued, not parked), and then waits on that lowered deadline, is
/// woken at it: the requeue must not leave the entry keyed by the far deadline for the
/// next park to reuse.
#[test]
fn a_deadline_lowered_in_a_poll_that_wakes_itself_is_honoured() {
    use std::future::Future;
    use std::pin::Pin;
    after_a_far_wake(|| {
        let mut sleep = time::sleep(NEAR);
        let mut polls = 0;
        std::future::poll_fn(move |cx| {
            polls += 1;
            let ready = Pin::new(&mut sleep).poll(cx);
            if polls == 1 {
                cx.waker().wake_by_ref();
            }
            ready
        })
    });
}
