//! Time: [`sleep`], [`timeout`] and [`interval`], all built on task deadlines.
//!
//! A task carries one deadline that the futures it polls may only lower; it is cleared
//! once it has passed (so a future that set it and is not polled again is still woken,
//! and a future that finished early costs at most one spurious wakeup). When the task
//! returns `Pending`, the sched-role parks it in its deadline heap under that deadline and the kernel wait is armed (with a `timerfd`, so sub-millisecond
//! deadlines are honoured). So a `sleep` inside a task allocates nothing and takes no lock.
//!
//! When a time future is polled under a *foreign* waker (inside `FuturesUnordered`, or by
//! another executor entirely), lowering the task's deadline would not re-poll it, so it
//! registers `(deadline, waker)` with the core's slow-path timers instead; outside any
//! core that is a lazily started process-wide default core. Either way it completes. The
//! registration belongs to the future: dropping it releases the waker at once.

pub(crate) mod clock;

use crate::sched::{current_or_default_core, current_task};
use crate::task::raw::RawTask;
use crate::util::waker_map::WakerEntry;
use futures::Stream;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Makes the current task (or, under a foreign waker, the waker) be woken at `deadline`.
/// `registered` holds the slow-path registration: repeated polls refresh it instead of
/// adding more, and dropping it cancels the timer.
pub(crate) fn wake_at(cx: &Context<'_>, deadline: u64, registered: &mut Option<WakerEntry>) {
    if let Some(task) = current_task() {
        if RawTask::from_waker(cx.waker()) == Some(task) {
            // SAFETY: we are inside this task's poll.
            unsafe { task.lower_deadline(deadline) };
            return;
        }
    }
    if let Some(entry) = registered {
        if entry.group() == deadline && entry.refresh(cx.waker()) {
            return;
        }
    }
    *registered = Some(current_or_default_core().add_timer(deadline, cx.waker().clone()));
}

/// Waits until `duration` has passed. See [`sleep_until`].
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(clock::after(duration))
}

/// Waits until `deadline`. Precision is sub-millisecond (the kernel wait is armed with
/// nanosecond resolution); a deadline in the past completes on the first poll.
///
/// ```
/// # let core = iocore::IoCore::new()?;
/// # core.block_on(async {
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// iocore::time::sleep(Duration::from_micros(300)).await;
/// assert!(start.elapsed() >= Duration::from_micros(300));
/// # });
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { deadline, ns: clock::to_ns(deadline), registered: None }
}

/// Future returned by [`sleep`] and [`sleep_until`]. It is `Unpin`.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    ns: u64,
    /// The slow-path timer, when polled under a foreign waker; dropped with the `Sleep`.
    registered: Option<WakerEntry>,
}

impl Sleep {
    /// When this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        clock::now_ns() >= self.ns
    }

    /// Moves the deadline (earlier or later), as if freshly created.
    pub fn reset(&mut self, deadline: Instant) {
        *self = sleep_until(deadline);
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_elapsed() {
            self.registered = None;
            return Poll::Ready(());
        }
        let this = &mut *self;
        wake_at(cx, this.ns, &mut this.registered);
        Poll::Pending
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("deadline", &self.deadline).finish()
    }
}

/// The error of [`timeout`]: the deadline passed before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> Self {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "deadline has elapsed")
    }
}

/// Runs `future` for at most `duration`: `Ok(output)`, or `Err(Elapsed)` (the future is
/// dropped with the `Timeout`). The future is polled first, so one that is ready at once
/// wins even with a zero duration.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    timeout_at(clock::after(duration), future)
}

/// Like [`timeout`], with an absolute deadline.
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout { future, sleep: sleep_until(deadline) }
}

pin_project! {
    /// Future returned by [`timeout`] and [`timeout_at`].
    #[must_use = "futures do nothing unless awaited"]
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F> Timeout<F> {
    /// The wrapped future.
    pub fn into_inner(self) -> F {
        self.future
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.future.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        Pin::new(this.sleep).poll(cx).map(|()| Err(Elapsed(())))
    }
}

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
        let mut next = scheduled + self.period;
        if next <= now {
            let missed = (now - scheduled).as_nanos() / self.period.as_nanos();
            let skip = u32::try_from(missed + 1).unwrap_or(u32::MAX);
            next = scheduled.checked_add(self.period * skip).unwrap_or(now + self.period);
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
        self.sleep.reset(Instant::now() + self.period);
    }
}

impl Stream for Interval {
    type Item = Instant;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }
}
