//! Waiting at the task level: [`park`] (until woken, signalled or a deadline) and
//! [`yield_now`].

use super::raw::{self, RawTask};
use super::state::ParkFlag;
use crate::time::clock::Deadline;
use crate::util::waker_map::{keep_registered, WakerEntry};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// Yields: the task goes to the back of the ready queue, behind everything already ready
/// and behind whatever the next schedule step makes ready (kernel events, expired
/// deadlines), so a CPU-bound loop that yields cannot starve timers or sockets.
/// Works under any executor (it wakes itself once and returns `Pending` once).
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// Future returned by [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // Inside an iocore task it runs again only after the next schedule step has looked
        // at the kernel events and the deadlines. Polled with the task's own waker, the
        // worker is told instead of the waker being called (no atomic operation).
        match raw::current() {
            Some(task) if RawTask::from_waker(cx.waker()) == Some(task) => raw::note_yield(true),
            Some(_) => {
                raw::note_yield(false);
                cx.waker().wake_by_ref();
            }
            None => cx.waker().wake_by_ref(),
        }
        Poll::Pending
    }
}

/// Makes the current task be woken at `deadline`: inside a task polled with its own waker
/// by lowering the task's deadline (no allocation, no lock); under a foreign waker by a
/// slow-path timer on the task's core, kept in `registered` (refreshed on later polls,
/// cancelled when dropped); outside any task by the timer `outside` registers.
pub(crate) fn wake_at(
    cx: &Context<'_>,
    deadline: Deadline,
    registered: &mut Option<WakerEntry>,
    outside: impl FnOnce(Deadline, Waker) -> WakerEntry,
) {
    let group = deadline.as_nanos();
    match raw::current() {
        Some(task) if RawTask::from_waker(cx.waker()) == Some(task) => {
            // SAFETY: we run inside this task's poll.
            unsafe { task.lower_deadline(deadline) };
        }
        Some(task) => {
            keep_registered(registered, group, cx.waker(), |w| task.scheduler().add_timer(deadline, w))
        }
        None => keep_registered(registered, group, cx.waker(), |w| outside(deadline, w)),
    }
}

/// Why [`park`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wake {
    /// The task was signalled ([`TaskRef::signal`](crate::TaskRef::signal)); takes precedence over the others.
    Signaled,
    /// The task was woken ([`TaskRef::wakeup`](crate::TaskRef::wakeup)).
    Woken,
    /// The deadline passed with neither.
    Expired,
}

/// Sleeps until the task is woken or signalled through a [`TaskRef`](crate::TaskRef), or until `deadline`
/// (`None`: no deadline). See the [module docs](crate::task) for the exact semantics.
///
/// `park` is a task-level primitive, but it works wherever the task polls it: directly, in
/// `select!`/`join!`, or under a sub-executor with its own wakers (`FuturesUnordered`,
/// `join_all`). Under the task's own waker it allocates nothing; under a foreign waker it
/// registers that waker with the core, for the wakeup and for the deadline, until it
/// completes or is dropped.
///
/// # Panics
/// When polled outside an iocore task.
pub fn park(deadline: Option<Instant>) -> Park {
    Park { deadline: deadline.map(Deadline::at), wakeup: None, timer: None }
}

/// Future returned by [`park`].
#[must_use = "futures do nothing unless awaited"]
pub struct Park {
    deadline: Option<Deadline>,
    /// Under a foreign waker: that waker, registered for the task's next wakeup/signal.
    wakeup: Option<WakerEntry>,
    /// Under a foreign waker: the slow-path timer for the deadline.
    timer: Option<WakerEntry>,
}

impl Future for Park {
    type Output = Wake;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Wake> {
        let task = raw::current()
            .expect("iocore::task::park awaited outside an iocore task; spawn the code as a task");
        let state = &task.header().state;
        let own_waker = RawTask::from_waker(cx.waker()) == Some(task);
        if !own_waker {
            // A foreign waker would not be woken by the task's wakeup: register it, then
            // publish that (the flags are re-checked below, after the publication).
            let group = task.as_ptr() as u64;
            keep_registered(&mut self.wakeup, group, cx.waker(), |w| {
                task.scheduler().add_park_waker(task, w)
            });
            state.set_park_wakers();
        }
        match state.take_park_flags() {
            Some(ParkFlag::Signaled) => return self.finish(Wake::Signaled),
            Some(ParkFlag::Woken) => return self.finish(Wake::Woken),
            None => {}
        }
        if let Some(deadline) = self.deadline {
            if deadline.has_passed() {
                return self.finish(Wake::Expired);
            }
            let this = &mut *self;
            wake_at(cx, deadline, &mut this.timer, |_, _| unreachable!("inside a task"));
        }
        Poll::Pending
    }
}

impl Park {
    /// Releases any foreign registration and returns `why`.
    fn finish(&mut self, why: Wake) -> Poll<Wake> {
        self.wakeup = None;
        self.timer = None;
        Poll::Ready(why)
    }
}

impl fmt::Debug for Park {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Park").field("deadline", &self.deadline).finish()
    }
}
