//! [`interval`]: a periodic timer.

use super::clock::instant_after;
use super::sleep::{sleep_until, Sleep};
use futures::Stream;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Ticks every `period`, the first tick at once. See [`Interval`] for missed ticks.
/// A zero `period` is treated as one nanosecond.
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// Ticks every `period`, the first tick at `start`.
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    let period = period.max(Duration::from_nanos(1));
    Interval { period, sleep: sleep_until(start) }
}

/// A periodic timer: [`tick`](Interval::tick) completes at `start`, `start + period`, …
/// It is also a [`Stream`] of the scheduled instants.
///
/// **Missed ticks are skipped**: if a tick is collected late by more than a period, the
/// ticks that were missed are not delivered in a burst; the next tick is the next multiple
/// of `period` after now, so the schedule keeps its phase and never runs faster than
/// `period`. (A tick that is late by less than a period keeps the schedule unchanged.)
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    sleep: Sleep,
}

impl Interval {
    /// Waits for the next tick; returns the instant it was scheduled for.
    pub async fn tick(&mut self) -> Instant {
        futures::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let scheduled = self.sleep.deadline();
        let now = Instant::now();
        let mut next = instant_after(scheduled, self.period);
        if next <= now {
            // The first multiple of the period after now (in nanoseconds: a count of
            // periods can pass `u32::MAX`, with a 1 ns period after a 5 s stall).
            let period = self.period.as_nanos();
            let skip = ((now - scheduled).as_nanos() / period + 1) * period;
            next = u64::try_from(skip)
                .ok()
                .and_then(|skip| scheduled.checked_add(Duration::from_nanos(skip)))
                .unwrap_or_else(|| instant_after(now, self.period));
        }
        self.sleep.reset(next);
        Poll::Ready(scheduled)
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Restarts the schedule: the next tick is one period from now.
    pub fn reset(&mut self) {
        self.sleep.reset(instant_after(Instant::now(), self.period));
    }
}

impl Stream for Interval {
    type Item = Instant;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }
}
