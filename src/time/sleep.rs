//! [`sleep`] and [`timeout`]: futures that complete at a deadline.

use super::clock::Deadline;
use crate::task::wake_at;
use crate::util::waker_map::WakerEntry;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Waits until `duration` has passed. See [`sleep_until`].
pub fn sleep(duration: Duration) -> Sleep {
    // Straight from the clock (no `Instant` arithmetic on the way: a `timeout` per message
    // makes this a hot path).
    Sleep { given: None, at: Deadline::after(duration), registered: None }
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
    Sleep { given: Some(deadline), at: Deadline::at(deadline), registered: None }
}

/// Future returned by [`sleep`] and [`sleep_until`]. It is `Unpin`.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    /// The deadline as given to `sleep_until` (kept exactly: an instant from before the
    /// iocore clock started has no exact `Deadline`); `None` for `sleep`, whose instant is
    /// derived from `at` only if asked for.
    given: Option<Instant>,
    at: Deadline,
    /// The slow-path timer, when polled under a foreign waker; dropped with the `Sleep`.
    registered: Option<WakerEntry>,
}

impl Sleep {
    /// When this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.given.unwrap_or_else(|| self.at.to_instant())
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        self.at.has_passed()
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
        wake_at(
            cx,
            this.at,
            &mut this.registered,
            |deadline, waker| match crate::runtime::current_or_default() {
                Ok(core) => core.add_timer(deadline, waker),
                Err(_) => super::fallback::add_timer(deadline, waker),
            },
        );
        Poll::Pending
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep").field("deadline", &self.deadline()).finish()
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
    Timeout { future, sleep: sleep(duration) }
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
