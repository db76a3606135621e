//! Time: [`sleep`], [`timeout`] and [`interval`], all built on task deadlines.
//!
//! A task carries one deadline that the futures it polls may only lower; it is cleared
//! once it has passed (so a future that set it and is not polled again is still woken,
//! and a future that finished early costs at most one spurious wakeup). When the task
//! returns `Pending`, the sched-role parks it in its deadline heap under that deadline and the kernel wait is armed (with a `timerfd`, so sub-millisecond
//! deadlines are honoured). So a `sleep` inside a task allocates nothing and takes no lock.
//! A wake leaves the heap entry in place, and a task whose deadline did not change parks
//! again under it: an idle `timeout` reset per message (its deadline sticks until it
//! passes) costs no trip through the sched-role.
//!
//! When a time future is polled under a *foreign* waker (inside `FuturesUnordered`, or by
//! another executor entirely), lowering the task's deadline would not re-poll it, so it
//! registers `(deadline, waker)` with the core's slow-path timers instead; outside any
//! core that is a lazily started process-wide default core (or, when that core cannot
//! start, a plain thread of last resort: `fallback`). Either way it completes. The
//! registration belongs to the future: dropping it releases the waker at once.
//!
//! Files: `clock` (the `Deadline` type), `sleep` ([`sleep`],
//! [`timeout`]), `interval` ([`interval`]), `fallback`.

pub(crate) mod clock;
mod fallback;
mod interval;
mod sleep;

pub use interval::{interval, interval_at, Interval};
pub use sleep::{sleep, sleep_until, timeout, timeout_at, Elapsed, Sleep, Timeout};
